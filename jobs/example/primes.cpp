// primes-run: a job of one's own hosted with amorsize's runner. It counts the primes below --limit
// in blocks of --block numbers; each worker sieves the small primes once, in its setup.

#include <amorsize/runner.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace {

/// The primes up to sqrt(limit), made once per worker by the job's setup (thread_local: thread workers each have their own).
thread_local std::vector<std::uint64_t> small_primes;

/// Returns the primes up to `n`, by the sieve of Eratosthenes.
std::vector<std::uint64_t> primes_up_to(std::uint64_t n) {
  std::vector<bool> composite(n + 1, false);
  std::vector<std::uint64_t> primes;
  for (std::uint64_t i = 2; i <= n; ++i) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (std::uint64_t j = i * i; j <= n; j += i) composite[j] = true;
  }
  return primes;
}

/// Counts the primes in [first, last) with the worker's small primes (a segmented sieve).
std::uint64_t count_primes(std::uint64_t first, std::uint64_t last) {
  std::vector<bool> composite(last - first, false);
  for (const std::uint64_t p : small_primes) {
    if (p * p >= last) break;
    for (std::uint64_t j = std::max(p * p, (first + p - 1) / p * p); j < last; j += p) composite[j - first] = true;
  }
  std::uint64_t count = 0;
  for (std::uint64_t n = std::max<std::uint64_t>(first, 2); n < last; ++n) count += composite[n - first] ? 0 : 1;
  return count;
}

/// The job: its options, its items (block numbers), its setup, its function and its records.
struct primes_job {
  using item_type = std::uint64_t;   // a block number
  using result_type = std::uint64_t; // primes in the block
  static constexpr std::string_view name = "primes";
  static constexpr std::string_view summary = "Count the primes below --limit, in blocks of --block numbers";
  static constexpr std::string_view noun = "blocks";

  std::uint64_t limit = 10'000'000;
  std::uint64_t block = 100'000;

  void add_options(CLI::App& command) {
    amorsize::runner::add_number<std::uint64_t>(command, "--limit", limit, 2, 1'000'000'000'000, "Count the primes below this");
    amorsize::runner::add_number<std::uint64_t>(command, "--block", block, 1000, 100'000'000, "Numbers per item");
  }

  void setup() const { small_primes = primes_up_to(static_cast<std::uint64_t>(std::sqrt(static_cast<double>(limit))) + 1); }

  [[nodiscard]] amorsize::source<item_type> items() const {
    const std::uint64_t blocks = (limit + block - 1) / block;
    return amorsize::make_source(
        [next = std::uint64_t{0}, blocks]() mutable -> std::optional<std::uint64_t> {
          if (next == blocks) return std::nullopt;
          return next++;
        },
        blocks);
  }

  [[nodiscard]] auto function() const {
    return [limit = limit, block = block](std::uint64_t b) {
      return count_primes(b * block, std::min(limit, (b + 1) * block));
    };
  }

  [[nodiscard]] amorsize::runner::record_fields record(const result_type& primes) const {
    amorsize::runner::record_fields r;
    r.fields["primes"] = primes;
    return r;
  }
};

}  // namespace

int main(int argc, char** argv) {
  amorsize::runner::job_registry jobs;
  jobs.add<primes_job>();
  return amorsize::runner::run_command_line(jobs, argc, argv, "primes-run");
}
