#pragma once
// The pool's template bodies: wire format, worker task, chunk codec and the streams (see pool.hpp).

#include <amorsize/detail/call_identity.hpp>
#include <amorsize/detail/journal.hpp>
#include <amorsize/detail/wire.hpp>
#include <amorsize/resume.hpp>
#include <amorsize/probe.hpp>
#include <amorsize/worker.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <utility>

namespace amorsize::detail {

/// A run's input: the source and the results already known for its first items (from sampling).
template <class T, class R>
struct run_input {
  source<T> data;                               ///< Every item; the first `known.size()` are skipped.
  std::vector<std::optional<R>> known;          ///< Results of the first items (nullopt where they failed).
  std::vector<item_error> known_errors;         ///< Why those failed.
  std::size_t first_index = 0;                  ///< Index of the source's first item (a run that goes on from another's items: past 0).
  std::shared_ptr<const model_inputs> model;    ///< What the model read when it planned serial (see optimization_result::model).
};

/// Starts workers for the rest of a serial run as `rest_plan` says (under MPI: the run's standby
/// ranks, `standby`); `rest` holds the items not run yet.
template <class T, class R>
using parallel_start = std::function<std::unique_ptr<stream_state<R>>(
    const plan& rest_plan, run_input<T, R> rest, std::unique_ptr<engine::backend> standby)>;

/// True for the result of optimize / optimize_streaming: its data and its sampled results.
template <class Data>
concept planned_result = requires(std::remove_cvref_t<Data>& d) {
  d.data;
  d.sampled_results;
};

/// Item type of anything a pool call accepts: an optimization result or data for make_source.
template <class Data>
struct pool_item {
  using type = typename decltype(make_source(std::declval<Data>()))::value_type;
};
template <planned_result Data>
struct pool_item<Data> {
  using type = typename decltype(std::declval<std::remove_cvref_t<Data>&>().data)::value_type;
};
template <class Data>
using pool_item_t = typename pool_item<Data>::type;

/// Returns the pool's options for plan `p`: its backend, workers, chunks, order and window; a serial
/// plan's run may go parallel when its items turn out dearer than sampled.
inline pool_options options_of_plan(const plan& p) {
  pool_options options;
  options.backend = p.backend;
  // A serial plan runs in the calling thread: the counts of the parallel plan it rejected (none at all
  // under a launcher with one rank) do not apply.
  if (!p.serial) options.workers_per_node = p.workers_per_node;
  options.schedule = p.schedule;
  options.use_ordered = p.use_ordered;
  options.buffer_size = p.mode == plan_mode::streaming ? p.buffer_size : 0;
  options.force_workers = true;  // the plan's counts are its decision
  options.may_go_parallel = p.serial;
  return options;
}

/// Returns the number of items `data` holds when it is known without reading them (nullopt otherwise).
template <class Data>
std::optional<std::size_t> item_count(const Data& data) {
  if constexpr (planned_result<Data>) {
    return data.data.size();
  } else if constexpr (std::ranges::sized_range<const Data>) {
    return static_cast<std::size_t>(std::ranges::size(data));
  } else {
    return std::nullopt;
  }
}

/// Returns why `data` cannot run (an optimization result run already), empty when it can; under MPI
/// only the root's data tells.
template <class Data>
std::string refusal_of(const Data& data) {
  if constexpr (planned_result<Data>) {
    // A fresh result's data starts with its sampled items; a run takes them, so a second run would
    // see only the sampled records.
    if (data.data.replayed() < data.sampled_results.size()) {
      return "this optimization result was already run: its data is consumed; call optimize or "
             "optimize_streaming again for another run";
    }
  }
  return {};
}

/// Makes the run input from a plan's result (refusal_of says whether it can run): its replayed data and its sampled results.
template <class R, planned_result Data>
auto make_run_input(const Data& result) {
  using sampled = typename decltype(result.sampled_results)::value_type::value_type;
  static_assert(std::is_same_v<R, sampled>, "the function's result type differs from the one the plan sampled");
  return run_input<pool_item_t<Data>, R>{result.data, result.sampled_results, result.sample_errors, 0, result.model};
}

/// Makes the run input from plain data: nothing known.
template <class R, class Data>
  requires(!planned_result<Data>)
auto make_run_input(Data&& data) {
  auto src = make_source(std::forward<Data>(data));
  return run_input<typename decltype(src)::value_type, R>{std::move(src), {}, {}, 0, nullptr};
}

/// Names pool call `method` of `fn` over `data`'s items for the agreement under MPI.
template <class Fn, class Data>
std::function<std::string()> agreement_key(const char* method, const Fn& fn, const Data& /*data*/) {
  return [method, &fn] { return call_name<std::decay_t<Fn>, pool_item_t<Data>>(method, fn, next_call_number()); };
}

/// Runs `fn` on `item`, turning an exception into the item's error record.
template <class R, class Fn, class T>
item_result<R> run_one(Fn& fn, const T& item, std::size_t index) {
  try {
    return item_result<R>::success(index, std::invoke(fn, item));
  } catch (...) {
    return item_result<R>::failure(index, current_exception_message());
  }
}

/// Runs `fn` on items `first` .. `items.size()` - 1 in order, writing each result or error to
/// `records`; returns the number of items run. With `stop_after_error`, it stops after the first item
/// that fails. A worker process's item timeout, when set, is armed per item (item_timer).
template <class R, class Fn, class Items>
std::size_t run_items(Fn& fn, const Items& items, record_writer<R>& records, bool stop_after_error = false) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const item_timer timer;
    try {
      records.success(std::invoke(fn, items[i]));
    } catch (...) {
      records.failure(current_exception_message());
      if (stop_after_error) return i + 1;
    }
  }
  return items.size();
}

