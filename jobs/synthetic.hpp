#pragma once
/// The synthetic job: item i costs a deterministic amount of time, the measuring instrument of every benchmark.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace amorsize::jobs {

/// How item durations are spread around their mean.
enum class distribution {
  constant,    ///< Every item takes the mean; cv must be 0.
  uniform,     ///< Uniform on mean*(1 +- sqrt(3)*cv); cv at most 1/sqrt(3).
  lognormal,   ///< Lognormal with the given mean and cv.
  pareto,      ///< Pareto (heavy tail) with the given mean and cv; cv must be > 0.
  increasing,  ///< Linear ramp from short to long over the item range; needs a finite item count.
  decreasing,  ///< Linear ramp from long to short over the item range; needs a finite item count.
};

/// How an item spends its duration.
enum class work_kind {
  spin,   ///< Busy-waits on `threads` threads, so CPU time is about threads x wall time.
  sleep,  ///< Sleeps (on `threads` threads), so it uses almost no CPU.
};

/// Options of the synthetic job; the comments give the command-line option of each.
struct synthetic_params {
  distribution dist = distribution::constant;  ///< --dist: shape of the item durations.
  double mean_ms = 10.0;                       ///< --mean-ms: mean item duration in milliseconds.
  double cv = 0.0;                             ///< --cv: coefficient of variation of item durations.
  work_kind work = work_kind::spin;            ///< --work: spin or sleep.
  int threads = 1;                             ///< --threads: threads busy (spin) or sleeping (sleep) inside one item.
  std::size_t result_bytes = 8;                ///< --result-bytes: size of each item's result.
  std::uint64_t items = 1000;                  ///< --items: number of items; 0 = endless.
  std::uint64_t seed = 42;                     ///< --seed: seed of the per-item durations.
  std::uint64_t fail_every = 0;                ///< --fail-every: items k*N-1 throw after their work (0: none).
  std::uint64_t crash_every = 0;               ///< --crash-every: items k*N-1 abort their process (0: none; local runs only).
};

/// Largest allowed --threads.
inline constexpr int max_threads = 1024;

/// Largest allowed --result-bytes (1 GiB).
inline constexpr std::size_t max_result_bytes = std::size_t{1} << 30U;

/// Throws amorsize::input_error naming the option (as the command line spells it) and its allowed range when `p` is invalid.
void validate(const synthetic_params& p);

/// Returns the deterministic duration in seconds (>= 0) of item `index`; `p` must have passed validate().
double item_seconds(const synthetic_params& p, std::uint64_t index);

/// Spends item `index`'s duration as `p.work` says and returns its `p.result_bytes`-byte result.
std::vector<std::uint8_t> run_item(const synthetic_params& p, std::uint64_t index);

/// Returns true when `result` is exactly what run_item(p, index) returns.
bool check_result(const synthetic_params& p, std::uint64_t index, const std::vector<std::uint8_t>& result);

/// Parses a distribution name ("constant", "uniform", "lognormal", "pareto", "increasing", "decreasing").
std::optional<distribution> parse_distribution(std::string_view name);

/// Returns the name of a distribution as parse_distribution() accepts it.
std::string_view to_string(distribution d);

/// Parses a work kind name ("spin", "sleep").
std::optional<work_kind> parse_work_kind(std::string_view name);

/// Returns the name of a work kind as parse_work_kind() accepts it.
std::string_view to_string(work_kind w);

}  // namespace amorsize::jobs
