// The MPI backend: the root streams chunks to worker ranks over the session's communicator and
// receives their results; every other rank serves until the root says stop.
//
// A message is its payload followed by a fixed trailer (the chunk's or result's numbers), so the
// receiver keeps the payload where it landed. The messages travel through mpi_transport, whose
// waits keep a waiting rank off the core that the root or a worker on the same node needs.
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>
#include <amorsize/worker.hpp>

#include "../mpi_transport.hpp"
#include "worker_number.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amorsize::engine {
namespace {

using mpi_transport::append_trailer;
using mpi_transport::incoming;
using mpi_transport::pending_sends;
using mpi_transport::poll_politely;
using mpi_transport::remove_trailer;
using mpi_transport::root_rank;
using mpi_transport::steady;
using mpi_transport::tag;

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

/// The longest pause of the root's wait for results, however long the chunks: it bounds the delay
/// the root adds to an answer.
constexpr std::chrono::microseconds max_root_pause{50000};

/// Returns the time point `seconds` from now (none for an infinite or huge wait).
steady::time_point deadline_after(double seconds) {
  if (!(seconds < 1e9)) {
    return steady::time_point::max();
  }
  const std::chrono::duration<double> wait{std::max(seconds, 0.0)};
  return steady::now() + std::chrono::duration_cast<steady::duration>(wait);
}

/// Returns the number MPI carries for `kind`, for messages that name an unexpected tag.
std::string tag_number(tag kind) { return std::to_string(static_cast<int>(kind)); }

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
    if (told_to_stop_ || w < 0 || w >= workers() || lost_[static_cast<std::size_t>(w)]) {
      throw error(exit_code::internal, "chunk " + std::to_string(c.id) + " sent to worker " + std::to_string(w) +
                                           (told_to_stop_ ? " after stop()" : ", which does not exist or was lost"));
    }
    sends_.reap();
    held_[static_cast<std::size_t>(w)].push_back(c.id);
    const chunk_trailer trailer{c.id, c.first_index, c.count};
    sends_.start(comm_, worker_ranks_[static_cast<std::size_t>(w)], tag::chunk,
                 append_trailer(std::move(c.payload), trailer));
  }

  std::optional<event> wait(double timeout_seconds) override {
    std::optional<incoming> received;
    const auto arrived = [&] {
      sends_.reap();
      received = mpi_transport::receive_if_arrived(comm_, MPI_ANY_SOURCE);
      return received.has_value();
    };
    // While no chunk can finish soon the root sleeps: its pauses grow to a twentieth of a chunk's
    // compute time (from 1 to 50 ms), a delay the chunks prefetched by every worker hide. A send in
    // progress (a chunk past the eager limit) keeps them at 1 ms, as its transfer needs the root.
    const bool sending = !sends_.reap();
    const double chunk_pause = sending ? 0.0 : typical_chunk_seconds_ / 20;
    const auto longest_pause = std::chrono::microseconds(std::clamp<std::int64_t>(
        std::llround(chunk_pause * 1e6), mpi_transport::default_longest_pause.count(), max_root_pause.count()));
    if (!poller_.poll(arrived, deadline_after(timeout_seconds), longest_pause)) {
      return std::nullopt;
    }
    poller_.restart();
    const int worker = worker_of_rank_.at(static_cast<std::size_t>(received->source));
    if (worker < 0 ||
        (received->kind != tag::result && received->kind != tag::failed && received->kind != tag::setup_failed)) {
      throw error(exit_code::internal, "rank " + std::to_string(received->source) + " sent tag " +
                                           tag_number(received->kind) + " to the root while it dispatched");
    }
    std::deque<std::uint64_t>& held = held_[static_cast<std::size_t>(worker)];
    if (received->kind == tag::setup_failed) {
      lost_[static_cast<std::size_t>(worker)] = true;
      held.clear();
      return setup_failed{worker, "rank " + std::to_string(received->source) + ": " + received->bytes};
    }
    if (received->kind == tag::failed) {
      lost_[static_cast<std::size_t>(worker)] = true;
      worker_lost lost{worker, {held.begin(), held.end()},
                       "rank " + std::to_string(received->source) + ": " + received->bytes};
      held.clear();
      return lost;
    }
    const auto trailer = remove_trailer<result_trailer>(received->bytes);
    // A worker runs its chunks in the order sent, so the oldest held chunk is the one answered.
    if (!held.empty() && held.front() == trailer.id) {
      held.pop_front();
    } else {
      std::erase(held, trailer.id);
    }
    typical_chunk_seconds_ = typical_chunk_seconds_ == 0.0 ? trailer.compute_seconds
                                                           : 0.8 * typical_chunk_seconds_ + 0.2 * trailer.compute_seconds;
    return chunk_result{trailer.id, worker, std::move(received->bytes), trailer.compute_seconds};
  }

  [[nodiscard]] bool alive(int w) const override { return !told_to_stop_ && !lost_.at(static_cast<std::size_t>(w)); }

  /// Tells every non-root rank to stop after the chunk it runs, without waiting: stop() collects their answers.
  void abandon() override {
    if (told_to_stop_) {
      return;
    }
    told_to_stop_ = true;
    for (int rank = root_rank + 1; rank < world_size_; ++rank) {
      sends_.start(comm_, rank, tag::stop, {});
    }
  }

  void stop() override {
    if (stopped_) {
      return;
    }
    abandon();
    stopped_ = true;
    // Each rank answers `stopped` after its last result, so once every rank has answered no message is
    // left in flight; results still coming are dropped, freeing their senders.
    int answers_due = world_size_ - 1;
    poll_politely([&] {
      while (answers_due > 0) {
        std::optional<incoming> received = mpi_transport::receive_if_arrived(comm_, MPI_ANY_SOURCE);
        if (!received) {
          break;
        }
        if (received->kind == tag::stopped) {
          --answers_due;
        } else if (received->kind != tag::result && received->kind != tag::failed &&
                   received->kind != tag::setup_failed) {
          throw error(exit_code::internal, "rank " + std::to_string(received->source) + " sent tag " +
                                               tag_number(received->kind) + " while stopping");
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
  pending_sends sends_;
  mpi_transport::polite_poller poller_;  // the back-off of wait(), kept across its calls
  double typical_chunk_seconds_ = 0.0;   // compute time of the chunks answered lately (a moving average)
  /// The ranks were told to stop (by abandon() or stop()).
  bool told_to_stop_ = false;
  /// Their answers were collected: no message is left in flight.
  bool stopped_ = false;
};

/// Waits politely for the root's next message, spinning first for `spin_for` and letting `results`
/// progress meanwhile, and returns it whole.
incoming receive_next(MPI_Comm comm, incoming& next, pending_sends& results, std::chrono::microseconds spin_for) {
  if (!next.started) {
    poll_politely(
        [&] {
          results.reap();
          return mpi_transport::start_receive_if_arrived(comm, root_rank, next);
        },
        spin_for);
  }
  mpi_transport::finish_receive(next);
  return std::exchange(next, incoming{});
}

/// Returns true when the root has already said stop, behind the chunks this rank still holds.
bool stop_waiting(MPI_Comm comm, const incoming& next) {
  return (next.started && next.kind == tag::stop) || mpi_transport::has_arrived(comm, root_rank, tag::stop);
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
  return std::make_unique<mpi_backend>(mpi_transport::communicator_of(s), s.size(), std::move(worker_ranks));
}

std::size_t serve_chunks(session& s, const chunk_task& task, int worker, const worker_setup& setup) {
  require_mpi(s, "serve_chunks");
  if (s.is_root()) {
    throw error(exit_code::internal, "serve_chunks runs on the other ranks; the root makes the MPI backend");
  }
  const MPI_Comm comm = mpi_transport::communicator_of(s);
  pending_sends results;
  incoming next;
  std::size_t ran = 0;
  bool abandoning = false;
  if (worker >= 0) {
    detail::set_process_worker(worker);
    if (std::optional<std::string> failure = detail::try_worker_setup(setup)) {
      // Like a task that threw: the root hears of it once, and this rank serves, idle, until stop.
      results.start(comm, root_rank, tag::setup_failed, std::move(*failure));
      abandoning = true;
    }
  }
  // The root answers each result with the next chunk at once, so after a result the reply is on its
  // way: waiting for it by sleeping would add the sleep's latency to every chunk that is not prefetched.
  for (incoming current = receive_next(comm, next, results, mpi_transport::brief_spin); current.kind != tag::stop;
       current = receive_next(comm, next, results, mpi_transport::transfer_spin)) {
    // Start on the next chunk now if it is here, so that a large one moves before this one runs.
    mpi_transport::start_receive_if_arrived(comm, root_rank, next);
    abandoning = abandoning || stop_waiting(comm, next);
    if (abandoning) {
      continue;
    }
    const auto trailer = remove_trailer<chunk_trailer>(current.bytes);
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
    results.start(comm, root_rank, tag::result,
                  append_trailer(std::move(*result), result_trailer{trailer.id, compute_seconds}));
    ++ran;
  }
  results.start(comm, root_rank, tag::stopped, {});
  results.finish();
  detail::set_process_worker(0);  // user code between pool calls runs in no worker
  return ran;
}

void agree_on_call(session& s, const std::string& key, const std::string& refusal) {
  if (!s.mpi() || s.size() == 1) {
    return;
  }
  const std::vector<std::string> keys = mpi_transport::gather_text(key, mpi_transport::communicator_of(s));
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
  // One broadcast carries the verdict: the calls differ (usage), the root refuses its data (input), or go.
  constexpr std::string_view usage = "usage:";
  constexpr std::string_view input = "input:";
  std::string verdict = !complaint.empty() ? std::string(usage) + complaint
                        : !refusal.empty() ? std::string(input) + refusal
                                           : std::string();
  verdict = s.broadcast(verdict);
  if (verdict.starts_with(usage)) throw error(exit_code::usage, verdict.substr(usage.size()));
  if (verdict.starts_with(input)) throw input_error(verdict.substr(input.size()));
}

}  // namespace amorsize::engine
