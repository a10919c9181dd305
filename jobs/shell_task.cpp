#include "shell_task.hpp"

#include <amorsize/probe.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/worker.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string_view>
#include <utility>

extern char** environ;  // POSIX has programs declare it themselves

namespace amorsize::jobs {
namespace {

/// A file descriptor, closed when it goes out of scope.
class unique_fd {
 public:
  /// Takes ownership of `fd` (-1: none).
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  /// Returns the descriptor, -1 when none.
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// Closes the descriptor held and holds `fd` instead.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

/// Owns `fd`, a new close-on-exec descriptor, moved above 2 so that setting up the child's 0, 1 and
/// 2 cannot overwrite it (a parent may run with stdin, stdout or stderr closed).
unique_fd own(int fd) {
  unique_fd owned(fd);
  if (fd >= 0 && fd <= STDERR_FILENO) owned.reset(::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
  return owned;
}

/// The child's stdout and stderr, in this order.
struct output_streams {
  std::array<unique_fd, 2> child;  ///< What the child gets as fds 1 and 2: pipes' write ends, or the result files.
  std::array<unique_fd, 2> pipes;  ///< The pipes' read ends (none with results_dir).
};

/// Opens `<dir>/<stem>.stdout` and `.stderr` for the child; returns the failure line when one cannot be written.
std::string open_result_files(const std::string& dir, const std::string& stem, output_streams& streams) {
  constexpr std::array<std::string_view, 2> suffixes = {".stdout", ".stderr"};
  for (std::size_t i = 0; i < suffixes.size(); ++i) {
    const std::string path = dir + "/" + stem + std::string(suffixes[i]);
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return "cannot write results: " + path + ": " + std::strerror(errno);
    streams.child[i] = own(fd);
  }
  return {};
}

/// Opens a close-on-exec pipe for each stream; returns the failure line when the system refuses one.
std::string open_pipes(output_streams& streams) {
  for (std::size_t i = 0; i < streams.pipes.size(); ++i) {
    std::array<int, 2> ends{};
    if (::pipe2(ends.data(), O_CLOEXEC) != 0) return std::string("cannot capture output: ") + std::strerror(errno);
    streams.pipes[i] = own(ends[0]);
    streams.child[i] = own(ends[1]);
  }
  return {};
}

/// Starts `argv` as the leader of a new process group with stdin from /dev/null, stdout and stderr on
/// `streams.child`, default signal dispositions and no blocked signal; returns 0 with `pid` set, or
/// the error number. (The C library's own signals, 32 and 33 in glibc, stay ignored: sigfillset
/// leaves them out on purpose.)
int spawn(const std::vector<std::string>& argv, const output_streams& streams, pid_t& pid) {
  if (argv.empty()) return ENOENT;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  if (const int error = ::posix_spawn_file_actions_init(&actions); error != 0) return error;
  if (const int error = ::posix_spawnattr_init(&attributes); error != 0) {
    ::posix_spawn_file_actions_destroy(&actions);
    return error;
  }
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));  // NOLINT: spawn's signature
  args.push_back(nullptr);

