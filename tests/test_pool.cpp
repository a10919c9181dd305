// The pool without a launcher: map, imap, imap_unordered and process_in_batches on forked
// processes, threads and serially; error records, the stop policy, crashed workers, endless
// sources, runs planned by optimize_streaming, bounded memory and the verbose log.
#include <amorsize/pool.hpp>
#include <amorsize/sample.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace amorsize;

namespace {

constexpr int test_workers = 2;

// Sanitized builds copy and map memory far more slowly: their memory tests stream fewer results.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized_build = true;
#else
constexpr bool sanitized_build = false;
#endif
#else
constexpr bool sanitized_build = false;
#endif

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

/// A pool on `kind` with two local workers.
pool_options options_for(backend_kind kind, std::size_t buffer_size = 0) {
  pool_options options;
  options.backend = kind;
  options.workers_per_node = {test_workers};
  options.buffer_size = buffer_size;
  return options;
}

/// The message the test function throws for item value `x`.
std::string multiple_message(int x) { return "item " + std::to_string(x) + " is a multiple of 97"; }

/// 3x + 1, throwing on multiples of 97 (0 included).
const auto triple_plus_one = [](const int& x) -> long long {
  if (x % 97 == 0) throw std::runtime_error(multiple_message(x));
  return 3LL * x + 1;
};

/// Ends the calling process with `sig`, the default action restored first: Catch's handlers and
/// the sanitizers', inherited through fork, would otherwise report the signal instead.
[[noreturn]] void die_by(int sig) {
  std::signal(sig, SIG_DFL);
  if (sig == SIGABRT) std::abort();
  std::raise(sig);
  std::_Exit(99);  // not reached
}

/// True when this process has no child left, running or zombie.
bool no_child_left() {
  errno = 0;
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

/// Runs `fn` over `data` through `call` and returns the records in the order they came.
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

/// Returns the problems of `records`, empty when there is none: each index in [0, total) exactly
/// once (only distinct when `total` is unset), in input order when `ordered`, and each record as
/// `judge` (empty answer: right) says.
template <class R>
std::string problems_of(const std::vector<item_result<R>>& records, std::optional<std::size_t> total, bool ordered,
                        const std::function<std::string(const item_result<R>&)>& judge) {
  std::ostringstream out;
  int reported = 0;
  const auto report = [&](const std::string& what) {
    if (++reported <= 10) out << what << '\n';
  };
  std::vector<int> seen(total.value_or(0), 0);
  std::vector<std::size_t> seen_open;  // indices seen when the total is unknown
  for (std::size_t position = 0; position < records.size(); ++position) {
    const item_result<R>& r = records[position];
    const std::size_t i = r.index();
    if (ordered && i != position) report("record " + std::to_string(position) + " has index " + std::to_string(i));
    if (total) {
      if (i >= *total) {
        report("index " + std::to_string(i) + " is out of range");
        continue;
      }
      if (++seen[i] == 2) report("index " + std::to_string(i) + " came twice");
    } else {
      for (std::size_t s : seen_open) {
        if (s == i) report("index " + std::to_string(i) + " came twice");
      }
      seen_open.push_back(i);
    }
    if (std::string verdict = judge(r); !verdict.empty()) report("index " + std::to_string(i) + ": " + verdict);
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (seen[i] == 0) report("index " + std::to_string(i) + " is missing");
  }
  if (reported > 10) out << "... " << reported - 10 << " more\n";
  return out.str();
}

/// Judges a record of triple_plus_one over items `item_at(index)`.
std::function<std::string(const item_result<long long>&)> triple_judge(std::function<int(std::size_t)> item_at) {
  return [item_at = std::move(item_at)](const item_result<long long>& r) -> std::string {
    const int x = item_at(r.index());
    if (x % 97 == 0) {
      if (r.ok()) return "succeeded, an error was expected";
      if (r.error() != multiple_message(x)) return "error '" + r.error() + "', expected '" + multiple_message(x) + "'";
      return {};
    }
    if (!r.ok()) return "failed: " + r.error();
    if (r.value() != 3LL * x + 1) return "value " + std::to_string(r.value()) + ", expected " + std::to_string(3LL * x + 1);
    return {};
  };
}

std::vector<int> iota_items(std::size_t n, int first = 0) {
  std::vector<int> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = first + static_cast<int>(i);
  return v;
}

std::size_t count_multiples(const std::vector<int>& data) {
  std::size_t n = 0;
  for (int x : data) n += x % 97 == 0 ? 1 : 0;
  return n;
}

}  // namespace

// Every backend, call, chunk size and item count: each index once, in order where promised,
// error records exactly where the function throws with its message, every other result right.
TEST_CASE("pool runs give every item exactly once with its result or its error", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const call_kind call = GENERATE(call_kind::ordered, call_kind::unordered, call_kind::map);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  const std::size_t count = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000});
  INFO("backend " << to_string(kind) << ", " << name_of(call) << ", chunksize " << chunksize << ", items " << count);

  const std::vector<int> data = iota_items(count);
  {
    pool p(options_for(kind));
    run_stats stats;
    const auto records = run_call(p, call, triple_plus_one, data, chunksize, stats);
    CHECK(records.size() == count);
    CHECK(problems_of(records, count, call != call_kind::unordered, triple_judge([&](std::size_t i) { return data.at(i); })) == "");
    CHECK(stats.items == count);
    CHECK(stats.errors == count_multiples(data));
    CHECK(stats.backend == kind);
    CHECK(stats.workers == (kind == backend_kind::serial ? 1 : test_workers));
    CHECK(stats.lost_workers == 0);
  }
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// A pool made from a worker count runs on local processes with that many workers.
TEST_CASE("a pool made from a worker count runs on that many local processes", "[pool]") {
  pool p(test_workers);
  const std::vector<int> data = iota_items(50, 1);
  const auto records = p.map(triple_plus_one, data);
  CHECK(problems_of(records, data.size(), true, triple_judge([&](std::size_t i) { return data.at(i); })) == "");
  CHECK(p.last_run().backend == backend_kind::processes);
  CHECK(p.last_run().workers == test_workers);
  CHECK(no_child_left());
}

