// A serial run of a plan whose sample misjudged the work: it re-plans from its own items and hands
// the rest to workers when they pay.
#include "pool_scenarios.hpp"

#include <amorsize/optimize.hpp>
#include <amorsize/pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <set>
#include <vector>

using namespace amorsize;

using pool_test::dearer_after;

TEST_CASE("a serial plan whose items turn dear goes parallel for the rest of the run", "[pool][go_parallel]") {
  constexpr int count = 1000;
  const dearer_after fn{20, 1e-3};  // the sample sees only the cheap first items
  // Below 1.8x serial: the sampled microseconds never reach it (a sanitizer's do reach 1.5x on 2 cores),
  // the rest's milliseconds on 2 or more cores do.
  optimize_options options;
  options.min_speedup = 1.8;
  auto result = optimize(fn, pool_test::generated_items(count), options);
  INFO(result.explain());
  REQUIRE(result.serial);
  REQUIRE(result.model);

  SECTION("gathered in order") {
    pool p(result);
    const auto records = p.map(fn, result);
    REQUIRE(records.size() == count);
    for (int i = 0; i < count; ++i) {
      REQUIRE(records[static_cast<std::size_t>(i)].index() == static_cast<std::size_t>(i));
      REQUIRE(records[static_cast<std::size_t>(i)].value() == 2 * i);
    }
    const run_stats& s = p.last_run();
    CHECK(s.backend != backend_kind::serial);
    CHECK(s.workers >= 2);
    CHECK(s.items == count);
    CHECK(s.errors == 0);
    REQUIRE_FALSE(s.replans.empty());
    const replan& went = s.replans.front();
    CHECK(went.old_workers == 1);
    CHECK(went.new_workers >= 2);
    CHECK(went.items_done < count / 2);  // it looked within the first tenth of a second or so
    CHECK(went.reason.find("not the") != std::string::npos);
  }

  SECTION("as completed: every item once") {
    pool p(result);
    std::set<std::size_t> seen;
    auto records = p.imap_unordered(fn, result);
    while (auto r = records.next()) {
      CHECK(r->ok());
      CHECK(seen.insert(r->index()).second);
    }
    CHECK(seen.size() == count);
    CHECK(records.stats().workers >= 2);
  }

  SECTION("may_go_parallel off keeps the run serial") {
    pool_options serial_only = pool(result).options();
    REQUIRE(serial_only.may_go_parallel);
    serial_only.may_go_parallel = false;
    pool p(serial_only);
    const auto records = p.map(fn, result);
    CHECK(records.size() == count);
    CHECK(p.last_run().backend == backend_kind::serial);
    CHECK(p.last_run().replans.empty());
  }
}

TEST_CASE("a serial plan whose items cost what was sampled stays serial", "[pool][go_parallel]") {
  // 2 us items whose results the caller takes 20 us to use: the root bounds any parallel run.
  const dearer_after fn{0, 2e-6};
  std::vector<int> items(100000);
  for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int>(i);
  optimize_options options;
  options.consumer_seconds_per_item = 20e-6;
  auto result = optimize(fn, items, options);
  REQUIRE(result.serial);
  pool p(result);
  const auto records = p.map(fn, result);
  CHECK(records.size() == items.size());
  CHECK(p.last_run().backend == backend_kind::serial);
  CHECK(p.last_run().replans.empty());
}

TEST_CASE("a serial backend asked for keeps no model to go parallel with", "[pool][go_parallel]") {
  optimize_options options;
  options.backend = backend_kind::serial;
  const auto result = optimize(dearer_after{20, 1e-3}, pool_test::generated_items(50), options);
  CHECK(result.serial);
  CHECK_FALSE(result.model);
}

TEST_CASE("a source of unknown size whose items turn dear still spreads over the workers", "[pool][go_parallel]") {
  constexpr int count = 1000;
  const dearer_after fn{20, 1e-3};
  // As a plan from the cheap first items would have it: chunks far larger than the source, adaptive.
  pool_options options;
  options.workers_per_node = {2};
  options.schedule = chunk_schedule{schedule_kind::fixed, 100000, 100000, true, 0.2};
  std::size_t largest = 0;
  std::set<int> workers;
  options.on_chunk = [&](const chunk_span& c) {
    largest = std::max(largest, c.count);
    workers.insert(c.worker);
  };
  pool p(options);
  std::size_t seen = 0;
  auto records = p.imap(fn, [next = 0]() mutable -> std::optional<int> {
    if (next == count) return std::nullopt;
    return next++;
  });
  while (auto r = records.next()) {
    REQUIRE(r->index() == seen);
    REQUIRE(r->value() == 2 * static_cast<int>(seen));
    ++seen;
  }
  CHECK(seen == count);
  // Chunks grow from those that came back, so the dear items do not all go into the first one.
  CHECK(largest < count / 2);
  CHECK(workers.size() == 2);
}
