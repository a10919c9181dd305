#pragma once
/// Measured costs of local parallelism: starting worker processes and threads, and a chunk round trip.

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

}  // namespace amorsize
