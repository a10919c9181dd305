// The MPI backend: the root streams chunks to worker ranks over the session's communicator and
// receives their results; every other rank serves until the root says stop.
//
// A message is its payload followed by a fixed trailer (the chunk's or result's numbers), so the
// receiver keeps the payload where it landed. All waits poll politely: Open MPI's blocking calls
// spin a core, which the root or a worker on the same node needs.
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>

#include "../session_mpi_internal.hpp"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace amorsize::engine {
namespace {

using mpi_detail::check;
using mpi_detail::poll_politely;
using mpi_detail::steady;
using mpi_detail::wait_politely;
namespace tag = mpi_detail::tag;

/// The rank that dispatches.
constexpr int root_rank = 0;

/// Trailer of a chunk message.
struct chunk_trailer {
  std::uint64_t id;
  std::uint64_t first_index;
  std::uint64_t count;
};

/// Trailer of a result message.
struct result_trailer {
  std::uint64_t id;
  double compute_seconds;
};

/// Appends `trailer` to `payload` and returns the message, checked against MPI's int counts.
template <class Trailer>
std::string seal(std::string payload, const Trailer& trailer) {
  // Every rank runs the same binary, so the sender's bytes of this plain struct mean the same everywhere.
  const auto raw = std::bit_cast<std::array<char, sizeof(Trailer)>>(trailer);
  payload.append(raw.data(), raw.size());
  if (payload.size() > static_cast<std::size_t>(INT_MAX)) {
    throw input_error("a message of " + std::to_string(payload.size()) +
                      " bytes is over MPI's 2 GiB limit: use smaller chunks");
  }
  return payload;
}

/// Removes the trailer from `message`, leaving the payload, and returns it.
template <class Trailer>
Trailer unseal(std::string& message) {
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

/// Returns the time point `seconds` from now (none for an infinite or huge wait).
steady::time_point deadline_after(double seconds) {
  if (!(seconds < 1e9)) {
    return steady::time_point::max();
  }
  const std::chrono::duration<double> wait{std::max(seconds, 0.0)};
  return steady::now() + std::chrono::duration_cast<steady::duration>(wait);
}

/// A message that arrived whole.
struct message {
  int source = -1;
  int tag = -1;
  std::string bytes;
};

/// Receives the message a matched probe found, waiting as a transfer under way deserves.
message receive_matched(MPI_Message& matched, const MPI_Status& status) {
  int bytes = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &bytes), "MPI_Get_count");
  message received{status.MPI_SOURCE, status.MPI_TAG, std::string(static_cast<std::size_t>(bytes), '\0')};
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Imrecv(received.bytes.data(), bytes, MPI_BYTE, &matched, &request), "MPI_Imrecv");
  wait_politely(request, mpi_detail::transfer_spin);
  return received;
}

/// Receives the next message from `source` with `message_tag` if one has arrived.
std::optional<message> receive_if_there(MPI_Comm comm, int source, int message_tag) {
  int found = 0;
  MPI_Message matched = MPI_MESSAGE_NULL;
  MPI_Status status;
  check(MPI_Improbe(source, message_tag, comm, &found, &matched, &status), "MPI_Improbe");
  if (found == 0) {
    return std::nullopt;
  }
  return receive_matched(matched, status);
}

/// Sends in progress, each buffer kept until MPI is done with it.
class sends {
 public:
  sends() = default;
  sends(const sends&) = delete;
  sends& operator=(const sends&) = delete;

  /// Leaves sends still in progress (only after an error) to finish on their own, their buffers kept.
  ~sends() {
    for (std::unique_ptr<outgoing>& send : pending_) {
      if (send && send->request != MPI_REQUEST_NULL) {
        MPI_Request_free(&send->request);
        // MPI may still read the buffer: leaking it is the only safe choice.
        static_cast<void>(send.release());
      }
    }
  }

