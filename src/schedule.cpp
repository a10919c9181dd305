#include <amorsize/schedule.hpp>

#include "enum_names.hpp"

#include <algorithm>

namespace amorsize {
namespace {

constexpr enum_names::table<schedule_kind, 2> schedule_kind_names{{
    {schedule_kind::fixed, "fixed"},
    {schedule_kind::guided, "guided"},
}};

static_assert(enum_names::lists_in_order(schedule_kind_names) &&
              schedule_kind_names.size() == static_cast<std::size_t>(schedule_kind::guided) + 1);

}  // namespace

std::string_view to_string(schedule_kind kind) { return enum_names::name_of(schedule_kind_names, kind); }

schedule_kind parse_schedule_kind(std::string_view name) {
  return enum_names::value_named(schedule_kind_names, name, "schedule kind");
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
