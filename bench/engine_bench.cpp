// Prints, in one run, how well the engine runs the planner's plans on the synthetic job:
//   1. efficiency of the auto plan on 10 ms spin items with all cores working (target >= 0.95);
//   2. throughput of the auto plan against chunk size 1 and the best fixed chunk size of a sweep (target >= 0.95);
//   3. the plan's predicted speedup against the measured one on several workloads (target: error within 15%).
// Nothing passes or fails: each table shows the target and the measured value side by side.
// Runs without a launcher (local worker processes) and under mpirun (every rank makes the same calls; the root prints).
#include <amorsize/amorsize.hpp>
#include <amorsize/pool.hpp>

#include "jobs/synthetic.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace jobs = amorsize::jobs;

/// Seconds on the monotonic clock.
/// The synthetic job as a named function object, so every rank and every call sees the same type.
struct synthetic_fn {
  jobs::synthetic_params params;
  std::vector<std::uint8_t> operator()(std::uint64_t index) const { return jobs::run_item(params, index); }
};

/// The command line.
struct bench_options {
  std::size_t items = 0;  ///< 10 ms items of section 1; other workloads scale with it (0: 1000, or 200 with --quick).
  bool quick = false;     ///< Smaller counts and one repetition, so the whole run takes under a minute.
  int section = 0;        ///< Run only this section (0: all).
  int reps = 0;           ///< Repetitions per measurement (0: 3, or 1 with --quick).
};

/// What one run of a pool did, seen from the root.
struct run_result {
  double plan_seconds = 0.0;      ///< Wall time of optimize_streaming (0 for fixed runs).
  double run_seconds = 0.0;       ///< Wall time of the pool call, from its start to the last record.
  double compute_seconds = 0.0;   ///< Item time the pool measured (sampled items excluded).
  double sampling_seconds = 0.0;  ///< Item time of the sampled items (0 for fixed runs).
  std::size_t items = 0;          ///< Records handed over, sampled ones included.
  std::size_t errors = 0;         ///< Records that are errors.
  std::size_t chunks = 0;         ///< Chunks sent.
  int workers = 0;                ///< Workers that ran chunks.
  amorsize::backend_kind backend = amorsize::backend_kind::serial; ///< Where the run went.
  amorsize::plan plan;            ///< The plan (auto runs only).

  /// Item time over the whole thing.
  [[nodiscard]] double work() const { return compute_seconds + sampling_seconds; }
  /// Wall time over the whole thing, planning included.
  [[nodiscard]] double wall() const { return plan_seconds + run_seconds; }
};

/// Returns the median of `values` (0 when empty).
double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

/// Returns 0..N-1 as item indices.
std::vector<std::uint64_t> indices(std::size_t count) {
  std::vector<std::uint64_t> items(count);
  for (std::size_t i = 0; i < count; ++i) items[i] = i;
  return items;
}

/// Returns the nominal item time of a workload: the sum of its deterministic item durations.
double nominal_seconds(const jobs::synthetic_params& p) {
  double total = 0.0;
  for (std::uint64_t i = 0; i < p.items; ++i) total += jobs::item_seconds(p, i);
  return total;
}

/// Returns the synthetic parameters of a workload.
jobs::synthetic_params workload(jobs::distribution dist, double mean_ms, double cv, jobs::work_kind work,
                                std::size_t items) {
  jobs::synthetic_params p;
  p.dist = dist;
  p.mean_ms = mean_ms;
  p.cv = cv;
  p.work = work;
  p.items = items;
  jobs::validate(p);
  return p;
}

/// Pulls every record of a stream and fills the counters of `out`.
template <class Stream>
void drain(Stream& records, run_result& out) {
  while (auto r = records.next()) {
    if (!r->ok()) ++out.errors;
  }
  const amorsize::run_stats stats = records.stats();
  out.items = stats.items;
  out.compute_seconds = stats.compute_seconds;
  out.chunks = stats.chunks;
  out.workers = stats.workers;
  out.backend = stats.backend;
}

