#pragma once
/// The engine's public face: a pool with map, imap, imap_unordered and process_in_batches that runs
/// on worker ranks under mpirun/srun and on local processes or threads without a launcher.

#include <amorsize/engine/backend.hpp>
#include <amorsize/engine/dispatcher.hpp>
#include <amorsize/item_result.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/plan.hpp>
#include <amorsize/source.hpp>
#include <amorsize/stop.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace amorsize {

/// What happens after an item fails.
enum class error_policy {
  keep_going,  ///< Record the error and run every other item (default).
  stop,        ///< Run nothing new after the first error; items not run get a "not run" error record.
};

/// One chunk's trip through a worker, for a trace: which worker ran which items, and when.
struct chunk_span {
  std::uint64_t id = 0;          ///< The chunk's number in this run (a serial run: the item's index).
  int worker = 0;                ///< The worker that ran it: current_worker() in its items.
  int rank = -1;                 ///< MPI rank of that worker; -1 without a launcher.
  std::string host;              ///< Node name of the worker where the session knows it, else empty.
  std::size_t first_index = 0;   ///< Source position of its first item.
  std::size_t count = 0;         ///< Items in it.
  double sent = 0.0;             ///< monotonic_seconds() on the root when the chunk was sent.
  double received = 0.0;         ///< monotonic_seconds() on the root when its result came back.
  double compute_seconds = 0.0;  ///< Seconds the worker spent running its items.
};

/// How a pool runs; unset values come from the plan the pool was made with.
struct pool_options {
  std::optional<backend_kind> backend;      ///< serial, processes, threads or mpi (under a launcher: mpi).
  std::vector<int> workers_per_node;        ///< Workers on each node (locally: one entry).
  chunk_schedule schedule;                  ///< Chunk sizes: kind, sizes, adaptive or fixed, target seconds.
  bool use_ordered = true;                  ///< Order of the calls that do not say (stream): input order, or as completed.
  std::size_t buffer_size = 0;              ///< Items dispatched but not handed over, at most (0: decide).
  bool force_workers = false;               ///< Run the workers asked for even beyond max_workers_per_core per usable core (a plan's counts are final).
  error_policy on_error = error_policy::keep_going; ///< Go on after a failed item, or stop.
  /// A serial run of an optimization result that the model made serial re-plans from the items it
  /// ran when they take longer than sampled, and runs the rest on workers when they now pay
  /// (run_stats::replans says when and why); under MPI the other ranks wait for that, idle, until the
  /// root's run ends. pool(plan) sets it for a serial plan.
  bool may_go_parallel = false;
  bool verbose = false;                     ///< Say which backend and workers run, and which ranks sit out.
  std::ostream* log = &std::cerr;           ///< Where verbose output and warnings (a changed backend, capped workers) go; null: nowhere.
  /// Runs once in each worker before its first item (each process, replacements included; each
  /// thread; each worker rank; the calling thread of a serial run); empty: none. If it throws, the
  /// call throws setup_error. pool(plan) sets none: set it on a copy of `pool(plan).options()`.
  std::function<void()> worker_setup;
  /// Called on the root, in the thread that takes the records, once per chunk whose result came back
  /// (a serial run: once per item), with its span; empty: nothing is recorded.
  std::function<void(const chunk_span&)> on_chunk;
  /// When set and triggered, the call stops: it dispatches nothing new, hands over what finishes
  /// in the drain's grace and ends; items not finished get no record (see stop_request).
  stop_request* stop = nullptr;
  /// Seconds an item may run in a worker process before its worker is killed and replaced and the
  /// item gets an error record, 0 for no limit; threads, worker ranks and a serial run cannot stop
  /// an item, so there the run has no limit and says so in `log`.
  double item_timeout = 0.0;
  /// A file that makes calls over plain data resumable (empty: none): a call hands over the records
  /// the file holds of items an earlier call finished (not run again) and runs only the other
  /// items, appending their records as it hands them over. Items are recognised by position and
  /// content (see README, "Resuming a call: the journal").
  std::string journal;
};

/// Throws input_error, naming the value and what to do, for options no run can use: a negative
/// worker count, workers given but none positive, a chunk size that looks like a negative number, or
/// an item timeout that is negative or not a number.
void validate(const pool_options& options);

/// Throws input_error for a chunk size over 2^31, most likely a negative number converted to std::size_t.
void validate_chunksize(std::size_t chunksize);

