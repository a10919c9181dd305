#pragma once
/// The plan: how to run a workload in parallel, why, and every number behind the decision.

#include <amorsize/schedule.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amorsize {

/// How the caller will consume results.
enum class plan_mode {
  gather_all,  ///< All results gathered on the root (the seed's `optimize` + `Pool.map`).
  streaming,   ///< Results handed over as they come (`optimize_streaming` + `imap`/`imap_unordered`).
};

/// Where the work runs.
enum class backend_kind {
  serial,     ///< In the calling thread: parallelism would not pay.
  processes,  ///< A local pool of forked worker processes (no launcher).
  threads,    ///< A local pool of threads (no launcher): no fork, no copies of results between processes.
  mpi,        ///< Worker ranks under mpirun/srun.
};

/// Every warning a plan can carry, so tools and tests can tell them apart without reading the sentence.
enum class warning_kind {
  nested_parallelism,          ///< The function runs threads of its own: fewer workers per node.
  waits_on_io,                 ///< The function mostly waits (I/O, sleep): more workers than cores.
  workers_cut_for_memory,      ///< Each call's memory growth cut the workers per node.
  fewer_ranks_than_asked,      ///< A node has fewer worker ranks than the workers asked for.
  threads_not_crash_isolated,  ///< The plan chose threads: the function must be thread-safe, a crash ends the run.
  window_cut_for_memory,       ///< Result sizes cut the streaming window.
  window_below_in_flight,      ///< The window is smaller than the items workers hold: they will wait for the consumer.
  endless_source_gathered,     ///< Gathering all results of an endless source would never finish.
  results_exceed_memory,       ///< All results gathered would not fit in the root's memory budget.
  no_worker_rank,              ///< Under MPI no rank is left to work: run with more ranks.
  insufficient_speedup,        ///< Parallelism would not pay: the plan is serial.
  serial_as_fast,              ///< A forced parallel plan is predicted no faster than serial.
  busy_machine,                ///< Other work loads the root's node: the run may be slower than predicted.
  root_bottleneck,             ///< The root is busy dispatching nearly all the time.
  item_threw_in_sample,        ///< A sampled item threw; it will be reported as an error.
  sample_cut_for_memory,       ///< Fewer items were sampled than asked, to keep their results in memory.
  threads_already_running,     ///< The program already runs threads, so local workers are threads, not forked processes.
  spawn_cost_assumed,          ///< Worker start-up was assumed, not measured.
  round_trip_assumed,          ///< The chunk round trip was assumed, not measured.
  unreliable_sample,           ///< The sample may misjudge the work (few items, a trend, a huge spread): planned parallel for seconds of work (last: the name table checks up to it).
};

/// One warning: its kind for tools and tests, its sentence for people.
struct plan_warning {
  warning_kind kind{};   ///< What the warning is about.
  std::string message;   ///< What the user should know or do, in a sentence or two.

  /// Compares kind and message.
  bool operator==(const plan_warning&) const = default;
};

/// Returns "gather_all" or "streaming".
std::string_view to_string(plan_mode mode);
/// Returns "serial", "processes", "threads" or "mpi".
std::string_view to_string(backend_kind kind);
/// Returns the warning kind's name as written in the enum ("nested_parallelism", ...).
std::string_view to_string(warning_kind kind);

/// Returns the plan mode named `name`; throws input_error naming it when there is none.
plan_mode parse_plan_mode(std::string_view name);
/// Returns the backend named `name`; throws input_error naming it when there is none.
backend_kind parse_backend_kind(std::string_view name);
/// Returns the warning kind named `name`; throws input_error naming it when there is none.
warning_kind parse_warning_kind(std::string_view name);

