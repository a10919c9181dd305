// How amorsize's ranks talk over MPI: the session's communicator, polite waits, text collectives and
// point-to-point messages.
#include "mpi_transport.hpp"

#include <amorsize/error.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace amorsize::mpi_transport {
namespace {

/// The live session and its communicator: session.hpp keeps the session's state private, and at most
/// one session is alive, so communicator_of finds them here.
const session* live_owner = nullptr;
MPI_Comm live_comm = MPI_COMM_NULL;

/// Largest piece of a broadcast, below the int counts of MPI.
constexpr std::size_t max_piece_bytes = std::size_t{1} << 30;

std::string mpi_error_text(int code) {
  std::array<char, MPI_MAX_ERROR_STRING> text{};
  int length = 0;
  if (MPI_Error_string(code, text.data(), &length) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(code);
  }
  return {text.data(), static_cast<std::size_t>(length)};
}

}  // namespace

void check(int result, const char* call) {
  if (result != MPI_SUCCESS) {
    throw error(exit_code::mpi_failure, std::string(call) + " failed: " + mpi_error_text(result));
  }
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

owned_comm::~owned_comm() {
  if (comm_ != MPI_COMM_NULL && !mpi_finalized()) {
    MPI_Comm_free(&comm_);
  }
}

session_comm::session_comm(const session& owner) {
  if (live_owner != nullptr) {
    throw error(exit_code::internal, "a second session communicator was made while one is alive");
  }
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Comm_idup(MPI_COMM_WORLD, comm_.out(), &request), "MPI_Comm_idup");
  wait_politely(request);
  live_owner = &owner;
  live_comm = comm_.get();
}

session_comm::~session_comm() {
  live_owner = nullptr;
  live_comm = MPI_COMM_NULL;
}

MPI_Comm communicator_of(const session& s) {
  if (!s.mpi() || &s != live_owner || live_comm == MPI_COMM_NULL) {
    throw error(exit_code::internal, "the MPI engine was used with a session that is not the live MPI session");
  }
  return live_comm;
}

void wait_politely(std::span<MPI_Request> requests, std::chrono::microseconds spin_for, MPI_Status* statuses) {
  poll_politely(
      [&] {
        int done = 0;
        check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, statuses), "MPI_Testall");
        return done != 0;
      },
      spin_for);
}

void wait_politely(MPI_Request& request, std::chrono::microseconds spin_for, MPI_Status* status) {
  wait_politely(std::span<MPI_Request>(&request, 1), spin_for, status);
}

void barrier_politely(MPI_Comm comm) {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier");
  wait_politely(request);
}

std::string broadcast_text(const std::string& text, MPI_Comm comm) {
  int rank = 0;
  check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  const bool is_root = rank == root_rank;
  std::uint64_t length = is_root ? text.size() : 0;
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  check(MPI_Ibcast(&length, 1, MPI_UINT64_T, root_rank, comm, requests.data()), "MPI_Ibcast");
  if (!is_root) {
    // The payload's buffer needs its size; the root sends both at once. This wait may be long.
    wait_politely(requests);
    requests.clear();
  }
  std::string result = is_root ? text : std::string(static_cast<std::size_t>(length), '\0');
  for (std::size_t offset = 0; offset < result.size(); offset += max_piece_bytes) {
    const auto piece = static_cast<int>(std::min(max_piece_bytes, result.size() - offset));
    requests.push_back(MPI_REQUEST_NULL);
    check(MPI_Ibcast(result.data() + offset, piece, MPI_CHAR, root_rank, comm, &requests.back()), "MPI_Ibcast");
  }
  // Each piece moves only while its ranks test: a sleeping rank would stall the pipeline.
  wait_politely(requests, transfer_spin);
  return result;
}

