// The local backends (forked processes, threads): every chunk once, large frames, stop, no spinning, crashes.
#include <amorsize/engine/local_backends.hpp>
#include <amorsize/worker.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

using namespace amorsize::engine;

namespace {

using factory = std::unique_ptr<backend> (*)(int, chunk_task, worker_setup);

/// A process backend without an item timeout, as a factory.
std::unique_ptr<backend> make_process_pool(int workers, chunk_task task, worker_setup setup) {
  return make_process_backend(workers, std::move(task), std::move(setup));
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

/// The transformed payload: the bytes reversed, then the payload's size as 8 bytes.
std::string transformed(const std::string& items) {
  std::string out(items.rbegin(), items.rend());
  const std::uint64_t size = items.size();
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  return out;
}

/// The test task: a payload "cmd:<what>" sleeps, crashes, exits or throws; any other is transformed.
std::string test_task(const std::string& items, double& compute_seconds) {
  compute_seconds = 1e-6;
  if (items.rfind("cmd:", 0) != 0) return transformed(items);
  const std::string what = items.substr(4);
  if (what.rfind("sleep:", 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(what.substr(6))));
    return "slept";
  }
  // Catch's and the sanitizers' handlers, inherited through fork, would report or exit instead.
  if (what == "abort") {
    std::signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  if (what == "segv") {
    std::signal(SIGSEGV, SIG_DFL);
    std::raise(SIGSEGV);
  }
  if (what == "exit3") std::_Exit(3);
  if (what == "throw") throw std::runtime_error("no such item");
  return "unknown command";
}

chunk make_chunk(std::uint64_t id, std::string payload) {
  chunk c;
  c.id = id;
  c.first_index = static_cast<std::size_t>(id) * 10;
  c.count = 10;
  c.payload = std::move(payload);
  return c;
}

/// Waits for the next event, failing the test after `seconds`.
event next(backend& b, double seconds = 30.0) {
  auto e = b.wait(seconds);
  REQUIRE(e.has_value());
  return std::move(*e);
}

chunk_result as_result(const event& e) {
  if (const auto* lost = std::get_if<worker_lost>(&e)) FAIL("worker " << lost->worker << " lost: " << lost->reason);
  return std::get<chunk_result>(e);
}

worker_lost as_lost(const event& e) {
  if (const auto* r = std::get_if<chunk_result>(&e)) FAIL("chunk " << r->id << " finished, a lost worker was expected");
  return std::get<worker_lost>(e);
}

/// True when this process has no child left, running or zombie.
bool no_child_left() {
  int status = 0;
  errno = 0;
  return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

}  // namespace

TEST_CASE("local backends return every chunk once with its transformed payload", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  constexpr int workers = 3;
  auto b = make(workers, test_task, {});
  REQUIRE(b->workers() == workers);

  // 500 chunks of 0 .. 64 KiB, then two of 4 MiB in a row to one worker: it writes the first
  // result while the root is still writing the second chunk.
  std::mt19937 random(7);
  std::vector<std::string> payloads;
  for (int i = 0; i < 500; ++i) {
    std::string p(std::uniform_int_distribution<std::size_t>(0, 64 * 1024)(random), '\0');
    for (auto& ch : p) ch = static_cast<char>(std::uniform_int_distribution<int>('A', 'z')(random));
    payloads.push_back(std::move(p));
  }
  payloads.emplace_back(4 * 1024 * 1024, 'x');
  payloads.back()[12345] = 'y';
  payloads.emplace_back(4 * 1024 * 1024 + 17, 'z');

  std::vector<int> in_flight(workers, 0);
  std::map<std::uint64_t, int> sent_to;
  std::set<std::uint64_t> returned;
  const auto receive = [&] {
    const chunk_result r = as_result(next(*b));
    CHECK(returned.insert(r.id).second);
    REQUIRE(sent_to.count(r.id) == 1);
    CHECK(r.worker == sent_to[r.id]);
    CHECK(r.payload == transformed(payloads[r.id]));
    CHECK(r.compute_seconds > 0.0);
    --in_flight[static_cast<std::size_t>(sent_to[r.id])];
  };
  for (std::uint64_t id = 0; id < payloads.size(); ++id) {
    const bool last_two = id + 2 >= payloads.size();
    for (;;) {
      const auto w = last_two ? 0 : static_cast<int>(std::min_element(in_flight.begin(), in_flight.end()) - in_flight.begin());
      if (in_flight[static_cast<std::size_t>(w)] < 2) {
        REQUIRE(b->alive(w));
        sent_to[id] = w;
        ++in_flight[static_cast<std::size_t>(w)];
        b->send(w, make_chunk(id, payloads[id]));
        break;
      }
      receive();
    }
  }
  while (returned.size() < payloads.size()) receive();
  CHECK(returned.size() == payloads.size());
  CHECK_FALSE(b->wait(0.05).has_value());
  b->stop();
  CHECK(no_child_left());
}

TEST_CASE("local backends wait out a time-out without an event", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  auto b = make(2, test_task, {});
  const double start = now();
  CHECK_FALSE(b->wait(0.1).has_value());
  const double waited = now() - start;
  CHECK(waited >= 0.09);
  CHECK(waited < 2.0);
  CHECK_FALSE(b->wait(0.0).has_value());
}

TEST_CASE("stopping a local backend with chunks in flight is prompt and leaves no child", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  auto b = make(2, test_task, {});
  // Each worker runs a short chunk and holds long ones behind it: stop abandons those.
  std::uint64_t id = 0;
  for (int w = 0; w < 2; ++w) {
    b->send(w, make_chunk(id++, "cmd:sleep:300"));
    for (int i = 0; i < 3; ++i) b->send(w, make_chunk(id++, "cmd:sleep:2000"));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double start = now();
  b->stop();
  CHECK(now() - start < 1.5);
  CHECK(no_child_left());
  CHECK_FALSE(b->alive(0));
  const double waited_from = now();
  CHECK_FALSE(b->wait(5.0).has_value());  // nothing can come: no need to wait
  CHECK(now() - waited_from < 1.0);
  b->stop();  // idempotent
  CHECK_THROWS_AS(b->send(0, make_chunk(id, "late")), std::logic_error);
}

TEST_CASE("a local backend does not spin the root while it waits", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  auto b = make(1, test_task, {});
  b->send(0, make_chunk(0, "cmd:sleep:300"));
  const double wall0 = now();
  const double cpu0 = thread_cpu_seconds();
  std::optional<event> e;
  while (!e) e = b->wait(0.05);  // short time-outs too: each must sleep, not poll in a loop
  const double wall = now() - wall0;
  const double cpu = thread_cpu_seconds() - cpu0;
  CHECK(as_result(*e).payload == "slept");
  CHECK(wall > 0.25);
  CHECK(cpu < 0.25 * wall);
}

TEST_CASE("a local backend reports a chunk whose task throws and keeps the worker", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  auto b = make(1, test_task, {});
  b->send(0, make_chunk(1, "cmd:throw"));
  b->send(0, make_chunk(2, "after"));
  const worker_lost lost = as_lost(next(*b));
  CHECK(lost.worker == 0);
  CHECK(lost.chunks == std::vector<std::uint64_t>{1});
  CHECK_THAT(lost.reason, Catch::Contains("no such item"));
  CHECK(b->alive(0));
  const chunk_result r = as_result(next(*b));
  CHECK(r.id == 2);
  CHECK(r.payload == transformed("after"));
}

// A worker whose setup throws says so once, runs none of its chunks and stops promptly; the other
// workers run theirs, each knowing its number.
TEST_CASE("a local backend reports a setup that throws once and runs no chunk on that worker", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  const chunk_task numbered = [](const std::string& /*items*/, double& compute_seconds) {
    compute_seconds = 0.0;
    return std::to_string(amorsize::current_worker());
  };
  auto b = make(2, numbered, [] {
    if (amorsize::current_worker() == 1) throw std::runtime_error("cannot open model.bin");
  });
  b->send(0, make_chunk(1, "a"));
  b->send(1, make_chunk(2, "b"));
  b->send(0, make_chunk(3, "c"));
  std::vector<setup_failed> failures;
  std::vector<chunk_result> results;
  while (results.size() < 2 || failures.empty()) {
    event e = next(*b, 10.0);
    if (auto* f = std::get_if<setup_failed>(&e)) failures.push_back(std::move(*f));
    else results.push_back(as_result(e));
  }
  CHECK_FALSE(b->wait(0.2).has_value());  // once, and nothing from the failed worker
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].worker == 1);
  CHECK(failures[0].reason == "cannot open model.bin");
  for (const chunk_result& r : results) {
    CHECK(r.worker == 0);
    CHECK(r.payload == "0");
  }
  const double start = now();
  b->stop();
  CHECK(now() - start < 0.9);
  CHECK(no_child_left());
}

TEST_CASE("local backends measure a small chunk's round trip", "[engine]") {
  const auto [name, make] = GENERATE(table<const char*, factory>({{"process", make_process_pool}, {"thread", make_thread_backend}}));
  INFO("backend: " << name);
  auto b = make(1, test_task, {});
  std::vector<double> trips;
  for (std::uint64_t id = 0; id < 300; ++id) {
    const double start = now();
    b->send(0, make_chunk(id, std::string(64, 'a')));
    as_result(next(*b));
    trips.push_back(now() - start);
  }
  std::sort(trips.begin(), trips.end());
  const double median_round_trip = trips[trips.size() / 2];
  CHECK(median_round_trip < 5e-3);  // generous: tens of microseconds on an idle machine
}

TEST_CASE("the process backend reports a crashed worker with its chunks and replaces it", "[engine]") {
  const auto [command, cause] = GENERATE(table<const char*, const char*>({
      {"cmd:abort", "killed by signal 6 (Aborted)"},
      {"cmd:segv", "killed by signal 11 (Segmentation fault)"},
      {"cmd:exit3", "exited with status 3"},
  }));
  INFO("command: " << command);
  auto b = make_process_backend(2, test_task);
  b->send(0, make_chunk(10, "first"));
  b->send(0, make_chunk(11, command));
  b->send(0, make_chunk(12, "held behind the crash"));
  b->send(1, make_chunk(20, "elsewhere"));
  std::set<std::uint64_t> finished;
  std::vector<worker_lost> lost;
  while (finished.size() + lost.size() < 3) {
    const event e = next(*b);
    if (const auto* r = std::get_if<chunk_result>(&e)) {
      CHECK(r->payload == transformed(r->id == 10 ? "first" : "elsewhere"));
      finished.insert(r->id);
    } else {
      lost.push_back(std::get<worker_lost>(e));
    }
  }
  CHECK(finished == std::set<std::uint64_t>{10, 20});
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].worker == 0);
  CHECK(lost[0].chunks == std::vector<std::uint64_t>{11, 12});
  CHECK(lost[0].reason == cause);

  // The replacement runs further chunks correctly.
  REQUIRE(b->alive(0));
  for (std::uint64_t id = 30; id < 40; ++id) b->send(0, make_chunk(id, "again " + std::to_string(id)));
  for (std::uint64_t id = 30; id < 40; ++id) {
    const chunk_result r = as_result(next(*b));
    CHECK(r.id == id);
    CHECK(r.worker == 0);
    CHECK(r.payload == transformed("again " + std::to_string(id)));
  }
  b->stop();
  CHECK(no_child_left());
}

