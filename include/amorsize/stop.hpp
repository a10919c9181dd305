#pragma once
/// A request to stop a pool call early, safe to make from a signal handler: drain, then abandon.

#include <atomic>
#include <cstdint>

namespace amorsize {

/// Stops the pool calls that hold it (pool_options::stop): every member is async-signal-safe and lock-free.
///
/// A drain sends no new chunk and lets the chunks in flight finish within a grace; an abandon drops
/// them at once. Either way items never finished get no record, so a later run can resume them.
/// Under MPI only the root's request counts. What an abandon does to the workers depends on them:
/// - worker processes running an item are killed at once;
/// - a thread cannot be killed: the call ends at once, and destroying its stream waits for each
///   thread's running item;
/// - worker ranks are told to stop as at a normal end: the root's call ends at once, and
///   destroying its stream (or MPI_Finalize) waits for each rank's running item;
/// - a serial run checks the request before each item: the item in progress always finishes.
class stop_request {
 public:
  stop_request() noexcept = default;
  stop_request(const stop_request&) = delete;
  stop_request& operator=(const stop_request&) = delete;

  /// Stops dispatching; chunks in flight get `grace_seconds` from now to finish, then the call abandons (a second drain keeps the first deadline).
  void drain(double grace_seconds) noexcept;

  /// Drops the chunks in flight at once: the call ends without their records and its workers are stopped.
  void abandon() noexcept;

  /// Returns true once drain() or abandon() was called.
  [[nodiscard]] bool requested() const noexcept;

  /// Returns true once abandon() was called or the drain's grace ran out.
  [[nodiscard]] bool abandoned() const noexcept;

 private:
  /// CLOCK_MONOTONIC nanoseconds at which the call abandons: no_request until asked, now_or_before once abandoned.
  std::atomic<std::int64_t> abandon_at_ns_{no_request};
  static constexpr std::int64_t no_request = INT64_MAX;
  static constexpr std::int64_t now_or_before = INT64_MIN;
  static_assert(std::atomic<std::int64_t>::is_always_lock_free, "a signal handler may only touch lock-free atomics");
};

}  // namespace amorsize
