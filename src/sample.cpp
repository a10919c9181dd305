#include <amorsize/sample.hpp>

#include <amorsize/error.hpp>
#include <amorsize/probe.hpp>

#include "text.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <dirent.h>
#include <pthread.h>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <tuple>
#include <vector>
#include <unistd.h>

namespace amorsize {
namespace {

/// Returns the median of the slopes between pairs of points, pairs of two first items left out
/// (Theil-Sen): one cold call among the first items cannot tilt it, as it tilts least squares.
/// `points` are (position, seconds, first item?); nullopt when no pair spans two positions.
std::optional<double> median_slope(const std::vector<std::tuple<double, double, bool>>& points) {
  std::vector<double> slopes;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& [xi, yi, head_i] = points[i];
    for (std::size_t j = i + 1; j < points.size(); ++j) {
      const auto& [xj, yj, head_j] = points[j];
      if ((head_i && head_j) || xi == xj) continue;
      slopes.push_back((yj - yi) / (xj - xi));
    }
  }
  if (slopes.empty()) return std::nullopt;
  const auto middle = slopes.begin() + static_cast<std::ptrdiff_t>(slopes.size() / 2);
  std::nth_element(slopes.begin(), middle, slopes.end());
  if (slopes.size() % 2 == 1) return *middle;
  return 0.5 * (*middle + *std::max_element(slopes.begin(), middle));
}

}  // namespace

void sample_stats::summarise() {
  count = item_seconds.size();
  if (item_seconds.empty()) {
    mean_seconds = cv = min_seconds = max_seconds = total_seconds = 0.0;
    return;
  }
  const double n = static_cast<double>(item_seconds.size());
  total_seconds = std::accumulate(item_seconds.begin(), item_seconds.end(), 0.0);
  mean_seconds = total_seconds / n;
  const auto [lo, hi] = std::minmax_element(item_seconds.begin(), item_seconds.end());
  min_seconds = *lo;
  max_seconds = *hi;
  // Sample standard deviation: a handful of items underestimates the spread with n in the denominator.
  cv = mean_seconds > 0.0 ? detail::sample_stddev(item_seconds, mean_seconds) / mean_seconds : 0.0;
}

void sample_stats::add_spread() {
  if (spread_seconds.empty() || item_seconds.empty()) return;
  std::vector<std::tuple<double, double, bool>> points;  // (position, seconds, one of the first items?)
  for (std::size_t i = 0; i < item_seconds.size(); ++i) points.emplace_back(static_cast<double>(i), item_seconds[i], true);
  for (std::size_t j = 0; j < spread_seconds.size(); ++j) {
    points.emplace_back(static_cast<double>(spread_positions[j]), spread_seconds[j], false);
  }
  const double head = static_cast<double>(count + failed);
  double last = 0.0;
  for (const auto& [x, y, first] : points) last = std::max(last, x);
  const double items = std::max({static_cast<double>(source_items), last + 1.0, head});
  // The first items stand for their own positions, the spread sample (one item per stratum) for the rest.
  const double head_mean = total_seconds / static_cast<double>(count);
  const double spread_mean =
      std::accumulate(spread_seconds.begin(), spread_seconds.end(), 0.0) / static_cast<double>(spread_seconds.size());
  mean_seconds = (head * head_mean + (items - head) * spread_mean) / items;
  for (const auto& [x, y, first] : points) {
    min_seconds = std::min(min_seconds, y);
    max_seconds = std::max(max_seconds, y);
  }
  // The spread of item times over the whole source: the spread sample is stratified, the first items are not.
  const bool stratified = spread_seconds.size() >= 4;
  const double deviation = stratified ? detail::sample_stddev(spread_seconds, spread_mean) : detail::sample_stddev(item_seconds, head_mean);
  cv = mean_seconds > 0.0 ? deviation / mean_seconds : 0.0;
  // The change of time along the source (position 0 at the first item, 1 at the last), robustly
  // fitted; a line through times that stay positive changes by at most twice its mean.
  for (auto& [x, y, first] : points) x /= std::max(1.0, items - 1.0);
  const std::optional<double> slope = median_slope(points);
  trend = slope && mean_seconds > 0.0 ? std::clamp(*slope / mean_seconds, -2.0, 2.0) : 0.0;
}

bool sample_stats::unreliable() const {
  constexpr std::size_t few = 8;
  constexpr double steep_trend = 0.5;
  constexpr double huge_cv = 1.5;
  return count + spread_seconds.size() < few || std::abs(trend) > steep_trend || cv > huge_cv;
}