/// Every measurement and model figure behind a plan (the seed's `profile`).
struct plan_profile {
  // The workload, from the sample.
  std::size_t sample_size = 0;              ///< Items sampled successfully.
  std::size_t spread_sample_size = 0;       ///< Of them and beside them, items sampled at spread positions of a random-access source (0: none).
  std::optional<std::size_t> total_items;   ///< Items in the source (nullopt: unknown or endless).
  double avg_execution_time = 0.0;          ///< Mean seconds per item.
  double cv = 0.0;                          ///< Coefficient of variation of item times.
  double min_execution_time = 0.0;          ///< Fastest sampled item, seconds.
  double max_execution_time = 0.0;          ///< Slowest sampled item, seconds.
  double cpu_per_wall = 1.0;                ///< CPU time / wall time of the sampled calls.
  int threads_inside = 1;                   ///< Threads the function runs on.
  double input_bytes = 0.0;                 ///< Serialized bytes per item.
  double result_bytes = 0.0;                ///< Serialized bytes per result.
  double serialize_seconds = 0.0;           ///< Serialization round trip of one item and its result.
  std::uint64_t memory_per_call = 0;        ///< Peak memory growth of one call, bytes.
  // The machine.
  int nodes = 1;                            ///< Nodes in the run.
  int world_size = 1;                       ///< Ranks in the run (1 without a launcher).
  int physical_cores = 1;                   ///< Physical cores of the root's node.
  int logical_cores = 1;                    ///< Hardware threads of the root's node.
  int usable_cores = 1;                     ///< Cores worth planning on at the root's node (quota, affinity, Slurm).
  double cpu_quota = 0.0;                   ///< cgroup CPU quota of the root's node (0: none).
  double load_average = 0.0;                ///< 1-minute load average of the root's node when probed.
  std::uint64_t available_memory = 0;       ///< Bytes available on the root's node.
  // The overheads.
  double spawn_cost = 0.0;                  ///< Fixed seconds to start the worker pool.
  double spawn_cost_per_worker = 0.0;       ///< Extra seconds per worker started.
  double thread_spawn_cost = 0.0;           ///< Seconds to start and join a thread.
  double chunk_overhead = 0.0;              ///< Round-trip seconds to dispatch a chunk and receive its answer.
  double engine_serial_per_item = 0.0;      ///< Seconds the engine adds per item to a serial run (its record).
  double engine_root_per_item = 0.0;        ///< Root seconds the engine spends per item of a parallel run.
  double engine_worker_per_item = 0.0;      ///< Worker seconds the engine adds per item beyond the function.
  bool engine_measured = false;             ///< False when the engine's costs were assumed, not measured.
  double consumer_per_item = 0.0;           ///< Root seconds the caller said it spends on each result (optimize_options::consumer_seconds_per_item).
  double latency_same_node = 0.0;           ///< One-way MPI latency root to a rank on its node (0: not measured).
  double bandwidth_same_node = 0.0;         ///< MPI bandwidth root to a rank on its node, bytes/s.
  double latency_other_node = 0.0;          ///< One-way MPI latency root to a rank on another node.
  double bandwidth_other_node = 0.0;        ///< MPI bandwidth root to a rank on another node, bytes/s.
  // The model.
  double serial_seconds = 0.0;              ///< Predicted serial run time (0 for endless sources).
  double work_seconds = 0.0;                ///< Predicted time of the calls alone, one after another (0 for endless sources).
  double parallel_seconds = 0.0;            ///< Predicted parallel run time (0 for endless sources).
  double parallel_speedup = 1.0;            ///< Predicted speedup of the parallel alternative, also when the plan rejected it for serial.
  double root_load = 0.0;                   ///< Fraction of a core the root spends dispatching and gathering.
  double overhead_fraction = 0.0;           ///< Share of the parallel run spent on overheads, not items.
  // Timing of the planning itself.
  double sampling_seconds = 0.0;            ///< Time spent in the sampled calls.
  double probe_seconds = 0.0;               ///< Time spent probing the machine (0 when cached).
  double benchmark_seconds = 0.0;           ///< Time spent measuring overheads (0 when cached).
  double planning_seconds = 0.0;            ///< Planning time beyond the sampled calls: probe, benchmarks, model.
};

/// The answer to "how should I run this in parallel?".
struct plan {
  plan_mode mode = plan_mode::gather_all;   ///< How results will be consumed.
  backend_kind backend = backend_kind::serial; ///< Where the work runs.
  bool serial = true;                       ///< True when parallelism would not pay.
  int n_jobs = 1;                           ///< Workers in all (1 when serial).
  std::vector<int> workers_per_node;        ///< Workers on each node, root's node first.
  std::size_t chunksize = 1;                ///< Items per chunk (the largest chunk for a guided schedule).
  chunk_schedule schedule;                  ///< How chunk sizes evolve.
  bool use_ordered = true;                  ///< Results in input order (imap) or as completed (imap_unordered).
  std::size_t buffer_size = 0;              ///< Items in flight at most (dispatched but not yet handed over).
  double estimated_speedup = 1.0;           ///< Predicted speedup of this plan: serial time / planned time (1.0 for a serial plan).
  std::string reason;                       ///< Why this plan, in a few sentences.
  std::vector<plan_warning> warnings;       ///< What the user should know or do, each with its kind.
  plan_profile profile;                     ///< The numbers behind it.

  /// Returns whether the plan carries a warning of `kind`.
  [[nodiscard]] bool has_warning(warning_kind kind) const;
  /// Adds a warning of `kind` with its sentence.
  void warn(warning_kind kind, std::string message);
  /// Returns a report for people: the decision, the reason, the warnings and the key numbers.
  [[nodiscard]] std::string explain() const;
  /// Returns the plan as JSON (keys as the members, plus `profile`).
  [[nodiscard]] nlohmann::json to_json() const;
  /// Reads a plan back from `to_json()` output (used to send the plan to every rank).
  static plan from_json(const nlohmann::json& json);
};

}  // namespace amorsize
