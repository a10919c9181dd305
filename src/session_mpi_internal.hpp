#pragma once
// What the MPI session shares with the MPI engine: its private communicator, the message tags used
// on it, and the polite waiting that keeps a waiting rank off the CPU. MPI builds only.

#include <amorsize/session.hpp>

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace amorsize::mpi_detail {

using steady = std::chrono::steady_clock;

/// Tags of the point-to-point messages on the session's communicator, one list so none collide.
namespace tag {
enum : int {
  link = 1,  ///< A round trip of the session's link measurement.
  chunk,     ///< Root to worker: a chunk to run.
  result,    ///< Worker to root: a chunk's result.
  failed,    ///< Worker to root: the chunk task threw (its text), so the worker runs no more chunks.
  stop,      ///< Root to every other rank: return from serve_chunks.
  stopped,   ///< Rank to root: the rank has sent its last result and returns.
};
}  // namespace tag

/// Spin before a polite wait starts to sleep: collectives whose ranks are all present finish in it.
constexpr std::chrono::microseconds brief_spin{50};
/// Spin while a message is known to be on its way: long enough for a large one between nodes, so
/// that neither a transfer nor a measured round trip waits for a sleep, short enough to give way
/// when the machine is busy.
constexpr std::chrono::microseconds transfer_spin{2000};

/// Returns the private duplicate of MPI_COMM_WORLD of `s`, the live session with MPI initialised.
MPI_Comm communicator(session& s);

/// Throws error(mpi_failure) naming `call` when an MPI call did not succeed.
void check(int result, const char* call);

/// Calls `ready` until it returns true or `deadline` passes, without holding a core: after
/// `spin_for` of calls and yields it calls and sleeps, backing off from 50 us to 1 ms and never
/// sleeping past `deadline`; returns whether `ready` returned true.
///
/// Open MPI's blocking calls busy-poll, yielding only when told the node is oversubscribed: a rank
/// waiting that way takes a core from the root, which may be timing the user's function, and when
/// other programs load the machine two spinning ranks can need a whole scheduler slice per message.
template <class Ready>
bool poll_politely(Ready&& ready, std::chrono::microseconds spin_for = brief_spin,
                   steady::time_point deadline = steady::time_point::max()) {
  constexpr std::chrono::microseconds longest_pause{1000};
  const steady::time_point spin_until = steady::now() + spin_for;
  std::chrono::microseconds pause{50};
  for (;;) {
    if (ready()) {
      return true;
    }
    const steady::time_point now = steady::now();
    if (now >= deadline) {
      return false;
    }
    if (now < spin_until) {
      std::this_thread::yield();
      continue;
    }
    std::this_thread::sleep_for(std::min<steady::duration>(pause, deadline - now));
    pause = std::min(pause * 2, longest_pause);
  }
}

/// Completes `requests` (writing `statuses` unless ignored), waiting as poll_politely does.
void wait_politely(std::span<MPI_Request> requests, std::chrono::microseconds spin_for = brief_spin,
                   MPI_Status* statuses = MPI_STATUSES_IGNORE);

/// Completes `request` (writing `status` unless ignored), waiting as poll_politely does.
void wait_politely(MPI_Request& request, std::chrono::microseconds spin_for = brief_spin,
                   MPI_Status* status = MPI_STATUS_IGNORE);

/// Gathers every rank's `text` on rank 0 of `comm`, in rank order (empty elsewhere).
std::vector<std::string> gather_text(const std::string& text, MPI_Comm comm);

}  // namespace amorsize::mpi_detail
