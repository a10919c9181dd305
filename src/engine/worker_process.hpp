#pragma once
/// Forked worker processes on socket pairs: starting, talking to and reaping them (internal).

#include <amorsize/engine/backend.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <sys/types.h>

namespace amorsize::detail {

/// Writes all of `size` bytes to a blocking socket without raising SIGPIPE; false when the peer is gone.
bool write_all(int fd, const void* data, std::size_t size);

/// Reads exactly `size` bytes from a blocking descriptor; false at end of stream or on error.
bool read_all(int fd, void* data, std::size_t size);

/// A forked child and the parent's end of the socket pair that connects them.
struct child_process {
  pid_t pid = -1;  ///< The child's process id; -1 when none.
  int fd = -1;     ///< The parent's end of the socket pair; -1 when closed.
};

/// Forks a child that runs `body` on its end of a new socket pair, then `_exit`s with the value it returns.
///
/// Before `body` runs, the child closes the parent's end of every other worker socket that
/// start_child opened in this process and hang_up has not closed, so each child sees end of
/// stream as soon as the parent hangs up on it; other inherited descriptors stay open. Returns
/// pid -1 when the system refuses. The parent's stdout and stderr are flushed before the fork. The
/// child is killed (SIGKILL) when the thread that forked it ends (PR_SET_PDEATHSIG), so it never
/// outlives its root: drive a process pool from a thread that outlives the pool.
/// The child must call only async-signal-safe functions unless the parent is known to be
/// single-threaded.
child_process start_child(const std::function<int(int fd)>& body);

/// Closes the parent's end of the socket to `child` (the child sees end of stream); the pid is kept.
void hang_up(child_process& child);

/// Waits for `pid` to exit, at most `grace_seconds`, then kills it with SIGKILL; returns its wait status.
int reap(pid_t pid, double grace_seconds = std::numeric_limits<double>::infinity());

/// Describes a wait status, e.g. "killed by signal 11 (Segmentation fault)" or "exited with status 3".
std::string describe_exit(int status);

/// Returns the steady-clock time `seconds` from now; negative means now, and very long waits are capped.
std::chrono::steady_clock::time_point deadline_after(double seconds);

/// Says that the system refused `what` number `index` (0-based) of `count` with errno `err`, naming the limit.
std::string refused_message(const char* what, std::size_t index, std::size_t count, int err);

/// Runs `task` on `items` into `out`; false, with "the task threw: <what>" in `out`, when it throws.
bool run_task(const engine::chunk_task& task, const std::string& items, std::string& out, double& compute_seconds);

}  // namespace amorsize::detail
