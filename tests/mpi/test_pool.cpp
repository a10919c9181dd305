// The pool on several ranks, where it differs from a run without a launcher: ranks that sit out
// when the pool asks for fewer workers than there are ranks, a serial plan that runs on the root
// alone, and what each worker rank is told (its setup, its number, its chunks' spans). The
// scenarios both worlds share are in tests/pool_scenarios.cpp.
//
// Every rank makes the same pool calls in the same order; only the root gets records. Checks that
// may differ between ranks are CHECKs made after the collective call, never REQUIREs inside it, so
// a failure on one rank cannot leave the others waiting.
#include "../pool_scenarios.hpp"

#include <amorsize/optimize.hpp>
#include <amorsize/worker.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace amorsize;
using namespace pool_test;

// Verbose output names the worker ranks and the ranks that sit out when the pool asks for fewer
// workers per node than there are ranks; only the asked-for rank runs items.
TEST_CASE("verbose output mentions the ranks that sit out", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 40;
  const std::vector<int> data = iota_items(count);
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    return x + 1;
  };
  std::ostringstream log;
  pool_options options;
  options.workers_per_node = {1};
  options.verbose = true;
  options.log = &log;
  pool p(options);
  std::vector<item_result<int>> records = p.map(fn, data, 3);
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);

  INFO("rank " << s.rank() << " of " << s.size() << "; log: " << log.str());
  if (!s.is_root()) {
    CHECK(records.empty());
    CHECK(log.str().empty());
    return;
  }
  CHECK(problems_of<int>(records, count, true, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == static_cast<int>(r.index()) + 1 ? "" : "wrong";
        }) == "");
  if (s.size() > 1) {
    const int sitting_out = s.size() - 2;
    CHECK(log.str().find("1 worker ranks of " + std::to_string(s.size())) != std::string::npos);
    CHECK(log.str().find(std::to_string(sitting_out) + " sit out") != std::string::npos);
    CHECK(calls_per_rank[1] == count);
    for (std::size_t rank = 2; rank < calls_per_rank.size(); ++rank) {
      CHECK(calls_per_rank[rank] == 0);
    }
  }
}

// A plan that says serial under MPI (cheap items, min_speedup out of reach): the root runs every
// item itself; the other ranks' calls return no record and do not run the function (README, "Under
// MPI": only the root's data is read and only the root gets records).
TEST_CASE("a serial plan under MPI runs on the root only", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 100;
  const std::vector<int> data = iota_items(count);
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    return x - 1;
  };
  optimize_options options;
  options.min_speedup = 1e9;
  options.use_spawn_benchmark = false;
  options.use_chunking_benchmark = false;
  options.spread_sample = 0;  // calls are counted: spread-sampled items would run twice
  auto result = optimize(fn, data, options);
  pool p(result);
  std::vector<item_result<int>> records;
  auto stream = p.imap(fn, result);
  for (const auto& r : stream) {
    records.push_back(r);
  }
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);

  INFO("rank " << s.rank() << " of " << s.size() << "; plan: " << result.reason);
  CHECK(result.serial);
  CHECK(result.backend == backend_kind::serial);
  if (!s.is_root()) {
    CHECK(records.empty());
    CHECK(calls == 0);
    return;
  }
  CHECK(problems_of<int>(records, count, true, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == static_cast<int>(r.index()) - 1 ? "" : "wrong";
        }) == "");
  CHECK(calls_per_rank[0] == count);
}

// A serial backend asked for holds under a launcher too: the root runs every item, though the
// items would pay for the worker ranks.
TEST_CASE("a serial backend asked for under MPI runs on the root only", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 60;
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return x + 1;
  };
  optimize_options options;
  options.backend = backend_kind::serial;
  options.spread_sample = 0;  // calls are counted: spread-sampled items would run twice
  auto result = optimize(fn, iota_items(count), options);
  INFO("rank " << s.rank() << " of " << s.size() << "; plan: " << result.reason);
  CHECK(result.serial);
  CHECK(result.backend == backend_kind::serial);
  CHECK(result.reason.rfind("Serial, as asked.", 0) == 0);
  pool p(result);
  const auto results = p.map(fn, result);
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);
  if (!s.is_root()) {
    CHECK(results.empty());
    CHECK(calls == 0);
    return;
  }
  REQUIRE(results.size() == count);
  for (std::size_t i = 0; i < count; ++i) CHECK((results[i].ok() && results[i].value() == static_cast<int>(i) + 1));
  CHECK(calls_per_rank[0] == count);
}

