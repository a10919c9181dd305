#pragma once
/// Chunk schedules: how many items the next chunk gets.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace amorsize {

/// How chunk sizes evolve during a run.
enum class schedule_kind {
  fixed,   ///< Every chunk has `chunksize` items (the last may be shorter).
  guided,  ///< Chunks shrink with the work left: ceil(remaining / (2 * workers)), between `min_chunksize` and `chunksize`.
};

/// Returns "fixed" or "guided".
std::string_view to_string(schedule_kind kind);
/// Returns the schedule kind named `name`; throws input_error naming it when there is none.
schedule_kind parse_schedule_kind(std::string_view name);

/// A chunk schedule: the whole chunking policy, carried unchanged from the cost model through the
/// plan and the pool to the dispatcher, which asks it for each chunk's size.
struct chunk_schedule {
  schedule_kind kind = schedule_kind::fixed;  ///< The policy.
  std::size_t chunksize = 1;                  ///< Size of fixed chunks; the largest guided chunk.
  std::size_t min_chunksize = 1;              ///< The smallest guided chunk.
  bool adaptive = true;                       ///< Resize chunks from measured chunk times (false: the sizes were forced).
  double target_seconds = 0.2;                ///< Seconds a chunk should take; adaptive sizes aim at it.

  /// Returns the size of the next chunk given the items left (nullopt: unknown or endless) and the workers.
  [[nodiscard]] std::size_t next_chunk(std::optional<std::size_t> remaining, int workers) const;

  /// Returns how many chunks `items` items make under this schedule.
  [[nodiscard]] std::size_t chunk_count(std::size_t items, int workers) const;
};

/// A change the dispatcher made to the chunk schedule during a run, when measured chunk times
/// contradicted the plan, and why.
struct replan {
  double at_seconds = 0.0;                        ///< Seconds since the run's first chunk was sent.
  std::size_t items_done = 0;                     ///< Items whose chunks had finished by then.
  schedule_kind old_kind = schedule_kind::fixed;  ///< The policy before.
  schedule_kind new_kind = schedule_kind::fixed;  ///< The policy after.
  std::size_t old_chunksize = 0;                  ///< The (largest) chunk size before.
  std::size_t new_chunksize = 0;                  ///< The (largest) chunk size after.
  int old_workers = 0;                            ///< Workers before (1: a serial run).
  int new_workers = 0;                            ///< Workers after (more than before: the serial run went parallel).
  double eta_seconds = 0.0;                       ///< Seconds of run left, as predicted at the change.
  std::string reason;                             ///< Why, with the measurements.
};

}  // namespace amorsize
