#pragma once
/// The root's loop: cut the source into chunks, keep every worker fed, gather results in order or
/// as they complete, all within a bounded window of items.

#include <amorsize/engine/backend.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/schedule.hpp>
#include <amorsize/stop.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace amorsize::engine {

/// Items pulled from the source for one chunk, serialized.
struct made_chunk {
  std::string payload;         ///< The items, serialized by the typed layer.
  std::size_t count = 0;       ///< Items in the payload; fewer than asked means the source ended or threw.
  std::exception_ptr failure;  ///< What the source threw while read, if it did; the items read before it are in the payload.
};

/// What the typed layer does with serialized items, so the dispatcher stays byte-level.
struct chunk_codec {
  /// Pulls at most `max_items` items from the source and serializes them, catching what the source throws.
  std::function<made_chunk(std::size_t max_items)> make;
  /// Splits a chunk's payload into one payload per item (to find the item that kills workers).
  std::function<std::vector<std::string>(const std::string& payload)> split;
  /// Makes a result payload in which each of `count` items failed with `reason`.
  std::function<std::string(std::size_t count, const std::string& reason)> fail;
};

/// How the dispatcher runs; the plan gives every value.
struct dispatch_options {
  chunk_schedule schedule;                  ///< Chunk sizes: the whole policy, adaptive or fixed, and the target seconds.
  std::size_t buffer_size = 0;              ///< Items dispatched but not yet handed over, at most (0: twice the chunks workers hold, following the chunk size, bounded in bytes).
  bool ordered = true;                      ///< Hand chunks over in source order.
  std::optional<std::size_t> total_items;   ///< Items the source holds from `first_index` on (nullopt: unknown or endless).
  std::size_t first_index = 0;              ///< Source position of the first item (items before it were handled elsewhere).
  int chunks_per_worker = 2;                ///< Chunks a worker holds: one running, the rest prefetched.
  const stop_request* stop = nullptr;       ///< Checked between waits: a drain sends nothing more, an abandon drops what is in flight (null: none).
};

/// A chunk whose results are ready for the consumer.
struct finished_chunk {
  std::size_t first_index = 0;   ///< Source position of its first item.
  std::size_t count = 0;         ///< Items in it.
  std::string payload;           ///< Per-item records, serialized by the typed layer (or by codec.fail).
  double compute_seconds = 0.0;  ///< Seconds the worker spent on it.
  int worker = -1;               ///< The worker that ran it (-1 when it failed with its worker).
  std::uint64_t id = 0;          ///< The chunk's id (meaningful when a worker ran it).
  double sent = 0.0;             ///< monotonic_seconds() when the root sent it (0 when no worker ran it).
  double received = 0.0;         ///< monotonic_seconds() when its result reached the root (0 when no worker ran it).
};

/// Counters of a run, for reports and tests.
struct dispatch_stats {
  std::size_t chunks = 0;              ///< Chunks sent (retries included).
  std::size_t items = 0;               ///< Items handed over.
  std::size_t retried_chunks = 0;      ///< Chunks re-run item by item after their worker died.
  std::size_t lost_workers = 0;        ///< Worker deaths seen.
  std::size_t peak_outstanding = 0;    ///< Most items dispatched but not yet handed over at once.
  std::size_t smallest_chunk = 0;      ///< Smallest chunk sent.
  std::size_t largest_chunk = 0;       ///< Largest chunk sent.
  double compute_seconds = 0.0;        ///< Sum of the workers' compute time.
  double root_cpu_seconds = 0.0;       ///< CPU time the root's thread spent in the dispatcher.
  std::vector<replan> replans;         ///< Changes made to the chunk schedule during the run, in order.
  double eta_seconds = 0.0;            ///< Live prediction: seconds of run left, from the chunk times so far (0: none yet or unknown).
  double predicted_seconds = 0.0;      ///< Live prediction: seconds from the first chunk to the last result (0: none yet or unknown).
  double predicted_speedup = 0.0;      ///< Live prediction: item time of the whole run / predicted_seconds (0: none yet or unknown).
};

/// Feeds a backend from a source and hands finished chunks to the consumer, one at a time.
class dispatcher {
 public:
  /// Prepares a run of `codec`'s source on `workers`; nothing is sent before the first next().
  dispatcher(backend& workers, chunk_codec codec, dispatch_options options);

