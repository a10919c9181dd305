// Tests of the session on several ranks: layout, broadcast, barrier, link costs, polite waiting.
//
// Every rank runs every test; collective calls are made unconditionally and checked with CHECK
// (not REQUIRE), so a failure on one rank cannot leave the others waiting in a collective.
#include <amorsize/error.hpp>
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

/// CPU seconds used by this whole process (all its threads).
double process_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

std::string describe(const amorsize::cluster_layout& layout) {
  std::ostringstream text;
  text << layout.mpi << ' ' << layout.world_size << " nodes";
  for (const amorsize::node_facts& node : layout.nodes) {
    text << ' ' << node.hostname << '/' << node.usable_cores << '/' << node.total_memory;
  }
  text << " ranks_per_node";
  for (int ranks : layout.ranks_per_node) {
    text << ' ' << ranks;
  }
  text << " node_of_rank";
  for (int node : layout.node_of_rank) {
    text << ' ' << node;
  }
  return text.str();
}

std::string describe(const amorsize::link_cost& link) {
  char text[160];
  std::snprintf(text, sizeof text, "%d %d %a %a", link.measured ? 1 : 0, link.partner_rank, link.latency_seconds,
                link.bandwidth_bytes_per_second);
  return text;
}

/// Gathers one value from every rank on the root (empty elsewhere).
std::vector<double> gather_on_root(double value, const amorsize::session& session) {
  std::vector<double> values(session.is_root() ? static_cast<std::size_t>(session.size()) : 0);
  MPI_Gather(&value, 1, MPI_DOUBLE, values.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return values;
}

}  // namespace

TEST_CASE("the session runs on MPI under the launcher", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  int world_rank = -1;
  int world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  CHECK(session.mpi());
  CHECK(session.rank() == world_rank);
  CHECK(session.size() == world_size);
  CHECK(session.is_root() == (world_rank == 0));
}

TEST_CASE("a second session is refused on every rank", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  try {
    amorsize::session second;
    FAIL("a second session was created while one was alive");
  } catch (const amorsize::error& e) {
    CHECK(e.code() == amorsize::exit_code::mpi_failure);
  }
  CHECK(&amorsize::session::current() == &session);
}

TEST_CASE("the layout accounts for every rank and is the same on every rank", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  CHECK(layout.mpi);
  CHECK(layout.world_size == session.size());
  CHECK(layout.nodes.size() == layout.ranks_per_node.size());
  CHECK(std::accumulate(layout.ranks_per_node.begin(), layout.ranks_per_node.end(), 0) == session.size());
  CHECK(layout.node_of_rank.size() == static_cast<std::size_t>(session.size()));
  if (!layout.node_of_rank.empty() && !layout.nodes.empty()) {
    CHECK(layout.node_of_rank[0] == 0);
    const int my_node = layout.node_of_rank[static_cast<std::size_t>(session.rank())];
    CHECK(layout.nodes[static_cast<std::size_t>(my_node)].hostname == amorsize::probe_node().hostname);
  }
  for (int ranks : layout.ranks_per_node) {
    CHECK(ranks >= 1);
  }

  const std::string mine = describe(layout);
  CHECK(session.broadcast(mine) == mine);

  // A second call answers from the cache: the same object, not a new gathering.
  CHECK(&session.layout() == &layout);
}

TEST_CASE("a broadcast carries the root's text to every rank", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  CHECK(session.broadcast(session.is_root() ? "from the root" : "ignored") == "from the root");
  CHECK(session.broadcast(session.is_root() ? "" : "not empty").empty());

  std::string large(std::size_t{1} << 20, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) {
    large[i] = static_cast<char>(i * 7 % 251);
  }
  const std::string received = session.broadcast(session.is_root() ? large : std::string("short"));
  CHECK(received.size() == large.size());
  CHECK(received == large);
}

