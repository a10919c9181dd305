#pragma once
// How amorsize's ranks talk over MPI, for the session and the MPI engine alike: the one list of
// message tags, the session's private communicator, waits that keep a waiting rank off the CPU,
// text collectives, point-to-point messages and their framing. MPI builds only; not installed.
//
// Every wait polls politely. Open MPI's blocking calls busy-poll, yielding only when told the node
// is oversubscribed: a rank waiting that way takes a core from the root, which may be timing the
// user's function, and when other programs load the machine two spinning ranks can need a whole
// scheduler slice per message.

#include <amorsize/error.hpp>
#include <amorsize/session.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace amorsize::mpi_transport {

using steady = std::chrono::steady_clock;

/// Tags of the point-to-point messages on the session's communicator, one list so none collide.
enum class tag : int {
  link = 1,  ///< A round trip of the session's link measurement.
  chunk,     ///< Root to worker: a chunk to run.
  result,    ///< Worker to root: a chunk's result.
  failed,    ///< Worker to root: the chunk task threw (its text), so the worker runs no more chunks.
  setup_failed, ///< Worker to root: the per-worker setup threw (its text), so the worker runs no chunk.
  stop,      ///< Root to every other rank: return from serve_chunks.
  stopped,   ///< Rank to root: the rank has sent its last result and returns.
};

/// The rank that samples, plans and dispatches, and the root of every collective.
constexpr int root_rank = 0;

/// Spin before a polite wait starts to sleep: collectives whose ranks are all present finish in it.
constexpr std::chrono::microseconds brief_spin{50};
/// Spin while a message is on its way: long enough that a large one between nodes (or a measured round
/// trip) waits for no sleep, short enough to give way on a busy machine.
constexpr std::chrono::microseconds transfer_spin{2000};

/// Throws error(mpi_failure) naming `call` when an MPI call did not succeed.
void check(int result, const char* call);

/// Returns true once MPI_Finalize has been called in this process.
bool mpi_finalized();

/// A communicator amorsize created, freed when it goes out of scope (unless MPI is finalized).
class owned_comm {
 public:
  owned_comm() = default;
  ~owned_comm();
  owned_comm(const owned_comm&) = delete;
  owned_comm& operator=(const owned_comm&) = delete;

