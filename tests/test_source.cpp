// Sources (containers, iterator ranges, generators, replay, shared copies) and chunk schedules.
#include <amorsize/schedule.hpp>
#include <amorsize/source.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <list>
#include <optional>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

using namespace amorsize;

namespace {

/// Pulls items until the source is exhausted (or `limit` items, to stay finite).
template <class T>
std::vector<T> drain(source<T>& src, std::size_t limit = 100000) {
  std::vector<T> out;
  while (out.size() < limit) {
    std::optional<T> item = src.next();
    if (!item) break;
    out.push_back(std::move(*item));
  }
  return out;
}

}  // namespace

TEST_CASE("a default source is empty", "[source]") {
  source<int> src;
  CHECK(src.size() == std::optional<std::size_t>(0));
  CHECK_FALSE(src.next().has_value());
}

// The source refers to the vector: a change made after make_source shows in what it yields.
TEST_CASE("make_source over an lvalue vector refers to it and yields in order", "[source]") {
  std::vector<int> values{10, 20, 30, 40};
  auto src = make_source(values);
  static_assert(std::is_same_v<decltype(src), source<int>>);
  CHECK(src.size() == std::optional<std::size_t>(4));
  values[2] = 33;
  CHECK(drain(src) == std::vector<int>{10, 20, 33, 40});
  CHECK(src.size() == std::optional<std::size_t>(0));
}

TEST_CASE("make_source counts down the size as items are pulled", "[source]") {
  const std::vector<int> values{1, 2, 3};
  auto src = make_source(values);
  CHECK(src.next() == std::optional<int>(1));
  CHECK(src.size() == std::optional<std::size_t>(2));
  CHECK(src.next() == std::optional<int>(2));
  CHECK(src.size() == std::optional<std::size_t>(1));
}

// A moved-in vector lives inside the source: it still yields after the original name is gone.
TEST_CASE("make_source over a moved-in vector owns it", "[source]") {
  source<std::string> src;
  {
    std::vector<std::string> words{"alpha", "beta", "gamma"};
    src = make_source(std::move(words));
  }
  CHECK(src.size() == std::optional<std::size_t>(3));
  CHECK(drain(src) == std::vector<std::string>{"alpha", "beta", "gamma"});
}

TEST_CASE("make_source owns a moved-in view, sized or endless", "[source]") {
  auto bounded = make_source(std::views::iota(3, 7));
  CHECK(bounded.size() == std::optional<std::size_t>(4));
  CHECK(drain(bounded) == std::vector<int>{3, 4, 5, 6});

  auto unbounded = make_source(std::views::iota(0L));
  CHECK_FALSE(unbounded.size().has_value());
  CHECK(drain(unbounded, 3) == std::vector<long>{0, 1, 2});
}

TEST_CASE("make_source over an iterator pair yields the range with its size", "[source]") {
  const std::vector<int> values{5, 6, 7, 8, 9};
  auto src = make_source(values.begin() + 1, values.begin() + 4);
  CHECK(src.size() == std::optional<std::size_t>(3));
  CHECK(drain(src) == std::vector<int>{6, 7, 8});

  // A list's iterators cannot be subtracted, but the range still yields everything.
  const std::list<int> linked{1, 2, 3};
  auto from_list = make_source(linked.begin(), linked.end());
  CHECK(drain(from_list) == std::vector<int>{1, 2, 3});
}

TEST_CASE("make_source over a generator: size unknown unless given", "[source]") {
  int next_value = 0;
  auto counting = [&next_value]() -> std::optional<int> {
    if (next_value == 4) return std::nullopt;
    return next_value++;
  };
  auto unsized = make_source(counting);
  CHECK_FALSE(unsized.size().has_value());
  CHECK(drain(unsized) == std::vector<int>{0, 1, 2, 3});
  CHECK(unsized.size() == std::optional<std::size_t>(0));  // known once exhausted

  next_value = 0;
  auto sized = make_source(counting, 4);
  CHECK(sized.size() == std::optional<std::size_t>(4));
  CHECK(sized.next() == std::optional<int>(0));
  CHECK(sized.size() == std::optional<std::size_t>(3));
  CHECK(drain(sized) == std::vector<int>{1, 2, 3});
}

TEST_CASE("an endless generator has no size and keeps yielding", "[source]") {
  auto src = make_source([n = 0L]() mutable -> std::optional<long> { return n++; });
  CHECK_FALSE(src.size().has_value());
  const std::vector<long> first = drain(src, 1000);
  REQUIRE(first.size() == 1000);
  for (std::size_t i = 0; i < first.size(); ++i) REQUIRE(first[i] == static_cast<long>(i));
  CHECK_FALSE(src.size().has_value());
  CHECK(src.next() == std::optional<long>(1000));
}

