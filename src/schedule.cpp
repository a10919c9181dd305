#include <amorsize/schedule.hpp>

#include <algorithm>

namespace amorsize {

std::string_view to_string(schedule_kind kind) {
  return kind == schedule_kind::guided ? "guided" : "fixed";
}

std::size_t chunk_schedule::next_chunk(std::optional<std::size_t> remaining, int workers) const {
  const std::size_t largest = std::max<std::size_t>(1, chunksize);
  if (kind == schedule_kind::fixed || !remaining) {
    return remaining ? std::min(largest, std::max<std::size_t>(1, *remaining)) : largest;
  }
  // Guided self-scheduling: each chunk takes half of an equal share of what is left, so the
  // last chunks are small and workers finish together.
  const auto share = static_cast<std::size_t>(2 * std::max(1, workers));
  const std::size_t guided = (*remaining + share - 1) / share;
  const std::size_t smallest = std::clamp<std::size_t>(min_chunksize, 1, largest);
  return std::min(std::clamp(guided, smallest, largest), std::max<std::size_t>(1, *remaining));
}

std::size_t chunk_schedule::chunk_count(std::size_t items, int workers) const {
  if (kind == schedule_kind::fixed) {
    const std::size_t size = std::max<std::size_t>(1, chunksize);
    return (items + size - 1) / size;
  }
  std::size_t chunks = 0;
  for (std::size_t left = items; left > 0; ++chunks) left -= next_chunk(left, workers);
  return chunks;
}

}  // namespace amorsize
