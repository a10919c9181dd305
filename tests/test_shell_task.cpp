// The shell job's task: one command run without a shell, its output captured or sent to files.
#include <jobs/shell_job.hpp>
#include <jobs/shell_task.hpp>

#include <amorsize/probe.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>

#include <catch2/catch.hpp>

#include <pthread.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace amorsize::jobs;
using amorsize::environment_variable;
using amorsize::read_small_file;
using args = std::vector<std::string>;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system's temporary directory, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "amorsize-shell-task-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  /// Returns the directory's path.
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Runs `argv` capturing output in memory, `max_bytes` of each stream kept.
task_outcome run(const args& argv, std::size_t max_bytes = 65536) { return run_task(argv, {max_bytes, ""}, "task"); }

/// Runs `argv` capturing output in memory, with a timeout of `seconds`.
task_outcome run_with_timeout(const args& argv, double seconds) { return run_task(argv, {65536, "", seconds}, "task"); }

/// Returns true when no process runs in process group `group` (a task's, whose id is its command's
/// pid); zombies do not count: an orphan is reaped by init, whenever init gets to it.
bool group_empty(long group) {
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    if (entry.path().filename().string().find_first_not_of("0123456789") != std::string::npos) continue;
    const std::optional<std::string> stat = read_small_file(entry.path().string() + "/stat");
    if (!stat) continue;  // it has just exited
    // /proc/PID/stat: "PID (COMM) STATE PPID PGRP ..."; COMM may hold spaces and parentheses.
    std::istringstream fields(stat->substr(stat->rfind(')') + 1));
    char state = 0;
    long parent = 0;
    long pgrp = 0;
    if (fields >> state >> parent >> pgrp && pgrp == group && state != 'Z') return false;
  }
  return true;
}

/// Returns true when no process has `marker` in its command line.
bool none_running(const std::string& marker) { return run({"pgrep", "-f", marker}).exit_code == 1; }

