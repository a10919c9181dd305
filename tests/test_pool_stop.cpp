// Runs that survive interruption, without a launcher: a stop request (drain, abandon, from a signal
// handler), an item timeout on worker processes, and worker processes that ignore the terminal's
// signals and die with their root.
#include "pool_scenarios.hpp"

#include <amorsize/stop.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace amorsize;
using namespace pool_test;
using Catch::Matchers::Contains;

namespace {

/// Sleeps `ms` milliseconds.
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

/// Returns the problems of records that should all be successes of `2 * x` over distinct items.
std::string doubled_problems(const std::vector<item_result<int>>& records) {
  std::ostringstream out;
  std::set<std::size_t> seen;
  for (const auto& r : records) {
    if (!seen.insert(r.index()).second) out << "index " << r.index() << " came twice\n";
    if (!r.ok()) {
      out << "index " << r.index() << " failed: " << r.error() << '\n';
    } else if (r.value() != 2 * static_cast<int>(r.index())) {
      out << "index " << r.index() << " has value " << r.value() << '\n';
    }
  }
  return out.str();
}

/// The request a signal handler in these tests triggers.
stop_request* signalled_request = nullptr;

/// Drains `signalled_request` with a grace of 10 s, as a program's SIGINT handler would.
void drain_on_signal(int /*sig*/) { signalled_request->drain(10.0); }

/// Abandons `signalled_request`, as a program's second SIGINT would.
void abandon_on_signal(int /*sig*/) { signalled_request->abandon(); }

/// Makes SIGALRM call `handler` once, `seconds` from now.
void alarm_in(double seconds, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGALRM, &action, nullptr);
  itimerval t{};
  t.it_value.tv_sec = static_cast<time_t>(seconds);
  t.it_value.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(t.it_value.tv_sec)) * 1e6);
  ::setitimer(ITIMER_REAL, &t, nullptr);
}

/// A pipe that worker setups, in any process, write their pid into.
class pid_pipe {
 public:
  pid_pipe() { REQUIRE(::pipe(fds_) == 0); }
  ~pid_pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  pid_pipe(const pid_pipe&) = delete;
  pid_pipe& operator=(const pid_pipe&) = delete;

  /// Writes the calling process's pid, in one write (atomic across processes).
  void note() const {
    const pid_t pid = ::getpid();
    if (::write(fds_[1], &pid, sizeof pid) != static_cast<ssize_t>(sizeof pid)) std::abort();
  }