  int error = ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (error == 0) error = ::posix_spawn_file_actions_adddup2(&actions, streams.child[0].get(), STDOUT_FILENO);
  if (error == 0) error = ::posix_spawn_file_actions_adddup2(&actions, streams.child[1].get(), STDERR_FILENO);
  if (error == 0) error = ::posix_spawnattr_setsigdefault(&attributes, &all);
  if (error == 0) error = ::posix_spawnattr_setsigmask(&attributes, &none);
  if (error == 0) error = ::posix_spawnattr_setpgroup(&attributes, 0);
  if (error == 0) {
    error = ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  }
  if (error == 0) error = ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  ::posix_spawnattr_destroy(&attributes);
  ::posix_spawn_file_actions_destroy(&actions);
  return error;
}

/// A stream being captured: its pipe, the bytes kept and the bytes counted.
struct pipe_reader {
  unique_fd pipe;        ///< The read end; closed at end of file.
  std::string& kept;     ///< The first max_bytes.
  std::uint64_t& total;  ///< Every byte read.
};

/// Reads once from `stream`'s pipe, which poll found ready, into `buffer`; closes the pipe at end of file or on an error.
void read_ready(pipe_reader& stream, std::vector<char>& buffer, std::size_t max_bytes) {
  const ssize_t got = ::read(stream.pipe.get(), buffer.data(), buffer.size());
  if (got < 0 && errno == EINTR) return;  // poll again
  if (got <= 0) {
    stream.pipe.reset();
    return;
  }
  const auto bytes = static_cast<std::size_t>(got);
  stream.total += bytes;
  stream.kept.append(buffer.data(), std::min(bytes, max_bytes - std::min(max_bytes, stream.kept.size())));
}

/// Sends `sig` to process group `group`; a group already gone is no error.
void signal_group(pid_t group, int sig) { ::kill(-group, sig); }

/// Returns true once `pid` has exited (or was reaped by the kernel, as when SIGCHLD is ignored),
/// leaving it unreaped: while it is a zombie its pid, which is its group's id, cannot be reused.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  const int got = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
  return (got == 0 && info.si_pid == pid) || (got < 0 && errno == ECHILD);
}

/// Returns the milliseconds from `now` to `when` for poll: rounded up (an early wake-up would spin), -1 for never.
int poll_milliseconds(double now, double when) {
  if (!std::isfinite(when)) return -1;
  return static_cast<int>(std::clamp(std::ceil((when - now) * 1000), 0.0, double{INT_MAX}));
}

/// How watching a task ended.
struct watch_end {
  bool timed_out = false;  ///< The command ran past its timeout and its group was signalled.
  int last_signal = 0;     ///< The signal sent last to its group, 0 if none.
};

/// Watches command `pid`, the leader of its own process group, until it has exited and `streams`
/// are closed: reads both pipes together (so the command never blocks on either), signals the group
/// past `timeout_at` (monotonic seconds; infinite: never), and leaves the command unreaped.
///
/// Processes the command started in the background may hold its output open long after it exited
/// (`sh -c 'daemon & echo started'`); the task's output is read for output_grace_seconds more, then
/// the pipes are closed and those processes left running, as a shell leaves them: waiting for them
/// would hold a worker for as long as they live, and killing them would end daemons started on purpose.
watch_end watch(pid_t pid, std::array<pipe_reader, 2>& streams, std::size_t max_bytes, double timeout_at) {
  constexpr double never = std::numeric_limits<double>::infinity();
  constexpr double no_pidfd_period = 0.01;  // kernels before 5.3: look for the exit every 10 ms
  // glibc 2.36 declares pidfd_open without C linkage, so call it by number; it becomes readable when the command exits.
  const unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  std::vector<char> buffer(std::size_t{1} << 16U);
  watch_end end;
  double kill_at = never;
  double read_until = never;
  for (;;) {
    const double now = monotonic_seconds();
    const bool exited = has_exited(pid);
    if (exited && read_until == never) read_until = now + output_grace_seconds;
    if (!exited && now >= timeout_at) {
      signal_group(pid, end.last_signal = SIGTERM);
      end.timed_out = true;
      timeout_at = never;
      kill_at = now + kill_grace_seconds;
    }
    if (now >= kill_at) {
      signal_group(pid, SIGKILL);
      if (!exited) end.last_signal = SIGKILL;  // what the command itself was sent, not what it left behind
      kill_at = never;
    }
    std::array<pollfd, 3> ready{};
    std::array<pipe_reader*, 2> polled{};
    nfds_t pipes = 0;
    for (pipe_reader& stream : streams) {
      if (stream.pipe.get() < 0) continue;
      ready[pipes] = {stream.pipe.get(), POLLIN, 0};
      polled[pipes++] = &stream;
    }
    if (exited && (pipes == 0 || now >= read_until)) break;
    double wake = std::min({timeout_at, kill_at, read_until});
    nfds_t count = pipes;
    if (!exited && pidfd.get() >= 0) ready[count++] = {pidfd.get(), POLLIN, 0};
    if (!exited && pidfd.get() < 0) wake = std::min(wake, now + no_pidfd_period);
    if (::poll(ready.data(), count, poll_milliseconds(now, wake)) < 0) {
      if (errno == EINTR) continue;
      // Cannot happen with valid arguments: stop reading (the command gets SIGPIPE) and wait for it as it is.
      for (pipe_reader& stream : streams) stream.pipe.reset();
      break;
    }
    for (nfds_t i = 0; i < pipes; ++i) {
      if (ready[i].revents != 0) read_ready(*polled[i], buffer, max_bytes);
    }
  }
  // A timed-out command that exited within the grace may have left its group behind: end it all now.
  if (kill_at != never) signal_group(pid, SIGKILL);
  return end;
}

/// Returns true when `name` names an existing file: directly when it holds a slash, else in a directory of $PATH.
bool on_path(const std::string& name) {
  if (name.empty()) return false;
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), F_OK) == 0;
  const char* const path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/bin:/usr/bin";  // glibc's default search path
  for (;;) {
    const auto colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name;
    if (::access(candidate.c_str(), F_OK) == 0) return true;
    if (colon == std::string_view::npos) return false;
    dirs.remove_prefix(colon + 1);
  }
}

/// Sets the exit fields of `outcome` for command `name` from its waitpid `status`.
void record_status(int status, const std::string& name, task_outcome& outcome) {
  if (WIFSIGNALED(status)) {
    outcome.exit_code = -1;
    outcome.signal = WTERMSIG(status);
    outcome.failure = "killed by signal " + std::to_string(outcome.signal) + " (" + ::strsignal(outcome.signal) + ")";
    return;
  }
  outcome.exit_code = WEXITSTATUS(status);
  // A C library that reports a failed exec as the child's exit 127 rather than from posix_spawnp.
  if (outcome.exit_code == 127 && !on_path(name)) outcome.failure = "command not found: " + name;
  else if (outcome.exit_code != 0) outcome.failure = "exited " + std::to_string(outcome.exit_code);
}

