// The MPI engine of a build without MPI: every run is one rank, so there is nothing to agree on and
// no rank to send chunks to.
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>

namespace amorsize::engine {
namespace {

[[noreturn]] void no_mpi(const char* what) {
  throw error(exit_code::mpi_failure, std::string("this build has no MPI (AMORSIZE_WITH_MPI=OFF), so ") + what +
                                          " cannot run: rebuild with -DAMORSIZE_WITH_MPI=ON or use a local pool");
}

}  // namespace

void agree_on_call(session& /*s*/, const std::string& /*key*/, const std::string& /*refusal*/) {}

std::unique_ptr<backend> make_mpi_backend(session& /*s*/, std::vector<int> /*worker_ranks*/) {
  no_mpi("the MPI backend");
}

std::size_t serve_chunks(session& /*s*/, const chunk_task& /*task*/, int /*worker*/, const worker_setup& /*setup*/) {
  no_mpi("serve_chunks");
}

}  // namespace amorsize::engine
