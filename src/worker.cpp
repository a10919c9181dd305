#include <amorsize/error.hpp>
#include <amorsize/worker.hpp>

#include "engine/worker_number.hpp"

#include <atomic>
#include <cmath>
#include <csignal>
#include <exception>
#include <sys/time.h>
#include <unistd.h>

namespace amorsize {
namespace {

/// No number of the calling thread's own: the process's number applies.
constexpr int no_thread_worker = -1;

/// The number of this process's worker (a forked process worker or a worker rank); 0 elsewhere.
std::atomic<int> process_worker{0};

/// The number of the thread worker running in this thread, or no_thread_worker.
thread_local int thread_worker = no_thread_worker;

/// The item timeout of this thread's items, set only in a worker process's thread (0: none).
thread_local double item_timeout_seconds = 0.0;

/// What a worker process calls before it ends from outside (set_worker_stop_hook); null: nothing.
std::atomic<void (*)()> worker_stop_hook{nullptr};
static_assert(std::atomic<void (*)()>::is_always_lock_free, "read in a signal handler");

/// Calls the worker stop hook, if one is set (async-signal-safe).
void call_stop_hook() noexcept {
  if (void (*hook)() = worker_stop_hook.load()) hook();
}

/// Ends a worker process whose item ran out of time.
void on_item_timeout(int /*sig*/) {
  call_stop_hook();
  ::_exit(detail::item_timed_out_status);
}

/// Ends a worker process stopped from outside, after its stop hook, by SIGTERM as if unhandled.
void on_worker_sigterm(int sig) {
  call_stop_hook();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

/// Sets the process's real-time interval timer to fire once after `seconds` (0: disarms it).
void set_real_timer(double seconds) noexcept {
  itimerval t{};
  const double whole = std::floor(seconds);
  t.it_value.tv_sec = static_cast<time_t>(whole);
  t.it_value.tv_usec = static_cast<suseconds_t>((seconds - whole) * 1e6);
  if (seconds > 0.0 && t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0) t.it_value.tv_usec = 1;
  ::setitimer(ITIMER_REAL, &t, nullptr);
}

}  // namespace

int current_worker() noexcept {
  return thread_worker != no_thread_worker ? thread_worker : process_worker.load(std::memory_order_relaxed);
}

void set_worker_stop_hook(void (*hook)()) noexcept { worker_stop_hook.store(hook); }

namespace detail {

void end_with_stop_hook_on_sigterm() noexcept {
  struct sigaction action {};
  action.sa_handler = on_worker_sigterm;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
}

void set_process_worker(int worker) noexcept {
  process_worker.store(worker, std::memory_order_relaxed);
  thread_worker = no_thread_worker;
}

void set_thread_worker(int worker) noexcept { thread_worker = worker; }

void set_item_timeout(double seconds) noexcept {
  item_timeout_seconds = seconds > 0.0 ? seconds : 0.0;
  if (item_timeout_seconds == 0.0) return;
  struct sigaction action {};
  action.sa_handler = on_item_timeout;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGALRM, &action, nullptr);
}

item_timer::item_timer() noexcept : armed_(item_timeout_seconds > 0.0) {
  if (armed_) set_real_timer(item_timeout_seconds);
}

item_timer::~item_timer() {
  if (armed_) set_real_timer(0.0);
}

std::optional<std::string> try_worker_setup(const std::function<void()>& setup) noexcept {
  if (!setup) return std::nullopt;
  try {
    setup();
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  } catch (...) {
    return std::string("an exception that is not a std::exception");
  }
}

void run_setup_here(const std::function<void()>& setup) {
  if (auto failure = try_worker_setup(setup)) throw setup_error::in_worker(0, *failure);
}

}  // namespace detail
}  // namespace amorsize
