#pragma once
/// The shell job's task: one command run directly (no shell), and the record of what it did.

#include <boost/serialization/string.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace amorsize::jobs {

/// Seconds a timed-out task's process group has between SIGTERM and SIGKILL (GNU parallel's --timeout does the same).
inline constexpr double kill_grace_seconds = 2.0;
/// Seconds a task's output is still read after its command exited while processes it left in the
/// background hold the output open; then it is no longer read and they are left running.
inline constexpr double output_grace_seconds = 1.0;

/// How a task runs: where its stdout and stderr go, and how long it may take.
struct task_options {
  std::size_t max_bytes = 65536;  ///< Bytes of each stream kept in the record; the rest is counted, not kept.
  std::string results_dir;        ///< Non-empty: each stream goes to `<results_dir>/<stem>.stdout` / `.stderr` instead, none kept in memory.
  double timeout_seconds = 0;     ///< Wall seconds the command may run before its process group is killed; 0 (or not finite): no limit.
};

/// What one task did; it crosses processes and MPI ranks through Boost.Serialization.
struct task_outcome {
  int exit_code = 0;           ///< Exit status; 127 command not found, 126 not started otherwise (shell semantics); -1 killed by a signal or timed out.
  int signal = 0;              ///< The signal that killed the command (one that exited after a timeout: the signal sent last before it exited), 0 if none.
  bool timed_out = false;      ///< True when the command ran past task_options::timeout_seconds and its process group was killed.
  std::string failure;         ///< Empty when the command exited 0, else one line saying what went wrong.
  double start = 0;            ///< When the command started, in seconds since the epoch (wall clock).
  double seconds = 0;          ///< Wall seconds from its start until it had exited and its output ended.
  std::string out;             ///< The first max_bytes of stdout (empty with results_dir).
  std::string err;             ///< The first max_bytes of stderr (empty with results_dir).
  std::uint64_t out_bytes = 0; ///< Bytes stdout produced in all.
  std::uint64_t err_bytes = 0; ///< Bytes stderr produced in all.

  /// Returns true when the command exited 0 and nothing went wrong.
  [[nodiscard]] bool ok() const noexcept { return exit_code == 0 && signal == 0 && failure.empty(); }
  /// Returns true when stdout produced more bytes than `out` keeps (always, for output sent to results_dir).
  [[nodiscard]] bool out_truncated() const noexcept { return out_bytes > out.size(); }
  /// Returns true when stderr produced more bytes than `err` keeps (always, for output sent to results_dir).
  [[nodiscard]] bool err_truncated() const noexcept { return err_bytes > err.size(); }

  /// Reads or writes every field with a Boost archive.
  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar & exit_code & signal & timed_out & failure & start & seconds & out & err & out_bytes & err_bytes;
  }
};

/// Runs `argv` (argv[0] looked up on PATH, no shell) in a process group of its own with stdin from
/// /dev/null, capturing its output as `options` says (`stem` names the result files), and returns
/// what it did once the command has exited and closed its output (or output_grace_seconds after it
/// exited); never throws for anything the command does.
///
/// Its own process group keeps a terminal's Ctrl-C (SIGINT to the foreground group) from reaching
/// the command, and lets a timeout end everything the command started: past
/// `options.timeout_seconds` the group gets SIGTERM, then SIGKILL kill_grace_seconds later, or as
/// soon as the command has exited and its output is no longer read if that comes first; the output
/// read so far is kept, and the outcome has `timed_out`, exit -1, `signal` and "timed out after S s
/// (killed by signal N (NAME))".
///
/// A command that is not started is reported as a shell would: exit 127 "command not found: NAME";
/// exit 126 "permission denied: NAME", "cannot write results: PATH: REASON" (results_dir cannot be
/// written, so the command is not started), "cannot capture output: REASON" or "cannot start NAME:
/// REASON" (a file without #! is not handed to /bin/sh), or "argument N holds a NUL byte" (not
/// started: the argument would end there). Exit -1 "exit status lost: REASON" when
/// this process ignores SIGCHLD, so the kernel reaps the command.
task_outcome run_task(const std::vector<std::string>& argv, const task_options& options, const std::string& stem);

}  // namespace amorsize::jobs
