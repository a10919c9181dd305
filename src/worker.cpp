#include <amorsize/error.hpp>
#include <amorsize/worker.hpp>

#include "engine/worker_number.hpp"

#include <atomic>
#include <exception>

namespace amorsize {
namespace {

/// No number of the calling thread's own: the process's number applies.
constexpr int no_thread_worker = -1;

/// The number of this process's worker (a forked process worker or a worker rank); 0 elsewhere.
std::atomic<int> process_worker{0};

/// The number of the thread worker running in this thread, or no_thread_worker.
thread_local int thread_worker = no_thread_worker;

}  // namespace

int current_worker() noexcept {
  return thread_worker != no_thread_worker ? thread_worker : process_worker.load(std::memory_order_relaxed);
}

namespace detail {

void set_process_worker(int worker) noexcept {
  process_worker.store(worker, std::memory_order_relaxed);
  thread_worker = no_thread_worker;
}

void set_thread_worker(int worker) noexcept { thread_worker = worker; }

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
