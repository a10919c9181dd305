// The chunk wire format (detail/wire.hpp): items and records round-trip, flat and through Boost.
#include <amorsize/detail/wire.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using amorsize::item_result;
namespace detail = amorsize::detail;

struct point {
  double x = 0.0;
  std::int32_t id = 0;
  bool operator==(const point&) const = default;
  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar & x & id;
  }
};

static_assert(detail::flat_wire<std::uint64_t>);
static_assert(detail::flat_wire<double>);
static_assert(detail::flat_wire<point>);
static_assert(!detail::flat_wire<std::string>);
static_assert(!detail::flat_wire<std::vector<int>>);
static_assert(!detail::flat_wire<const char*>);

/// Writes `records` as a chunk and reads them back, numbered from `first`.
template <class R>
std::vector<item_result<R>> round_trip(const std::vector<item_result<R>>& records, std::size_t first) {
  return detail::decode_records<R>(detail::encode_records(records), first);
}

/// Checks that `got` holds `want`'s outcomes, numbered from `first`.
template <class R>
void check_records(const std::vector<item_result<R>>& got, const std::vector<item_result<R>>& want, std::size_t first) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].index() == first + i);
    REQUIRE(got[i].ok() == want[i].ok());
    if (want[i].ok()) CHECK(*got[i] == *want[i]);
    else CHECK(got[i].error() == want[i].error());
  }
}

template <class T>
void check_items_round_trip(const std::vector<T>& items) {
  CHECK(detail::decode_items<T>(detail::encode_items(items)) == items);
  detail::item_writer<T> writer;
  for (T item : items) writer.add(std::move(item));
  CHECK(writer.size() == items.size());
  const std::string payload = std::move(writer).payload();
  CHECK(payload == detail::encode_items(items));
  const detail::item_reader<T> reader(payload);
  REQUIRE(reader.size() == items.size());
  for (std::size_t i = 0; i < items.size(); ++i) CHECK(reader[i] == items[i]);
}

}  // namespace

TEST_CASE("wire: a flat chunk of items is a count and the raw items", "[wire]") {
  const std::vector<std::uint64_t> items{1, 2, 3, 0xffffffffffffffffULL};
  const std::string payload = detail::encode_items(items);
  CHECK(payload.size() == sizeof(std::uint64_t) * (1 + items.size()));
  check_items_round_trip(items);
  check_items_round_trip(std::vector<point>{{1.5, 1}, {-2.25, 2}});
}

TEST_CASE("wire: items of other types round-trip through Boost", "[wire]") {
  check_items_round_trip(std::vector<std::string>{"a", "", std::string(1000, 'x')});
  check_items_round_trip(std::vector<std::vector<int>>{{1, 2}, {}, {3}});
}

TEST_CASE("wire: empty chunks round-trip", "[wire]") {
  check_items_round_trip(std::vector<std::uint64_t>{});
  check_items_round_trip(std::vector<std::string>{});
  CHECK(round_trip(std::vector<item_result<double>>{}, 7).empty());
  CHECK(round_trip(std::vector<item_result<std::string>>{}, 7).empty());
  CHECK(detail::split_items<std::uint64_t>(detail::encode_items(std::vector<std::uint64_t>{})).empty());
}

TEST_CASE("wire: flat records with failures mixed in keep their values, errors and positions", "[wire]") {
  using R = std::uint64_t;
  std::vector<item_result<R>> records;
  records.push_back(item_result<R>::failure(0, "first fails"));
  records.push_back(item_result<R>::success(0, 42));
  records.push_back(item_result<R>::failure(0, ""));  // an empty message is still an error
  records.push_back(item_result<R>::failure(0, std::string(5000, 'e')));
  records.push_back(item_result<R>::success(0, 0));
  records.push_back(item_result<R>::failure(0, "last fails"));
  check_records(round_trip(records, 100), records, 100);

  std::vector<item_result<point>> points{item_result<point>::success(0, {1.0, 7}), item_result<point>::failure(0, "no")};
  check_records(round_trip(points, 0), points, 0);
}