  /// Returns the communicator (MPI_COMM_NULL when this rank is not in it).
  [[nodiscard]] MPI_Comm get() const noexcept { return comm_; }
  /// Returns the address MPI writes a new communicator to.
  MPI_Comm* out() noexcept { return &comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

/// The live session's private duplicate of MPI_COMM_WORLD, which communicator_of finds while it lives.
class session_comm {
 public:
  /// Duplicates MPI_COMM_WORLD for `owner`, waiting politely; throws error(internal) if one is alive.
  explicit session_comm(const session& owner);
  /// Frees the communicator; communicator_of finds none afterwards.
  ~session_comm();
  session_comm(const session_comm&) = delete;
  session_comm& operator=(const session_comm&) = delete;

  /// Returns the communicator.
  [[nodiscard]] MPI_Comm get() const noexcept { return comm_.get(); }

 private:
  owned_comm comm_;
};

/// Returns the private communicator of `s`; throws error(internal) unless `s` is the live MPI session.
MPI_Comm communicator_of(const session& s);

/// The shortest and the default longest pause of a polite wait.
constexpr std::chrono::microseconds shortest_pause{50};
constexpr std::chrono::microseconds default_longest_pause{1000};

/// A polite wait's back-off: it yields for a spin, then sleeps in pauses that double up to a longest
/// pause. The back-off outlives one wait, so a caller that waits in slices (to look at other things
/// between them) keeps sleeping long while nothing happens; restart() after something arrived.
class polite_poller {
 public:
  /// Starts a back-off that spins for `spin_for` first.
  explicit polite_poller(std::chrono::microseconds spin_for = brief_spin)
      : spin_for_(spin_for), spin_until_(steady::now() + spin_for) {}

  /// Calls `ready` until it returns true or `deadline` passes, pausing between calls at most
  /// `longest_pause` (never past `deadline`); returns whether it did.
  template <class Ready>
  bool poll(Ready&& ready, steady::time_point deadline, std::chrono::microseconds longest_pause = default_longest_pause) {
    for (;;) {
      if (ready()) {
        return true;
      }
      const steady::time_point now = steady::now();
      if (now >= deadline) {
        return false;
      }
      if (now < spin_until_) {
        std::this_thread::yield();
        continue;
      }
      pause_ = std::min(pause_, longest_pause);
      std::this_thread::sleep_for(std::min<steady::duration>(pause_, deadline - now));
      pause_ = std::min(pause_ * 2, longest_pause);
    }
  }

  /// Starts the back-off again from its spin: something arrived, so more may follow soon.
  void restart() {
    spin_until_ = steady::now() + spin_for_;
    pause_ = shortest_pause;
  }

 private:
  std::chrono::microseconds spin_for_;
  steady::time_point spin_until_;
  std::chrono::microseconds pause_ = shortest_pause;
};

/// Calls `ready` until it returns true or `deadline` passes, yielding for `spin_for` and then
/// sleeping from 50 us up to 1 ms between calls (never past `deadline`); returns whether it did.
template <class Ready>
bool poll_politely(Ready&& ready, std::chrono::microseconds spin_for = brief_spin,
                   steady::time_point deadline = steady::time_point::max()) {
  return polite_poller(spin_for).poll(std::forward<Ready>(ready), deadline);
}

/// Completes `requests` (writing `statuses` unless ignored), waiting as poll_politely does.
void wait_politely(std::span<MPI_Request> requests, std::chrono::microseconds spin_for = brief_spin,
                   MPI_Status* statuses = MPI_STATUSES_IGNORE);

/// Completes `request` (writing `status` unless ignored), waiting as poll_politely does.
void wait_politely(MPI_Request& request, std::chrono::microseconds spin_for = brief_spin,
                   MPI_Status* status = MPI_STATUS_IGNORE);

/// Waits politely until every rank of `comm` arrives.
void barrier_politely(MPI_Comm comm);

/// Copies the root's bytes of `value` to every rank of `comm`, whose ranks all run the same binary.
template <class Value>
void broadcast_value(Value& value, MPI_Comm comm) {
  static_assert(std::is_trivially_copyable_v<Value>);
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibcast(&value, static_cast<int>(sizeof value), MPI_BYTE, root_rank, comm, &request), "MPI_Ibcast");
  wait_politely(request);
}

/// Sends the root's `text` to every rank of `comm` and returns it (other ranks' `text` is unused).
std::string broadcast_text(const std::string& text, MPI_Comm comm);

/// Gathers every rank's `text` on the root of `comm`, in rank order (empty elsewhere).
std::vector<std::string> gather_text(const std::string& text, MPI_Comm comm);

/// Sends `bytes` to `peer` with `kind` and waits politely until the send completes.
void send_politely(MPI_Comm comm, int peer, tag kind, std::span<const char> bytes,
                   std::chrono::microseconds spin_for);

/// Receives a message from `peer` with `kind` into `buffer`, waiting politely, and returns its size in bytes.
int receive_politely(MPI_Comm comm, int peer, tag kind, std::span<char> buffer, std::chrono::microseconds spin_for);

/// A message whose receive started once it had arrived; never moved while the receive is in progress.
struct incoming {
  bool started = false;
  int source = -1;
  tag kind{};
  std::string bytes;
  MPI_Request request = MPI_REQUEST_NULL;
};

/// Starts receiving into `next` the next message from `source` (any tag) if one has arrived; returns whether it did.
bool start_receive_if_arrived(MPI_Comm comm, int source, incoming& next);

/// Completes the receive `next` started, spinning as a transfer under way deserves.
void finish_receive(incoming& next);

/// Receives the next message from `source` (any tag) whole if one has arrived.
std::optional<incoming> receive_if_arrived(MPI_Comm comm, int source);

/// Returns true when a message from `source` with `kind` has arrived and waits to be received.
bool has_arrived(MPI_Comm comm, int source, tag kind);

/// Sends in progress, each buffer kept until MPI is done with it.
class pending_sends {
 public:
  pending_sends() = default;
  /// Leaves sends still in progress (only after an error) to finish on their own, their buffers kept.
  ~pending_sends();
  pending_sends(const pending_sends&) = delete;
  pending_sends& operator=(const pending_sends&) = delete;

  /// Starts sending `bytes` to `destination` with `kind`.
  void start(MPI_Comm comm, int destination, tag kind, std::string bytes);

  /// Frees the buffers of completed sends; returns true when none is in progress.
  bool reap();

  /// Waits politely until every send has completed.
  void finish();

 private:
  struct outgoing {
    std::string bytes;
    MPI_Request request;
  };
  std::vector<std::unique_ptr<outgoing>> pending_;
};

/// Appends the bytes of `trailer` to `payload` and returns the message, checked against MPI's int counts.
template <class Trailer>
std::string append_trailer(std::string payload, const Trailer& trailer) {
  // Every rank runs the same binary, so the sender's bytes of this plain struct mean the same everywhere.
  const auto raw = std::bit_cast<std::array<char, sizeof(Trailer)>>(trailer);
  payload.append(raw.data(), raw.size());
  if (payload.size() > static_cast<std::size_t>(INT_MAX)) {
    throw input_error("a message of " + std::to_string(payload.size()) +
                      " bytes is over MPI's 2 GiB limit: use smaller chunks");
  }
  return payload;
}

/// Removes the trailer append_trailer put at the end of `message`, leaving the payload, and returns it.
template <class Trailer>
Trailer remove_trailer(std::string& message) {
  std::array<char, sizeof(Trailer)> raw{};
  if (message.size() < raw.size()) {
    throw error(exit_code::internal, "a message of " + std::to_string(message.size()) +
                                         " bytes is too short for its trailer: ranks run different builds?");
  }
  const std::size_t payload_bytes = message.size() - raw.size();
  std::copy(message.begin() + static_cast<std::ptrdiff_t>(payload_bytes), message.end(), raw.begin());
  message.resize(payload_bytes);
  return std::bit_cast<Trailer>(raw);
}

}  // namespace amorsize::mpi_transport
