// The cost model on injected measurements: no clocks, no MPI, no machine-dependent numbers.
#include <amorsize/cost_model.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

/// A local run on one node with `cores` cores and overheads like those measured on these machines.
model_inputs local_inputs(double item_seconds, std::size_t items, int cores = 8) {
  model_inputs in;
  in.work.item_seconds = std::vector<double>(5, item_seconds);
  in.work.summarise();
  in.work.cpu_per_wall = 1.0;
  in.work.input_bytes = 8;
  in.work.result_bytes = 8;
  in.work.serialize_seconds = 1e-6;
  node_facts node;
  node.physical_cores = cores;
  node.logical_cores = cores;
  node.usable_cores = cores;
  node.available_memory = std::uint64_t{16} << 30U;
  in.cluster.nodes = {node};
  in.cluster.ranks_per_node = {1};
  in.cluster.node_of_rank = {0};
  in.local.measured = true;
  in.local.process_spawn_fixed = 0.3e-3;
  in.local.process_spawn_per_worker = 0.4e-3;
  in.local.thread_spawn_per_worker = 60e-6;
  in.local.chunk_round_trip = 15e-6;
  in.local.pipe_bandwidth = 2e9;
  in.request.total_items = items;
  return in;
}

/// Item times with the given mean and coefficient of variation (two values around the mean).
void set_spread(model_inputs& in, double mean, double cv) {
  in.work.item_seconds = {mean * (1.0 - cv), mean * (1.0 + cv), mean * (1.0 - cv), mean * (1.0 + cv)};
  in.work.summarise();
}

/// Returns whether the plan's reason has `needle` (warnings are checked by kind, not by their sentences).
bool reason_says(const plan& p, const std::string& needle) { return p.reason.find(needle) != std::string::npos; }

/// Returns the message of the plan's warning of `kind`; fails the test when there is none.
std::string warning_message(const plan& p, warning_kind kind) {
  const auto found =
      std::find_if(p.warnings.begin(), p.warnings.end(), [&](const plan_warning& w) { return w.kind == kind; });
  INFO("warning " << to_string(kind));
  REQUIRE(found != p.warnings.end());
  return found->message;
}

/// An MPI run over `ranks_per_node`, with shared-memory and network costs seen on these machines.
model_inputs mpi_inputs(double item_seconds, std::size_t items, std::vector<int> ranks_per_node, int cores = 2) {
  model_inputs in = local_inputs(item_seconds, items, cores);
  in.cluster.mpi = true;
  in.cluster.nodes.assign(ranks_per_node.size(), in.cluster.nodes.front());
  in.cluster.ranks_per_node = ranks_per_node;
  in.cluster.world_size = 0;
  for (std::size_t n = 0; n < ranks_per_node.size(); ++n) {
    for (int r = 0; r < ranks_per_node[n]; ++r) in.cluster.node_of_rank.push_back(static_cast<int>(n));
    in.cluster.world_size += ranks_per_node[n];
  }
  in.local = {};
  in.links.same_node = {true, 1, 1e-6, 7e9};
  if (ranks_per_node.size() > 1) in.links.other_node = {true, ranks_per_node[0], 20e-6, 1e9};
  return in;
}

}  // namespace

TEST_CASE("a fast function is advised to run serially, with the numbers that show why", "[cost_model]") {
  const plan p = make_plan(local_inputs(1e-6, 1000));
  CHECK(p.serial);
  CHECK(p.n_jobs == 1);
  CHECK(p.backend == backend_kind::serial);
  CHECK(p.estimated_speedup == 1.0);  // the plan runs serially: serial time / serial time
  CHECK(p.profile.parallel_speedup < 1.2);  // the rejected alternative
  CHECK(p.profile.parallel_speedup > 0.0);
  CHECK(reason_says(p, "below 1.2x"));
  CHECK(p.has_warning(warning_kind::insufficient_speedup));
  // The verdict comes first; the workers and chunks that follow are the rejected plan's, named so.
  INFO(p.reason);
  CHECK(p.reason.rfind("Serial: ", 0) == 0);
  const std::size_t rejected = p.reason.find("The parallel plan it rejected: ");
  REQUIRE(rejected != std::string::npos);
  CHECK(p.reason.find("Chunks: ") > rejected);
}