TEST_CASE("replay puts items back in front, in order, and size counts them", "[source]") {
  const std::vector<int> values{1, 2, 3, 4, 5};
  auto src = make_source(values);
  const std::vector<int> taken = drain(src, 3);
  REQUIRE(taken == std::vector<int>{1, 2, 3});
  CHECK(src.size() == std::optional<std::size_t>(2));
  src.replay(taken);
  CHECK(src.size() == std::optional<std::size_t>(5));
  src.replay({-2, -1});  // a second replay goes in front of the first
  CHECK(src.size() == std::optional<std::size_t>(7));
  CHECK(drain(src) == std::vector<int>{-2, -1, 1, 2, 3, 4, 5});

  // On an unsized generator the size stays unknown while the replayed items still come first.
  auto endless = make_source([n = 0]() mutable -> std::optional<int> { return n++; });
  REQUIRE(drain(endless, 2) == std::vector<int>{0, 1});
  endless.replay({0, 1});
  CHECK_FALSE(endless.size().has_value());
  CHECK(drain(endless, 4) == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("replay on an exhausted source yields the replayed items, then ends", "[source]") {
  auto src = make_source(std::vector<int>{7});
  REQUIRE(drain(src) == std::vector<int>{7});
  src.replay({8, 9});
  CHECK(src.size() == std::optional<std::size_t>(2));
  CHECK(drain(src) == std::vector<int>{8, 9});
  CHECK_FALSE(src.next().has_value());
}

TEST_CASE("copies of a source share one stream", "[source]") {
  auto a = make_source(std::vector<int>{1, 2, 3, 4});
  source<int> b = a;
  CHECK(a.next() == std::optional<int>(1));
  CHECK(b.next() == std::optional<int>(2));
  CHECK(a.size() == std::optional<std::size_t>(2));
  b.replay({0});
  CHECK(a.next() == std::optional<int>(0));
  // make_source on a source passes it through: still the same stream.
  auto c = make_source(a);
  CHECK(c.next() == std::optional<int>(3));
  CHECK(a.next() == std::optional<int>(4));
  CHECK_FALSE(b.next().has_value());
}

// Once the generator said nullopt it is not asked again: a generator that would resume is ignored.
TEST_CASE("next keeps returning nullopt after exhaustion", "[source]") {
  int calls = 0;
  auto src = make_source([&calls]() -> std::optional<int> {
    ++calls;
    if (calls == 1) return 42;
    if (calls == 2) return std::nullopt;
    return calls;  // would resume
  });
  CHECK(src.next() == std::optional<int>(42));
  for (int i = 0; i < 5; ++i) CHECK_FALSE(src.next().has_value());
  CHECK(calls == 2);
  CHECK(src.size() == std::optional<std::size_t>(0));
}

TEST_CASE("to_string names the schedule kinds", "[source]") {
  CHECK(to_string(schedule_kind::fixed) == "fixed");
  CHECK(to_string(schedule_kind::guided) == "guided");
}

TEST_CASE("a fixed schedule hands out chunksize items, the last chunk shorter", "[source]") {
  const chunk_schedule s{schedule_kind::fixed, 7, 1};
  CHECK(s.next_chunk(100, 4) == 7);
  CHECK(s.next_chunk(7, 4) == 7);
  CHECK(s.next_chunk(3, 4) == 3);
  CHECK(s.next_chunk(std::nullopt, 4) == 7);  // endless: full chunks
  // chunk_count of a fixed schedule is ceil(items / chunksize), whatever the workers.
  CHECK(s.chunk_count(0, 4) == 0);
  CHECK(s.chunk_count(1, 4) == 1);
  CHECK(s.chunk_count(7, 4) == 1);
  CHECK(s.chunk_count(8, 4) == 2);
  CHECK(s.chunk_count(100, 4) == 15);
  CHECK(s.chunk_count(100, 1) == 15);
  // A chunk size of 0 is treated as 1.
  const chunk_schedule zero{schedule_kind::fixed, 0, 1};
  CHECK(zero.next_chunk(10, 2) == 1);
  CHECK(zero.chunk_count(10, 2) == 10);
}

TEST_CASE("a guided schedule shrinks with the work left", "[source]") {
  const chunk_schedule s{schedule_kind::guided, 50, 4};
  CHECK(s.next_chunk(1000, 4) == 50);  // ceil(1000 / 8) = 125, capped at 50
  CHECK(s.next_chunk(200, 4) == 25);   // ceil(200 / 8)
  CHECK(s.next_chunk(100, 4) == 13);   // ceil(100 / 8)
  CHECK(s.next_chunk(20, 4) == 4);     // ceil(20 / 8) = 3, raised to min_chunksize
  CHECK(s.next_chunk(3, 4) == 3);      // the remainder, below min_chunksize
  CHECK(s.next_chunk(std::nullopt, 4) == 50);
  CHECK(s.next_chunk(100, 0) == 50);   // no workers counts as one: ceil(100 / 2) capped
}

TEST_CASE("guided chunks never grow, stay above min_chunksize but for the remainder, and sum to the items",
          "[source]") {
  for (const std::size_t items : {1UL, 2UL, 7UL, 64UL, 99UL, 1000UL, 12345UL}) {
    for (const int workers : {1, 2, 3, 8, 64}) {
      for (const auto& [largest, smallest] : {std::pair<std::size_t, std::size_t>{1, 1}, {10, 1}, {50, 4}, {64, 64},
                                              {500, 16}}) {
        const chunk_schedule s{schedule_kind::guided, largest, smallest};
        INFO("items " << items << ", workers " << workers << ", chunksize " << largest << ", min " << smallest);
        std::size_t left = items;
        std::size_t chunks = 0;
        std::size_t previous = largest;
        while (left > 0) {
          const std::size_t chunk = s.next_chunk(left, workers);
          REQUIRE(chunk >= 1);
          REQUIRE(chunk <= largest);
          REQUIRE(chunk <= left);
          REQUIRE(chunk <= previous);
          if (chunk < smallest) REQUIRE(chunk == left);  // only the final remainder is below the minimum
          previous = chunk;
          left -= chunk;
          ++chunks;
        }
        CHECK(s.chunk_count(items, workers) == chunks);
        CHECK(chunks >= (items + largest - 1) / largest);
      }
    }
  }
}

TEST_CASE("a guided schedule with min_chunksize above chunksize uses chunksize", "[source]") {
  const chunk_schedule s{schedule_kind::guided, 8, 20};
  CHECK(s.next_chunk(1000, 2) == 8);
  CHECK(s.next_chunk(5, 2) == 5);
  CHECK(s.chunk_count(1000, 2) == 125);
}
