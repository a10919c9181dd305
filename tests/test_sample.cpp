// Sampling: what running the function on the first items measures, and how it reports failures.
#include <amorsize/detail/sample.hpp>
#include <amorsize/error.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/source.hpp>
#include <amorsize/stop.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

constexpr std::uint64_t mib = 1024 * 1024;

/// A source over 0, 1, ..., count - 1 that owns its items.
source<int> numbers(int count) {
  std::vector<int> items;
  for (int i = 0; i < count; ++i) items.push_back(i);
  return make_source(std::move(items));
}

/// Spins on the calling thread and one more for `duration` of wall time; returns 0 or 1 from the spin count.
int spin_on_two_threads(std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  std::atomic<std::uint64_t> spins{0};
  auto spin = [&] {
    while (std::chrono::steady_clock::now() < until) spins.fetch_add(1, std::memory_order_relaxed);
  };
  std::thread helper(spin);
  spin();
  helper.join();
  return static_cast<int>(spins.load() % 2);
}

/// Two spinning processes per core beside the test, until stop() or the end of the scope.
class busy_machine {
 public:
  busy_machine() {
    for (std::size_t i = 0; i < count_; ++i) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        std::atomic<std::uint64_t> spins{0};
        for (;;) spins.fetch_add(1, std::memory_order_relaxed);
      }
      children_.push_back(pid);
    }
  }
  busy_machine(const busy_machine&) = delete;
  busy_machine& operator=(const busy_machine&) = delete;
  ~busy_machine() { stop(); }
  /// Kills and reaps the spinning processes.
  void stop() {
    for (const pid_t pid : children_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    children_.clear();
  }
  /// Returns how many spinning processes were started.
  [[nodiscard]] std::size_t hogs() const { return count_; }

 private:
  std::size_t count_ = 2 * std::max(1U, std::thread::hardware_concurrency());
  std::vector<pid_t> children_;
};

}  // namespace

TEST_CASE("run_sample measures a function that sleeps about 50 ms", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  // 50 ms, so the wake-up delays of a loaded machine (milliseconds) stay a small share.
  auto sleep_50ms = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return x;
  };
  auto src = numbers(10);
  const auto out = detail::sample(sleep_50ms, src, 6, in_child);
  const sample_stats& s = out.stats;
  CHECK(s.count == 6);
  CHECK(s.failed == 0);
  CHECK(s.item_seconds.size() == 6);
  CHECK(s.mean_seconds >= 50e-3);
  CHECK(s.mean_seconds <= 500e-3);
  CHECK(s.min_seconds >= 50e-3);  // sleep_for never wakes early
  CHECK(s.min_seconds <= s.mean_seconds);
  CHECK(s.max_seconds >= s.mean_seconds);
  CHECK(s.total_seconds == Approx(6 * s.mean_seconds));
  CHECK(s.cv >= 0.0);
  CHECK(s.cv < 0.5);               // constant work: little spread
  CHECK(s.cpu_per_wall < 0.5);     // sleeping uses hardly any CPU, nor waits for one
  CHECK(s.input_bytes > 0.0);
  CHECK(s.result_bytes > 0.0);
  CHECK(s.serialize_seconds > 0.0);
  // The sampled items and their results come back in order; the rest stay in the source.
  CHECK(out.items == std::vector<int>{0, 1, 2, 3, 4, 5});
  REQUIRE(out.results.size() == 6);
  for (int i = 0; i < 6; ++i) CHECK(out.results[static_cast<std::size_t>(i)] == std::optional<int>(i));
  CHECK(src.size() == std::optional<std::size_t>(4));
  CHECK(src.next() == std::optional<int>(6));
}

TEST_CASE("run_sample sees spread when one item costs far more than the rest", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  // Item i sleeps 2 ms, the last 100 ms: a CV near 1.5. The spread is wide so that a late wake-up
  // on a busy machine (sleep never wakes early) cannot hide it.
  auto one_slow = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(x == 4 ? 100 : 2));
    return x;
  };
  auto src = numbers(5);
  const sample_stats s = detail::sample(one_slow, src, 5, in_child).stats;
  CHECK(s.cv > 0.5);
  CHECK(s.max_seconds > 2.0 * s.min_seconds);
  CHECK(s.min_seconds >= 1.5e-3);
  CHECK(s.max_seconds >= 99e-3);
}