// An endless generator: leaving the loop after 50 records ends the run at once (no hang), the
// records so far are right, and no worker process is left behind, running or zombie.
TEST_CASE("an endless source cut by leaving the loop stops the workers", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const bool ordered = GENERATE(true, false);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  INFO("backend " << to_string(kind) << ", " << (ordered ? "imap" : "imap_unordered") << ", chunksize " << chunksize);

  std::size_t pulled = 0;
  const auto endless = [&pulled]() -> std::optional<int> { return static_cast<int>(pulled++); };
  std::vector<item_result<long long>> records;
  run_stats stats;
  {
    pool p(options_for(kind));
    auto stream = ordered ? p.imap(triple_plus_one, endless, chunksize) : p.imap_unordered(triple_plus_one, endless, chunksize);
    for (const auto& r : stream) {
      records.push_back(r);
      if (records.size() == 50) break;
    }
    stats = stream.stats();
  }
  INFO("items pulled from the source: " << pulled);
  REQUIRE(records.size() == 50);
  CHECK(problems_of(records, ordered ? std::optional<std::size_t>(50) : std::nullopt, ordered,
                    triple_judge([](std::size_t i) { return static_cast<int>(i); })) == "");
  CHECK(stats.items == 50);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// An endless source with automatic chunks is read only a bounded way ahead of the consumer: the
// default window is two chunks per worker, twice, and chunks grow from one item at most 4x per
// finished chunk, so a few dozen finished chunks bound the read-ahead to thousands, not millions.
TEST_CASE("an endless source with automatic chunks is not read far ahead", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads);
  INFO("backend " << to_string(kind));
  std::size_t pulled = 0;
  const auto endless = [&pulled]() -> std::optional<int> { return static_cast<int>(pulled++); };
  std::size_t records = 0;
  {
    pool p(options_for(kind));
    auto stream = p.imap_unordered(triple_plus_one, endless);
    for (const auto& r : stream) {
      CHECK(r.index() < pulled);
      if (++records == 50) break;
    }
  }
  CHECK(records == 50);
  CHECK(pulled <= 50 + 20000);
}