  /// Reads `count` pids, waiting at most 20 s in all; fewer when they do not come.
  [[nodiscard]] std::vector<pid_t> read(std::size_t count) const {
    std::vector<pid_t> pids;
    const double deadline = monotonic_seconds() + 20.0;
    while (pids.size() < count && monotonic_seconds() < deadline) {
      pollfd p{fds_[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      pid_t pid = 0;
      if (::read(fds_[0], &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid)) pids.push_back(pid);
    }
    return pids;
  }

 private:
  int fds_[2] = {-1, -1};
};

/// True when process `pid` no longer runs: gone, or a zombie nobody reaped yet.
bool process_ended(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() && line[close_paren + 2] == 'Z';
}

/// Waits for child `pid` and returns its wait status.
int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/// Runs `body` as the root of a pool in a forked child and ends the child: status 0 when it returns
/// true, 1 when false, 2 when it throws (never back into Catch, which the child copied).
[[noreturn]] void run_as_root(const std::function<bool()>& body) {
  int code = 2;
  try {
    code = body() ? 0 : 1;
  } catch (...) {
  }
  ::_exit(code);
}

/// The pid of the process a forked test root runs in; 0 elsewhere.
pid_t test_root = 0;

/// A root's SIGINT and SIGHUP handler that does nothing in the root and kills any other process
/// that inherited it: a worker that did not ignore the signal dies.
void kill_non_root(int /*sig*/) {
  if (::getpid() != test_root) ::_exit(7);
}

}  // namespace

TEST_CASE("a stop request drains once, keeps the first deadline and abandons when it runs out", "[stop]") {
  stop_request request;
  CHECK_FALSE(request.requested());
  CHECK_FALSE(request.abandoned());
  request.drain(0.2);
  CHECK(request.requested());
  CHECK_FALSE(request.abandoned());
  request.drain(100.0);  // the first deadline stands
  sleep_ms(250);
  CHECK(request.abandoned());

  stop_request at_once;
  at_once.abandon();
  CHECK(at_once.requested());
  CHECK(at_once.abandoned());
  at_once.drain(100.0);  // too late: abandoned stays
  CHECK(at_once.abandoned());
}

// A drain lets what is in flight finish and hand over its records, then ends: no "not run" record,
// even under error_policy::stop, and the stats say the call stopped.
TEST_CASE("a drain hands over the chunks in flight and no record for the items never sent", "[stop]") {
  const backend_kind kind = GENERATE(backend_kind::processes, backend_kind::threads, backend_kind::serial);
  const error_policy policy = GENERATE(error_policy::keep_going, error_policy::stop);
  INFO("backend " << to_string(kind) << ", on_error " << (policy == error_policy::stop ? "stop" : "keep_going"));
  stop_request request;
  pool_options options = two_workers(kind);
  options.stop = &request;
  options.on_error = policy;
  pool p(options);
  std::vector<item_result<int>> records;
  double drained_at = 0.0;
  {
    auto stream = p.imap(
        [](const int& x) {
          sleep_ms(100);
          return 2 * x;
        },
        iota_items(40));
    for (const auto& r : stream) {
      records.push_back(r);
      if (records.size() == 3) {
        drained_at = monotonic_seconds();
        request.drain(10.0);
      }
    }
    CHECK(monotonic_seconds() - drained_at < 1.5);
    CHECK(stream.stats().stopped);
  }
  CHECK(doubled_problems(records) == "");
  CHECK(records.size() >= 3);
  CHECK(records.size() <= (kind == backend_kind::serial ? 3u : 3u + 2 * 2 + 2));
  for (std::size_t i = 0; i < records.size(); ++i) CHECK(records[i].index() == i);  // in order, no gap: all in flight finished
  CHECK(no_child_left());
}

// The call stops when a signal handler drains the request, as amorsize-run's SIGINT handler does.
TEST_CASE("a stop request drained from a signal handler stops the call", "[stop]") {
  stop_request request;
  signalled_request = &request;
  pool_options options = two_workers(backend_kind::processes);
  options.stop = &request;
  pool p(options);
  std::vector<item_result<int>> records;
  {
    auto stream = p.imap_unordered(
        [](const int& x) {
          sleep_ms(20);
          return 2 * x;
        },
        iota_items(10000));
    alarm_in(0.3, drain_on_signal);
    for (const auto& r : stream) records.push_back(r);
    CHECK(stream.stats().stopped);
  }
  std::signal(SIGALRM, SIG_DFL);
  CHECK(request.requested());
  CHECK_FALSE(request.abandoned());
  CHECK(doubled_problems(records) == "");
  CHECK(records.size() < 10000);
  CHECK(no_child_left());
}

// A drain whose grace runs out abandons: a worker process stuck in a long item is killed and the
// call ends soon after the grace, with the records that finished.
TEST_CASE("a drain whose grace runs out abandons the items still running", "[stop]") {
  stop_request request;
  pool_options options = two_workers(backend_kind::processes);
  options.stop = &request;
  pool p(options);
  std::vector<item_result<int>> records;
  const auto slow_zero = [](const int& x) {
    sleep_ms(x == 0 ? 20000 : 10);
    return 2 * x;
  };
  double drained_at = 0.0;
  {
    auto stream = p.imap_unordered(slow_zero, iota_items(10000));
    for (const auto& r : stream) {
      records.push_back(r);
      if (records.size() == 20) {
        drained_at = monotonic_seconds();
        request.drain(0.3);
      }
    }
    CHECK(stream.stats().stopped);
  }
  const double ended = monotonic_seconds() - drained_at;
  CHECK(ended >= 0.25);
  CHECK(ended < 1.5);
  CHECK(request.abandoned());
  CHECK(doubled_problems(records) == "");
  for (const auto& r : records) CHECK(r.index() != 0);
  CHECK(no_child_left());
}

// An abandon from a signal handler ends an ordered call at once, with a long item in flight: the
// chunks that finished behind it are handed over (with a gap where it was), its worker is killed.
TEST_CASE("an abandon ends a process pool's call at once with a long item in flight", "[stop]") {
  stop_request request;
  signalled_request = &request;
  pool_options options = two_workers(backend_kind::processes);
  options.stop = &request;
  pool p(options);
  std::vector<item_result<int>> records;
  const auto slow_zero = [](const int& x) {
    sleep_ms(x == 0 ? 20000 : 10);
    return 2 * x;
  };
  const double start = monotonic_seconds();
  {
    auto stream = p.imap(slow_zero, iota_items(10000));
    alarm_in(0.5, abandon_on_signal);
    for (const auto& r : stream) records.push_back(r);
    CHECK(stream.stats().stopped);
  }
  std::signal(SIGALRM, SIG_DFL);
  CHECK(monotonic_seconds() - start < 1.5);  // 0.5 s to the abandon, then under a second
  CHECK(doubled_problems(records) == "");
  CHECK_FALSE(records.empty());
  for (std::size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].index() != 0);
    if (i > 0) CHECK(records[i].index() > records[i - 1].index());
  }
  CHECK(no_child_left());
}

