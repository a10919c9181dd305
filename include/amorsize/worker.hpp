#pragma once
/// What user code can ask about the worker it runs in, and the per-worker setup's plumbing.

#include <functional>
#include <optional>
#include <string>

namespace amorsize {

/// Returns the 0-based number of the worker running the calling item (the dispatcher's number:
/// the process or thread index, under MPI the worker rank's index); 0 in the sampler and in a serial run.
int current_worker() noexcept;

/// Sets the function a worker process calls before it ends when stopped from outside (SIGTERM: its
/// run was abandoned or its root died) or when its item timed out; null: none. It must be
/// async-signal-safe, e.g. killing the processes the item started (the shell job ends its task's
/// process group). Threads and worker ranks never call it.
void set_worker_stop_hook(void (*hook)()) noexcept;

namespace detail {

/// In a worker process: makes SIGTERM call the stop hook (if any) before the worker ends.
void end_with_stop_hook_on_sigterm() noexcept;

/// Runs the per-worker `setup` (empty: nothing) in the calling thread; returns the message of what it
/// threw, or nullopt when it did not throw.
std::optional<std::string> try_worker_setup(const std::function<void()>& setup) noexcept;

/// Runs `setup` for a run in the calling thread (a serial run, an in-process sampler, worker 0);
/// throws setup_error when it throws.
void run_setup_here(const std::function<void()>& setup);

/// Arms the item timeout of the worker process it runs in for the item run in its scope (nothing
/// elsewhere); when it fires, the worker exits at once and the root reports the item timed out.
class item_timer {
 public:
  item_timer() noexcept;
  ~item_timer();
  item_timer(const item_timer&) = delete;
  item_timer& operator=(const item_timer&) = delete;

 private:
  bool armed_ = false;
};

}  // namespace detail
}  // namespace amorsize
