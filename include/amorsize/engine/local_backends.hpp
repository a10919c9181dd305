#pragma once
/// Backends without a launcher: a pool of forked worker processes and a pool of threads.

#include <amorsize/engine/backend.hpp>

#include <memory>

namespace amorsize::engine {

/// Returns true when this process runs no thread but the calling one, so a forked child cannot
/// inherit a lock another thread held (GNU libgomp, for one, deadlocks in such a child).
bool fork_is_safe();

/// Forks `workers` processes that run `setup` once each, then `task` on the chunks they are sent
/// (crash-isolated, like multiprocessing.Pool). A worker that dies is reported as worker_lost with
/// the chunks it held and replaced by a fresh fork (which runs `setup` again). Never call it after MPI_Init, nor where fork_is_safe() is false.
/// Workers ignore SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 (the root decides how a run stops) and die
/// with the root. With `item_timeout` > 0, a worker whose item runs longer is lost with
/// worker_lost::timed_out, and one that holds chunks and answers nothing for their items' share of
/// the timeout plus a few seconds (stopped, hung) is killed and lost as "stalled".
/// Throws resource_error when the system refuses a process.
std::unique_ptr<backend> make_process_backend(int workers, chunk_task task, worker_setup setup = {},
                                              double item_timeout = 0.0);

/// Starts `workers` threads in this process that run `setup` once each, then `task`; no isolation, no fork, no copies of
/// the process (for cheap in-process functions with large results). A thread cannot be stopped:
/// stop() waits for the chunk each thread runs. Throws resource_error when the system refuses a thread.
std::unique_ptr<backend> make_thread_backend(int workers, chunk_task task, worker_setup setup = {});

}  // namespace amorsize::engine
