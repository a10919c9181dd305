#include "cli.hpp"

namespace amorsize::runner {
namespace {

/// Returns `value` as a count of at least 1, or throws input_error naming `option`.
std::size_t at_least_one(std::int64_t value, const char* option) {
  if (value < 1) throw input_error(std::string(option) + " must be at least 1, got " + std::to_string(value));
  return static_cast<std::size_t>(value);
}

}  // namespace

jobs::synthetic_params synthetic_cli::params() const {
  jobs::synthetic_params p;
  const auto d = jobs::parse_distribution(dist);
  if (!d) {
    throw input_error("--dist " + dist +
                      " is not a distribution: use constant, uniform, lognormal, pareto, increasing or decreasing");
  }
  const auto w = jobs::parse_work_kind(work);
  if (!w) throw input_error("--work " + work + " is not a kind of work: use spin or sleep");
  if (items < 0) throw input_error("--items must be 0 (endless) or a positive count, got " + std::to_string(items));
  if (result_bytes < 0) throw input_error("--result-bytes must be 0 or more, got " + std::to_string(result_bytes));
  p.dist = *d;
  p.work = *w;
  p.mean_ms = mean_ms;
  p.cv = cv;
  p.threads = threads;
  p.result_bytes = static_cast<std::size_t>(result_bytes);
  p.items = static_cast<std::uint64_t>(items);
  p.seed = seed;
  p.fail_every = fail_every;
  p.crash_every = crash_every;
  jobs::validate(p);
  return p;
}

optimize_options planner_cli::options() const {
  optimize_options o;
  o.sample_size = at_least_one(sample_size, "--sample-size");
  o.target_chunk_duration = target_chunk_duration;
  if (ordered) o.prefer_ordered = true;
  if (unordered) o.prefer_ordered = false;
  if (buffer_size) o.buffer_size = at_least_one(*buffer_size, "--buffer-size");
  if (workers_per_node) o.workers_per_node = static_cast<int>(at_least_one(*workers_per_node, "--workers-per-node"));
  if (chunksize) o.chunksize = at_least_one(*chunksize, "--chunksize");
  o.memory_fraction = memory_fraction;
  o.min_speedup = min_speedup;
  o.use_spawn_benchmark = !no_spawn_benchmark;
  o.use_chunking_benchmark = !no_chunking_benchmark;
  o.verbose = verbose;
  if (mode != "stream" && mode != "map") throw input_error("--mode " + mode + " is not a mode: use stream or map");
  validate(o);
  return o;
}

std::optional<backend_kind> run_cli::backend_kind_asked() const {
  if (backend.empty()) return std::nullopt;
  if (backend == "processes") return backend_kind::processes;
  if (backend == "threads") return backend_kind::threads;
  if (backend == "serial") return backend_kind::serial;
  throw input_error("--backend " + backend + " is not a backend: use processes, threads or serial (under mpirun/srun: ranks)");
}

error_policy run_cli::policy() const {
  if (on_error == "keep-going") return error_policy::keep_going;
  if (on_error == "stop") return error_policy::stop;
  throw input_error("--on-error " + on_error + " is not a policy: use keep-going or stop");
}

void add_synthetic_options(CLI::App& cmd, synthetic_cli& s) {
  cmd.add_option("--dist", s.dist, "Item durations: constant, uniform, lognormal, pareto, increasing, decreasing")
      ->capture_default_str();
  cmd.add_option("--mean-ms", s.mean_ms, "Mean item duration in milliseconds")->capture_default_str();
  cmd.add_option("--cv", s.cv, "Coefficient of variation of item durations")->capture_default_str();
  cmd.add_option("--work", s.work, "spin (busy, uses CPU) or sleep (idle, emulates many workers)")->capture_default_str();
  cmd.add_option("--threads", s.threads, "Threads inside each item")->capture_default_str();
  cmd.add_option("--result-bytes", s.result_bytes, "Bytes in each item's result")->capture_default_str();
  cmd.add_option("--items", s.items, "Number of items; 0 or absent = endless")->capture_default_str();
  cmd.add_option("--seed", s.seed, "Seed of the per-item durations")->capture_default_str();
  cmd.add_option("--fail-every", s.fail_every, "Items k*N-1 throw an exception (0: none)")->capture_default_str();
  cmd.add_option("--crash-every", s.crash_every, "Items k*N-1 abort their worker process (0: none)")->capture_default_str();
}

void add_planner_options(CLI::App& cmd, planner_cli& p, bool with_output_flags) {
  cmd.add_option("--sample-size", p.sample_size, "Items run on the root to measure the function")->capture_default_str();
  cmd.add_option("--target-chunk-duration", p.target_chunk_duration, "Seconds one chunk should take")
      ->capture_default_str();
  auto* ordered = cmd.add_flag("--ordered", p.ordered, "Results in input order (imap)");
  cmd.add_flag("--unordered", p.unordered, "Results as they complete (imap_unordered)")->excludes(ordered);
  cmd.add_option("--buffer-size", p.buffer_size, "Results in flight at most");
  cmd.add_option("--workers-per-node", p.workers_per_node, "Force this many workers per node");
  cmd.add_option("--chunksize", p.chunksize, "Force this many items per chunk");
  cmd.add_option("--memory-fraction", p.memory_fraction, "Share of available memory results may take")
      ->capture_default_str();
  cmd.add_option("--min-speedup", p.min_speedup, "Advise serial below this predicted speedup")->capture_default_str();
  cmd.add_flag("--no-spawn-benchmark", p.no_spawn_benchmark, "Assume worker start-up cost instead of measuring it");
  cmd.add_flag("--no-chunking-benchmark", p.no_chunking_benchmark, "Assume chunk round trip instead of measuring it");
  cmd.add_flag("-v,--verbose", p.verbose, "Print the explanation (and the workers used) to stderr");
  if (with_output_flags) {
    cmd.add_option("--mode", p.mode, "stream (results handed on as they come) or map (all gathered on the root)")
        ->capture_default_str();
    cmd.add_flag("--json", p.json, "Print the plan as JSON");
  }
}

void add_run_options(CLI::App& cmd, run_cli& r) {
  cmd.add_option("--output", r.output, "Write one JSON line per item here (default: stdout)");
  cmd.add_option("--report", r.report, "Write a JSON summary of the run here");
  cmd.add_option("--backend", r.backend, "Without a launcher: processes, threads or serial (default: the plan's)");
  cmd.add_option("--on-error", r.on_error, "keep-going (default) or stop at the first failed item")->capture_default_str();
}

}  // namespace amorsize::runner