/// Returns true once `done()` is, within a second: a killed process takes a moment to end.
template <class Predicate>
bool within_a_second(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

/// Returns true once no process has `marker` in its command line, within a second.
bool gone(const std::string& marker) {
  return within_a_second([&marker] { return none_running(marker); });
}

/// Returns true once process group `group` (as the task printed it) is empty and no process has
/// `marker` in its command line, within a second.
bool group_gone(const std::string& group, const std::string& marker) {
  return within_a_second([id = std::stol(group), &marker] { return group_empty(id) && none_running(marker); });
}

/// Seconds since the epoch on the wall clock, as task_outcome::start counts them.
double now_epoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("a command's stdout and stderr are captured", "[shell_task]") {
  const task_outcome echo = run({"echo", "hello world"});
  CHECK(echo.ok());
  CHECK(echo.exit_code == 0);
  CHECK(echo.signal == 0);
  CHECK(echo.failure.empty());
  CHECK(echo.out == "hello world\n");
  CHECK(echo.out_bytes == 12);
  CHECK(echo.err.empty());
  CHECK_FALSE(echo.out_truncated());

  const task_outcome both = run({"sh", "-c", "printf out; printf err >&2"});
  CHECK(both.out == "out");
  CHECK(both.err == "err");
  CHECK(both.err_bytes == 3);

  const task_outcome binary = run({"printf", "a\\000b\\377"});
  CHECK(binary.out == std::string("a\0b\377", 4));
}

TEST_CASE("an argument reaches the command unchanged: no shell sees it", "[shell_task]") {
  const std::string text = "a b; $(id) `id` * 'q' \"d\" \\n";
  CHECK(run({"printf", "%s", text}).out == text);
}

TEST_CASE("a non-zero exit and a killing signal are failures", "[shell_task]") {
  const task_outcome three = run({"sh", "-c", "echo partial; exit 3"});
  CHECK_FALSE(three.ok());
  CHECK(three.exit_code == 3);
  CHECK(three.signal == 0);
  CHECK(three.failure == "exited 3");
  CHECK(three.out == "partial\n");

  const task_outcome killed = run({"sh", "-c", "kill -9 $$"});
  CHECK_FALSE(killed.ok());
  CHECK(killed.exit_code == -1);
  CHECK(killed.signal == 9);
  CHECK(killed.failure == "killed by signal 9 (Killed)");

  // A command that exists and exits 127 itself is not "not found".
  CHECK(run({"sh", "-c", "exit 127"}).failure == "exited 127");
}

TEST_CASE("a command that cannot be started is 127 or 126, as in a shell", "[shell_task]") {
  const task_outcome missing = run({"amorsize-no-such-command", "x"});
  CHECK(missing.exit_code == 127);
  CHECK(missing.failure == "command not found: amorsize-no-such-command");
  CHECK(missing.out_bytes == 0);
  CHECK(run({"/nonexistent/dir/tool"}).failure == "command not found: /nonexistent/dir/tool");

  const temp_dir dir;
  const std::string script = (dir.path() / "not-executable.sh").string();
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  const task_outcome denied = run({script});
  CHECK(denied.exit_code == 126);
  CHECK(denied.failure == "permission denied: " + script);
  CHECK_FALSE(denied.ok());

  const auto executable = [&dir](const std::string& file, const std::string& text) {
    const std::string path = (dir.path() / file).string();
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms::owner_all);
    return path;
  };
  const std::string no_interpreter = executable("no-interpreter.sh", "#!/nonexistent/interpreter\n");
  CHECK(run({no_interpreter}).exit_code == 126);
  CHECK(run({no_interpreter}).failure == "cannot start " + no_interpreter + ": No such file or directory");
  const std::string no_shebang = executable("no-shebang.sh", "echo hi\n");
  CHECK(run({no_shebang}).exit_code == 126);
  CHECK(run({no_shebang}).failure == "cannot start " + no_shebang + ": Exec format error");
}

TEST_CASE("output beyond max_bytes is counted, not kept, and both streams drain together", "[shell_task]") {
  const task_outcome large = run({"head", "-c", "10000000", "/dev/zero"}, 1000);
  CHECK(large.ok());
  CHECK(large.out.size() == 1000);
  CHECK(large.out_bytes == 10'000'000);
  CHECK(large.out_truncated());
  CHECK_FALSE(large.err_truncated());

  // Both streams written at once: reading one to its end before the other would deadlock.
  const task_outcome both =
      run({"sh", "-c", "head -c 5000000 /dev/zero >&2 & head -c 5000000 /dev/zero; wait"}, 1000);
  CHECK(both.ok());
  CHECK(both.out.size() == 1000);
  CHECK(both.err.size() == 1000);
  CHECK(both.out_bytes == 5'000'000);
  CHECK(both.err_bytes == 5'000'000);
  CHECK(both.out == std::string(1000, '\0'));
}

TEST_CASE("results_dir sends each stream to its own file", "[shell_task]") {
  const temp_dir dir;
  const task_outcome outcome =
      run_task({"sh", "-c", "printf abc; printf de >&2"}, {1, dir.path().string()}, "task-7");
  CHECK(outcome.ok());
  CHECK(read_small_file((dir.path() / "task-7.stdout").string()) == "abc");
  CHECK(read_small_file((dir.path() / "task-7.stderr").string()) == "de");
  CHECK(outcome.out.empty());
  CHECK(outcome.err.empty());
  CHECK(outcome.out_bytes == 3);
  CHECK(outcome.err_bytes == 2);

  // A second run with the same stem replaces the files.
  CHECK(run_task({"true"}, {1, dir.path().string()}, "task-7").out_bytes == 0);
  CHECK(read_small_file((dir.path() / "task-7.stdout").string()) == "");
}