/// The worker side of a chunk: items in, one record per item out; it shares the function it runs.
/// The clock is read once per chunk, not per item.
template <class T, class R, class Fn>
engine::chunk_task make_task(std::shared_ptr<Fn> fn) {
  return [fn](const std::string& payload, double& compute_seconds) {
    const item_reader<T> items(payload);
    record_writer<R> records(items.size());
    const double start = monotonic_seconds();
    run_items(*fn, items, records);
    compute_seconds = monotonic_seconds() - start;
    return std::move(records).payload();
  };
}

/// The root side of a chunk: pull and serialize items, split a chunk, fail a chunk (detail/wire.hpp).
template <class T, class R>
engine::chunk_codec make_codec(source<T>& src) {
  engine::chunk_codec codec;
  codec.make = [&src](std::size_t max_items) {
    // Room for a chunk of items up to 1 MiB, at first; a larger chunk grows as it fills.
    item_writer<T> items(std::min<std::size_t>(max_items, (std::size_t{1} << 20) / sizeof(T) + 1));
    std::exception_ptr failure;
    try {
      while (items.size() < max_items) {
        std::optional<T> item = src.next();
        if (!item) break;
        items.add(std::move(*item));
      }
    } catch (...) {
      failure = std::current_exception();  // the items read before it still run
    }
    const std::size_t count = items.size();
    return engine::made_chunk{std::move(items).payload(), count, failure};
  };
  codec.split = [](const std::string& payload) { return split_items<T>(payload); };
  codec.fail = [](std::size_t count, const std::string& reason) { return encode_failed_records<R>(count, reason); };
  return codec;
}

/// What every stream shares: known results first, the error policy, the counters.
template <class T, class R>
class stream_base : public stream_state<R> {
 public:
  stream_base(run_input<T, R> input, const pool_options& options)
      : input_(std::move(input)), options_(options), start_(monotonic_seconds()) {
    total_ = input_.data.size();
    // The source replays the sampled items first: skip them, their results are known.
    for (std::size_t i = 0; i < input_.known.size(); ++i) input_.data.next();
    if (total_) *total_ -= std::min(*total_, input_.known.size());
  }

  std::optional<item_result<R>> next() final {
    std::optional<item_result<R>> record = next_record();
    if (record) {
      ++stats_.items;
      if (!record->ok()) {
        ++stats_.errors;
        if (options_.on_error == error_policy::stop) stop_after_failure(record->index());
      }
    }
    // The clock is read once per chunk (when its last record is taken) and at the end, not per record.
    if (!record || this->buffered() == 0) stats_.wall_seconds = monotonic_seconds() - start_;
    return record;
  }

  run_stats stats() const override { return stats_; }

  void stop_after_failure(std::size_t index) final {
    if (stopping_) return;
    stopping_ = true;
    stop_index_ = index;
    on_stop(index);
  }