// A thread cannot be killed: an abandon ends the call at once, and destroying the stream waits for
// the item still running.
TEST_CASE("an abandon ends a thread pool's call at once; the stream's end waits for the running item", "[stop]") {
  stop_request request;
  pool_options options = two_workers(backend_kind::threads);
  options.stop = &request;
  pool p(options);
  std::size_t records = 0;
  double abandoned_at = 0.0;
  double ended_at = 0.0;
  {
    auto stream = p.imap_unordered(
        [](const int& x) {
          sleep_ms(x == 0 ? 1500 : 10);
          return 2 * x;
        },
        iota_items(10000));
    while (auto r = stream.next()) {
      CHECK(r->index() != 0);
      if (++records == 20) {
        abandoned_at = monotonic_seconds();
        request.abandon();
      }
    }
    ended_at = monotonic_seconds();
    CHECK(stream.stats().stopped);
  }
  CHECK(ended_at - abandoned_at < 0.5);
  CHECK(records < 40);
}

// An item that runs past the item timeout costs its worker, which is replaced; the item gets a
// timeout record and the other items of its chunk run.
TEST_CASE("an item past the item timeout gets a timeout record and its chunk's other items run", "[stop]") {
  pool_options options = two_workers(backend_kind::processes, 5);
  options.item_timeout = 0.5;
  pool p(options);
  const double start = monotonic_seconds();
  const auto records = p.map(
      [](const int& x) {
        if (x == 3) sleep_ms(5000);
        return 2 * x;
      },
      iota_items(20));
  CHECK(monotonic_seconds() - start < 4.0);  // the item once in its chunk, once alone: about 1 s
  REQUIRE(records.size() == 20);
  CHECK_FALSE(records[3].ok());
  CHECK_THAT(records[3].error(), Contains("timed out after 0.5 s (its worker was killed and replaced)"));
  std::vector<item_result<int>> others = records;
  others[3] = item_result<int>::success(3, 6);
  CHECK(doubled_problems(others) == "");
  CHECK(p.last_run().errors == 1);
  CHECK(p.last_run().lost_workers >= 1);
  CHECK(no_child_left());
}

// A worker that stops (SIGSTOP) cannot time its item out: the root kills it as stalled once it has
// answered nothing for its items' share of the timeout and a margin, and the run completes.
TEST_CASE("a stopped worker process is killed as stalled when an item timeout is set", "[stop]") {
  pool_options options = two_workers(backend_kind::processes, 1);
  options.item_timeout = 0.5;
  pool p(options);
  const double start = monotonic_seconds();
  const auto records = p.map(
      [](const int& x) {
        if (x == 3) ::raise(SIGSTOP);
        sleep_ms(10);
        return 2 * x;
      },
      iota_items(20));
  CHECK(monotonic_seconds() - start < 10.0);
  REQUIRE(records.size() == 20);
  CHECK_FALSE(records[3].ok());
  CHECK_THAT(records[3].error(), Contains("stalled: no answer for"));
  std::vector<item_result<int>> others = records;
  others[3] = item_result<int>::success(3, 6);
  CHECK(doubled_problems(others) == "");
  CHECK(no_child_left());
}

