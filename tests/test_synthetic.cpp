// Tests of the synthetic job: deterministic durations, their statistics, validation, work and results.

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <initializer_list>
#include <limits>
#include <numbers>
#include <string>
#include <set>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "amorsize/error.hpp"
#include "jobs/synthetic.hpp"

using namespace amorsize::jobs;
using Catch::Matchers::Contains;

namespace {

struct moments {
  double mean = 0.0;
  double cv = 0.0;
};

// Mean and coefficient of variation (population standard deviation / mean) of items 0..n-1.
moments item_moments(const synthetic_params& p, std::uint64_t n) {
  double sum = 0.0;
  for (std::uint64_t i = 0; i < n; ++i) sum += item_seconds(p, i);
  const double mean = sum / static_cast<double>(n);
  double sq = 0.0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const double d = item_seconds(p, i) - mean;
    sq += d * d;
  }
  return {mean, std::sqrt(sq / static_cast<double>(n)) / mean};
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

struct timing {
  double wall = 0.0;
  double cpu = 0.0;
};

timing time_item(const synthetic_params& p, std::uint64_t index) {
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  const auto result = run_item(p, index);
  const auto t1 = std::chrono::steady_clock::now();
  const double cpu1 = process_cpu_seconds();
  CHECK(result.size() == p.result_bytes);
  return {std::chrono::duration<double>(t1 - t0).count(), cpu1 - cpu0};
}

// A plain busy loop on `threads` threads for `seconds`, timed like time_item: what spinning threads can get now.
timing time_reference_spin(int threads, double seconds) {
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(seconds));
  const auto spin = [deadline] {
    while (std::chrono::steady_clock::now() < deadline) {
    }
  };
  {
    std::vector<std::jthread> extra;
    for (int t = 1; t < threads; ++t) extra.emplace_back(spin);
    spin();
  }
  const auto t1 = std::chrono::steady_clock::now();
  return {std::chrono::duration<double>(t1 - t0).count(), process_cpu_seconds() - cpu0};
}

struct thread_counts {
  int total = 0;     // threads of this process other than the calling one
  int runnable = 0;  // of those, in state R (running or waiting for a CPU)
};

// Returns the ids of this process's threads.
std::set<std::string> thread_ids() {
  std::set<std::string> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ids.insert(entry.path().filename());
  return ids;
}

// Counts this process's threads other than the calling one and those in `ignored`, from /proc/self/task/*/stat.
thread_counts other_threads(const std::set<std::string>& ignored = {}) {
  thread_counts counts;
  const std::string self = std::to_string(static_cast<long>(::gettid()));
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    if (entry.path().filename() == self || ignored.count(entry.path().filename()) != 0) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;  // the thread just ended
    const auto paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size()) continue;
    ++counts.total;
    if (line[paren + 2] == 'R') ++counts.runnable;
  }
  return counts;
}

synthetic_params make(distribution d, double cv, std::uint64_t items = 20000) {
  synthetic_params p;
  p.dist = d;
  p.cv = cv;
  p.items = items;
  return p;
}

constexpr std::uint64_t n_samples = 20000;

}  // namespace

TEST_CASE("synthetic: durations are deterministic and independent of call order", "[synthetic]") {
  for (const auto d : {distribution::constant, distribution::uniform, distribution::lognormal, distribution::pareto,
                       distribution::increasing, distribution::decreasing}) {
    synthetic_params a = make(d, d == distribution::constant ? 0.0 : 0.5);
    const synthetic_params b = a;  // a second, independent copy
    validate(a);
    std::vector<double> forward;
    for (std::uint64_t i = 0; i < 100; ++i) forward.push_back(item_seconds(a, i));
    for (std::uint64_t i = 100; i-- > 0;) {
      REQUIRE(item_seconds(b, i) == forward[i]);
      REQUIRE(item_seconds(a, i) == forward[i]);
    }
    a.seed = 43;  // another seed changes random shapes only
    if (d == distribution::uniform || d == distribution::lognormal || d == distribution::pareto) {
      int same = 0;
      for (std::uint64_t i = 0; i < 100; ++i) same += item_seconds(a, i) == forward[i] ? 1 : 0;
      CHECK(same == 0);
    }
  }
}

TEST_CASE("synthetic: constant gives the mean for every item", "[synthetic]") {
  synthetic_params p;
  p.mean_ms = 3.5;
  validate(p);
  for (const std::uint64_t i : {0, 1, 999, 5000}) CHECK(item_seconds(p, i) == Approx(0.0035));
}

