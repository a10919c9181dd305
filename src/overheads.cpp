#include <amorsize/overheads.hpp>
#include <amorsize/sample.hpp>

#include <amorsize/engine/local_backends.hpp>
#include <amorsize/error.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace amorsize {
namespace {

/// The measuring workers' task: answer every chunk with one byte.
std::string echo(const std::string& /*items*/, double& compute_seconds) {
  compute_seconds = 0.0;
  return "r";
}

/// Waits for worker pool `workers` to answer one chunk; false if a worker was lost instead.
bool answered(engine::backend& workers) {
  for (;;) {
    if (auto e = workers.wait(1.0)) return std::holds_alternative<engine::chunk_result>(*e);
  }
}

/// Seconds to start a process pool of `count` workers, see each answer a first chunk, and stop them; negative on failure.
double pool_cycle_seconds(int count) {
  try {
    const double start = monotonic_seconds();
    const auto workers = engine::make_process_backend(count, echo);
    for (int w = 0; w < count; ++w) workers->send(w, engine::chunk{static_cast<std::uint64_t>(w), 0, 0, {}});
    bool ok = true;
    for (int w = 0; w < count; ++w) ok = answered(*workers) && ok;
    workers->stop();
    return ok ? monotonic_seconds() - start : -1.0;
  } catch (const resource_error&) {
    return -1.0;
  }
}

/// Seconds for worker 0 of `workers` to take a chunk of `bytes` bytes and answer it; negative on failure.
double round_trip_seconds(engine::backend& workers, std::size_t bytes) {
  static std::uint64_t id = 0;
  const double start = monotonic_seconds();
  workers.send(0, engine::chunk{++id, 0, 1, std::string(bytes, 'x')});
  return answered(workers) ? monotonic_seconds() - start : -1.0;
}

/// Seconds to start and join one thread: four at a time, twice; the cheaper round.
double thread_start_seconds() {
  double per_thread = 1e9;
  for (int round = 0; round < 2; ++round) {
    const double t0 = monotonic_seconds();
    std::array<std::thread, 4> threads;
    for (auto& t : threads) t = std::thread([] {});
    for (auto& t : threads) t.join();
    per_thread = std::min(per_thread, (monotonic_seconds() - t0) / static_cast<double>(threads.size()));
  }
  return per_thread;
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

  o.thread_spawn_per_worker = thread_start_seconds();
  // A process running other threads must not fork workers (see fork_is_safe): nothing to measure.
  if (!engine::fork_is_safe()) return o;

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

  // A chunk's round trip (small message and its answer) and the socket's bandwidth.
  try {
    const auto workers = engine::make_process_backend(1, echo);
    std::vector<double> trips;
    for (int i = 0; i < 20; ++i) {
      const double t = round_trip_seconds(*workers, 64);
      if (i >= 4 && t >= 0.0) trips.push_back(t);  // the first few warm the caches and the scheduler
    }
    double big = 1e9;
    for (int i = 0; i < 3; ++i) {
      const double t = round_trip_seconds(*workers, 256 * 1024);
      if (t > 0.0) big = std::min(big, t);
    }
    if (!trips.empty()) {
      o.chunk_round_trip = median(trips);
      // The fastest large trip less the fastest small one: both as undisturbed as this machine allows.
      const double transfer = big - *std::min_element(trips.begin(), trips.end());
      o.pipe_bandwidth = transfer > 0.0 ? 256.0 * 1024.0 / transfer : 0.0;
    }
  } catch (const resource_error&) {
    return o;  // no process to measure with: leave unmeasured
  }

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