  /// Starts sending `bytes` to `destination` with `message_tag`.
  void start(MPI_Comm comm, int destination, int message_tag, std::string bytes) {
    pending_.push_back(std::make_unique<outgoing>(outgoing{std::move(bytes), MPI_REQUEST_NULL}));
    outgoing& send = *pending_.back();
    check(MPI_Isend(send.bytes.data(), static_cast<int>(send.bytes.size()), MPI_BYTE, destination, message_tag,
                    comm, &send.request),
          "MPI_Isend");
  }

  /// Frees the buffers of completed sends; returns true when none is in progress.
  bool reap() {
    for (std::unique_ptr<outgoing>& send : pending_) {
      int done = 0;
      check(MPI_Test(&send->request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done != 0) {
        send.reset();
      }
    }
    std::erase(pending_, nullptr);
    return pending_.empty();
  }

  /// Waits politely until every send has completed.
  void finish() {
    poll_politely([this] { return reap(); }, mpi_detail::transfer_spin);
  }

 private:
  struct outgoing {
    std::string bytes;
    MPI_Request request;
  };
  std::vector<std::unique_ptr<outgoing>> pending_;
};

/// The root's side: worker w is rank worker_ranks_[w].
class mpi_backend final : public backend {
 public:
  mpi_backend(MPI_Comm comm, int world_size, std::vector<int> worker_ranks)
      : comm_(comm), world_size_(world_size), worker_ranks_(std::move(worker_ranks)),
        worker_of_rank_(static_cast<std::size_t>(world_size), -1), held_(worker_ranks_.size()),
        lost_(worker_ranks_.size(), false) {
    for (std::size_t w = 0; w < worker_ranks_.size(); ++w) {
      const int rank = worker_ranks_[w];
      if (rank <= root_rank || rank >= world_size || worker_of_rank_[static_cast<std::size_t>(rank)] >= 0) {
        throw input_error("worker rank " + std::to_string(rank) + " is the root, out of range or named twice; " +
                          "worker ranks are distinct, from 1 to " + std::to_string(world_size - 1));
      }
      worker_of_rank_[static_cast<std::size_t>(rank)] = static_cast<int>(w);
    }
  }

  ~mpi_backend() override {
    try {
      stop();
    } catch (...) {
      // A destructor may run while an exception unwinds; a failing MPI has already said why.
    }
  }

  mpi_backend(const mpi_backend&) = delete;
  mpi_backend& operator=(const mpi_backend&) = delete;

  [[nodiscard]] int workers() const override { return static_cast<int>(worker_ranks_.size()); }

  void send(int w, chunk c) override {
    if (stopped_ || w < 0 || w >= workers() || lost_[static_cast<std::size_t>(w)]) {
      throw error(exit_code::internal, "chunk " + std::to_string(c.id) + " sent to worker " + std::to_string(w) +
                                           (stopped_ ? " after stop()" : ", which does not exist or was lost"));
    }
    sends_.reap();
    held_[static_cast<std::size_t>(w)].push_back(c.id);
    const chunk_trailer trailer{c.id, c.first_index, c.count};
    sends_.start(comm_, worker_ranks_[static_cast<std::size_t>(w)], tag::chunk, seal(std::move(c.payload), trailer));
  }

  std::optional<event> wait(double timeout_seconds) override {
    std::optional<message> received;
    poll_politely(
        [&] {
          sends_.reap();
          received = receive_if_there(comm_, MPI_ANY_SOURCE, MPI_ANY_TAG);
          return received.has_value();
        },
        mpi_detail::brief_spin, deadline_after(timeout_seconds));
    if (!received) {
      return std::nullopt;
    }
    const int worker = worker_of_rank_.at(static_cast<std::size_t>(received->source));
    if (worker < 0 || (received->tag != tag::result && received->tag != tag::failed)) {
      throw error(exit_code::internal, "rank " + std::to_string(received->source) + " sent tag " +
                                           std::to_string(received->tag) + " to the root while it dispatched");
    }
    std::deque<std::uint64_t>& held = held_[static_cast<std::size_t>(worker)];
    if (received->tag == tag::failed) {
      lost_[static_cast<std::size_t>(worker)] = true;
      worker_lost lost{worker, {held.begin(), held.end()},
                       "rank " + std::to_string(received->source) + ": " + received->bytes};
      held.clear();
      return lost;
    }
    const auto trailer = unseal<result_trailer>(received->bytes);
    // A worker runs its chunks in the order sent, so the oldest held chunk is the one answered.
    if (!held.empty() && held.front() == trailer.id) {
      held.pop_front();
    } else {
      std::erase(held, trailer.id);
    }
    return chunk_result{trailer.id, worker, std::move(received->bytes), trailer.compute_seconds};
  }

