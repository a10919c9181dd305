// Launcher detection, shared by the MPI and the local session.
#include <amorsize/session.hpp>

#include "text.hpp"

#include <array>
#include <optional>
#include <string>
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

std::optional<int> launcher_rank(const env_lookup& env) {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix) and PMI-1/2 launchers, in that order.
  constexpr std::array<std::string_view, 3> rank_variables{"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
  for (std::string_view name : rank_variables) {
    if (const std::optional<std::string> value = env(name)) {
      if (const std::optional<int> rank = text::parse_number<int>(*value)) {
        return rank;
      }
    }
  }
  return std::nullopt;
}

}  // namespace amorsize
