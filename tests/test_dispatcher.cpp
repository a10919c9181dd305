// The dispatcher against a scripted in-memory backend: order, window, retries, adaptation.
#include <amorsize/engine/dispatcher.hpp>
#include <amorsize/error.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

using namespace amorsize;
using namespace amorsize::engine;

namespace {

// Payloads are comma-separated item values; a result record is "value" or "!reason".
std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
  return out;
}

std::vector<std::string> split_payload(const std::string& payload) {
  std::vector<std::string> parts;
  std::istringstream in(payload);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

/// A codec over the items 0 .. total-1 (endless when total is nullopt).
chunk_codec counting_codec(std::optional<std::size_t> total, std::size_t& taken) {
  chunk_codec c;
  c.make = [total, &taken](std::size_t max_items) {
    std::vector<std::string> items;
    while (items.size() < max_items && (!total || taken < *total)) items.push_back(std::to_string(taken++));
    return made_chunk{join(items), items.size(), nullptr};
  };
  c.split = split_payload;
  c.fail = [](std::size_t count, const std::string& reason) {
    return join(std::vector<std::string>(count, "!" + reason));
  };
  return c;
}

/// Workers run chunks when wait() is called, in an order the test picks; item `killer` kills its worker.
class scripted_backend : public backend {
 public:
  scripted_backend(int workers, bool reverse) : queues_(static_cast<std::size_t>(workers)), reverse_(reverse) {}
  int workers() const override { return static_cast<int>(queues_.size()); }
  void send(int w, chunk c) override {
    max_held = std::max(max_held, queues_[static_cast<std::size_t>(w)].size() + 1);
    if (answered > 0) sent_after_answer.insert(c.id);
    queues_[static_cast<std::size_t>(w)].push_back(std::move(c));
  }
  bool alive(int w) const override { return dead_.count(w) == 0; }
  void stop() override {}
  std::optional<event> wait(double) override {
    // Reverse: the last worker with work answers first, so results arrive out of order.
    for (std::size_t k = 0; k < queues_.size(); ++k) {
      const std::size_t w = reverse_ ? queues_.size() - 1 - k : k;
      if (queues_[w].empty()) continue;
      chunk c = std::move(queues_[w].front());
      queues_[w].pop_front();
      const auto items = split_payload(c.payload);
      if (std::find(items.begin(), items.end(), killer) != items.end()) {
        worker_lost lost{static_cast<int>(w), {c.id}, "killed by signal 11 (Segmentation fault)"};
        for (const chunk& other : queues_[w]) lost.chunks.push_back(other.id);
        queues_[w].clear();
        if (kill_permanently) dead_.insert(static_cast<int>(w));
        return lost;
      }
      std::vector<std::string> results;
      for (const auto& item : items) results.push_back((item == "7" ? "!seven" : item) + std::string(result_padding, ' '));
      std::string payload = join(results);
      ++answered;
      if (sent_after_answer.count(c.id)) late_payload_bytes = std::max(late_payload_bytes, payload.size());
      double seconds = per_item_seconds * static_cast<double>(items.size());
      if (item_cost) {
        seconds = 0.0;
        for (const auto& item : items) seconds += item_cost(std::stoul(item));
      }
      return chunk_result{c.id, static_cast<int>(w), std::move(payload), seconds};
    }
    return std::nullopt;
  }

  std::size_t max_held = 0;
  bool kill_permanently = false;
  double per_item_seconds = 0.01;
  std::function<double(std::size_t)> item_cost;   // seconds of item i (empty: per_item_seconds each)
  std::string killer = "13";                      // the item that kills its worker
  std::size_t result_padding = 0;                 // bytes added to each result
  std::size_t answered = 0;                       // chunks answered so far
  std::set<std::uint64_t> sent_after_answer;      // chunks sent once some result was known
  std::size_t late_payload_bytes = 0;             // largest result payload of those chunks

 private:
  std::vector<std::deque<chunk>> queues_;
  std::set<int> dead_;
  bool reverse_;
};

struct run_outcome {
  std::vector<std::size_t> indices;                // every item handed over, in hand-over order
  std::vector<std::pair<std::size_t, std::string>> records;
  dispatch_stats stats;
};

run_outcome run(scripted_backend& b, std::size_t total, dispatch_options options) {
  std::size_t taken = 0;
  options.total_items = total;
  dispatcher d(b, counting_codec(total, taken), options);
  run_outcome out;
  while (auto f = d.next()) {
    const auto records = split_payload(f->payload);
    REQUIRE(records.size() == f->count);
    for (std::size_t i = 0; i < f->count; ++i) {
      out.indices.push_back(f->first_index + i);
      out.records.emplace_back(f->first_index + i, records[i]);
    }
  }
  out.stats = d.stats();
  return out;
}

}  // namespace