/// Plans with optimize_streaming and runs the plan, as amorsize-run does; `forced_workers` > 0 forces workers per node.
run_result run_auto(const jobs::synthetic_params& params, int forced_workers = 0) {
  const synthetic_fn fn{params};
  const std::vector<std::uint64_t> items = indices(params.items);
  amorsize::optimize_options options;
  if (forced_workers > 0) options.workers_per_node = forced_workers;
  run_result out;
  const double start = amorsize::monotonic_seconds();
  const auto planned = amorsize::optimize_streaming(fn, items, options);
  out.plan_seconds = amorsize::monotonic_seconds() - start;
  amorsize::pool_options po = amorsize::pool(planned).options();
  if (forced_workers > 0) po.workers_per_node = {forced_workers};
  amorsize::pool workers(po);
  const double run_start = amorsize::monotonic_seconds();
  auto records = workers.stream(fn, planned);  // in the plan's order
  drain(records, out);
  out.run_seconds = amorsize::monotonic_seconds() - run_start;
  out.sampling_seconds = planned.profile.sampling_seconds;
  out.plan = planned;
  return out;
}

/// Runs every item with fixed chunks of `chunksize` on `workers_per_node` workers, without planning.
run_result run_fixed(const jobs::synthetic_params& params, const std::vector<int>& workers_per_node,
                     std::size_t chunksize, bool ordered) {
  const synthetic_fn fn{params};
  const std::vector<std::uint64_t> items = indices(params.items);
  amorsize::pool_options po;
  po.workers_per_node = workers_per_node;
  po.use_ordered = ordered;
  amorsize::pool workers(po);
  run_result out;
  const double start = amorsize::monotonic_seconds();
  auto records = ordered ? workers.imap(fn, items, chunksize) : workers.imap_unordered(fn, items, chunksize);
  drain(records, out);
  out.run_seconds = amorsize::monotonic_seconds() - start;
  return out;
}

/// Returns "fixed 20" or "guided 40..5": the plan's chunk schedule in a few characters.
std::string schedule_text(const amorsize::plan& p) {
  const amorsize::chunk_schedule& s = p.schedule;
  if (s.kind == amorsize::schedule_kind::guided) {
    return "guided " + std::to_string(s.chunksize) + ".." + std::to_string(s.min_chunksize);
  }
  return "fixed " + std::to_string(s.chunksize);
}

/// Returns the first line of /proc/loadavg, or "unknown".
std::string load_average() {
  std::ifstream file("/proc/loadavg");
  std::string line;
  if (!std::getline(file, line)) return "unknown";
  return line;
}

/// Prints (on the root) and runs section 1.
void efficiency_section(const bench_options& o, bool root) {
  const auto params = workload(jobs::distribution::constant, 10.0, 0.0, jobs::work_kind::spin, o.items);
  if (root) {
    std::printf("\n== 1. Efficiency: %zu spin items of 10 ms (constant), auto plan, %d rep(s) ==\n", o.items, o.reps);
    std::printf("  eff = item time / (wall x workers); e2e counts planning (sampling included) in wall and work;\n"
                "  eff_nom uses the nominal item time (%.3f s) instead of the measured one, which preemption inflates\n",
                nominal_seconds(params));
    std::printf("  %-4s %-9s %7s %8s %-12s %7s %7s %7s %8s %8s %8s %6s\n", "rep", "backend", "workers", "cpu/wall",
                "schedule", "plan_s", "run_s", "work_s", "eff_run", "eff_e2e", "eff_nom", "errors");
  }
  const double nominal = nominal_seconds(params);
  std::vector<double> run_eff;
  std::vector<double> e2e_eff;
  std::vector<double> nom_eff;
  for (int rep = 0; rep < o.reps; ++rep) {
    const run_result r = run_auto(params);
    if (!root) continue;
    const double w = std::max(1, r.workers);
    const double eff_run = r.run_seconds > 0.0 ? r.compute_seconds / (r.run_seconds * w) : 0.0;
    const double eff_e2e = r.wall() > 0.0 ? r.work() / (r.wall() * w) : 0.0;
    const double eff_nom = r.wall() > 0.0 ? nominal / (r.wall() * w) : 0.0;
    run_eff.push_back(eff_run);
    e2e_eff.push_back(eff_e2e);
    nom_eff.push_back(eff_nom);
    std::printf("  %-4d %-9s %7d %8.2f %-12s %7.3f %7.3f %7.3f %8.3f %8.3f %8.3f %6zu\n", rep + 1,
                std::string(amorsize::to_string(r.backend)).c_str(), r.workers, r.plan.profile.cpu_per_wall,
                schedule_text(r.plan).c_str(), r.plan_seconds, r.run_seconds, r.work(), eff_run, eff_e2e, eff_nom,
                r.errors);
  }
  if (root) {
    std::printf("  efficiency (median): run %.3f, end-to-end %.3f, end-to-end nominal %.3f   target >= 0.95\n",
                median(run_eff), median(e2e_eff), median(nom_eff));
  }
}

