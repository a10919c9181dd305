// Tests that every collective call agrees on what is being called before anything else: a rank
// that calls a different function of the same type, or another entry point, gets error(usage) on
// every rank instead of wrong results or a hang, and every rank stays usable afterwards.
//
// With one rank no mismatch is possible: each test then checks that the calls it would mismatch
// run on the single rank and give the right results.
#include <amorsize/error.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/pool.hpp>
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

namespace {

/// One of two functions of the same type: adds 1.
int add_one(const int& x) {
  return x + 1;
}

/// The other: adds 1000, so results show which function ran.
int add_thousand(const int& x) {
  return x + 1000;
}

using int_function = int (*)(const int&);

/// Items 0 .. count-1.
std::vector<int> items(int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(i);
  }
  return out;
}

/// Runs `call` and returns the message of the amorsize::error it threw, checking its code is usage
/// ("" when it threw nothing).
template <class Call>
std::string usage_error(Call&& call) {
  try {
    call();
  } catch (const amorsize::error& e) {
    CHECK(e.code() == amorsize::exit_code::usage);
    return e.what();
  }
  return {};
}

/// Checks on the root that `records` hold add_one's result for every item in input order.
template <class Records>
void check_add_one(const Records& records, int count) {
  if (!amorsize::session::current().is_root()) {
    CHECK(records.empty());
    return;
  }
  CHECK(records.size() == static_cast<std::size_t>(count));
  if (records.size() != static_cast<std::size_t>(count)) {
    return;  // not REQUIRE: the other ranks go on to the next collective call
  }
  for (int i = 0; i < count; ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    CHECK(r.index() == static_cast<std::size_t>(i));
    CHECK(r.ok());
    if (r.ok()) {
      CHECK(r.value() == i + 1);
    }
  }
}

/// Checks that a mismatch was reported on this rank: it names a rank and both calls.
void check_mismatch(const std::string& message, const std::string& root_call, const std::string& other_call) {
  INFO("message: " << message);
  CHECK(message.find("rank 1 called '" + other_call) == 0);
  CHECK(message.find("while the root called '" + root_call) != std::string::npos);
}

/// Runs add_one over 50 items with map on every rank and checks the root's results: after a
/// mismatch, every rank is still making the same calls with the same counters.
void check_still_usable() {
  amorsize::pool p(2);
  check_add_one(p.map(add_one, items(50)), 50);
}

}  // namespace

TEST_CASE("a different function of the same type on another rank is an error on every rank", "[mpi][agreement]") {
  amorsize::session& session = amorsize::session::current();
  const std::vector<int> data = items(200);
  const int_function fn = session.is_root() ? add_one : add_thousand;
  INFO("rank " << session.rank() << " of " << session.size());

  SECTION("a function pointer, pool(int)") {
    amorsize::pool p(2);
    std::vector<amorsize::item_result<int>> records;
    const std::string message = usage_error([&] { records = p.map(fn, data); });
    if (session.size() > 1) {
      check_mismatch(message, "map #", "map #");
      CHECK(message.find("int (*)(int const&)") != std::string::npos);
    } else {
      CHECK(message.empty());
      check_add_one(records, 200);
    }
  }

  SECTION("a std::function holding a function pointer, pool(plan)") {
    amorsize::plan plan;
    plan.backend = amorsize::backend_kind::mpi;
    plan.serial = false;
    plan.workers_per_node = {2};
    plan.schedule = amorsize::chunk_schedule{amorsize::schedule_kind::fixed, 10, 10};
    amorsize::pool p(plan);
    const std::function<int(const int&)> wrapped = fn;
    std::vector<amorsize::item_result<int>> records;
    const std::string message = usage_error([&] { records = p.map(wrapped, data); });
    if (session.size() > 1) {
      check_mismatch(message, "map #", "map #");
      CHECK(message.find("std::function<int (int const&)>") != std::string::npos);
    } else {
      CHECK(message.empty());
      check_add_one(records, 200);
    }
  }

  check_still_usable();
}