TEST_CASE("the dispatcher hands over every item exactly once, in order when asked", "[dispatcher]") {
  const bool ordered = GENERATE(true, false);
  const std::size_t total = GENERATE(std::size_t{0}, 1, 3, 1000);
  const std::size_t chunksize = GENERATE(std::size_t{1}, 7, 64);
  scripted_backend b(3, true);
  dispatch_options o;
  o.ordered = ordered;
  o.schedule.chunksize = chunksize;
  o.schedule.adaptive = false;
  const run_outcome out = run(b, total, o);
  INFO("ordered " << ordered << ", items " << total << ", chunksize " << chunksize);
  REQUIRE(out.indices.size() == total);
  std::vector<std::size_t> sorted = out.indices;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < total; ++i) CHECK(sorted[i] == i);
  if (ordered) CHECK(out.indices == sorted);
  if (!ordered && total == 1000 && chunksize == 7) CHECK(out.indices != sorted);  // the script answers out of order
  CHECK(b.max_held <= 2);
  for (const auto& [index, record] : out.records) {
    if (index == 13) CHECK(record.rfind("!its worker died", 0) == 0);
    else CHECK(record == (index == 7 ? "!seven" : std::to_string(index)));
  }
}

TEST_CASE("the window bounds the items in flight and waiting", "[dispatcher]") {
  scripted_backend b(4, true);
  dispatch_options o;
  o.schedule.chunksize = 10;
  o.buffer_size = 25;
  o.schedule.adaptive = false;
  const run_outcome out = run(b, 500, o);
  CHECK(out.indices.size() == 500);
  CHECK(out.stats.peak_outstanding <= 25);
}

TEST_CASE("a chunk whose worker died is re-run item by item; the killer item is reported", "[dispatcher]") {
  scripted_backend b(2, false);
  dispatch_options o;
  o.schedule.chunksize = 5;
  o.schedule.adaptive = false;
  const run_outcome out = run(b, 40, o);
  REQUIRE(out.indices.size() == 40);
  for (const auto& [index, record] : out.records) {
    if (index == 13) CHECK(record.find("its worker died while running it (killed by signal 11") != std::string::npos);
    else if (index == 7) CHECK(record == "!seven");
    else CHECK(record == std::to_string(index));
  }
  CHECK(out.stats.retried_chunks >= 1);
  CHECK(out.stats.lost_workers >= 2);  // the chunk, then the item alone
}

TEST_CASE("when every worker is gone, the remaining items are reported as failed, none lost", "[dispatcher]") {
  scripted_backend b(1, false);
  b.kill_permanently = true;
  dispatch_options o;
  o.schedule.chunksize = 4;
  o.schedule.adaptive = false;
  const run_outcome out = run(b, 30, o);
  REQUIRE(out.indices.size() == 30);
  std::size_t failed = 0;
  for (const auto& [index, record] : out.records) failed += record.rfind('!', 0) == 0 ? 1 : 0;
  CHECK(failed > 1);
}