/// What the last call of a pool did, for reports.
struct run_stats {
  backend_kind backend = backend_kind::serial; ///< Where it ran.
  int workers = 0;                          ///< Workers that ran chunks.
  std::size_t items = 0;                    ///< Records handed over (sampled and journaled ones included).
  std::size_t journaled = 0;                ///< Records handed over from the journal, not computed again.
  std::size_t errors = 0;                   ///< Records that are errors.
  std::size_t chunks = 0;                   ///< Chunks sent (retries included).
  std::size_t lost_workers = 0;             ///< Worker processes that died.
  std::size_t peak_outstanding = 0;         ///< Most items in flight or waiting at once.
  double compute_seconds = 0.0;             ///< Time spent in the function, summed over items.
  double root_cpu_seconds = 0.0;            ///< CPU time the root spent dispatching and gathering.
  double wall_seconds = 0.0;                ///< From the call to the last record.
  bool stopped = false;                     ///< A stop_request ended the call before its source did.
  std::vector<replan> replans;              ///< Changes the dispatcher made to the chunk schedule, and why.
  double predicted_seconds = 0.0;           ///< The dispatcher's last live prediction of its run time (0: none).
};

namespace detail {

/// What one pool call asks for, beside the pool's options.
struct call_request {
  std::function<std::string()> agreement_key;  ///< Names the call for the agreement under MPI (empty: agreed already).
  std::size_t chunksize = 0;                   ///< The call's fixed chunk size (0: the pool's schedule).
  std::optional<bool> ordered;                 ///< Input order or as completed (nullopt: the pool's use_ordered).
  std::size_t buffer_size = 0;                 ///< The call's window in items (0: the pool's).
  bool planned_data = false;                   ///< The data is an optimization result: a serial run of it may go parallel.
};

/// Where a run's workers are, to describe their chunks as spans.
struct worker_places {
  std::vector<int> ranks;          ///< MPI rank of each worker, -1 without a launcher.
  std::vector<std::string> hosts;  ///< Node name of each worker, empty where unknown.
};

/// Describes chunk `done`, run by a worker at `places`, as a span.
chunk_span span_of(const worker_places& places, const engine::finished_chunk& done);

/// One call's run, decided once: where it runs, its started workers and how the dispatcher feeds them.
struct resolved_run {
  backend_kind backend = backend_kind::serial; ///< Where the items run.
  bool hands_records = true;                   ///< False on a non-root rank: it served the root's chunks and gets no records.
  std::unique_ptr<engine::backend> workers;    ///< The started workers; null runs serially in the calling thread.
  engine::dispatch_options dispatch;           ///< Chunk policy, window and order.
  worker_places places;                        ///< Where the workers are (a serial run: worker 0, the calling thread).
  /// The root's serial run under MPI that may go parallel: every other rank, serving idle until the
  /// rest of the run is handed to it (its stop() releases them); null otherwise.
  std::unique_ptr<engine::backend> standby;
};

/// Resolves the pool's options, the call and the session into one run and starts its workers with
/// `task` (each first runs options.worker_setup; a serial run runs it here): under MPI it first
/// agrees on the call on every rank, and a non-root rank serves the root's chunks until it is told
/// to stop; without a launcher a process that already runs threads gets threads (forking it is
/// unsafe) and local workers are capped unless forced; both say so in options.log. Throws
/// setup_error when the setup of a serial run throws, and input_error on every rank when the root's
/// `refusal` of the call's data is not empty (see agree_on_call).
resolved_run start_run(const pool_options& options, const call_request& call, const engine::chunk_task& task,
                       const std::string& refusal = {});

/// The run of the rest of a serial run on its standby ranks (resolved_run::standby), as `options`
/// (the rest's plan) and `call` say.
resolved_run run_on_standby(const pool_options& options, const call_request& call,
                            std::unique_ptr<engine::backend> standby);

/// Under MPI, checks on every rank that all make the same call (`key` names it); then throws
/// input_error on every rank when the root's `refusal` is not empty (without MPI, here).
void agree_on_call(const std::function<std::string()>& key, const std::string& refusal = {});

/// True where records are handed over: the root under MPI, the only process without a launcher.
bool hands_records();

/// A serial run's new plan for its rest, and the change as its run_stats report it.
struct went_parallel_plan {
  plan rest;    ///< How the rest runs: workers, chunks, the prediction.
  replan why;   ///< When, from how many workers to how many, and why.
};

/// Re-plans a serial run that the model planned from `model`, `at_seconds` into it, after `items_run`
/// items whose last ones took `mean_seconds` each (the engine's record included), with `items_left`
/// to go (nullopt: unknown); returns the parallel plan when the items take clearly longer than
/// sampled and workers now pay, nullopt when the run should stay serial.
std::optional<went_parallel_plan> plan_going_parallel(const model_inputs& model, double mean_seconds,
                                                      std::size_t items_run, std::optional<std::size_t> items_left,
                                                      double at_seconds);

/// One pull-based run; the typed implementations live in detail/pool.hpp.
template <class R>
class stream_state {
 public:
  virtual ~stream_state() = default;
  /// Returns the next record, or nullopt at the end.
  virtual std::optional<item_result<R>> next() = 0;
  /// Returns the counters so far.
  virtual run_stats stats() const = 0;
  /// Returns how many records have come back and wait to be taken.
  virtual std::size_t buffered() const { return 0; }
  /// Stops the run as error_policy::stop does after item `index` failed.
  virtual void stop_after_failure(std::size_t index) { (void)index; }
};

}  // namespace detail

