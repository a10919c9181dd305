// The synthetic job: per-item durations from stateless splitmix64 hashes, spent by spinning or sleeping.

#include "jobs/synthetic.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "amorsize/error.hpp"

namespace amorsize::jobs {

namespace {

constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ULL;

// The splitmix64 output function (Steele, Lea, Flood 2014).
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

// Output number `k` (0-based) of a splitmix64 generator whose state starts at `state`.
constexpr std::uint64_t splitmix64_at(std::uint64_t state, std::uint64_t k) noexcept {
  return mix64(state + (k + 1) * golden);
}

// A uniform deviate in (0, 1) for (seed, index, stream): output `index` of a splitmix64 stream seeded from (seed, stream).
double uniform_deviate(std::uint64_t seed, std::uint64_t index, std::uint64_t stream) noexcept {
  const std::uint64_t stream_state = mix64(seed + stream * 0xd1b54a32d192ed03ULL);
  const std::uint64_t h = splitmix64_at(stream_state, index);
  return (static_cast<double>(h >> 11U) + 0.5) * 0x1p-53;
}

// Largest cv for which the uniform and ramp shapes keep every duration >= 0.
const double max_linear_cv = 1.0 / std::numbers::sqrt3;

std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

[[noreturn]] void fail(const std::string& message) { throw input_error(message); }

bool is_ramp(distribution d) { return d == distribution::increasing || d == distribution::decreasing; }

bool valid_distribution(distribution d) {
  switch (d) {
    case distribution::constant:
    case distribution::uniform:
    case distribution::lognormal:
    case distribution::pareto:
    case distribution::increasing:
    case distribution::decreasing:
      return true;
  }
  return false;
}

// Writes `size` bytes of item `index`'s result from byte `first_byte` on: the little-endian bytes of the
// splitmix64 stream seeded with `index`.
void fill_result(std::uint64_t index, std::uint8_t* out, std::size_t size, std::size_t first_byte) {
  std::size_t pos = 0;
  std::uint64_t word_no = first_byte / 8;
  std::size_t shift_bytes = first_byte % 8;
  while (pos < size) {
    const std::uint64_t word = splitmix64_at(index, word_no);
    for (std::size_t b = shift_bytes; b < 8 && pos < size; ++b) {
      out[pos++] = static_cast<std::uint8_t>(word >> (8U * b));
    }
    shift_bytes = 0;
    ++word_no;
  }
}

// Spends until `deadline` by busy-waiting.
void spin_until(std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
  }
}

}  // namespace

void validate(const synthetic_params& p) {
  if (!valid_distribution(p.dist)) {
    fail("--dist must be one of constant, uniform, lognormal, pareto, increasing, decreasing");
  }
  if (p.work != work_kind::spin && p.work != work_kind::sleep) fail("--work must be spin or sleep");
  if (!std::isfinite(p.mean_ms) || p.mean_ms <= 0.0) {
    fail("--mean-ms must be a finite number > 0; got " + format_number(p.mean_ms));
  }
  if (!std::isfinite(p.cv) || p.cv < 0.0) fail("--cv must be a finite number >= 0; got " + format_number(p.cv));
  if (p.threads < 1 || p.threads > max_threads) {
    fail("--threads must be in 1.." + std::to_string(max_threads) + "; got " + std::to_string(p.threads));
  }
  if (p.result_bytes > max_result_bytes) {
    fail("--result-bytes must be at most " + std::to_string(max_result_bytes) + " (1 GiB); got " +
         std::to_string(p.result_bytes));
  }
  const std::string dist_name(to_string(p.dist));
  if (is_ramp(p.dist) && p.items == 0) fail("--dist " + dist_name + " needs --items > 0 (a finite item range)");
  switch (p.dist) {
    case distribution::constant:
      if (p.cv != 0.0) fail("--cv must be 0 for --dist constant; got " + format_number(p.cv));
      break;
    case distribution::uniform:
    case distribution::increasing:
    case distribution::decreasing:
      if (p.cv > max_linear_cv) {
        fail("--cv must be in 0..0.57735 (1/sqrt(3)) for --dist " + dist_name +
             " so that durations stay >= 0; got " + format_number(p.cv) + " (use --dist lognormal for larger cv)");
      }
      break;
    case distribution::pareto:
      if (p.cv <= 0.0) fail("--cv must be > 0 for --dist pareto; got " + format_number(p.cv));
      break;
    case distribution::lognormal:
      break;
  }
}

