// A stop request: one lock-free deadline on the monotonic clock, set from any thread or signal handler.
#include <amorsize/stop.hpp>

#include <cmath>
#include <ctime>

namespace amorsize {
namespace {

/// Returns CLOCK_MONOTONIC in nanoseconds (clock_gettime is async-signal-safe).
std::int64_t monotonic_ns() noexcept {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

void stop_request::drain(double grace_seconds) noexcept {
  constexpr double longest = 1e9;  // about 30 years: far beyond any run, far below overflow
  const double grace = std::isnan(grace_seconds) ? 0.0 : std::fmin(std::fmax(grace_seconds, 0.0), longest);
  std::int64_t expected = no_request;
  abandon_at_ns_.compare_exchange_strong(expected, monotonic_ns() + static_cast<std::int64_t>(grace * 1e9));
}

void stop_request::abandon() noexcept { abandon_at_ns_.store(now_or_before); }

bool stop_request::requested() const noexcept { return abandon_at_ns_.load() != no_request; }

bool stop_request::abandoned() const noexcept {
  const std::int64_t at = abandon_at_ns_.load();
  return at != no_request && monotonic_ns() >= at;
}

}  // namespace amorsize