TEST_CASE("the caller's use of each result is charged to the serial run and to the root", "[cost_model]") {
  model_inputs in = local_inputs(100e-6, 20000);
  const plan free_consumer = make_plan(in);
  REQUIRE_FALSE(free_consumer.serial);
  in.request.consumer_seconds_per_item = 50e-6;
  const plan busy_consumer = make_plan(in);
  const double added = (20000 - 5) * 50e-6;  // the items left after the 5 sampled
  CHECK(busy_consumer.profile.serial_seconds == Approx(free_consumer.profile.serial_seconds + added).epsilon(1e-9));
  CHECK(busy_consumer.profile.work_seconds == Approx(free_consumer.profile.work_seconds));
  CHECK(busy_consumer.profile.consumer_per_item == 50e-6);
  // The root now spends 50 us on each 100 us item: it bounds the run, whatever the 8 workers do.
  CHECK(busy_consumer.profile.parallel_seconds > added);
  CHECK(busy_consumer.profile.root_load > 0.9);
  CHECK(busy_consumer.profile.parallel_speedup < 3.5);
  CHECK(free_consumer.profile.parallel_speedup > 5.0);
  CHECK(free_consumer.profile.consumer_per_item == 0.0);
}

TEST_CASE("a slow uniform function uses every core with chunks near the target duration", "[cost_model]") {
  model_inputs in = local_inputs(2e-3, 100000);
  const plan p = make_plan(in);
  CHECK_FALSE(p.serial);
  CHECK(p.backend == backend_kind::processes);
  CHECK(p.n_jobs == 8);
  CHECK(p.workers_per_node == std::vector<int>{8});
  const double chunk_seconds = static_cast<double>(p.chunksize) * 2e-3;
  CHECK(chunk_seconds == Approx(0.2).epsilon(0.05));
  CHECK(p.schedule.kind == schedule_kind::fixed);
  CHECK(p.estimated_speedup > 7.0);
  CHECK(p.estimated_speedup <= 8.0);

  SECTION("a longer target gives longer chunks") {
    in.request.target_chunk_duration = 0.5;
    CHECK(make_plan(in).chunksize > p.chunksize);
  }
  SECTION("few items are split so every worker gets several chunks") {
    in.request.total_items = 400;
    const plan small = make_plan(in);
    CHECK(small.chunksize <= 400 / (8 * 8));
    CHECK(reason_says(small, "for balance"));
    // The dispatcher aims at what the cut chunk takes, so it does not grow it back to the 0.2 s target.
    CHECK(small.schedule.target_seconds == Approx(static_cast<double>(small.chunksize) * 2e-3).epsilon(0.01));
  }
}

TEST_CASE("varying item times give smaller, decreasing chunks and unordered streaming", "[cost_model]") {
  model_inputs steady = local_inputs(2e-3, 100000);
  steady.request.mode = plan_mode::streaming;
  model_inputs varied = steady;
  set_spread(varied, 2e-3, 1.5);
  REQUIRE(varied.work.cv > 1.0);
  const plan a = make_plan(steady);
  const plan b = make_plan(varied);
  CHECK(b.chunksize < a.chunksize);
  CHECK(b.schedule.kind == schedule_kind::guided);
  CHECK(b.schedule.min_chunksize <= b.schedule.chunksize);
  CHECK(a.use_ordered);
  CHECK_FALSE(b.use_ordered);
  CHECK(reason_says(b, "vary"));
}

TEST_CASE("a busy root node gives a warning that the run may be slower than predicted", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 10000, 2);
  in.cluster.nodes.front().load_average = 1.9;  // this process and a little more: not busy
  CHECK_FALSE(make_plan(in).has_warning(warning_kind::busy_machine));
  in.cluster.nodes.front().load_average = 6.3;
  const plan p = make_plan(in);
  CHECK_THAT(warning_message(p, warning_kind::busy_machine), Contains("load average of 6.3 on 2 usable cores"));
  CHECK(p.n_jobs == 2);  // a warning only: the cores are still counted
  CHECK(p.profile.load_average == 6.3);
}