 protected:
  /// Returns the next record of the run proper (known results are handled here).
  virtual std::optional<item_result<R>> next_computed() = 0;
  /// Called once when the stop policy sees the first error (item `index`): stop starting new items.
  virtual void on_stop(std::size_t /*index*/) {}
  /// Index one past the last item the run took from the source.
  virtual std::size_t taken() const = 0;

  /// Index of the first item this run computes (the known ones come before it).
  [[nodiscard]] std::size_t first_computed() const { return input_.first_index + input_.known.size(); }

  /// True once the pool's stop request, if any, was triggered.
  [[nodiscard]] bool stop_requested() const { return options_.stop && options_.stop->requested(); }

  run_input<T, R> input_;
  pool_options options_;
  run_stats stats_;
  std::optional<std::size_t> total_;  // items after the known ones (nullopt: unknown or endless)
  bool stopping_ = false;

 private:
  std::optional<item_result<R>> next_record() {
    if (known_next_ < input_.known.size()) {
      const std::size_t i = known_next_++;
      const std::size_t index = input_.first_index + i;
      if (input_.known[i]) return item_result<R>::success(index, *input_.known[i]);
      std::string message = "failed while sampled";
      for (const auto& e : input_.known_errors) {
        if (e.index == i) message = e.message;
      }
      return item_result<R>::failure(index, message);
    }
    if (auto record = next_computed()) return record;
    // After a stop on error, the items never started still get a record each, when their number is
    // known; after a stop request they get none: a later run resumes them.
    if (stopping_ && !stop_requested() && total_ && taken() + not_run_ < first_computed() + *total_) {
      const std::size_t index = taken() + not_run_++;
      return item_result<R>::failure(index, "not run: stopped after item " + std::to_string(stop_index_) + " failed");
    }
    return std::nullopt;
  }

  double start_;
  std::size_t known_next_ = 0;
  std::size_t not_run_ = 0;
  std::size_t stop_index_ = 0;
};

/// Runs every item in the calling thread (worker 0 at `places`), in batches that grow while they
/// take under serial_batch_seconds, so that the clock is read once per batch, not per item. With an
/// on_chunk callback every item is its own batch and its own span; with a journal every item is its
/// own batch too, computed as it is taken, so that a caller who leaves early leaves no item computed
/// and not journaled (it would run again on resume). Given `go_parallel` and the model's inputs, it
/// re-plans from the items it ran, now and then, and hands the rest to workers when they now pay.
/// Under MPI those are its `standby` ranks, released when the run ends serially.
template <class T, class R, class Fn>
class serial_stream final : public stream_base<T, R> {
 public:
  serial_stream(Fn fn, run_input<T, R> input, const pool_options& options, worker_places places,
                parallel_start<T, R> go_parallel = {}, std::unique_ptr<engine::backend> standby = nullptr)
      : stream_base<T, R>(std::move(input), options), fn_(std::move(fn)), index_(this->first_computed()),
        places_(std::move(places)), go_parallel_(this->input_.model ? std::move(go_parallel) : nullptr),
        standby_(std::move(standby)), start_(monotonic_seconds()) {
    this->stats_.backend = backend_kind::serial;
    this->stats_.workers = 1;
  }

  run_stats stats() const override {
    if (!parallel_) return this->stats_;
    // The serial part's counts and the switch, then the workers' run.
    run_stats out = this->stats_;
    const run_stats rest = parallel_->stats();
    out.backend = rest.backend;
    out.workers = rest.workers;
    out.chunks = rest.chunks;
    out.lost_workers = rest.lost_workers;
    out.peak_outstanding = rest.peak_outstanding;
    out.compute_seconds += rest.compute_seconds;
    out.root_cpu_seconds = rest.root_cpu_seconds;
    out.stopped = rest.stopped;
    out.replans.insert(out.replans.end(), rest.replans.begin(), rest.replans.end());
    out.predicted_seconds = rest.predicted_seconds > 0.0 ? switched_at_ + rest.predicted_seconds : 0.0;
    return out;
  }

 private:
  static constexpr double serial_batch_seconds = 1e-3;
  static constexpr std::size_t max_batch = 4096;