// error_policy::stop: one record per item all the same: the first error, the items in flight,
// then a "not run" record naming the failed item for every item never started.
TEST_CASE("the stop policy gives every item one record and runs nothing new after the first error", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const call_kind call = GENERATE(call_kind::ordered, call_kind::unordered, call_kind::map);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  INFO("backend " << to_string(kind) << ", " << name_of(call) << ", chunksize " << chunksize);

  const std::vector<int> data = iota_items(1000, 1);  // item 96 is the first multiple of 97
  pool_options options = options_for(kind);
  options.on_error = error_policy::stop;
  pool p(options);
  run_stats stats;
  const auto records = run_call(p, call, triple_plus_one, data, chunksize, stats);
  REQUIRE(records.size() == data.size());

  // The first error record in arrival order is the one that stopped the run.
  std::optional<std::size_t> stop_at;
  for (const auto& r : records) {
    if (!r.ok()) {
      stop_at = r.index();
      break;
    }
  }
  REQUIRE(stop_at);
  CHECK(data[*stop_at] % 97 == 0);
  if (call != call_kind::unordered) CHECK(*stop_at == 96);
  const std::string not_run = "not run: stopped after item " + std::to_string(*stop_at) + " failed";

  // Records not run form the tail of the input, and come last.
  const auto judge_run = triple_judge([&](std::size_t i) { return data.at(i); });
  std::size_t not_run_count = 0;
  std::size_t first_not_run = data.size();
  bool not_run_seen = false;
  bool run_after_not_run = false;
  for (const auto& r : records) {
    if (!r.ok() && r.error().rfind("not run", 0) == 0) {
      ++not_run_count;
      not_run_seen = true;
      first_not_run = std::min(first_not_run, r.index());
    } else if (not_run_seen) {
      run_after_not_run = true;
    }
  }
  const auto judge = [&](const item_result<long long>& r) -> std::string {
    if (r.index() >= first_not_run) return r.error() == not_run ? "" : "'" + r.error() + "', expected '" + not_run + "'";
    return judge_run(r);
  };
  CHECK(problems_of<long long>(records, data.size(), call != call_kind::unordered, judge) == "");
  CHECK_FALSE(run_after_not_run);
  CHECK(not_run_count > 0);
  CHECK(not_run_count == data.size() - first_not_run);
  if (kind == backend_kind::serial) CHECK(first_not_run == 97);
  CHECK(stats.items == data.size());
}

// A worker that aborts or segfaults on item 13 of 200: the item gets an error naming the
// signal, every other item its result, nothing lost or twice, and the run ends.
TEST_CASE("a crashed worker process costs only the item that crashed it", "[pool]") {
  const int sig = GENERATE(SIGABRT, SIGSEGV);
  const bool ordered = GENERATE(true, false);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{0});
  INFO("signal " << sig << ", " << (ordered ? "imap" : "imap_unordered") << ", chunksize " << chunksize);

  const std::vector<int> data = iota_items(200);
  const auto crash_on_13 = [sig](const int& x) -> long long {
    if (x == 13) die_by(sig);
    return 2LL * x;
  };
  std::vector<item_result<long long>> records;
  run_stats stats;
  {
    pool p(options_for(backend_kind::processes));
    auto stream = ordered ? p.imap(crash_on_13, data, chunksize) : p.imap_unordered(crash_on_13, data, chunksize);
    for (const auto& r : stream) records.push_back(r);
    stats = stream.stats();
  }
  const std::string signal_named = "signal " + std::to_string(sig);
  const auto judge = [&](const item_result<long long>& r) -> std::string {
    if (r.index() == 13) {
      if (r.ok()) return "succeeded, a crash was expected";
      return r.error().find(signal_named) != std::string::npos ? "" : "error '" + r.error() + "' does not name " + signal_named;
    }
    if (!r.ok()) return "failed: " + r.error();
    return r.value() == 2LL * data.at(r.index()) ? "" : "wrong value " + std::to_string(r.value());
  };
  CHECK(records.size() == data.size());
  CHECK(problems_of<long long>(records, data.size(), ordered, judge) == "");
  CHECK(stats.lost_workers >= 1);
  CHECK(stats.errors == 1);
  CHECK(no_child_left());
}