/// Returns `outcome` with `exit_code` and the failure line (a command not started, or its status lost).
task_outcome with_failure(task_outcome outcome, int exit_code, std::string failure) {
  outcome.exit_code = exit_code;
  outcome.failure = std::move(failure);
  return outcome;
}

/// Returns `outcome` for command `name`, which posix_spawnp refused with `error`.
task_outcome refused(task_outcome outcome, const std::string& name, int error) {
  // ENOENT for a file that exists: its #! interpreter or its ELF loader is missing.
  if (error == ENOENT && !on_path(name)) return with_failure(std::move(outcome), 127, "command not found: " + name);
  if (error == EACCES) return with_failure(std::move(outcome), 126, "permission denied: " + name);
  return with_failure(std::move(outcome), 126, "cannot start " + name + ": " + std::strerror(error));
}

/// Returns the size of the file open as `fd`, 0 when it cannot be read.
std::uint64_t file_size(const unique_fd& fd) {
  struct stat info {};
  return ::fstat(fd.get(), &info) == 0 ? static_cast<std::uint64_t>(info.st_size) : 0;
}

}  // namespace

namespace {

/// The process group of the task this worker process runs (0: none), for the worker stop hook.
std::atomic<pid_t> running_group{0};

/// The worker stop hook: kills the running task's whole process group (async-signal-safe).
void kill_running_group() {
  if (const pid_t group = running_group.load(); group > 0) ::kill(-group, SIGKILL);
}

}  // namespace

task_outcome run_task(const std::vector<std::string>& argv, const task_options& options, const std::string& stem) {
  // A worker process stopped from outside (an abandoned run, a dead root) takes its task along.
  static const bool hooked = (set_worker_stop_hook(kill_running_group), true);
  (void)hooked;
  task_outcome outcome;
  outcome.start = wall_clock_seconds();
  const double began = monotonic_seconds();
  const std::string name = argv.empty() ? std::string() : argv[0];
  // An argument ends at its first NUL byte: run nothing rather than something else than the record says.
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      return with_failure(std::move(outcome), 126,
                          "argument " + std::to_string(i) + " holds a NUL byte (from the input line), which no command can receive: not run");
    }
  }

  output_streams streams;
  const bool to_files = !options.results_dir.empty();
  if (std::string problem = to_files ? open_result_files(options.results_dir, stem, streams) : open_pipes(streams);
      !problem.empty()) {
    return with_failure(std::move(outcome), 126, std::move(problem));
  }
  pid_t pid = -1;
  if (const int error = spawn(argv, streams, pid); error != 0) return refused(std::move(outcome), name, error);

  std::array<pipe_reader, 2> readers = {pipe_reader{std::move(streams.pipes[0]), outcome.out, outcome.out_bytes},
                                        pipe_reader{std::move(streams.pipes[1]), outcome.err, outcome.err_bytes}};
  if (!to_files) {
    for (unique_fd& end : streams.child) end.reset();  // the child holds the write ends now; closing ours gives end of file
  }
  running_group.store(pid);  // a worker process runs one task at a time; threads never call the hook
  const bool limited = options.timeout_seconds > 0 && std::isfinite(options.timeout_seconds);
  const watch_end watched = watch(pid, readers, options.max_bytes,
                                  limited ? began + options.timeout_seconds : std::numeric_limits<double>::infinity());
  running_group.store(0);  // before the reap frees the group's id for reuse
  // waitpid, not a wait that discards it: the child's rusage goes to RUSAGE_CHILDREN, which the sampler reads.
  int status = 0;
  pid_t reaped = -1;
  while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  const int wait_error = errno;
  outcome.seconds = monotonic_seconds() - began;
  if (to_files) {
    outcome.out_bytes = file_size(streams.child[0]);
    outcome.err_bytes = file_size(streams.child[1]);
  }
  outcome.timed_out = watched.timed_out;
  // ECHILD when this process ignores SIGCHLD, so the kernel reaped the child and kept its status.
  if (reaped < 0) return with_failure(std::move(outcome), -1, std::string("exit status lost: ") + std::strerror(wait_error));
  record_status(status, name, outcome);
  if (watched.timed_out) {
    outcome.exit_code = -1;
    if (outcome.signal == 0) outcome.signal = watched.last_signal;
    std::ostringstream failure;
    failure << "timed out after " << options.timeout_seconds << " s (killed by signal " << outcome.signal << " ("
            << ::strsignal(outcome.signal) << "))";
    outcome.failure = failure.str();
  }
  return outcome;
}

}  // namespace amorsize::jobs