  std::optional<item_result<R>> next_computed() override {
    if (parallel_) return parallel_->next();
    if (done_ == batch_.size()) {
      if (failure_) end_and_rethrow();  // after the records before it
      if (this->stopping_) return finished();
      if (this->stop_requested()) {
        this->stats_.stopped = !this->total_ || index_ < this->first_computed() + *this->total_;
        return finished();
      }
      if (go_parallel_ && went_parallel()) return parallel_->next();
      run_batch();
      if (done_ == batch_.size()) {
        if (failure_) end_and_rethrow();
        return finished();
      }
    }
    return std::move(batch_[done_++]);
  }

  /// Ends the serial run for good: it goes parallel no more, and the ranks that waited for its rest
  /// (under MPI) are released, once.
  std::nullopt_t finished() {
    go_parallel_ = nullptr;
    standby_.reset();
    return std::nullopt;
  }

  /// Ends the serial run and throws what the source threw.
  [[noreturn]] void end_and_rethrow() {
    finished();
    std::rethrow_exception(std::exchange(failure_, nullptr));
  }

  /// Re-plans from the items run since the last look (once their time is a tenth of the run's so far)
  /// and, when the plan is now parallel, starts the workers on the rest; returns whether it did.
  bool went_parallel() {
    const double computed = this->stats_.compute_seconds;
    const std::size_t run = index_ - this->first_computed();
    if (computed - looked_seconds_ < std::max(first_look_seconds, 0.1 * computed) || run == looked_items_) return false;
    const double mean = (computed - looked_seconds_) / static_cast<double>(run - looked_items_);
    looked_seconds_ = computed;
    looked_items_ = run;
    const std::optional<std::size_t> left =
        this->total_ ? std::optional<std::size_t>(this->first_computed() + *this->total_ - index_) : std::nullopt;
    const double now = monotonic_seconds() - start_;
    std::optional<went_parallel_plan> change = plan_going_parallel(*this->input_.model, mean, run, left, now);
    if (!change) return false;
    try {
      parallel_ =
          go_parallel_(change->rest, run_input<T, R>{this->input_.data, {}, {}, index_, nullptr}, std::move(standby_));
    } catch (const std::exception& e) {
      go_parallel_ = nullptr;  // the serial run goes on
      if (this->options_.log) {
        *this->options_.log << "amorsize: warning: the workers for the rest of the run did not start (" << e.what()
                            << "); it goes on serially\n";
      }
      return false;
    }
    change->why.new_workers = parallel_->stats().workers;  // under MPI: every standby rank, whatever the plan's count
    if (this->options_.verbose && this->options_.log) *this->options_.log << "amorsize: " << change->why.reason << '\n';
    this->stats_.replans.push_back(std::move(change->why));
    switched_at_ = now;
    end_ = this->total_ ? this->first_computed() + *this->total_ : index_;
    return true;
  }

  /// Runs the next batch of items; an exception from the source ends it and is thrown once its records are taken.
  void run_batch() {
    batch_.clear();
    done_ = 0;
    const bool per_item = static_cast<bool>(this->options_.on_chunk);
    const bool stop_after_error = this->options_.on_error == error_policy::stop;
    const std::size_t limit = per_item || !this->options_.journal.empty() ? 1 : batch_limit_;
    const double start = per_item ? 0.0 : monotonic_seconds();
    while (batch_.size() < limit) {
      std::optional<T> item;
      try {
        item = this->input_.data.next();
      } catch (...) {
        failure_ = std::current_exception();
        break;
      }
      if (!item) break;
      const std::size_t index = index_++;
      if (per_item) {
        const double item_start = monotonic_seconds();
        batch_.push_back(run_one<R>(fn_, *item, index));
        const double end = monotonic_seconds();
        this->stats_.compute_seconds += end - item_start;
        this->options_.on_chunk(
            span_of(places_, engine::finished_chunk{index, 1, {}, end - item_start, 0, index, item_start, end}));
      } else {
        batch_.push_back(run_one<R>(fn_, *item, index));
      }
      if (stop_after_error && !batch_.back().ok()) break;
    }
    if (per_item) return;
    const double seconds = monotonic_seconds() - start;
    this->stats_.compute_seconds += seconds;
    if (seconds < serial_batch_seconds && batch_.size() == batch_limit_) {
      batch_limit_ = std::min(max_batch, batch_limit_ * 2);
    } else if (seconds > 4 * serial_batch_seconds) {
      batch_limit_ = std::max<std::size_t>(1, batch_limit_ / 2);
    }
  }

