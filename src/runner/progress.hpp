#pragma once
/// The runner's progress line while tasks run, and its summary once they are done: pure formatting
/// of plain counts, and a throttled writer that takes its time from the counts (no clock inside).

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace amorsize::runner {

/// Where a run stands: what is finished, out of how many, on how many workers, after how long.
struct progress_counts {
  std::size_t done = 0;                ///< Tasks finished, the failed ones included.
  std::size_t failed = 0;              ///< Tasks finished with an error (a part of `done`).
  std::optional<std::size_t> total;    ///< Tasks in all; nullopt for endless input.
  int workers = 0;                     ///< Workers running tasks; 0 or less: not started yet (not shown).
  double elapsed = 0;                  ///< Seconds since the run started.
};

/// Returns one progress line, without a newline, such as
/// `1234/2000 tasks (61.7%) | 12 failed | 150.2/s | ETA 0:05 | 4 workers | 0:08 elapsed`, or
/// `1234 tasks | 150.2/s | 4 workers | 0:08 elapsed` without a total.
///
/// The rule, fixed so that tests and log readers can rely on it: the percentage is rounded down (it
/// says 100.0% only when all are done; 100.0% for a total of 0); `| N failed` appears only once a
/// task has failed; the rate is done / elapsed, `--/s` with `ETA --` until a task is done; the ETA
/// (total only) is rounded up and the elapsed time down, as `M:SS` or `H:MM:SS`; `| N workers` is
/// left out while workers is 0. `noun` names the tasks ("tasks", "items").
std::string format_progress(const progress_counts& counts, std::string_view noun = "tasks");

/// How progress is shown.
enum class progress_style {
  off,     ///< Nothing is written.
  redraw,  ///< One line redrawn in place on a terminal (`\r`, the line, clear to end of line).
  lines,   ///< Plain lines at a fixed interval, prefixed `amorsize: progress `, for logs (Slurm).
};

/// Seconds between two lines of the `lines` style when --progress-interval is not given.
inline constexpr double default_progress_interval_seconds = 10.0;

/// Seconds between two redraws of the `redraw` style at most.
inline constexpr double redraw_period_seconds = 0.25;

/// Chooses the progress style from the command line and from whether stderr is a terminal.
///
/// The rule: --no-progress (`forced` false) gives off; otherwise a terminal gives redraw; not a
/// terminal gives lines when --progress (`forced` true) or --progress-interval (`interval`) is
/// given, and off when neither is.
progress_style choose_progress_style(std::optional<bool> forced, bool stderr_is_terminal,
                                     std::optional<double> interval);

/// Writes progress lines in a style, no more often than is due; not thread-safe.
class progress_meter {
 public:
  /// Creates a meter writing to `out`; `interval_seconds` is the period of the `lines` style (it
  /// must then be positive, else input_error), the `redraw` style redraws at most every 0.25 s.
  progress_meter(std::ostream& out, progress_style style, double interval_seconds,
                 std::string noun = "tasks");

  /// Draws `counts` when a draw is due by `counts.elapsed` (redraw: at once, then every 0.25 s;
  /// lines: every interval), else returns after one comparison; does nothing after finish.
  void update(const progress_counts& counts);

  /// Draws `counts` a last time and ends the line (redraw) or writes a last line (lines); once.
  void finish(const progress_counts& counts);

 private:
  void draw(const progress_counts& counts, bool last);

  std::ostream& out_;
  progress_style style_;
  double period_;
  std::string noun_;
  double next_due_;
  bool finished_ = false;
  std::string last_line_;  // the last line drawn
};

/// What a run did, in numbers, for the lines printed at its end.
struct run_summary {
  std::string noun = "tasks";        ///< What the items are called ("tasks", "items").
  std::size_t items = 0;             ///< Items run, the failed ones included.
  std::size_t failed = 0;            ///< Items that failed.
  double wall_seconds = 0;           ///< Seconds from start to end, everything included.
  double sampling_seconds = 0;       ///< Seconds spent sampling the workload.
  double planning_seconds = 0;       ///< Seconds spent planning after sampling.
  double running_seconds = 0;        ///< Seconds spent running the items.
  double tail_seconds = 0;           ///< Seconds from the last dispatch to the last result.
  double predicted_speedup = 0;      ///< The plan's speedup; 0 or less: unknown.
  double measured_speedup = 0;       ///< The speedup measured; 0 or less: unknown.
  int workers = 0;                   ///< Workers that ran the items.
  std::string backend;               ///< The backend that ran them ("processes", "mpi"); may be empty.
  std::string output = "stdout";     ///< Where the records went; may be empty.
  std::string first_failure;         ///< The first failure ("task 17 exited 1: ..."); empty if none.
};

/// Returns "task" for "tasks": the noun for one item.
std::string singular(const std::string& noun);

/// Returns `count` and `noun` ("1 task", "2 tasks", "0 tasks"), `noun` being the plural.
std::string count_text(std::size_t count, const std::string& noun);

/// Returns the speedup predicted for a whole run, counted as measured_speedup is (work over wall
/// time, sampling and planning included): `work_seconds` of the calls themselves that the plan runs
/// in `run_seconds`, both as the plan's profile gives them (the sampled calls included), after
/// `planning_seconds` of planning. Returns `plan_speedup` (the plan's own) when the work is unknown
/// (`work_seconds` 0: endless input).
double whole_run_speedup(double work_seconds, double run_seconds, double planning_seconds, double plan_speedup);

/// Returns the lines printed on stderr at the end of a run, each prefixed `amorsize: ` and ended
/// with a newline: counts and wall time, speedups and efficiency (measured / workers), the time
/// spent in each phase (the failure line is format_failure_line's, printed even with --quiet); an
/// unknown or non-finite value shows as `--`, never as nan or inf.
std::string format_summary(const run_summary& summary);

/// Returns exactly one line, without a newline, such as
/// `12 of 2000 tasks failed; first: task 17 exited 1: ...; records in out.jsonl`; the first failure
/// has its control characters (newlines) turned into spaces and is cut at 200 bytes with `...`,
/// and each `; ...` part is left out when its field is empty.
std::string format_failure_line(const run_summary& summary);

}  // namespace amorsize::runner