TEST_CASE("run_sample stops at the end of a short source", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto twice = [](const int& x) { return 2 * x; };
  auto src = numbers(3);
  const auto out = detail::sample(twice, src, 10, in_child);
  CHECK(out.stats.count == 3);
  CHECK(out.items == std::vector<int>{0, 1, 2});
  REQUIRE(out.results.size() == 3);
  CHECK(out.results[2] == std::optional<int>(4));
  CHECK_FALSE(src.next().has_value());
}

TEST_CASE("a stop requested while sampling starts no new sampled call", "[sample][stop]") {
  stop_request stop;
  SECTION("a stop before the first call: nothing runs, and planning cannot go on") {
    const bool in_child = GENERATE(false, true);
    stop.drain(10.0);
    auto twice = [](const int& x) { return 2 * x; };
    auto src = numbers(10);
    CHECK_THROWS_AS(detail::sample(twice, src, 5, in_child, {}, detail::spread_sample_most, &stop), stopped_error);
    CHECK(src.next() == std::optional<int>(0));  // no item was taken
  }
  SECTION("a stop during a call: that call finishes, keeps its result, and no other starts (no spread sample either)") {
    auto drains_on_one = [&stop](const int& x) {
      if (x == 1) stop.drain(10.0);
      return 2 * x;
    };
    auto src = numbers(100);
    const auto out = detail::sample(drains_on_one, src, 5, false, {}, detail::spread_sample_most, &stop);
    CHECK(out.items == std::vector<int>{0, 1});
    REQUIRE(out.results.size() == 2);
    CHECK(out.results[1] == std::optional<int>(2));
    CHECK(out.stats.count == 2);
    CHECK(out.stats.spread_seconds.empty());
    CHECK(src.next() == std::optional<int>(2));
  }
}

namespace {
stop_request* alarm_stop = nullptr;  // what the SIGALRM handler of the next test triggers
}  // namespace

// A signal handler triggers the request, as in amorsize-run: the forked sampler runs 30 s items.
TEST_CASE("abandoning a stop while sampling kills the forked sampler and its call", "[sample][stop]") {
  stop_request stop;
  alarm_stop = &stop;
  struct sigaction action {};
  action.sa_handler = [](int) { alarm_stop->abandon(); };
  sigemptyset(&action.sa_mask);
  REQUIRE(sigaction(SIGALRM, &action, nullptr) == 0);
  alarm(1);
  auto slow = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return x;
  };
  auto src = numbers(10);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(detail::sample(slow, src, 5, true, {}, detail::spread_sample_most, &stop), stopped_error);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  alarm(0);
  signal(SIGALRM, SIG_DFL);
  alarm_stop = nullptr;
}

// Needs two free cores, which other processes on a small machine may hold: up to three tries,
// and when all fail the same spin is timed without amorsize to tell a busy machine from a bug.
TEST_CASE("run_sample sees a function that computes on two threads", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto spin_two_threads = [](const int& x) { return x + spin_on_two_threads(std::chrono::milliseconds(20)); };
  // The same spin timed directly, just before and after each sample: whether two cores were free then.
  const auto direct_ratio = [&spin_two_threads] {
    const double cpu_start = process_cpu_seconds();
    const double wall_start = monotonic_seconds();
    for (int i = 0; i < 3; ++i) (void)spin_two_threads(i);
    return (process_cpu_seconds() - cpu_start) / (monotonic_seconds() - wall_start);
  };
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto src = numbers(3);
    const double before = direct_ratio();
    const sample_stats s = detail::sample(spin_two_threads, src, 3, in_child).stats;
    const double direct = std::min(before, direct_ratio());
    // Threads joined inside the call are seen through CPU / wall only, rounded to a count.
    CHECK(s.threads_inside >= static_cast<int>(std::lround(s.cpu_per_wall)));
    CHECK(s.cpu_per_wall < 2.5);  // two threads cannot use more than two cores
    if (s.cpu_per_wall >= 1.5 || (std::thread::hardware_concurrency() >= 2 && direct >= 1.8)) {
      INFO("CPU / wall " << s.cpu_per_wall << " sampled, " << direct << " timed directly; threads inside "
                         << s.threads_inside);
      CHECK(s.cpu_per_wall >= 1.5);
      CHECK(s.threads_inside >= 2);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  WARN("two cores were never free (the same spin timed directly stayed under 1.8 CPU / wall); skipped the thread "
       "checks");
}

// On a machine busier than its cores, a one-threaded call waits for a CPU between its own time
// slices: that wait is counted as demand, but never as more than the call's own wall time, so the
// call is not mistaken for one that runs threads inside.
TEST_CASE("run_sample on a busy machine still sees a one-threaded function", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  busy_machine busy;
  auto spin_one_ms = [](const int& x) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    std::uint64_t spins = 0;
    while (std::chrono::steady_clock::now() < until) ++spins;
    return x + static_cast<int>(spins % 2);
  };
  auto src = numbers(20);
  const sample_stats s = detail::sample(spin_one_ms, src, 20, in_child).stats;
  busy.stop();
  INFO("CPU / wall " << s.cpu_per_wall << " with " << busy.hogs() << " spinning processes beside it");
  CHECK(s.cpu_per_wall < 1.2);
  CHECK(s.cpu_per_wall > 0.9);  // it never blocks: it wanted a core the whole time
  CHECK(s.threads_inside == 1);
}