  [[nodiscard]] bool alive(int w) const override { return !lost_.at(static_cast<std::size_t>(w)); }

  void stop() override {
    if (stopped_) {
      return;
    }
    stopped_ = true;
    for (int rank = root_rank + 1; rank < world_size_; ++rank) {
      sends_.start(comm_, rank, tag::stop, {});
    }
    // Each rank answers `stopped` after its last result, so once every rank has answered no message is
    // left in flight; results still coming are dropped, freeing their senders.
    int answers_due = world_size_ - 1;
    poll_politely([&] {
      while (answers_due > 0) {
        std::optional<message> received = receive_if_there(comm_, MPI_ANY_SOURCE, MPI_ANY_TAG);
        if (!received) {
          break;
        }
        if (received->tag == tag::stopped) {
          --answers_due;
        } else if (received->tag != tag::result && received->tag != tag::failed) {
          throw error(exit_code::internal, "rank " + std::to_string(received->source) + " sent tag " +
                                               std::to_string(received->tag) + " while stopping");
        }
      }
      return sends_.reap() && answers_due == 0;
    });
  }

 private:
  MPI_Comm comm_;
  int world_size_;
  std::vector<int> worker_ranks_;
  /// Worker id of every rank, -1 for the root and ranks that sit out.
  std::vector<int> worker_of_rank_;
  /// Ids of the chunks each worker holds, oldest first.
  std::vector<std::deque<std::uint64_t>> held_;
  /// Workers whose task threw; they run no more chunks.
  std::vector<bool> lost_;
  sends sends_;
  bool stopped_ = false;
};

/// A receive from the root, started when its message has arrived; never moved while in progress.
struct incoming {
  bool started = false;
  int tag = -1;
  std::string bytes;
  MPI_Request request = MPI_REQUEST_NULL;
};

/// Starts receiving the root's next message into `next` if it has arrived; returns whether it did.
bool start_receive(MPI_Comm comm, incoming& next) {
  int found = 0;
  MPI_Message matched = MPI_MESSAGE_NULL;
  MPI_Status status;
  check(MPI_Improbe(root_rank, MPI_ANY_TAG, comm, &found, &matched, &status), "MPI_Improbe");
  if (found == 0) {
    return false;
  }
  int bytes = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &bytes), "MPI_Get_count");
  next.started = true;
  next.tag = status.MPI_TAG;
  next.bytes.assign(static_cast<std::size_t>(bytes), '\0');
  check(MPI_Imrecv(next.bytes.data(), bytes, MPI_BYTE, &matched, &next.request), "MPI_Imrecv");
  return true;
}

/// Waits politely for the root's next message, spinning first for `spin_for` and letting `results`
/// progress meanwhile, and returns it whole.
incoming receive_next(MPI_Comm comm, incoming& next, sends& results, std::chrono::microseconds spin_for) {
  if (!next.started) {
    poll_politely(
        [&] {
          results.reap();
          return start_receive(comm, next);
        },
        spin_for);
  }
  wait_politely(next.request, mpi_detail::transfer_spin);
  return std::exchange(next, incoming{});
}

/// Returns true when the root has already said stop, behind the chunks this rank still holds.
bool stop_waiting(MPI_Comm comm, const incoming& next) {
  if (next.started && next.tag == tag::stop) {
    return true;
  }
  int found = 0;
  check(MPI_Iprobe(root_rank, tag::stop, comm, &found, MPI_STATUS_IGNORE), "MPI_Iprobe");
  return found != 0;
}

