#pragma once
// What the pool tests of both binaries share: the world a scenario runs in (local processes,
// threads or serially without a launcher; worker ranks under MPI), the items and the test
// function, and one checker of a run's records.
#include <amorsize/pool.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <vector>

#if defined(AMORSIZE_WITH_MPI)
#include <mpi.h>
#endif

namespace pool_test {

// Sanitized builds copy and map memory far more slowly: their memory tests stream fewer results.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized_build = true;
#else
constexpr bool sanitized_build = false;
#endif
#else
constexpr bool sanitized_build = false;
#endif

/// Local workers a test asks for without a launcher.
constexpr int local_workers = 2;

/// True when this process runs under an MPI launcher.
inline bool under_mpi() { return amorsize::session::current().mpi(); }

/// True on the rank that gets records (every process without a launcher).
inline bool is_root() { return amorsize::session::current().is_root(); }

/// Workers a scenario asks for: two local ones, or (capped by the pool) every rank but the root.
inline int scenario_workers() { return under_mpi() ? 64 : local_workers; }

/// The backends a scenario runs on: local processes, threads and serially, or worker ranks and
/// serially (the root alone) under MPI.
inline std::vector<amorsize::backend_kind> scenario_backends() {
  using amorsize::backend_kind;
  if (under_mpi()) return {backend_kind::mpi, backend_kind::serial};
  return {backend_kind::processes, backend_kind::threads, backend_kind::serial};
}

/// The backend that runs items on other processes: local processes, or worker ranks under MPI.
inline amorsize::backend_kind parallel_backend() {
  return under_mpi() ? amorsize::backend_kind::mpi : amorsize::backend_kind::processes;
}

/// The backend a run asked to use `kind` reports: serial under MPI with no rank to work.
inline amorsize::backend_kind backend_run(amorsize::backend_kind kind) {
  const amorsize::session& s = amorsize::session::current();
  if (kind == amorsize::backend_kind::mpi && s.size() == 1) return amorsize::backend_kind::serial;
  return kind;
}

/// The workers a run on `kind` with scenario_workers() reports.
inline int workers_run(amorsize::backend_kind kind) {
  if (backend_run(kind) == amorsize::backend_kind::serial) return 1;
  return kind == amorsize::backend_kind::mpi ? amorsize::session::current().size() - 1 : local_workers;
}

/// A pool on `kind` with scenario_workers() workers and window `buffer_size` (0: decide).
inline amorsize::pool_options options_for(amorsize::backend_kind kind, std::size_t buffer_size = 0) {
  amorsize::pool_options options;
  options.backend = kind;
  options.workers_per_node = {scenario_workers()};
  options.buffer_size = buffer_size;
  return options;
}

/// Options for `kind` with two workers (one when serial) and fixed chunks of `chunksize` items.
inline amorsize::pool_options two_workers(amorsize::backend_kind kind, std::size_t chunksize = 1) {
  amorsize::pool_options options;
  options.backend = kind;
  options.workers_per_node = {2};
  options.schedule.chunksize = chunksize;
  options.schedule.adaptive = false;
  return options;
}

/// Gathers one count from every rank on the root (empty elsewhere); collective. Without a
/// launcher: this process's count alone.
inline std::vector<unsigned long long> gather_counts(std::size_t count) {
  const amorsize::session& s = amorsize::session::current();
  const unsigned long long mine = count;
  if (!s.mpi()) return {mine};
  std::vector<unsigned long long> counts(s.is_root() ? static_cast<std::size_t>(s.size()) : 0);
#if defined(AMORSIZE_WITH_MPI)
  MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, counts.data(), 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
#endif
  return counts;
}

/// True when this process has no child left, running or zombie.
inline bool no_child_left() {
  errno = 0;
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

/// Items first, first + 1, ..., n of them.
inline std::vector<int> iota_items(std::size_t n, int first = 0) {
  std::vector<int> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = first + static_cast<int>(i);
  return v;
}

/// Items 0 .. count - 1 from a generator: its size is known, but no item can be read ahead (so
/// sampling sees only the first ones).
inline amorsize::source<int> generated_items(int count) {
  return amorsize::make_source(
      [count, next = 0]() mutable -> std::optional<int> {
        if (next == count) return std::nullopt;
        return next++;
      },
      static_cast<std::size_t>(count));
}

/// Spins for `seconds` (a busy core, as CPU-bound work keeps it).
inline void spin_for(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
  }
}

/// Item i doubled: the first `cheap` items take no time, the others spin `seconds` each.
struct dearer_after {
  int cheap = 0;
  double seconds = 0.0;
  int operator()(const int& i) const {
    if (i >= cheap) spin_for(seconds);
    return 2 * i;
  }
};

/// The message the test function throws for item value `x`.
inline std::string multiple_message(long long x) { return "item " + std::to_string(x) + " is a multiple of 97"; }

/// True when the test function throws for item value `x` (0 included).
inline bool throws_on(long long x) { return x % 97 == 0; }

/// Items of `data` the test function throws on.
inline std::size_t count_multiples(const std::vector<int>& data) {
  std::size_t n = 0;
  for (int x : data) n += throws_on(x) ? 1 : 0;
  return n;
}

using bytes = std::vector<std::uint8_t>;

/// The result the test function gives item `x`: 1 to 5 bytes that depend on x (results of several sizes).
inline bytes expected_bytes(int x) {
  bytes out(static_cast<std::size_t>(x % 5) + 1);
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = static_cast<std::uint8_t>((x * 31 + static_cast<int>(k) * 7) % 251);
  return out;
}

/// The test function: throws on multiples of 97, else returns expected_bytes.
inline const auto compute = [](const int& x) -> bytes {
  if (throws_on(x)) throw std::runtime_error(multiple_message(x));
  return expected_bytes(x);
};

/// Returns the problems of `records`, empty when there is none: each index in [0, total) exactly
/// once (only distinct when `total` is unset), in input order when `ordered`, and each record as
/// `judge` (empty answer: right) says.
template <class R>
std::string problems_of(const std::vector<amorsize::item_result<R>>& records, std::optional<std::size_t> total, bool ordered,
                        const std::function<std::string(const amorsize::item_result<R>&)>& judge) {
  std::ostringstream out;
  int reported = 0;
  const auto report = [&](const std::string& what) {
    if (++reported <= 10) out << what << '\n';
  };
  std::vector<int> seen(total.value_or(0), 0);
  std::vector<std::size_t> seen_open;  // indices seen when the total is unknown
  for (std::size_t position = 0; position < records.size(); ++position) {
    const amorsize::item_result<R>& r = records[position];
    const std::size_t i = r.index();
    if (ordered && i != position) report("record " + std::to_string(position) + " has index " + std::to_string(i));
    if (total) {
      if (i >= *total) {
        report("index " + std::to_string(i) + " is out of range");
        continue;
      }
      if (++seen[i] == 2) report("index " + std::to_string(i) + " came twice");
    } else {
      for (std::size_t s : seen_open) {
        if (s == i) report("index " + std::to_string(i) + " came twice");
      }
      seen_open.push_back(i);
    }
    if (std::string verdict = judge(r); !verdict.empty()) report("index " + std::to_string(i) + ": " + verdict);
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (seen[i] == 0) report("index " + std::to_string(i) + " is missing");
  }
  if (reported > 10) out << "... " << reported - 10 << " more\n";
  return out.str();
}

/// Judges a record of `compute` over `data`: its error message where the function throws, else its bytes.
inline std::function<std::string(const amorsize::item_result<bytes>&)> compute_judge(const std::vector<int>& data) {
  return [&data](const amorsize::item_result<bytes>& r) -> std::string {
    const int x = data.at(r.index());
    if (throws_on(x)) {
      if (r.ok()) return "succeeded, an error was expected";
      return r.error() == multiple_message(x) ? "" : "error '" + r.error() + "', expected '" + multiple_message(x) + "'";
    }
    if (!r.ok()) return "failed: " + r.error();
    return r.value() == expected_bytes(x) ? "" : "wrong bytes";
  };
}

/// Runs `body` (on every rank) and returns how far this process's peak resident memory grew
/// meanwhile, in bytes; checks, after `body`, that the kernel could reset the peak.
inline std::uint64_t peak_growth_of(const std::function<void()>& body) {
  const bool reset = amorsize::reset_peak_memory();
  const std::uint64_t base = amorsize::peak_memory_bytes();
  body();
  const std::uint64_t peak = amorsize::peak_memory_bytes();
  INFO("the kernel must reset the peak resident size (/proc/self/clear_refs) for this check");
  CHECK(reset);
  return peak > base ? peak - base : 0;
}

}  // namespace pool_test
