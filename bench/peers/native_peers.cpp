// The C++ peers of the benchmark suite: a serial loop, OpenMP schedule(static), schedule(dynamic,1),
// schedule(guided) and TBB parallel_for (auto partitioner), each over the shared kernel (spin.c)
// with the durations amorsize_bench_peer --dump wrote, or over near-zero items. One system per
// process, so no idle thread pool of another system competes; prints one JSON line.
#include "bench/peers/spin.h"

#include <omp.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

/// Seconds on the monotonic clock.
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Runs item `i`: the near-zero item when `durations` is empty, else a spin of durations[i] microseconds.
std::uint64_t run_item(const std::vector<double>& durations, std::size_t i) {
  if (durations.empty()) return amorsize_bench_tiny(i);
  amorsize_bench_spin_us(durations[i]);
  return i;
}

/// Runs `count` items with `system` on `workers` threads and returns the checksum of their results.
std::uint64_t run_system(const std::string& system, const std::vector<double>& durations, std::size_t count,
                         int workers) {
  std::uint64_t sum = 0;
  const auto n = static_cast<long>(count);
  if (system == "serial") {
    for (long i = 0; i < n; ++i) sum += run_item(durations, static_cast<std::size_t>(i));
  } else if (system == "omp-static") {
#pragma omp parallel for schedule(static) reduction(+ : sum) num_threads(workers)
    for (long i = 0; i < n; ++i) sum += run_item(durations, static_cast<std::size_t>(i));
  } else if (system == "omp-dynamic") {
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : sum) num_threads(workers)
    for (long i = 0; i < n; ++i) sum += run_item(durations, static_cast<std::size_t>(i));
  } else if (system == "omp-guided") {
#pragma omp parallel for schedule(guided) reduction(+ : sum) num_threads(workers)
    for (long i = 0; i < n; ++i) sum += run_item(durations, static_cast<std::size_t>(i));
  } else if (system == "tbb") {
    std::atomic<std::uint64_t> total{0};
    oneapi::tbb::parallel_for(oneapi::tbb::blocked_range<std::size_t>(0, count),
                              [&](const oneapi::tbb::blocked_range<std::size_t>& range) {
                                std::uint64_t part = 0;
                                for (std::size_t i = range.begin(); i != range.end(); ++i) part += run_item(durations, i);
                                total += part;
                              },
                              oneapi::tbb::auto_partitioner());
    sum = total;
  } else {
    std::fprintf(stderr, "native_peers: unknown system %s\n", system.c_str());
    std::exit(2);
  }
  return sum;
}

/// Reads one duration in microseconds per line.
std::vector<double> read_durations(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> durations;
  for (double us = 0.0; in >> us;) durations.push_back(us);
  if (durations.empty()) {
    std::fprintf(stderr, "native_peers: no durations in %s\n", path.c_str());
    std::exit(2);
  }
  return durations;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr,
                 "usage: amorsize_bench_native SYSTEM WORKERS DURATIONS_FILE|tiny:N\n"
                 "  SYSTEM: serial, omp-static, omp-dynamic, omp-guided or tbb\n");
    return 2;
  }
  const std::string system = argv[1];
  const int workers = system == "serial" ? 1 : std::atoi(argv[2]);
  const std::string source = argv[3];
  std::vector<double> durations;
  std::size_t count = 0;
  if (source.rfind("tiny:", 0) == 0) {
    count = std::strtoull(source.c_str() + 5, nullptr, 10);
  } else {
    durations = read_durations(source);
    count = durations.size();
  }
  const oneapi::tbb::global_control limit(oneapi::tbb::global_control::max_allowed_parallelism,
                                          static_cast<std::size_t>(workers > 0 ? workers : 1));
  // A small warm-up starts the system's threads, which a long-running program would have started already.
  const std::vector<double> none;
  std::uint64_t sum = run_system(system, none, 1000, workers);
  const double start = now_seconds();
  sum += run_system(system, durations, count, workers);
  const double wall = now_seconds() - start;
  std::printf("{\"chunksize\":\"%s\",\"wall\":%.6f,\"items\":%zu,\"workers\":%d,\"checksum\":%llu}\n",
              system == "omp-dynamic" ? "1" : system == "serial" ? "loop" : "own", wall, count, workers, static_cast<unsigned long long>(sum));
  return 0;
}
