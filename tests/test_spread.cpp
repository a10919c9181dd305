// Spread sampling: random access in sources, samples spread over the whole source, and what the
// cost model makes of a trend.
#include "pool_scenarios.hpp"

#include <amorsize/cost_model.hpp>
#include <amorsize/detail/sample.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/source.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

using namespace amorsize;
using pool_test::spin_for;

namespace {

std::vector<int> iota_items(int count) {
  std::vector<int> items(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) items[static_cast<std::size_t>(i)] = i;
  return items;
}

}  // namespace

TEST_CASE("sized random-access ranges give sources that peek ahead without consuming", "[source][spread]") {
  const std::vector<int> items = iota_items(10);
  auto src = make_source(items);
  REQUIRE(src.has_random_access());
  CHECK(src.peek(0) == std::optional<int>(0));
  CHECK(src.peek(9) == std::optional<int>(9));
  CHECK_FALSE(src.peek(10).has_value());
  CHECK(src.next() == std::optional<int>(0));
  CHECK(src.next() == std::optional<int>(1));
  CHECK(src.peek(0) == std::optional<int>(2));
  CHECK(src.peek(7) == std::optional<int>(9));
  CHECK_FALSE(src.peek(8).has_value());
  src.replay({0, 1});
  CHECK(src.peek(0) == std::optional<int>(0));
  CHECK(src.peek(2) == std::optional<int>(2));
  CHECK(src.peek(9) == std::optional<int>(9));
  std::vector<int> all;
  while (auto item = src.next()) all.push_back(*item);
  CHECK(all == items);

  SECTION("moved-in containers and iterator ranges too") {
    auto owned = make_source(iota_items(5));
    CHECK(owned.has_random_access());
    CHECK(owned.peek(4) == std::optional<int>(4));
    auto range = make_source(items.begin() + 2, items.end());
    CHECK(range.has_random_access());
    CHECK(range.peek(0) == std::optional<int>(2));
  }
  SECTION("generators only when given a reader") {
    auto plain = make_source([n = 0]() mutable -> std::optional<int> { return n < 5 ? std::optional<int>(n++) : std::nullopt; }, 5);
    CHECK_FALSE(plain.has_random_access());
    CHECK_FALSE(plain.peek(1).has_value());
    auto indexed = make_source([n = 0]() mutable -> std::optional<int> { return n < 5 ? std::optional<int>(n++) : std::nullopt; },
                               std::size_t{5}, [](std::size_t i) { return static_cast<int>(i); });
    CHECK(indexed.has_random_access());
    CHECK(indexed.next() == std::optional<int>(0));
    CHECK(indexed.peek(3) == std::optional<int>(4));
  }
}

TEST_CASE("spread positions cover equal strata, and every prefix is spread evenly", "[sample][spread]") {
  const std::vector<std::size_t> p = detail::spread_positions(1000, 32);
  REQUIRE(p.size() == 32);
  std::set<std::size_t> unique(p.begin(), p.end());
  CHECK(unique.size() == 32);
  std::vector<std::size_t> sorted(p.begin(), p.end());
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t j = 0; j < sorted.size(); ++j) CHECK(sorted[j] == static_cast<std::size_t>((j + 0.5) * 1000.0 / 32.0));
  // The first 4 are one in each quarter.
  std::set<std::size_t> quarters;
  for (std::size_t k = 0; k < 4; ++k) quarters.insert(p[k] / 250);
  CHECK(quarters.size() == 4);
  CHECK(detail::spread_positions(7, 32).empty());
  CHECK(detail::spread_positions(16, 32).size() == 8);
}

TEST_CASE("sampling a random-access source measures items spread over it and sees the trend", "[sample][spread]") {
  // Item i costs 4 us x i: the first items are nearly free, the mean is about 0.8 ms.
  const int count = 400;
  std::mutex mutex;
  std::map<int, int> calls;
  auto rising = [&](const int& i) {
    spin_for(4e-6 * i);
    const std::lock_guard lock(mutex);
    ++calls[i];
    return i * 2;
  };
  auto src = make_source(iota_items(count));
  auto sampled = detail::run_sample(rising, src, 5);
  const sample_stats& s = sampled.stats;
  CHECK(s.count == 5);
  REQUIRE(s.spread_positions.size() >= 2 * detail::spread_sample_least);
  for (std::size_t pos : s.spread_positions) CHECK(pos >= 5);
  CHECK(*std::max_element(s.spread_positions.begin(), s.spread_positions.end()) > 300);
  CHECK(s.source_items == 400);
  CHECK(s.trend > 1.0);
  // About 0.8 ms (more on a loaded machine), where the first five items alone say about 10 us (40 us
  // under TSan, which adds some 35 us to each measured call: hence a factor 5, not the nominal 80).
  CHECK(s.mean_seconds > 0.5e-3);
  CHECK(s.mean_seconds < 4e-3);
  CHECK(s.mean_seconds > 5.0 * s.total_seconds / 5.0);
  CHECK(s.unreliable());
  // The first items are kept with their results; the spread items stay in the source.
  REQUIRE(sampled.items.size() == 5);
  REQUIRE(sampled.results.size() == 5);
  CHECK(sampled.results[4] == std::optional<int>(8));
  src.replay(std::move(sampled.items));
  std::vector<int> all;
  while (auto item = src.next()) all.push_back(*item);
  CHECK(all == iota_items(count));
}

TEST_CASE("optimize over a container reuses the first results and yields every item once, in order", "[sample][spread]") {
  std::atomic<int> calls{0};
  auto rising = [&calls](const int& i) {
    spin_for(2e-6 * i);
    ++calls;
    return i + 1;
  };
  const std::vector<int> items = iota_items(300);
  auto result = optimize(rising, items);
  REQUIRE(result.sampled_results.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(result.sampled_results[static_cast<std::size_t>(i)] == std::optional<int>(i + 1));
  CHECK(result.profile.sample_size == 5);
  std::vector<int> all;
  while (auto item = result.data.next()) all.push_back(*item);
  CHECK(all == items);
  CHECK(result.reason.find("spread over the 300") != std::string::npos);
}