TEST_CASE("synthetic: uniform has the asked mean and cv and stays in range", "[synthetic]") {
  const auto p = make(distribution::uniform, 0.5);
  validate(p);
  const auto mo = item_moments(p, n_samples);
  INFO("uniform mean " << mo.mean * 1e3 << " ms, cv " << mo.cv);
  CHECK(mo.mean == Approx(0.010).epsilon(0.01));
  CHECK(mo.cv == Approx(0.5).epsilon(0.02));
  const double half_width = std::numbers::sqrt3 * 0.5 * 0.010;
  for (std::uint64_t i = 0; i < n_samples; ++i) {
    const double s = item_seconds(p, i);
    REQUIRE(s >= 0.010 - half_width);
    REQUIRE(s <= 0.010 + half_width);
  }
  // At the largest allowed cv every duration is still >= 0.
  const auto edge = make(distribution::uniform, 1.0 / std::numbers::sqrt3);
  REQUIRE_NOTHROW(validate(edge));
  for (std::uint64_t i = 0; i < 2000; ++i) REQUIRE(item_seconds(edge, i) >= 0.0);
}

TEST_CASE("synthetic: lognormal has the asked mean and cv", "[synthetic]") {
  const auto p = make(distribution::lognormal, 1.0);
  validate(p);
  const auto mo = item_moments(p, n_samples);
  INFO("lognormal mean " << mo.mean * 1e3 << " ms, cv " << mo.cv);
  CHECK(mo.mean == Approx(0.010).epsilon(0.03));
  CHECK(mo.cv == Approx(1.0).epsilon(0.05));
  // The logs are normal with sigma^2 = ln(1 + cv^2) and mu = ln(mean) - sigma^2/2.
  const double sigma2 = std::log(2.0);
  double sum = 0.0;
  double sq = 0.0;
  for (std::uint64_t i = 0; i < n_samples; ++i) {
    const double l = std::log(item_seconds(p, i));
    sum += l;
    sq += l * l;
  }
  const double mu_hat = sum / n_samples;
  const double var_hat = sq / n_samples - mu_hat * mu_hat;
  CHECK(mu_hat == Approx(std::log(0.010) - sigma2 / 2).margin(0.02));
  CHECK(var_hat == Approx(sigma2).epsilon(0.03));
  // cv 0 degenerates to the constant mean.
  const auto flat = make(distribution::lognormal, 0.0);
  REQUIRE_NOTHROW(validate(flat));
  CHECK(item_seconds(flat, 7) == Approx(0.010));
}

TEST_CASE("synthetic: pareto has the asked mean and shape", "[synthetic]") {
  const double c = 1.5;
  const auto p = make(distribution::pareto, c);
  validate(p);
  const double a = 1.0 + std::sqrt(1.0 + 1.0 / (c * c));
  const double scale = 0.010 * (a - 1.0) / a;
  const auto mo = item_moments(p, n_samples);

  // The sample cv of a Pareto with shape ~2.2 (infinite fourth moment) converges very slowly and is
  // usually well below the true cv at this sample size, so the cv is checked through the shape,
  // estimated by maximum likelihood (which converges like 1/sqrt(n)): cv = 1/sqrt(a(a-2)).
  double log_sum = 0.0;
  double min_x = std::numeric_limits<double>::infinity();
  for (std::uint64_t i = 0; i < n_samples; ++i) {
    const double x = item_seconds(p, i);
    min_x = std::min(min_x, x);
    log_sum += std::log(x / scale);
  }
  const double a_hat = n_samples / log_sum;
  const double cv_hat = 1.0 / std::sqrt(a_hat * (a_hat - 2.0));
  INFO("pareto mean " << mo.mean * 1e3 << " ms, sample cv " << mo.cv << ", shape " << a_hat << " (true " << a
                      << "), cv from shape " << cv_hat);
  CHECK(mo.mean == Approx(0.010).epsilon(0.05));
  CHECK(min_x >= scale * (1 - 1e-12));
  CHECK(a_hat == Approx(a).epsilon(0.03));
  CHECK(cv_hat == Approx(c).epsilon(0.15));
  CHECK(mo.cv > 0.6 * c);  // loose: see above
  CHECK(mo.cv < 1.15 * c);

  // Kolmogorov-Smirnov distance to F(x) = 1 - (scale/x)^a.
  std::vector<double> xs;
  for (std::uint64_t i = 0; i < n_samples; ++i) xs.push_back(item_seconds(p, i));
  std::sort(xs.begin(), xs.end());
  double ks = 0.0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const double f = 1.0 - std::pow(scale / xs[k], a);
    ks = std::max({ks, std::abs(f - static_cast<double>(k) / n_samples),
                   std::abs(f - static_cast<double>(k + 1) / n_samples)});
  }
  INFO("KS distance " << ks);
  CHECK(ks < 1.95 / std::sqrt(static_cast<double>(n_samples)));  // 0.1% critical value
}