namespace detail {

double sample_stddev(const std::vector<double>& values, double center) {
  if (values.size() < 2) return 0.0;
  double squares = 0.0;
  for (const double v : values) squares += (v - center) * (v - center);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

std::vector<std::size_t> spread_positions(std::size_t items, std::size_t most) {
  std::size_t strata = 1;
  while (strata * 2 <= most && strata * 2 * 2 <= items) strata *= 2;
  if (strata < 4) return {};
  unsigned bits = 0;
  while ((std::size_t{1} << bits) < strata) ++bits;
  std::vector<std::size_t> positions;
  positions.reserve(strata);
  for (std::size_t k = 0; k < strata; ++k) {
    std::size_t j = 0;  // k with its `bits` bits reversed
    for (unsigned b = 0; b < bits; ++b) j |= ((k >> b) & 1U) << (bits - 1 - b);
    const double middle = (static_cast<double>(j) + 0.5) * static_cast<double>(items) / static_cast<double>(strata);
    positions.push_back(std::min(items - 1, static_cast<std::size_t>(middle)));
  }
  return positions;
}

}  // namespace detail

namespace {

double clock_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// The thread ids of this process, from /proc/self/task.
std::vector<long> task_ids() {
  std::vector<long> ids;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return ids;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ids.push_back(std::strtol(entry->d_name, nullptr, 10));
  }
  ::closedir(dir);
  return ids;
}

/// Nanoseconds thread `tid` of this process has waited for a CPU; 0 if unknown (it may have exited).
unsigned long long task_run_delay_ns(long tid) {
  std::ifstream schedstat("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  unsigned long long on_cpu = 0;
  unsigned long long waiting = 0;
  return schedstat >> on_cpu >> waiting ? waiting : 0;
}

/// CPU seconds and peak resident kilobytes of the child processes this process has waited for.
std::pair<double, long> children_usage() {
  rusage usage{};
  if (::getrusage(RUSAGE_CHILDREN, &usage) != 0) return {0.0, 0};
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return {seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss};
}

}  // namespace

int process_threads() { return std::max(1, static_cast<int>(task_ids().size())); }

/// Watches every thread of the process while a call runs: how many run at once and how long they
/// wait for a CPU. It lives as long as its meter, so a call pays for no thread start; it looks every
/// watch_interval while a call runs and sleeps otherwise. Threads a call starts and joins are seen
/// only by looking; their waits count up to the last look.
class call_meter::watcher {
 public:
  watcher() : thread_([this] { watch(); }) {
    // Wait for the first look: the memory the watcher allocates (its stack, its malloc arena) is
    // then in place before any call's peak is measured.
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [this] { return started_; });
    ::pthread_getcpuclockid(thread_.native_handle(), &clock_);
  }
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;
  ~watcher() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  /// Takes the baseline of every thread before a call and starts watching.
  void begin() {
    const std::lock_guard lock(mutex_);
    last_delay_.clear();
    most_threads_ = 0;
    look();
    baseline_ = last_delay_;
    threads_before_ = most_threads_;
    cpu_before_ = clock_seconds(clock_);
    watching_ = true;
  }

  /// Stops watching after a call; returns the CPU waits of the threads other than `caller` (seconds).
  double end(long caller) {
    const std::lock_guard lock(mutex_);
    watching_ = false;
    look();
    unsigned long long waits = 0;
    for (const auto& [tid, delay] : last_delay_) {
      if (tid == caller) continue;
      const auto base = baseline_.find(tid);
      const unsigned long long start = base == baseline_.end() ? 0 : base->second;
      waits += delay > start ? delay - start : 0;
    }
    return static_cast<double>(waits) * 1e-9;
  }
  /// Most threads that ran at once during the last call beside those alive before it, plus the calling one.
  [[nodiscard]] int threads() const { return 1 + std::max(0, most_threads_ - threads_before_); }
  /// CPU time the watching thread used since begin(), to take out of the process's.
  [[nodiscard]] double cpu_seconds() const { return clock_seconds(clock_) - cpu_before_; }

 private:
  static constexpr auto watch_interval = std::chrono::milliseconds(2);

  void watch() {
    std::unique_lock lock(mutex_);
    tid_ = ::gettid();
    look();
    started_ = true;
    wake_.notify_one();
    while (!stopping_) {
      wake_.wait_for(lock, watch_interval);
      if (watching_) look();
    }
  }

