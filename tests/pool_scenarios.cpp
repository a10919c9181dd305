// Pool scenarios compiled into both test binaries: the same program must behave the same without
// a launcher (on local processes, threads and serially) and under mpirun (on worker ranks).
//
// Written as a user's program: every rank makes the same calls in the same order, only the root
// checks records and the other ranks check that they got none. Checks that may differ between
// ranks are CHECKs made after the collective calls, never REQUIREs before one, so a failure on one
// rank cannot leave the others waiting.
#include "pool_scenarios.hpp"

#include <amorsize/optimize.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace amorsize;
using namespace pool_test;

namespace {

using bytes_record = item_result<bytes>;
using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point start) { return std::chrono::duration<double>(steady::now() - start).count(); }

/// How a test consumes a run.
enum class call_kind { ordered, unordered, map };

const char* name_of(call_kind call) {
  switch (call) {
    case call_kind::ordered: return "imap";
    case call_kind::unordered: return "imap_unordered";
    case call_kind::map: return "map";
  }
  return "?";
}

/// Runs `fn` over `data` through `call` and returns the records this rank got, in the order they came.
template <class Fn, class Data>
auto run_call(pool& p, call_kind call, Fn& fn, Data& data, std::size_t chunksize, run_stats& stats) {
  using records = decltype(p.map(fn, data, chunksize));
  if (call == call_kind::map) {
    records out = p.map(fn, data, chunksize);
    stats = p.last_run();
    return out;
  }
  records out;
  auto stream = call == call_kind::ordered ? p.imap(fn, data, chunksize) : p.imap_unordered(fn, data, chunksize);
  for (const auto& r : stream) out.push_back(r);
  stats = stream.stats();
  return out;
}

/// How a scenario's pool is made.
enum class made_by { options, worker_count, plan };

/// One pool and chunk size of the matrix.
struct pool_setup {
  backend_kind kind;
  made_by how;
  std::size_t chunksize;
};

/// Every backend of this world with chunks of 1, 7 and automatic; then the parallel backend's pool
/// made from a worker count and from a plan (guided chunks from 40 down to 2), automatic chunks.
std::vector<pool_setup> matrix_setups() {
  std::vector<pool_setup> setups;
  for (backend_kind kind : scenario_backends()) {
    for (std::size_t chunksize : {std::size_t{1}, std::size_t{7}, std::size_t{0}}) {
      setups.push_back({kind, made_by::options, chunksize});
    }
  }
  setups.push_back({parallel_backend(), made_by::worker_count, 0});
  setups.push_back({parallel_backend(), made_by::plan, 0});
  return setups;
}

pool make_pool(const pool_setup& setup) {
  if (setup.how == made_by::worker_count) return pool(scenario_workers());
  if (setup.how == made_by::options) return pool(options_for(setup.kind));
  plan p;
  p.mode = plan_mode::streaming;
  p.backend = setup.kind;
  p.serial = false;
  p.workers_per_node = {scenario_workers()};
  p.schedule = chunk_schedule{schedule_kind::guided, 40, 2};
  p.chunksize = 40;
  p.buffer_size = 200;
  return pool(p);
}

std::string describe(const pool_setup& setup) {
  const char* how = setup.how == made_by::options        ? "options"
                    : setup.how == made_by::worker_count ? "a worker count"
                                                         : "a plan";
  return "backend " + std::string(to_string(setup.kind)) + ", pool from " + how + ", chunksize " +
         std::to_string(setup.chunksize);
}

/// Where this rank stands, for INFO.
std::string where() {
  const session& s = session::current();
  return "rank " + std::to_string(s.rank()) + " of " + std::to_string(s.size());
}

}  // namespace

// Every backend, pool, call, chunk size and item count (0, 1, 3, 1000): the root gets each index
// once, in input order for imap and map, with an error record exactly where the function throws
// with its message and every other result right; the other ranks get nothing.
TEST_CASE("pool runs give every item exactly once with its result or its error", "[pool][scenario]") {
  const pool_setup setup = GENERATE(from_range(matrix_setups()));
  const call_kind call = GENERATE(call_kind::ordered, call_kind::unordered, call_kind::map);
  const std::size_t count = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000});
  INFO(describe(setup) << ", " << name_of(call) << ", items " << count << ", " << where());

  const std::vector<int> data = iota_items(count);
  {
    pool p = make_pool(setup);
    run_stats stats;
    const auto records = run_call(p, call, compute, data, setup.chunksize, stats);
    if (is_root()) {
      CHECK(records.size() == count);
      CHECK(problems_of(records, count, call != call_kind::unordered, compute_judge(data)) == "");
      CHECK(stats.items == count);
      CHECK(stats.errors == count_multiples(data));
      CHECK(stats.backend == backend_run(setup.kind));
      CHECK(stats.workers == workers_run(setup.kind));
      CHECK(stats.lost_workers == 0);
    } else {
      CHECK(records.empty());
      CHECK(stats.items == 0);
    }
  }
  if (setup.kind == backend_kind::processes) CHECK(no_child_left());
}

