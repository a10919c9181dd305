// What a pool tells and does per worker without a launcher: the per-worker setup (once in each
// worker, the sampler's included, and a setup that throws), current_worker() and chunk spans.
#include "pool_scenarios.hpp"

#include <amorsize/optimize.hpp>
#include <amorsize/worker.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace amorsize;
using namespace pool_test;
using Catch::Matchers::Contains;

namespace {

/// A file that setups in any process append lines to, removed at the end of the test.
class setup_log {
 public:
  setup_log() {
    char name[] = "/tmp/amorsize_setup_XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = name;
  }
  ~setup_log() { ::unlink(path_.c_str()); }
  setup_log(const setup_log&) = delete;
  setup_log& operator=(const setup_log&) = delete;

  /// Appends current_worker() as one line, in one write (atomic across processes).
  void note() const {
    const std::string line = std::to_string(current_worker()) + "\n";
    const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
    ::close(fd);
  }

  /// Returns the worker numbers noted so far, one per setup run.
  [[nodiscard]] std::vector<int> workers() const {
    std::ifstream in(path_);
    std::vector<int> out;
    for (int w = 0; in >> w;) out.push_back(w);
    return out;
  }

 private:
  std::string path_;
};

/// True in the thread (the process) whose setup ran.
thread_local bool set_up = false;

/// Returns 1 when the worker running it was set up, else 0; takes 1 ms so every worker gets items.
int needs_setup(const int& /*x*/) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return set_up ? 1 : 0;
}

/// Returns the number of the worker running it; takes 2 ms so every worker gets items.
int worker_running(const int& /*x*/) {
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return current_worker();
}

/// Workers a two_workers pool on `kind` runs.
int workers_of(backend_kind kind) { return kind == backend_kind::serial ? 1 : 2; }

}  // namespace

// Each worker runs the setup once, in its own thread or process, before its first item.
TEST_CASE("the per-worker setup runs once in each worker before its items", "[pool_workers]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  set_up = false;
  setup_log log;
  pool_options options = two_workers(kind);
  options.worker_setup = [&log] {
    log.note();
    set_up = true;
  };
  pool p(options);
  const auto records = p.map(needs_setup, iota_items(40));
  set_up = false;
  CHECK(problems_of<int>(records, 40, true, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == 1 ? "" : "ran before its worker's setup";
        }) == "");
  const std::vector<int> noted = log.workers();
  CHECK(noted.size() == static_cast<std::size_t>(workers_of(kind)));
  const std::set<int> distinct(noted.begin(), noted.end());
  CHECK(distinct.size() == noted.size());
  CHECK(*distinct.rbegin() < workers_of(kind));
}

// A process worker that dies is replaced by one that runs the setup before its items too.
TEST_CASE("a replacement process worker runs the setup", "[pool_workers]") {
  setup_log log;
  pool_options options = two_workers(backend_kind::processes);
  options.worker_setup = [&log] { log.note(); };
  pool p(options);
  const auto records = p.map(
      [](const int& x) {
        if (x == 7) std::raise(SIGKILL);
        return x;
      },
      iota_items(20));
  CHECK(records.size() == 20);
  CHECK(p.last_run().lost_workers == 1);
  CHECK(log.workers().size() == 3);  // two workers and one replacement
}