/// The records of one imap/imap_unordered call, pulled as the caller iterates (an input range).
///
/// Leaving the loop early is fine: destroying the stream stops the workers. Under MPI only the
/// root's stream holds records; the other ranks' calls return an empty stream after serving.
template <class R>
class result_stream {
 public:
  /// Iterates the records; each dereference is the current record.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = item_result<R>;
    using difference_type = std::ptrdiff_t;
    using pointer = const item_result<R>*;
    using reference = const item_result<R>&;

    iterator() = default;
    explicit iterator(result_stream* owner) : owner_(owner) { advance(); }
    reference operator*() const { return *owner_->current_; }
    pointer operator->() const { return &*owner_->current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& a, const iterator& b) { return a.owner_ == b.owner_; }

   private:
    void advance() {
      if (owner_ && !(owner_->current_ = owner_->next())) owner_ = nullptr;
    }
    result_stream* owner_ = nullptr;
  };

  /// Wraps a run (null: an empty stream).
  explicit result_stream(std::unique_ptr<detail::stream_state<R>> state) : state_(std::move(state)) {}

  /// Starts iterating; call once.
  iterator begin() { return iterator(this); }
  /// The end of the records.
  iterator end() { return iterator(); }
  /// Returns the next record, or nullopt at the end.
  std::optional<item_result<R>> next() { return state_ ? state_->next() : std::nullopt; }
  /// Returns the counters so far.
  [[nodiscard]] run_stats stats() const { return state_ ? state_->stats() : run_stats{}; }
  /// Returns how many records have come back and wait to be taken: 0 when the record just taken
  /// ends its chunk (a caller that writes records can flush then).
  [[nodiscard]] std::size_t buffered() const { return state_ ? state_->buffered() : 0; }
  /// Stops the run as error_policy::stop does after an item that threw, for a failure the caller
  /// finds in a result (a command's non-zero exit code): no item starts from now on, and those never
  /// started get "not run" records that name `index` (the result's index, or the caller's own number
  /// for that item) as the failed one.
  void stop_after_failure(std::size_t index) {
    if (state_) state_->stop_after_failure(index);
  }

 private:
  std::unique_ptr<detail::stream_state<R>> state_;
  std::optional<item_result<R>> current_;
};

/// Runs a function over items on workers: MPI ranks under a launcher, else local processes or threads.
///
/// Under MPI every rank makes the same pool calls in the same order with the same function;
/// only the root's data is read and only the root gets records (see README, "Under MPI").
class pool {
 public:
  /// A pool that follows `p`: its backend, workers per node, schedule, order and window.
  explicit pool(const plan& p);
  /// A pool with `workers` local workers (or worker ranks per node under MPI) and automatic chunks; workers >= 1.
  explicit pool(int workers);
  /// A pool configured field by field; throws input_error for options no run can use (see validate).
  explicit pool(pool_options options) : options_(std::move(options)) { validate(options_); }

  /// Runs `fn` on every item and returns every record, in input order (memory: all of them).
  template <class Fn, class Data>
  auto map(Fn&& fn, Data&& data, std::size_t chunksize = 0);

  /// Runs `fn` on every item; records come in input order as the caller iterates.
  template <class Fn, class Data>
  auto imap(Fn&& fn, Data&& data, std::size_t chunksize = 0);

  /// Runs `fn` on every item; records come as they complete.
  template <class Fn, class Data>
  auto imap_unordered(Fn&& fn, Data&& data, std::size_t chunksize = 0);

  /// Runs `fn` on every item; records come in the pool's order: the plan's `use_ordered`, or the options'.
  template <class Fn, class Data>
  auto stream(Fn&& fn, Data&& data, std::size_t chunksize = 0);

  /// Runs `fn` batch after batch of `batch_size` items (0: estimate_safe_batch_size), calling
  /// `on_batch(std::vector<item_result<R>>&&)` with each batch in input order; memory: one batch.
  template <class Fn, class Data, class OnBatch>
  void process_in_batches(Fn&& fn, Data&& data, OnBatch&& on_batch, std::size_t batch_size = 0);

  /// Returns the options the pool runs with.
  [[nodiscard]] const pool_options& options() const noexcept { return options_; }
  /// Returns the counters of the last map or process_in_batches call.
  [[nodiscard]] const run_stats& last_run() const noexcept { return last_run_; }

 private:
  /// Starts a run; under MPI it first agrees on the call named `method` (nullptr: the caller has).
  template <class Fn, class Data>
  auto start(Fn& fn, Data&& data, detail::call_request call);

  pool_options options_;
  run_stats last_run_;
};

}  // namespace amorsize

#include <amorsize/detail/pool.hpp>
