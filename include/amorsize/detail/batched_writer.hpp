#pragma once
// A file appended to a batch at a time: the records of amorsize-run and a pool call's journal.

#include <sys/types.h>

#include <string>
#include <string_view>

namespace amorsize::detail {

/// Gathers bytes and writes them with one checked write(2) per batch; a write cut short (a full
/// disk) is cut back, so a regular file always ends after a whole batch.
class batched_writer {
 public:
  batched_writer() = default;
  ~batched_writer();
  batched_writer(const batched_writer&) = delete;
  batched_writer& operator=(const batched_writer&) = delete;

  /// Writes to `fd` from its current offset; a descriptor above stderr is closed by close() or the destructor.
  void attach(int fd);
  /// Gathers `bytes` for the next flush.
  void add(std::string_view bytes) { pending_ += bytes; }
  /// Writes what was gathered; returns false (errno set) when the write failed.
  [[nodiscard]] bool flush();
  /// Flushes when bytes wait and `min_seconds` passed since the last flush (or 1 MiB waits); false when it failed.
  [[nodiscard]] bool flush_every(double min_seconds);
  /// Flushes, then closes the descriptor it owns; returns false (errno set) when either failed.
  [[nodiscard]] bool close();
  /// Returns the descriptor written to (-1: none).
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::string pending_;
  double last_flush_ = 0.0;
  off_t whole_bytes_ = -1;  // size of a regular file up to its last whole batch (-1: not a regular file)
};

}  // namespace amorsize::detail