TEST_CASE("the process backend stops replacing workers that always crash", "[engine]") {
  auto b = make_process_backend(2, test_task);
  std::uint64_t id = 0;
  int losses = 0;
  std::vector<bool> busy(2, false);
  while ((b->alive(0) || b->alive(1)) && losses < 50) {
    for (int w = 0; w < 2; ++w) {
      if (b->alive(w) && !busy[static_cast<std::size_t>(w)]) {
        b->send(w, make_chunk(id++, "cmd:segv"));
        busy[static_cast<std::size_t>(w)] = true;
      }
    }
    const worker_lost lost = as_lost(next(*b));
    busy[static_cast<std::size_t>(lost.worker)] = false;
    ++losses;
    if (!b->alive(lost.worker)) CHECK_THAT(lost.reason, Catch::Contains("not replaced"));
  }
  // A worker may die, unreplaced, while the root reads another: its report is still queued.
  while (auto e = b->wait(0.5)) {
    CHECK_THAT(as_lost(*e).reason, Catch::Contains("not replaced"));
    ++losses;
  }
  CHECK_FALSE(b->alive(0));
  CHECK_FALSE(b->alive(1));
  CHECK(losses == 8);  // 3 * workers replacements, then each worker's last death
  CHECK_THROWS_AS(b->send(0, make_chunk(id, "late")), std::logic_error);
  CHECK_FALSE(b->wait(0.05).has_value());
  b->stop();
  CHECK(no_child_left());
}

TEST_CASE("the process backend kills a worker still running at stop", "[engine]") {
  auto b = make_process_backend(2, test_task);
  b->send(0, make_chunk(0, "cmd:sleep:5000"));
  b->send(1, make_chunk(1, "cmd:sleep:5000"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double start = now();
  b.reset();  // the destructor stops: a 1 s grace period, then the kill, well before the 5 s sleeps end
  CHECK(now() - start < 4.0);
  CHECK(no_child_left());
}