TEST_CASE("chunk sizes follow measured chunk times when they disagree with the plan", "[dispatcher]") {
  scripted_backend b(2, false);
  b.per_item_seconds = 0.001;  // the plan thought 0.1 s per item: chunks of 2 for a 0.2 s target
  dispatch_options o;
  o.schedule.chunksize = 2;
  o.schedule.target_seconds = 0.2;
  const run_outcome out = run(b, 20000, o);
  CHECK(out.indices.size() == 20000);
  CHECK(out.stats.largest_chunk >= 100);
  CHECK(out.stats.largest_chunk <= 200);

  SECTION("and not when they agree") {
    scripted_backend steady(2, false);
    steady.per_item_seconds = 0.1;
    const run_outcome same = run(steady, 200, o);
    CHECK(same.stats.largest_chunk == 2);
  }
}

TEST_CASE("stop_dispatching drains what is in flight and ends", "[dispatcher]") {
  scripted_backend b(2, false);
  std::size_t taken = 0;
  dispatch_options o;
  o.schedule.chunksize = 3;
  o.schedule.adaptive = false;
  dispatcher d(b, counting_codec(std::nullopt, taken), o);  // endless
  std::size_t handed = 0;
  while (auto f = d.next()) {
    handed += f->count;
    if (handed >= 30) d.stop_dispatching();
  }
  CHECK(handed >= 30);
  CHECK(handed == d.next_index());  // everything taken from the source was handed over
}

TEST_CASE("a drained stop request finishes what is in flight and sends nothing more, not even retries", "[dispatcher]") {
  scripted_backend b(2, false);
  b.killer = "2";  // the first chunk's worker dies: its items wait to be retried one by one
  std::size_t taken = 0;
  stop_request request;
  dispatch_options o;
  o.schedule.chunksize = 5;
  o.schedule.adaptive = false;
  o.total_items = 100;
  o.stop = &request;
  dispatcher d(b, counting_codec(100, taken), o);
  request.drain(10.0);  // before the first next(): nothing is ever sent
  CHECK_FALSE(d.next().has_value());
  CHECK(d.stats().chunks == 0);
  CHECK(d.stopped());
  CHECK_FALSE(d.abandoned());

  stop_request later;
  o.stop = &later;
  o.ordered = false;
  scripted_backend c(2, true);  // worker 1 answers first; worker 0, holding chunks 0 and 2, dies last
  c.killer = "2";
  taken = 0;
  dispatcher e(c, counting_codec(100, taken), o);
  std::set<std::size_t> handed;
  while (auto f = e.next()) {
    for (std::size_t i = 0; i < f->count; ++i) handed.insert(f->first_index + i);
    later.drain(10.0);
  }
  CHECK(e.stats().chunks == 4);   // the first round alone: the lost chunks' items are not retried
  CHECK(handed.size() == 10);     // worker 1's two chunks
  CHECK(handed.count(2) == 0);
  CHECK(e.stopped());
}

TEST_CASE("an abandoned stop request drops the chunks in flight at once", "[dispatcher]") {
  scripted_backend b(2, false);
  b.killer = "none";
  std::size_t taken = 0;
  stop_request request;
  dispatch_options o;
  o.schedule.chunksize = 5;
  o.schedule.adaptive = false;
  o.stop = &request;
  dispatcher d(b, counting_codec(std::nullopt, taken), o);  // endless
  REQUIRE(d.next().has_value());
  request.abandon();
  CHECK_FALSE(d.next().has_value());
  CHECK(d.stats().chunks == 4);
  CHECK(d.stats().items == 5);
  CHECK(d.stopped());
  CHECK(d.abandoned());
}