  /// Returns the next finished chunk (in source order when ordered), or nullopt once every item is handed over;
  /// rethrows what the source threw once every item read before it is handed over; throws setup_error
  /// when a worker's setup threw. After a stop request it returns nullopt once the chunks in flight
  /// are handed over (a drain) or at once (an abandon: the finished chunks, in source order but
  /// with gaps, then nullopt), and items not handed over get no record.
  std::optional<finished_chunk> next();

  /// Sends no further chunk; chunks in flight still finish and are handed over.
  void stop_dispatching() noexcept { draining_ = true; }

  /// Returns the counters so far.
  [[nodiscard]] const dispatch_stats& stats() const noexcept { return stats_; }

  /// Returns the index one past the last item taken from the source.
  [[nodiscard]] std::size_t next_index() const noexcept { return next_index_; }

  /// Returns true when a stop request ended the run with items not handed over, or the source not read to its end.
  [[nodiscard]] bool stopped() const noexcept { return stopped_; }

  /// Returns true when a stop request made the run drop the chunks in flight: the backend should abandon them too.
  [[nodiscard]] bool abandoned() const noexcept { return abandoned_; }

 private:
  struct in_flight {
    chunk sent;
    int worker = -1;
    bool single = false;  // a piece of a chunk split after its worker died
    double sent_at = 0.0;  // monotonic_seconds() when it was sent
  };

  void heed_stop_request();
  [[nodiscard]] bool work_left() const;
  void fill_workers();
  bool dispatch_one(int worker);
  made_chunk take(std::size_t max_items);
  void send(int worker, chunk c, bool single);
  void handle(event e);
  void adapt(const chunk_result& r, const chunk& sent);
  void follow_chunk_times(const chunk_result& r, const chunk& sent);
  void record_replan(schedule_kind old_kind, std::size_t old_size, std::string reason);
  void bound_chunk_size();
  [[nodiscard]] std::size_t byte_bounded_chunk() const;
  std::size_t next_chunk_size() const;
  [[nodiscard]] bool window_allows(std::size_t size) const;
  [[nodiscard]] int alive_workers() const;
  [[nodiscard]] std::size_t window() const;
  std::optional<finished_chunk> pop_ready();
  /// A chunk no worker finished: each of its `count` items failed with `reason`.
  [[nodiscard]] finished_chunk failed_chunk(std::size_t first_index, std::size_t count, const std::string& reason) const;

  backend& workers_;
  chunk_codec codec_;
  dispatch_options options_;
  std::vector<int> held_;                          // chunks each worker holds
  std::map<std::uint64_t, in_flight> flight_;      // by chunk id
  std::deque<in_flight> retry_;                    // chunks to run again: pieces of a split chunk, or never started
  std::map<std::size_t, finished_chunk> ready_;    // finished, by first index (reorder buffer)
  std::size_t next_index_ = 0;                     // next source position to take
  std::size_t next_to_hand_ = 0;                   // next source position the consumer gets (ordered)
  std::size_t outstanding_ = 0;                    // items taken from the source, not yet handed over
  std::uint64_t next_id_ = 0;
  double per_item_seconds_ = 0.0;                  // measured compute time per item (moving average)
  double started_at_ = 0.0;                        // monotonic_seconds() when the first chunk was sent
  std::size_t fresh_chunks_ = 0;                   // chunks taken from the source (retries not counted)
  std::size_t items_timed_ = 0;                    // items of the chunks that finished
  std::size_t chunks_timed_ = 0;                   // chunks that finished with a compute time
  std::size_t largest_back_ = 0;                   // most items in a chunk that came back
  double chunk_mean_ = 0.0;                        // mean of the chunks' per-item times (Welford)
  double chunk_squares_ = 0.0;                     // sum of squared deviations of the chunks' per-item times
  detail::line_fit fit_;                           // per-item time on source position, weighted by items
  double input_bytes_per_item_ = 0.0;              // serialized size of an item in the last chunk sent
  double result_bytes_per_item_ = 0.0;             // serialized size of a record in the last chunk finished
  bool window_follows_chunks_ = false;             // no window was asked for: it grows with the chunks
  bool source_done_ = false;
  std::exception_ptr source_failure_;              // what the source threw, rethrown after the items read before it
  bool draining_ = false;
  bool stop_requested_ = false;                    // a stop request was seen: dispatch nothing more, not even retries
  bool abandoned_ = false;                         // ... and its grace is over: chunks in flight are dropped
  bool stopped_ = false;
  dispatch_stats stats_;
};

}  // namespace amorsize::engine
