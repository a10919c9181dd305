#pragma once
/// What running the function on the first few items showed: time, spread, bytes, threads, memory.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace amorsize {

/// An item the function threw on, with its position in the source.
struct item_error {
  std::size_t index = 0;  ///< Position of the item in the source (0-based).
  std::string message;    ///< What the exception said.
};

/// Measurements of the sampled calls; plain values, so the cost model can be fed canned ones.
struct sample_stats {
  std::size_t count = 0;                  ///< Sampled calls that returned a result.
  std::size_t failed = 0;                 ///< Sampled calls that threw.
  double mean_seconds = 0.0;              ///< Mean wall time per item.
  double cv = 0.0;                        ///< Coefficient of variation of the wall times (stddev / mean).
  double min_seconds = 0.0;               ///< Fastest sampled item.
  double max_seconds = 0.0;               ///< Slowest sampled item.
  double total_seconds = 0.0;             ///< Wall time of all sampled calls together.
  double cpu_per_wall = 1.0;              ///< Cores the calls wanted: (process CPU time + the calling thread's wait for a CPU) / wall time (>1: threads inside, <1: waiting on I/O).
  int threads_inside = 1;                 ///< Threads the function ran on: max of the CPU/wall ratio and threads it left alive.
  double input_bytes = 0.0;               ///< Mean serialized size of an item (Boost binary archive).
  double result_bytes = 0.0;              ///< Mean serialized size of a result.
  double serialize_seconds = 0.0;         ///< Mean time to serialize and deserialize one item and its result.
  std::uint64_t memory_per_call = 0;      ///< Largest peak resident-memory growth of one call, in bytes.
  std::vector<double> item_seconds;       ///< Wall time of each successful sampled call.
  std::vector<item_error> errors;         ///< The sampled items that threw.

  /// Computes mean, CV, min, max and total from `item_seconds`.
  void summarise();
};

/// Memory and thread readings of this process that sampling takes around each call.
struct process_reading {
  double wall_seconds = 0.0;              ///< Monotonic clock.
  double cpu_seconds = 0.0;               ///< CPU time of the whole process (all threads).
  int threads = 1;                        ///< Threads alive in the process.
  std::uint64_t resident_bytes = 0;       ///< Current resident set size.
};

/// Returns seconds on the monotonic clock.
double monotonic_seconds();

/// Returns the CPU time of the whole process (all threads), in seconds.
double process_cpu_seconds();

/// Returns the CPU time of the calling thread, in seconds.
double thread_cpu_seconds();

/// Returns how often the calling thread has given up its CPU by blocking (sleep, I/O, a lock, a join).
long thread_voluntary_switches();

/// Returns the time the calling thread has waited for a CPU (/proc/thread-self/schedstat), in seconds; 0 if unknown.
double thread_run_delay_seconds();

/// Reads the process's clocks, thread count and resident size.
process_reading read_process();

/// Resets the process's peak-RSS mark so the next call's peak can be read; returns false if the kernel refuses.
bool reset_peak_memory();

/// Returns the process's peak resident set size since start or the last reset, in bytes.
std::uint64_t peak_memory_bytes();

}  // namespace amorsize
