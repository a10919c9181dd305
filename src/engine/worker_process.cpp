#include "worker_process.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace amorsize::detail {
namespace {

/// Guards the parent-side worker sockets; socket pairs are made, forked and closed under it, so a
/// child always knows every sibling socket it must drop, whichever thread started its siblings.
std::mutex& sockets_mutex() {
  static std::mutex m;
  return m;
}

/// The parent's end of every worker socket open in this process.
std::vector<int>& open_sockets() {
  static std::vector<int> fds;
  return fds;
}

/// True once `pid` has exited (left reapable), waiting at most `seconds` without spinning.
bool exits_within(pid_t pid, double seconds) {
  using clock = std::chrono::steady_clock;
  const auto deadline = deadline_after(seconds);
  const auto exited = [pid] {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
  };
  // glibc 2.36 declares pidfd_open without C linkage, so call it by number.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    if (exited()) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) break;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<decltype(left)>(left, 1 << 30)) + 1);  // EINTR or a wake-up: the loop checks again
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // kernels before 5.3 have no pidfd
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  return exited();
}

}  // namespace

bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

child_process start_child(const std::function<int(int fd)>& body) {
  std::unique_lock lock(sockets_mutex());
  auto& open = open_sockets();
  open.reserve(open.size() + 1);  // so the push_back below cannot throw after the fork
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
  // What the parent printed but has not written yet would otherwise be written again by the
  // child; as multiprocessing does, only the standard streams (a child flushes only those).
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Die with the parent, however it dies; if it died before this line, the kernel will not tell.
    // SIGTERM, so that a worker runs its stop hook first (set_worker_stop_hook); one whose item
    // ignores SIGTERM still ends when it reads the end of its socket.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(EXIT_FAILURE);
    for (const int fd : open) ::close(fd);
    ::close(fds[0]);
    open.clear();
    lock.unlock();  // the child's only thread is the one that locked it; a pool the task starts needs it
    int code = EXIT_FAILURE;
    try {
      code = body(fds[1]);
    } catch (...) {
      // Never let an exception unwind into the parent's code that the child copied.
    }
    ::_exit(code);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return {};
  }
  open.push_back(fds[0]);
  return {pid, fds[0]};
}

void hang_up(child_process& child) {
  if (child.fd < 0) return;
  const std::lock_guard lock(sockets_mutex());
  auto& open = open_sockets();
  std::erase(open, child.fd);
  ::close(child.fd);
  child.fd = -1;
}

int reap(pid_t pid, double grace_seconds) {
  if (std::isfinite(grace_seconds) && !exits_within(pid, grace_seconds)) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 0;
  }
  return status;
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "unknown") + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended with wait status " + std::to_string(status);
}

std::chrono::steady_clock::time_point deadline_after(double seconds) {
  constexpr double longest = 1e7;  // about four months: far beyond any wait, far below overflow
  const double s = std::isnan(seconds) ? 0.0 : std::clamp(seconds, 0.0, longest);
  using clock = std::chrono::steady_clock;
  return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s));
}

std::string refused_message(const char* what, std::size_t index, std::size_t count, int err) {
  rlimit limit{};
  std::string limit_text = "unknown";
  if (::getrlimit(RLIMIT_NPROC, &limit) == 0) {
    limit_text = limit.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(limit.rlim_cur);
  }
  return "the system refused to start " + std::string(what) + " " + std::to_string(index + 1) + " of " +
         std::to_string(count) + " (" + std::strerror(err) + "): the limit on processes and threads is reached "
         "(ulimit -u: " + limit_text + "; or the cgroup's pids.max): run fewer workers or raise the limit";
}

bool run_task(const engine::chunk_task& task, const std::string& items, std::string& out, double& compute_seconds) {
  try {
    out = task(items, compute_seconds);
    return true;
  } catch (const std::exception& e) {
    out = std::string("the task threw: ") + e.what();
  } catch (...) {
    out = "the task threw an exception that is not a std::exception";
  }
  return false;
}

}  // namespace amorsize::detail
