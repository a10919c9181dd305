#include "commands.hpp"

#include <amorsize/engine/dispatcher.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>

namespace amorsize::runner {
namespace {

/// The synthetic job as a function and a source of item indices.
struct synthetic_job {
  jobs::synthetic_params params;

  [[nodiscard]] auto function() const {
    return [p = params](std::uint64_t index) { return jobs::run_item(p, index); };
  }
  [[nodiscard]] source<std::uint64_t> items() const {
    std::optional<std::size_t> size;
    if (params.items > 0) size = static_cast<std::size_t>(params.items);
    return make_source(
        [next = std::uint64_t{0}, limit = params.items]() mutable -> std::optional<std::uint64_t> {
          if (limit != 0 && next >= limit) return std::nullopt;
          return next++;
        },
        size);
  }
};

/// A 64-bit digest of a result, eight bytes at a time, so output stays small and checkable.
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

/// Opens `path` for writing, or returns null for stdout; throws input_error when it cannot.
std::unique_ptr<std::ofstream> open_output(const std::string& path, const char* option) {
  if (path.empty()) return nullptr;
  auto file = std::make_unique<std::ofstream>(path);
  if (!*file) throw input_error(std::string(option) + " " + path + " cannot be opened for writing: check the folder exists");
  return file;
}

}  // namespace

int plan_command(const synthetic_cli& job_cli, const planner_cli& planner) {
  const synthetic_job job{job_cli.params()};
  const optimize_options options = planner.options();
  session& s = session::current();
  const plan p = planner.mode == "map" ? plan(optimize(job.function(), job.items(), options))
                                       : plan(optimize_streaming(job.function(), job.items(), options));
  if (s.is_root()) {
    if (planner.json) std::cout << p.to_json().dump(2) << '\n';
    else std::cout << p.explain();
  }
  return 0;
}

int run_command(const synthetic_cli& job_cli, const planner_cli& planner, const run_cli& run) {
  const synthetic_job job{job_cli.params()};
  optimize_options options = planner.options();
  const std::optional<backend_kind> backend = run.backend_kind_asked();
  if (backend && session::current().mpi()) {
    throw input_error("--backend applies without a launcher: under mpirun or srun the ranks are the workers");
  }
  options.backend = backend;
  const error_policy policy = run.policy();
  session& s = session::current();
  // Only the root writes: a file it cannot open ends every rank with its error, never a hang.
  std::unique_ptr<std::ofstream> output_file;
  std::unique_ptr<std::ofstream> report_file;
  std::string failure;
  if (s.is_root()) {
    try {
      output_file = open_output(run.output, "--output");
      report_file = open_output(run.report, "--report");
    } catch (const input_error& e) {
      failure = e.what();
    }
  }
  if (s.mpi()) failure = s.broadcast(failure);
  if (!failure.empty()) throw input_error(failure);
  std::ostream& out = output_file ? *output_file : std::cout;

  const double start = monotonic_seconds();
  auto fn = job.function();
  const auto planned = optimize_streaming(fn, job.items(), options);
  pool_options po = pool(planned).options();
  po.on_error = policy;
  po.verbose = planner.verbose;
  pool workers(po);

  const double root_cpu_start = thread_cpu_seconds();
  auto records = workers.stream(fn, planned);  // in the plan's order
  nlohmann::json line;
  while (auto r = records.next()) {
    line = nlohmann::json::object();
    line["index"] = r->index();
    if (r->ok()) line["result"] = {{"bytes", r->value().size()}, {"digest", digest(r->value())}};
    else line["error"] = r->error();
    out << line.dump() << '\n';
  }
  out.flush();
  const double wall = monotonic_seconds() - start;
  const run_stats stats = records.stats();
  if (!s.is_root()) return 0;

  const double compute = stats.compute_seconds + planned.profile.sampling_seconds;
  nlohmann::json report = {
      {"items", stats.items},
      {"errors", stats.errors},
      {"chunks", stats.chunks},
      {"backend", to_string(stats.backend)},
      {"workers", stats.workers},
      {"lost_workers", stats.lost_workers},
      {"wall_seconds", wall},
      {"compute_seconds", compute},
      {"predicted_speedup", planned.estimated_speedup},
      {"measured_speedup", wall > 0.0 ? compute / wall : 0.0},
      {"root_cpu_seconds", thread_cpu_seconds() - root_cpu_start},
      {"dispatch_cpu_seconds", stats.root_cpu_seconds},
      {"peak_outstanding_items", stats.peak_outstanding},
      {"peak_root_memory_bytes", peak_memory_bytes()},
      {"plan", planned.to_json()},
  };
  if (report_file) *report_file << report.dump(2) << '\n';
  if (planner.verbose) {
    report.erase("plan");
    std::cerr << "amorsize: " << report.dump() << '\n';
  }
  return stats.errors > 0 ? static_cast<int>(exit_code::items_failed) : 0;
}

}  // namespace amorsize::runner
