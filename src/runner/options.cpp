// The command line's values: strict numbers and texts, the planner's and the run command's options.

#include <amorsize/runner.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

namespace amorsize::runner {
namespace {

/// Returns `value` as the command line would show it.
template <class T>
std::string shown(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (value == std::numeric_limits<T>::max()) return "any";
  }
  return (std::ostringstream() << value).str();
}

/// Returns "a whole number from MIN to MAX" or "a number from MIN to MAX".
template <class T>
std::string range_text(T min, T max) {
  const char* kind = std::is_integral_v<T> ? "a whole number" : "a number";
  if constexpr (std::is_floating_point_v<T>) {
    if (max == std::numeric_limits<T>::max()) return std::string(kind) + " of at least " + shown(min);
  }
  return std::string(kind) + " from " + shown(min) + " to " + shown(max);
}

}  // namespace

template <class T>
T parse_number(std::string_view text, std::string_view option, T min, T max) {
  if (text.empty()) throw input_error(std::string(option) + " must not be empty: give " + range_text(min, max) + " or leave the option out");
  const std::string what = std::string(option) + " must be " + range_text(min, max) + ", got '" + std::string(text) + "'";
  T value{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (end != last || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    if constexpr (std::is_unsigned_v<T>) {
      long negative = 0;  // a negative whole number is a number, only out of range
      if (text.size() > 1 && text[0] == '-' && std::from_chars(first, last, negative).ptr == last) throw input_error(what);
    }
    throw error(exit_code::usage, what);
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) throw input_error(what);
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) throw input_error(what);
  return value;
}

template int parse_number<int>(std::string_view, std::string_view, int, int);
template long parse_number<long>(std::string_view, std::string_view, long, long);
template unsigned long parse_number<unsigned long>(std::string_view, std::string_view, unsigned long, unsigned long);
template double parse_number<double>(std::string_view, std::string_view, double, double);

CLI::Option* add_text(CLI::App& command, const std::string& name, std::string& target, const std::string& help) {
  auto* added = command.add_option_function<std::string>(
      name,
      [&target, option = detail::long_name(name)](const std::string& text) {
        if (text.empty()) throw input_error(option + " must not be empty: give a value or leave the option out");
        target = text;
      },
      help);
  if (!target.empty()) added->default_str(target);
  return added;
}

namespace detail {

void require_processes(optimize_options& options, const std::string& reason) {
  if (reason.empty()) return;
  if (session::current().mpi()) {
    throw input_error(reason + ": the job runs only without a launcher, on local worker processes");
  }
  if (options.backend && *options.backend != backend_kind::processes) {
    throw input_error("--backend " + std::string(to_string(*options.backend)) + " cannot run this job: " + reason +
                      "; use --backend processes");
  }
  options.backend = backend_kind::processes;
}

optimize_options planner_cli::options() const {
  optimize_options o;
  o.sample_size = sample_size;
  o.target_chunk_duration = target_chunk_duration;
  if (ordered) o.prefer_ordered = true;
  if (unordered) o.prefer_ordered = false;
  o.buffer_size = buffer_size;
  o.workers_per_node = workers_per_node;
  o.chunksize = chunksize;
  o.memory_fraction = memory_fraction;
  o.min_speedup = min_speedup;
  o.use_spawn_benchmark = !no_spawn_benchmark;
  o.use_chunking_benchmark = !no_chunking_benchmark;
  o.verbose = verbose;
  if (mode != "stream" && mode != "map") throw input_error("--mode " + mode + " is not a mode: use stream or map");
  validate(o);
  return o;
}

void add_planner_options(CLI::App& command, planner_cli& p, bool for_plan) {
  constexpr std::size_t max_count = std::size_t{1} << 31U;
  constexpr double any = std::numeric_limits<double>::max();
  add_number<std::size_t>(command, "--sample-size", p.sample_size, 1, 100000, "Items run first to measure the work");
  add_number(command, "--target-chunk-duration", p.target_chunk_duration, 1e-6, 3600.0, "Seconds one chunk should take");
  auto* ordered = command.add_flag("--ordered", p.ordered, "Records in input order");
  command.add_flag("--unordered", p.unordered, "Records as they complete")->excludes(ordered);
  add_number<std::size_t>(command, "--buffer-size", p.buffer_size, 1, max_count, "Items in flight at most");
  add_number(command, "--workers-per-node", p.workers_per_node, 1, 4096, "Force this many workers per node");
  add_number<std::size_t>(command, "--chunksize", p.chunksize, 1, max_count, "Force this many items per chunk");
  add_number(command, "--memory-fraction", p.memory_fraction, 0.01, 1.0, "Share of available memory results may take");
  add_number(command, "--min-speedup", p.min_speedup, 0.0, any, "Advise serial below this predicted speedup");
  command.add_flag("--no-spawn-benchmark", p.no_spawn_benchmark, "Assume worker start-up cost instead of measuring it");
  command.add_flag("--no-chunking-benchmark", p.no_chunking_benchmark, "Assume chunk round trip instead of measuring it");
  command.add_flag("-v,--verbose", p.verbose, "Print the plan's explanation and the workers used on stderr");
  if (for_plan) {
    add_text(command, "--mode", p.mode, "stream (records handed on as they come) or map (all gathered on the root)");
    command.add_flag("--json", p.json, "Print the plan as JSON");
  }
}

void add_run_options(CLI::App& command, run_cli& r) {
  add_text(command, "-o,--output", r.output, "Write one JSON line per item here (default: stdout)");
  add_text(command, "--report", r.report, "Write a JSON summary of the run here");
  add_text(command, "--backend", r.backend, "processes or threads (without a launcher), or serial (default: the plan's)");
  add_text(command, "--on-error", r.on_error, "keep-going (default) or stop at the first failed item");
  add_text(command, "--trace", r.trace, "Write a Chrome trace (Perfetto, chrome://tracing) of the run here");
  auto* on = command.add_flag_callback("--progress", [&r] { r.progress = true; }, "Show progress on stderr even off a terminal");
  auto* off = command.add_flag_callback("--no-progress", [&r] { r.progress = false; }, "Show no progress")->excludes(on);
  add_number(command, "--progress-interval", r.progress_interval, 0.1, 86400.0,
             "Off a terminal: print a progress line every SECONDS (Slurm logs)")
      ->excludes(off);
  command.add_flag("-q,--quiet", r.quiet, "No summary at the end (errors are still reported)");
  auto* resume = command.add_flag("--resume", r.resume,
                                  "Continue the run whose records are in --output: items with a record are not run again");
  command.add_flag("--overwrite", r.overwrite, "Replace an --output that already holds records")->excludes(resume);
  command.add_flag("--retry-failed", r.retry_failed, "With --resume: run the items of error records again")->needs(resume);
  add_number(command, "--grace", r.grace, 0.0, 86400.0,
             "After SIGINT, SIGTERM, SIGHUP or SIGUSR1: seconds items in flight get to finish (a second signal abandons them)");
  add_number(command, "--retries", r.retries, 0, 1000, "Run a failed item again up to this many times");
  add_number(command, "--timeout", r.timeout, 0.001, 1e9,
             "Stop an item that runs longer than SECONDS (a shell task's processes, a worker process)");
  add_text(command, "--max-failures", r.max_failures, "Stop starting items after N failed ones, or P% of all (e.g. 5%)");
}

}  // namespace detail
}  // namespace amorsize::runner
