#include <amorsize/sample.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

namespace amorsize {

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
  double squares = 0.0;
  for (double s : item_seconds) squares += (s - mean_seconds) * (s - mean_seconds);
  // Sample standard deviation: a handful of items underestimates the spread with n in the denominator.
  const double stddev = n > 1.0 ? std::sqrt(squares / (n - 1.0)) : 0.0;
  cv = mean_seconds > 0.0 ? stddev / mean_seconds : 0.0;
}

namespace {

double clock_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

double monotonic_seconds() { return clock_seconds(CLOCK_MONOTONIC); }

double process_cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

long thread_voluntary_switches() {
  rusage usage{};
  return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nvcsw : 0;
}

process_reading read_process() {
  process_reading r;
  r.wall_seconds = monotonic_seconds();
  r.cpu_seconds = process_cpu_seconds();
  // /proc/self/stat: fields after the command name (which may hold spaces) start at field 3.
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields(line.substr(close + 2));
      std::string field;
      long threads = 1;
      long rss_pages = 0;
      for (int index = 3; fields >> field; ++index) {
        if (index == 20) threads = std::stol(field);
        if (index == 24) {
          rss_pages = std::stol(field);
          break;
        }
      }
      r.threads = static_cast<int>(threads);
      r.resident_bytes = static_cast<std::uint64_t>(rss_pages) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
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
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

}  // namespace amorsize