TEST_CASE("synthetic: increasing and decreasing ramps have the exact mean and are monotone", "[synthetic]") {
  const double c = 0.5;
  const auto inc = make(distribution::increasing, c);
  const auto dec = make(distribution::decreasing, c);
  validate(inc);
  validate(dec);
  const auto mi = item_moments(inc, n_samples);
  const auto md = item_moments(dec, n_samples);
  INFO("increasing mean " << mi.mean * 1e3 << " ms cv " << mi.cv << "; decreasing mean " << md.mean * 1e3
                          << " ms cv " << md.cv);
  CHECK(mi.mean == Approx(0.010).epsilon(1e-9));
  CHECK(md.mean == Approx(0.010).epsilon(1e-9));
  CHECK(mi.cv == Approx(c).epsilon(0.001));
  CHECK(md.cv == Approx(c).epsilon(0.001));
  CHECK(item_seconds(inc, 0) == Approx(0.010 * (1 - std::numbers::sqrt3 * c)));
  CHECK(item_seconds(inc, n_samples - 1) == Approx(0.010 * (1 + std::numbers::sqrt3 * c)));
  for (std::uint64_t i = 1; i < n_samples; ++i) {
    REQUIRE(item_seconds(inc, i) > item_seconds(inc, i - 1));
    REQUIRE(item_seconds(dec, i) < item_seconds(dec, i - 1));
    REQUIRE(item_seconds(dec, i) == Approx(item_seconds(inc, n_samples - 1 - i)));
  }
  // Indices past the range stay at the end of the ramp; a single item takes the mean.
  CHECK(item_seconds(inc, n_samples + 10) == item_seconds(inc, n_samples - 1));
  CHECK(item_seconds(make(distribution::increasing, c, 1), 0) == Approx(0.010));
  CHECK(item_seconds(make(distribution::decreasing, c, 1), 0) == Approx(0.010));
}