TEST_CASE("a results_dir that cannot be written fails the task without starting it", "[shell_task]") {
  const temp_dir dir;
  const fs::path missing = dir.path() / "missing";
  const fs::path marker = dir.path() / "ran";
  const task_outcome outcome = run_task({"touch", marker.string()}, {65536, missing.string()}, "t");
  CHECK(outcome.exit_code == 126);
  CHECK(outcome.failure == "cannot write results: " + (missing / "t.stdout").string() + ": No such file or directory");
  CHECK_FALSE(outcome.ok());
  CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("a task's stdin is /dev/null", "[shell_task]") {
  const task_outcome cat = run({"cat"});
  CHECK(cat.ok());
  CHECK(cat.out_bytes == 0);
  CHECK(run({"readlink", "/proc/self/fd/0"}).out == "/dev/null\n");
}

TEST_CASE("a task starts with default signal dispositions and no blocked signal", "[shell_task]") {
  // What a worker may have set: SIGPIPE ignored, SIGUSR1 blocked.
  const auto old_pipe = std::signal(SIGPIPE, SIG_IGN);
  sigset_t usr1;
  sigset_t old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &usr1, &old_mask) == 0);
  const task_outcome status = run({"sed", "-n", "s/^Sig\\(Blk\\|Ign\\):\t//p", "/proc/self/status"});
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  std::signal(SIGPIPE, old_pipe);

  std::istringstream masks(status.out);
  unsigned long long blocked = 1;
  unsigned long long ignored = 1;
  REQUIRE(masks >> std::hex >> blocked >> ignored);
  CHECK(blocked == 0);
  // Bit n-1 is signal n. The C library's own signals (32 and 33 in glibc, below SIGRTMIN) are left
  // ignored by its posix_spawn and cannot be reset; every signal a program may use must be default.
  const unsigned long long libc_internal = ((1ULL << (SIGRTMIN - 1)) - 1) & ~((1ULL << 31U) - 1);
  CHECK((ignored & ~libc_internal) == 0);
}

TEST_CASE("tasks started at once from several threads get only their own descriptors", "[shell_task]") {
  const std::string alone = run({"ls", "/proc/self/fd"}).out;
  REQUIRE_FALSE(alone.empty());
  std::vector<std::string> seen(4 * 5);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&seen, t] {
      for (std::size_t i = 0; i < 5; ++i) seen[t * 5 + i] = run({"ls", "/proc/self/fd"}).out;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& fds : seen) CHECK(fds == alone);
}

TEST_CASE("a task's start and duration are measured", "[shell_task]") {
  const double before = now_epoch();
  const task_outcome outcome = run({"sleep", "0.2"});
  const double after = now_epoch();
  CHECK(outcome.ok());
  CHECK(outcome.start >= before);
  CHECK(outcome.start <= after);
  CHECK(outcome.seconds >= 0.2);
  CHECK(outcome.seconds <= after - before);
}

TEST_CASE("a process that ignores SIGCHLD loses the exit status and says so", "[shell_task]") {
  const auto old_chld = std::signal(SIGCHLD, SIG_IGN);
  const task_outcome outcome = run({"true"});
  std::signal(SIGCHLD, old_chld);
  CHECK(outcome.exit_code == -1);
  CHECK(outcome.failure == "exit status lost: No child processes");
}

TEST_CASE("a task runs in a process group of its own, so a terminal's Ctrl-C does not reach it", "[shell_task]") {
  // `read` is a shell builtin: /proc/self/stat is the shell's own; its fifth field is its process group.
  const task_outcome ids = run({"sh", "-c", "read -r _ _ _ _ group _ </proc/self/stat; echo \"$$ $group\""});
  std::istringstream words(ids.out);
  pid_t pid = 0;
  pid_t group = 0;
  REQUIRE(words >> pid >> group);
  CHECK(group == pid);
  CHECK(group != ::getpgrp());
}