std::vector<std::string> gather_text(const std::string& text, MPI_Comm comm) {
  int rank = 0;
  int size = 0;
  check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  const int length = static_cast<int>(text.size());
  std::vector<int> lengths(rank == root_rank ? static_cast<std::size_t>(size) : 0);
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Igather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, root_rank, comm, &request), "MPI_Igather");
  wait_politely(request);

  std::vector<int> offsets(lengths.size());
  std::string joined;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    offsets[i] = static_cast<int>(joined.size());
    joined.resize(joined.size() + static_cast<std::size_t>(lengths[i]));
  }
  check(MPI_Igatherv(text.data(), length, MPI_CHAR, joined.data(), lengths.data(), offsets.data(), MPI_CHAR,
                     root_rank, comm, &request),
        "MPI_Igatherv");
  wait_politely(request);

  std::vector<std::string> texts;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    texts.push_back(joined.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(lengths[i])));
  }
  return texts;
}

void send_politely(MPI_Comm comm, int peer, tag kind, std::span<const char> bytes,
                   std::chrono::microseconds spin_for) {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, peer, static_cast<int>(kind), comm,
                  &request),
        "MPI_Isend");
  wait_politely(request, spin_for);
}

int receive_politely(MPI_Comm comm, int peer, tag kind, std::span<char> buffer, std::chrono::microseconds spin_for) {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Irecv(buffer.data(), static_cast<int>(buffer.size()), MPI_BYTE, peer, static_cast<int>(kind), comm,
                  &request),
        "MPI_Irecv");
  MPI_Status status;
  wait_politely(request, spin_for, &status);
  int bytes = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &bytes), "MPI_Get_count");
  return bytes;
}

bool start_receive_if_arrived(MPI_Comm comm, int source, incoming& next) {
  int found = 0;
  MPI_Message matched = MPI_MESSAGE_NULL;
  MPI_Status status;
  check(MPI_Improbe(source, MPI_ANY_TAG, comm, &found, &matched, &status), "MPI_Improbe");
  if (found == 0) {
    return false;
  }
  int bytes = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &bytes), "MPI_Get_count");
  next.started = true;
  next.source = status.MPI_SOURCE;
  next.kind = static_cast<tag>(status.MPI_TAG);
  next.bytes.assign(static_cast<std::size_t>(bytes), '\0');
  check(MPI_Imrecv(next.bytes.data(), bytes, MPI_BYTE, &matched, &next.request), "MPI_Imrecv");
  return true;
}

void finish_receive(incoming& next) { wait_politely(next.request, transfer_spin); }

std::optional<incoming> receive_if_arrived(MPI_Comm comm, int source) {
  std::optional<incoming> received(std::in_place);
  if (!start_receive_if_arrived(comm, source, *received)) {
    return std::nullopt;
  }
  finish_receive(*received);
  return received;
}

bool has_arrived(MPI_Comm comm, int source, tag kind) {
  int found = 0;
  check(MPI_Iprobe(source, static_cast<int>(kind), comm, &found, MPI_STATUS_IGNORE), "MPI_Iprobe");
  return found != 0;
}

pending_sends::~pending_sends() {
  for (std::unique_ptr<outgoing>& send : pending_) {
    if (send && send->request != MPI_REQUEST_NULL) {
      MPI_Request_free(&send->request);
      // MPI may still read the buffer: leaking it is the only safe choice.
      static_cast<void>(send.release());
    }
  }
}

void pending_sends::start(MPI_Comm comm, int destination, tag kind, std::string bytes) {
  pending_.push_back(std::make_unique<outgoing>(outgoing{std::move(bytes), MPI_REQUEST_NULL}));
  outgoing& send = *pending_.back();
  check(MPI_Isend(send.bytes.data(), static_cast<int>(send.bytes.size()), MPI_BYTE, destination,
                  static_cast<int>(kind), comm, &send.request),
        "MPI_Isend");
}

bool pending_sends::reap() {
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

void pending_sends::finish() {
  poll_politely([this] { return reap(); }, transfer_spin);
}

}  // namespace amorsize::mpi_transport
