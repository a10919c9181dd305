// Tests of the MPI backend on several ranks: chunks out and results back, ranks sitting out,
// a root that waits without spinning, call agreement, and which ranks work.
//
// Every rank runs every test. The root's backend stops the other ranks when destroyed, so a failed
// REQUIRE on the root still releases them; collectives are made unconditionally and checked with CHECK.
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

using amorsize::engine::chunk;
using amorsize::engine::chunk_result;
using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

/// CPU seconds used by the calling thread.
double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

/// The bytes of chunk `id`: sizes vary, chunk 1 is empty, chunks 2 and 3 are large.
std::string payload_of(std::uint64_t id) {
  std::size_t bytes = (id * 7919) % 3000;
  if (id == 1) {
    bytes = 0;
  } else if (id == 2) {
    bytes = std::size_t{1} << 20;
  } else if (id == 3) {
    bytes = std::size_t{3} << 20;
  }
  std::string text(bytes, '\0');
  for (std::size_t i = 0; i < bytes; ++i) {
    text[i] = static_cast<char>((id * 31 + i * 7) % 251);
  }
  return text;
}

/// The test's task: the items reversed, then their length; compute_seconds is the length too.
std::string transform(const std::string& items, double& compute_seconds) {
  std::string out(items.rbegin(), items.rend());
  out += "#" + std::to_string(items.size());
  compute_seconds = static_cast<double>(items.size());
  return out;
}

/// Gathers one count from every rank on the root (empty elsewhere).
std::vector<unsigned long long> gather_counts(std::size_t count, const amorsize::session& session) {
  const unsigned long long mine = count;
  std::vector<unsigned long long> counts(session.is_root() ? static_cast<std::size_t>(session.size()) : 0);
  MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, counts.data(), 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  return counts;
}

/// Runs `total` chunks on `backend`, at most `depth` in flight per worker, and checks every result;
/// returns how many each worker answered.
std::vector<std::size_t> run_chunks(amorsize::engine::backend& backend, std::uint64_t total, int depth) {
  const int workers = backend.workers();
  std::vector<int> in_flight(static_cast<std::size_t>(workers), 0);
  std::vector<std::size_t> answered(static_cast<std::size_t>(workers), 0);
  std::map<std::uint64_t, int> sent_to;
  std::vector<int> seen(total, 0);
  std::uint64_t next = 0;
  std::uint64_t received = 0;
  while (received < total) {
    for (int w = 0; w < workers; ++w) {
      while (in_flight[static_cast<std::size_t>(w)] < depth && next < total) {
        const auto first_index = static_cast<std::size_t>(next * 10);
        backend.send(w, chunk{next, first_index, static_cast<std::size_t>(next % 5), payload_of(next)});
        sent_to[next] = w;
        ++in_flight[static_cast<std::size_t>(w)];
        ++next;
      }
    }
    auto event = backend.wait(30.0);
    REQUIRE(event.has_value());
    auto* result = std::get_if<chunk_result>(&*event);
    REQUIRE(result != nullptr);
    REQUIRE(result->id < total);
    CHECK(++seen[result->id] == 1);
    CHECK(result->worker == sent_to[result->id]);
    REQUIRE(result->worker >= 0);
    REQUIRE(result->worker < workers);
    double expected_seconds = 0.0;
    const std::string expected = transform(payload_of(result->id), expected_seconds);
    CHECK(result->payload.size() == expected.size());
    CHECK(result->payload == expected);
    CHECK(result->compute_seconds == expected_seconds);
    --in_flight[static_cast<std::size_t>(result->worker)];
    ++answered[static_cast<std::size_t>(result->worker)];
    ++received;
  }
  return answered;
}

/// Workers per node asking for every rank but the root.
std::vector<int> all_but_root(const amorsize::cluster_layout& layout) {
  std::vector<int> wanted = layout.ranks_per_node;
  --wanted.front();
  return wanted;
}

}  // namespace

