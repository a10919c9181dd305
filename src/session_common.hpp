#pragma once
// Pieces both session implementations share; a build compiles exactly one of them.

#include <amorsize/cluster.hpp>
#include <amorsize/error.hpp>
#include <amorsize/probe.hpp>
#include <amorsize/session.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

namespace amorsize::session_detail {

/// The session alive in this process, or null.
inline std::atomic<session*> live_session{nullptr};

/// Registers `self` as the live session; throws error(mpi_failure) when another one is alive.
inline void claim(session& self) {
  session* expected = nullptr;
  if (!live_session.compare_exchange_strong(expected, &self)) {
    throw error(exit_code::mpi_failure,
                "an amorsize session is already alive in this process: create one session (or use "
                "amorsize::session::current()) and keep it for the whole run");
  }
}

/// Unregisters `self` when it is the live session.
inline void release(session& self) noexcept {
  session* expected = &self;
  live_session.compare_exchange_strong(expected, nullptr);
}

/// Returns the live session, or a process-wide one created on first use and destroyed at exit.
inline session& current() {
  if (session* live = live_session.load()) {
    return *live;
  }
  static session process_wide;
  return process_wide;
}

/// Returns the layout of a run without MPI: this node, one rank.
inline cluster_layout single_process_layout() {
  cluster_layout layout;
  layout.mpi = false;
  layout.world_size = 1;
  layout.nodes = {probe_node()};
  layout.ranks_per_node = {1};
  layout.node_of_rank = {0};
  return layout;
}

}  // namespace amorsize::session_detail
