// A pool call's journal (pool_options::journal) without a launcher: a second call computes nothing,
// a stopped call resumes with every item run once overall, a cut journal resumes, and a changed
// input, another result type or garbage is refused.
#include <amorsize/optimize.hpp>
#include <amorsize/pool.hpp>
#include <amorsize/resume.hpp>
#include <amorsize/stop.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

/// A fresh folder for one test's files, removed at the end.
class temp_folder {
 public:
  temp_folder() {
    std::string name = (std::filesystem::temp_directory_path() / "amorsize-journal-XXXXXX").string();
    if (!::mkdtemp(name.data())) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~temp_folder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_folder(const temp_folder&) = delete;
  temp_folder& operator=(const temp_folder&) = delete;
  /// Returns the path of `name` in the folder.
  [[nodiscard]] std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Appends `line` and a newline to `path` with one O_APPEND write, so worker processes may share it.
void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  const std::string text = line + '\n';
  const bool whole = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!whole) throw std::runtime_error("cannot write " + path);
}

/// Returns how many times each item was logged in `path`.
std::map<int, int> runs_logged(const std::string& path) {
  std::map<int, int> runs;
  std::ifstream in(path);
  for (int item = 0; in >> item;) ++runs[item];
  return runs;
}

/// The test function: logs its item to `log`, fails on 7, else returns the item times ten.
struct logged_times_ten {
  std::string log;
  int sleep_ms = 0;
  int operator()(const int& x) const {
    append_line(log, std::to_string(x));
    if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    if (x == 7) throw std::runtime_error("seven fails");
    return 10 * x;
  }
};

/// Items 0 .. n-1.
std::vector<int> items_up_to(int n) {
  std::vector<int> items(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i;
  return items;
}

/// Options on `kind` with two workers and fixed chunks of `chunksize`, journaled to `journal`.
pool_options journaled(backend_kind kind, const std::string& journal, std::size_t chunksize = 1) {
  pool_options options;
  options.backend = kind;
  options.workers_per_node = {2};
  options.schedule.chunksize = chunksize;
  options.schedule.adaptive = false;
  options.journal = journal;
  return options;
}

/// Returns the records of one pass over `records`.
template <class Stream>
std::vector<item_result<int>> take_all(Stream& records) {
  std::vector<item_result<int>> all;
  while (auto r = records.next()) all.push_back(std::move(*r));
  return all;
}

/// Checks that `records` are those of logged_times_ten over items 0 .. n-1, in input order.
void check_complete_in_order(const std::vector<item_result<int>>& records, int n) {
  REQUIRE(records.size() == static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < records.size(); ++i) {
    INFO("record " << i);
    REQUIRE(records[i].index() == i);
    if (i == 7) {
      CHECK_FALSE(records[i].ok());
      CHECK_THAT(records[i].error(), Contains("seven fails"));
    } else {
      REQUIRE(records[i].ok());
      CHECK(records[i].value() == 10 * static_cast<int>(i));
    }
  }
}

/// Checks that every item 0 .. n-1 ran exactly once according to `log`.
void check_each_ran_once(const std::string& log, int n) {
  const std::map<int, int> runs = runs_logged(log);
  CHECK(runs.size() == static_cast<std::size_t>(n));
  for (const auto& [item, count] : runs) {
    INFO("item " << item);
    CHECK(count == 1);
  }
}

}  // namespace

TEST_CASE("journal: a second call with the same journal computes nothing and hands over the same records",
          "[pool][journal]") {
  for (const backend_kind kind : {backend_kind::processes, backend_kind::threads, backend_kind::serial}) {
    DYNAMIC_SECTION(to_string(kind)) {
      temp_folder folder;
      const logged_times_ten fn{folder / "runs.log"};
      pool workers(journaled(kind, folder / "journal", 3));
      const std::vector<int> items = items_up_to(40);

      std::vector<item_result<int>> first;
      {
        auto first_stream = workers.imap(fn, items);  // holds the journal until it is destroyed
        first = take_all(first_stream);
        CHECK(first_stream.stats().journaled == 0);
      }
      check_complete_in_order(first, 40);
      check_each_ran_once(fn.log, 40);

      auto held = workers.imap(fn, items);  // one call at a time per journal
      CHECK_THROWS_WITH(workers.imap(fn, items), Contains("in use by another call"));
      held = decltype(held)(nullptr);
      auto second_stream = workers.imap(fn, items);
      const std::vector<item_result<int>> second = take_all(second_stream);
      check_complete_in_order(second, 40);
      check_each_ran_once(fn.log, 40);  // nothing ran again
      const run_stats stats = second_stream.stats();
      CHECK(stats.journaled == 40);
      CHECK(stats.items == 40);
      CHECK(stats.errors == 1);
      for (std::size_t i = 0; i < first.size(); ++i) CHECK(second[i].error() == first[i].error());
    }
  }
}