TEST_CASE("large result payloads shrink the next chunks so a chunk's results stay within 4 MiB", "[dispatcher]") {
  scripted_backend b(2, false);
  b.killer = "none";                 // a chunk retried as it was would keep its size
  b.result_padding = 256 * 1024;     // a quarter MiB a result: 4 MiB hold 15 of them
  b.per_item_seconds = 0.2 / 64;     // the measured times agree with the plan's chunks of 64
  dispatch_options o;
  o.schedule.chunksize = 64;
  o.schedule.target_seconds = 0.2;
  const run_outcome out = run(b, 400, o);
  CHECK(out.indices.size() == 400);
  CHECK(out.stats.largest_chunk == 64);  // sent before any result was known
  CHECK(b.late_payload_bytes > 0);
  CHECK(b.late_payload_bytes <= 4u * 1024 * 1024);

  SECTION("but not a chunk size the caller forced") {
    scripted_backend forced(2, false);
    forced.killer = b.killer;
    forced.result_padding = b.result_padding;
    o.schedule.adaptive = false;
    const run_outcome kept = run(forced, 400, o);
    CHECK(kept.indices.size() == 400);
    CHECK(kept.stats.smallest_chunk == 400 % 64);
    CHECK(forced.late_payload_bytes > 4u * 1024 * 1024);
  }
}

// The window that follows the chunks counts each chunk at most 4 MiB at 64 bytes an item, so a
// forced chunk of 2^30 items over an endless source reads at most 2 x 2 workers x 2 chunks x
// 65,536 items before the first chunk comes back. The codec ends after 4 million items so that a
// run without that bound ends too; the dispatcher is not told, so it sees an endless source.
TEST_CASE("a huge forced chunk size over an endless source is read only a window ahead", "[dispatcher]") {
  scripted_backend b(2, false);
  std::size_t taken = 0;
  dispatch_options o;
  o.schedule.chunksize = std::size_t{1} << 30;
  o.schedule.adaptive = false;
  dispatcher d(b, counting_codec(4'000'000, taken), o);
  const auto first = d.next();
  REQUIRE(first);
  INFO("items taken before the first chunk came back: " << taken);
  CHECK(taken <= std::size_t{2} * 2 * 2 * 65536);
  CHECK(first->count <= taken);
}