// A function that kills its worker on every item: each item still ends with an error record,
// and the run ends instead of waiting for workers that keep dying.
TEST_CASE("a function that kills every worker still gives one error record per item", "[pool]") {
  const int workers = GENERATE(1, 2);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{0});
  INFO(workers << " workers, chunksize " << chunksize);

  const std::vector<int> data = iota_items(5);
  const auto always_abort = [](const int& x) -> long long {
    if (x >= 0) die_by(SIGABRT);
    return x;
  };
  pool_options options = options_for(backend_kind::processes);
  options.workers_per_node = {workers};
  std::vector<item_result<long long>> records;
  run_stats stats;
  {
    pool p(options);
    auto stream = p.imap_unordered(always_abort, data, chunksize);
    for (const auto& r : stream) records.push_back(r);
    stats = stream.stats();
  }
  const auto judge = [](const item_result<long long>& r) -> std::string {
    return r.ok() ? "succeeded" : r.error().empty() ? "empty error" : "";
  };
  CHECK(records.size() == data.size());
  CHECK(problems_of<long long>(records, data.size(), false, judge) == "");
  CHECK(stats.errors == data.size());
  CHECK(stats.lost_workers >= 1);
  CHECK(no_child_left());
}

namespace {

/// Runs process_in_batches over 250 items and checks the batches: all of the asked size (the
/// first one's size when estimated) but the last, which is smaller when the size does not divide
/// 250, in input order, every index once, every record right.
void check_batches(backend_kind kind, std::size_t batch_size) {
  INFO("backend " << to_string(kind) << ", batch size " << batch_size);
  const std::vector<int> data = iota_items(250, 1);
  pool p(options_for(kind));
  std::vector<std::size_t> sizes;
  std::vector<item_result<long long>> all;
  p.process_in_batches(
      triple_plus_one, data,
      [&](std::vector<item_result<long long>>&& batch) {
        sizes.push_back(batch.size());
        for (auto& r : batch) all.push_back(std::move(r));
      },
      batch_size);
  REQUIRE_FALSE(sizes.empty());
  const std::size_t asked = batch_size > 0 ? batch_size : sizes.front();
  for (std::size_t b = 0; b + 1 < sizes.size(); ++b) CHECK(sizes[b] == asked);
  CHECK(sizes.back() <= asked);
  CHECK(sizes.back() > 0);
  if (batch_size > 0) CHECK(sizes.size() == (data.size() + batch_size - 1) / batch_size);
  if (batch_size > 0 && data.size() % batch_size != 0) CHECK(sizes.back() < asked);
  CHECK(problems_of(all, data.size(), true, triple_judge([&](std::size_t i) { return data.at(i); })) == "");
  CHECK(p.last_run().items == data.size());
  CHECK(p.last_run().errors == count_multiples(data));
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

}  // namespace

// process_in_batches with a given batch size: batches of that size in order, the last smaller.
TEST_CASE("process_in_batches hands over batches of the asked size in order", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const std::size_t batch_size = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{100}, std::size_t{250}, std::size_t{400});
  check_batches(kind, batch_size);
}

// process_in_batches with batch size 0: the size is estimated from the results and the run works.
TEST_CASE("process_in_batches with an estimated batch size works", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  check_batches(kind, 0);
}