TEST_CASE("synthetic: validate names the option and its range", "[synthetic]") {
  const auto rejects = [](const synthetic_params& p, const std::string& part) {
    INFO("expecting an input_error containing: " << part);
    REQUIRE_THROWS_AS(validate(p), amorsize::input_error);
    REQUIRE_THROWS_WITH(validate(p), Contains(part));
    try {
      validate(p);
    } catch (const amorsize::input_error& e) {
      CHECK(e.code() == amorsize::exit_code::bad_input);
    }
  };
  const synthetic_params ok;
  REQUIRE_NOTHROW(validate(ok));

  for (double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    auto p = ok;
    p.mean_ms = bad;
    rejects(p, "--mean-ms");
    rejects(p, "> 0");
  }
  for (double bad : {-0.1, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    auto p = make(distribution::lognormal, bad);
    rejects(p, "--cv");
    rejects(p, ">= 0");
  }
  rejects(make(distribution::constant, 0.1), "--cv must be 0 for --dist constant");
  rejects(make(distribution::uniform, 0.6), "--cv");
  rejects(make(distribution::uniform, 0.6), "0.57735");
  rejects(make(distribution::increasing, 0.6), "--dist increasing");
  rejects(make(distribution::decreasing, 0.6), "0.57735");
  rejects(make(distribution::pareto, 0.0), "--cv must be > 0 for --dist pareto");
  rejects(make(distribution::increasing, 0.2, 0), "--dist increasing needs --items > 0");
  rejects(make(distribution::decreasing, 0.2, 0), "--dist decreasing needs --items > 0");
  for (int bad : {0, -3, 1025}) {
    auto p = ok;
    p.threads = bad;
    rejects(p, "--threads");
    rejects(p, "1..1024");
  }
  auto big = ok;
  big.result_bytes = max_result_bytes + 1;
  rejects(big, "--result-bytes");
  auto bad_dist = ok;
  bad_dist.dist = static_cast<distribution>(99);
  rejects(bad_dist, "--dist");

  // The edges of each range are accepted.
  auto edge = ok;
  edge.threads = 1024;
  edge.result_bytes = max_result_bytes;
  edge.mean_ms = 1e-6;
  REQUIRE_NOTHROW(validate(edge));
  REQUIRE_NOTHROW(validate(make(distribution::lognormal, 25.0)));
  REQUIRE_NOTHROW(validate(make(distribution::pareto, 1e-3)));
  REQUIRE_NOTHROW(validate(make(distribution::increasing, 1.0 / std::numbers::sqrt3, 1)));
}

TEST_CASE("synthetic: spin takes its duration on one thread", "[synthetic]") {
  synthetic_params p;
  p.mean_ms = 5.0;
  p.threads = 1;
  const auto one = time_item(p, 0);
  INFO("spin 5 ms x1: wall " << one.wall * 1e3 << " ms, cpu " << one.cpu * 1e3 << " ms");
  CHECK(one.wall >= 0.005);
  CHECK(one.wall < 0.005 + 0.5);  // generous: only catches a runaway
  CHECK(one.cpu <= one.wall * 1.1 + 0.002);
}

TEST_CASE("synthetic: spin with 2 threads uses about 2 x wall of CPU time", "[synthetic]") {
  // Other processes may hold the cores, so each try also times a plain 2-thread spin as the reference of
  // what 2 spinning threads can get right now; a try passes when run_item gets about 2 x wall, or, on a
  // busy machine, as much as the reference.
  synthetic_params p;
  p.mean_ms = 50.0;
  p.threads = 2;
  const int cpus = usable_cpus();
  bool passed = false;
  for (int attempt = 0; attempt < 10 && !passed; ++attempt) {
    const timing ref = time_reference_spin(2, 0.050);
    const timing two = time_item(p, 0);
    INFO("try " << attempt << ": spin 50 ms x2: wall " << two.wall * 1e3 << " ms, cpu " << two.cpu * 1e3
                << " ms; reference cpu " << ref.cpu * 1e3 << " ms; " << cpus << " usable CPUs");
    REQUIRE(two.wall >= 0.050);
    REQUIRE(two.cpu <= 2.0 * two.wall * 1.1 + 0.005);
    const double ideal = cpus >= 2 ? 1.5 : 0.8;
    passed = two.cpu >= ideal * two.wall || (ref.cpu < ideal * ref.wall && two.cpu >= 0.8 * ref.cpu);
    if (!passed && attempt == 9) FAIL_CHECK("run_item never got the CPU time of 2 spinning threads");
    if (!passed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST_CASE("synthetic: spin keeps `threads` threads runnable, sleep keeps them asleep", "[synthetic]") {
  // Load-independent: while run_item works on another thread, count this process's other threads and
  // those in state R (running or runnable) through /proc/self/task.
  // Only threads that appear during the item count: a sanitizer runtime may own others.
  std::thread([] {}).join();  // ThreadSanitizer starts its background thread with a process's first thread
  // Besides the most seen at once, count the observations where several threads were runnable:
  // sleeping threads all wake at their deadline and may wait a moment for a CPU on a busy machine.
  struct observation {
    thread_counts most;
    int looks = 0;
    int looks_with_several_runnable = 0;
  };
  const auto observe = [](const synthetic_params& p) {
    const auto before = thread_ids();
    auto done = std::async(std::launch::async, [&p] { return run_item(p, 0); });
    observation seen;
    while (done.wait_for(std::chrono::milliseconds(2)) != std::future_status::ready) {
      const auto now = other_threads(before);
      seen.most.total = std::max(seen.most.total, now.total);
      seen.most.runnable = std::max(seen.most.runnable, now.runnable);
      ++seen.looks;
      if (now.runnable > 1) ++seen.looks_with_several_runnable;
    }
    REQUIRE(done.get().size() == p.result_bytes);
    // The helpers were joined: none is left once the exiting threads (the async one too) are gone
    // from /proc, which may take a moment after they are joined. A leaked helper stays for good.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (other_threads(before).total > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(other_threads(before).total == 0);
    return seen;
  };
  synthetic_params p;
  p.mean_ms = 300.0;
  p.threads = 3;
  const auto spin = observe(p);
  INFO("spin x3: at most " << spin.most.total << " other threads, " << spin.most.runnable << " runnable");
  CHECK(spin.most.total == 3);
  CHECK(spin.most.runnable == 3);

  p.work = work_kind::sleep;
  const auto sleep = observe(p);
  INFO("sleep x3: at most " << sleep.most.total << " other threads; several runnable in "
                            << sleep.looks_with_several_runnable << " of " << sleep.looks << " looks");
  CHECK(sleep.most.total == 3);
  // Asleep nearly all the time: several runnable only around the start and the wake-up.
  CHECK(sleep.looks_with_several_runnable * 5 <= sleep.looks);
}

TEST_CASE("synthetic: sleep takes its duration and uses little CPU", "[synthetic]") {
  synthetic_params p;
  p.work = work_kind::sleep;
  p.mean_ms = 250.0;  // long enough that starting threads (slow under sanitizers) is a small share
  for (const int threads : {1, 4}) {
    p.threads = threads;
    const auto t = time_item(p, 3);
    INFO("sleep 250 ms x" << threads << ": wall " << t.wall * 1e3 << " ms, cpu " << t.cpu * 1e3 << " ms");
    CHECK(t.wall >= 0.250);
    CHECK(t.cpu < 0.25 * t.wall);
  }
}

TEST_CASE("synthetic: results have the asked size and round-trip through check_result", "[synthetic]") {
  synthetic_params p;
  p.mean_ms = 0.01;
  for (const std::size_t bytes : std::initializer_list<std::size_t>{0, 1, 7, 8, 9, 4095, 4096, 4097, 100000}) {
    p.result_bytes = bytes;
    const auto r = run_item(p, 17);
    REQUIRE(r.size() == bytes);
    REQUIRE(check_result(p, 17, r));
    if (bytes > 0) {
      CHECK_FALSE(check_result(p, 18, r));
      auto flipped = r;
      flipped.back() ^= 1U;
      CHECK_FALSE(check_result(p, 17, flipped));
      auto shorter = r;
      shorter.pop_back();
      CHECK_FALSE(check_result(p, 17, shorter));
    }
    auto longer = r;
    longer.push_back(0);
    CHECK_FALSE(check_result(p, 17, longer));
  }
  // The bytes are the little-endian splitmix64 stream seeded with the index: its first output from 0 is known.
  p.result_bytes = 8;
  const auto r0 = run_item(p, 0);
  std::uint64_t word = 0;
  for (std::size_t b = 0; b < 8; ++b) word |= std::uint64_t{r0[b]} << (8 * b);
  CHECK(word == 0xe220a8397b1dcdafULL);
  CHECK(run_item(p, 1) != r0);
}

TEST_CASE("synthetic: endless runs work for constant and uniform", "[synthetic]") {
  for (const auto d : {distribution::constant, distribution::uniform, distribution::lognormal, distribution::pareto}) {
    auto p = make(d, d == distribution::constant ? 0.0 : 0.3, 0);
    p.mean_ms = 0.2;
    REQUIRE_NOTHROW(validate(p));
    for (const std::uint64_t i : std::initializer_list<std::uint64_t>{0, 1, std::uint64_t{1} << 40U, std::numeric_limits<std::uint64_t>::max()}) {
      const double s = item_seconds(p, i);
      REQUIRE(std::isfinite(s));
      REQUIRE(s > 0.0);
    }
    const auto r = run_item(p, std::numeric_limits<std::uint64_t>::max());
    CHECK(check_result(p, std::numeric_limits<std::uint64_t>::max(), r));
  }
  const auto u = make(distribution::uniform, 0.3, 0);
  const auto mo = item_moments(u, n_samples);
  CHECK(mo.mean == Approx(0.010).epsilon(0.01));
  CHECK(mo.cv == Approx(0.3).epsilon(0.03));
}

TEST_CASE("synthetic: names parse and print", "[synthetic]") {
  for (const auto d : {distribution::constant, distribution::uniform, distribution::lognormal, distribution::pareto,
                       distribution::increasing, distribution::decreasing}) {
    REQUIRE(parse_distribution(to_string(d)) == d);
  }
  CHECK(to_string(distribution::lognormal) == "lognormal");
  CHECK_FALSE(parse_distribution("gaussian").has_value());
  CHECK_FALSE(parse_distribution("").has_value());
  CHECK(parse_work_kind("spin") == work_kind::spin);
  CHECK(parse_work_kind("sleep") == work_kind::sleep);
  CHECK(to_string(work_kind::sleep) == "sleep");
  CHECK_FALSE(parse_work_kind("busy").has_value());
}
