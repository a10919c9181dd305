// amorsize-run: plans (and later runs) a built-in job; every failure ends with a documented exit code.

#include <amorsize/amorsize.hpp>

#include "jobs/synthetic.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

namespace {

using amorsize::exit_code;

/// The names of the built-in jobs, as the command line spells them.
constexpr const char* known_jobs = "synthetic";

/// True when this process is rank 0 of a launcher or runs alone: only it prints messages.
bool prints_messages() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* value = std::getenv(name)) return std::string(value) == "0";
  }
  return true;
}

/// The synthetic job's options exactly as typed, checked before they are converted.
struct synthetic_cli {
  std::string dist = "constant";
  std::string work = "spin";
  double mean_ms = 10.0;
  double cv = 0.0;
  int threads = 1;
  std::int64_t result_bytes = 8;
  std::int64_t items = 0;
  std::uint64_t seed = 42;

  /// Converts to job parameters; throws input_error naming the option that is out of range.
  [[nodiscard]] amorsize::jobs::synthetic_params params() const {
    namespace jobs = amorsize::jobs;
    jobs::synthetic_params p;
    const auto d = jobs::parse_distribution(dist);
    if (!d) {
      throw amorsize::input_error("--dist " + dist +
                                  " is not a distribution: use constant, uniform, lognormal, pareto, increasing or decreasing");
    }
    const auto w = jobs::parse_work_kind(work);
    if (!w) throw amorsize::input_error("--work " + work + " is not a kind of work: use spin or sleep");
    if (items < 0) {
      throw amorsize::input_error("--items must be 0 (endless) or a positive count, got " + std::to_string(items));
    }
    if (result_bytes < 0) {
      throw amorsize::input_error("--result-bytes must be 0 or more, got " + std::to_string(result_bytes));
    }
    p.dist = *d;
    p.work = *w;
    p.mean_ms = mean_ms;
    p.cv = cv;
    p.threads = threads;
    p.result_bytes = static_cast<std::size_t>(result_bytes);
    p.items = static_cast<std::uint64_t>(items);
    p.seed = seed;
    jobs::validate(p);
    return p;
  }
};

/// The planner's options exactly as typed.
struct planner_cli {
  std::int64_t sample_size = 5;
  double target_chunk_duration = 0.2;
  bool ordered = false;
  bool unordered = false;
  std::optional<std::int64_t> buffer_size;
  std::optional<int> workers_per_node;
  std::optional<std::int64_t> chunksize;
  double memory_fraction = 0.5;
  double min_speedup = 1.2;
  std::string mode = "stream";
  bool no_spawn_benchmark = false;
  bool no_chunking_benchmark = false;
  bool verbose = false;
  bool json = false;

  /// Converts to planner options; throws input_error naming the option that is out of range.
  [[nodiscard]] amorsize::optimize_options options() const {
    amorsize::optimize_options o;
    auto positive = [](std::int64_t value, const char* option) {
      if (value < 1) throw amorsize::input_error(std::string(option) + " must be at least 1, got " + std::to_string(value));
      return static_cast<std::size_t>(value);
    };
    o.sample_size = positive(sample_size, "--sample-size");
    o.target_chunk_duration = target_chunk_duration;
    if (ordered) o.prefer_ordered = true;
    if (unordered) o.prefer_ordered = false;
    if (buffer_size) o.buffer_size = positive(*buffer_size, "--buffer-size");
    if (workers_per_node) o.workers_per_node = static_cast<int>(positive(*workers_per_node, "--workers-per-node"));
    if (chunksize) o.chunksize = positive(*chunksize, "--chunksize");
    o.memory_fraction = memory_fraction;
    o.min_speedup = min_speedup;
    o.use_spawn_benchmark = !no_spawn_benchmark;
    o.use_chunking_benchmark = !no_chunking_benchmark;
    o.verbose = verbose;
    amorsize::validate(o);
    return o;
  }
};

/// Adds the synthetic job's options to a subcommand.
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
}

/// Adds the planner's options to a subcommand.
void add_planner_options(CLI::App& cmd, planner_cli& p) {
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
  cmd.add_option("--mode", p.mode, "stream (results handed on as they come) or map (all gathered on the root)")
      ->capture_default_str();
  cmd.add_flag("--no-spawn-benchmark", p.no_spawn_benchmark, "Assume worker start-up cost instead of measuring it");
  cmd.add_flag("--no-chunking-benchmark", p.no_chunking_benchmark, "Assume chunk round trip instead of measuring it");
  cmd.add_flag("-v,--verbose", p.verbose, "Print the explanation to stderr while planning");
  cmd.add_flag("--json", p.json, "Print the plan as JSON");
}

/// Plans the synthetic job and prints the plan on the root.
int plan_synthetic(const synthetic_cli& job, const planner_cli& planner) {
  const amorsize::jobs::synthetic_params params = job.params();
  const amorsize::optimize_options options = planner.options();
  if (planner.mode != "stream" && planner.mode != "map") {
    throw amorsize::input_error("--mode " + planner.mode + " is not a mode: use stream or map");
  }
  amorsize::session& session = amorsize::session::current();

  auto fn = [params](std::uint64_t index) { return amorsize::jobs::run_item(params, index); };
  std::optional<std::size_t> size;
  if (params.items > 0) size = static_cast<std::size_t>(params.items);
  auto indices = amorsize::make_source(
      [next = std::uint64_t{0}, limit = params.items]() mutable -> std::optional<std::uint64_t> {
        if (limit != 0 && next >= limit) return std::nullopt;
        return next++;
      },
      size);

  const amorsize::plan plan = planner.mode == "map" ? amorsize::plan(amorsize::optimize(fn, indices, options))
                                                    : amorsize::plan(amorsize::optimize_streaming(fn, indices, options));
  if (session.is_root()) {
    if (planner.json) std::cout << plan.to_json().dump(2) << '\n';
    else std::cout << plan.explain();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amorsize-run: measure a workload, plan how to run it in parallel, and run it"};
  app.require_subcommand(1);
  synthetic_cli synthetic;
  planner_cli planner;
  std::string job;
  CLI::App* plan = app.add_subcommand("plan", "Measure a built-in job and print the plan");
  plan->add_option("job", job, std::string("The job to plan: ") + known_jobs)->required();
  add_synthetic_options(*plan, synthetic);
  add_planner_options(*plan, planner);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (prints_messages()) std::cerr << "amorsize-run: " << e.what() << " (see amorsize-run --help)\n";
    return static_cast<int>(exit_code::usage);
  }

  try {
    if (job != "synthetic") {
      throw amorsize::error(exit_code::usage, "unknown job '" + job + "': the built-in jobs are: " + known_jobs);
    }
    return plan_synthetic(synthetic, planner);
  } catch (const amorsize::error& e) {
    if (prints_messages()) std::cerr << "amorsize-run: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    if (prints_messages()) std::cerr << "amorsize-run: internal error: " << e.what() << '\n';
    return static_cast<int>(exit_code::internal);
  }
}