/// Runs the sweep of section 2 on one workload and prints its table (on the root).
void throughput_workload(const char* name, const jobs::synthetic_params& params, int reps, bool root) {
  const std::vector<std::size_t> sweep{1, 2, 4, 8, 16, 32, 64, 128};
  std::vector<double> auto_e2e;
  std::vector<double> auto_run;
  std::vector<std::vector<double>> fixed(sweep.size());
  std::vector<std::size_t> fixed_errors(sweep.size(), 0);
  run_result first_auto;
  // Repetitions go round the whole sweep, so a change in machine load touches every configuration alike.
  for (int rep = 0; rep < reps; ++rep) {
    const run_result a = run_auto(params);
    if (rep == 0) first_auto = a;
    const double n = static_cast<double>(params.items);
    if (a.wall() > 0.0) auto_e2e.push_back(n / a.wall());
    const double run_items = static_cast<double>(a.items) - static_cast<double>(a.plan.profile.sample_size);
    if (a.run_seconds > 0.0) auto_run.push_back(std::max(0.0, run_items) / a.run_seconds);
    // The fixed runs use the auto plan's workers and order, so only the chunk size differs.
    std::vector<int> workers = a.plan.workers_per_node;
    if (a.plan.serial || workers.empty()) workers = {std::max(1, a.plan.profile.usable_cores)};
    for (std::size_t c = 0; c < sweep.size(); ++c) {
      const run_result f = run_fixed(params, workers, sweep[c], a.plan.use_ordered);
      if (f.run_seconds > 0.0) fixed[c].push_back(n / f.run_seconds);
      fixed_errors[c] += f.errors;
    }
  }
  if (!root) return;
  const amorsize::plan& p = first_auto.plan;
  std::printf("\n  -- %s: %zu items; auto plan: %s, %d worker(s), %s, %s --\n", name,
              static_cast<std::size_t>(params.items), std::string(amorsize::to_string(p.backend)).c_str(), p.n_jobs,
              schedule_text(p).c_str(), p.use_ordered ? "ordered" : "unordered");
  std::printf("  %-22s %12s %10s %6s\n", "configuration", "items/s", "vs best", "errors");
  std::size_t best = 0;
  for (std::size_t c = 0; c < sweep.size(); ++c) {
    if (median(fixed[c]) > median(fixed[best])) best = c;
  }
  const double best_rate = median(fixed[best]);
  auto ratio = [best_rate](double rate) { return best_rate > 0.0 ? rate / best_rate : 0.0; };
  std::printf("  %-22s %12.1f %10.3f %6zu\n", "auto (incl. planning)", median(auto_e2e), ratio(median(auto_e2e)),
              first_auto.errors);
  std::printf("  %-22s %12.1f %10.3f %6s\n", "auto (run only)", median(auto_run), ratio(median(auto_run)), "");
  for (std::size_t c = 0; c < sweep.size(); ++c) {
    const std::string label = "fixed " + std::to_string(sweep[c]) + (c == best ? " (best)" : "");
    std::printf("  %-22s %12.1f %10.3f %6zu\n", label.c_str(), median(fixed[c]), ratio(median(fixed[c])),
                fixed_errors[c]);
  }
  const double chunk1 = median(fixed[0]);
  std::printf("  auto / best fixed = %.3f (target >= 0.95); auto / chunk 1 = %.2f\n", ratio(median(auto_e2e)),
              chunk1 > 0.0 ? median(auto_e2e) / chunk1 : 0.0);
}