// A setup that throws stops the call with setup_error, exit code 10, naming the worker once.
TEST_CASE("a throwing setup stops the run with setup_error naming the worker", "[pool_workers]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const bool streamed = GENERATE(false, true);
  INFO("backend " << to_string(kind) << (streamed ? ", imap" : ", map"));
  const int failing = workers_of(kind) - 1;  // the last worker's setup throws
  pool_options options = two_workers(kind);
  options.worker_setup = [failing] {
    if (current_worker() == failing) throw std::runtime_error("cannot open model.bin");
  };
  pool p(options);
  const auto start = std::chrono::steady_clock::now();
  try {
    if (streamed) {
      auto records = p.imap(worker_running, iota_items(200));
      for (const auto& r : records) CHECK(r.ok());  // records of other workers may come first
    } else {
      p.map(worker_running, iota_items(200));
    }
    FAIL("no setup_error");
  } catch (const setup_error& e) {
    const std::string what = e.what();
    CHECK(e.code() == exit_code::setup_failed);
    CHECK(static_cast<int>(e.code()) == 10);
    CHECK_THAT(what, Contains("worker " + std::to_string(failing) + " setup failed: cannot open model.bin"));
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // stopped, not waited out
  CHECK(no_child_left());
}

// optimize and estimate_safe_batch_size run the setup once in the sampler, before the sampled items.
TEST_CASE("planning runs the setup once in the sampler", "[pool_workers]") {
  set_up = false;
  setup_log log;
  optimize_options options;
  options.use_spawn_benchmark = false;
  options.use_chunking_benchmark = false;
  options.worker_setup = [&log] {
    log.note();
    set_up = true;
  };
  const std::vector<int> data = iota_items(30);
  const auto result = optimize(needs_setup, data, options);
  for (const auto& r : result.sampled_results) CHECK(r == 1);
  CHECK(log.workers() == std::vector<int>{0});
  CHECK(estimate_safe_batch_size(needs_setup, data, 0.5, 5, options.worker_setup) > 0);
  CHECK(log.workers() == std::vector<int>{0, 0});
  set_up = false;

  options.worker_setup = [] { throw std::runtime_error("no licence"); };
  CHECK_THROWS_MATCHES(optimize(needs_setup, data, options), setup_error,
                       Catch::Matchers::Message("worker 0 setup failed: no licence (the per-worker setup threw; fix "
                                                "it or run without it)"));
}

// current_worker() names the worker running the item: the dispatcher's number, 0 in the sampler,
// in a serial run and outside any run.
TEST_CASE("current_worker names the worker that runs the item", "[pool_workers]") {
  CHECK(current_worker() == 0);
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  std::vector<chunk_span> spans;
  pool_options options = two_workers(kind, 3);
  options.on_chunk = [&spans](const chunk_span& s) { spans.push_back(s); };
  pool p(options);
  const auto records = p.map(worker_running, iota_items(40));
  std::set<int> seen;
  for (const auto& r : records) {
    REQUIRE(r.ok());
    CHECK(r.value() >= 0);
    CHECK(r.value() < workers_of(kind));
    seen.insert(r.value());
    for (const chunk_span& s : spans) {
      if (r.index() >= s.first_index && r.index() < s.first_index + s.count) CHECK(r.value() == s.worker);
    }
  }
  CHECK(static_cast<int>(seen.size()) == workers_of(kind));
  CHECK(current_worker() == 0);

  optimize_options planning;
  planning.use_spawn_benchmark = false;
  planning.use_chunking_benchmark = false;
  const auto planned = optimize(worker_running, iota_items(10), planning);
  for (const auto& r : planned.sampled_results) CHECK(r == 0);
}

// Every item past the sampled ones is in exactly one span; a span's result comes back after it was sent.
TEST_CASE("chunk spans cover every run item once, sampled items none", "[pool_workers]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  constexpr std::size_t count = 60;
  optimize_options planning;
  planning.sample_size = 5;
  planning.use_spawn_benchmark = false;
  planning.use_chunking_benchmark = false;
  const auto result = optimize(worker_running, iota_items(count), planning);
  REQUIRE(result.sampled_results.size() == 5);
  pool_options options = pool(result).options();
  options.backend = kind;
  options.workers_per_node = {2};
  std::vector<chunk_span> spans;
  options.on_chunk = [&spans](const chunk_span& s) { spans.push_back(s); };
  pool p(options);
  const auto records = p.map(worker_running, result);
  CHECK(records.size() == count);

  std::vector<int> covered(count, 0);
  std::set<std::uint64_t> ids;
  for (const chunk_span& s : spans) {
    CHECK(s.count > 0);
    CHECK(s.sent <= s.received);
    CHECK(s.compute_seconds >= 0.0);
    CHECK(s.worker >= 0);
    CHECK(s.worker < workers_of(kind));
    CHECK(s.rank == -1);
    CHECK(s.host == probe_node().hostname);
    CHECK(ids.insert(s.id).second);
    for (std::size_t i = s.first_index; i < s.first_index + s.count && i < count; ++i) ++covered[i];
  }
  for (std::size_t i = 0; i < count; ++i) {
    INFO("item " << i);
    CHECK(covered[i] == (i < 5 ? 0 : 1));
  }
}