TEST_CASE("threads inside the function mean fewer workers and a nested-parallelism warning", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 10000);
  in.work.cpu_per_wall = 3.9;
  in.work.threads_inside = 4;
  const plan p = make_plan(in);
  CHECK(p.n_jobs == 2);
  CHECK_THAT(warning_message(p, warning_kind::nested_parallelism), Contains("runs 4 threads") && Contains("cut to 2"));

  SECTION("workers forced by the caller are not cut, and the warning says what they cost") {
    in.request.workers_per_node = 8;
    const plan forced = make_plan(in);
    CHECK(forced.n_jobs == 8);
    CHECK_THAT(warning_message(forced, warning_kind::nested_parallelism),
               Contains("the 8 workers per node asked for may oversubscribe") && !Contains("cut to"));
  }
}

TEST_CASE("a function that mostly waits may have more workers than cores", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 10000, 2);
  in.work.cpu_per_wall = 0.01;
  const plan p = make_plan(in);
  CHECK(p.n_jobs > 2);
  CHECK(p.n_jobs <= 16);
  CHECK(reason_says(p, "waits"));
  CHECK(p.has_warning(warning_kind::waits_on_io));
}

TEST_CASE("results too large for the root's memory give a warning with a safe batch size", "[cost_model]") {
  model_inputs in = local_inputs(5e-3, 100000);
  in.work.result_bytes = 1 << 20;  // 100000 MiB of results, 16 GiB available
  const plan p = make_plan(in);
  const std::size_t batch = safe_batch_size(in.work.result_bytes, in.cluster.nodes[0].available_memory, 0.5);
  CHECK(batch == 8192);
  CHECK_THAT(warning_message(p, warning_kind::results_exceed_memory), Contains(std::to_string(batch)));

  SECTION("streaming the same results has no such warning") {
    in.request.mode = plan_mode::streaming;
    CHECK_FALSE(make_plan(in).has_warning(warning_kind::results_exceed_memory));
  }
}

TEST_CASE("each call's memory growth limits workers per node", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 10000);
  in.work.memory_per_call = std::uint64_t{3} << 30U;  // 3 GiB per call, 8 GiB budget
  const plan p = make_plan(in);
  CHECK(p.n_jobs == 2);
  CHECK(p.has_warning(warning_kind::workers_cut_for_memory));
}

TEST_CASE("an endless source gets a streaming plan with a bounded buffer", "[cost_model]") {
  model_inputs in = local_inputs(5e-3, 0);
  in.request.total_items.reset();
  in.request.mode = plan_mode::streaming;
  in.work.result_bytes = 1 << 20;
  const plan p = make_plan(in);
  CHECK_FALSE(p.serial);
  CHECK(p.buffer_size > 0);
  CHECK(p.buffer_size >= static_cast<std::size_t>(p.n_jobs) * p.chunksize);
  CHECK(static_cast<double>(p.buffer_size) * in.work.result_bytes <= 0.5 * 16.0 * (1 << 30));
  CHECK(reason_says(p, "steady-state"));
  CHECK_FALSE(p.profile.total_items.has_value());

  SECTION("huge results cut the window to fit in memory") {
    in.work.result_bytes = 4.0 * (1 << 30);  // 4 GiB each: two fit in half of 16 GiB
    const plan big = make_plan(in);
    CHECK(big.buffer_size == 2);
    CHECK(big.has_warning(warning_kind::window_cut_for_memory));
  }
  SECTION("a window smaller than the items in flight makes workers wait") {
    in.request.buffer_size = 1;
    const plan small = make_plan(in);
    CHECK(small.buffer_size == 1);
    CHECK(small.has_warning(warning_kind::window_below_in_flight));
    CHECK_FALSE(p.has_warning(warning_kind::window_below_in_flight));
  }
  SECTION("gathering all results of an endless source is flagged") {
    in.request.mode = plan_mode::gather_all;
    CHECK(make_plan(in).has_warning(warning_kind::endless_source_gathered));
  }
}

TEST_CASE("high overhead makes streaming unordered", "[cost_model]") {
  model_inputs in = local_inputs(200e-6, 200000, 2);
  in.request.mode = plan_mode::streaming;
  in.work.result_bytes = 2e5;  // 200 kB results: moving them costs half the item time
  in.local.pipe_bandwidth = 2e9;
  in.request.backend = backend_kind::processes;  // threads would not move them at all
  const plan p = make_plan(in);
  CHECK(p.profile.overhead_fraction > 0.2);
  CHECK_FALSE(p.use_ordered);
  CHECK(reason_says(p, "Unordered: overheads"));

  SECTION("unless the caller asks for order") {
    in.request.prefer_ordered = true;
    CHECK(make_plan(in).use_ordered);
  }
}

