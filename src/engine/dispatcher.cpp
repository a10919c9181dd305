#include <amorsize/engine/dispatcher.hpp>
#include <amorsize/error.hpp>
#include <amorsize/sample.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <utility>

namespace amorsize::engine {
namespace {

/// Adds the CPU time of the enclosing scope to a counter, however the scope is left.
class cpu_meter {
 public:
  explicit cpu_meter(double& total) : total_(total), start_(thread_cpu_seconds()) {}
  ~cpu_meter() { total_ += thread_cpu_seconds() - start_; }
  cpu_meter(const cpu_meter&) = delete;
  cpu_meter& operator=(const cpu_meter&) = delete;

 private:
  double& total_;
  double start_;
};

/// Largest chunk message, of items or of their records, that adaptation and the window allow, in bytes.
constexpr double max_chunk_bytes = 4.0 * 1024 * 1024;

/// Fewest bytes an item counts for: its record costs at least this in the root's memory (index,
/// value or error text), however small its serialized form; so 4 MiB hold at most 65,536 items.
constexpr double min_item_bytes = 64.0;

/// How long one wait for an event may last before the loop looks again.
constexpr double wait_slice_seconds = 0.05;

}  // namespace

dispatcher::dispatcher(backend& workers, chunk_codec codec, dispatch_options options)
    : workers_(workers),
      codec_(std::move(codec)),
      options_(std::move(options)),
      held_(static_cast<std::size_t>(std::max(0, workers.workers())), 0),
      next_index_(options_.first_index),
      next_to_hand_(options_.first_index) {
  if (workers_.workers() < 1) throw error(exit_code::internal, "the dispatcher needs at least one worker");
  options_.schedule.chunksize = std::max<std::size_t>(1, options_.schedule.chunksize);
  options_.chunks_per_worker = std::max(1, options_.chunks_per_worker);
  window_follows_chunks_ = options_.buffer_size == 0;
  bound_chunk_size();
}

std::optional<finished_chunk> dispatcher::next() {
  cpu_meter meter(stats_.root_cpu_seconds);
  for (;;) {
    heed_stop_request();
    if (auto ready = pop_ready()) return ready;
    if (abandoned_) return std::nullopt;
    fill_workers();
    if (flight_.empty()) {
      if (auto ready = pop_ready()) return ready;
      // After a stop request what was never sent, retries included, gets no record.
      if (stop_requested_ && !(retry_.empty() && source_done_)) return std::nullopt;
      if (alive_workers() == 0 && (!retry_.empty() || !source_done_)) {
        // No worker is left: report what is left item by item rather than lose it.
        for (const in_flight& r : retry_) {
          const chunk& c = r.sent;
          ready_.emplace(c.first_index, failed_chunk(c.first_index, c.count, "no worker left to run it"));
        }
        retry_.clear();
        while (!draining_ && options_.total_items && !source_done_) {
          const std::size_t count = take(options_.schedule.chunksize).count;
          if (count == 0) break;
          ready_.emplace(next_index_, failed_chunk(next_index_, count, "no worker left to run it"));
          next_index_ += count;
          outstanding_ += count;
        }
        source_done_ = true;
        continue;
      }
      if (retry_.empty() && (source_done_ || draining_)) {
        // Every item read before the source threw is handed over: now its exception, once.
        if (source_failure_) std::rethrow_exception(std::exchange(source_failure_, nullptr));
        return std::nullopt;
      }
    }
    if (auto e = workers_.wait(wait_slice_seconds)) handle(std::move(*e));
  }
}

void dispatcher::heed_stop_request() {
  if (abandoned_ || !options_.stop || !options_.stop->requested()) return;
  if (!stop_requested_) {
    stop_requested_ = true;
    stopped_ = work_left();
  }
  if (!abandoned_ && options_.stop->abandoned()) {
    abandoned_ = true;
    stopped_ = stopped_ || !flight_.empty();
    // Dropped: their items get no record; the finished chunks still go, in source order but with gaps.
    for (const auto& [id, held] : flight_) outstanding_ -= held.sent.count;
    flight_.clear();
    retry_.clear();
    std::fill(held_.begin(), held_.end(), 0);
  }
}

bool dispatcher::work_left() const {
  const bool source_read = source_done_ || (options_.total_items && next_index_ >= options_.first_index + *options_.total_items);
  return !source_read || !retry_.empty() || !flight_.empty();
}

void dispatcher::fill_workers() {
  // Round by round: every worker gets its first chunk before any gets a second.
  for (int depth = 1; depth <= options_.chunks_per_worker; ++depth) {
    for (std::size_t w = 0; w < held_.size(); ++w) {
      const int worker = static_cast<int>(w);
      if (held_[w] >= depth || !workers_.alive(worker)) continue;
      if (!dispatch_one(worker)) return;
    }
  }
}

bool dispatcher::dispatch_one(int worker) {
  if (stop_requested_) return false;
  if (!retry_.empty()) {
    in_flight again = std::move(retry_.front());
    retry_.pop_front();
    send(worker, std::move(again.sent), again.single);
    return true;
  }
  if (draining_ || source_done_) return false;
  // No chunk is larger than the window, or one chunk alone would break the memory bound.
  std::size_t size = std::min(next_chunk_size(), window());
  // A source of unknown size gets chunks at most twice the largest that came back: its plan rests on
  // its first items, which may be the cheap ones, and one chunk could otherwise take every item there is.
  if (!options_.total_items && options_.schedule.adaptive) size = std::min(size, 2 * std::max<std::size_t>(1, largest_back_));
  if (size == 0) {
    source_done_ = true;  // every item the source announced is taken
    return false;
  }
  if (!window_allows(size)) return false;
  made_chunk made = take(size);
  const std::size_t count = made.count;
  if (count == 0) return false;
  chunk c{next_id_++, next_index_, count, std::move(made.payload)};
  ++fresh_chunks_;
  next_index_ += count;
  outstanding_ += count;
  stats_.peak_outstanding = std::max(stats_.peak_outstanding, outstanding_);
  stats_.smallest_chunk = stats_.smallest_chunk == 0 ? count : std::min(stats_.smallest_chunk, count);
  stats_.largest_chunk = std::max(stats_.largest_chunk, count);
  send(worker, std::move(c), false);
  return true;
}

made_chunk dispatcher::take(std::size_t max_items) {
  made_chunk made = codec_.make(max_items);
  if (made.count < max_items) source_done_ = true;
  if (made.failure) {
    // The items read before the source threw run as a last, short chunk; next() rethrows after them.
    source_done_ = true;
    source_failure_ = made.failure;
  }
  return made;
}

void dispatcher::send(int worker, chunk c, bool single) {
  ++stats_.chunks;
  if (started_at_ == 0.0) started_at_ = monotonic_seconds();
  if (c.count > 0) {
    input_bytes_per_item_ = static_cast<double>(c.payload.size()) / static_cast<double>(c.count);
    bound_chunk_size();
  }
  ++held_[static_cast<std::size_t>(worker)];
  // Keep the payload until the answer comes: a worker that dies takes its copy with it.
  flight_[c.id] = in_flight{c, worker, single, monotonic_seconds()};
  workers_.send(worker, std::move(c));
}

std::size_t dispatcher::window() const {
  if (!window_follows_chunks_) return options_.buffer_size;
  // Rule: the window that follows the chunks is two rounds of the chunks the workers hold, each
  // counted at no more than a chunk whose message stays within max_chunk_bytes, so a forced chunk
  // size, however large, reads at most that many items and bytes ahead of the consumer.
  return 2 * held_.size() * static_cast<std::size_t>(options_.chunks_per_worker) *
         std::min(options_.schedule.chunksize, byte_bounded_chunk());
}

std::size_t dispatcher::byte_bounded_chunk() const {
  const double item_bytes = std::max({min_item_bytes, input_bytes_per_item_, result_bytes_per_item_});
  return static_cast<std::size_t>(std::max(1.0, std::floor(max_chunk_bytes / item_bytes)));
}

void dispatcher::bound_chunk_size() {
  // A chunk size the caller forced is kept (the window still bounds it); any other chunk, the
  // plan's included, keeps its message, items or results, within max_chunk_bytes.
  if (!options_.schedule.adaptive) return;
  options_.schedule.chunksize = std::min(options_.schedule.chunksize, byte_bounded_chunk());
  options_.schedule.min_chunksize = std::min(options_.schedule.min_chunksize, options_.schedule.chunksize);
}

int dispatcher::alive_workers() const {
  int alive = 0;
  for (int w = 0; w < workers_.workers(); ++w) alive += workers_.alive(w) ? 1 : 0;
  return alive;
}

bool dispatcher::window_allows(std::size_t size) const {
  // An empty window always takes one chunk, so a window smaller than a chunk cannot stall the run.
  return outstanding_ == 0 || outstanding_ + size <= window();
}

std::size_t dispatcher::next_chunk_size() const {
  std::optional<std::size_t> remaining;
  if (options_.total_items) {
    const std::size_t end = options_.first_index + *options_.total_items;
    remaining = end > next_index_ ? end - next_index_ : 0;
  }
  if (remaining && *remaining == 0) return 0;
  const int alive = std::max(1, alive_workers());
  const std::size_t size = options_.schedule.next_chunk(remaining, alive);
  if (!remaining || options_.schedule.kind != schedule_kind::fixed || !options_.schedule.adaptive) return size;
  // Whole rounds: in the last two rounds, the items left make equal chunks, as many as bring the
  // chunks of the run to a multiple of the workers, so the last round is balanced and no short
  // chunk runs alone at the end.
  const auto workers = static_cast<std::size_t>(alive);
  const std::size_t largest = std::max<std::size_t>(1, options_.schedule.chunksize);
  if (*remaining > 2 * workers * largest) return size;
  const std::size_t needed = (*remaining + largest - 1) / largest;
  const std::size_t chunks = needed + (workers - (fresh_chunks_ + needed) % workers) % workers;
  return (*remaining + chunks - 1) / chunks;
}

void dispatcher::handle(event e) {
  if (auto* done = std::get_if<chunk_result>(&e)) {
    const auto it = flight_.find(done->id);
    if (it == flight_.end()) return;  // answer for a chunk already given up on
    --held_[static_cast<std::size_t>(it->second.worker)];
    const chunk& sent = it->second.sent;
    largest_back_ = std::max(largest_back_, sent.count);
    stats_.compute_seconds += done->compute_seconds;
    if (sent.count > 0) {
      result_bytes_per_item_ = static_cast<double>(done->payload.size()) / static_cast<double>(sent.count);
    }
    adapt(*done, sent);
    ready_.emplace(sent.first_index,
                   finished_chunk{sent.first_index, sent.count, std::move(done->payload), done->compute_seconds,
                                  done->worker, sent.id, it->second.sent_at, monotonic_seconds()});
    flight_.erase(it);
    return;
  }
  if (const auto* failed = std::get_if<setup_failed>(&e)) {
    throw setup_error::in_worker(failed->worker, failed->reason);  // once: the run ends here
  }
  auto& lost = std::get<worker_lost>(e);
  ++stats_.lost_workers;
  bool running = true;  // the oldest chunk a worker holds is the one it was running
  for (std::uint64_t id : lost.chunks) {
    const auto it = flight_.find(id);
    if (it == flight_.end()) continue;
    in_flight held = std::move(it->second);
    flight_.erase(it);
    if (!running) {
      retry_.push_back(std::move(held));  // never started: run it elsewhere as it is
      continue;
    }
    running = false;
    chunk& sent = held.sent;
    if (held.single || sent.count <= 1) {
      // The item itself kills its worker: report it and go on.
      const std::string why = lost.timed_out ? lost.reason : "its worker died while running it (" + lost.reason + ")";
      ready_.emplace(sent.first_index, failed_chunk(sent.first_index, sent.count, why));
    } else {
      // Re-run the chunk item by item on other workers to find the item that killed this one.
      ++stats_.retried_chunks;
      std::vector<std::string> pieces = codec_.split(sent.payload);
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        retry_.push_back(in_flight{chunk{next_id_++, sent.first_index + i, 1, std::move(pieces[i])}, -1, true, 0.0});
      }
    }
  }
  if (lost.worker >= 0 && static_cast<std::size_t>(lost.worker) < held_.size()) held_[static_cast<std::size_t>(lost.worker)] = 0;
}