/// Throws error(mpi_failure) naming `what` when `s` runs without MPI.
void require_mpi(const session& s, const char* what) {
  if (!s.mpi()) {
    throw error(exit_code::mpi_failure,
                std::string(what) + " needs MPI, and this process was not started by mpirun or srun: use a local pool");
  }
}

}  // namespace

std::unique_ptr<backend> make_mpi_backend(session& s, std::vector<int> worker_ranks) {
  require_mpi(s, "the MPI backend");
  if (!s.is_root()) {
    throw error(exit_code::internal, "make_mpi_backend runs on the root; rank " + std::to_string(s.rank()) +
                                         " must call serve_chunks");
  }
  return std::make_unique<mpi_backend>(mpi_detail::communicator(s), s.size(), std::move(worker_ranks));
}

std::size_t serve_chunks(session& s, const chunk_task& task) {
  require_mpi(s, "serve_chunks");
  if (s.is_root()) {
    throw error(exit_code::internal, "serve_chunks runs on the other ranks; the root makes the MPI backend");
  }
  const MPI_Comm comm = mpi_detail::communicator(s);
  sends results;
  incoming next;
  std::size_t ran = 0;
  bool abandoning = false;
  // The root answers each result with the next chunk at once, so after a result the reply is on its
  // way: waiting for it by sleeping would add the sleep's latency to every chunk that is not prefetched.
  for (incoming current = receive_next(comm, next, results, mpi_detail::brief_spin); current.tag != tag::stop;
       current = receive_next(comm, next, results, mpi_detail::transfer_spin)) {
    // Start on the next chunk now if it is here, so that a large one moves before this one runs.
    start_receive(comm, next);
    abandoning = abandoning || stop_waiting(comm, next);
    if (abandoning) {
      continue;
    }
    const auto trailer = unseal<chunk_trailer>(current.bytes);
    double compute_seconds = 0.0;
    std::optional<std::string> result;
    std::string failure;
    try {
      result = task(current.bytes, compute_seconds);
    } catch (const std::exception& e) {
      failure = std::string("the chunk task threw: ") + e.what();
    } catch (...) {
      failure = "the chunk task threw an exception that is not a std::exception";
    }
    // One message in flight at a time: its buffer is the only copy, and the root drains them in order.
    results.finish();
    if (!result) {
      // The root hears of it as a lost worker; this rank keeps in step by serving, idle, until stop.
      results.start(comm, root_rank, tag::failed, std::move(failure));
      abandoning = true;
      continue;
    }
    results.start(comm, root_rank, tag::result, seal(std::move(*result), result_trailer{trailer.id, compute_seconds}));
    ++ran;
  }
  results.start(comm, root_rank, tag::stopped, {});
  results.finish();
  return ran;
}

void agree_on_call(session& s, const std::string& key) {
  if (!s.mpi() || s.size() == 1) {
    return;
  }
  const std::vector<std::string> keys = mpi_detail::gather_text(key, mpi_detail::communicator(s));
  std::string complaint;
  std::vector<int> differing;
  for (std::size_t rank = 1; rank < keys.size(); ++rank) {
    if (keys[rank] != keys[0]) {
      differing.push_back(static_cast<int>(rank));
    }
  }
  if (!differing.empty()) {
    const auto first = static_cast<std::size_t>(differing.front());
    complaint =
        "rank " + std::to_string(first) + " called '" + keys[first] + "' while the root called '" + keys[0] + "'";
    if (differing.size() > 1) {
      complaint += " (" + std::to_string(differing.size()) + " ranks differ:";
      for (int rank : differing) {
        complaint += " " + std::to_string(rank);
      }
      complaint += ")";
    }
    complaint += ": every rank must make the same amorsize calls in the same order";
  }
  complaint = s.broadcast(complaint);
  if (!complaint.empty()) {
    throw error(exit_code::usage, complaint);
  }
}

}  // namespace amorsize::engine
