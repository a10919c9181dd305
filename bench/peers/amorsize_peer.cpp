// amorsize's side of the benchmark suite: plans and runs one workload of the shared kernel (spin.c)
// with the auto plan and with fixed chunk sizes, and prints one JSON line per run on the root.
// With --dump it writes the workload's per-item durations, one per line in microseconds, for the
// peers (OpenMP, TBB, Python) to run the same items. See scripts/benchmarks.sh.
#include <amorsize/amorsize.hpp>
#include <amorsize/pool.hpp>

#include "bench/peers/spin.h"
#include "jobs/synthetic.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <numbers>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace jobs = amorsize::jobs;

/// What an item does with its duration.
enum class item_kind {
  tiny,   ///< A few nanoseconds of arithmetic on the index (the near-zero item); no duration.
  spin,   ///< Busy-waits its duration.
  sleep,  ///< Sleeps its duration.
};

/// One workload: the kind of item, the shape of its durations and its result size.
struct workload {
  item_kind kind = item_kind::spin;  ///< --kind tiny|spin|sleep.
  bool bimodal = false;              ///< --dist bimodal: 80% of items take 0.5x the mean, 20% take 3x (CV 1).
  jobs::synthetic_params params;     ///< --dist, --mean-ms, --cv, --items, --result-bytes, --seed.
  std::uint64_t cheap_first = 0;     ///< --cheap-first N: the first N items take no time (what a sample of them sees).
};

/// Returns the duration in microseconds of item `index` of `w` (0 for tiny items).
double item_microseconds(const workload& w, std::uint64_t index) {
  if (w.kind == item_kind::tiny || index < w.cheap_first) return 0.0;
  if (!w.bimodal) return 1e6 * jobs::item_seconds(w.params, index);
  // A uniform deviate in [0, 1) from the synthetic job's uniform shape at its widest spread (0..2 ms).
  jobs::synthetic_params uniform = w.params;
  uniform.dist = jobs::distribution::uniform;
  uniform.mean_ms = 1.0;
  uniform.cv = 1.0 / std::numbers::sqrt3;
  const double u = jobs::item_seconds(uniform, index) / 2e-3;
  return 1e3 * w.params.mean_ms * (u < 0.2 ? 3.0 : 0.5);
}

/// The near-zero item as a function object, so every rank and every call sees the same type.
struct tiny_fn {
  std::uint64_t operator()(std::uint64_t index) const { return amorsize_bench_tiny(index); }
};

/// A timed item: spins or sleeps its duration and returns `result_bytes` bytes.
struct timed_fn {
  workload w;
  std::vector<std::uint8_t> operator()(std::uint64_t index) const {
    const double us = item_microseconds(w, index);
    if (w.kind == item_kind::sleep) amorsize_bench_sleep_us(us);
    else amorsize_bench_spin_us(us);
    return std::vector<std::uint8_t>(w.params.result_bytes, static_cast<std::uint8_t>(index));
  }
};

/// The command line beyond the workload.
struct peer_options {
  workload w;
  std::optional<amorsize::backend_kind> backend;  ///< --backend processes|threads (default: the plan's).
  std::vector<std::size_t> chunks{0};             ///< --chunks auto,1,2,...: 0 stands for the auto plan.
  std::string dump;                               ///< --dump FILE: write the durations and run nothing.
  bool generator = false;  ///< --source generator: items from a sized generator, so sampling sees only the first ones.
};

/// Returns 0..N-1 as item indices.
std::vector<std::uint64_t> indices(std::size_t count) {
  std::vector<std::uint64_t> items(count);
  for (std::size_t i = 0; i < count; ++i) items[i] = i;
  return items;
}

/// Returns 0..N-1 as the source `o` asks for: the vector itself, or a generator of known size.
amorsize::source<std::uint64_t> items_of(const peer_options& o, const std::vector<std::uint64_t>& items) {
  if (!o.generator) return amorsize::make_source(items);
  return amorsize::make_source(
      [count = items.size(), next = std::uint64_t{0}]() mutable -> std::optional<std::uint64_t> {
        if (next == count) return std::nullopt;
        return next++;
      },
      items.size());
}

/// Returns the root's peak resident set so far, in KiB.
long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

