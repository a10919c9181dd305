#pragma once
/// Measured costs of parallelism: starting local worker processes and threads, a chunk round trip,
/// and what the engine itself costs per item.

namespace amorsize {

/// What parallelism costs on this node, measured, not assumed.
struct local_overheads {
  bool measured = false;                ///< False when not measured (under MPI ranks are already running).
  double process_spawn_fixed = 0.0;     ///< Seconds to start a pool of processes, apart from its size.
  double process_spawn_per_worker = 0.0;///< Extra seconds for each worker process started.
  double thread_spawn_per_worker = 0.0; ///< Seconds to start and join one thread.
  double chunk_round_trip = 0.0;        ///< Seconds to hand a worker process a chunk and get its answer (small message).
  double pipe_bandwidth = 0.0;          ///< Bytes per second from the parent to a worker process through a pipe.
  double measure_seconds = 0.0;         ///< Time the first measurement took.
};

/// Measures the local overheads once per process and returns the cached figures; forks, so never call it after MPI_Init.
const local_overheads& measure_local_overheads();

/// Measures the local overheads again, ignoring the cache.
local_overheads measure_local_overheads_uncached();

/// What the engine costs per item beyond the function, measured with a near-zero function on
/// 8-byte items and results (a type's own serialization is measured apart, when it is sampled).
struct engine_costs {
  bool measured = false;          ///< False when assumed, not measured (the chunking benchmark turned off).
  double serial_per_item = 0.0;   ///< Seconds a serial run adds per item: reading the source, making and handing over its record.
  double root_per_item = 0.0;     ///< Root CPU seconds per item of a parallel run: reading and packing items, unpacking and handing over records.
  double worker_per_item = 0.0;   ///< Worker seconds per item beyond the function: unpacking items, packing their records.
  double measure_seconds = 0.0;   ///< Time the measurement took.
};

/// Measures the engine's per-item costs once per process (in this process, on one thread worker:
/// safe under MPI and before a fork) and returns the cached figures.
const engine_costs& measure_engine_costs();

/// Measures the engine's per-item costs again, ignoring the cache.
engine_costs measure_engine_costs_uncached();

}  // namespace amorsize