  void on_stop(std::size_t index) override {
    if (parallel_) parallel_->stop_after_failure(index);
  }
  // Once the workers run the rest, every item up to the end has its record there (a "not run" one too).
  std::size_t taken() const override { return parallel_ ? end_ : index_; }
  std::size_t buffered() const override { return parallel_ ? parallel_->buffered() : batch_.size() - done_; }

  /// Seconds of items a serial run computes before it first re-plans from them.
  static constexpr double first_look_seconds = 0.05;

  Fn fn_;
  std::size_t index_;
  worker_places places_;
  std::vector<item_result<R>> batch_;  // the records of the last batch; those from done_ on are not taken yet
  std::size_t done_ = 0;
  std::size_t batch_limit_ = 1;
  std::exception_ptr failure_;  // what the source threw while the last batch was read
  parallel_start<T, R> go_parallel_;           // empty: the run stays serial
  std::unique_ptr<engine::backend> standby_;   // under MPI: the ranks waiting for the rest, until it ends or they take it
  std::unique_ptr<stream_state<R>> parallel_;  // the workers' run of the rest, once started
  double start_;
  double looked_seconds_ = 0.0;  // compute seconds at the last re-plan
  std::size_t looked_items_ = 0;  // items run by then
  double switched_at_ = 0.0;     // seconds from the start to the workers' start
  std::size_t end_ = 0;          // one past the last item, once the workers run the rest
};

/// Runs chunks on a backend through the dispatcher and unpacks their records.
template <class T, class R>
class engine_stream final : public stream_base<T, R> {
 public:
  engine_stream(run_input<T, R> input, const pool_options& options, backend_kind kind,
                std::unique_ptr<engine::backend> workers, engine::dispatch_options dispatch, worker_places places)
      : stream_base<T, R>(std::move(input), options), workers_(std::move(workers)), places_(std::move(places)) {
    dispatch.first_index = this->first_computed();
    dispatch.total_items = this->total_;
    dispatcher_.emplace(*workers_, make_codec<T, R>(this->input_.data), std::move(dispatch));
    this->stats_.backend = kind;
    this->stats_.workers = workers_->workers();
  }
  ~engine_stream() override { workers_->stop(); }
  engine_stream(const engine_stream&) = delete;
  engine_stream& operator=(const engine_stream&) = delete;

 private:
  std::optional<item_result<R>> next_computed() override {
    while (!pending_ || pending_->remaining() == 0) {
      std::optional<engine::finished_chunk> done;
      try {
        done = dispatcher_->next();
      } catch (...) {
        workers_->stop();  // the source threw after every record before it was handed over
        throw;
      }
      if (!done) {
        if (dispatcher_->abandoned()) {
          workers_->abandon();  // the destructor's stop() waits for what cannot be killed
        } else {
          workers_->stop();
        }
        this->stats_.stopped = dispatcher_->stopped();
        return std::nullopt;
      }
      if (this->options_.on_chunk && done->worker >= 0) this->options_.on_chunk(span_of(places_, *done));
      pending_.emplace(std::move(done->payload));
      next_index_ = done->first_index;
      const engine::dispatch_stats& s = dispatcher_->stats();
      this->stats_.chunks = s.chunks;
      this->stats_.lost_workers = s.lost_workers;
      this->stats_.peak_outstanding = s.peak_outstanding;
      this->stats_.compute_seconds = s.compute_seconds;
      this->stats_.root_cpu_seconds = s.root_cpu_seconds;
      this->stats_.replans = s.replans;
      this->stats_.predicted_seconds = s.predicted_seconds;
    }
    return pending_->take(next_index_++);
  }
  void on_stop(std::size_t /*index*/) override { dispatcher_->stop_dispatching(); }
  std::size_t taken() const override { return dispatcher_->next_index(); }
  std::size_t buffered() const override { return pending_ ? pending_->remaining() : 0; }

  std::unique_ptr<engine::backend> workers_;
  worker_places places_;
  std::optional<engine::dispatcher> dispatcher_;
  std::optional<record_reader<R>> pending_;  // the records of the last chunk that came back
  std::size_t next_index_ = 0;                // the source position of its next record
};

