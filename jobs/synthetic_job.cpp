// `run synthetic`: its options, items and records.

#include "jobs/synthetic_job.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace amorsize::jobs {

void synthetic_job::add_options(CLI::App& command) {
  constexpr auto most = std::numeric_limits<std::uint64_t>::max();
  runner::add_text(command, "--dist", dist, "Item durations: constant, uniform, lognormal, pareto, increasing, decreasing");
  runner::add_number(command, "--mean-ms", mean_ms, 1e-6, 3.6e6, "Mean item duration in milliseconds");
  runner::add_number(command, "--cv", cv, 0.0, 100.0, "Coefficient of variation of item durations");
  runner::add_text(command, "--work", work, "spin (busy, uses CPU) or sleep (idle, emulates many workers)");
  runner::add_number(command, "--threads", threads, 1, max_threads, "Threads inside each item");
  runner::add_number<std::size_t>(command, "--result-bytes", result_bytes, 0, max_result_bytes, "Bytes in each item's result");
  auto* count = runner::add_number<std::uint64_t>(command, "--items", items_count, 1, most, "Number of items");
  command.add_flag("--endless", endless, "Items without end (stop with Ctrl-C); excludes --items")->excludes(count);
  runner::add_number<std::uint64_t>(command, "--seed", seed, 0, most, "Seed of the per-item durations");
  runner::add_number<std::uint64_t>(command, "--fail-every", fail_every, 0, most, "Items k*N-1 throw an exception (0: none)");
  runner::add_number<std::uint64_t>(command, "--crash-every", crash_every, 0, most,
                                    "Items k*N-1 abort their worker process (0: none)");
}

synthetic_params synthetic_job::params() const {
  synthetic_params p;
  const auto d = parse_distribution(dist);
  if (!d) {
    throw input_error("--dist " + dist +
                      " is not a distribution: use constant, uniform, lognormal, pareto, increasing or decreasing");
  }
  const auto w = parse_work_kind(work);
  if (!w) throw input_error("--work " + work + " is not a kind of work: use spin or sleep");
  p.dist = *d;
  p.work = *w;
  p.mean_ms = mean_ms;
  p.cv = cv;
  p.threads = threads;
  p.result_bytes = result_bytes;
  p.items = endless ? 0 : items_count;
  p.seed = seed;
  p.fail_every = fail_every;
  p.crash_every = crash_every;
  validate(p);
  return p;
}

source<synthetic_job::item_type> synthetic_job::items() const {
  const std::uint64_t limit = params().items;
  std::optional<std::size_t> size;
  if (limit > 0) size = static_cast<std::size_t>(limit);
  auto next_item = [next = std::uint64_t{0}, limit]() mutable -> std::optional<std::uint64_t> {
    if (limit != 0 && next >= limit) return std::nullopt;
    return next++;
  };
  if (!size) return make_source(std::move(next_item), size);
  // Item i is the index i: the planner may sample items spread over the whole range.
  return make_source(std::move(next_item), *size, [](std::size_t position) { return std::uint64_t{position}; });
}

std::string synthetic_job::identity() const {
  std::ostringstream text;
  text << "dist " << dist << " work " << work << " mean-ms " << mean_ms << " cv " << cv << " threads " << threads
       << " result-bytes " << result_bytes << " seed " << seed << " fail-every " << fail_every << " crash-every " << crash_every;
  return text.str();
}

runner::record_fields synthetic_job::record(const result_type& result) const {
  runner::record_fields r;
  r.fields["result"] = {{"bytes", result.size()}, {"digest", digest(result)}};
  return r;
}

std::string digest(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * 0x100000001b3ULL;
  }
  for (; i < bytes.size(); ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace amorsize::jobs