/// Prints (on the root) and runs section 2.
void throughput_section(const bench_options& o, bool root) {
  if (root) {
    std::printf("\n== 2. Throughput: auto plan vs fixed chunk sizes (median of %d rep(s); the 10 ms sweep runs once) ==\n",
                o.reps);
  }
  throughput_workload("0.2 ms spin items",
                      workload(jobs::distribution::constant, 0.2, 0.0, jobs::work_kind::spin, 20 * o.items), o.reps, root);
  throughput_workload("10 ms spin items", workload(jobs::distribution::constant, 10.0, 0.0, jobs::work_kind::spin, o.items),
                      1, root);
}

/// One workload of section 3.
struct prediction_case {
  const char* name;
  jobs::synthetic_params params;
  int forced_workers;
};

/// Prints (on the root) and runs section 3.
void prediction_section(const bench_options& o, bool root) {
  const std::size_t n = o.items;
  const std::vector<prediction_case> cases{
      {"10 ms constant spin", workload(jobs::distribution::constant, 10.0, 0.0, jobs::work_kind::spin, n), 0},
      {"2 ms uniform cv 0.3", workload(jobs::distribution::uniform, 2.0, 0.3, jobs::work_kind::spin, 5 * n / 2), 0},
      {"5 ms lognormal cv 1.0", workload(jobs::distribution::lognormal, 5.0, 1.0, jobs::work_kind::spin, n), 0},
      {"0.05 ms constant spin", workload(jobs::distribution::constant, 0.05, 0.0, jobs::work_kind::spin, 20 * n), 0},
      {"10 ms sleep, 8 workers", workload(jobs::distribution::constant, 10.0, 0.0, jobs::work_kind::sleep, 4 * n / 5), 8},
  };
  if (root) {
    std::printf("\n== 3. Predicted vs measured speedup (median of %d rep(s)) ==\n", o.reps);
    std::printf("  meas = measured item time / wall of optimize_streaming + run; error = |pred - meas| / meas;\n"
                "  nom = nominal item time / the same wall (preemption inflates measured item time on a loaded machine);\n"
                "  each row is the repetition with the median error; the last column lists every repetition's workers:pred/meas\n");
    std::printf("  %-23s %6s %-9s %3s %8s %-13s %6s %6s %6s %6s %6s %6s %6s  %s\n", "workload", "items", "backend", "wk",
                "cpu/wall", "schedule", "plan_s", "run_s", "pred", "meas", "error", "nom", "target", "all reps");
  }
  for (const prediction_case& c : cases) {
    const double nominal_work = nominal_seconds(c.params);
    std::vector<run_result> runs;
    for (int rep = 0; rep < o.reps; ++rep) runs.push_back(run_auto(c.params, c.forced_workers));
    if (!root) continue;
    auto measured = [](const run_result& r) { return r.wall() > 0.0 ? r.work() / r.wall() : 0.0; };
    auto error = [&measured](const run_result& r) {
      const double meas = measured(r);
      return meas > 0.0 ? std::abs(r.plan.estimated_speedup - meas) / meas : 0.0;
    };
    std::vector<std::size_t> order(runs.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return error(runs[a]) < error(runs[b]); });
    const run_result& r = runs[order[order.size() / 2]];
    std::string all;
    for (const run_result& each : runs) {
      char text[48];
      std::snprintf(text, sizeof text, "%s%d:%.2f/%.2f", all.empty() ? "" : " ", each.workers,
                    each.plan.estimated_speedup, measured(each));
      all += text;
    }
    std::printf("  %-23s %6zu %-9s %3d %8.2f %-13s %6.3f %6.3f %6.2f %6.2f %5.1f%% %6.2f %6s  %s%s\n", c.name,
                static_cast<std::size_t>(c.params.items), std::string(amorsize::to_string(r.backend)).c_str(), r.workers,
                r.plan.profile.cpu_per_wall, r.plan.serial ? "serial" : schedule_text(r.plan).c_str(), r.plan_seconds,
                r.run_seconds, r.plan.estimated_speedup, measured(r), 100.0 * error(r),
                r.wall() > 0.0 ? nominal_work / r.wall() : 0.0, "<=15%", all.c_str(), r.errors > 0 ? " (errors!)" : "");
  }
}

