#pragma once
/// The typed half of the runner: plan and run any job; everything that does not depend on the
/// job's types (options, output, progress, trace, summary) is in src/runner.

#include <amorsize/resume.hpp>
#include <amorsize/runner.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace amorsize::runner::detail {

/// The planner's options exactly as typed (shared by `plan JOB` and `run JOB`).
struct planner_cli {
  std::size_t sample_size = 5;
  double target_chunk_duration = 0.2;
  bool ordered = false;
  bool unordered = false;
  std::optional<std::size_t> buffer_size;
  std::optional<int> workers_per_node;
  std::optional<std::size_t> chunksize;
  double memory_fraction = 0.5;
  double min_speedup = 1.2;
  std::string mode = "stream";
  bool no_spawn_benchmark = false;
  bool no_chunking_benchmark = false;
  bool verbose = false;
  bool json = false;

  /// Converts to planner options; throws input_error naming the option that is out of range.
  [[nodiscard]] optimize_options options() const;
};

/// The run command's own options exactly as typed.
struct run_cli {
  std::string output;                  ///< Empty: stdout.
  std::string report;                  ///< Empty: no report.
  std::string backend;                 ///< Empty: the plan's.
  std::string on_error = "keep-going"; ///< keep-going or stop.
  std::string trace;                   ///< Empty: no trace.
  std::optional<bool> progress;        ///< --progress / --no-progress; unset: when stderr is a terminal.
  std::optional<double> progress_interval; ///< Off a terminal: a plain progress line this often.
  bool quiet = false;                  ///< No summary at the end.
  bool resume = false;                 ///< Continue the run whose records are in the output.
  bool overwrite = false;              ///< Replace an output that holds records.
  bool retry_failed = false;           ///< With resume: run the items of error records again.
  double grace = 30.0;                 ///< Seconds items in flight get to finish after a stop signal.
  int retries = 0;                     ///< Runs a failed item gets after its first.
  std::optional<double> timeout;       ///< Seconds an item may run (unset: no limit).
  std::string max_failures;            ///< Stop after this many failed items, or this percentage ("5%"); empty: never.
};

/// Adds the planner's options to a job's subcommand; `for_plan` adds --mode and --json.
void add_planner_options(CLI::App& command, planner_cli& planner, bool for_plan);
/// Adds the run command's own options to a job's subcommand.
void add_run_options(CLI::App& command, run_cli& run);

/// One job's `plan` and `run`, whatever its types.
class job_command {
 public:
  virtual ~job_command() = default;
  /// Binds the job's own options to `command`.
  virtual void add_options(CLI::App& command) = 0;
  /// Plans the job and prints the plan on the root; returns the exit code.
  virtual int plan(const planner_cli& planner) = 0;
  /// Plans and runs the job, writing its records; returns the exit code.
  virtual int run(const planner_cli& planner, const run_cli& run) = 0;
};

/// What the runner must know of a job before it runs, beside its items and function.
struct job_needs {
  std::function<void()> check;      ///< The job's root-side check of its input (empty: none).
  std::vector<std::string> inputs;  ///< Files the job reads: no output may name one.
  std::string needs_processes;      ///< Why its items need worker processes (empty: any backend will do).
  bool stops_own_items = false;     ///< The job stops its own items after --timeout (it has set_item_timeout).
};

/// Runs `check` (if any) on the root; under MPI every rank then throws the root's error, if any.
void check_on_root(const std::function<void()>& check);

/// Sets `options` to run on worker processes when `reason` says the job needs them; throws
/// input_error when the command line asked for another backend or a launcher runs the ranks.
void require_processes(optimize_options& options, const std::string& reason);

/// Everything about one run that does not depend on the job's types: checks, output, records,
/// progress, trace, report and summary. Only the root writes; a root-side failure to start ends
/// every rank with the root's error.
class run_reporter {
 public:
  /// Runs the job's check and checks that the outputs can be written (neither over the input nor
  /// over each other) on the root, before anything else, then shares any failure with every rank;
  /// `noun` names the items in messages ("tasks"). The outputs are opened once the plan is made.
  run_reporter(const planner_cli& planner, const run_cli& run, std::string noun, const job_needs& job);
  ~run_reporter();
  run_reporter(const run_reporter&) = delete;
  run_reporter& operator=(const run_reporter&) = delete;