TEST_CASE("journal: a call stopped part-way resumes, every item run once overall", "[pool][journal][stop]") {
  for (const bool ordered : {true, false}) {
    DYNAMIC_SECTION((ordered ? "imap" : "imap_unordered")) {
      temp_folder folder;
      const logged_times_ten fn{folder / "runs.log", 2};
      const std::vector<int> items = items_up_to(60);
      const auto call = [&](pool& p) { return ordered ? p.imap(fn, items) : p.imap_unordered(fn, items); };

      stop_request stop;
      pool_options options = journaled(backend_kind::processes, folder / "journal");
      options.stop = &stop;
      pool stopped(options);
      std::size_t handed = 0;
      {
        auto records = call(stopped);
        while (records.next()) {
          if (++handed == 15) stop.drain(30.0);
        }
        CHECK(records.stats().stopped);
      }
      REQUIRE(handed >= 15);
      REQUIRE(handed < 60);

      options.stop = nullptr;
      pool resumed(options);
      auto records = call(resumed);
      std::vector<item_result<int>> all = take_all(records);
      CHECK(records.stats().journaled == handed);
      CHECK(records.stats().items == 60);
      if (!ordered) {
        std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.index() < b.index(); });
      }
      check_complete_in_order(all, 60);
      check_each_ran_once(fn.log, 60);
    }
  }
}

TEST_CASE("journal: a journal cut in its last record resumes, the cut record's item runs again", "[pool][journal]") {
  temp_folder folder;
  const std::string journal = folder / "journal";
  const logged_times_ten fn{folder / "runs.log"};
  const std::vector<int> items = items_up_to(20);
  pool workers(journaled(backend_kind::threads, journal));
  workers.map(fn, items);
  const auto whole = std::filesystem::file_size(journal);

  std::size_t whole_records = 0;
  SECTION("in its payload") {
    std::filesystem::resize_file(journal, whole - 2);
    whole_records = 19;
  }
  SECTION("in its header") {
    std::ofstream(journal, std::ios::binary | std::ios::app) << "REC1\x05";
    whole_records = 20;
  }
  check_complete_in_order(workers.map(fn, items), 20);
  CHECK(workers.last_run().journaled == whole_records);
  CHECK(std::filesystem::file_size(journal) == whole);

  // The journal is whole again: a third call runs nothing.
  const auto runs_before = runs_logged(fn.log);
  check_complete_in_order(workers.map(fn, items), 20);
  CHECK(workers.last_run().journaled == 20);
  CHECK(runs_logged(fn.log) == runs_before);
}

TEST_CASE("journal: a changed or shortened input is refused with input_error", "[pool][journal]") {
  temp_folder folder;
  const logged_times_ten fn{folder / "runs.log"};
  std::vector<int> items = items_up_to(12);
  for (const backend_kind kind : {backend_kind::processes, backend_kind::serial}) {
    DYNAMIC_SECTION(to_string(kind)) {
      const std::string journal = folder / ("journal-" + std::string(to_string(kind)));
      pool workers(journaled(kind, journal));
      workers.map(fn, items);

      std::vector<int> changed = items;
      changed[5] = 500;
      CHECK_THROWS_AS(workers.map(fn, changed), input_error);
      CHECK_THROWS_WITH(workers.map(fn, changed), Contains("item 5") && Contains(journal));

      const std::vector<int> shorter = items_up_to(8);
      CHECK_THROWS_AS(workers.map(fn, shorter), input_error);
      CHECK_THROWS_WITH(workers.map(fn, shorter), Contains("but the input has 8 items"));

      // A generator does not say its size: the call finds out when it ends.
      const auto generated = [] {
        return make_source([i = 0]() mutable -> std::optional<int> { return i < 8 ? std::optional<int>(i++) : std::nullopt; });
      };
      CHECK_THROWS_WITH(workers.map(fn, generated()), Contains("ended after 8 of their items"));
    }
  }
}

TEST_CASE("journal: a journal of another result type, or not a journal, is refused", "[pool][journal]") {
  temp_folder folder;
  const std::string journal = folder / "journal";
  const std::vector<int> items = items_up_to(5);
  pool workers(journaled(backend_kind::threads, journal));
  workers.map([](int x) { return 2 * x; }, items);

  const auto as_text = [](int x) { return std::to_string(x); };
  CHECK_THROWS_AS(workers.map(as_text, items), input_error);
  CHECK_THROWS_WITH(workers.map(as_text, items), Contains(journal) && Contains("another journal") &&
                                                     Contains("holds results of type int"));

  std::ofstream(journal, std::ios::binary | std::ios::trunc) << "a shopping list\nmilk\n";
  CHECK_THROWS_WITH(workers.map([](int x) { return 2 * x; }, items), Contains("not a journal") && Contains("delete it"));
}

