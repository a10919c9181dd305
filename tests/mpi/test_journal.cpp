// The pool's journal on ranks: only the root reads and writes it, the worker ranks serve as usual,
// and a call resumed from it runs only the items it lacks.
//
// Every rank makes the same pool calls in the same order; only the root gets records. Checks that
// may differ between ranks are CHECKs made after the collective call.
#include "../pool_scenarios.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

using namespace amorsize;
using namespace pool_test;

TEST_CASE("journal on ranks: a resumed call runs only the items the journal lacks", "[mpi][pool][journal]") {
  session& s = session::current();
  // Only the root reads and writes the journal; every rank sets the same options, with a path of its own.
  const std::string journal =
      (std::filesystem::temp_directory_path() / ("amorsize-mpi-journal-" + std::to_string(::getpid()))).string();
  if (s.is_root()) std::filesystem::remove(journal);
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    return 3 * x;
  };
  pool_options options;
  options.backend = parallel_backend();
  options.workers_per_node = {scenario_workers()};
  options.journal = journal;
  pool p(options);
  const auto check_records = [&](const std::vector<item_result<int>>& records, std::size_t count) {
    CHECK(problems_of<int>(records, count, true, [](const item_result<int>& r) -> std::string {
            return r.ok() && r.value() == 3 * static_cast<int>(r.index()) ? "" : "wrong";
          }) == "");
  };

  // The first call runs the first 12 items: a prefix of the data, so its records are the data's.
  const std::vector<int> records_12 = iota_items(12);
  const auto first = p.map(fn, records_12, 2);
  const std::vector<unsigned long long> first_calls = gather_counts(calls);
  calls = 0;
  const auto second = p.map(fn, iota_items(30), 2);
  const run_stats second_stats = p.last_run();
  const std::vector<unsigned long long> second_calls = gather_counts(calls);
  calls = 0;
  const auto third = p.map(fn, iota_items(30), 2);
  const run_stats third_stats = p.last_run();
  const std::vector<unsigned long long> third_calls = gather_counts(calls);

  INFO("rank " << s.rank() << " of " << s.size());
  if (!s.is_root()) {
    CHECK(first.empty());
    CHECK(second.empty());
    CHECK(third.empty());
    return;
  }
  const auto sum = [](const std::vector<unsigned long long>& v) { return std::accumulate(v.begin(), v.end(), 0ULL); };
  check_records(first, 12);
  CHECK(sum(first_calls) == 12);
  check_records(second, 30);
  CHECK(second_stats.journaled == 12);
  CHECK(second_stats.items == 30);
  CHECK(sum(second_calls) == 18);
  check_records(third, 30);
  CHECK(third_stats.journaled == 30);
  CHECK(sum(third_calls) == 0);
  std::filesystem::remove(journal);
}