// An endless generator: the root leaves the loop after 50 records, which ends the run at once (no
// hang, every rank returns); the records so far are right (the first 50 indices for imap), and no
// worker process is left behind, running or zombie.
TEST_CASE("an endless source cut by leaving the loop stops the workers", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  const bool ordered = GENERATE(true, false);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  INFO("backend " << to_string(kind) << ", " << (ordered ? "imap" : "imap_unordered") << ", chunksize " << chunksize << ", "
                  << where());
  constexpr std::size_t wanted = 50;
  const auto fn = [](const std::uint64_t& x) -> int {
    if (throws_on(static_cast<long long>(x))) throw std::runtime_error(multiple_message(static_cast<long long>(x)));
    std::this_thread::sleep_for(std::chrono::microseconds(50 * (x % 3)));
    return static_cast<int>(x % 1000) * 3;
  };
  const auto start = steady::now();
  std::vector<item_result<int>> records;
  run_stats stats;
  {
    std::uint64_t next_item = 0;
    auto endless = [next_item]() mutable -> std::optional<std::uint64_t> { return next_item++; };
    pool p(options_for(kind));
    auto stream = ordered ? p.imap(fn, endless, chunksize) : p.imap_unordered(fn, endless, chunksize);
    for (const auto& r : stream) {
      records.push_back(r);
      if (records.size() == wanted) break;
    }
    stats = stream.stats();
  }  // the stream goes here: the root stops the workers
  CHECK(seconds_since(start) < 10.0);
  if (is_root()) {
    CHECK(records.size() == wanted);
    CHECK(problems_of<int>(records, ordered ? std::optional<std::size_t>(wanted) : std::nullopt, ordered,
                           [](const item_result<int>& r) -> std::string {
                             const auto x = static_cast<long long>(r.index());
                             if (throws_on(x)) return !r.ok() && r.error() == multiple_message(x) ? "" : "an error expected";
                             if (!r.ok()) return "failed: " + r.error();
                             return r.value() == static_cast<int>(x % 1000) * 3 ? "" : "wrong value";
                           }) == "");
    CHECK(stats.items == wanted);
    if (ordered) CHECK(std::count_if(records.begin(), records.end(), [](const auto& r) { return !r.ok(); }) == 1);  // 0
  } else {
    CHECK(records.empty());
  }
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// A stream the root never reads, or leaves after one record: destroying it releases the workers
// (every rank), and the next call on the same pool runs normally.
TEST_CASE("a stream the root drops early releases the workers", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  INFO("backend " << to_string(kind) << ", " << where());
  const std::vector<int> data = iota_items(500);
  pool p(options_for(kind));
  const auto start = steady::now();
  {
    auto unread = p.imap(compute, data, 5);
  }
  std::size_t taken = 0;
  {
    auto stream = p.imap_unordered(compute, data, 5);
    for (const bytes_record& r : stream) {
      static_cast<void>(r);
      ++taken;
      break;
    }
  }
  const std::vector<bytes_record> all = p.map(compute, data, 5);
  CHECK(seconds_since(start) < 10.0);
  if (is_root()) {
    CHECK(taken == 1);
    CHECK(problems_of(all, data.size(), true, compute_judge(data)) == "");
  } else {
    CHECK(taken == 0);
    CHECK(all.empty());
  }
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// error_policy::stop: one record per item all the same: the first error, the records of the items
// in flight, then a "not run" record naming the failed item for every item never started; nothing
// new starts after the error but what the window already held.
TEST_CASE("the stop policy gives every item one record and runs nothing new after the first error", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  const call_kind call = GENERATE(call_kind::ordered, call_kind::unordered, call_kind::map);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  INFO("backend " << to_string(kind) << ", " << name_of(call) << ", chunksize " << chunksize << ", " << where());

  const std::vector<int> data = iota_items(1000);
  const auto fails = [](int x) { return x > 0 && x % 300 == 0; };
  const auto failed_message = [](int x) { return "item " + std::to_string(x) + " failed on purpose"; };
  // Items after the first failure take 1 ms, so the bound below counts windows, not how long the
  // failing worker takes to unwind (70-350 us measured, far more when a loaded machine preempts it):
  // with items of nanoseconds, CI saw the other worker finish 273 items in that time.
  const auto fn = [&](const int& x) -> int {
    if (fails(x)) throw std::runtime_error(failed_message(x));
    if (x > 300) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return x * 2;
  };
  pool_options options = options_for(kind);
  options.on_error = error_policy::stop;
  pool p(options);
  run_stats stats;
  const auto records = run_call(p, call, fn, data, chunksize, stats);
  if (!is_root()) {
    CHECK(records.empty());
    return;
  }
  CHECK(records.size() == data.size());
  CHECK(stats.items == data.size());

  // The first error record in arrival order is the one that stopped the run.
  std::size_t stop_at = data.size();
  std::size_t stop_arrived = records.size();
  for (std::size_t k = 0; k < records.size(); ++k) {
    if (!records[k].ok()) {
      stop_at = records[k].index();
      stop_arrived = k;
      break;
    }
  }
  REQUIRE(stop_at < data.size());
  CHECK(fails(data[stop_at]));
  if (call != call_kind::unordered) CHECK(stop_at == 300);
  const std::string not_run = "not run: stopped after item " + std::to_string(stop_at) + " failed";

  // Records not run form the tail of the input, and come last, after the error.
  std::size_t not_run_count = 0;
  std::size_t first_not_run = data.size();
  std::size_t first_not_run_arrived = records.size();
  bool run_after_not_run = false;
  std::size_t errors = 0;
  for (std::size_t k = 0; k < records.size(); ++k) {
    const auto& r = records[k];
    errors += r.ok() ? 0 : 1;
    if (!r.ok() && r.error().rfind("not run", 0) == 0) {
      ++not_run_count;
      first_not_run = std::min(first_not_run, r.index());
      first_not_run_arrived = std::min(first_not_run_arrived, k);
    } else if (first_not_run_arrived < records.size()) {
      run_after_not_run = true;
    }
  }
  const auto judge = [&](const item_result<int>& r) -> std::string {
    const int x = data.at(r.index());
    if (r.index() >= first_not_run) return !r.ok() && r.error() == not_run ? "" : "expected '" + not_run + "'";
    if (fails(x)) return !r.ok() && r.error() == failed_message(x) ? "" : "expected '" + failed_message(x) + "'";
    if (!r.ok()) return "failed: " + r.error();
    return r.value() == 2 * x ? "" : "wrong value " + std::to_string(r.value());
  };
  CHECK(problems_of<int>(records, data.size(), call != call_kind::unordered, judge) == "");
  CHECK_FALSE(run_after_not_run);
  CHECK(stop_arrived < first_not_run_arrived);
  CHECK(first_not_run_arrived == first_not_run);  // the "not run" records come last
  CHECK(not_run_count > 0);
  CHECK(not_run_count == data.size() - first_not_run);
  CHECK(stats.errors == errors);
  CHECK(first_not_run >= 301);
  if (chunksize > 0) {
    // Counted from the failed item, not from the moment the root saw it: while the failing worker
    // unwinds its exception, the others finish items and the root refills the window, one round
    // trip per chunk: with chunks of one item, two windows more.
    const std::size_t window = 2 * static_cast<std::size_t>(workers_run(kind)) * 2 * chunksize;
    CHECK(first_not_run <= 301 + 4 * (window + chunksize));
  }
  if (stats.backend == backend_kind::serial) CHECK(first_not_run == 301);  // serially, nothing is in flight
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// error_policy::stop on an endless source: the stream ends after the items in flight (no "not run"
// records: their number is unknown) and every rank returns.
TEST_CASE("the stop policy ends an endless stream", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  const bool ordered = GENERATE(true, false);
  INFO("backend " << to_string(kind) << ", " << (ordered ? "imap" : "imap_unordered") << ", " << where());
  const auto fn = [](const std::uint64_t& x) -> int {
    if (x == 120) throw std::runtime_error("item 120 failed on purpose");
    return static_cast<int>(x) + 1;
  };
  pool_options options = options_for(kind);
  options.on_error = error_policy::stop;
  pool p(options);
  std::uint64_t next_item = 0;
  auto endless = [next_item]() mutable -> std::optional<std::uint64_t> { return next_item++; };
  const auto start = steady::now();
  std::vector<item_result<int>> records;
  {
    auto stream = ordered ? p.imap(fn, endless, 3) : p.imap_unordered(fn, endless, 3);
    for (const auto& r : stream) {
      records.push_back(r);
      if (records.size() > 100000) break;  // it did not stop: do not loop forever
    }
  }
  CHECK(seconds_since(start) < 10.0);
  if (!is_root()) {
    CHECK(records.empty());
    return;
  }
  std::size_t largest = 0;
  for (const auto& r : records) largest = std::max(largest, r.index());
  CHECK(problems_of<int>(records, largest + 1, ordered, [](const item_result<int>& r) -> std::string {
          if (r.index() == 120) return !r.ok() && r.error() == "item 120 failed on purpose" ? "" : "the error was expected";
          if (!r.ok()) return "failed: " + r.error();
          return r.value() == static_cast<int>(r.index()) + 1 ? "" : "wrong value";
        }) == "");
  CHECK(std::count_if(records.begin(), records.end(), [](const auto& r) { return !r.ok(); }) == 1);
  CHECK(largest >= 120);
  CHECK(largest < 120 + 200);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// process_in_batches with a batch size (1, 7, 64, all items, more than all) or 0 (the root's
// estimate of a safe one): batches of that size in input order with errors in place, the last one
// shorter when the size does not divide the items; the other ranks get no batch.
TEST_CASE("process_in_batches hands the root every batch in input order", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  const std::size_t batch_size =
      GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1000}, std::size_t{1500}, std::size_t{0});
  const std::vector<int> data = iota_items(1000);
  std::size_t estimate = 0;
  if (batch_size == 0 && is_root()) estimate = estimate_safe_batch_size(compute, data);
  INFO("backend " << to_string(kind) << ", batch size " << batch_size << ", the root's estimate " << estimate << ", "
                  << where());

  pool p(options_for(kind));
  std::vector<std::size_t> sizes;
  std::vector<bytes_record> all;
  std::string failure;
  try {
    p.process_in_batches(
        compute, data,
        [&](std::vector<bytes_record>&& batch) {
          sizes.push_back(batch.size());
          for (auto& r : batch) all.push_back(std::move(r));
        },
        batch_size);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  CHECK(failure == "");
  if (!is_root()) {
    CHECK(sizes.empty());
    return;
  }
  const std::size_t asked = batch_size > 0 ? batch_size : std::max(std::size_t{1}, std::min(estimate, data.size()));
  CHECK_FALSE(sizes.empty());
  for (std::size_t b = 0; b + 1 < sizes.size(); ++b) CHECK(sizes[b] == asked);
  if (!sizes.empty()) {
    CHECK(sizes.back() > 0);
    CHECK(sizes.back() <= asked);
    CHECK(sizes.back() == data.size() - asked * (sizes.size() - 1));
  }
  CHECK(sizes.size() == (data.size() + asked - 1) / asked);
  CHECK(problems_of(all, data.size(), true, compute_judge(data)) == "");
  CHECK(p.last_run().items == data.size());
  CHECK(p.last_run().errors == count_multiples(data));
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// A pool made from optimize's (run with map) or optimize_streaming's (run with imap) result yields
// every record once in input order, the sampled items' results reused and not computed again
// (an error while sampling keeps its message), the rest computed by the workers. Sampling runs in
// a forked sampler without a launcher and in the root under MPI; either way each item runs once.
TEST_CASE("a run on an optimization result reuses the sampled results", "[pool][scenario]") {
  const bool streaming = GENERATE(true, false);
  std::vector<std::optional<backend_kind>> forced_backends{std::nullopt};  // nullopt: the backend the plan chose
  for (backend_kind kind : scenario_backends()) forced_backends.emplace_back(kind);
  const std::optional<backend_kind> forced = GENERATE_COPY(from_range(forced_backends));
  INFO((streaming ? "optimize_streaming and imap" : "optimize and map")
       << ", backend " << (forced ? to_string(*forced) : "as planned") << ", " << where());

  constexpr std::size_t count = 300;
  constexpr std::size_t sample_size = 5;
  const std::vector<int> data = iota_items(count);
  const auto failed_message = [](int x) { return "item " + std::to_string(x) + " failed on purpose"; };
  std::size_t calls = 0;  // in this process (threads share it; only the root's thread calls it serially)
  std::mutex calls_lock;
  // Returns the result and the process that computed it.
  const auto fn = [&](const int& x) -> std::pair<long long, int> {
    {
      const std::lock_guard<std::mutex> hold(calls_lock);
      ++calls;
    }
    if (x == 2 || x == 150) throw std::runtime_error(failed_message(x));
    return {3LL * x + 1, static_cast<int>(::getpid())};
  };
  optimize_options planning;
  planning.sample_size = sample_size;
  planning.workers_per_node = scenario_workers();  // forced, so the plan is parallel whenever there is a worker
  planning.prefer_ordered = true;
  planning.use_spawn_benchmark = false;
  planning.use_chunking_benchmark = false;
  planning.spread_sample = 0;  // calls are counted: spread-sampled items would run twice

  using record = item_result<std::pair<long long, int>>;
  std::vector<record> records;
  run_stats stats;
  std::size_t sampled_calls = 0;
  std::vector<std::optional<std::pair<long long, int>>> sampled_results;
  bool planned_serial = false;
  backend_kind planned_backend = backend_kind::serial;
  const auto run = [&](auto planned) {
    sampled_calls = calls;
    sampled_results = planned.sampled_results;
    planned_serial = planned.serial;
    planned_backend = planned.backend;
    if (forced) {
      planned.backend = *forced;
      planned.workers_per_node = {scenario_workers()};
    }
    pool p(planned);
    if (streaming) {
      auto stream = p.imap(fn, planned);
      for (const auto& r : stream) records.push_back(r);
      stats = stream.stats();
    } else {
      records = p.map(fn, planned);
      stats = p.last_run();
    }
  };
  if (streaming) {
    run(optimize_streaming(fn, data, planning));
  } else {
    run(optimize(fn, data, planning));
  }
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);
  if (!is_root()) {
    CHECK(records.empty());
    CHECK(sampled_calls == 0);  // only the root samples
    return;
  }

  const int root_pid = static_cast<int>(::getpid());
  CHECK(sampled_calls == (under_mpi() ? sample_size : 0));
  CHECK(sampled_results.size() == sample_size);
  const int sampler_pid = !sampled_results.empty() && sampled_results.front() ? sampled_results.front()->second : -1;
  CHECK((sampler_pid == root_pid) == under_mpi());
  if (under_mpi()) CHECK(planned_serial == (session::current().size() == 1));
  const backend_kind kind = backend_run(forced.value_or(planned_backend));
  CHECK(stats.backend == kind);
  const bool workers_elsewhere = kind == backend_kind::processes || kind == backend_kind::mpi;

  const auto judge = [&](const record& r) -> std::string {
    const int x = data.at(r.index());
    if (x == 2 || x == 150) return !r.ok() && r.error() == failed_message(x) ? "" : "expected '" + failed_message(x) + "'";
    if (!r.ok()) return "failed: " + r.error();
    if (r->first != 3LL * x + 1) return "wrong value " + std::to_string(r->first);
    if (r.index() < sample_size) return r->second == sampler_pid ? "" : "a sampled item was computed again";
    if (workers_elsewhere && r->second == root_pid) return "computed by the root, not a worker";
    if (!workers_elsewhere && r->second != root_pid) return "computed outside the root";
    return {};
  };
  CHECK(records.size() == count);
  CHECK(problems_of<std::pair<long long, int>>(records, count, true, judge) == "");
  CHECK(stats.items == count);
  CHECK(std::count_if(records.begin(), records.end(), [](const record& r) { return !r.ok(); }) == 2);
  // Calls in the root: the sampled ones under MPI, and every other item when it runs them itself.
  CHECK(calls_per_rank.front() == (under_mpi() ? sample_size : 0) + (workers_elsewhere ? 0 : count - sample_size));
  unsigned long long total_calls = 0;
  for (unsigned long long c : calls_per_rank) total_calls += c;
  if (under_mpi()) CHECK(total_calls == count);  // worker processes' calls are not counted locally
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

namespace {

/// Streams `count` results of 1 MiB each through imap_unordered on the parallel backend with a window of
/// 16 and `chunksize` (0: automatic): every record must arrive whole, at most 16 items must be
/// out at once, and the root's peak resident memory must grow by less than 300 MiB, far less
/// than the results streamed. A run whose window is clearly exceeded is cut short (slow and large).
void check_bounded_stream(std::size_t count, std::size_t chunksize) {
  constexpr std::size_t result_size = std::size_t{1} << 20;
  constexpr std::size_t window = 16;
  const std::vector<int> data = iota_items(count);
  const auto one_mib = [](const int& x) {
    bytes out(result_size, static_cast<std::uint8_t>(x % 251));
    out.back() = static_cast<std::uint8_t>(x % 7);
    return out;
  };

  pool p(options_for(parallel_backend(), window));
  std::vector<int> seen(count, 0);
  std::size_t arrived = 0;
  std::size_t wrong = 0;
  bool cut_short = false;
  run_stats stats;
  const std::uint64_t growth = peak_growth_of([&] {
    auto stream = p.imap_unordered(one_mib, data, chunksize);
    for (const auto& r : stream) {
      ++arrived;
      if (r.index() >= count || !r.ok() || r->size() != result_size ||
          r->front() != static_cast<std::uint8_t>(data[r.index()] % 251) ||
          r->back() != static_cast<std::uint8_t>(data[r.index()] % 7)) {
        ++wrong;
      } else {
        ++seen[r.index()];
      }
      if (stream.stats().peak_outstanding > 4 * window) {
        cut_short = true;
        break;
      }
    }
    stats = stream.stats();
  });
  INFO("chunksize " << chunksize << ": peak growth "
                    << growth / (1024 * 1024) << " MiB; peak outstanding " << stats.peak_outstanding << " items; "
                    << stats.chunks << " chunks; " << arrived << " records; " << where());
  if (!is_root()) {
    CHECK(arrived == 0);
    return;
  }
  CHECK_FALSE(cut_short);
  if (stats.backend != backend_kind::serial) CHECK(stats.peak_outstanding <= window);
  CHECK(wrong == 0);
  if (!cut_short) {
    CHECK(arrived == count);
    CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(count));
  }
  CHECK(growth < 300u * 1024 * 1024);
  if (parallel_backend() == backend_kind::processes) CHECK(no_child_left());
}

}  // namespace

// Bounded root memory: 2000 results of 1 MiB each (500 in sanitized builds) through
// imap_unordered with a window of 16, in chunks of one item and in automatic chunks (whose
// adaptive size must not outgrow the window).
TEST_CASE("a streamed run of 1 MiB results with a small window keeps the root's memory bounded", "[pool][scenario]") {
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{0});
  check_bounded_stream(sanitized_build ? 500 : 2000, chunksize);
}

// The window bounds the items in flight even when chunk sizes adapt over many cheap items, in
// order and as completed.
TEST_CASE("adaptive chunks stay within the pool's buffer_size", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  const bool ordered = GENERATE(true, false);
  constexpr std::size_t count = 2000;
  constexpr std::size_t window = 16;
  const std::vector<int> data = iota_items(count);
  const auto fn = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    return x;
  };
  pool p(options_for(kind, window));
  std::vector<item_result<int>> records;
  run_stats stats;
  {
    auto stream = ordered ? p.imap(fn, data) : p.imap_unordered(fn, data);
    for (const auto& r : stream) records.push_back(r);
    stats = stream.stats();
  }
  INFO("backend " << to_string(kind) << ", " << (ordered ? "imap" : "imap_unordered") << ", chunks " << stats.chunks
                  << ", peak outstanding " << stats.peak_outstanding << ", " << where());
  if (!is_root()) {
    CHECK(records.empty());
    return;
  }
  CHECK(problems_of<int>(records, count, ordered, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == static_cast<int>(r.index()) ? "" : "wrong";
        }) == "");
  if (stats.backend != backend_kind::serial) CHECK(stats.peak_outstanding <= window);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// verbose: the root's log says which backend runs and with how many workers (worker ranks of all
// ranks under MPI, the calling thread when serial); the other ranks log nothing.
TEST_CASE("a verbose pool says which backend and how many workers", "[pool][scenario]") {
  const backend_kind kind = GENERATE(from_range(scenario_backends()));
  INFO("backend " << to_string(kind) << ", " << where());
  std::ostringstream log;
  pool_options options = options_for(kind);
  options.verbose = true;
  options.log = &log;
  pool p(options);
  const std::vector<int> data = iota_items(10, 1);
  const auto records = p.map(compute, data);
  INFO("log: " << log.str());
  if (!is_root()) {
    CHECK(records.empty());
    CHECK(log.str().empty());
    return;
  }
  CHECK(records.size() == data.size());
  const session& s = session::current();
  std::string said = "running serially";
  if (kind == backend_kind::mpi) said = std::to_string(s.size() - 1) + " worker ranks of " + std::to_string(s.size());
  if (kind != backend_kind::mpi && kind != backend_kind::serial) {
    said = std::to_string(local_workers) + " worker " + std::string(to_string(kind));
  }
  CHECK_THAT(log.str(), Catch::Contains(said));
}