TEST_CASE("journal: map and process_in_batches hand over the journal's records and the new ones", "[pool][journal]") {
  temp_folder folder;
  const std::string journal = folder / "journal";
  const logged_times_ten fn{folder / "runs.log"};
  const std::vector<int> items = items_up_to(30);
  {
    // A serial call computes an item as it is taken: leaving after ten leaves ten in the journal.
    pool serial(journaled(backend_kind::serial, journal));
    auto records = serial.imap(fn, items);
    for (int i = 0; i < 10; ++i) REQUIRE(records.next());
  }
  pool workers(journaled(backend_kind::processes, journal, 2));
  std::vector<std::size_t> sizes;
  std::vector<item_result<int>> all;
  workers.process_in_batches(
      fn, items,
      [&](std::vector<item_result<int>>&& batch) {
        sizes.push_back(batch.size());
        for (auto& r : batch) all.push_back(std::move(r));
      },
      7);
  check_complete_in_order(all, 30);
  CHECK(sizes == std::vector<std::size_t>{7, 7, 7, 7, 2});
  CHECK(workers.last_run().journaled == 10);
  check_each_ran_once(fn.log, 30);

  check_complete_in_order(workers.map(fn, items), 30);
  CHECK(workers.last_run().journaled == 30);
  CHECK(workers.last_run().items == 30);
  check_each_ran_once(fn.log, 30);
}

TEST_CASE("journal: items never run after a stop on error stay out of the journal", "[pool][journal]") {
  temp_folder folder;
  const logged_times_ten fn{folder / "runs.log"};
  const std::vector<int> items = items_up_to(12);
  pool_options options = journaled(backend_kind::serial, folder / "journal");
  options.on_error = error_policy::stop;
  pool stopping(options);
  const std::vector<item_result<int>> first = stopping.map(fn, items);
  REQUIRE(first.size() == 12);
  CHECK_THAT(first[11].error(), Contains("not run"));

  options.on_error = error_policy::keep_going;
  pool workers(options);
  check_complete_in_order(workers.map(fn, items), 12);
  CHECK(workers.last_run().journaled == 8);  // items 0 to 7 ran; 8 to 11 did not
  check_each_ran_once(fn.log, 12);
}

TEST_CASE("journal: an optimization result with a journal is refused", "[pool][journal]") {
  temp_folder folder;
  const std::vector<int> items = items_up_to(20);
  const auto fn = [](int x) { return x + 1; };
  optimize_options planning;
  planning.backend = backend_kind::serial;
  auto planned = optimize(fn, items, planning);
  pool_options options = pool(planned).options();
  options.journal = folder / "journal";
  pool workers(options);
  CHECK_THROWS_AS(workers.map(fn, planned), input_error);
  CHECK_THROWS_WITH(workers.map(fn, planned), Contains("pass the plan to the pool and the data to the call"));
  CHECK(workers.map(fn, items).size() == 20);  // the data itself is fine
}

TEST_CASE("resumed_items: positions not read yet map past the finished ones ahead", "[resume]") {
  resumed_items<int> items(make_source(items_up_to(10)), {{3, item_key("", 3)}, {4, item_key("", 4)}, {8, item_key("", 8)}},
                           "", false);
  source<int> remaining = items.remaining();
  REQUIRE(remaining.next() == 0);
  REQUIRE(remaining.next() == 1);
  // Remaining original positions: 0 1 2 5 6 7 9.
  CHECK(items.original_index(1) == 1);
  CHECK(items.original_index(5) == 7);
  CHECK(items.original_index(6) == 9);
  CHECK(items.original_index(2) == 2);
  CHECK(items.original_index(3) == 5);
}

// Keys written by earlier runs must still match: the fast path gives the archive's own bytes.
TEST_CASE("item keys of numbers and strings hash the bytes the archive writes", "[resume]") {
  CHECK(key_bytes(std::uint64_t{123456789}) == detail::to_bytes(std::uint64_t{123456789}));
  CHECK(key_bytes(-7) == detail::to_bytes(-7));
  CHECK(key_bytes(2.5) == detail::to_bytes(2.5));
  CHECK(key_bytes(std::string()) == detail::to_bytes(std::string()));
  CHECK(key_bytes(std::string("gzip -c a.txt > a.txt.gz")) == detail::to_bytes(std::string("gzip -c a.txt > a.txt.gz")));
  const std::vector<int> other{1, 2, 3};
  CHECK(key_bytes(other) == detail::to_bytes(other));
  CHECK(item_key("ctx", std::string("x")) != item_key("ctx", std::string("y")));
  CHECK(item_key("ctx", 1) != item_key("other", 1));
}
