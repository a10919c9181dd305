#include <amorsize/engine/local_backends.hpp>
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/session.hpp>

#include "text.hpp"

#include <chrono>
#include <cmath>
#include <exception>

namespace amorsize {
namespace {

/// Start-up and round-trip costs assumed when the caller turns the benchmarks off (seen on these machines).
constexpr double assumed_spawn_per_worker = 0.5e-3;
constexpr double assumed_round_trip = 50e-6;
/// Engine costs per item assumed when the chunking benchmark is off or items are long (seen on these machines).
constexpr engine_costs assumed_engine_costs{false, 20e-9, 30e-9, 2e-9, 0.0};
/// Items at least this long make the engine's tens of nanoseconds per item too small to matter (under 0.1%):
/// its costs are assumed, which saves the 15-30 ms their measurement takes.
constexpr double engine_costs_matter_below = 50e-6;

/// The local overheads, measured or assumed as the options say.
local_overheads local_costs(const optimize_options& options, std::vector<plan_warning>& notes) {
  local_overheads costs;
  if (options.use_spawn_benchmark || options.use_chunking_benchmark) costs = measure_local_overheads();
  if (!options.use_spawn_benchmark || !costs.measured) {
    costs.process_spawn_fixed = 0.0;
    costs.process_spawn_per_worker = assumed_spawn_per_worker;
    notes.push_back({warning_kind::spawn_cost_assumed,
                     text::format("Worker start-up assumed, not measured: %s per worker.",
                                  text::seconds(assumed_spawn_per_worker).c_str())});
  }
  if (!options.use_chunking_benchmark || !costs.measured) {
    costs.chunk_round_trip = assumed_round_trip;
    notes.push_back({warning_kind::round_trip_assumed,
                     text::format("Chunk round trip assumed, not measured: %s.",
                                  text::seconds(assumed_round_trip).c_str())});
  }
  return costs;
}

}  // namespace

void validate(const optimize_options& o) {
  if (o.sample_size == 0) {
    throw input_error("sample size must be at least 1: the planner needs to run the function on one item to measure it");
  }
  if (!(o.target_chunk_duration > 0.0) || !std::isfinite(o.target_chunk_duration)) {
    throw input_error("target chunk duration must be a positive number of seconds (default 0.2)");
  }
  if (!(o.memory_fraction > 0.0 && o.memory_fraction <= 1.0)) {
    throw input_error("memory fraction must be in (0, 1] (default 0.5)");
  }
  if (!(o.min_speedup >= 0.0) || !std::isfinite(o.min_speedup)) {
    throw input_error("minimum speedup must be a non-negative number (default 1.2)");
  }
  if (!(o.consumer_seconds_per_item >= 0.0) || !std::isfinite(o.consumer_seconds_per_item)) {
    throw input_error("consumer seconds per item must be a non-negative number of seconds (default 0)");
  }
  if (o.workers_per_node && *o.workers_per_node < 1) {
    throw input_error("workers per node must be at least 1");
  }
  if (o.chunksize && *o.chunksize == 0) throw input_error("chunk size must be at least 1");
  if (o.buffer_size && *o.buffer_size == 0) throw input_error("buffer size must be at least 1");
  if (o.backend == backend_kind::mpi) {
    throw input_error("backend mpi cannot be forced: it is used when the program runs under mpirun or srun");
  }
}

namespace detail {

bool sample_in_child() { return !session::current().mpi() && engine::fork_is_safe(); }

plan plan_collectively(const std::function<std::string()>& name_call, const optimize_options& options, plan_mode mode,
                       std::optional<std::size_t> total_items,
                       const std::function<sample_stats(bool in_child)>& sample_on_root,
                       std::shared_ptr<const model_inputs>* serial_model) {
  session& s = session::current();
  // Before any other message: layout() and links() below are collective on first use.
  if (s.mpi()) engine::agree_on_call(s, name_call());
  // Collective steps first, on every rank: they are cached after the first call.
  const double probe_start = monotonic_seconds();
  probe_node();
  const double probe_seconds = monotonic_seconds() - probe_start;
  const double layout_start = monotonic_seconds();
  const cluster_layout& layout = s.layout();
  const mpi_links links = s.mpi() ? s.links() : mpi_links{};
  const double cluster_seconds = monotonic_seconds() - layout_start;

  nlohmann::json message;
  std::exception_ptr failure;
  plan result;
  if (s.is_root()) {
    try {
      model_inputs in;
      // Forking a process that runs other threads can deadlock the child (a lock held at the fork
      // stays locked): such a program samples in its own process and runs on threads.
      const int threads = process_threads();
      const bool fork_safe = !s.mpi() && engine::fork_is_safe();
      in.work = sample_on_root(fork_safe);
      const double model_start = monotonic_seconds();
      std::vector<plan_warning> notes;
      in.cluster = layout;
      in.links = links;
      const double benchmark_start = monotonic_seconds();
      // Without a launcher the work runs in forked processes: measure what they cost. Under MPI
      // the ranks run already, and forking after MPI_Init is unsafe.
      if (!s.mpi()) in.local = local_costs(options, notes);
      // The engine's own cost per item, measured in this process on a thread (safe under MPI too)
      // when items are short enough for it to count.
      const bool engine_matters = in.work.mean_seconds < engine_costs_matter_below;
      in.engine = options.use_chunking_benchmark && engine_matters ? measure_engine_costs() : assumed_engine_costs;
      const double benchmark_seconds = monotonic_seconds() - benchmark_start + cluster_seconds;
      in.request.mode = mode;
      in.request.total_items = total_items;
      in.request.target_chunk_duration = options.target_chunk_duration;
      in.request.prefer_ordered = options.prefer_ordered;
      in.request.buffer_size = options.buffer_size;
      in.request.workers_per_node = options.workers_per_node;
      in.request.chunksize = options.chunksize;
      if (options.backend != backend_kind::serial) in.request.backend = options.backend;
      if (!s.mpi() && !fork_safe && options.backend != backend_kind::serial) {
        in.request.backend = backend_kind::threads;
        notes.push_back({warning_kind::threads_already_running,
                         text::format("The program already runs %d threads: forking worker processes from it could "
                                      "deadlock them (a lock held at the fork stays locked), so local workers are "
                                      "threads. Plan before starting threads (OpenMP, a thread pool) to get processes.",
                                      threads)});
      }
      in.request.memory_fraction = options.memory_fraction;
      in.request.min_speedup = options.min_speedup;
      in.request.consumer_seconds_per_item = options.consumer_seconds_per_item;
      result = make_plan(in);
      if (options.backend == backend_kind::serial) {  // under a launcher too: the root runs every item
        result.reason = (result.serial ? "Serial, as asked. " : "Serial, as asked. The plan otherwise: ") + result.reason;
        make_serial(result);
      } else if (result.serial && serial_model) {
        *serial_model = std::make_shared<const model_inputs>(in);
      }
      for (const auto& e : in.work.errors) {
        result.warn(warning_kind::item_threw_in_sample,
                    text::format("Item %zu threw while sampled (%s); it will be reported as an error.", e.index,
                                 e.message.c_str()));
      }
      if (in.work.cut_for_memory) {
        result.warn(warning_kind::sample_cut_for_memory,
                    text::format("Sampled %zu items, not %zu: results are %s each, and the sampled ones are kept for "
                                 "the run.",
                                 in.work.count + in.work.failed, options.sample_size,
                                 text::bytes(in.work.result_bytes).c_str()));
      }
      result.warnings.insert(result.warnings.end(), notes.begin(), notes.end());
      result.profile.probe_seconds = probe_seconds;
      result.profile.benchmark_seconds = benchmark_seconds;
      result.profile.planning_seconds = probe_seconds + cluster_seconds + (monotonic_seconds() - model_start);
      message = {{"plan", result.to_json()}};
    } catch (const error& e) {
      failure = std::current_exception();
      message = {{"error", e.what()}, {"code", static_cast<int>(e.code())}};
    } catch (const std::exception& e) {
      failure = std::current_exception();
      message = {{"error", e.what()}, {"code", static_cast<int>(exit_code::internal)}};
    }
  }
  if (s.mpi()) message = nlohmann::json::parse(s.broadcast(s.is_root() ? message.dump() : std::string()));
  // The root rethrows its own exception (a source's original stays nested); the others its copy.
  if (failure) std::rethrow_exception(failure);
  if (message.contains("error")) {
    const auto code = static_cast<exit_code>(message.at("code").get<int>());
    const auto what = message.at("error").get<std::string>();
    switch (code) {
      case exit_code::bad_input: throw input_error(what);
      case exit_code::empty_source: throw empty_source_error(what);
      case exit_code::sample_failed: throw sample_error(what);
      case exit_code::source_failed: throw source_error(what);
      case exit_code::out_of_resources: throw resource_error(what);
      case exit_code::setup_failed: throw setup_error(what);
      case exit_code::interrupted: throw stopped_error(what);
      default: throw error(code, what);
    }
  }
  if (!s.is_root()) result = plan::from_json(message.at("plan"));
  if (options.verbose && s.is_root() && options.log) *options.log << result.explain() << std::flush;
  return result;
}

}  // namespace detail
}  // namespace amorsize
