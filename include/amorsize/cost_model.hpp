#pragma once
/// The cost model: a pure function from measurements to a plan; no clocks, no MPI, no OS.

#include <amorsize/cluster.hpp>
#include <amorsize/overheads.hpp>
#include <amorsize/plan.hpp>
#include <amorsize/sample.hpp>

#include <cstddef>
#include <optional>

namespace amorsize {

/// Local workers per usable core, at most, unless the caller forces a count: enough for functions
/// that mostly wait, few enough that the system's process and thread limits stay far away.
inline constexpr int max_workers_per_core = 8;

/// What the caller asks of the plan; unset fields are decided by the model.
struct plan_request {
  plan_mode mode = plan_mode::gather_all;        ///< Gather all results or stream them.
  std::optional<std::size_t> total_items;        ///< Items in the source (nullopt: unknown or endless).
  double target_chunk_duration = 0.2;            ///< Seconds a chunk should take.
  std::optional<bool> prefer_ordered;            ///< True: input order; false: as completed; unset: decide.
  std::optional<std::size_t> buffer_size;        ///< Items in flight at most; unset: decide.
  std::optional<int> workers_per_node;           ///< Force this many workers per node.
  std::optional<std::size_t> chunksize;          ///< Force this chunk size.
  std::optional<backend_kind> backend;           ///< Force a local backend (processes or threads); unset: decide.
  double memory_fraction = 0.5;                  ///< Share of available memory results and workers may use.
  double min_speedup = 1.2;                      ///< Below this predicted speedup the plan says serial.
  double consumer_seconds_per_item = 0.0;        ///< Root seconds the caller spends on each result, serial or parallel.
};

/// Everything the model reads.
struct model_inputs {
  sample_stats work;        ///< The sampled calls.
  cluster_layout cluster;   ///< Nodes and ranks (one node, one rank without a launcher).
  mpi_links links;          ///< Message costs under MPI.
  local_overheads local;    ///< Process and thread start costs, local chunk round trip.
  engine_costs engine;      ///< What the engine adds per item: serially, on the root, in a worker.
  plan_request request;     ///< What the caller asked.
};

/// Predicted run of a given shape, from the model's formulas.
struct prediction {
  double serial_seconds = 0.0;     ///< All items in one thread.
  double work_seconds = 0.0;       ///< The calls alone, one after another: serial time without the engine's and the caller's per-item costs.
  double parallel_seconds = 0.0;   ///< Start-up, items on the workers, root cost, tail.
  double root_load = 0.0;          ///< Root busy time / parallel time.
  double overhead_fraction = 0.0;  ///< (parallel - ideal) / parallel, ideal = serial / workers.
  double speedup = 1.0;            ///< serial / parallel.
};

/// Predicts serial and parallel run time of `items` items on `workers` workers with `schedule`.
prediction predict(const model_inputs& in, std::size_t items, int workers, const chunk_schedule& schedule);

/// Predicts the steady-state speedup of an endless stream on `workers` workers with `schedule`.
prediction predict_steady(const model_inputs& in, int workers, const chunk_schedule& schedule);

/// Turns measurements into a plan; every decision leaves a sentence in `reason` or `warnings`.
plan make_plan(const model_inputs& in);

/// Re-plans the rest of a run the model made serial, from its own items: `planned` with the sample's
/// mean item time replaced by `mean_seconds` (measured on `items_run` items of the run, the engine's
/// record excluded) and `items_left` items to go (nullopt: unknown or endless). A run whose items take
/// longer than sampled (a generator whose first items were cheap) learns here whether workers now pay.
plan plan_rest_of_run(const model_inputs& planned, double mean_seconds, std::size_t items_run,
                      std::optional<std::size_t> items_left);

/// Makes `p` run serially: one worker, backend serial, estimated speedup 1.0, without the warnings
/// only a parallel run earns; the rejected parallel estimate stays in its profile.
void make_serial(plan& p);

/// Returns how many results fit in `fraction` of `available_memory` bytes at `result_bytes` each (at least 1).
std::size_t safe_batch_size(double result_bytes, std::uint64_t available_memory, double fraction = 0.5);

}  // namespace amorsize