TEST_CASE("pick_worker_ranks takes the first ranks of each node but the root", "[mpi][engine]") {
  amorsize::cluster_layout layout;
  layout.world_size = 6;
  layout.ranks_per_node = {2, 2, 2};
  layout.node_of_rank = {0, 0, 1, 1, 2, 2};
  CHECK(amorsize::engine::pick_worker_ranks(layout, {1, 2, 2}) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(amorsize::engine::pick_worker_ranks(layout, {0, 1, 1}) == std::vector<int>{2, 4});
  CHECK(amorsize::engine::pick_worker_ranks(layout, {2, 2, 2}) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(amorsize::engine::pick_worker_ranks(layout, {0, 0, 0}).empty());

  // Ranks of a node need not be consecutive.
  layout.node_of_rank = {0, 1, 2, 0, 1, 2};
  CHECK(amorsize::engine::pick_worker_ranks(layout, {1, 1, 1}) == std::vector<int>{1, 2, 3});
  CHECK(amorsize::engine::pick_worker_ranks(layout, {0, 2, 1}) == std::vector<int>{1, 2, 4});
  CHECK_THROWS_AS(amorsize::engine::pick_worker_ranks(layout, {1, 1}), amorsize::input_error);
}

TEST_CASE("chunks go out to every worker rank and come back", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, all_but_root(layout));
  CHECK(static_cast<int>(ranks.size()) == session.size() - 1);
  constexpr std::uint64_t total = 200;

  std::vector<std::size_t> answered;
  std::size_t served = 0;
  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    CHECK(backend->workers() == session.size() - 1);
    if (backend->workers() > 0) {
      answered = run_chunks(*backend, total, 2);
    } else {
      CHECK_FALSE(backend->wait(0.01).has_value());
    }
    backend->stop();
    backend->stop();
  } else {
    served = amorsize::engine::serve_chunks(session, transform);
    CHECK(served >= 2);
  }

  const std::vector<unsigned long long> counts = gather_counts(served, session);
  if (session.is_root() && !answered.empty()) {
    for (std::size_t w = 0; w < ranks.size(); ++w) {
      CHECK(counts[static_cast<std::size_t>(ranks[w])] == answered[w]);
    }
    unsigned long long sum = 0;
    for (unsigned long long count : counts) {
      sum += count;
    }
    CHECK(sum == total);
  }
}

TEST_CASE("ranks the plan does not need sit out until stop", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  std::vector<int> wanted(layout.ranks_per_node.size(), 0);
  wanted.front() = 1;
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, wanted);
  constexpr std::uint64_t total = 20;

  std::size_t served = 0;
  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    if (backend->workers() > 0) {
      CHECK(run_chunks(*backend, total, 2) == std::vector<std::size_t>{total});
    }
  } else {
    served = amorsize::engine::serve_chunks(session, transform);
    const bool works = std::find(ranks.begin(), ranks.end(), session.rank()) != ranks.end();
    CHECK(served == (works ? total : 0));
  }
  gather_counts(served, session);
}

TEST_CASE("stop abandons the chunks workers still hold", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, all_but_root(layout));
  // Twenty chunks of 100 ms each: the root has two seconds to send its stop before a worker could
  // run all it holds, which even a slow root on a busy machine under a sanitizer does.
  constexpr std::uint64_t per_worker = 20;
  constexpr auto each = std::chrono::milliseconds(100);

  std::size_t served = 0;
  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    if (backend->workers() > 0) {
      for (std::uint64_t id = 0; id < per_worker * ranks.size(); ++id) {
        backend->send(static_cast<int>(id % ranks.size()), chunk{id, 0, 1, payload_of(id)});
      }
      CHECK(backend->wait(10.0).has_value());
      const auto start = steady::now();
      backend->stop();
      // No waiting for every held chunk to run (generous: oversubscribed ranks on a busy machine).
      CHECK(seconds_since(start) < 3.0);
    }
  } else {
    served = amorsize::engine::serve_chunks(session, [&](const std::string& items, double& compute_seconds) {
      std::this_thread::sleep_for(each);
      return transform(items, compute_seconds);
    });
    // Each worker finishes the chunk it is running and drops the rest it holds, not all twenty; a
    // slow root on a busy machine may let a few more run before its stop arrives.
    CHECK(served < per_worker);
  }
  gather_counts(served, session);
}

TEST_CASE("a chunk task that throws loses its worker, not the run", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  std::vector<int> wanted(layout.ranks_per_node.size(), 0);
  wanted.front() = 1;
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, wanted);

  std::size_t served = 0;
  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    if (backend->workers() > 0) {
      backend->send(0, chunk{0, 0, 1, "fine"});
      backend->send(0, chunk{1, 1, 1, "throw"});
      backend->send(0, chunk{2, 2, 1, "fine"});
      auto first = backend->wait(10.0);
      REQUIRE(first.has_value());
      CHECK(std::holds_alternative<chunk_result>(*first));
      auto second = backend->wait(10.0);
      REQUIRE(second.has_value());
      const auto* lost = std::get_if<amorsize::engine::worker_lost>(&*second);
      REQUIRE(lost != nullptr);
      CHECK(lost->worker == 0);
      CHECK(lost->chunks == std::vector<std::uint64_t>{1, 2});
      CHECK(lost->reason == "rank " + std::to_string(ranks.front()) + ": the chunk task threw: no luck");
      CHECK_FALSE(backend->alive(0));
      CHECK_THROWS_AS(backend->send(0, chunk{3, 3, 1, "fine"}), amorsize::error);
    }
  } else {
    served = amorsize::engine::serve_chunks(session, [](const std::string& items, double& compute_seconds) {
      if (items == "throw") {
        throw std::runtime_error("no luck");
      }
      return transform(items, compute_seconds);
    });
    CHECK(served == (session.rank() == ranks.front() ? 1U : 0U));
  }
  gather_counts(served, session);
}

