#pragma once
/// `run shell`: a task farm. One task per line of a file (or stdin), each a command made from a
/// template with GNU parallel's placeholders, started directly (no shell unless --shell asks).

#include "jobs/command_template.hpp"
#include "jobs/shell_task.hpp"

#include <amorsize/runner.hpp>

#include <boost/serialization/string.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace amorsize::jobs {

/// One task: its input line and its number (from 1, GNU parallel's `{#}`).
struct shell_item {
  std::size_t number = 1;  ///< The task's number among the tasks (blank lines are not tasks).
  std::string line;        ///< The input line, without its line end.

  /// Reads or writes the task (Boost.Serialization).
  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar & number & line;
  }
};

/// What one task did, and where.
struct shell_result {
  std::size_t number = 1; ///< The task's number (`{#}`), which names its --results files.
  std::string input;      ///< The task's input line.
  std::string command;    ///< The command as run (shell-quoted arguments, or the --shell code).
  task_outcome outcome;   ///< Exit code, signal, timing and captured output.
  std::string host;       ///< The node that ran it.
  int worker = 0;         ///< The worker that ran it (amorsize::current_worker()).

  /// Reads or writes the result (Boost.Serialization).
  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar & number & input & command & outcome & host & worker;
  }
};

/// The shell job's options and what it makes of them.
struct shell_job {
  using item_type = shell_item;
  using result_type = shell_result;
  static constexpr std::string_view name = "shell";
  static constexpr std::string_view summary =
      "Run a command for each line of a file or stdin, with GNU parallel's placeholders; a record per task";
  static constexpr std::string_view noun = "tasks";

  std::string input;                 ///< --input: the task list, one task per line; "-" reads stdin.
  std::string command;               ///< --command: the template.
  bool use_shell = false;            ///< --shell: run the substituted template with /bin/sh -c.
  std::size_t capture_bytes = 65536; ///< --capture-bytes: bytes of stdout and of stderr kept per record.
  std::string results;               ///< --results: a folder (made if missing) for each task's whole stdout and stderr instead.
  double timeout_seconds = 0;        ///< The runner's --timeout: wall seconds a task may run before its process group is killed; 0: none.

  /// Binds its own options above (not timeout_seconds: the runner owns --timeout) to `command`.
  void add_options(CLI::App& command);
  /// On the root, before anything runs: the template parses, the input is readable, the results folder writable.
  void check() const;
  /// Returns the task list's path (none for stdin): no output of the run may overwrite it.
  [[nodiscard]] std::vector<std::string> inputs() const;
  /// Returns the tasks: the input's lines that are not blank, read as the run goes (on the root only).
  [[nodiscard]] source<item_type> items() const;
  /// Lets each task run at most `seconds` (0: no limit); the runner calls it for `run shell --timeout S`.
  void set_item_timeout(double seconds) { timeout_seconds = seconds; }
  /// Returns what besides a task's line decides its result: the command template and --shell.
  [[nodiscard]] std::string identity() const { return (use_shell ? "shell " : "exec ") + command; }
  /// Returns the function that runs one task and reports it.
  [[nodiscard]] std::function<result_type(const item_type&)> function() const;
  /// Returns a task's record fields (`"timed_out": true` for a task killed by the timeout); a task
  /// that did not exit 0 is a failure.
  [[nodiscard]] runner::record_fields record(const result_type& result) const;
};

}  // namespace amorsize::jobs
