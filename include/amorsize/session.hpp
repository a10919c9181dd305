#pragma once
/// The process's place in a run: under an MPI launcher (cluster) or alone (local).

#include <amorsize/cluster.hpp>
#include <amorsize/probe.hpp>

#include <memory>
#include <optional>
#include <string>

namespace amorsize {

/// Returns true when the environment shows an MPI launcher (mpirun/mpiexec, srun with PMI/PMIx).
bool launched_by_mpi(const env_lookup& env);

/// Returns this process's rank as the launcher's environment gives it; nullopt without a launcher.
std::optional<int> launcher_rank(const env_lookup& env);

/// One per process: initialises MPI when launched by mpirun/srun, finalises it when destroyed.
///
/// Every rank makes the same amorsize calls in the same order (like MPI collectives); only the
/// root's data is read. Without a launcher MPI is never initialised, so a local pool may fork.
class session {
 public:
  /// Starts the session (MPI_Init under a launcher); throws error(mpi_failure) if a session is alive.
  session();
  /// Finalises MPI if this session initialised it.
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Returns the live session, creating a process-wide one (finalised at exit) if none was made.
  static session& current();
  /// True while a session exists in this process: the ranks then fail in step, the root's error on each.
  static bool alive() noexcept;

  /// True when running under an MPI launcher with MPI initialised.
  [[nodiscard]] bool mpi() const noexcept;
  /// This process's rank (0 without MPI).
  [[nodiscard]] int rank() const noexcept;
  /// Number of ranks (1 without MPI).
  [[nodiscard]] int size() const noexcept;
  /// True on rank 0, the root that samples, plans and dispatches.
  [[nodiscard]] bool is_root() const noexcept { return rank() == 0; }

  /// Returns the nodes and their ranks; collective on its first call, cached afterwards.
  const cluster_layout& layout();

  /// Measures root-to-rank message costs once (collective on its first call) and returns them.
  const mpi_links& links();

  /// Sends `text` from the root to every rank and returns it; non-root ranks wait without spinning.
  std::string broadcast(const std::string& text);

  /// Waits until every rank arrives, without spinning a core.
  void barrier();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace amorsize