/// Returns how a serial run of `options`' pool (one call: `call`) starts `task`'s workers on its rest
/// as a new plan says (under MPI: on its standby ranks): the plan's workers and chunks, the pool's
/// error policy, log, setup, spans, stop request and item timeout.
template <class T, class R>
parallel_start<T, R> parallel_start_of(const pool_options& options, call_request call, engine::chunk_task task) {
  call.agreement_key = nullptr;  // agreed at the call's start; the rest is the root's alone
  return [options, call, task](const plan& rest_plan, run_input<T, R> rest,
                               std::unique_ptr<engine::backend> standby) -> std::unique_ptr<stream_state<R>> {
    pool_options o = options_of_plan(rest_plan);
    o.on_error = options.on_error;
    o.verbose = options.verbose;
    o.log = options.log;
    o.worker_setup = options.worker_setup;
    o.on_chunk = options.on_chunk;
    o.stop = options.stop;
    o.item_timeout = options.item_timeout;
    // Under MPI only the waiting ranks can take the rest: the others left the call.
    if (!standby && rest_plan.backend == backend_kind::mpi) throw std::logic_error("no rank waits for the rest");
    resolved_run run = standby ? run_on_standby(o, call, std::move(standby)) : start_run(o, call, task);
    if (!run.workers) throw std::logic_error("the new plan started no workers");
    return std::make_unique<engine_stream<T, R>>(std::move(rest), o, run.backend, std::move(run.workers),
                                                 std::move(run.dispatch), std::move(run.places));
  };
}

/// Makes the stream that runs `input` as `run` says: in the calling thread, or on its started workers;
/// a serial one hands its rest to `go_parallel`'s workers when a re-plan says they pay.
template <class T, class R, class F>
std::unique_ptr<stream_state<R>> make_stream(const F& fn, run_input<T, R> input, const pool_options& options,
                                             resolved_run run, parallel_start<T, R> go_parallel = {}) {
  if (!run.workers) {
    return std::make_unique<serial_stream<T, R, F>>(fn, std::move(input), options, std::move(run.places),
                                                    std::move(go_parallel), std::move(run.standby));
  }
  return std::make_unique<engine_stream<T, R>>(std::move(input), options, run.backend, std::move(run.workers),
                                               std::move(run.dispatch), std::move(run.places));
}

/// Seconds between two writes of a journal at least; records of chunks that end sooner wait for the next write.
inline constexpr double journal_flush_seconds = 0.005;

/// A run with a journal: the journal's records merged with the run's (in input order when ordered,
/// the journal's first otherwise); the run's records go to the journal as they are handed over.
template <class T, class R>
class journal_stream final : public stream_state<R> {
 public:
  /// Merges `file`'s records with those of `run`, which runs `items` (the source less the journal's items).
  journal_stream(std::unique_ptr<journal_file> file, resumed_items<T> items, std::unique_ptr<stream_state<R>> run,
                 bool ordered)
      : file_(std::move(file)), items_(std::move(items)), run_(std::move(run)), ordered_(ordered) {}

  std::optional<item_result<R>> next() override {
    const std::vector<journal_entry>& entries = file_->entries();
    if (ordered_ && !held_ && !run_done_) held_ = pull();
    if (next_entry_ < entries.size() && (!held_ || entries[next_entry_].index < held_->index())) {
      return replay(entries[next_entry_++]);
    }
    if (!held_ && !run_done_) held_ = pull();
    if (!held_) return std::nullopt;
    item_result<R> record = std::move(*held_);
    held_.reset();
    // A "not run" record's item was never read, so it has no key: it stays out and runs next time.
    if (std::string key = items_.take_key(record.index()); !key.empty()) file_->add(record.index(), key, to_bytes(record));
    if (run_->buffered() == 0) file_->flush_every(journal_flush_seconds);
    return record;
  }

  run_stats stats() const override {
    run_stats s = run_->stats();
    s.items += journaled_;
    s.errors += journaled_errors_;
    s.journaled = journaled_;
    return s;
  }

  /// Returns the run's records that wait to be taken (the journal's are not part of any chunk).
  std::size_t buffered() const override { return run_->buffered() + (held_ ? 1 : 0); }
  void stop_after_failure(std::size_t index) override { run_->stop_after_failure(index); }

