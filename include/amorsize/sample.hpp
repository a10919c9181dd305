#pragma once
/// What running the function on the first few items showed: time, spread, bytes, threads, memory.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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
  std::uint64_t memory_per_call = 0;      ///< Largest peak resident-memory growth of one call (or its largest child process), in bytes.
  bool cut_for_memory = false;            ///< Sampling stopped early: the results kept for reuse reached the memory budget.
  std::vector<double> item_seconds;       ///< Wall time of each successful sampled call.
  std::vector<item_error> errors;         ///< The sampled items that threw (or crashed the sampler).
  std::size_t crashed = 0;                ///< Sampled items that crashed the sampler process: only worker processes survive them.
  std::vector<std::size_t> spread_positions; ///< Source positions of the spread sample: items far into a random-access source, measured and run again in the run.
  std::vector<double> spread_seconds;     ///< Wall time of each spread item (same order as spread_positions).
  double spread_total_seconds = 0.0;      ///< Wall time of the spread calls together (spent once more in the run).
  std::size_t source_items = 0;           ///< Items the source held when sampled (0: unknown or endless).
  double trend = 0.0;                     ///< Fitted change of item time from the first to the last item, as a share of the mean (0: none seen or no spread sample).

  /// Computes mean, CV, min, max and total from `item_seconds`.
  void summarise();

  /// Re-estimates mean, CV, min, max and trend over the whole source from the first items
  /// (`item_seconds`, positions 0..) and the spread sample; totals stay those of the first items.
  void add_spread();

  /// Returns true when the sample may badly misjudge the work: few items, a trend, or a huge spread.
  [[nodiscard]] bool unreliable() const;
};

/// What one call cost: every thread it ran and every child process it waited for.
struct call_cost {
  double wall_seconds = 0.0;      ///< Wall time of the call.
  double demand_seconds = 0.0;    ///< Core-seconds the call wanted: CPU time of its threads and child processes, plus its threads' waits for a CPU.
  int threads = 1;                ///< Most threads the call ran at once, the calling one included (or left alive after it).
  std::uint64_t memory_bytes = 0; ///< Peak resident-memory growth of the process during the call, or the largest child process it waited for.
};

/// Measures calls one at a time: clocks right around each call, /proc outside them, and a thread
/// of its own that watches the process's other threads while a call runs (keep one meter for a
/// series of calls; the watching thread lives as long as the meter). What reading the clocks
/// around a call costs is measured once, around an empty call, and left out of each call's wall time.
class call_meter {
 public:
  /// Starts the watching thread.
  call_meter();
  /// Stops the watching thread.
  ~call_meter();
  call_meter(const call_meter&) = delete;
  call_meter& operator=(const call_meter&) = delete;

  /// Runs `call`, which must not throw, and returns what it cost.
  call_cost measure(const std::function<void()>& call);

 private:
  class watcher;
  std::unique_ptr<watcher> watcher_;
  double clock_floor_ = 0.0;  // wall time measured around an empty call
};

/// Returns the number of threads in this process (/proc/self/task).
int process_threads();

namespace detail {

/// Returns the sample standard deviation (n - 1 in the denominator) of `values` around `center`; 0 for fewer than two values.
double sample_stddev(const std::vector<double>& values, double center);

/// A weighted least-squares line y = intercept + slope x, fitted from running sums as points come.
class line_fit {
 public:
  /// Adds the point (x, y) with `weight`.
  void add(double x, double y, double weight = 1.0) {
    n_ += weight;
    x_ += weight * x;
    y_ += weight * y;
    xx_ += weight * x * x;
    xy_ += weight * x * y;
  }
  /// Returns true when the points span more than one x, so the line is defined.
  [[nodiscard]] bool defined() const { return xx_ * n_ - x_ * x_ > 0.0; }
  /// Returns the slope (the line must be defined).
  [[nodiscard]] double slope() const { return (xy_ * n_ - x_ * y_) / (xx_ * n_ - x_ * x_); }
  /// Returns the value at x = 0 (the line must be defined).
  [[nodiscard]] double intercept() const { return (y_ - slope() * x_) / n_; }

 private:
  double n_ = 0.0;   // sum of weights
  double x_ = 0.0;   // sum of weight x x
  double y_ = 0.0;   // sum of weight x y
  double xx_ = 0.0;  // sum of weight x x^2
  double xy_ = 0.0;  // sum of weight x x x y
};

/// Returns up to `most` positions among `items` items, one in the middle of each of equal strata,
/// in an order whose every prefix is spread evenly over the items (bit-reversed strata); none when
/// `items` is too small to be worth spreading (under 4 strata of 2 items).
std::vector<std::size_t> spread_positions(std::size_t items, std::size_t most);

/// Turns measured calls into sample_stats, so sampling in this process and in a child share one summary.
class sample_accumulator {
 public:
  /// Adds a call that returned a result.
  void add_success(const call_cost& cost);
  /// Adds a call that threw on the item at `index`.
  void add_failure(std::size_t index, std::string message);
  /// Adds a call that crashed its process on the item at `index`.
  void add_crash(std::size_t index, std::string message);
  /// Returns the summary of `items` sampled items; throws sample_error when every call failed.
  sample_stats finish(std::size_t items);

 private:
  sample_stats stats_;
  double demand_ = 0.0;
  double wall_ = 0.0;
};

}  // namespace detail

/// Memory and thread readings of this process that sampling takes around each call.
struct process_reading {
  double wall_seconds = 0.0;              ///< Monotonic clock.
  double cpu_seconds = 0.0;               ///< CPU time of the whole process (all threads).
  int threads = 1;                        ///< Threads alive in the process.
  std::uint64_t resident_bytes = 0;       ///< Current resident set size.
};

/// Returns seconds on the monotonic clock.
double monotonic_seconds();

/// Returns wall-clock seconds since the epoch (comparable across nodes, for records and traces).
double wall_clock_seconds();

/// Returns the CPU time of the whole process (all threads), in seconds.
double process_cpu_seconds();

/// Returns the CPU time of the calling thread, in seconds.
double thread_cpu_seconds();

/// Returns how often the calling thread has given up its CPU by blocking (sleep, I/O, a lock, a join).
long thread_voluntary_switches();

/// Returns the time the calling thread has waited for a CPU (/proc/thread-self/schedstat), in seconds; 0 if unknown.
double thread_run_delay_seconds();

/// The fields of /proc/self/stat that sampling reads.
struct proc_stat {
  int threads = 1;                ///< num_threads (field 20).
  std::uint64_t rss_pages = 0;    ///< rss (field 24), in pages.
};

/// Parses a /proc/[pid]/stat line, whose command name may hold spaces and parentheses; throws input_error when malformed.
proc_stat parse_proc_stat(std::string_view line);

/// Returns VmHWM (the peak resident set size) in bytes from /proc/[pid]/status text; throws input_error when absent or malformed.
std::uint64_t parse_vm_hwm(std::string_view status);

/// Reads the process's clocks, thread count and resident size.
process_reading read_process();

/// Resets the process's peak-RSS mark so the next call's peak can be read; returns false if the kernel refuses.
bool reset_peak_memory();

/// Returns the process's peak resident set size since start or the last reset, in bytes.
std::uint64_t peak_memory_bytes();

}  // namespace amorsize