  /// Reads every thread's wait for a CPU, but the watcher's own; the mutex is held.
  void look() {
    int count = 0;
    for (const long tid : task_ids()) {
      if (tid == tid_) continue;
      ++count;
      last_delay_[tid] = task_run_delay_ns(tid);
    }
    most_threads_ = std::max(most_threads_, count);
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  bool started_ = false;
  bool stopping_ = false;
  bool watching_ = false;
  long tid_ = -1;
  clockid_t clock_ = CLOCK_THREAD_CPUTIME_ID;
  double cpu_before_ = 0.0;
  std::map<long, unsigned long long> baseline_;
  std::map<long, unsigned long long> last_delay_;
  int threads_before_ = 1;
  int most_threads_ = 0;
  std::thread thread_;  // last: it starts once the members it uses exist
};

call_meter::call_meter() : watcher_(std::make_unique<watcher>()) {
  // The cheapest of a few empty calls timed as measure() times a call: the clocks' own cost.
  const std::function<void()> empty = [] {};
  double floor = 1.0;
  for (int i = 0; i < 16; ++i) {
    const double start = monotonic_seconds();
    empty();
    floor = std::min(floor, monotonic_seconds() - start);
  }
  clock_floor_ = std::max(0.0, floor);
}

call_meter::~call_meter() = default;

call_cost call_meter::measure(const std::function<void()>& call) {
  const bool peak_resettable = reset_peak_memory();
  const process_reading before = read_process();
  const double peak_before = peak_resettable ? static_cast<double>(peak_memory_bytes()) : 0.0;
  const auto [children_cpu_before, children_peak_before] = children_usage();
  watcher_->begin();
  // Clocks are read right around the call; /proc is read outside them.
  const long blocks_start = thread_voluntary_switches();
  const double delay_start = thread_run_delay_seconds();
  const double thread_cpu_start = thread_cpu_seconds();
  const double cpu_start = process_cpu_seconds();
  const double wall_start = monotonic_seconds();
  call();
  const double wall = std::max(0.0, monotonic_seconds() - wall_start - clock_floor_);
  const double cpu = process_cpu_seconds() - cpu_start;
  const double thread_cpu = thread_cpu_seconds() - thread_cpu_start;
  const double delay = thread_run_delay_seconds() - delay_start;
  const bool blocked = thread_voluntary_switches() != blocks_start;
  const double watcher_cpu = watcher_->cpu_seconds();
  const double other_waits = watcher_->end(::gettid());
  const auto [children_cpu_after, children_peak_after] = children_usage();
  const process_reading after = read_process();

  call_cost cost;
  cost.wall_seconds = wall;
  // On a busy machine a compute-bound call waits for a core: that wait is demand, not idleness.
  // The calling thread cannot have waited longer than the call took beyond its own CPU time; the
  // bound drops waits taken while the clocks themselves were read. The call's other threads add
  // their own waits, and the child processes it waited for their CPU time. A calling thread that
  // never blocked wanted a core all along, even where its CPU clock fell behind (time the
  // hypervisor stole from a virtual machine is on neither clock).
  const double demand = std::max(0.0, cpu - watcher_cpu) + std::clamp(delay, 0.0, std::max(0.0, wall - thread_cpu)) +
                        other_waits + std::max(0.0, children_cpu_after - children_cpu_before);
  cost.demand_seconds = blocked ? demand : std::max(demand, wall);
  // Threads the call ran at once, or left alive (a pool it started), count as threads inside it.
  cost.threads = std::max(watcher_->threads(), 1 + std::max(0, after.threads - before.threads));
  const double peak_after = static_cast<double>(peak_resettable ? peak_memory_bytes() : after.resident_bytes);
  const double base = peak_resettable ? std::min(peak_before, static_cast<double>(before.resident_bytes))
                                      : static_cast<double>(before.resident_bytes);
  const auto own_growth = static_cast<std::uint64_t>(std::max(0.0, peak_after - base));
  // The largest child waited for so far: it grew during this call only if the mark moved.
  const std::uint64_t child_peak =
      children_peak_after > children_peak_before ? static_cast<std::uint64_t>(children_peak_after) * 1024 : 0;
  cost.memory_bytes = std::max(own_growth, child_peak);
  return cost;
}

namespace detail {

void sample_accumulator::add_success(const call_cost& cost) {
  stats_.item_seconds.push_back(cost.wall_seconds);
  wall_ += cost.wall_seconds;
  demand_ += cost.demand_seconds;
  stats_.threads_inside = std::max(stats_.threads_inside, cost.threads);
  stats_.memory_per_call = std::max(stats_.memory_per_call, cost.memory_bytes);
}

void sample_accumulator::add_failure(std::size_t index, std::string message) {
  stats_.errors.push_back({index, std::move(message)});
}

void sample_accumulator::add_crash(std::size_t index, std::string message) {
  add_failure(index, std::move(message));
  ++stats_.crashed;
}

sample_stats sample_accumulator::finish(std::size_t items) {
  if (items == 0) {
    throw empty_source_error("the source is empty: there is nothing to sample or run; pass at least one item");
  }
  stats_.summarise();
  stats_.failed = stats_.errors.size();
  if (stats_.count == 0) {
    throw sample_error("the function threw on every sampled item (" + std::to_string(items) + " of them, positions 0.." +
                       std::to_string(items - 1) + "); first error, at item " +
                       std::to_string(stats_.errors.front().index) + ": " + stats_.errors.front().message);
  }
  // CPU clocks tick coarsely: below a millisecond of calls the ratio is noise, so assume one thread.
  constexpr double min_wall_for_ratio = 1e-3;
  stats_.cpu_per_wall = wall_ >= min_wall_for_ratio ? demand_ / wall_ : 1.0;
  stats_.threads_inside = std::max(stats_.threads_inside, static_cast<int>(std::lround(stats_.cpu_per_wall)));
  return stats_;
}

}  // namespace detail

double monotonic_seconds() { return clock_seconds(CLOCK_MONOTONIC); }

double wall_clock_seconds() { return clock_seconds(CLOCK_REALTIME); }

double process_cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

long thread_voluntary_switches() {
  rusage usage{};
  return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nvcsw : 0;
}

proc_stat parse_proc_stat(std::string_view line) {
  // The command name (field 2) sits in parentheses and may hold spaces and ')'; the fields after the
  // last ')' start at field 3.
  const auto close = line.rfind(')');
  if (close == std::string_view::npos) {
    throw input_error("/proc/self/stat line has no ')' closing the command name");
  }
  std::string_view rest = line.substr(close + 1);
  std::optional<long> threads;
  std::optional<std::uint64_t> rss_pages;
  for (int index = 3; index <= 24; ++index) {
    const auto start = rest.find_first_not_of(" \t\n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto field = rest.substr(0, rest.find_first_of(" \t\n"));
    rest.remove_prefix(field.size());
    if (index == 20) threads = text::parse_number<long>(field);
    if (index == 24) rss_pages = text::parse_number<std::uint64_t>(field);
  }
  if (!threads || *threads < 1 || *threads > std::numeric_limits<int>::max() || !rss_pages) {
    throw input_error("/proc/self/stat line has no readable num_threads (field 20) and rss (field 24)");
  }
  return proc_stat{static_cast<int>(*threads), *rss_pages};
}

std::uint64_t parse_vm_hwm(std::string_view status) {
  constexpr std::string_view key = "VmHWM:";
  for (std::size_t start = 0; start < status.size();) {
    const auto end = std::min(status.find('\n', start), status.size());
    std::string_view line = status.substr(start, end - start);
    start = end + 1;
    if (line.substr(0, key.size()) != key) continue;
    line.remove_prefix(key.size());
    const auto first = line.find_first_not_of(" \t");
    const auto last = line.find_last_not_of(" \t\r");
    line = first == std::string_view::npos ? std::string_view{} : line.substr(first, last - first + 1);
    // The kernel writes "kB" but means KiB.
    const std::string_view unit = " kB";
    if (line.size() > unit.size() && line.substr(line.size() - unit.size()) == unit) {
      line.remove_suffix(unit.size());
    }
    const auto kib = text::parse_number<std::uint64_t>(line);
    if (!kib || *kib > std::numeric_limits<std::uint64_t>::max() / 1024) {
      throw input_error("/proc/self/status VmHWM has the unreadable value '" + std::string(line) +
                        "'; expected a number of kB");
    }
    return *kib * 1024;
  }
  throw input_error("/proc/self/status has no VmHWM line");
}

process_reading read_process() {
  process_reading r;
  r.wall_seconds = monotonic_seconds();
  r.cpu_seconds = process_cpu_seconds();
  // The whole file: a command name may even hold a newline.
  if (const auto contents = read_small_file("/proc/self/stat")) {
    try {
      const proc_stat fields = parse_proc_stat(*contents);
      r.threads = fields.threads;
      r.resident_bytes = fields.rss_pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    } catch (const input_error&) {
      // An unreadable file leaves one thread and no resident size known.
    }
  }
  return r;
}

double thread_run_delay_seconds() {
  // schedstat: time on a CPU, time waiting for one, time slices (ns).
  std::ifstream schedstat("/proc/thread-self/schedstat");
  unsigned long long on_cpu = 0;
  unsigned long long waiting = 0;
  return schedstat >> on_cpu >> waiting ? static_cast<double>(waiting) * 1e-9 : 0.0;
}

bool reset_peak_memory() {
  // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

std::uint64_t peak_memory_bytes() {
  const auto status = read_small_file("/proc/self/status");
  try {
    return status ? parse_vm_hwm(*status) : 0;
  } catch (const input_error&) {
    return 0;  // Unknown, as when the file cannot be read.
  }
}

}  // namespace amorsize