/// Returns the plan's chunk schedule in a few characters ("fixed 20", "guided 40..5").
std::string schedule_text(const amorsize::plan& p) {
  if (p.serial) return "serial";
  const amorsize::chunk_schedule& s = p.schedule;
  if (s.kind == amorsize::schedule_kind::guided) {
    return "guided " + std::to_string(s.chunksize) + ".." + std::to_string(s.min_chunksize);
  }
  return "fixed " + std::to_string(s.chunksize);
}

/// Drains a stream and prints one JSON line describing the run (root only).
template <class Stream>
void report(Stream& records, const char* chunk, double plan_seconds, double run_start, const amorsize::plan* p) {
  std::size_t errors = 0;
  while (auto r = records.next()) {
    if (!r->ok()) ++errors;
  }
  const double run_seconds = amorsize::monotonic_seconds() - run_start;
  if (!amorsize::session::current().is_root()) return;
  const amorsize::run_stats s = records.stats();
  std::printf("{\"chunksize\":\"%s\",\"wall\":%.6f,\"run_seconds\":%.6f,\"plan_seconds\":%.6f,\"items\":%zu,"
              "\"errors\":%zu,\"backend\":\"%s\",\"workers\":%d,\"chunks\":%zu,\"root_cpu\":%.6f,\"peak_rss_kib\":%ld",
              chunk, plan_seconds + run_seconds, run_seconds, plan_seconds, s.items, errors,
              std::string(amorsize::to_string(s.backend)).c_str(), std::max(1, s.workers), s.chunks, s.root_cpu_seconds,
              peak_rss_kib());
  if (p != nullptr) {
    std::printf(",\"estimated_speedup\":%.4f,\"plan_workers\":%d,\"schedule\":\"%s\",\"ordered\":%s,\"plan_load\":%.2f",
                p->estimated_speedup, p->n_jobs, schedule_text(*p).c_str(), p->use_ordered ? "true" : "false",
                p->profile.load_average);
    // A serial plan that went parallel: after how many items, and the run's live prediction after the switch.
    const auto went = std::find_if(s.replans.begin(), s.replans.end(),
                                   [](const amorsize::replan& r) { return r.new_workers > r.old_workers; });
    if (went != s.replans.end()) {
      std::printf(",\"went_parallel_after\":%zu,\"live_predicted_seconds\":%.6f", went->items_done,
                  s.predicted_seconds);
    }
  }
  std::printf("}\n");
  std::fflush(stdout);
}

/// Runs every chunk size of `o` on `fn`: the auto plan (optimize_streaming, then its pool), and fixed
/// chunk sizes on the workers of the last auto plan (or one per usable core), in the same order.
template <class Fn>
void run_all(const Fn& fn, const peer_options& o, int usable_cores) {
  const std::vector<std::uint64_t> items = indices(o.w.params.items);
  amorsize::session& session = amorsize::session::current();
  std::vector<int> workers{session.mpi() ? std::max(1, session.size() - 1) : std::max(1, usable_cores)};
  bool ordered = false;
  for (const std::size_t chunk : o.chunks) {
    if (chunk == 0) {
      amorsize::optimize_options options;
      options.backend = o.backend;
      const double start = amorsize::monotonic_seconds();
      const auto planned = amorsize::optimize_streaming(fn, items_of(o, items), options);
      const double plan_seconds = amorsize::monotonic_seconds() - start;
      if (!planned.serial && !planned.workers_per_node.empty()) workers = planned.workers_per_node;
      ordered = planned.use_ordered;
      amorsize::pool workers_pool(planned);
      const double run_start = amorsize::monotonic_seconds();
      auto records = workers_pool.stream(fn, planned);
      report(records, "auto", plan_seconds, run_start, &planned);
    } else {
      amorsize::pool_options po;
      po.backend = o.backend;
      po.workers_per_node = workers;
      po.use_ordered = ordered;
      amorsize::pool workers_pool(po);
      const double run_start = amorsize::monotonic_seconds();
      auto records = workers_pool.stream(fn, items_of(o, items), chunk);
      const std::string label = std::to_string(chunk);
      report(records, label.c_str(), 0.0, run_start, nullptr);
    }
  }
}