// A serial plan whose sample saw only the cheap first items of a generator: the other ranks wait
// for the rest of the run, and take it when the items turn out dear (with 2 or more worker ranks,
// where the model says they pay); every item gets one record, in order. A slow build (a sanitizer's
// calls take microseconds) may plan parallel from the sample already: then only the records are checked.
TEST_CASE("a serial plan under MPI whose items turn dear goes parallel on the waiting ranks", "[mpi][pool][go_parallel]") {
  session& s = session::current();
  constexpr int count = 600;
  const dearer_after dearer_after_20{20, 1e-3};  // the sample sees only the cheap first items
  optimize_options options;
  options.min_speedup = 1.5;  // the sampled microseconds never reach it, the rest's milliseconds on 2 ranks do
  auto result = optimize(dearer_after_20, generated_items(count), options);
  INFO("rank " << s.rank() << " of " << s.size() << "; plan: " << result.explain());
  // The plan reaches every rank: they all take the same branch below.
  if (!result.serial) WARN("the sampled items planned parallel already: there is no serial run to go parallel");
  pool p(result);
  const auto records = p.map(dearer_after_20, result);
  const run_stats& stats = p.last_run();
  if (!s.is_root()) {
    CHECK(records.empty());
    return;
  }
  CHECK(static_cast<bool>(result.model) == result.serial);
  REQUIRE(records.size() == count);
  for (int i = 0; i < count; ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    CHECK((r.index() == static_cast<std::size_t>(i) && r.ok() && r.value() == 2 * i));
  }
  CHECK(stats.items == count);
  if (result.serial && s.size() >= 3) {
    CHECK(stats.backend == backend_kind::mpi);
    CHECK(stats.workers == s.size() - 1);
    REQUIRE_FALSE(stats.replans.empty());
    CHECK(stats.replans.front().old_workers == 1);
    CHECK(stats.replans.front().new_workers == s.size() - 1);
    CHECK(stats.replans.front().items_done < count / 2);
  }
}

namespace {

/// Setups this rank ran, and the worker number each saw.
std::vector<int> setups_seen;

/// Returns the number of the worker running it; takes 2 ms so every worker rank gets items.
int worker_running(const int& /*x*/) {
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return current_worker();
}

}  // namespace

// Each worker rank runs the setup once before its items and knows its worker number; the root,
// which runs no item, runs none (alone, it runs the items serially: worker 0, set up once). Chunk
// spans name the rank and node of the worker that ran them.
TEST_CASE("worker ranks run the setup once and know their worker number", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 60;
  setups_seen.clear();
  pool_options options;
  options.workers_per_node = {scenario_workers()};
  options.schedule.chunksize = 2;
  options.schedule.adaptive = false;
  options.worker_setup = [] { setups_seen.push_back(current_worker()); };
  std::vector<chunk_span> spans;
  options.on_chunk = [&spans](const chunk_span& span) { spans.push_back(span); };
  pool p(options);
  const std::vector<item_result<int>> records = p.map(worker_running, iota_items(count));
  const std::vector<unsigned long long> setups_per_rank = gather_counts(setups_seen.size());

  INFO("rank " << s.rank() << " of " << s.size());
  CHECK(current_worker() == 0);
  if (!s.is_root()) {
    CHECK(records.empty());
    CHECK(setups_seen == std::vector<int>{s.rank() - 1});  // one node: worker w is rank w + 1
    return;
  }
  const int workers = s.size() == 1 ? 1 : s.size() - 1;
  CHECK(setups_per_rank[0] == (s.size() == 1 ? 1U : 0U));
  for (std::size_t rank = 1; rank < setups_per_rank.size(); ++rank) CHECK(setups_per_rank[rank] == 1);
  std::set<int> seen;
  for (const auto& r : records) {
    REQUIRE(r.ok());
    CHECK(r.value() >= 0);
    CHECK(r.value() < workers);
    seen.insert(r.value());
  }
  CHECK(static_cast<int>(seen.size()) == workers);
  std::vector<int> covered(count, 0);
  for (const chunk_span& span : spans) {
    CHECK(span.sent <= span.received);
    CHECK(span.rank == (s.size() == 1 ? 0 : span.worker + 1));
    CHECK(span.host == s.layout().nodes[0].hostname);
    for (std::size_t i = span.first_index; i < span.first_index + span.count; ++i) {
      ++covered.at(i);
      CHECK(records[i].value() == span.worker);
    }
  }
  CHECK(covered == std::vector<int>(count, 1));
}