TEST_CASE("a barrier holds every rank until the last arrives", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  session.barrier();
  const auto start = steady::now();
  if (session.is_root()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  session.barrier();
  // Ranks leave the first barrier at different times; none leaves the second before the root's sleep ends.
  CHECK(seconds_since(start) >= 0.05);
}

TEST_CASE("links are measured when there is a partner and are the same on every rank", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  const amorsize::mpi_links& links = session.links();

  const bool has_same_node = !layout.ranks_per_node.empty() && layout.ranks_per_node[0] >= 2;
  const bool has_other_node = layout.ranks_per_node.size() >= 2;
  CHECK(links.same_node.measured == has_same_node);
  CHECK(links.other_node.measured == has_other_node);
  for (const amorsize::link_cost* link : {&links.same_node, &links.other_node}) {
    if (link->measured) {
      CHECK(link->partner_rank > 0);
      CHECK(link->partner_rank < session.size());
      CHECK(link->latency_seconds > 0.0);
      CHECK(link->latency_seconds < 0.05);  // microseconds when idle; oversubscribed ranks wait their turn
      CHECK(link->bandwidth_bytes_per_second > 0.0);
    }
  }
  if (links.same_node.measured) {
    CHECK(layout.node_of_rank[static_cast<std::size_t>(links.same_node.partner_rank)] == 0);
  }
  if (links.other_node.measured) {
    CHECK(layout.node_of_rank[static_cast<std::size_t>(links.other_node.partner_rank)] != 0);
  }
  // Another test may have measured first; then this call is already the cached one. The bound is
  // loose: an idle machine measures in a few milliseconds, a busy one cuts the measurement short.
  CHECK(links.measure_seconds >= 0.0);
  CHECK(links.measure_seconds < 2.0);

  const std::string mine = describe(links.same_node) + " | " + describe(links.other_node);
  CHECK(session.broadcast(mine) == mine);

  // A second call answers from the cache (it measures nothing), not by measuring again.
  const amorsize::mpi_links& cached = session.links();
  CHECK(cached.measure_seconds == 0.0);
  CHECK(describe(cached.same_node) == describe(links.same_node));
  CHECK(describe(cached.other_node) == describe(links.other_node));

  if (session.is_root()) {
    std::printf("links at %d ranks: same_node %s latency %.2f us bandwidth %.2f GB/s; other_node %s latency %.2f us "
                "bandwidth %.2f GB/s; measured in %.3f ms\n",
                session.size(), links.same_node.measured ? "measured" : "absent", links.same_node.latency_seconds * 1e6,
                links.same_node.bandwidth_bytes_per_second * 1e-9, links.other_node.measured ? "measured" : "absent",
                links.other_node.latency_seconds * 1e6, links.other_node.bandwidth_bytes_per_second * 1e-9,
                links.measure_seconds * 1e3);
  }
}

TEST_CASE("ranks waiting for the root do not spin a core", "[mpi]") {
  amorsize::session& session = amorsize::session::current();
  constexpr auto root_delay = std::chrono::milliseconds(300);

  const auto wait_share = [&](auto&& collective) {
    session.barrier();
    const double cpu_start = process_cpu_seconds();
    const auto start = steady::now();
    if (session.is_root()) {
      std::this_thread::sleep_for(root_delay);
    }
    collective();
    const double wall = seconds_since(start);
    const double share = (process_cpu_seconds() - cpu_start) / wall;
    if (!session.is_root()) {
      CHECK(wall >= 0.25);
      CHECK(share < 0.25);
    }
    return gather_on_root(share, session);
  };
  const std::vector<double> broadcast_shares = wait_share([&] { CHECK(session.broadcast("go") == "go"); });
  const std::vector<double> barrier_shares = wait_share([&] { session.barrier(); });

  if (session.is_root() && session.size() > 1) {
    std::printf("waiting CPU share at %d ranks (rank: broadcast, barrier):", session.size());
    for (std::size_t rank = 1; rank < broadcast_shares.size(); ++rank) {
      std::printf(" %zu: %.1f%%, %.1f%%;", rank, broadcast_shares[rank] * 100.0, barrier_shares[rank] * 100.0);
    }
    std::printf("\n");
  }
}