// Threads, worker ranks and a serial run cannot stop an item: they say so rather than ignore it.
TEST_CASE("an item timeout where items cannot be stopped is refused or said", "[stop]") {
  pool_options bad = two_workers(backend_kind::processes);
  bad.item_timeout = -1.0;
  CHECK_THROWS_AS(pool(bad), input_error);
  bad.item_timeout = std::nan("");
  CHECK_THROWS_AS(pool(bad), input_error);

  const backend_kind kind = GENERATE(backend_kind::threads, backend_kind::serial);
  INFO("backend " << to_string(kind));
  std::ostringstream log;
  pool_options options = two_workers(kind);
  options.item_timeout = 1.0;
  options.log = &log;
  pool p(options);
  CHECK(p.map([](const int& x) { return 2 * x; }, iota_items(10)).size() == 10);
  CHECK_THAT(log.str(), Contains("item_timeout applies to worker processes") && Contains("this run has no timeout"));
}

// A root killed outright (SIGKILL: no destructor runs) takes its worker processes with it.
TEST_CASE("worker processes die within a second of their root", "[stop]") {
  pid_pipe pids;
  const pid_t root = ::fork();
  REQUIRE(root >= 0);
  if (root == 0) {
    run_as_root([&pids] {
      pool_options options = two_workers(backend_kind::processes);
      options.worker_setup = [&pids] { pids.note(); };
      pool p(options);
      p.map(
          [](const int& x) {
            sleep_ms(100);
            return x;
          },
          iota_items(100000));
      return true;
    });
  }
  const std::vector<pid_t> workers = pids.read(2);
  ::kill(root, SIGKILL);
  wait_for(root);
  REQUIRE(workers.size() == 2);
  for (const pid_t w : workers) REQUIRE(w != root);  // processes, not threads of the root
  const double deadline = monotonic_seconds() + 1.0;
  bool all_ended = false;
  while (!all_ended && monotonic_seconds() < deadline) {
    all_ended = process_ended(workers[0]) && process_ended(workers[1]);
    if (!all_ended) sleep_ms(10);
  }
  CHECK(all_ended);
  for (const pid_t w : workers) ::kill(w, SIGKILL);  // never leave one behind, even when the check failed
}

// Ctrl-C and a hang-up reach a terminal's whole foreground process group: the workers ignore them
// (the root decides how to stop), so a root that handles them completes its run with every record.
TEST_CASE("SIGINT and SIGHUP to a pool's process group leave its worker processes running", "[stop]") {
  pid_pipe pids;
  const pid_t root = ::fork();
  REQUIRE(root >= 0);
  if (root == 0) {
    run_as_root([&pids] {
      ::setpgid(0, 0);
      test_root = ::getpid();
      std::signal(SIGINT, kill_non_root);  // inherited by the workers: they die unless they ignore it
      std::signal(SIGHUP, kill_non_root);
      pool_options options = two_workers(backend_kind::processes);
      options.worker_setup = [&pids] { pids.note(); };
      pool p(options);
      const auto records = p.map(
          [](const int& x) {
            sleep_ms(50);
            return 2 * x;
          },
          iota_items(40));
      return records.size() == 40 && doubled_problems(records).empty() && p.last_run().lost_workers == 0;
    });
  }
  ::setpgid(root, root);  // whichever runs first, the root leads its own group before the signals
  const std::vector<pid_t> workers = pids.read(2);
  CHECK(workers.size() == 2);
  for (const int sig : {SIGINT, SIGHUP, SIGINT}) {
    ::kill(-root, sig);
    sleep_ms(100);
  }
  const int status = wait_for(root);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