TEST_CASE("a CPU quota or a Slurm allocation caps workers through usable cores", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 10000, 64);
  in.cluster.nodes[0].usable_cores = 2;  // what probe computes for a 2-CPU quota on 64 cores
  in.cluster.nodes[0].cpu_quota = 2.0;
  const plan p = make_plan(in);
  CHECK(p.n_jobs == 2);
  CHECK(reason_says(p, "CPU quota 2.0"));
}

TEST_CASE("under MPI the root's rank dispatches and the other ranks work", "[cost_model]") {
  SECTION("three ranks on two cores: two workers") {
    const plan p = make_plan(mpi_inputs(2e-3, 10000, {3}));
    CHECK(p.backend == backend_kind::mpi);
    CHECK(p.workers_per_node == std::vector<int>{2});
    CHECK(p.profile.spawn_cost_per_worker == 0.0);
  }
  SECTION("one rank: no worker, serial with advice") {
    const plan p = make_plan(mpi_inputs(2e-3, 10000, {1}));
    INFO(p.reason);
    CHECK(p.serial);
    CHECK(p.has_warning(warning_kind::no_worker_rank));
    CHECK(p.reason.rfind("Serial: there is no worker rank", 0) == 0);
    CHECK_FALSE(reason_says(p, "rejected"));  // no parallel plan was possible, so none was rejected
  }
  SECTION("three nodes: every node's cores, the root's node less the root's rank") {
    const plan p = make_plan(mpi_inputs(2e-3, 100000, {2, 2, 2}));
    CHECK(p.workers_per_node == std::vector<int>{1, 2, 2});
    CHECK(p.n_jobs == 5);
    CHECK(p.profile.nodes == 3);
    CHECK(p.profile.latency_other_node > 0.0);
  }
  SECTION("more ranks than cores: the extra ranks sit out") {
    const plan p = make_plan(mpi_inputs(2e-3, 10000, {7}));
    CHECK(p.workers_per_node == std::vector<int>{2});
  }
  SECTION("more workers asked for than a node has ranks: as many as there are, with a warning") {
    model_inputs in = mpi_inputs(2e-3, 10000, {3});
    in.request.workers_per_node = 4;
    const plan p = make_plan(in);
    CHECK(p.workers_per_node == std::vector<int>{2});
    CHECK_THAT(warning_message(p, warning_kind::fewer_ranks_than_asked), Contains("2 worker ranks") && Contains("the 4"));
  }
}

TEST_CASE("forced workers and chunk size are obeyed and explained", "[cost_model]") {
  model_inputs in = local_inputs(1e-6, 1000);
  in.request.workers_per_node = 3;
  in.request.chunksize = 7;
  const plan p = make_plan(in);
  CHECK_FALSE(p.serial);  // asked for, so no serial override; the speedup warning remains
  CHECK(p.n_jobs == 3);
  CHECK(p.chunksize == 7);
  CHECK(reason_says(p, "as asked"));
  CHECK(p.has_warning(warning_kind::serial_as_fast));
}

TEST_CASE("a local backend that was asked for runs in parallel even where serial would do", "[cost_model]") {
  for (const backend_kind asked : {backend_kind::processes, backend_kind::threads}) {
    model_inputs in = local_inputs(1e-6, 1000);
    in.request.backend = asked;
    const plan p = make_plan(in);
    INFO(to_string(asked));
    CHECK_FALSE(p.serial);
    CHECK(p.backend == asked);
    CHECK(p.n_jobs >= 1);
    CHECK(reason_says(p, "as asked"));
    CHECK(p.has_warning(warning_kind::serial_as_fast));
  }
}

TEST_CASE("the root that dispatches tiny chunks keeps a core for itself", "[cost_model]") {
  model_inputs in = local_inputs(50e-6, 10000000, 4);
  in.local.chunk_round_trip = 200e-6;
  in.request.chunksize = 1;  // every item is a chunk: the root is busy
  const plan p = make_plan(in);
  INFO(p.reason);
  CHECK(p.profile.root_load > 0.5);
  CHECK(p.has_warning(warning_kind::root_bottleneck));
  CHECK(reason_says(p, "keeps 1 core(s) for it"));  // the root bounds the run: a fourth worker would add nothing
  CHECK(p.n_jobs == 3);
}

