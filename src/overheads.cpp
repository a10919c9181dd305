#include <amorsize/overheads.hpp>
#include <amorsize/sample.hpp>

#include "engine/worker_process.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace amorsize {
namespace {

/// The child's whole life: say it is ready, then answer each length-prefixed message with one
/// byte until the parent hangs up; returns its exit status. Only async-signal-safe calls: the
/// parent may have threads.
int echo_child(int fd) {
  static std::array<char, 64 * 1024> buffer;
  const char ready = 'r';
  if (!detail::write_all(fd, &ready, 1)) return 1;
  std::uint32_t length = 0;
  while (detail::read_all(fd, &length, sizeof length)) {
    while (length > 0) {
      const std::size_t part = std::min<std::size_t>(length, buffer.size());
      if (!detail::read_all(fd, buffer.data(), part)) return 1;
      length -= static_cast<std::uint32_t>(part);
    }
    if (!detail::write_all(fd, &ready, 1)) return 1;
  }
  return 0;
}

/// A worker process started for a measurement, with a socket to talk to it.
using echo_worker = detail::child_process;

/// Forks one echo child; pid -1 when the system refuses.
echo_worker start_worker() { return detail::start_child(echo_child); }

void stop_worker(echo_worker& w) {
  detail::hang_up(w);  // the child sees end of stream and exits
  if (w.pid > 0) detail::reap(w.pid);
  w = {};
}

bool wait_ready(const echo_worker& w) {
  char ready = 0;
  return w.fd >= 0 && detail::read_all(w.fd, &ready, 1);
}

/// Seconds to start `count` worker processes, see each ready, and stop them all; negative on failure.
double pool_cycle_seconds(int count) {
  std::vector<echo_worker> pool(static_cast<std::size_t>(count));
  const double start = monotonic_seconds();
  bool ok = true;
  for (auto& w : pool) ok = ((w = start_worker()).pid > 0) && ok;
  for (auto& w : pool) ok = wait_ready(w) && ok;
  for (auto& w : pool) stop_worker(w);
  return ok ? monotonic_seconds() - start : -1.0;
}

/// Seconds for one length-prefixed message of `bytes` bytes and its one-byte answer.
double round_trip_seconds(const echo_worker& w, std::size_t bytes) {
  static const std::vector<char> payload(256 * 1024, 'x');
  const auto length = static_cast<std::uint32_t>(std::min(bytes, payload.size()));
  char answer = 0;
  const double start = monotonic_seconds();
  if (!detail::write_all(w.fd, &length, sizeof length) || !detail::write_all(w.fd, payload.data(), length) ||
      !detail::read_all(w.fd, &answer, 1)) {
    return -1.0;
  }
  return monotonic_seconds() - start;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

local_overheads measure_local_overheads_uncached() {
  const double start = monotonic_seconds();
  local_overheads o;

  // Fixed and per-worker start-up cost from pools of one and two processes (minimum of three tries each).
  double one = 1e9;
  double two = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const double a = pool_cycle_seconds(1);
    const double b = pool_cycle_seconds(2);
    if (a < 0.0 || b < 0.0) return o;  // fork refused: leave unmeasured
    one = std::min(one, a);
    two = std::min(two, b);
  }
  o.process_spawn_per_worker = std::max(0.0, two - one);
  o.process_spawn_fixed = std::max(0.0, one - o.process_spawn_per_worker);

  // A chunk's round trip (small message and its answer) and the pipe's bandwidth.
  echo_worker w = start_worker();
  if (w.pid > 0 && wait_ready(w)) {
    std::vector<double> trips;
    for (int i = 0; i < 20; ++i) {
      const double t = round_trip_seconds(w, 64);
      if (i >= 4 && t >= 0.0) trips.push_back(t);  // the first few warm the caches and the scheduler
    }
    o.chunk_round_trip = median(trips);
    double big = 1e9;
    for (int i = 0; i < 3; ++i) {
      const double t = round_trip_seconds(w, 256 * 1024);
      if (t > 0.0) big = std::min(big, t);
    }
    // The fastest large trip less the fastest small one: both as undisturbed as this machine allows.
    const double transfer = big - *std::min_element(trips.begin(), trips.end());
    o.pipe_bandwidth = transfer > 0.0 ? 256.0 * 1024.0 / transfer : 0.0;
  }
  stop_worker(w);

  // Threads: start and join four, twice; keep the cheaper round.
  double per_thread = 1e9;
  for (int round = 0; round < 2; ++round) {
    const double t0 = monotonic_seconds();
    std::array<std::thread, 4> threads;
    for (auto& t : threads) t = std::thread([] {});
    for (auto& t : threads) t.join();
    per_thread = std::min(per_thread, (monotonic_seconds() - t0) / static_cast<double>(threads.size()));
  }
  o.thread_spawn_per_worker = per_thread;

  o.measured = true;
  o.measure_seconds = monotonic_seconds() - start;
  return o;
}

const local_overheads& measure_local_overheads() {
  static const local_overheads cached = [] {
    local_overheads first = measure_local_overheads_uncached();
    return first;
  }();
  return cached;
}

}  // namespace amorsize
