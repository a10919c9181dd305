#pragma once
// Sampling: runs the user's function on the first items and measures it (template part of sample.hpp).

#include <amorsize/error.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/source.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace amorsize::detail {

/// The archive flags every amorsize message uses: no header, so small items stay small.
inline constexpr unsigned archive_flags = boost::archive::no_header;

/// Serializes `value` with the Boost binary archive the engine sends over the wire.
template <class T>
std::string to_bytes(const T& value) {
  std::ostringstream out(std::ios::binary);
  {
    boost::archive::binary_oarchive archive(out, archive_flags);
    archive << value;
  }
  return std::move(out).str();
}

/// Reads a value written by `to_bytes`.
template <class T>
T from_bytes(const std::string& bytes) {
  std::istringstream in(bytes, std::ios::binary);
  boost::archive::binary_iarchive archive(in, archive_flags);
  T value;
  archive >> value;
  return value;
}

/// Serializes `value` and reads it back, as a message crosses the wire; returns the serialized size.
template <class T>
std::size_t serialization_round_trip(const T& value) {
  const std::string bytes = to_bytes(value);
  if constexpr (std::is_default_constructible_v<T>) {
    [[maybe_unused]] const T copy = from_bytes<T>(bytes);
  } else {
    [[maybe_unused]] const std::string again = to_bytes(value);  // reading needs a default constructor: charge a second write instead
  }
  return bytes.size();
}

/// Seconds and bytes per element of sending `values` as one message (one chunk), best of two tries.
template <class T>
std::pair<double, double> chunk_serialization_cost(const std::vector<T>& values) {
  if (values.empty()) return {0.0, 0.0};
  double best = 1e300;
  std::size_t size = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {  // the first archive of a type pays Boost's one-time set-up
    const auto start = std::chrono::steady_clock::now();
    size = serialization_round_trip(values);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const auto n = static_cast<double>(values.size());
  return {best / n, static_cast<double>(size) / n};
}

/// The sampled items, their results and the measurements.
template <class T, class R>
struct sample_outcome {
  sample_stats stats;                        ///< What was measured.
  std::vector<T> items;                      ///< The items taken from the source, in order.
  std::vector<std::optional<R>> results;     ///< Their results (nullopt where the function threw).
};

/// Returns the message of the exception in flight.
inline std::string current_exception_message() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

/// Runs `fn` on the first `count` items of `src` one by one and measures each call.
///
/// Throws empty_source_error when the source has no item and sample_error when every call threw.
template <class Fn, class T, class R = std::decay_t<std::invoke_result_t<Fn&, const T&>>>
sample_outcome<T, R> run_sample(Fn& fn, source<T>& src, std::size_t count) {
  sample_outcome<T, R> out;
  double cpu_total = 0.0;
  double wall_total = 0.0;
  const bool peak_resettable = reset_peak_memory();
  for (std::size_t index = 0; index < count; ++index) {
    std::optional<T> item = src.next();
    if (!item) break;
    out.items.push_back(std::move(*item));
    const T& current = out.items.back();

    if (peak_resettable) reset_peak_memory();
    const process_reading before = read_process();
    const double peak_before = peak_resettable ? static_cast<double>(peak_memory_bytes()) : 0.0;
    std::optional<R> result;
    // Clocks are read right around the call; /proc is read outside them.
    const long blocks_start = thread_voluntary_switches();
    const double delay_start = thread_run_delay_seconds();
    const double thread_cpu_start = thread_cpu_seconds();
    const double cpu_start = process_cpu_seconds();
    const auto wall_start = std::chrono::steady_clock::now();
    try {
      result.emplace(std::invoke(fn, current));
    } catch (...) {
      out.stats.errors.push_back({index, current_exception_message()});
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const double cpu = process_cpu_seconds() - cpu_start;
    const double thread_cpu = thread_cpu_seconds() - thread_cpu_start;
    const double delay = thread_run_delay_seconds() - delay_start;
    const bool blocked = thread_voluntary_switches() != blocks_start;
    const process_reading after = read_process();
    if (result) {
      out.stats.item_seconds.push_back(wall);
      wall_total += wall;
      // On a busy machine a compute-bound call waits for a core: that wait is demand, not
      // idleness. The calling thread cannot have waited longer than the call took beyond its own
      // CPU time; the bound drops waits taken while the clocks themselves were read. A calling
      // thread that never blocked wanted a core all along, even where its CPU clock fell behind
      // (time the hypervisor stole from a virtual machine is on neither clock).
      const double demand = cpu + std::clamp(delay, 0.0, std::max(0.0, wall - thread_cpu));
      cpu_total += blocked ? demand : std::max(demand, wall);
      // Threads the call left alive (a pool it started) count as threads inside the function.
      out.stats.threads_inside = std::max(out.stats.threads_inside, 1 + std::max(0, after.threads - before.threads));
      const double peak_after = static_cast<double>(peak_resettable ? peak_memory_bytes() : after.resident_bytes);
      const double base = peak_resettable ? std::min(peak_before, static_cast<double>(before.resident_bytes))
                                          : static_cast<double>(before.resident_bytes);
      out.stats.memory_per_call = std::max(out.stats.memory_per_call, static_cast<std::uint64_t>(std::max(0.0, peak_after - base)));
    }
    out.results.push_back(std::move(result));
  }
  if (out.items.empty()) {
    throw empty_source_error("the source is empty: there is nothing to sample or run; pass at least one item");
  }
  out.stats.summarise();
  out.stats.failed = out.stats.errors.size();
  if (out.stats.count == 0) {
    throw sample_error("the function threw on every sampled item (" + std::to_string(out.items.size()) +
                       " of them, positions 0.." + std::to_string(out.items.size() - 1) +
                       "); first error, at item " +
                       std::to_string(out.stats.errors.front().index) + ": " + out.stats.errors.front().message);
  }
  // CPU clocks tick coarsely: below a millisecond of calls the ratio is noise, so assume one thread.
  constexpr double min_wall_for_ratio = 1e-3;
  out.stats.cpu_per_wall = wall_total >= min_wall_for_ratio ? cpu_total / wall_total : 1.0;
  out.stats.threads_inside = std::max(out.stats.threads_inside, static_cast<int>(std::lround(out.stats.cpu_per_wall)));
  // Items and results cross the wire a chunk at a time: measure them that way.
  std::vector<R> results;
  results.reserve(out.stats.count);
  for (const auto& r : out.results) {
    if (r) results.push_back(*r);
  }
  const auto [item_seconds, item_bytes] = chunk_serialization_cost(out.items);
  const auto [result_seconds, result_bytes] = chunk_serialization_cost(results);
  out.stats.input_bytes = item_bytes;
  out.stats.result_bytes = result_bytes;
  out.stats.serialize_seconds = item_seconds + result_seconds;
  return out;
}

}  // namespace amorsize::detail