TEST_CASE("the root keeps no core of its own when the workers it would take speed the run", "[cost_model]") {
  // Half of each item's time is the caller's work on the root: busy half the time, it still leaves
  // two workers on two cores nearly twice as fast as one (measured 1.84-1.88x against 1.09-1.43x).
  model_inputs in = local_inputs(100e-6, 8000, 2);
  in.request.consumer_seconds_per_item = 50e-6;
  const plan p = make_plan(in);
  INFO(p.reason);
  CHECK_FALSE(p.serial);
  CHECK(p.n_jobs == 2);
  CHECK(reason_says(p, "a core of its own would cost the run 1 worker"));
  CHECK(p.estimated_speedup > 1.5);
}

TEST_CASE("one worker beside a root busy with the caller's work runs when the items are long", "[cost_model]") {
  // 100 us items and 150 us of the caller's work per result on 2 cores: the root bounds the run and
  // keeps a core, and the one worker left overlaps the items with the caller's work (1.6x, not noise).
  model_inputs in = local_inputs(100e-6, 8000, 2);
  in.request.consumer_seconds_per_item = 150e-6;
  const plan p = make_plan(in);
  INFO(p.reason);
  CHECK_FALSE(p.serial);
  CHECK(p.n_jobs == 1);
  CHECK(p.estimated_speedup > 1.4);
  // Microsecond items: the same overlap would rest on the engine's own per-item costs.
  model_inputs tiny = local_inputs(1e-6, 800000, 2);
  tiny.request.consumer_seconds_per_item = 1.5e-6;
  tiny.work.serialize_seconds = 0.7e-6;
  const plan q = make_plan(tiny);
  INFO(q.reason);
  CHECK(q.serial);
}

TEST_CASE("predict follows the rounds of equal chunks exactly for constant items", "[cost_model]") {
  model_inputs in = local_inputs(10e-3, 1000, 2);
  in.local = {};  // no overheads at all: pure arithmetic
  in.local.measured = true;
  in.work.serialize_seconds = 0.0;
  in.work.item_seconds = {10e-3};
  in.work.summarise();
  chunk_schedule s;
  s.chunksize = 10;
  // 100 items in 10 chunks on 2 workers: 5 rounds of 0.1 s.
  prediction p = predict(in, 100, 2, s);
  CHECK(p.parallel_seconds - in.work.total_seconds == Approx(0.5));
  // 110 items: 11 chunks, the last alone in round 6.
  p = predict(in, 110, 2, s);
  CHECK(p.parallel_seconds - in.work.total_seconds == Approx(0.6));
  // 105 items: 11 chunks, the last has 5 items.
  p = predict(in, 105, 2, s);
  CHECK(p.parallel_seconds - in.work.total_seconds == Approx(0.55));
  CHECK(p.serial_seconds == Approx(1.06));
}

TEST_CASE("safe batch size divides the budget by the result size", "[cost_model]") {
  CHECK(safe_batch_size(1024.0, 1 << 20, 0.5) == 512);
  CHECK(safe_batch_size(1e12, 1 << 20, 0.5) == 1);
  CHECK(safe_batch_size(0.0, 1 << 20, 0.5) > 1000000);
}

