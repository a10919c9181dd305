// The session of a build without MPI: every process is a run of one rank on one node.
#include <amorsize/session.hpp>

#include "session_common.hpp"

#include <iostream>
#include <mutex>
#include <optional>

namespace amorsize {

struct session::impl {
  std::optional<cluster_layout> layout_;
  mpi_links links_;
};

session::session() : impl_(std::make_unique<impl>()) {
  session_detail::claim(*this);
  if (launched_by_mpi(environment_variable)) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      std::cerr << "amorsize: warning: started by an MPI launcher, but this build has no MPI "
                   "(AMORSIZE_WITH_MPI=OFF), so every rank runs the whole job alone; rebuild with "
                   "-DAMORSIZE_WITH_MPI=ON or run without mpirun/srun\n";
    });
  }
}

session::~session() { session_detail::release(*this); }

session& session::current() { return session_detail::current(); }

bool session::alive() noexcept { return session_detail::live_session.load() != nullptr; }

bool session::mpi() const noexcept { return false; }

int session::rank() const noexcept { return 0; }

int session::size() const noexcept { return 1; }

const cluster_layout& session::layout() {
  if (!impl_->layout_) {
    impl_->layout_ = session_detail::single_process_layout();
  }
  return *impl_->layout_;
}

const mpi_links& session::links() { return impl_->links_; }

std::string session::broadcast(const std::string& text) { return text; }

void session::barrier() {}

}  // namespace amorsize
