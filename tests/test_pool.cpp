// The pool without a launcher, where it differs from a run under MPI: worker processes that crash,
// how far a source is read ahead, runs planned by optimize, large results with automatic chunks,
// settings refused, and sources that throw. The scenarios both worlds share are in pool_scenarios.cpp.
#include "pool_scenarios.hpp"

#include <amorsize/optimize.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace amorsize;
using namespace pool_test;

namespace {

/// 3x + 1, throwing on multiples of 97 (0 included).
const auto triple_plus_one = [](const int& x) -> long long {
  if (throws_on(x)) throw std::runtime_error(multiple_message(x));
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

/// Judges a record of triple_plus_one over items `item_at(index)`.
std::function<std::string(const item_result<long long>&)> triple_judge(std::function<int(std::size_t)> item_at) {
  return [item_at = std::move(item_at)](const item_result<long long>& r) -> std::string {
    const int x = item_at(r.index());
    if (throws_on(x)) {
      if (r.ok()) return "succeeded, an error was expected";
      if (r.error() != multiple_message(x)) return "error '" + r.error() + "', expected '" + multiple_message(x) + "'";
      return {};
    }
    if (!r.ok()) return "failed: " + r.error();
    if (r.value() != 3LL * x + 1) return "value " + std::to_string(r.value()) + ", expected " + std::to_string(3LL * x + 1);
    return {};
  };
}

}  // namespace

// A pool made from a worker count runs on local processes with that many workers.
TEST_CASE("a pool made from a worker count runs on that many local processes", "[pool]") {
  pool p(local_workers);
  const std::vector<int> data = iota_items(50, 1);
  const auto records = p.map(triple_plus_one, data);
  CHECK(problems_of(records, data.size(), true, triple_judge([&](std::size_t i) { return data.at(i); })) == "");
  CHECK(p.last_run().backend == backend_kind::processes);
  CHECK(p.last_run().workers == local_workers);
  CHECK(no_child_left());
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

// The chunking policy travels whole from the plan to the dispatcher: the target duration shapes the
// run as it shaped the plan, and a forced chunk size stays as forced.
TEST_CASE("a pool made from a plan keeps its whole chunk policy", "[pool]") {
  const std::vector<int> data = iota_items(100);
  const auto cheap = [](const int& x) { return x + 1; };
  optimize_options options;
  options.target_chunk_duration = 0.7;
  const auto targeted = optimize(cheap, data, options);
  // What the planned chunk takes: the target, or less when chunks were cut for balance.
  CHECK(targeted.schedule.target_seconds > 0.0);
  CHECK(targeted.schedule.target_seconds <= 0.7);
  CHECK(targeted.schedule.adaptive);
  CHECK(pool(targeted).options().schedule.target_seconds == targeted.schedule.target_seconds);

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
  pool p = kind == backend_kind::processes ? pool(local_workers) : pool(options_for(kind));
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
  CHECK(pulled_before_first <= std::size_t{2} * local_workers * 2 * 65536);
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