TEST_CASE("locally, large results or costly process start-up choose threads, otherwise processes", "[cost_model]") {
  SECTION("small results over a long run: crash-isolated processes") {
    const plan p = make_plan(local_inputs(10e-3, 10000));
    CHECK(p.backend == backend_kind::processes);
    CHECK(reason_says(p, "Processes (crash-isolated)"));
  }
  SECTION("results that take long to move between processes: threads") {
    model_inputs in = local_inputs(200e-6, 200000, 2);
    in.work.result_bytes = 2e5;
    const plan p = make_plan(in);
    CHECK(p.backend == backend_kind::threads);
    CHECK(reason_says(p, "Threads: moving each item"));
    CHECK(p.has_warning(warning_kind::threads_not_crash_isolated));
  }
  SECTION("a sampled item crashed the sampler: processes, which survive it, where threads would move results faster") {
    model_inputs in = local_inputs(10e-3, 2000, 2);
    in.work.result_bytes = 4e6;  // 2 ms of a 10 ms item to move between processes
    CHECK(make_plan(in).backend == backend_kind::threads);
    in.work.crashed = 1;
    const plan p = make_plan(in);
    CHECK(p.backend == backend_kind::processes);
    CHECK(reason_says(p, "crashed the sampler"));
    CHECK_FALSE(p.has_warning(warning_kind::threads_not_crash_isolated));
  }
  SECTION("a short run where starting processes dominates: threads") {
    model_inputs in = local_inputs(2e-3, 40, 8);
    in.local.process_spawn_per_worker = 5e-3;
    const plan p = make_plan(in);
    CHECK(p.backend == backend_kind::threads);
    CHECK(reason_says(p, "starting worker processes"));
  }
  SECTION("a forced backend is kept") {
    model_inputs in = local_inputs(500e-6, 200000, 2);
    in.work.result_bytes = 2e5;
    in.request.backend = backend_kind::processes;
    CHECK(make_plan(in).backend == backend_kind::processes);
  }
  SECTION("under MPI the ranks work, whatever the result size") {
    model_inputs in = mpi_inputs(200e-6, 200000, {3});
    in.work.result_bytes = 2e5;
    CHECK(make_plan(in).backend == backend_kind::mpi);
  }
}

TEST_CASE("one cold first call does not make a trend of flat items", "[cost_model][spread]") {
  // 100000 items of about 50 ns, the first call 10 us (a cold cache, a lazy initialisation).
  sample_stats s;
  s.item_seconds = {10e-6, 48e-9, 52e-9, 49e-9, 51e-9};
  s.summarise();
  for (std::size_t j = 0; j < 16; ++j) {
    s.spread_positions.push_back(5 + static_cast<std::size_t>((j + 0.5) * 99995.0 / 16.0));
    s.spread_seconds.push_back(j % 2 == 0 ? 49e-9 : 51e-9);
  }
  s.spread_total_seconds = 16 * 50e-9;
  s.source_items = 100000;
  s.add_spread();
  CHECK(std::abs(s.trend) < 0.1);  // least squares made it about -7000%
  CHECK(s.mean_seconds == Approx(50e-9).epsilon(0.05));
}

TEST_CASE("the cost model plans a rising trend from the spread sample, in parallel and guided", "[cost_model][spread]") {
  // 4000 items rising from 0 to 2 ms: the first 5 take microseconds, the spread sample shows the rest.
  model_inputs in = local_inputs(0.0, 4000, 2);
  in.work.item_seconds.clear();
  for (int i = 0; i < 5; ++i) in.work.item_seconds.push_back(2e-3 * i / 3999.0);
  in.work.summarise();
  for (std::size_t j = 0; j < 16; ++j) {
    const std::size_t pos = 5 + static_cast<std::size_t>((j + 0.5) * 3995.0 / 16.0);
    in.work.spread_positions.push_back(pos);
    in.work.spread_seconds.push_back(2e-3 * static_cast<double>(pos) / 3999.0);
  }
  in.work.spread_total_seconds = 16e-3;
  in.work.source_items = 4000;
  in.work.add_spread();
  CHECK(in.work.mean_seconds == Approx(1e-3).epsilon(0.05));
  CHECK(in.work.trend == Approx(2.0).epsilon(0.1));
  const plan p = make_plan(in);
  CHECK_FALSE(p.serial);
  CHECK(p.n_jobs == 2);
  CHECK(p.schedule.kind == schedule_kind::guided);
  CHECK(p.profile.serial_seconds == Approx(4.0).epsilon(0.05));
  CHECK(p.estimated_speedup > 1.6);
  CHECK(p.estimated_speedup < 2.0);
}

TEST_CASE("an unreliable sample never plans one worker for seconds of work", "[cost_model][spread]") {
  // Five nearly free items, a steep trend fitted, and 2 s of work estimated: the overheads look large
  // next to the sampled items, but a serial plan would lose far more if the sample is wrong.
  model_inputs in = local_inputs(0.0, 4000, 2);
  in.work.item_seconds = {1e-6, 1e-6, 1e-6, 1e-6, 1e-6};
  in.work.summarise();
  in.work.mean_seconds = 0.5e-3;
  in.work.trend = 2.0;
  in.request.min_speedup = 5.0;  // pretend parallelism looks barely worth it
  const plan p = make_plan(in);
  CHECK_FALSE(p.serial);
  CHECK(p.n_jobs == 2);
  CHECK(p.has_warning(warning_kind::unreliable_sample));
}

