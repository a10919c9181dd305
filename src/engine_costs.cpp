// Measures what the engine costs per item beyond the function: a near-zero function on 8-byte items
// through the real serial stream, worker task and root chain (a thread worker: no fork, no MPI).

#include <amorsize/overheads.hpp>
#include <amorsize/pool.hpp>
#include <amorsize/sample.hpp>

#include <amorsize/engine/local_backends.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

namespace amorsize {
namespace {

using item = std::uint64_t;

/// Items each measurement runs: a few milliseconds of engine work, long enough to average out a page fault or two.
constexpr std::size_t measured_items = std::size_t{1} << 16;

/// Tries of each measurement; the cheapest counts (the others met a busy core).
constexpr int tries = 3;

/// The near-zero function: a multiply the compiler cannot drop, as cheap as a function gets.
struct near_zero {
  item operator()(item x) const { return x * 0x9E3779B97F4A7C15ULL + 1; }
};

std::vector<item> numbered_items() {
  std::vector<item> items(measured_items);
  std::iota(items.begin(), items.end(), item{0});
  return items;
}

/// Seconds of the function alone over the items, written to a vector: what no engine can avoid.
double bare_loop_seconds(const std::vector<item>& items) {
  std::vector<item> out(items.size());
  const double start = monotonic_seconds();
  std::transform(items.begin(), items.end(), out.begin(), near_zero{});
  const double seconds = monotonic_seconds() - start;
  volatile item sink = out.back();  // keeps the loop
  (void)sink;
  return seconds;
}

/// Drains `records` into a vector as pool::map does; returns the records taken.
std::size_t drain(detail::stream_state<item>& records) {
  std::vector<item_result<item>> all;
  all.reserve(measured_items);
  while (auto r = records.next()) all.push_back(std::move(*r));
  return all.size();
}

/// Seconds of a serial run over the items, records handed over as map takes them.
double serial_run_seconds(const std::vector<item>& items) {
  detail::run_input<item, item> input{make_source(std::vector<item>(items)), {}, {}, 0, nullptr};
  detail::serial_stream<item, item, near_zero> run(near_zero{}, std::move(input), pool_options{},
                                                   detail::worker_places{{-1}, {std::string()}});
  const double start = monotonic_seconds();
  drain(run);
  return monotonic_seconds() - start;
}

/// Seconds the worker's task takes over one chunk of the items: unpacking, the calls, packing the records.
double worker_task_seconds(const std::vector<item>& items) {
  source<item> src = make_source(std::vector<item>(items));
  const std::string payload = detail::make_codec<item, item>(src).make(items.size()).payload;
  const engine::chunk_task task = detail::make_task<item, item>(std::make_shared<near_zero>());
  double compute = 0.0;
  const double start = monotonic_seconds();
  const std::string records = task(payload, compute);
  return records.empty() ? 0.0 : monotonic_seconds() - start;
}

/// CPU seconds of the calling thread (the root) over a run of the first `count` items on one thread
/// worker, in chunks of a few milliseconds: reading and packing items, unpacking and handing over records.
double root_cpu_seconds(const std::vector<item>& items, std::size_t count) {
  detail::run_input<item, item> input{
      make_source(std::vector<item>(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(count))), {}, {}, 0, nullptr};
  engine::dispatch_options dispatch;
  dispatch.schedule.chunksize = 16384;
  dispatch.schedule.min_chunksize = 16384;
  dispatch.schedule.adaptive = false;
  dispatch.ordered = true;
  auto worker = engine::make_thread_backend(1, detail::make_task<item, item>(std::make_shared<near_zero>()));
  detail::engine_stream<item, item> run(std::move(input), pool_options{}, backend_kind::threads, std::move(worker),
                                        dispatch, detail::worker_places{{-1}, {std::string()}});
  const double start = thread_cpu_seconds();
  drain(run);
  return thread_cpu_seconds() - start;
}

}  // namespace

engine_costs measure_engine_costs_uncached() {
  const double start = monotonic_seconds();
  const std::vector<item> items = numbered_items();
  const auto n = static_cast<double>(items.size());
  double loop = 1e9;
  double serial = 1e9;
  double worker = 1e9;
  double root_half = 1e9;
  double root_whole = 1e9;
  for (int t = 0; t < tries; ++t) {
    loop = std::min(loop, bare_loop_seconds(items));
    serial = std::min(serial, serial_run_seconds(items));
    worker = std::min(worker, worker_task_seconds(items));
    root_half = std::min(root_half, root_cpu_seconds(items, items.size() / 2));
    root_whole = std::min(root_whole, root_cpu_seconds(items, items.size()));
  }
  engine_costs c;
  // The function's own time is in the sampled item time: charge only what the engine adds to it.
  c.serial_per_item = std::max(0.0, serial - loop) / n;
  c.worker_per_item = std::max(0.0, worker - loop) / n;
  // The root's run has fixed costs (starting the worker, the first chunk's wait): the second half
  // of the items costs only what each item adds. A noisy difference falls back to the whole run.
  const double root_added = (root_whole - root_half) / (n / 2.0);
  c.root_per_item = root_added > 0.0 ? root_added : root_whole / n;
  c.measured = true;
  c.measure_seconds = monotonic_seconds() - start;
  return c;
}

const engine_costs& measure_engine_costs() {
  static const engine_costs cached = measure_engine_costs_uncached();
  return cached;
}

}  // namespace amorsize