/// Prints the usage on the root.
void usage(bool root) {
  if (!root) return;
  std::printf("usage: amorsize_bench_engine [--items N] [--quick] [--section 1|2|3] [--reps N]\n"
              "  --items N    10 ms items of section 1 (default 1000, 200 with --quick); other workloads scale with N\n"
              "  --quick      smaller counts and one repetition: the whole run takes under a minute\n"
              "  --section N  run only section N\n"
              "  --reps N     repetitions per measurement (default 3, 1 with --quick)\n");
}

/// Parses argv; returns nullopt (after printing why on the root) when it is wrong or asks for help.
std::optional<bench_options> parse(int argc, char** argv, bool root, int& status) {
  bench_options o;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  auto number = [&args](std::size_t& i) -> std::optional<long> {
    if (i + 1 >= args.size()) return std::nullopt;
    try {
      std::size_t used = 0;
      const std::string text(args[++i]);
      const long value = std::stol(text, &used);
      if (used != text.size()) return std::nullopt;
      return value;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--items" || a == "--section" || a == "--reps") {
      const std::optional<long> v = number(i);
      const long low = a == "--items" ? 10 : 1;
      const long high = a == "--section" ? 3 : 10'000'000;
      if (!v || *v < low || *v > high) {
        if (root) std::fprintf(stderr, "%.*s must be a number in %ld..%ld\n", static_cast<int>(a.size()), a.data(), low, high);
        status = 2;
        return std::nullopt;
      }
      if (a == "--items") o.items = static_cast<std::size_t>(*v);
      else if (a == "--section") o.section = static_cast<int>(*v);
      else o.reps = static_cast<int>(*v);
    } else {
      status = a == "--help" || a == "-h" ? 0 : 2;
      if (status != 0 && root) std::fprintf(stderr, "unknown option %.*s\n", static_cast<int>(a.size()), a.data());
      usage(root);
      return std::nullopt;
    }
  }
  if (o.items == 0) o.items = o.quick ? 200 : 1000;
  if (o.reps == 0) o.reps = o.quick ? 1 : 3;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  amorsize::session& session = amorsize::session::current();
  const bool root = session.is_root();
  int status = 0;
  const std::optional<bench_options> parsed = parse(argc, argv, root, status);
  if (!parsed) return status;
  const bench_options& o = *parsed;

  // A first plan probes the machine and measures the overheads once per process, so no section pays for it.
  const double warm_start = amorsize::monotonic_seconds();
  const auto warm_params = workload(jobs::distribution::constant, 0.1, 0.0, jobs::work_kind::spin, 100);
  const std::vector<std::uint64_t> warm_items = indices(100);
  const amorsize::plan warm = amorsize::optimize_streaming(synthetic_fn{warm_params}, warm_items);
  const double warm_seconds = amorsize::monotonic_seconds() - warm_start;
  if (root) {
    const amorsize::plan_profile& pr = warm.profile;
    std::printf("amorsize engine benchmark (%s run, %zu items of 10 ms as the base count)\n", o.quick ? "quick" : "full",
                o.items);
    std::printf("machine: %d physical / %d logical / %d usable cores, %d rank(s)%s, default backend %s; "
                "first plan took %.1f ms (probe and overhead benchmarks, not charged to any section)\n",
                pr.physical_cores, pr.logical_cores, pr.usable_cores, session.size(),
                session.mpi() ? " under an MPI launcher" : " without a launcher",
                session.mpi() ? "mpi" : "processes", 1e3 * warm_seconds);
    std::printf("load average at start: %s (other work on the machine skews every figure)\n", load_average().c_str());
    std::fflush(stdout);
  }
  const double start = amorsize::monotonic_seconds();
  if (o.section == 0 || o.section == 1) efficiency_section(o, root);
  if (root) std::fflush(stdout);
  if (o.section == 0 || o.section == 2) throughput_section(o, root);
  if (root) std::fflush(stdout);
  if (o.section == 0 || o.section == 3) prediction_section(o, root);
  if (root) {
    std::printf("\ntotal %.1f s; load average at end: %s\n", amorsize::monotonic_seconds() - start, load_average().c_str());
  }
  return 0;
}
