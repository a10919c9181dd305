#pragma once
// The runner's command-line options: as typed, checked, then converted to library values.

#include <amorsize/amorsize.hpp>
#include <amorsize/pool.hpp>

#include "jobs/synthetic.hpp"

// GCC 12 reports a false null dereference inside CLI11's inlined string helpers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <cstdint>
#include <optional>
#include <string>

namespace amorsize::runner {

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
  std::uint64_t fail_every = 0;
  std::uint64_t crash_every = 0;

  /// Converts to job parameters; throws input_error naming the option that is out of range.
  [[nodiscard]] jobs::synthetic_params params() const;
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
  [[nodiscard]] optimize_options options() const;
};

/// The run command's own options exactly as typed.
struct run_cli {
  std::string output;             // empty: stdout
  std::string report;             // empty: no report
  std::string backend;            // empty: the plan's
  std::string on_error = "keep-going";

  /// Returns the backend asked for, if any; throws input_error for an unknown name.
  [[nodiscard]] std::optional<backend_kind> backend_kind_asked() const;
  /// Returns the error policy; throws input_error for an unknown name.
  [[nodiscard]] error_policy policy() const;
};

/// Adds the synthetic job's options to a subcommand.
void add_synthetic_options(CLI::App& cmd, synthetic_cli& s);
/// Adds the planner's options to a subcommand; `with_output_flags` adds --json (plan only).
void add_planner_options(CLI::App& cmd, planner_cli& p, bool with_output_flags);
/// Adds the run command's own options.
void add_run_options(CLI::App& cmd, run_cli& r);

}  // namespace amorsize::runner