void dispatcher::follow_chunk_times(const chunk_result& r, const chunk& sent) {
  const std::size_t count = sent.count;
  if (count == 0 || !(r.compute_seconds > 0.0)) return;
  const double per_item = r.compute_seconds / static_cast<double>(count);
  items_timed_ += count;
  ++chunks_timed_;
  const double delta = per_item - chunk_mean_;
  chunk_mean_ += delta / static_cast<double>(chunks_timed_);
  chunk_squares_ += delta * (per_item - chunk_mean_);
  // The chunk's items, weighted by their count, at the chunk's middle position.
  fit_.add(static_cast<double>(sent.first_index) + 0.5 * static_cast<double>(count), per_item, static_cast<double>(count));
  if (!options_.total_items) return;
  // Live prediction: the items not finished yet at the item time fitted along the source so far
  // (a trend shows there), over the workers.
  const double now = monotonic_seconds();
  const std::size_t end = options_.first_index + *options_.total_items;
  const std::size_t done_or_flying = next_index_ > options_.first_index ? next_index_ - options_.first_index : 0;
  const double not_taken = static_cast<double>(end > next_index_ ? end - next_index_ : 0);
  const double taken_not_done = static_cast<double>(done_or_flying > items_timed_ ? done_or_flying - items_timed_ : 0);
  double mean_item = stats_.compute_seconds / static_cast<double>(std::max<std::size_t>(1, items_timed_));
  if (chunks_timed_ >= 3 && fit_.defined()) {
    // The items left lie between the oldest unfinished ones and the end: their mean sits about midway.
    const double first_left = static_cast<double>(next_index_) - taken_not_done;
    const double middle_left = 0.5 * (first_left + static_cast<double>(end));
    mean_item = std::max(0.0, fit_.intercept() + fit_.slope() * middle_left);
  }
  const double workers = static_cast<double>(std::max(1, alive_workers()));
  stats_.eta_seconds = (not_taken + taken_not_done) * mean_item / workers;
  stats_.predicted_seconds = (now - started_at_) + stats_.eta_seconds;
  const double total_work = stats_.compute_seconds + (not_taken + taken_not_done) * mean_item;
  stats_.predicted_speedup = stats_.predicted_seconds > 0.0 ? total_work / stats_.predicted_seconds : 0.0;
}