double item_seconds(const synthetic_params& p, std::uint64_t index) {
  const double m = p.mean_ms * 1e-3;
  const double c = p.cv;
  double seconds = m;
  switch (p.dist) {
    case distribution::constant:
      break;
    case distribution::uniform: {
      const double u = uniform_deviate(p.seed, index, 0);
      seconds = m * (1.0 + std::numbers::sqrt3 * c * (2.0 * u - 1.0));
      break;
    }
    case distribution::lognormal: {
      if (c == 0.0) break;
      const double sigma2 = std::log1p(c * c);
      const double mu = std::log(m) - sigma2 / 2.0;
      const double u1 = uniform_deviate(p.seed, index, 0);
      const double u2 = uniform_deviate(p.seed, index, 1);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);  // Box-Muller
      seconds = std::exp(mu + std::sqrt(sigma2) * z);
      break;
    }
    case distribution::pareto: {
      if (c <= 0.0) break;
      const double a = 1.0 + std::sqrt(1.0 + 1.0 / (c * c));
      const double scale = m * (a - 1.0) / a;
      const double u = uniform_deviate(p.seed, index, 0);
      seconds = scale / std::pow(u, 1.0 / a);
      break;
    }
    case distribution::increasing:
    case distribution::decreasing: {
      if (p.items <= 1) break;
      double t = static_cast<double>(std::min(index, p.items - 1)) / static_cast<double>(p.items - 1);
      if (p.dist == distribution::decreasing) t = 1.0 - t;
      seconds = m * (1.0 + std::numbers::sqrt3 * c * (2.0 * t - 1.0));
      break;
    }
  }
  if (!(seconds > 0.0)) return 0.0;  // also maps NaN to 0
  return seconds;
}

std::vector<std::uint8_t> run_item(const synthetic_params& p, std::uint64_t index) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  // Cap at about 30 years so that the conversion to clock ticks cannot overflow.
  const double seconds = std::min(item_seconds(p, index), 1e9);
  const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  const bool work = seconds > 0.0;
  const int extra = work ? std::clamp(p.threads, 1, max_threads) - 1 : 0;

  std::vector<std::jthread> helpers;  // joined on destruction, also when an exception leaves this function
  helpers.reserve(static_cast<std::size_t>(extra));
  for (int t = 0; t < extra; ++t) {
    if (p.work == work_kind::spin) {
      helpers.emplace_back([deadline] { spin_until(deadline); });
    } else {
      helpers.emplace_back([deadline] { std::this_thread::sleep_until(deadline); });
    }
  }

  // Filling the result counts toward the item's duration.
  std::vector<std::uint8_t> result(p.result_bytes);
  fill_result(index, result.data(), result.size(), 0);

  if (work) {
    if (p.work == work_kind::spin) {
      spin_until(deadline);
    } else {
      std::this_thread::sleep_until(deadline);
    }
  }
  helpers.clear();  // join
  // Failures come after the work, so a failing item costs what the others cost.
  if (p.crash_every != 0 && index % p.crash_every == p.crash_every - 1) std::abort();
  if (p.fail_every != 0 && index % p.fail_every == p.fail_every - 1) {
    throw std::runtime_error("synthetic failure of item " + std::to_string(index) + " (--fail-every " +
                             std::to_string(p.fail_every) + ")");
  }
  return result;
}

bool check_result(const synthetic_params& p, std::uint64_t index, const std::vector<std::uint8_t>& result) {
  if (result.size() != p.result_bytes) return false;
  std::array<std::uint8_t, 4096> expected{};
  for (std::size_t pos = 0; pos < result.size(); pos += expected.size()) {
    const std::size_t n = std::min(expected.size(), result.size() - pos);
    fill_result(index, expected.data(), n, pos);
    if (!std::equal(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(n),
                    result.begin() + static_cast<std::ptrdiff_t>(pos))) {
      return false;
    }
  }
  return true;
}

std::optional<distribution> parse_distribution(std::string_view name) {
  for (const distribution d : {distribution::constant, distribution::uniform, distribution::lognormal,
                               distribution::pareto, distribution::increasing, distribution::decreasing}) {
    if (name == to_string(d)) return d;
  }
  return std::nullopt;
}

std::string_view to_string(distribution d) {
  switch (d) {
    case distribution::constant:
      return "constant";
    case distribution::uniform:
      return "uniform";
    case distribution::lognormal:
      return "lognormal";
    case distribution::pareto:
      return "pareto";
    case distribution::increasing:
      return "increasing";
    case distribution::decreasing:
      return "decreasing";
  }
  return "unknown";
}

std::optional<work_kind> parse_work_kind(std::string_view name) {
  if (name == "spin") return work_kind::spin;
  if (name == "sleep") return work_kind::sleep;
  return std::nullopt;
}

std::string_view to_string(work_kind w) {
  switch (w) {
    case work_kind::spin:
      return "spin";
    case work_kind::sleep:
      return "sleep";
  }
  return "unknown";
}

}  // namespace amorsize::jobs