TEST_CASE("a timeout ends the task's whole process group and keeps its output so far", "[shell_task][timeout]") {
  // `echo never` keeps sh from exec'ing sleep: sleep is a grandchild, which only a group kill reaches.
  const task_outcome outcome = run_with_timeout({"sh", "-c", "echo $$; echo err >&2; sleep 100.123; echo never"}, 0.3);
  CHECK(outcome.timed_out);
  CHECK_FALSE(outcome.ok());
  CHECK(outcome.exit_code == -1);
  CHECK(outcome.signal == SIGTERM);
  CHECK(outcome.failure == "timed out after 0.3 s (killed by signal 15 (Terminated))");
  CHECK(outcome.err == "err\n");
  CHECK(outcome.seconds >= 0.3);
  CHECK(outcome.seconds < 0.3 + kill_grace_seconds);
  REQUIRE(outcome.out.size() > 1);
  CHECK(group_gone(outcome.out, "sleep 100.123"));

  const task_outcome direct = run_with_timeout({"sleep", "30"}, 0.2);
  CHECK(direct.timed_out);
  CHECK(direct.signal == SIGTERM);
  CHECK(direct.seconds < 0.2 + kill_grace_seconds);
}

TEST_CASE("a task that ignores SIGTERM is killed with SIGKILL after the grace", "[shell_task][timeout]") {
  // An ignored signal stays ignored across exec: sleep ignores SIGTERM too.
  const task_outcome outcome = run_with_timeout({"sh", "-c", "trap '' TERM; echo $$; sleep 100.5; echo never"}, 0.2);
  CHECK(outcome.timed_out);
  CHECK(outcome.exit_code == -1);
  CHECK(outcome.signal == SIGKILL);
  CHECK(outcome.failure == "timed out after 0.2 s (killed by signal 9 (Killed))");
  CHECK(outcome.seconds >= 0.2 + kill_grace_seconds);
  CHECK(outcome.seconds < 0.2 + kill_grace_seconds + 1.5);
  REQUIRE(outcome.out.size() > 1);
  CHECK(group_gone(outcome.out, "sleep 100.5"));
}

TEST_CASE("a timed-out task that exits on SIGTERM but leaves processes behind: they are killed too", "[shell_task][timeout]") {
  // The shell exits 0 on TERM; its background sleep, which ignores TERM, is ended with SIGKILL
  // when its output is no longer read, before the grace is over.
  const task_outcome outcome =
      run_with_timeout({"sh", "-c", "trap 'exit 0' TERM; (trap '' TERM; exec sleep 100.75) & echo $$; wait"}, 0.2);
  CHECK(outcome.timed_out);
  CHECK(outcome.exit_code == -1);
  CHECK(outcome.signal == SIGTERM);  // the signal sent last before it exited
  CHECK(outcome.seconds < 0.2 + kill_grace_seconds);
  REQUIRE(outcome.out.size() > 1);
  CHECK(group_gone(outcome.out, "sleep 100.75"));
}

TEST_CASE("a task that ends before its timeout is not affected by it", "[shell_task][timeout]") {
  const task_outcome outcome = run_with_timeout({"sh", "-c", "sleep 0.1; echo done"}, 10);
  CHECK(outcome.ok());
  CHECK_FALSE(outcome.timed_out);
  CHECK(outcome.out == "done\n");
  CHECK(outcome.seconds < 5);
  CHECK(run_with_timeout({"sh", "-c", "exit 4"}, 10).failure == "exited 4");
}

TEST_CASE("a timeout with results_dir keeps the output written so far in the files", "[shell_task][timeout]") {
  const temp_dir dir;
  const task_outcome outcome = run_task({"sh", "-c", "echo part; sleep 30.25; echo never"}, {1, dir.path().string(), 0.2}, "t");
  CHECK(outcome.timed_out);
  CHECK(outcome.signal == SIGTERM);
  CHECK(read_small_file((dir.path() / "t.stdout").string()) == "part\n");
  CHECK(outcome.out_bytes == 5);
  CHECK(gone("sleep 30.25"));
}