void dispatcher::record_replan(schedule_kind old_kind, std::size_t old_size, std::string reason) {
  replan change;
  change.at_seconds = started_at_ > 0.0 ? monotonic_seconds() - started_at_ : 0.0;
  change.items_done = items_timed_;
  change.old_kind = old_kind;
  change.new_kind = options_.schedule.kind;
  change.old_chunksize = old_size;
  change.new_chunksize = options_.schedule.chunksize;
  change.old_workers = change.new_workers = alive_workers();
  change.eta_seconds = stats_.eta_seconds;
  change.reason = std::move(reason);
  stats_.replans.push_back(std::move(change));
}

void dispatcher::adapt(const chunk_result& r, const chunk& sent) {
  follow_chunk_times(r, sent);
  const std::size_t count = sent.count;
  if (!options_.schedule.adaptive) return;
  const schedule_kind old_kind = options_.schedule.kind;
  const std::size_t old_size = options_.schedule.chunksize;
  if (count > 0 && r.compute_seconds > 0.0) {
    const double per_item = r.compute_seconds / static_cast<double>(count);
    per_item_seconds_ = per_item_seconds_ == 0.0 ? per_item : 0.7 * per_item_seconds_ + 0.3 * per_item;
    const double desired = std::max(1.0, std::round(options_.schedule.target_seconds / per_item_seconds_));
    const auto current = static_cast<double>(options_.schedule.chunksize);
    // Follow the measurements only when they disagree with the plan by more than 2x: small
    // differences are noise, and a steady size keeps the rounds even.
    if (desired > 2.0 * current || 2.0 * desired < current) {
      double size = std::min(desired, 4.0 * current);  // grow at most 4x per step
      if (options_.total_items) {
        // Never so large that the rest of the work no longer spreads over every worker.
        const std::size_t end = options_.first_index + *options_.total_items;
        const double left = end > next_index_ ? static_cast<double>(end - next_index_) : 0.0;
        size = std::min(size, std::max(1.0, std::floor(left / (2.0 * static_cast<double>(held_.size())))));
      }
      if (!window_follows_chunks_) {
        // A window that was asked for bounds memory: every worker's chunks must fit in it.
        const double per_worker_window = static_cast<double>(options_.buffer_size) /
                                         static_cast<double>(held_.size() * static_cast<std::size_t>(options_.chunks_per_worker));
        size = std::min(size, std::max(1.0, std::floor(per_worker_window)));
      }
      options_.schedule.chunksize = static_cast<std::size_t>(size);
      bound_chunk_size();  // a size the byte bound takes back is no change
      if (options_.schedule.chunksize != old_size) {
        char why[160];
        std::snprintf(why, sizeof why, "items take %.3g ms: chunks of %zu would take %.3g s (target %.3g s)",
                      1e3 * per_item_seconds_, old_size, static_cast<double>(old_size) * per_item_seconds_,
                      options_.schedule.target_seconds);
        record_replan(old_kind, old_size, why);
      }
    }
  }
  // Chunk times that vary (a spread or a trend the sample missed) unbalance equal chunks at the end:
  // guided chunks shrink as the work runs out, so the last round stays balanced.
  const std::size_t workers = held_.size();
  constexpr double varying_cv = 0.3;
  if (options_.schedule.kind == schedule_kind::fixed && options_.total_items && chunks_timed_ >= 2 * workers &&
      chunks_timed_ >= 4 && chunk_mean_ > 0.0) {
    const double cv = std::sqrt(chunk_squares_ / static_cast<double>(chunks_timed_ - 1)) / chunk_mean_;
    if (cv > varying_cv) {
      const std::size_t before = options_.schedule.chunksize;
      options_.schedule.kind = schedule_kind::guided;
      options_.schedule.min_chunksize = std::max<std::size_t>(1, options_.schedule.chunksize / 4);
      char why[160];
      std::snprintf(why, sizeof why, "chunk times vary (CV %.2f over %zu chunks): guided chunks from now on, down to %zu items",
                    cv, chunks_timed_, options_.schedule.min_chunksize);
      record_replan(schedule_kind::fixed, before, why);
    }
  }
  // Measured or not, a chunk's message stays within a few MiB: a cheap function's ideal chunk
  // could otherwise hold millions of items, or gigabytes of results, read far ahead of the consumer.
  bound_chunk_size();
}

finished_chunk dispatcher::failed_chunk(std::size_t first_index, std::size_t count, const std::string& reason) const {
  finished_chunk failed;
  failed.first_index = first_index;
  failed.count = count;
  failed.payload = codec_.fail(count, reason);
  return failed;
}

std::optional<finished_chunk> dispatcher::pop_ready() {
  if (ready_.empty()) return std::nullopt;
  auto it = ready_.begin();
  if (options_.ordered && it->first != next_to_hand_ && !abandoned_) return std::nullopt;
  finished_chunk out = std::move(it->second);
  ready_.erase(it);
  if (options_.ordered) next_to_hand_ = out.first_index + out.count;
  outstanding_ -= out.count;
  stats_.items += out.count;
  return out;
}

}  // namespace amorsize::engine