// A pool the function leaves running counts as threads inside it, even while they sleep.
TEST_CASE("run_sample counts threads the function leaves alive", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  auto start_pool = [&](const int& x) {
    if (pool.empty()) {
      for (int i = 0; i < 3; ++i) {
        pool.emplace_back([&stop] {
          while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
      }
    }
    return x;
  };
  auto src = numbers(3);
  const sample_stats s = detail::sample(start_pool, src, 3, in_child).stats;
  stop = true;
  for (auto& t : pool) t.join();
  CHECK(s.threads_inside >= 4);
}

TEST_CASE("run_sample measures the serialized size of large results", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto one_mib = [](const int& x) { return std::vector<std::uint8_t>(mib, static_cast<std::uint8_t>(x)); };
  auto src = numbers(3);
  const sample_stats s = detail::sample(one_mib, src, 2, in_child).stats;
  CHECK(s.result_bytes >= static_cast<double>(mib));
  CHECK(s.result_bytes < 1.1 * static_cast<double>(mib));
  CHECK(s.input_bytes < 64.0);  // an int stays small
}

TEST_CASE("run_sample measures the memory a call touches", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto touch_64mib = [](const int& x) {
    constexpr std::size_t size = 64 * mib;
    std::vector<std::uint8_t> block(size);
    for (std::size_t i = 0; i < size; i += 4096) block[i] = static_cast<std::uint8_t>(i / 4096 + static_cast<std::size_t>(x));
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < size; i += 4096) sum += block[i];
    return sum;
  };
  auto src = numbers(2);
  const sample_stats s = detail::sample(touch_64mib, src, 2, in_child).stats;
  INFO("memory per call " << s.memory_per_call);
  CHECK(s.memory_per_call >= 32 * mib);
  CHECK(s.memory_per_call < 1024 * mib);
}

TEST_CASE("run_sample records an item that throws and keeps the others", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto throw_on_two = [](const int& x) {
    if (x == 2) throw std::runtime_error("item two is bad");
    return x * 10;
  };
  auto src = numbers(5);
  const auto out = detail::sample(throw_on_two, src, 5, in_child);
  CHECK(out.stats.count == 4);
  CHECK(out.stats.failed == 1);
  REQUIRE(out.stats.errors.size() == 1);
  CHECK(out.stats.errors[0].index == 2);
  CHECK(out.stats.errors[0].message == "item two is bad");
  REQUIRE(out.results.size() == 5);
  CHECK_FALSE(out.results[2].has_value());
  CHECK(out.results[0] == std::optional<int>(0));
  CHECK(out.results[1] == std::optional<int>(10));
  CHECK(out.results[3] == std::optional<int>(30));
  CHECK(out.results[4] == std::optional<int>(40));
  CHECK(out.items == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(out.stats.item_seconds.size() == 4);
}

TEST_CASE("run_sample reports something thrown that is not a std::exception", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto throw_int = [](const int& x) {
    if (x == 0) throw 7;
    return x;
  };
  auto src = numbers(2);
  const auto out = detail::sample(throw_int, src, 2, in_child);
  REQUIRE(out.stats.errors.size() == 1);
  CHECK(out.stats.errors[0].index == 0);
  CHECK_THAT(out.stats.errors[0].message, Contains("not a std::exception"));
}

TEST_CASE("run_sample throws sample_error when every call throws", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto always_throw = [](const int& x) -> int { throw std::invalid_argument("no good: " + std::to_string(x)); };
  auto src = numbers(10);
  try {
    (void)detail::sample(always_throw, src, 4, in_child);
    FAIL("expected sample_error");
  } catch (const sample_error& e) {
    const std::string what = e.what();
    CHECK(e.code() == exit_code::sample_failed);
    CHECK_THAT(what, Contains("0..3"));
    CHECK_THAT(what, Contains("4 of them"));
    CHECK_THAT(what, Contains("no good: 0"));
  }
}

TEST_CASE("run_sample throws empty_source_error on an empty source", "[sample]") {
  const bool in_child = GENERATE(false, true);  // in this process, and in a forked sampler
  auto identity = [](const int& x) { return x; };
  source<int> empty;
  CHECK_THROWS_AS(detail::sample(identity, empty, 5, in_child), empty_source_error);
  auto ended = make_source([]() -> std::optional<int> { return std::nullopt; });
  try {
    (void)detail::sample(identity, ended, 5, in_child);
    FAIL("expected empty_source_error");
  } catch (const empty_source_error& e) {
    CHECK(e.code() == exit_code::empty_source);
  }
}

// The sampled items are put back: the data the caller runs on is the whole stream, once, in order.
TEST_CASE("optimize over a generator hands back every item exactly once, in order", "[sample]") {
  auto generator = [n = 0]() mutable -> std::optional<int> {
    if (n == 20) return std::nullopt;
    return n++;
  };
  auto add_one = [](const int& x) { return x + 1; };
  auto result = optimize(add_one, generator);
  REQUIRE(result.sampled_results.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(result.sampled_results[static_cast<std::size_t>(i)] == std::optional<int>(i + 1));
  CHECK(result.profile.sample_size == 5);
  std::vector<int> all;
  while (auto item = result.data.next()) all.push_back(*item);
  std::vector<int> expected(20);
  for (int i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
  CHECK(all == expected);
}

// A sampled item that threw is reported, warned about, and still handed back with the data.
TEST_CASE("optimize reports a sampled item that threw and keeps it in the data", "[sample]") {
  auto throw_on_two = [](const int& x) {
    if (x == 2) throw std::runtime_error("item two is bad");
    return x;
  };
  auto result = optimize(throw_on_two, numbers(8));
  REQUIRE(result.sample_errors.size() == 1);
  CHECK(result.sample_errors[0].index == 2);
  CHECK(result.sample_errors[0].message == "item two is bad");
  REQUIRE(result.sampled_results.size() == 5);
  CHECK_FALSE(result.sampled_results[2].has_value());
  CHECK(result.sampled_results[3] == std::optional<int>(3));
  CHECK(result.profile.sample_size == 4);
  // The warning names the item and carries its own message.
  const bool warned = std::any_of(result.warnings.begin(), result.warnings.end(), [](const plan_warning& w) {
    return w.kind == warning_kind::item_threw_in_sample && w.message.find("Item 2 ") != std::string::npos &&
           w.message.find("item two is bad") != std::string::npos;
  });
  CHECK(warned);
  std::vector<int> all;
  while (auto item = result.data.next()) all.push_back(*item);
  CHECK(all == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

// Errors raised while sampling inside the planner reach the caller with their own type.
TEST_CASE("optimize passes sampling errors through with their type", "[sample]") {
  auto always_throw = [](const int&) -> int { throw std::runtime_error("broken"); };
  CHECK_THROWS_AS(optimize(always_throw, numbers(3)), sample_error);
  CHECK_THROWS_WITH(optimize(always_throw, numbers(3)), Contains("broken"));
  auto identity = [](const int& x) { return x; };
  CHECK_THROWS_AS(optimize(identity, std::vector<int>{}), empty_source_error);
  CHECK_THROWS_AS(optimize_streaming(identity, std::vector<int>{}), empty_source_error);
}

TEST_CASE("optimize rejects a sample size of 0", "[sample]") {
  auto identity = [](const int& x) { return x; };
  const std::vector<int> values{1, 2, 3};
  optimize_options options;
  options.sample_size = 0;
  CHECK_THROWS_AS(optimize(identity, values, options), input_error);
  try {
    validate(options);
    FAIL("expected input_error");
  } catch (const input_error& e) {
    CHECK(e.code() == exit_code::bad_input);
    CHECK_THAT(std::string(e.what()), Contains("sample size"));
  }
}

TEST_CASE("sample_stats::summarise computes mean, sample CV, min, max and total", "[sample]") {
  sample_stats s;
  s.item_seconds = {1.0, 2.0, 3.0, 4.0};
  s.summarise();
  CHECK(s.count == 4);
  CHECK(s.mean_seconds == Approx(2.5));
  CHECK(s.total_seconds == Approx(10.0));
  CHECK(s.min_seconds == Approx(1.0));
  CHECK(s.max_seconds == Approx(4.0));
  // Sample standard deviation (n - 1): sqrt(5 / 3) / 2.5; the population one would give 0.447.
  CHECK(s.cv == Approx(0.516398).epsilon(1e-5));

  sample_stats one;
  one.item_seconds = {0.25};
  one.summarise();
  CHECK(one.count == 1);
  CHECK(one.mean_seconds == Approx(0.25));
  CHECK(one.cv == 0.0);

  sample_stats none;
  none.mean_seconds = 3.0;  // stale values are cleared
  none.cv = 1.0;
  none.summarise();
  CHECK(none.count == 0);
  CHECK(none.mean_seconds == 0.0);
  CHECK(none.cv == 0.0);
  CHECK(none.total_seconds == 0.0);
}

TEST_CASE("read_process and peak_memory_bytes read this process sensibly", "[sample]") {
  const process_reading before = read_process();
  CHECK(before.threads >= 1);
  CHECK(before.resident_bytes > mib);
  CHECK(before.cpu_seconds > 0.0);
  CHECK(process_cpu_seconds() >= before.cpu_seconds);
  CHECK(peak_memory_bytes() >= before.resident_bytes);

  // A live thread shows in the thread count.
  std::atomic<bool> stop{false};
  std::thread sleeper([&stop] {
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  const process_reading during = read_process();
  stop = true;
  sleeper.join();
  CHECK(during.threads >= before.threads + 1);
  CHECK(during.wall_seconds >= before.wall_seconds);

  // After a reset, the peak follows memory the process touches.
  if (reset_peak_memory()) {
    const std::uint64_t base = peak_memory_bytes();
    std::vector<std::uint8_t> block(32 * mib, 1);
    for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<std::uint8_t>(i);
    CHECK(read_process().resident_bytes >= 16 * mib);
    CHECK(peak_memory_bytes() >= base + 16 * mib);
  } else {
    WARN("the kernel refused to reset the peak RSS; skipped the peak check");
  }
}

// The root runs none of the user's code while planning: a call that kills its process takes the
// sampler with it, not the caller, and costs only its own item.
TEST_CASE("optimize survives a function that crashes its process on a sampled item", "[sample]") {
  auto crash_on_two = [](const int& x) {
    if (x == 2) raise(SIGKILL);
    return x * 10;
  };
  const auto result = optimize(crash_on_two, numbers(40));
  REQUIRE(result.sampled_results.size() == 5);
  CHECK_FALSE(result.sampled_results[2].has_value());
  CHECK(result.sampled_results[3] == std::optional<int>(30));
  REQUIRE(result.sample_errors.size() == 1);
  CHECK(result.sample_errors[0].index == 2);
  CHECK_THAT(result.sample_errors[0].message, Contains("died") && Contains("signal 9"));
}

TEST_CASE("an item of the spread sample that crashes the sampler makes the plan use worker processes", "[sample]") {
  // Large results would make threads the choice (moving them between processes costs), but the items
  // of the second half crash their process: only the spread sample reaches them.
  auto crash_late = [](const int& x) {
    if (x >= 500) raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return std::string(std::size_t{1} << 20, 'x');
  };
  optimize_options options;
  options.workers_per_node = 2;  // parallel even when a busy machine would make the plan serial
  const auto result = optimize(crash_late, numbers(1000), options);
  INFO(result.reason);
  CHECK(result.sample_errors.empty());  // the first items are fine; the run reports the others
  CHECK(result.backend == backend_kind::processes);
  CHECK_THAT(result.reason, Contains("crashed the sampler"));
}

// A call that shells out does its work in child processes: their CPU time and memory are the call's.
TEST_CASE("sampling counts the CPU and memory of the child processes a call waits for", "[sample]") {
  const bool in_child = GENERATE(false, true);
  auto compress = [](const int& x) {
    const int status = std::system("head -c 40000000 /dev/zero | gzip -6 > /dev/null");
    return x + status;
  };
  // The same command timed directly: its children's CPU over wall time, as free cores allow now.
  const auto direct_ratio = [&compress] {
    rusage before{};
    rusage after{};
    ::getrusage(RUSAGE_CHILDREN, &before);
    const double wall_start = monotonic_seconds();
    (void)compress(0);
    const double wall = monotonic_seconds() - wall_start;
    ::getrusage(RUSAGE_CHILDREN, &after);
    const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
    return (seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)) / wall;
  };
  auto src = numbers(3);
  const double direct_before = direct_ratio();
  const sample_stats s = detail::sample(compress, src, 2, in_child).stats;
  const double direct = std::max(direct_before, direct_ratio());
  INFO("CPU / wall " << s.cpu_per_wall << " sampled, " << direct << " timed directly; memory per call "
                     << s.memory_per_call);
  // gzip computes the whole time; the call itself only waits. A busy machine slows both alike.
  CHECK(s.cpu_per_wall > 0.6 * std::min(1.0, direct));
  CHECK(s.cpu_per_wall < 1.5);
  if (in_child) CHECK(s.memory_per_call >= 512 * 1024);  // a fresh sampler has waited for no other child
}

// On a busy machine a call's threads wait for cores as the calling one does; and threads started
// and joined inside the call are seen while they run, whatever the clocks say.
TEST_CASE("sampling sees the threads of a call on a busy machine", "[sample]") {
  const bool in_child = GENERATE(false, true);
  busy_machine busy;
  auto spin_two_threads = [](const int& x) { return x + spin_on_two_threads(std::chrono::milliseconds(50)); };
  auto src = numbers(4);
  const sample_stats s = detail::sample(spin_two_threads, src, 4, in_child).stats;
  busy.stop();
  INFO("CPU / wall " << s.cpu_per_wall << ", threads " << s.threads_inside << " with " << busy.hogs() << " hogs");
  CHECK(s.threads_inside >= 2);
  CHECK(s.cpu_per_wall > 1.2);  // both threads wanted a core the whole time
  CHECK(s.cpu_per_wall < 2.5);
}

TEST_CASE("a source that throws while sampled is the source's error, its own exception nested", "[sample]") {
  const bool in_child = GENERATE(false, true);
  auto identity = [](const int& x) { return x; };
  auto throwing = make_source([n = 0]() mutable -> std::optional<int> {
    if (n == 3) throw std::domain_error("disk gone");
    return n++;
  });
  try {
    (void)detail::sample(identity, throwing, 5, in_child);
    FAIL("expected source_error");
  } catch (const source_error& e) {
    CHECK(e.code() == exit_code::source_failed);
    CHECK_THAT(std::string(e.what()), Contains("item 3") && Contains("disk gone"));
    CHECK_THROWS_AS(std::rethrow_if_nested(e), std::domain_error);
  }
}

TEST_CASE("optimize passes a throwing source's error through with its code and original", "[sample]") {
  auto identity = [](const int& x) { return x; };
  auto throwing = [n = 0]() mutable -> std::optional<int> {
    if (n == 1) throw std::domain_error("disk gone");
    return n++;
  };
  try {
    (void)optimize(identity, throwing);
    FAIL("expected source_error");
  } catch (const source_error& e) {
    CHECK(e.code() == exit_code::source_failed);
    CHECK_THROWS_AS(std::rethrow_if_nested(e), std::domain_error);
  }
}

// Sampled results are kept for the run: past a budget, sampling stops rather than hold several
// huge results, and planning holds about one result at a time beyond those it keeps.
TEST_CASE("sampling huge results stops early and keeps the root near one result's size", "[sample]") {
  const bool in_child = GENERATE(false, true);
  constexpr std::size_t size = 40 * mib;
  auto huge = [](const int& x) { return std::vector<std::uint8_t>(size, static_cast<std::uint8_t>(x)); };
  auto src = numbers(10);
  REQUIRE(reset_peak_memory());
  const std::uint64_t before = read_process().resident_bytes;
  const auto out = detail::sample(huge, src, 5, in_child);
  const std::uint64_t growth = peak_memory_bytes() - std::min(before, peak_memory_bytes());
  INFO("root peak growth " << growth / mib << " MiB for results of " << size / mib << " MiB");
  CHECK(out.stats.cut_for_memory);
  CHECK(out.stats.count == 2);  // 80 MiB kept passes the 64 MiB budget
  CHECK(out.items.size() == 2);
  CHECK(out.stats.result_bytes >= static_cast<double>(size));
  // Two kept results, and at most two more in flight (the bytes and the copy being read or measured);
  // ThreadSanitizer's shadow memory adds about four times what the program touches.
#if defined(__SANITIZE_THREAD__)
  constexpr std::size_t shadow_factor = 5;
#else
  constexpr std::size_t shadow_factor = 1;
#endif
  CHECK(growth < 5 * size * shadow_factor);
}