/// Prints the usage.
void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: amorsize_bench_peer [WORKLOAD] [--backend processes|threads] [--chunks auto,1,2,...]\n"
               "                           [--source vector|generator]\n"
               "       amorsize_bench_peer [WORKLOAD] --dump FILE\n"
               "WORKLOAD: --kind tiny|spin|sleep --dist constant|uniform|lognormal|pareto|increasing|decreasing|bimodal\n"
               "          --mean-ms MS --cv CV --items N --result-bytes BYTES --seed S --cheap-first N\n");
}

/// Parses argv; throws amorsize::input_error for a bad option or value.
peer_options parse(int argc, char** argv) {
  peer_options o;
  auto number = [](const std::string& name, const std::string& text) {
    std::size_t used = 0;
    double value = 0.0;
    try {
      value = std::stod(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size()) throw amorsize::input_error(name + " needs a number; got '" + text + "'");
    return value;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--help" || name == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) throw amorsize::input_error(name + " needs a value (or is unknown; see --help)");
    const std::string value = argv[++i];
    if (name == "--kind") {
      if (value == "tiny") o.w.kind = item_kind::tiny;
      else if (value == "spin") o.w.kind = item_kind::spin;
      else if (value == "sleep") o.w.kind = item_kind::sleep;
      else throw amorsize::input_error("--kind must be tiny, spin or sleep; got " + value);
    } else if (name == "--dist") {
      o.w.bimodal = value == "bimodal";
      const auto dist = o.w.bimodal ? std::optional(jobs::distribution::constant) : jobs::parse_distribution(value);
      if (!dist) throw amorsize::input_error("--dist: unknown distribution " + value);
      o.w.params.dist = *dist;
    } else if (name == "--mean-ms") {
      o.w.params.mean_ms = number(name, value);
    } else if (name == "--cv") {
      o.w.params.cv = number(name, value);
    } else if (name == "--items") {
      o.w.params.items = static_cast<std::uint64_t>(number(name, value));
    } else if (name == "--result-bytes") {
      o.w.params.result_bytes = static_cast<std::size_t>(number(name, value));
    } else if (name == "--cheap-first") {
      o.w.cheap_first = static_cast<std::uint64_t>(number(name, value));
    } else if (name == "--seed") {
      o.w.params.seed = static_cast<std::uint64_t>(number(name, value));
    } else if (name == "--backend") {
      o.backend = amorsize::parse_backend_kind(value);
    } else if (name == "--chunks") {
      o.chunks.clear();
      std::istringstream list(value);
      for (std::string part; std::getline(list, part, ',');) {
        o.chunks.push_back(part == "auto" ? 0 : static_cast<std::size_t>(number(name, part)));
      }
    } else if (name == "--source") {
      if (value != "vector" && value != "generator") throw amorsize::input_error("--source must be vector or generator; got " + value);
      o.generator = value == "generator";
    } else if (name == "--dump") {
      o.dump = value;
    } else {
      throw amorsize::input_error("unknown option " + name + " (see --help)");
    }
  }
  jobs::validate(o.w.params);
  if (o.w.params.items == 0) throw amorsize::input_error("--items must be > 0");
  return o;
}

/// Writes the durations of every item of `w`, one per line in microseconds.
void dump_durations(const workload& w, const std::string& path) {
  std::ofstream out(path);
  char line[32];
  for (std::uint64_t i = 0; i < w.params.items; ++i) {
    std::snprintf(line, sizeof line, "%.3f\n", item_microseconds(w, i));
    out << line;
  }
  if (!out.flush()) throw amorsize::input_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const peer_options o = parse(argc, argv);
    if (!o.dump.empty()) {
      dump_durations(o.w, o.dump);
      return 0;
    }
    // A first plan probes the machine and measures the overheads once per process, so no run pays for it.
    const std::vector<std::uint64_t> warm_items = indices(50);
    const amorsize::plan warm = amorsize::optimize_streaming(tiny_fn{}, warm_items);
    if (o.w.kind == item_kind::tiny) run_all(tiny_fn{}, o, warm.profile.usable_cores);
    else run_all(timed_fn{o.w}, o, warm.profile.usable_cores);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amorsize_bench_peer: %s\n", e.what());
    return 2;
  }
}