TEST_CASE("a background process holding a task's output does not hold the task", "[shell_task][timeout]") {
  // Output written shortly after the command exited is still read.
  const task_outcome late = run({"sh", "-c", "(sleep 0.2; echo late) & echo early"});
  CHECK(late.ok());
  CHECK(late.out == "early\nlate\n");

  // One that outlives output_grace_seconds is left running; the task ends without it.
  const task_outcome outcome = run({"sh", "-c", "sleep 100.25 & echo $!"});
  CHECK(outcome.ok());
  CHECK(outcome.seconds < output_grace_seconds + 1.5);
  REQUIRE(outcome.out.size() > 1);
  const auto sleeper = static_cast<pid_t>(std::stol(outcome.out));
  CHECK(::kill(sleeper, SIGKILL) == 0);  // still running, as the task left it; not a child of this process
}

TEST_CASE("the shell job's set_item_timeout limits each task and its record says timed_out", "[shell_task][timeout]") {
  shell_job job;
  job.command = "sleep {}";
  const shell_result finished = job.function()(shell_item{1, "0"});
  CHECK(finished.outcome.ok());
  CHECK_FALSE(job.record(finished).fields.contains("timed_out"));

  job.set_item_timeout(0.2);
  const shell_result result = job.function()(shell_item{2, "30.5"});
  CHECK(result.outcome.timed_out);
  CHECK(result.outcome.seconds < 0.2 + kill_grace_seconds);
  const amorsize::runner::record_fields record = job.record(result);
  CHECK(record.fields["timed_out"] == true);
  CHECK(record.fields["exit_code"] == -1);
  CHECK(record.fields["signal"] == SIGTERM);
  CHECK(record.failure == "timed out after 0.2 s (killed by signal 15 (Terminated))");
  CHECK(gone("sleep 30.5"));
}

TEST_CASE("node_name is $SLURMD_NODENAME when set, else the host's name", "[shell_task]") {
  const std::optional<std::string> saved = environment_variable("SLURMD_NODENAME");

  REQUIRE(::setenv("SLURMD_NODENAME", "sim-node-3", 1) == 0);
  CHECK(amorsize::node_name() == "sim-node-3");

  REQUIRE(::unsetenv("SLURMD_NODENAME") == 0);
  std::array<char, HOST_NAME_MAX + 1> name{};
  REQUIRE(::gethostname(name.data(), name.size() - 1) == 0);
  CHECK(amorsize::node_name() == name.data());

  if (saved) ::setenv("SLURMD_NODENAME", saved->c_str(), 1);
}

TEST_CASE("a task outcome survives a Boost binary archive", "[shell_task]") {
  task_outcome sent;
  sent.exit_code = -1;
  sent.signal = 9;
  sent.timed_out = true;
  sent.failure = "killed by signal 9 (Killed)";
  sent.start = 1700000000.25;
  sent.seconds = 1.5;
  sent.out = std::string("a\0b\377", 4);
  sent.err = "warning\n";
  sent.out_bytes = 10'000'000'000ULL;
  sent.err_bytes = 8;

  std::stringstream buffer;
  {
    boost::archive::binary_oarchive out(buffer);
    out << sent;
  }
  task_outcome received;
  boost::archive::binary_iarchive in(buffer);
  in >> received;
  CHECK(received.exit_code == sent.exit_code);
  CHECK(received.signal == sent.signal);
  CHECK(received.timed_out == sent.timed_out);
  CHECK(received.failure == sent.failure);
  CHECK(received.start == sent.start);
  CHECK(received.seconds == sent.seconds);
  CHECK(received.out == sent.out);
  CHECK(received.err == sent.err);
  CHECK(received.out_bytes == sent.out_bytes);
  CHECK(received.err_bytes == sent.err_bytes);
}
