#pragma once
/// `run synthetic`: the synthetic workload (jobs/synthetic.hpp) as a job of amorsize-run.

#include "jobs/synthetic.hpp"

#include <amorsize/runner.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace amorsize::jobs {

/// The synthetic job: item i costs a deterministic time; its result is reported by size and digest.
struct synthetic_job {
  using item_type = std::uint64_t;                 ///< The item's index.
  using result_type = std::vector<std::uint8_t>;   ///< The item's deterministic bytes.
  static constexpr std::string_view name = "synthetic";
  static constexpr std::string_view summary = "A workload of known cost per item: the measuring instrument of the benchmarks";

  std::string dist = "constant";      ///< --dist
  std::string work = "spin";          ///< --work
  double mean_ms = 10.0;              ///< --mean-ms
  double cv = 0.0;                    ///< --cv
  int threads = 1;                    ///< --threads
  std::size_t result_bytes = 8;       ///< --result-bytes
  std::uint64_t items_count = 1000;   ///< --items
  bool endless = false;               ///< --endless
  std::uint64_t seed = 42;            ///< --seed
  std::uint64_t fail_every = 0;       ///< --fail-every
  std::uint64_t crash_every = 0;      ///< --crash-every

  /// Binds the options above to `command`.
  void add_options(CLI::App& command);
  /// Returns the workload's parameters; throws input_error naming an option that is out of range.
  [[nodiscard]] synthetic_params params() const;
  /// Returns the item indices 0 .. items-1, or endless ones.
  [[nodiscard]] source<item_type> items() const;
  /// Returns the function that spends item i's time and returns its bytes.
  [[nodiscard]] auto function() const {
    return [p = params()](item_type index) { return run_item(p, index); };
  }
  /// Returns why the items need worker processes: --crash-every aborts the process running the item.
  [[nodiscard]] std::string needs_processes() const {
    return crash_every > 0 ? "--crash-every aborts the process that runs the item" : std::string();
  }
  /// Returns what besides an item's index decides its result: every option but --items and --endless.
  [[nodiscard]] std::string identity() const;
  /// Returns a result's fields: {"result": {"bytes": N, "digest": "..."}}.
  [[nodiscard]] runner::record_fields record(const result_type& result) const;
};

/// Returns a 64-bit FNV-1a digest of `bytes`, eight bytes at a time, in hex: output stays small and checkable.
std::string digest(const std::vector<std::uint8_t>& bytes);

}  // namespace amorsize::jobs