  /// Returns the keys of the items the output already holds (--resume) on the root; else none.
  [[nodiscard]] const finished_items& finished() const;
  /// The planner's options, with the backend asked for on the command line.
  [[nodiscard]] optimize_options planning_options() const;
  /// Counts a sampled item that failed (its function threw, or its record says it failed).
  void sampled_failure(std::size_t index, const std::string& failure);
  /// Notes the plan and how long it took; when all `sampled` items failed and `more_to_run` (the
  /// source holds more than the sampled items), ends the run on every rank with sample_error, since
  /// no item is likely to succeed. Opens the outputs and, from here on, turns SIGINT, SIGTERM,
  /// SIGHUP and SIGUSR1 into a graceful stop.
  void planned(const plan& p, std::size_t sampled, bool more_to_run);
  /// The pool's options for the plan: its workers and chunks, the error policy, the stop request,
  /// the item timeout, the trace's observer.
  [[nodiscard]] pool_options running_options(const plan& p);
  /// True when a failed item may run again: retries are left for `attempt` and the run is not stopping.
  [[nodiscard]] bool may_retry(int attempt) const;
  /// True once a stop signal arrived: an item that fails from now on may have failed of it (a
  /// scheduler signals every process of a job), so it gets no record and runs again on --resume.
  [[nodiscard]] bool interrupted() const;
  /// Writes the record of item `index` (its `record_key` identifies it to --resume; `attempt` counts its runs) and counts it.
  void record(std::size_t index, const std::string& record_key, int attempt, record_fields&& fields);
  /// True when the run stops at its first failed item (--on-error stop).
  [[nodiscard]] bool stops_at_first_failure() const;
  /// Writes the records gathered so far when due: call it when a chunk's last record was taken.
  void chunk_done();
  /// Adds the counters of one pool call (the run, then each round of retries).
  void add_stats(const run_stats& stats);
  /// Ends the run: report, summary, the failure line; returns the exit code.
  int finish(const plan& p);
  /// Ends a run without items to run: the input is empty, or the output holds all `kept` already.
  int nothing_to_run(std::size_t kept);

  /// Ends a run that a signal stopped before any sampled item finished, leaving the output as it was
  /// (`kept` items have records from before, `not_run` items had none: nullopt when unknown); returns the exit code.
  int stopped_while_sampling(std::size_t kept, std::optional<std::size_t> not_run);