TEST_CASE("the root waits for a slow chunk without spinning a core", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, all_but_root(layout));
  constexpr auto slow = std::chrono::milliseconds(300);
  session.barrier();  // every rank starts its clocks together

  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    const double cpu_start = thread_cpu_seconds();
    const auto start = steady::now();
    if (backend->workers() > 0) {
      backend->send(0, chunk{0, 0, 1, "slow"});
      const auto event = backend->wait(10.0);
      CHECK(event.has_value());
    } else {
      // No worker: the wait runs out, not early, and ends rather than hanging (the upper bound is
      // loose: an oversubscribed rank may be descheduled for a while).
      CHECK_FALSE(backend->wait(0.3).has_value());
      CHECK(seconds_since(start) < 3.0);
    }
    const double wall = seconds_since(start);
    const double share = (thread_cpu_seconds() - cpu_start) / wall;
    CHECK(wall >= 0.29);
    CHECK(share < 0.25);
    std::printf("root CPU share while waiting %.0f ms at %d ranks: %.2f%%\n", wall * 1e3, session.size(),
                share * 100.0);
  } else {
    const double cpu_start = thread_cpu_seconds();
    const auto start = steady::now();
    amorsize::engine::serve_chunks(session, [&](const std::string& items, double& compute_seconds) {
      std::this_thread::sleep_for(slow);
      compute_seconds = 0.3;
      return items;
    });
    // Sitting out or sleeping in the task, a serving rank waits about as long as the root (less
    // whatever late start a busy machine gave it after the barrier).
    const double wall = seconds_since(start);
    CHECK(wall >= 0.2);
    CHECK((thread_cpu_seconds() - cpu_start) / wall < 0.25);
  }
}

TEST_CASE("a small chunk's round trip and a stream of them", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  const amorsize::cluster_layout& layout = session.layout();
  std::vector<int> wanted(layout.ranks_per_node.size(), 0);
  wanted.front() = 1;
  const std::vector<int> ranks = amorsize::engine::pick_worker_ranks(layout, wanted);

  if (session.is_root()) {
    auto backend = amorsize::engine::make_mpi_backend(session, ranks);
    if (backend->workers() > 0) {
      std::vector<double> trips;
      for (std::uint64_t id = 0; id < 50; ++id) {
        const auto start = steady::now();
        backend->send(0, chunk{id, 0, 1, "12345678"});
        REQUIRE(backend->wait(10.0).has_value());
        trips.push_back(seconds_since(start));
      }
      std::sort(trips.begin(), trips.end());

      // Two deep, as the dispatcher prefetches: a result's reply goes out while the next chunk runs.
      constexpr std::uint64_t stream = 5000;
      const double cpu_start = thread_cpu_seconds();
      const auto start = steady::now();
      std::uint64_t sent = 0;
      for (; sent < 2; ++sent) {
        backend->send(0, chunk{sent, 0, 1, "12345678"});
      }
      for (std::uint64_t received = 0; received < stream; ++received) {
        REQUIRE(backend->wait(10.0).has_value());
        if (sent < stream) {
          backend->send(0, chunk{sent++, 0, 1, "12345678"});
        }
      }
      const double wall = seconds_since(start);
      std::printf("small chunk at %d ranks: round trip min %.1f us, median %.1f us; streamed two deep %.1f us "
                  "each, root CPU %.0f%%\n",
                  session.size(), trips.front() * 1e6, trips[trips.size() / 2] * 1e6,
                  wall / static_cast<double>(stream) * 1e6, (thread_cpu_seconds() - cpu_start) / wall * 100.0);
      CHECK(trips[trips.size() / 2] < 0.25);  // microseconds when idle; a runaway check
    }
  } else {
    amorsize::engine::serve_chunks(session, transform);
  }
}

TEST_CASE("every rank must make the same call", "[mpi][engine]") {
  amorsize::session& session = amorsize::session::current();
  CHECK_NOTHROW(amorsize::engine::agree_on_call(session, "map"));

  const std::string key = session.rank() == 1 ? "imap" : "map";
  std::string message;
  try {
    amorsize::engine::agree_on_call(session, key);
  } catch (const amorsize::error& e) {
    CHECK(e.code() == amorsize::exit_code::usage);
    message = e.what();
  }
  if (session.size() > 1) {
    CHECK(message == "rank 1 called 'imap' while the root called 'map': every rank must make the same amorsize "
                     "calls in the same order");
  } else {
    CHECK(message.empty());
  }

  // Several ranks differ: the first is named, and the count.
  if (session.size() > 2) {
    try {
      amorsize::engine::agree_on_call(session, session.is_root() ? "map" : "imap" + std::to_string(session.rank()));
      FAIL("the calls differ, yet agree_on_call returned");
    } catch (const amorsize::error& e) {
      CHECK(std::string(e.what()).find("rank 1 called 'imap1' while the root called 'map' (" +
                                       std::to_string(session.size() - 1) + " ranks differ: 1 2") == 0);
    }
  }
}