 private:
  /// Returns the run's next record with its original index; at the end, writes the journal and
  /// checks that the source still holds every item the journal has.
  std::optional<item_result<R>> pull() {
    std::optional<item_result<R>> record = run_->next();
    if (record) {
      record->set_index(items_.original_index(record->index()));
      return record;
    }
    run_done_ = true;
    file_->flush();
    // A run over a known number of items ends at its last one: read on, checking the journal's items after it.
    if (!run_->stats().stopped && !items_.exhausted()) items_.remaining().next();
    if (items_.exhausted() && items_.skipped() < file_->entries().size()) {
      throw journal_file::unusable(file_->path(), "it holds " + std::to_string(file_->entries().size()) +
                                                      " records, but the input ended after " +
                                                      std::to_string(items_.skipped()) +
                                                      " of their items: the input changed since");
    }
    return record;
  }

  /// Returns the record `entry` holds, read from the journal.
  item_result<R> replay(const journal_entry& entry) {
    item_result<R> record;
    try {
      record = from_bytes<item_result<R>>(file_->payload(entry));
    } catch (const input_error&) {
      throw;
    } catch (const std::exception& e) {
      throw journal_file::unusable(file_->path(), "the record of item " + std::to_string(entry.index) +
                                                      " cannot be read (" + e.what() + ")");
    }
    record.set_index(entry.index);
    ++journaled_;
    if (!record.ok()) ++journaled_errors_;
    return record;
  }

  std::unique_ptr<journal_file> file_;  // declared first: closed after the run's workers stopped
  resumed_items<T> items_;
  std::unique_ptr<stream_state<R>> run_;
  bool ordered_;
  bool run_done_ = false;
  std::optional<item_result<R>> held_;  // the run's next record, waiting for the journal's before it
  std::size_t next_entry_ = 0;
  std::size_t journaled_ = 0;
  std::size_t journaled_errors_ = 0;
};

/// Runs `input` with the journal at `path`: reads it, makes the run (`make_run`) over the items it
/// lacks and merges the records. Items are keyed by their bytes alone (an empty context).
template <class T, class R, class MakeRun>
std::unique_ptr<stream_state<R>> journaled(const std::string& path, bool ordered, run_input<T, R> input,
                                           MakeRun&& make_run) {
  auto file = std::make_unique<journal_file>(path, type_name(typeid(R)));
  const std::vector<journal_entry>& entries = file->entries();
  if (const auto size = input.data.size(); size && !entries.empty() && entries.back().index >= *size) {
    throw journal_file::unusable(path, "it holds the record of item " + std::to_string(entries.back().index) +
                                           ", but the input has " + std::to_string(*size) +
                                           " items: the input changed since");
  }
  finished_items finished;
  for (const journal_entry& entry : entries) finished.emplace(entry.index, entry.key);
  resumed_items<T> items(std::move(input.data), std::move(finished), std::string(), false,
                         "delete the journal " + path + " to start again");
  input.data = items.remaining();
  return std::make_unique<journal_stream<T, R>>(std::move(file), std::move(items), make_run(std::move(input)), ordered);
}

}  // namespace amorsize::detail