// A pool made from optimize_streaming's result and run on that result yields every record
// once, the sampled items' results reused, not computed again.
TEST_CASE("a run on optimize_streaming's result reuses the sampled results", "[pool]") {
  // nullopt: the backend the plan chose.
  const std::optional<backend_kind> forced =
      GENERATE(std::optional<backend_kind>(), std::optional<backend_kind>(backend_kind::processes),
               std::optional<backend_kind>(backend_kind::threads), std::optional<backend_kind>(backend_kind::serial));
  INFO("backend " << (forced ? std::string(to_string(*forced)) : std::string("as planned")));

  const std::vector<int> data = iota_items(300, 1);
  std::atomic<int> calls{0};
  const int root_pid = static_cast<int>(::getpid());
  // Returns the result and the process that computed it.
  const auto fn = [&calls](const int& x) -> std::pair<long long, int> {
    calls.fetch_add(1, std::memory_order_relaxed);
    return {3LL * x + 1, static_cast<int>(::getpid())};
  };
  optimize_options planning;
  planning.sample_size = 5;
  auto planned = optimize_streaming(fn, data, planning);
  const std::size_t sampled = planned.sampled_results.size();
  CHECK(sampled == 5);
  CHECK(calls.load() == 0);  // sampling ran in a forked sampler: the root runs none of the user's code
  REQUIRE(planned.sampled_results.front());
  const int sampler_pid = planned.sampled_results.front()->second;
  CHECK(sampler_pid != root_pid);
  if (forced) {
    planned.backend = *forced;
    planned.workers_per_node = {test_workers};
  }
  pool p(planned);
  const backend_kind kind = p.options().backend.value_or(backend_kind::processes);
  std::vector<item_result<std::pair<long long, int>>> records;
  run_stats stats;
  {
    auto stream = p.imap(fn, planned);
    for (const auto& r : stream) records.push_back(r);
    stats = stream.stats();
  }
  const auto judge = [&](const item_result<std::pair<long long, int>>& r) -> std::string {
    if (!r.ok()) return "failed: " + r.error();
    if (r->first != 3LL * data.at(r.index()) + 1) return "wrong value " + std::to_string(r->first);
    // Sampled items were computed by the sampler while planning; the rest by workers when they are processes.
    const bool by_root = r->second == root_pid;
    if (r.index() < sampled && r->second != sampler_pid) return "a sampled item was computed again";
    if (r.index() >= sampled && kind == backend_kind::processes && by_root) return "computed by the root, not a worker";
    return {};
  };
  CHECK(records.size() == data.size());
  CHECK(problems_of<std::pair<long long, int>>(records, data.size(), true, judge) == "");
  CHECK(stats.items == data.size());
  // Threads and the serial backend call the root's function object: each item not sampled exactly once.
  if (kind != backend_kind::processes) CHECK(calls.load() == static_cast<int>(data.size() - sampled));
  else CHECK(calls.load() == 0);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// The chunking policy travels whole from the plan to the dispatcher: the target duration shapes the
// run as it shaped the plan, and a forced chunk size stays as forced.
TEST_CASE("a pool made from a plan keeps its whole chunk policy", "[pool]") {
  const std::vector<int> data = iota_items(100);
  const auto cheap = [](const int& x) { return x + 1; };
  optimize_options options;
  options.target_chunk_duration = 0.7;
  const auto targeted = optimize(cheap, data, options);
  CHECK(targeted.schedule.target_seconds == 0.7);
  CHECK(targeted.schedule.adaptive);
  CHECK(pool(targeted).options().schedule.target_seconds == 0.7);

  options.chunksize = 7;
  options.backend = backend_kind::processes;
  auto forced = optimize(cheap, data, options);
  CHECK_FALSE(forced.schedule.adaptive);
  pool p(forced);
  CHECK_FALSE(p.options().schedule.adaptive);
  const auto records = p.map(cheap, forced);
  CHECK(records.size() == data.size());
  // 95 items after the 5 sampled, in chunks of exactly 7: a cheap function would otherwise grow them.
  CHECK(p.last_run().chunks == (95 + 6) / 7);
}

// A result's data is consumed by its run: running it again would yield only the sampled records.
TEST_CASE("running an optimization result a second time is an error, not its sampled records alone", "[pool]") {
  const std::vector<int> data = iota_items(50);
  const auto twice = [](const int& x) { return 2 * x; };
  auto planned = optimize(twice, data);
  pool p(planned);
  CHECK(p.map(twice, planned).size() == data.size());
  try {
    (void)p.map(twice, planned);
    FAIL("a consumed result ran again");
  } catch (const input_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("already run") && Catch::Contains("optimize"));
  }
  const auto copy = planned;  // copies share the consumed data
  CHECK_THROWS_AS(p.imap(twice, copy), input_error);
}