 private:
  /// Throws input_error when an output cannot be written, names an input, or names another output.
  void check_outputs(const std::vector<std::string>& inputs) const;

  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Prints `p` on the root as the plan command asked (text or JSON).
void print_plan(const plan& p, const planner_cli& planner);

/// Returns the job's noun for messages: its `noun` when it has one, else "items".
template <class J>
std::string noun_of() {
  if constexpr (requires { J::noun; }) return std::string(J::noun);
  else return "items";
}

/// Returns the fields of an error record: its function threw, its worker died, or it was not run.
inline record_fields error_fields(const std::string& message) {
  record_fields fields;
  fields.failure = message;
  return fields;
}

/// Throws the input_error nested in `e`, if it holds one; else returns.
inline void rethrow_nested_input_error(const std::exception& e) {
  try {
    std::rethrow_if_nested(e);
  } catch (const input_error&) {
    throw;
  } catch (...) {
  }
}

/// Under MPI, returns the root's `count` on every rank; else `count`.
std::size_t root_count(std::size_t count);

/// Returns what besides an item decides its result: the job's identity(), else its name.
template <class J>
std::string identity_of(const J& job) {
  if constexpr (requires { job.identity(); }) return std::string(J::name) + '\n' + job.identity();
  else return std::string(J::name);
}

/// Returns the job's per-worker setup, or an empty function when it has none.
template <class J>
std::function<void()> setup_of(const J& job) {
  if constexpr (requires { job.setup(); }) return [job] { job.setup(); };
  else return {};
}

/// A job that stops its own items after --timeout (its set_item_timeout is called before the run).
template <class J>
concept sets_item_timeout = requires(J& job) { job.set_item_timeout(1.0); };

/// Returns what the runner must know of `job` before it runs: its optional check(), inputs() and needs_processes().
template <class J>
job_needs needs_of(const J& job) {
  job_needs needs;
  if constexpr (requires { job.check(); }) needs.check = [&job] { job.check(); };
  if constexpr (requires { job.inputs(); }) needs.inputs = job.inputs();
  if constexpr (requires { job.needs_processes(); }) needs.needs_processes = job.needs_processes();
  needs.stops_own_items = sets_item_timeout<J>;
  return needs;
}

/// A record's key and fields, as the runner makes them for one item.
using keyed_record = std::pair<std::string, record_fields>;

/// Returns the seconds the root spends per record: making one with `make` and formatting its line,
/// timed over a few milliseconds (the model charges them to every item, serial or parallel).
double record_seconds(const std::function<keyed_record()>& make);

/// Returns the root's seconds per record of `job` (its key, its record, its line), measured on a
/// default item and result; 0 when either type has no default or the job's record() refuses one,
/// and on every rank but the root (only the root plans).
template <job J>
double record_seconds_of(const J& job) {
  using item = typename J::item_type;
  using result = typename J::result_type;
  if (!amorsize::detail::hands_records()) return 0.0;
  if constexpr (std::is_default_constructible_v<item> && std::is_default_constructible_v<result>) {
    const std::string context = identity_of(job);
    try {
      return record_seconds([&] { return keyed_record(item_key(context, item{}), job.record(result{})); });
    } catch (...) {
      return 0.0;  // a record() that needs a real result: its cost stays out of the model
    }
  } else {
    return 0.0;
  }
}

/// Plans `job` as `planner` says and prints the plan on the root.
template <job J>
int plan_job(const J& job, const planner_cli& planner) {
  const job_needs needs = needs_of(job);
  check_on_root(needs.check);
  optimize_options options = planner.options();
  require_processes(options, needs.needs_processes);
  options.worker_setup = setup_of(job);
  options.consumer_seconds_per_item = record_seconds_of(job);  // what `run` adds per item, so the plans agree
  const auto fn = job.function();
  const plan p = planner.mode == "map" ? plan(optimize(fn, job.items(), options))
                                       : plan(optimize_streaming(fn, job.items(), options));
  print_plan(p, planner);
  return 0;
}

/// Plans `job`, runs it on the plan's workers and writes one record per item; with --resume, only
/// the items without a record in the output; with --retries, failed items again, round by round.
template <job J>
int run_job(J& job, const planner_cli& planner, const run_cli& run) {
  using item = typename J::item_type;
  if constexpr (sets_item_timeout<J>) {
    if (run.timeout) job.set_item_timeout(*run.timeout);
  }
  run_reporter reporter(planner, run, noun_of<J>(), needs_of(job));
  resumed_items<item> items(job.items(), reporter.finished(), identity_of(job), run.retries > 0);
  const std::function<void()> setup = setup_of(job);
  optimize_options options = reporter.planning_options();
  options.worker_setup = setup;
  options.consumer_seconds_per_item = record_seconds_of(job);
  const auto fn = job.function();
  std::optional<streaming_optimization_result<item, typename J::result_type>> planned;
  const std::optional<std::size_t> to_run = items.remaining().size();  // before sampling reads any
  try {
    planned.emplace(optimize_streaming(fn, items.remaining(), options));
  } catch (const empty_source_error&) {
    return reporter.nothing_to_run(items.skipped());
  } catch (const stopped_error&) {
    return reporter.stopped_while_sampling(items.skipped(), to_run);
  } catch (const source_error& e) {
    rethrow_nested_input_error(e);  // an item that changed since the run resumed is bad input
    throw;
  }
  // The sampled results come back as records later; here they only tell whether any item can succeed.
  for (const item_error& e : planned->sample_errors) reporter.sampled_failure(items.original_index(e.index), e.message);
  for (std::size_t i = 0; i < planned->sampled_results.size(); ++i) {
    if (const auto& result = planned->sampled_results[i]) {
      if (std::string failure = job.record(*result).failure; !failure.empty()) {
        reporter.sampled_failure(items.original_index(i), failure);
      }
    }
  }
  // A list that ended within the sample (even one read from a pipe, of unknown size) has run whole.
  const std::size_t sampled = planned->sampled_results.size();
  const std::optional<std::size_t> left = planned->data.size();  // the sampled items included
  reporter.planned(*planned, sampled, !left || *left > sampled);

  pool_options po = reporter.running_options(*planned);
  po.worker_setup = setup;
  pool workers(po);
  /// A failed item kept to run once more: its original index, the item and its last failure.
  struct retry {
    std::size_t index;
    item value;
    int attempt;
    record_fields failure;
  };
  std::vector<retry> again;
  bool stopping = false;  // --on-error stop met a failure with no retry left: nothing more runs again
  // Writes the record of a finished item (`kept`: the item, when failed items may run again), or
  // keeps the item for the next round when it failed and may run again. Under --on-error stop, the
  // first failure with no retry left (an exception, a task that exited non-zero) stops the run.
  const auto settle = [&](auto& records, std::size_t index, const auto& r, int attempt, std::optional<item> kept) {
    record_fields fields = r.ok() ? job.record(r.value()) : error_fields(r.error());
    const bool failed = !fields.failure.empty();
    if (failed && reporter.interrupted()) {
      (void)items.take_key(index);  // no record: it runs again on --resume
      return;
    }
    if (failed && kept && !stopping && reporter.may_retry(attempt)) {
      again.push_back({index, std::move(*kept), attempt, std::move(fields)});
      return;
    }
    if (failed && !stopping && reporter.stops_at_first_failure()) {
      stopping = true;
      records.stop_after_failure(index);  // the "not run" records name the failed item by its number in the input
    }
    reporter.record(index, items.take_key(index), attempt, std::move(fields));
  };
  {
    auto records = workers.stream(fn, *planned);
    while (auto r = records.next()) {
      const std::size_t index = items.original_index(r->index());
      settle(records, index, *r, 1, items.take_item(index));
      if (records.buffered() == 0) reporter.chunk_done();
    }
    reporter.add_stats(records.stats());
  }
  for (int attempt = 2; root_count(!stopping && reporter.may_retry(attempt - 1) ? again.size() : 0) > 0; ++attempt) {
    // Each round runs copies: the kept items stay here, to run again after another failure.
    std::vector<retry> round = std::move(again);
    again.clear();
    std::vector<item> round_items;
    for (const retry& entry : round) round_items.push_back(entry.value);
    auto records = workers.stream(fn, std::move(round_items));
    while (auto r = records.next()) {
      retry& entry = round[r->index()];
      settle(records, entry.index, *r, attempt, std::move(entry.value));
      if (records.buffered() == 0) reporter.chunk_done();
    }
    reporter.add_stats(records.stats());
  }
  // A stop on error or by --max-failures leaves the items kept to run again with their last failure
  // as record (after a stop signal they get none: they run on --resume).
  if (!reporter.interrupted()) {
    for (retry& entry : again) reporter.record(entry.index, items.take_key(entry.index), entry.attempt, std::move(entry.failure));
  }
  return reporter.finish(*planned);
}

/// A job of type `J` behind the type-erased command.
template <job J>
class job_command_of final : public job_command {
 public:
  void add_options(CLI::App& command) override { job_.add_options(command); }
  int plan(const planner_cli& planner) override { return plan_job(job_, planner); }
  int run(const planner_cli& planner, const run_cli& run) override { return run_job(job_, planner, run); }

 private:
  J job_;
};

}  // namespace amorsize::runner::detail

namespace amorsize::runner {

template <job J>
job_registry& job_registry::add() {
  add_entry({std::string(J::name), std::string(J::summary),
             [] { return std::unique_ptr<detail::job_command>(new detail::job_command_of<J>()); }});
  return *this;
}

}  // namespace amorsize::runner
