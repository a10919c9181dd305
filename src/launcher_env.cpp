// Launcher detection, shared by the MPI and the local session.
#include <amorsize/session.hpp>

#include <array>
#include <string_view>

namespace amorsize {

bool launched_by_mpi(const env_lookup& env) {
  // mpirun (Open MPI), srun --mpi=pmix, PMI-1/2 launchers (srun --mpi=pmi2, Hydra) and MPICH's mpiexec.
  // Settings such as OMPI_MCA_* or SLURM_JOB_ID alone do not count: they appear without a launcher.
  constexpr std::array<std::string_view, 5> markers{
      "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"};
  for (std::string_view name : markers) {
    if (env(name).has_value()) {
      return true;
    }
  }
  return false;
}

}  // namespace amorsize