namespace {

/// Runs `body` and returns how far the root's peak resident memory grew meanwhile, in bytes.
std::uint64_t peak_growth_of(const std::function<void()>& body) {
  INFO("the kernel must reset the peak resident size (/proc/self/clear_refs) for this check");
  REQUIRE(reset_peak_memory());
  const std::uint64_t base = peak_memory_bytes();
  body();
  const std::uint64_t peak = peak_memory_bytes();
  return peak > base ? peak - base : 0;
}

/// Streams 2000 results of 1 MiB each (500 in sanitized builds) through imap_unordered on
/// processes with a window of 16 and `chunksize`: every record must arrive whole, the dispatcher
/// must keep at most 16 items out, and the root's peak resident memory must grow by less than
/// 300 MiB, far less than the results streamed.
/// A run whose window is clearly exceeded is cut short (it would be slow and large).
void check_bounded_stream(std::size_t chunksize) {
  const std::size_t count = sanitized_build ? 500 : 2000;
  const std::size_t result_size = std::size_t{1} << 20;
  const std::size_t window = 16;
  const std::vector<int> data = iota_items(count);
  const auto one_mib = [result_size](const int& x) { return std::vector<char>(result_size, static_cast<char>(x % 128)); };

  pool p(options_for(backend_kind::processes, window));
  std::vector<int> seen(count, 0);
  std::size_t arrived = 0;
  std::size_t wrong = 0;
  bool cut_short = false;
  run_stats stats;
  const std::uint64_t growth = peak_growth_of([&] {
    auto stream = p.imap_unordered(one_mib, data, chunksize);
    for (const auto& r : stream) {
      ++arrived;
      if (r.index() >= count || !r.ok() || r->size() != result_size || r->front() != static_cast<char>(data[r.index()] % 128) ||
          r->back() != r->front()) {
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
  INFO("chunksize " << chunksize << ": peak growth " << growth / (1024 * 1024) << " MiB; peak outstanding "
                    << stats.peak_outstanding << " items; " << stats.chunks << " chunks; " << arrived << " records");
  CHECK_FALSE(cut_short);
  CHECK(stats.peak_outstanding <= window);
  CHECK(wrong == 0);
  if (!cut_short) {
    CHECK(arrived == count);
    CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(count));
  }
  CHECK(growth < 300u * 1024 * 1024);
  CHECK(no_child_left());
}

}  // namespace

// Bounded memory with chunks of one item (each well inside the window of 16).
TEST_CASE("a streamed run of 1 MiB results with a small window keeps the root's memory bounded", "[pool]") {
  check_bounded_stream(1);
}

// Bounded memory with automatic chunk sizes: the adaptive size must not outgrow the window.
TEST_CASE("a streamed run with a small window and automatic chunks keeps the root's memory bounded", "[pool]") {
  check_bounded_stream(0);
}

// Large results with no window asked for and no plan: chunk sizes, and the window that follows
// them, must count the results' bytes and not only the items' (tiny) ones, or chunks of hundreds
// of 1 MiB results pile up on the root. 3000 results (500 in sanitized builds) stream 3 GiB.
TEST_CASE("large results keep the root's memory bounded with automatic chunks and window", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads);
  const std::size_t count = sanitized_build ? 500 : 3000;
  const std::size_t result_size = std::size_t{1} << 20;
  const std::vector<int> data = iota_items(count);
  const auto one_mib = [result_size](const int& x) {
    return std::vector<std::uint8_t>(result_size, static_cast<std::uint8_t>(x % 251));
  };
  // pool(n) runs processes with automatic chunks; the threads backend gets the same through pool_options.
  pool p = kind == backend_kind::processes ? pool(test_workers) : pool(options_for(kind));
  std::size_t right = 0;
  run_stats stats;
  const std::uint64_t growth = peak_growth_of([&] {
    auto stream = p.imap_unordered(one_mib, data);
    for (const auto& r : stream) {
      if (r.index() < count && r.ok() && r->size() == result_size &&
          r->front() == static_cast<std::uint8_t>(data[r.index()] % 251) && r->back() == r->front()) {
        ++right;
      }
    }
    stats = stream.stats();
  });
  INFO("backend " << to_string(stats.backend) << ": peak growth " << growth / (1024 * 1024) << " MiB for " << count
                  << " results of 1 MiB in " << stats.chunks << " chunks; peak outstanding " << stats.peak_outstanding
                  << " items");
  CHECK(right == count);
  CHECK(growth < 300u * 1024 * 1024);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// Settings no run can use are refused before anything runs, naming the value and what to do.
TEST_CASE("a pool refuses worker counts below one and chunk sizes that look negative", "[pool]") {
  using Catch::Contains;
  CHECK_THROWS_AS(pool(0), input_error);
  CHECK_THROWS_WITH(pool(0), Contains("{0}") && Contains("at least one worker"));
  CHECK_THROWS_AS(pool(-3), input_error);
  CHECK_THROWS_WITH(pool(-3), Contains("-3") && Contains("negative"));

  pool_options negative = options_for(backend_kind::threads);
  negative.workers_per_node = {2, -1};
  CHECK_THROWS_AS(pool(negative), input_error);
  CHECK_THROWS_WITH(pool(negative), Contains("workers_per_node[1] is -1"));
  pool_options none = options_for(backend_kind::processes);
  none.workers_per_node = {0, 0};
  CHECK_THROWS_WITH(pool(none), Contains("{0, 0}") && Contains("at least one worker"));
  pool_options huge_schedule = options_for(backend_kind::threads);
  huge_schedule.schedule.chunksize = static_cast<std::size_t>(-1);
  CHECK_THROWS_AS(pool(huge_schedule), input_error);
  CHECK_THROWS_WITH(pool(huge_schedule), Contains("18446744073709551615") && Contains("negative number"));

  // Unset workers are decided by the pool; a huge window is the caller's to choose.
  pool_options decided = options_for(backend_kind::threads, std::size_t{1} << 40);
  decided.workers_per_node.clear();
  CHECK_NOTHROW(pool(decided));

  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  pool p(options_for(kind));
  const std::vector<int> data = iota_items(10);
  const std::size_t minus_one = static_cast<std::size_t>(-1);
  CHECK_THROWS_AS(p.imap(triple_plus_one, data, minus_one), input_error);
  CHECK_THROWS_WITH(p.imap_unordered(triple_plus_one, data, minus_one), Contains("18446744073709551615"));
  CHECK_THROWS_AS(p.map(triple_plus_one, data, (std::size_t{1} << 31) + 1), input_error);
  CHECK(p.map(triple_plus_one, data, std::size_t{1} << 31).size() == data.size());
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// A huge chunk size forced over an endless source: a chunk is never larger than the window, and
// the window that follows the chunks counts each at most 4 MiB at 64 bytes an item (65,536 items),
// so at most 2 rounds x 2 workers x 2 chunks x 65,536 items are read before the first record.
// The source ends after 4 million items so that a run without that bound ends too.
TEST_CASE("a huge forced chunk size over an endless source is not read millions of items ahead", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads);
  INFO("backend " << to_string(kind));
  constexpr std::size_t give_up = 4'000'000;
  std::size_t pulled = 0;
  const auto endless = [&pulled]() -> std::optional<int> {
    if (pulled == give_up) return std::nullopt;
    return static_cast<int>(pulled++);
  };
  const auto twice = [](const int& x) { return 2LL * x; };
  std::size_t pulled_before_first = 0;
  {
    pool p(options_for(kind));
    auto stream = p.imap_unordered(twice, endless, std::size_t{1} << 30);
    const auto first = stream.next();
    pulled_before_first = pulled;
    REQUIRE(first);
    CHECK(first->ok());
  }
  INFO("items pulled before the first record: " << pulled_before_first);
  CHECK(pulled_before_first <= std::size_t{2} * test_workers * 2 * 65536);
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

namespace {

/// What a broken source throws: its own type, to check that the very exception comes out.
class source_broke : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A generator over 0, 1, ... that throws source_broke when asked for item `at`.
auto throwing_source(std::size_t& next, std::size_t at) {
  return [&next, at]() -> std::optional<int> {
    if (next == at) throw source_broke("the source broke at item " + std::to_string(at));
    return static_cast<int>(next++);
  };
}

const auto doubled = [](const int& x) { return 2LL * x; };

/// Returns the problems of the records of items 0 .. 6 of a source that broke at item 7.
std::string problems_before_break(const std::vector<item_result<long long>>& records, bool ordered) {
  return problems_of<long long>(records, 7, ordered, [](const item_result<long long>& r) -> std::string {
    if (!r.ok()) return "failed: " + r.error();
    return r.value() == 2LL * static_cast<long long>(r.index()) ? "" : "wrong value " + std::to_string(r.value());
  });
}

}  // namespace

// A source that throws at item 7: items 0 .. 6 were read before it, so each gets its record (in
// order for imap), then the source's own exception comes out of the stream, and no worker is left.
TEST_CASE("a source that throws mid-run delivers every earlier record and then its own exception", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const bool ordered = GENERATE(true, false);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{3}, std::size_t{0}, std::size_t{100});
  INFO("backend " << to_string(kind) << ", " << (ordered ? "imap" : "imap_unordered") << ", chunksize " << chunksize);

  std::size_t next = 0;
  std::vector<item_result<long long>> records;
  std::string caught;
  {
    pool p(options_for(kind));
    auto stream = ordered ? p.imap(doubled, throwing_source(next, 7), chunksize)
                          : p.imap_unordered(doubled, throwing_source(next, 7), chunksize);
    try {
      for (const auto& r : stream) records.push_back(r);
    } catch (const source_broke& e) {
      caught = e.what();
    }
    if (kind == backend_kind::processes) CHECK(no_child_left());  // stopped with the exception, stream alive
  }
  CHECK(problems_before_break(records, ordered) == "");
  CHECK(caught == "the source broke at item 7");
}

// map rethrows the source's exception; process_in_batches hands over the batches gathered so far,
// the last one short, then rethrows it.
TEST_CASE("map and process_in_batches rethrow a throwing source's exception after the earlier batches", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  pool p(options_for(kind));
  std::size_t next = 0;
  CHECK_THROWS_AS(p.map(doubled, throwing_source(next, 7)), source_broke);
  next = 0;
  CHECK_THROWS_WITH(p.map(doubled, throwing_source(next, 7)), "the source broke at item 7");

  next = 0;
  std::vector<std::size_t> sizes;
  std::vector<item_result<long long>> all;
  const auto keep = [&](std::vector<item_result<long long>>&& batch) {
    sizes.push_back(batch.size());
    for (auto& r : batch) all.push_back(std::move(r));
  };
  CHECK_THROWS_AS(p.process_in_batches(doubled, throwing_source(next, 7), keep, 4), source_broke);
  CHECK(sizes == std::vector<std::size_t>{4, 3});
  CHECK(problems_before_break(all, true) == "");
  if (kind == backend_kind::processes) CHECK(no_child_left());
}

// verbose: the log says which backend runs and with how many workers.
TEST_CASE("a verbose pool says which backend and how many workers", "[pool]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads);
  INFO("backend " << to_string(kind));
  std::ostringstream log;
  pool_options options = options_for(kind);
  options.verbose = true;
  options.log = &log;
  pool p(options);
  const std::vector<int> data = iota_items(10, 1);
  const auto records = p.map(triple_plus_one, data);
  CHECK(records.size() == data.size());
  CHECK_THAT(log.str(), Catch::Contains(std::to_string(test_workers) + " worker " + std::string(to_string(kind))));
}

// verbose on the serial backend: the log says so too (one worker, the calling thread).
TEST_CASE("a verbose serial pool says it runs serially", "[pool]") {
  std::ostringstream log;
  pool_options options = options_for(backend_kind::serial);
  options.verbose = true;
  options.log = &log;
  pool p(options);
  const std::vector<int> data = iota_items(10, 1);
  const auto records = p.map(triple_plus_one, data);
  CHECK(records.size() == data.size());
  CHECK_THAT(log.str(), Catch::Contains(std::string(to_string(backend_kind::serial))));
}
