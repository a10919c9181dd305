// How a pool call is resolved into a run: its order, its worker count and what the system refuses.
#include <amorsize/amorsize.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

/// Items 0 .. count - 1.
std::vector<int> numbers(int count) {
  std::vector<int> items(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) items[static_cast<std::size_t>(i)] = i;
  return items;
}

/// Item 0 takes 300 ms, the others none: in completion order it comes last.
int slow_first(const int& x) {
  if (x == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x;
}

/// Item 6 takes 300 ms, the others none: past the 5 sampled items, so a run meets it.
int slow_sixth(const int& x) {
  if (x == 6) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x;
}

/// Runs `body` in a forked child as user `nobody` allowed `processes` processes and threads in all;
/// returns the child's exit status (the body's return value, 99 if it threw something unexpected).
template <class Body>
int as_limited_user(rlim_t processes, Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const rlimit limit{processes, processes};
    if (::setgid(65534) != 0 || ::setuid(65534) != 0 || ::setrlimit(RLIMIT_NPROC, &limit) != 0) ::_exit(98);
    int code = 99;
    try {
      code = body();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

}  // namespace

// A call that does not say follows the pool's order: the plan's use_ordered.
TEST_CASE("stream follows the pool's order when the call does not say", "[pool_run]") {
  const bool ordered = GENERATE(true, false);
  pool_options options;
  options.backend = backend_kind::threads;
  options.workers_per_node = {2};
  options.schedule.chunksize = 1;
  options.schedule.adaptive = false;
  options.use_ordered = ordered;
  pool p(options);
  auto records = p.stream(slow_first, numbers(8));
  const auto first = records.next();
  REQUIRE(first);
  if (ordered) CHECK(first->index() == 0);
  else CHECK(first->index() != 0);  // the slow item is overtaken
  std::size_t count = 1;
  while (records.next()) ++count;
  CHECK(count == 8);
}

TEST_CASE("a pool made from a plan streams in the plan's order", "[pool_run]") {
  auto plan_for = [](bool ordered) {
    optimize_options options;
    options.prefer_ordered = ordered;
    options.backend = backend_kind::threads;
    options.chunksize = 1;
    options.workers_per_node = 2;
    return optimize_streaming(slow_sixth, numbers(12), options);
  };
  for (const bool ordered : {true, false}) {
    auto planned = plan_for(ordered);
    REQUIRE(planned.use_ordered == ordered);
    pool p(planned);
    CHECK(p.options().use_ordered == ordered);
    std::vector<std::size_t> seen;
    for (const auto& r : p.stream(slow_sixth, planned)) seen.push_back(r.index());
    REQUIRE(seen.size() == 12);
    CHECK(std::is_sorted(seen.begin(), seen.end()) == ordered);  // unordered: item 6 is overtaken
  }
}

// The plan cuts chunks below the target duration so every worker gets several; the dispatcher, finding items
// as long as sampled, must keep that cut (it once grew 1 ms items' chunks of 56 back to the 0.2 s target's 200,
// and one worker ran a 0.2 s tail alone).
TEST_CASE("a run whose items take what the sample measured keeps the planned chunks", "[pool_run]") {
  const auto one_ms = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return x;
  };
  optimize_options options;
  options.backend = backend_kind::threads;
  options.workers_per_node = 2;
  const auto planned = optimize(one_ms, numbers(400), options);
  INFO(planned.explain());
  REQUIRE_FALSE(planned.serial);
  REQUIRE(planned.schedule.adaptive);
  REQUIRE(planned.schedule.chunksize * 1e-3 < 0.5 * options.target_chunk_duration);  // cut for balance
  pool p(planned);
  const auto results = p.map(one_ms, planned);
  CHECK(results.size() == 400);
  // A loaded machine stretches the sleeps, and the dispatcher may then cut chunks further; it must
  // never grow them past the plan's cut.
  for (const replan& r : p.last_run().replans) {
    INFO(r.reason);
    CHECK(r.new_chunksize <= planned.schedule.chunksize);
  }
}

TEST_CASE("local workers are capped at a small multiple of the cores unless forced", "[pool_run]") {
  const int cores = std::max(1, probe_node().usable_cores);
  const int cap = max_workers_per_core * cores;
  std::ostringstream log;
  pool_options options;
  options.backend = backend_kind::threads;
  options.workers_per_node = {cap + 5};
  options.log = &log;
  const auto identity = [](const int& x) { return x; };
  {
    pool p(options);
    CHECK(p.map(identity, numbers(50)).size() == 50);
    CHECK(p.last_run().workers == cap);
    CHECK_THAT(log.str(), Contains("force_workers") && Contains(std::to_string(cap + 5) + " workers asked for"));
  }
  options.force_workers = true;
  pool forced(options);
  CHECK(forced.map(identity, numbers(50)).size() == 50);
  CHECK(forced.last_run().workers == cap + 5);
}

// The system's limit on processes and threads (RLIMIT_NPROC binds every user but root): the
// refusal is a resource_error that names the limit, with its own exit code, never an internal error.
TEST_CASE("running out of processes or threads is a resource error that names the limit", "[pool_run]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads);
  INFO("backend " << to_string(kind));
  const int status = as_limited_user(8, [kind] {
    pool_options options;
    options.backend = kind;
    options.workers_per_node = {40};
    options.force_workers = true;
    options.log = nullptr;
    pool p(options);
    const auto identity = [](const int& x) { return x; };
    try {
      (void)p.map(identity, numbers(100));
    } catch (const resource_error& e) {
      const std::string what = e.what();
      const bool named = e.code() == exit_code::out_of_resources && what.find("ulimit -u") != std::string::npos &&
                         what.find("refused") != std::string::npos;
      return named ? 0 : 2;
    }
    return 1;  // every worker started: the limit did not bind
  });
  CHECK(status == 0);
}