TEST_CASE("planned fixed chunks make whole rounds of the workers", "[cost_model][spread]") {
  for (const std::size_t items : {20000U, 24000U, 5005U, 2001U}) {
    model_inputs in = local_inputs(0.0, items, 2);
    in.work.item_seconds = std::vector<double>(5, 0.2e-3);
    in.work.summarise();
    const plan p = make_plan(in);
    INFO("items " << items << ", chunk " << p.chunksize << ", reason " << p.reason);
    REQUIRE_FALSE(p.serial);
    REQUIRE(p.schedule.kind == schedule_kind::fixed);
    const std::size_t rest = items - 5;
    const std::size_t chunks = (rest + p.chunksize - 1) / p.chunksize;
    CHECK(chunks % 2 == 0);
  }
}

TEST_CASE("near-zero items get a serial plan once the engine's own per-item costs are charged", "[cost_model]") {
  // 20 M items of 10 ns on 8 cores: without the engine's costs eight workers look like a big win.
  model_inputs in = local_inputs(10e-9, 20000000, 8);
  in.work.serialize_seconds = 0.0;
  in.work.input_bytes = 0.0;
  in.work.result_bytes = 0.0;
  const plan uncharged = make_plan(in);
  CHECK_FALSE(uncharged.serial);
  // As measured on a 2-core machine: a serial run adds 18 ns an item, the root spends 27 ns, a worker 2 ns.
  // The root then caps a parallel run at one item per 27 ns, where a serial run takes 28 ns.
  in.engine = {true, 18e-9, 27e-9, 2e-9, 0.0};
  const plan charged = make_plan(in);
  CHECK(charged.serial);
  CHECK(charged.profile.parallel_speedup < 1.2);
  CHECK(charged.profile.engine_root_per_item == 27e-9);
  CHECK(reason_says(charged, "per item on the root"));
}

TEST_CASE("on one node the root's CPU competes with the workers' for the cores", "[cost_model]") {
  model_inputs in = local_inputs(100e-9, 10000000, 2);
  in.work.serialize_seconds = 0.0;
  in.work.input_bytes = 0.0;
  in.work.result_bytes = 0.0;
  in.engine = {true, 0.0, 60e-9, 0.0, 0.0};
  chunk_schedule s;
  s.chunksize = 100000;
  // The workers alone need 0.5 s and the root 0.6 s; together 1.6 core-seconds on 2 cores.
  const prediction one_node = predict(in, 10000000, 2, s);
  CHECK(one_node.parallel_seconds - in.work.total_seconds >= 0.8);
  // Spread over two nodes the root has its own cores: it is the slowest part at 0.6 s.
  in.cluster.nodes.push_back(in.cluster.nodes.front());
  const prediction two_nodes = predict(in, 10000000, 2, s);
  CHECK(two_nodes.parallel_seconds - in.work.total_seconds < 0.7);
}

TEST_CASE("a serial run re-planned from dearer items than sampled goes parallel, from items as sampled stays serial",
          "[cost_model]") {
  model_inputs in = local_inputs(1e-6, 1000, 2);  // 1 ms of work: serial
  in.engine = {true, 20e-9, 30e-9, 2e-9, 0.0};
  REQUIRE(make_plan(in).serial);
  // 60 items ran at 1 ms each; 940 are left: about a second of work for 2 workers.
  const plan rest = plan_rest_of_run(in, 1e-3, 60, 940);
  CHECK_FALSE(rest.serial);
  CHECK(rest.n_jobs == 2);
  CHECK(rest.profile.avg_execution_time == 1e-3);
  CHECK(rest.profile.total_items == 1000);  // the items run count as the sample: 940 are left
  CHECK(rest.profile.sampling_seconds == 0.0);
  CHECK(rest.estimated_speedup > 1.5);
  CHECK(plan_rest_of_run(in, 1.1e-6, 60, 940).serial);
  // An endless stream is planned on its steady state.
  CHECK_FALSE(plan_rest_of_run(in, 1e-3, 60, std::nullopt).serial);
}