TEST_CASE("a source that throws hands over every item read before it and then its exception", "[dispatcher]") {
  const bool ordered = GENERATE(true, false);
  const std::size_t chunksize = GENERATE(std::size_t{1}, std::size_t{3}, std::size_t{100});
  INFO("ordered " << ordered << ", chunksize " << chunksize);
  scripted_backend b(3, true);
  std::size_t taken = 0;
  chunk_codec codec = counting_codec(std::nullopt, taken);
  codec.make = [&taken](std::size_t max_items) {
    std::vector<std::string> items;
    while (items.size() < max_items) {
      if (taken == 7) return made_chunk{join(items), items.size(), std::make_exception_ptr(std::runtime_error("broken at 7"))};
      items.push_back(std::to_string(taken++));
    }
    return made_chunk{join(items), items.size(), nullptr};
  };
  dispatch_options o;
  o.ordered = ordered;
  o.schedule.chunksize = chunksize;
  o.schedule.adaptive = false;
  dispatcher d(b, codec, o);
  std::vector<std::size_t> handed;
  std::string caught;
  try {
    while (auto f = d.next()) {
      for (std::size_t i = 0; i < f->count; ++i) handed.push_back(f->first_index + i);
    }
  } catch (const std::runtime_error& e) {
    caught = e.what();
  }
  CHECK(caught == "broken at 7");
  if (!ordered) std::sort(handed.begin(), handed.end());
  CHECK(handed == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK_FALSE(d.next());  // the exception comes once; then the run is over
}

// A worker whose setup threw ends the run: next() throws setup_error naming it, before any record.
TEST_CASE("the dispatcher turns a failed worker setup into setup_error", "[dispatcher]") {
  /// Worker 1's setup throws before it answers anything.
  class failing_setup_backend : public scripted_backend {
   public:
    failing_setup_backend() : scripted_backend(2, false) {}
    std::optional<event> wait(double seconds) override {
      if (!reported_) {
        reported_ = true;
        return setup_failed{1, "cannot open model.bin"};
      }
      return scripted_backend::wait(seconds);
    }

   private:
    bool reported_ = false;
  };
  failing_setup_backend b;
  std::size_t taken = 0;
  dispatch_options options;
  options.total_items = 20;
  dispatcher d(b, counting_codec(20, taken), options);
  CHECK_THROWS_MATCHES(d.next(), setup_error,
                       Catch::Matchers::Message("worker 1 setup failed: cannot open model.bin (the per-worker setup "
                                                "threw; fix it or run without it)"));
}

// Each finished chunk says which chunk it was and when the root sent it and heard back.
TEST_CASE("finished chunks carry their id and their send and receive times", "[dispatcher]") {
  scripted_backend b(3, true);
  std::size_t taken = 0;
  dispatch_options options;
  options.total_items = 50;
  options.schedule.chunksize = 4;
  dispatcher d(b, counting_codec(50, taken), options);
  std::set<std::uint64_t> ids;
  std::size_t items = 0;
  while (auto f = d.next()) {
    items += f->count;
    if (f->worker < 0) continue;  // failed with its worker: it never came back
    CHECK(ids.insert(f->id).second);
    CHECK(f->sent > 0.0);
    CHECK(f->sent <= f->received);
  }
  CHECK(items == 50);
  CHECK(ids.size() >= 50 / 4);
}

TEST_CASE("the dispatcher records each re-plan with its time, old and new chunk size and reason", "[dispatcher][replan]") {
  scripted_backend b(2, false);
  b.per_item_seconds = 0.001;  // the plan thought 0.1 s per item: chunks of 2 for a 0.2 s target
  dispatch_options o;
  o.schedule.chunksize = 2;
  o.schedule.target_seconds = 0.2;
  const run_outcome out = run(b, 5000, o);
  CHECK(out.indices.size() == 5000);
  REQUIRE_FALSE(out.stats.replans.empty());
  const replan& first = out.stats.replans.front();
  CHECK(first.old_chunksize == 2);
  CHECK(first.new_chunksize > 2);
  CHECK(first.at_seconds >= 0.0);
  CHECK(first.reason.find("0.2 s") != std::string::npos);
  CHECK(out.stats.predicted_seconds >= 0.0);

  SECTION("a forced chunk size is never re-planned") {
    scripted_backend forced(2, false);
    forced.per_item_seconds = 0.001;
    dispatch_options fixed = o;
    fixed.schedule.adaptive = false;
    const run_outcome same = run(forced, 500, fixed);
    CHECK(same.stats.replans.empty());
  }
}

TEST_CASE("chunk times that rise along the source switch the schedule to guided and record why", "[dispatcher][replan]") {
  scripted_backend b(2, false);
  const std::size_t total = 4000;
  b.item_cost = [total](std::size_t i) { return 2e-3 * static_cast<double>(i) / static_cast<double>(total); };
  dispatch_options o;
  o.schedule.chunksize = 100;  // about right on average: 100 x 1 ms = 0.1 s
  o.schedule.target_seconds = 0.1;
  const run_outcome out = run(b, total, o);
  CHECK(out.indices.size() == total);
  const bool guided = std::any_of(out.stats.replans.begin(), out.stats.replans.end(), [](const replan& r) {
    return r.old_kind == schedule_kind::fixed && r.new_kind == schedule_kind::guided &&
           r.reason.find("vary") != std::string::npos;
  });
  CHECK(guided);
  CHECK(out.stats.smallest_chunk < 100);
}

TEST_CASE("adaptive fixed chunks come out as whole rounds of the workers", "[dispatcher]") {
  for (const std::size_t total : {21000U, 19995U, 1001U, 7U}) {
    scripted_backend b(2, false);
    b.per_item_seconds = 0.0002;
    dispatch_options o;
    o.schedule.chunksize = 1000;
    o.schedule.target_seconds = 0.2;
    const run_outcome out = run(b, total, o);
    INFO("items " << total << ", chunks " << out.stats.chunks);
    CHECK(out.indices.size() == total);
    CHECK((total < 2 || out.stats.chunks % 2 == 0));
    CHECK(out.stats.largest_chunk <= 1000);
  }
}