// A setup that throws on one worker rank stops the root's call with setup_error naming that
// worker; the other ranks are released, so the next collective call does not hang.
TEST_CASE("a throwing setup on a worker rank stops the run with setup_error", "[mpi][pool]") {
  session& s = session::current();
  pool_options options;
  options.workers_per_node = {scenario_workers()};
  options.worker_setup = [] {
    if (current_worker() == 0) throw std::runtime_error("cannot open model.bin");
  };
  pool p(options);
  std::string failure;
  int code = 0;
  try {
    p.map(worker_running, iota_items(200));
  } catch (const setup_error& e) {
    failure = e.what();
    code = static_cast<int>(e.code());
  }
  const std::vector<unsigned long long> alive = gather_counts(1);  // every rank got here

  INFO("rank " << s.rank() << " of " << s.size() << ": " << failure);
  if (!s.is_root()) {
    CHECK(failure.empty());
    return;
  }
  CHECK(alive.size() == static_cast<std::size_t>(s.size()));
  CHECK(code == 10);
  CHECK(failure.find("worker 0 setup failed: ") != std::string::npos);
  CHECK(failure.find("cannot open model.bin (the per-worker setup threw; fix it or run without it)") !=
        std::string::npos);
}

// Only the root's data tells that a result ran already; its refusal reaches every rank.
TEST_CASE("running an optimization result a second time is input_error on every rank", "[mpi][pool]") {
  session& s = session::current();
  const auto twice = [](const int& x) { return 2 * x; };
  auto planned = optimize(twice, iota_items(50));
  pool p(planned);
  const std::size_t first = p.map(twice, planned).size();
  std::string failure;
  try {
    (void)p.map(twice, planned);
  } catch (const input_error& e) {
    failure = e.what();
  }
  const std::vector<unsigned long long> alive = gather_counts(1);  // every rank got here
  INFO("rank " << s.rank() << " of " << s.size() << ": " << failure);
  CHECK(first == (s.is_root() ? 50U : 0U));
  CHECK_THAT(failure, Catch::Contains("already run"));
  if (s.is_root()) CHECK(alive.size() == static_cast<std::size_t>(s.size()));
}

// Only the root sees a stop request: a drain or an abandon ends the root's call soon, and every other
// rank is told to stop as at a normal end. An item timeout cannot apply to ranks: the root says so.
TEST_CASE("a stop request on the root ends the call on every rank", "[mpi][pool][stop]") {
  session& s = session::current();
  const bool abandon = GENERATE(false, true);
  INFO("rank " << s.rank() << " of " << s.size() << (abandon ? ", abandon" : ", drain"));
  stop_request request;
  std::ostringstream log;
  pool_options options;
  options.stop = &request;
  options.schedule.chunksize = 1;
  options.schedule.adaptive = false;
  options.item_timeout = 1.0;
  options.log = &log;
  pool p(options);
  std::size_t records = 0;
  double stopped_at = 0.0;
  double ended_at = 0.0;
  bool stopped = false;
  {
    auto stream = p.imap_unordered(
        [](const int& x) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return x;
        },
        iota_items(100000));
    while (auto r = stream.next()) {
      if (++records == 10) {
        stopped_at = monotonic_seconds();
        if (abandon) {
          request.abandon();
        } else {
          request.drain(10.0);
        }
      }
    }
    ended_at = monotonic_seconds();
    stopped = stream.stats().stopped;
  }
  if (!s.is_root()) {
    CHECK(records == 0);
    return;
  }
  CHECK(records >= 10);
  CHECK(records < 100);
  CHECK(stopped);
  CHECK(ended_at - stopped_at < 2.0);
  CHECK(log.str().find(s.size() > 1 ? "a worker rank cannot be stopped" : "a serial run cannot be stopped") !=
        std::string::npos);
}
