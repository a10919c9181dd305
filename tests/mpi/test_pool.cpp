// The pool on several ranks, where it differs from a run without a launcher: ranks that sit out
// when the pool asks for fewer workers than there are ranks, and a serial plan that runs on the
// root alone. The scenarios both worlds share are in tests/pool_scenarios.cpp.
//
// Every rank makes the same pool calls in the same order; only the root gets records. Checks that
// may differ between ranks are CHECKs made after the collective call, never REQUIREs inside it, so
// a failure on one rank cannot leave the others waiting.
#include "../pool_scenarios.hpp"

#include <amorsize/optimize.hpp>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace amorsize;
using namespace pool_test;

// Verbose output names the worker ranks and the ranks that sit out when the pool asks for fewer
// workers per node than there are ranks; only the asked-for rank runs items.
TEST_CASE("verbose output mentions the ranks that sit out", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 40;
  const std::vector<int> data = iota_items(count);
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    return x + 1;
  };
  std::ostringstream log;
  pool_options options;
  options.workers_per_node = {1};
  options.verbose = true;
  options.log = &log;
  pool p(options);
  std::vector<item_result<int>> records = p.map(fn, data, 3);
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);

  INFO("rank " << s.rank() << " of " << s.size() << "; log: " << log.str());
  if (!s.is_root()) {
    CHECK(records.empty());
    CHECK(log.str().empty());
    return;
  }
  CHECK(problems_of<int>(records, count, true, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == static_cast<int>(r.index()) + 1 ? "" : "wrong";
        }) == "");
  if (s.size() > 1) {
    const int sitting_out = s.size() - 2;
    CHECK(log.str().find("1 worker ranks of " + std::to_string(s.size())) != std::string::npos);
    CHECK(log.str().find(std::to_string(sitting_out) + " sit out") != std::string::npos);
    CHECK(calls_per_rank[1] == count);
    for (std::size_t rank = 2; rank < calls_per_rank.size(); ++rank) {
      CHECK(calls_per_rank[rank] == 0);
    }
  }
}

// A plan that says serial under MPI (cheap items, min_speedup out of reach): the root runs every
// item itself; the other ranks' calls return no record and do not run the function (README, "Under
// MPI": only the root's data is read and only the root gets records).
TEST_CASE("a serial plan under MPI runs on the root only", "[mpi][pool]") {
  session& s = session::current();
  constexpr std::size_t count = 100;
  const std::vector<int> data = iota_items(count);
  std::size_t calls = 0;
  auto fn = [&calls](const int& x) {
    ++calls;
    return x - 1;
  };
  optimize_options options;
  options.min_speedup = 1e9;
  options.use_spawn_benchmark = false;
  options.use_chunking_benchmark = false;
  auto result = optimize(fn, data, options);
  pool p(result);
  std::vector<item_result<int>> records;
  auto stream = p.imap(fn, result);
  for (const auto& r : stream) {
    records.push_back(r);
  }
  const std::vector<unsigned long long> calls_per_rank = gather_counts(calls);

  INFO("rank " << s.rank() << " of " << s.size() << "; plan: " << result.reason);
  CHECK(result.serial);
  CHECK(result.backend == backend_kind::serial);
  if (!s.is_root()) {
    CHECK(records.empty());
    CHECK(calls == 0);
    return;
  }
  CHECK(problems_of<int>(records, count, true, [](const item_result<int>& r) -> std::string {
          return r.ok() && r.value() == static_cast<int>(r.index()) - 1 ? "" : "wrong";
        }) == "");
  CHECK(calls_per_rank[0] == count);
}