TEST_CASE("wire: records of other types with failures mixed in round-trip", "[wire]") {
  using R = std::string;
  std::vector<item_result<R>> records{item_result<R>::success(0, "x"), item_result<R>::failure(0, "boom"),
                                      item_result<R>::success(0, ""), item_result<R>::failure(0, "again")};
  check_records(round_trip(records, 3), records, 3);
  using V = std::vector<double>;
  std::vector<item_result<V>> vectors{item_result<V>::failure(0, "none"), item_result<V>::success(0, {1.0, 2.0})};
  check_records(round_trip(vectors, 0), vectors, 0);
}

TEST_CASE("wire: a failed chunk gives every item the reason", "[wire]") {
  const auto flat = detail::decode_records<double>(detail::encode_failed_records<double>(3, "worker died"), 10);
  const auto boosted = detail::decode_records<std::string>(detail::encode_failed_records<std::string>(3, "worker died"), 10);
  REQUIRE(flat.size() == 3);
  REQUIRE(boosted.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(flat[i].index() == 10 + i);
    CHECK(flat[i].error() == "worker died");
    CHECK(boosted[i].index() == 10 + i);
    CHECK(boosted[i].error() == "worker died");
  }
}

TEST_CASE("wire: a chunk splits into one chunk per item", "[wire]") {
  const std::vector<std::uint64_t> flat{5, 6, 7};
  const auto pieces = detail::split_items<std::uint64_t>(detail::encode_items(flat));
  REQUIRE(pieces.size() == flat.size());
  for (std::size_t i = 0; i < flat.size(); ++i) CHECK(detail::decode_items<std::uint64_t>(pieces[i]) == std::vector{flat[i]});

  const std::vector<std::string> words{"one", "", "three"};
  const auto word_pieces = detail::split_items<std::string>(detail::encode_items(words));
  REQUIRE(word_pieces.size() == words.size());
  for (std::size_t i = 0; i < words.size(); ++i) CHECK(detail::decode_items<std::string>(word_pieces[i]) == std::vector{words[i]});
}

TEST_CASE("wire: the records reader takes records one at a time and counts what is left", "[wire]") {
  detail::record_writer<int> writer(3);
  writer.success(1);
  writer.failure("two");
  writer.success(3);
  detail::record_reader<int> reader(std::move(writer).payload());
  CHECK(reader.size() == 3);
  CHECK(*reader.take(0) == 1);
  CHECK(reader.remaining() == 2);
  CHECK(reader.take(1).error() == "two");
  CHECK(*reader.take(2) == 3);
  CHECK(reader.remaining() == 0);
}

TEST_CASE("wire: a torn payload is an error, not a crash", "[wire]") {
  std::string items = detail::encode_items(std::vector<std::uint64_t>{1, 2, 3});
  items.resize(items.size() - 4);
  CHECK_THROWS_AS(detail::item_reader<std::uint64_t>(items), std::runtime_error);
  CHECK_THROWS_AS(detail::decode_records<std::uint64_t>(std::string(3, '\0')), std::runtime_error);
  detail::record_writer<std::uint64_t> unfinished(2);
  unfinished.success(1);
  CHECK_THROWS_AS(std::move(unfinished).payload(), std::logic_error);
}

TEST_CASE("wire: an item's record is small and copies its error", "[wire]") {
  static_assert(sizeof(item_result<std::uint64_t>) <= 3 * sizeof(std::uint64_t));
  const auto failed = item_result<int>::failure(4, "bad");
  auto copy = failed;
  CHECK(copy.error() == "bad");
  auto moved = std::move(copy);
  CHECK(moved.error() == "bad");
  copy = moved;
  CHECK(copy.error() == "bad");
  CHECK(copy.index() == 4);
}