TEST_CASE("optimize on the root while the others call imap is an error on every rank and never hangs",
          "[mpi][agreement]") {
  amorsize::session& session = amorsize::session::current();
  const std::vector<int> data = items(100);
  INFO("rank " << session.rank() << " of " << session.size());
  amorsize::optimize_options options;
  options.use_spawn_benchmark = false;
  options.use_chunking_benchmark = false;

  if (session.size() == 1) {
    // Both calls, one after the other, on the single rank.
    const auto result = amorsize::optimize(add_one, data, options);
    amorsize::pool p(result);
    std::vector<amorsize::item_result<int>> records;
    for (const auto& r : p.imap(add_one, result)) {
      records.push_back(r);
    }
    check_add_one(records, 100);
    return;
  }
  const std::string message = usage_error([&] {
    if (session.is_root()) {
      (void)amorsize::optimize(add_one, data, options);
    } else {
      amorsize::pool p(2);
      auto stream = p.imap(add_one, data);
      while (stream.next()) {
      }
    }
  });
  check_mismatch(message, "optimize #", "imap #");
  check_still_usable();
}

TEST_CASE("map on the root while the others call imap or process_in_batches is an error on every rank",
          "[mpi][agreement]") {
  amorsize::session& session = amorsize::session::current();
  const std::vector<int> data = items(100);
  INFO("rank " << session.rank() << " of " << session.size());
  amorsize::pool p(2);
  std::vector<amorsize::item_result<int>> records;

  SECTION("imap") {
    const std::string message = usage_error([&] {
      if (session.is_root() || session.size() == 1) {
        records = p.map(add_one, data);
      } else {
        auto stream = p.imap(add_one, data);
        while (stream.next()) {
        }
      }
    });
    if (session.size() > 1) {
      check_mismatch(message, "map #", "imap #");
    } else {
      CHECK(message.empty());
      check_add_one(records, 100);
    }
  }

  SECTION("process_in_batches with an estimated batch size (it agrees once, then samples on the root)") {
    const std::string message = usage_error([&] {
      if (session.is_root() || session.size() == 1) {
        records = p.map(add_one, data);
      } else {
        p.process_in_batches(add_one, data, [](auto&&) {}, 0);
      }
    });
    if (session.size() > 1) {
      check_mismatch(message, "map #", "process_in_batches #");
    } else {
      CHECK(message.empty());
      check_add_one(records, 100);
    }
  }

  SECTION("process_in_batches on the root, imap_unordered on the others") {
    const std::string message = usage_error([&] {
      if (session.is_root() || session.size() == 1) {
        p.process_in_batches(add_one, data, [&](auto&& batch) {
          records.insert(records.end(), batch.begin(), batch.end());
        }, 0);
      } else {
        auto stream = p.imap_unordered(add_one, data);
        while (stream.next()) {
        }
      }
    });
    if (session.size() > 1) {
      check_mismatch(message, "process_in_batches #", "imap_unordered #");
    } else {
      CHECK(message.empty());
      check_add_one(records, 100);
    }
  }

  check_still_usable();
}

TEST_CASE("the same function on every rank agrees and runs", "[mpi][agreement]") {
  amorsize::session& session = amorsize::session::current();
  const std::vector<int> data = items(300);
  INFO("rank " << session.rank() << " of " << session.size());
  amorsize::pool p(2);

  SECTION("a function pointer") {
    check_add_one(p.map(add_one, data), 300);
  }
  SECTION("a lambda") {
    check_add_one(p.map([](const int& x) { return x + 1; }, data), 300);
  }
  SECTION("a std::function holding the same function") {
    const std::function<int(const int&)> wrapped = add_one;
    check_add_one(p.map(wrapped, data), 300);
  }
  SECTION("process_in_batches with an estimated batch size, then optimize and map from its plan") {
    std::vector<amorsize::item_result<int>> records;
    p.process_in_batches(add_one, data, [&](auto&& batch) { records.insert(records.end(), batch.begin(), batch.end()); });
    check_add_one(records, 300);

    amorsize::optimize_options options;
    options.use_spawn_benchmark = false;
    options.use_chunking_benchmark = false;
    const auto result = amorsize::optimize(add_one, data, options);
    amorsize::pool planned(result);
    check_add_one(planned.map(add_one, result), 300);
  }
}