namespace amorsize {

inline pool::pool(const plan& p) : options_(detail::options_of_plan(p)) {}

inline pool::pool(int workers) {
  options_.workers_per_node = {workers};
  options_.schedule.chunksize = 1;  // grows from measured chunk times
  validate(options_);
}

template <class Fn, class Data>
auto pool::start(Fn& fn, Data&& data, detail::call_request call) {
  using T = detail::pool_item_t<Data>;
  using F = std::decay_t<Fn>;
  using R = std::decay_t<std::invoke_result_t<F&, const T&>>;
  using stream = result_stream<R>;

  validate_chunksize(call.chunksize);
  call.planned_data = detail::planned_result<Data>;  // the same on every rank: every rank makes the same call
  if constexpr (detail::planned_result<Data>) {
    if (!options_.journal.empty()) {
      throw input_error("pool_options::journal " + options_.journal +
                        ": a call with a journal takes the data itself, not an optimization result (its first "
                        "items already ran while sampled): pass the plan to the pool and the data to the call");
    }
  }
  // The workers' task shares the function: threads call it in place, processes and ranks their own copy.
  const engine::chunk_task task = detail::make_task<T, R>(std::make_shared<F>(fn));
  detail::resolved_run run = detail::start_run(options_, call, task, detail::refusal_of(data));
  if (!run.hands_records) return stream(nullptr);
  auto input = detail::make_run_input<R>(std::forward<Data>(data));
  const auto make_run = [&](detail::run_input<T, R> in) {
    detail::parallel_start<T, R> go_parallel;
    if (options_.may_go_parallel && in.model) go_parallel = detail::parallel_start_of<T, R>(options_, call, task);
    return detail::make_stream<T, R, F>(fn, std::move(in), options_, std::move(run), std::move(go_parallel));
  };
  if (options_.journal.empty()) return stream(make_run(std::move(input)));
  const bool ordered = call.ordered.value_or(options_.use_ordered);
  return stream(detail::journaled<T, R>(options_.journal, ordered, std::move(input), make_run));
}

template <class Fn, class Data>
auto pool::imap(Fn&& fn, Data&& data, std::size_t chunksize) {
  return start(fn, std::forward<Data>(data), {detail::agreement_key("imap", fn, data), chunksize, true, 0});
}

template <class Fn, class Data>
auto pool::imap_unordered(Fn&& fn, Data&& data, std::size_t chunksize) {
  return start(fn, std::forward<Data>(data), {detail::agreement_key("imap_unordered", fn, data), chunksize, false, 0});
}

template <class Fn, class Data>
auto pool::stream(Fn&& fn, Data&& data, std::size_t chunksize) {
  return start(fn, std::forward<Data>(data), {detail::agreement_key("stream", fn, data), chunksize, std::nullopt, 0});
}

template <class Fn, class Data>
auto pool::map(Fn&& fn, Data&& data, std::size_t chunksize) {
  const std::optional<std::size_t> size = detail::item_count(data);
  auto records = start(fn, std::forward<Data>(data), {detail::agreement_key("map", fn, data), chunksize, true, 0});
  using record = typename decltype(records)::iterator::value_type;
  std::vector<record> all;
  // Room for every record at once, so that no record is moved to a larger vector (up to a bound,
  // in case a generator's size is wrong).
  constexpr std::size_t most_reserved = std::size_t{1} << 24;
  if (size && detail::hands_records()) all.reserve(std::min(*size, most_reserved));
  try {
    while (auto r = records.next()) all.push_back(std::move(*r));
  } catch (...) {
    last_run_ = records.stats();  // the source threw
    throw;
  }
  last_run_ = records.stats();
  return all;
}

template <class Fn, class Data, class OnBatch>
void pool::process_in_batches(Fn&& fn, Data&& data, OnBatch&& on_batch, std::size_t batch_size) {
  using T = detail::pool_item_t<Data>;
  // Agree once, before the root samples for a batch size; the run below is part of this call.
  detail::agree_on_call(detail::agreement_key("process_in_batches", fn, data), detail::refusal_of(data));
  auto run = [&](auto&& items, std::size_t size) {
    auto records = start(fn, std::forward<decltype(items)>(items), {{}, 0, true, size});
    using record = typename decltype(records)::iterator::value_type;
    std::vector<record> batch;
    batch.reserve(std::min<std::size_t>(size, 4096));  // an estimated size may be far above the item count
    for (;;) {
      std::optional<record> r;
      try {
        r = records.next();
      } catch (...) {
        // The source threw: hand over the records of the items read before it, then its exception.
        if (!batch.empty()) on_batch(std::move(batch));
        last_run_ = records.stats();
        throw;
      }
      if (!r) break;
      batch.push_back(std::move(*r));
      if (batch.size() == size) {
        on_batch(std::move(batch));
        batch.clear();
      }
    }
    if (!batch.empty()) on_batch(std::move(batch));
    last_run_ = records.stats();
  };
  if (batch_size == 0) {
    if constexpr (detail::planned_result<Data>) {
      batch_size = safe_batch_size(data.profile.result_bytes, probe_node().available_memory);
    } else {
      // Sampling happens on the root; the other ranks only serve, whatever their batch size.
      source<T> src = make_source(std::forward<Data>(data));
      optimize_options sampling;
      sampling.worker_setup = options_.worker_setup;
      batch_size = detail::hands_records() ? detail::safe_batch_size_of(fn, src, sampling) : 1;
      run(std::move(src), batch_size);
      return;
    }
  }
  run(std::forward<Data>(data), batch_size);
}

}  // namespace amorsize
