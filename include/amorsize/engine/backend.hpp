#pragma once
/// Where chunks run: the byte-level interface every backend (MPI ranks, processes, threads) implements.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace amorsize::engine {

/// Items of one chunk, serialized, with their place in the source.
struct chunk {
  std::uint64_t id = 0;         ///< Sequence number: chunks are numbered in source order from 0.
  std::size_t first_index = 0;  ///< Source position of the chunk's first item.
  std::size_t count = 0;        ///< Items in the chunk.
  std::string payload;          ///< The items, serialized by the typed layer.
};

/// A worker's answer for one chunk.
struct chunk_result {
  std::uint64_t id = 0;          ///< The chunk answered.
  int worker = -1;               ///< The worker that ran it.
  std::string payload;           ///< One record per item (a value or an error message), serialized by the typed layer.
  double compute_seconds = 0.0;  ///< Seconds the worker spent running the chunk's items.
};

/// A worker that died; the chunks it held did not finish.
struct worker_lost {
  int worker = -1;                    ///< The worker that died.
  std::vector<std::uint64_t> chunks;  ///< Ids of the chunks it held, oldest first.
  std::string reason;                 ///< Why, e.g. "killed by signal 11 (Segmentation fault)".
  bool timed_out = false;             ///< Its running item outlived the item timeout; `reason` says so in full.
};

/// A worker whose per-worker setup threw; it runs no chunk, and the run must stop.
struct setup_failed {
  int worker = -1;     ///< The worker whose setup threw.
  std::string reason;  ///< What the setup threw.
};

/// What a backend reports: a finished chunk, a dead worker or a worker whose setup threw.
using event = std::variant<chunk_result, worker_lost, setup_failed>;

/// Runs one chunk on a worker: serialized items in, serialized per-item records out.
///
/// It must encode an item's exception as that item's error record, never throw for it; it sets
/// `compute_seconds` to the time spent in the user's function.
using chunk_task = std::function<std::string(const std::string& items, double& compute_seconds)>;

/// Prepares a worker once, in the worker, before its first chunk (the user's per-worker setup);
/// empty: nothing to prepare. What it throws is reported as setup_failed.
using worker_setup = std::function<void()>;

/// A set of workers that run chunks; only the root talks to it.
class backend {
 public:
  virtual ~backend() = default;

  /// Returns the number of workers, numbered 0 .. workers() - 1.
  [[nodiscard]] virtual int workers() const = 0;

  /// Hands `c` to worker `w`; a worker may hold several chunks and runs them in the order sent.
  virtual void send(int w, chunk c) = 0;

  /// Returns the next event, waiting at most `timeout_seconds` without spinning a core; nullopt on time-out.
  virtual std::optional<event> wait(double timeout_seconds) = 0;

  /// Returns true when worker `w` can take chunks (a lost process worker is replaced; a lost rank is not).
  [[nodiscard]] virtual bool alive(int w) const = 0;

  /// Stops every worker and waits for it, abandoning chunks in flight; idempotent, also called on early exit.
  virtual void stop() = 0;

  /// Stops every worker without waiting for the chunks it runs, as far as the workers allow (worker
  /// processes are killed; threads and ranks finish their running chunk, which stop() waits for);
  /// stop() must still follow, and the default is stop().
  virtual void abandon() { stop(); }
};

}  // namespace amorsize::engine
