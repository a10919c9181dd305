// The plan: its JSON form, its report, and plans made end to end by optimize / optimize_streaming.
#include <amorsize/error.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/plan.hpp>
#include <amorsize/probe.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

/// A parallel plan whose every field, profile included, differs from its default and from the others.
plan distinct_plan() {
  plan p;
  p.mode = plan_mode::streaming;
  p.backend = backend_kind::mpi;
  p.serial = false;
  p.n_jobs = 6;
  p.workers_per_node = {2, 4};
  p.chunksize = 37;
  p.schedule = {schedule_kind::guided, 37, 5, false, 0.7};
  p.use_ordered = false;
  p.buffer_size = 444;
  p.estimated_speedup = 4.25;
  p.reason = "Because \"quotes\" and unicode \xc3\xa9 survive.";
  p.warnings = {{warning_kind::busy_machine, "first warning: mind the gap"},
                {warning_kind::nested_parallelism, "second warning: pin OMP_NUM_THREADS=1"}};
  plan_profile& f = p.profile;
  f.sample_size = 7;
  f.total_items = 123456789012ULL;
  f.avg_execution_time = 0.0123;
  f.cv = 0.37;
  f.min_execution_time = 0.011;
  f.max_execution_time = 0.0199;
  f.cpu_per_wall = 1.75;
  f.threads_inside = 3;
  f.input_bytes = 17.5;
  f.result_bytes = 2048.25;
  f.serialize_seconds = 3.3e-6;
  f.memory_per_call = 5000000000ULL;  // above 2^32
  f.nodes = 2;
  f.world_size = 9;
  f.physical_cores = 16;
  f.logical_cores = 32;
  f.usable_cores = 12;
  f.cpu_quota = 11.5;
  f.load_average = 3.75;
  f.available_memory = 68719476736ULL;
  f.spawn_cost = 0.0021;
  f.spawn_cost_per_worker = 0.00047;
  f.thread_spawn_cost = 2.9e-5;
  f.chunk_overhead = 6.1e-5;
  f.engine_serial_per_item = 1.9e-8;
  f.engine_root_per_item = 2.6e-8;
  f.engine_worker_per_item = 1.5e-9;
  f.engine_measured = true;
  f.latency_same_node = 1.1e-6;
  f.bandwidth_same_node = 9.5e9;
  f.latency_other_node = 2.7e-6;
  f.bandwidth_other_node = 1.2e10;
  f.serial_seconds = 1234.5;
  f.parallel_seconds = 290.25;
  f.root_load = 0.31;
  f.overhead_fraction = 0.0625;
  f.sampling_seconds = 0.0861;
  f.probe_seconds = 0.0042;
  f.benchmark_seconds = 0.0313;
  f.planning_seconds = 0.0407;
  return p;
}

}  // namespace

TEST_CASE("to_string names plan modes and backends", "[plan]") {
  CHECK(to_string(plan_mode::gather_all) == "gather_all");
  CHECK(to_string(plan_mode::streaming) == "streaming");
  CHECK(to_string(backend_kind::serial) == "serial");
  CHECK(to_string(backend_kind::processes) == "processes");
  CHECK(to_string(backend_kind::threads) == "threads");
  CHECK(to_string(backend_kind::mpi) == "mpi");
  CHECK(to_string(warning_kind::nested_parallelism) == "nested_parallelism");
  CHECK(to_string(warning_kind::round_trip_assumed) == "round_trip_assumed");
}

TEST_CASE("every enum name parses back to its value", "[plan]") {
  for (const plan_mode m : {plan_mode::gather_all, plan_mode::streaming}) CHECK(parse_plan_mode(to_string(m)) == m);
  for (const backend_kind b : {backend_kind::serial, backend_kind::processes, backend_kind::threads, backend_kind::mpi}) {
    CHECK(parse_backend_kind(to_string(b)) == b);
  }
  for (const schedule_kind k : {schedule_kind::fixed, schedule_kind::guided}) CHECK(parse_schedule_kind(to_string(k)) == k);
  // Every warning kind, by its underlying value up to the last one, has its own name.
  std::vector<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(warning_kind::round_trip_assumed); ++i) {
    const auto kind = static_cast<warning_kind>(i);
    INFO(i);
    CHECK(to_string(kind) != "?");
    CHECK(parse_warning_kind(to_string(kind)) == kind);
    names.push_back(to_string(kind));
  }
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
}

TEST_CASE("an unknown enum name is an input error that names it", "[plan]") {
  CHECK_THROWS_MATCHES(parse_plan_mode("fast"), input_error,
                       Catch::Matchers::Message("unknown plan mode 'fast': use gather_all or streaming"));
  CHECK_THROWS_MATCHES(parse_backend_kind("gpu"), input_error,
                       Catch::Matchers::Message("unknown backend 'gpu': use serial, processes, threads or mpi"));
  CHECK_THROWS_WITH(parse_schedule_kind("static"), Contains("'static'"));
  CHECK_THROWS_WITH(parse_warning_kind("Busy machine"), Contains("unknown warning kind 'Busy machine'"));
  CHECK_THROWS_AS(parse_backend_kind(""), input_error);
}

// A plan from another version, or a corrupted one, is refused rather than read as a default.
TEST_CASE("plan::from_json rejects unknown names instead of defaulting", "[plan]") {
  const nlohmann::json good = distinct_plan().to_json();
  auto with = [&](const nlohmann::json::json_pointer& where, const char* value) {
    nlohmann::json j = good;
    j[where] = value;
    return j;
  };
  CHECK_THROWS_WITH(plan::from_json(with(nlohmann::json::json_pointer("/mode"), "stream")), Contains("'stream'"));
  CHECK_THROWS_WITH(plan::from_json(with(nlohmann::json::json_pointer("/backend"), "gpu")), Contains("'gpu'"));
  CHECK_THROWS_WITH(plan::from_json(with(nlohmann::json::json_pointer("/schedule/kind"), "dynamic")), Contains("'dynamic'"));
  CHECK_THROWS_WITH(plan::from_json(with(nlohmann::json::json_pointer("/warnings/1/kind"), "mystery")),
                    Contains("'mystery'"));
  CHECK_NOTHROW(plan::from_json(good));
}

TEST_CASE("has_warning finds a warning by its kind", "[plan]") {
  plan p;
  CHECK_FALSE(p.has_warning(warning_kind::busy_machine));
  p.warn(warning_kind::busy_machine, "the node is busy");
  CHECK(p.has_warning(warning_kind::busy_machine));
  CHECK_FALSE(p.has_warning(warning_kind::root_bottleneck));
  CHECK(p.warnings.back() == plan_warning{warning_kind::busy_machine, "the node is busy"});
}

TEST_CASE("plan::to_json has the plan's and the profile's keys", "[plan]") {
  const nlohmann::json j = distinct_plan().to_json();
  for (const char* key : {"n_jobs", "workers_per_node", "chunksize", "use_ordered", "estimated_speedup", "serial",
                          "reason", "warnings", "profile", "mode", "backend", "schedule", "buffer_size"}) {
    INFO(key);
    CHECK(j.contains(key));
  }
  const nlohmann::json& prof = j.at("profile");
  for (const char* key : {"avg_execution_time", "cv", "physical_cores", "spawn_cost", "chunk_overhead",
                          "planning_seconds", "total_items", "memory_per_call", "sample_size"}) {
    INFO(key);
    CHECK(prof.contains(key));
  }
  CHECK(j.at("n_jobs") == 6);
  CHECK(j.at("workers_per_node") == nlohmann::json::array({2, 4}));
  CHECK(j.at("mode") == "streaming");
  CHECK(j.at("backend") == "mpi");
  CHECK(j.at("schedule").at("kind") == "guided");
  REQUIRE(j.at("warnings").size() == 2);
  CHECK(j.at("warnings")[0] == nlohmann::json{{"kind", "busy_machine"}, {"message", "first warning: mind the gap"}});
  CHECK(j.at("warnings")[1].at("kind") == "nested_parallelism");
  CHECK(prof.at("physical_cores") == 16);
  CHECK(prof.at("total_items") == 123456789012ULL);
  CHECK(prof.at("avg_execution_time").get<double>() == 0.0123);
}

// Every field survives, also through text as the plan is broadcast to the ranks, and an unknown
// item count stays unknown (null), not 0.
TEST_CASE("plan JSON round trips every field", "[plan]") {
  plan original = distinct_plan();
  for (const bool sized : {true, false}) {
    if (!sized) original.profile.total_items.reset();
    INFO("total_items " << (sized ? "set" : "nullopt"));
    const nlohmann::json j = original.to_json();
    CHECK(plan::from_json(j).to_json() == j);
    CHECK(plan::from_json(nlohmann::json::parse(j.dump())).to_json() == j);
    CHECK(plan::from_json(nlohmann::json::parse(j.dump())).to_json().dump() == j.dump());
    if (!sized) CHECK(j.at("profile").at("total_items").is_null());

    const plan back = plan::from_json(nlohmann::json::parse(j.dump()));
    CHECK(back.mode == original.mode);
    CHECK(back.backend == original.backend);
    CHECK(back.serial == original.serial);
    CHECK(back.n_jobs == original.n_jobs);
    CHECK(back.workers_per_node == original.workers_per_node);
    CHECK(back.chunksize == original.chunksize);
    CHECK(back.schedule.kind == original.schedule.kind);
    CHECK(back.schedule.chunksize == original.schedule.chunksize);
    CHECK(back.schedule.min_chunksize == original.schedule.min_chunksize);
    CHECK(back.schedule.adaptive == original.schedule.adaptive);
    CHECK(back.schedule.target_seconds == original.schedule.target_seconds);
    CHECK(back.use_ordered == original.use_ordered);
    CHECK(back.buffer_size == original.buffer_size);
    CHECK(back.estimated_speedup == original.estimated_speedup);
    CHECK(back.reason == original.reason);
    CHECK(back.warnings == original.warnings);
    // Field by field, so a field the JSON leaves out cannot pass unnoticed.
    const plan_profile& a = back.profile;
    const plan_profile& b = original.profile;
    CHECK(a.sample_size == b.sample_size);
    CHECK(a.total_items == b.total_items);
    CHECK(a.avg_execution_time == b.avg_execution_time);
    CHECK(a.cv == b.cv);
    CHECK(a.min_execution_time == b.min_execution_time);
    CHECK(a.max_execution_time == b.max_execution_time);
    CHECK(a.cpu_per_wall == b.cpu_per_wall);
    CHECK(a.threads_inside == b.threads_inside);
    CHECK(a.input_bytes == b.input_bytes);
    CHECK(a.result_bytes == b.result_bytes);
    CHECK(a.serialize_seconds == b.serialize_seconds);
    CHECK(a.memory_per_call == b.memory_per_call);
    CHECK(a.nodes == b.nodes);
    CHECK(a.world_size == b.world_size);
    CHECK(a.physical_cores == b.physical_cores);
    CHECK(a.logical_cores == b.logical_cores);
    CHECK(a.usable_cores == b.usable_cores);
    CHECK(a.cpu_quota == b.cpu_quota);
    CHECK(a.load_average == b.load_average);
    CHECK(a.available_memory == b.available_memory);
    CHECK(a.spawn_cost == b.spawn_cost);
    CHECK(a.spawn_cost_per_worker == b.spawn_cost_per_worker);
    CHECK(a.thread_spawn_cost == b.thread_spawn_cost);
    CHECK(a.chunk_overhead == b.chunk_overhead);
    CHECK(a.engine_serial_per_item == b.engine_serial_per_item);
    CHECK(a.engine_root_per_item == b.engine_root_per_item);
    CHECK(a.engine_worker_per_item == b.engine_worker_per_item);
    CHECK(a.engine_measured == b.engine_measured);
    CHECK(a.latency_same_node == b.latency_same_node);
    CHECK(a.bandwidth_same_node == b.bandwidth_same_node);
    CHECK(a.latency_other_node == b.latency_other_node);
    CHECK(a.bandwidth_other_node == b.bandwidth_other_node);
    CHECK(a.serial_seconds == b.serial_seconds);
    CHECK(a.parallel_seconds == b.parallel_seconds);
    CHECK(a.root_load == b.root_load);
    CHECK(a.overhead_fraction == b.overhead_fraction);
    CHECK(a.sampling_seconds == b.sampling_seconds);
    CHECK(a.probe_seconds == b.probe_seconds);
    CHECK(a.benchmark_seconds == b.benchmark_seconds);
    CHECK(a.planning_seconds == b.planning_seconds);
  }
}

TEST_CASE("a default plan round trips as serial", "[plan]") {
  const plan back = plan::from_json(plan{}.to_json());
  CHECK(back.serial);
  CHECK(back.backend == backend_kind::serial);
  CHECK(back.mode == plan_mode::gather_all);
  CHECK(back.schedule.kind == schedule_kind::fixed);
  CHECK(back.to_json() == plan{}.to_json());
}

TEST_CASE("explain says serially for a serial plan", "[plan]") {
  plan p;
  p.reason = "items are far too quick";
  const std::string text = p.explain();
  CHECK_THAT(text, Contains("serially"));
  CHECK_THAT(text, Contains("items are far too quick"));
  CHECK_THAT(text, !Contains("workers ("));
  CHECK_THAT(text, Contains("endless or unsized"));  // no total_items
}

TEST_CASE("explain gives workers, chunk size and every warning of a parallel plan", "[plan]") {
  const plan p = distinct_plan();
  const std::string text = p.explain();
  CHECK_THAT(text, !Contains("serially"));
  CHECK_THAT(text, Contains("6 workers"));
  CHECK_THAT(text, Contains("37 items"));
  CHECK_THAT(text, Contains("guided"));
  CHECK_THAT(text, Contains("unordered"));
  CHECK_THAT(text, Contains("4.25x"));
  CHECK_THAT(text, Contains(p.reason));
  for (const auto& w : p.warnings) CHECK_THAT(text, Contains(w.message) && Contains(std::string(to_string(w.kind))));
  CHECK_THAT(text, Contains("per node: 2 4"));
  CHECK_THAT(text, Contains("of 123456789012"));
}

// Items sleep ~5 ms: parallel processes pay. The overheads are measured once, so a second plan is quicker.
TEST_CASE("optimize plans a parallel run for a 5 ms function over 2000 items", "[plan]") {
  auto sleep_5ms = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return x;
  };
  std::vector<int> items(2000);
  for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int>(i);

  const auto first = optimize(sleep_5ms, items);
  INFO(first.explain());
  CHECK_FALSE(first.serial);
  CHECK(first.mode == plan_mode::gather_all);
  // Processes, unless starting them measured costly (a busy machine): then threads, with the reason.
  CHECK((first.backend == backend_kind::processes || first.backend == backend_kind::threads));
  CHECK_THAT(first.reason, Contains(first.backend == backend_kind::processes ? "Processes" : "Threads"));
  CHECK(first.n_jobs >= 1);
  CHECK(first.chunksize >= 1);
  CHECK(first.chunksize <= 2000);
  CHECK(first.estimated_speedup >= 1.2);
  CHECK(first.buffer_size == 2000);
  CHECK(first.use_ordered);
  CHECK(first.profile.total_items == std::optional<std::size_t>(2000));
  CHECK(first.profile.sample_size == 5);
  CHECK(first.profile.avg_execution_time >= 4e-3);
  CHECK(first.profile.planning_seconds > 0.0);
  CHECK(first.profile.planning_seconds >= first.profile.benchmark_seconds);
  CHECK(first.profile.planning_seconds < 5.0);  // a runaway; the target (20 ms) is checked by bench/planning_time
  CHECK(first.profile.sampling_seconds >= 20e-3);  // five sampled calls of at least 5 ms
  // 5 ms items dwarf the engine's nanoseconds: their measurement is skipped, and the plan says so.
  CHECK_FALSE(first.profile.engine_measured);
  CHECK_THAT(first.explain(), Contains("assumed, not measured"));
  CHECK(first.sampled_results.size() == 5);
  CHECK(first.data.size() == std::optional<std::size_t>(2000));

  const auto second = optimize(sleep_5ms, items);
  INFO("planning: first " << first.profile.planning_seconds << " s, second " << second.profile.planning_seconds << " s");
  CHECK_FALSE(second.serial);
  CHECK((second.profile.planning_seconds < first.profile.planning_seconds || second.profile.planning_seconds < 50e-3));

  const auto streamed = optimize_streaming(sleep_5ms, items);
  CHECK_FALSE(streamed.serial);
  CHECK(streamed.mode == plan_mode::streaming);
  CHECK(streamed.buffer_size > 0);
}

TEST_CASE("optimize advises serial for a trivial function", "[plan]") {
  auto square = [](const int& x) { return x * x; };
  std::vector<int> items(1000);
  for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int>(i);
  const auto result = optimize(square, items);
  INFO(result.explain());
  CHECK(result.serial);
  CHECK(result.n_jobs == 1);
  CHECK(result.backend == backend_kind::serial);
  CHECK_THAT(result.reason, Contains("speedup"));
  CHECK(result.estimated_speedup == 1.0);
  // The rejected alternative: below 1.2x, or one worker beside a root that bounds the run (a
  // sanitizer's build makes the engine's per-item costs the size of x * x itself).
  CHECK((result.profile.parallel_speedup < 1.2 || Contains("one worker would only overlap").match(result.reason)));
  // On short items the engine's cost decides, so it is measured (a sanitizer's build may make x * x long).
  CHECK(result.profile.engine_measured == (result.profile.avg_execution_time < 50e-6));
  CHECK_THAT(result.explain(), Contains("serially"));
}

TEST_CASE("a serial backend asked for makes a serial plan that says so first", "[plan]") {
  auto sleep_2ms = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return x;
  };
  optimize_options options;
  options.backend = backend_kind::serial;
  const auto result = optimize(sleep_2ms, std::vector<int>(200, 1), options);
  INFO(result.explain());
  CHECK(result.serial);
  CHECK(result.n_jobs == 1);
  CHECK(result.estimated_speedup == 1.0);  // the serial run against itself
  CHECK(result.reason.rfind("Serial, as asked. The plan otherwise: ", 0) == 0);
  CHECK(result.profile.parallel_speedup > 1.2);  // the alternative it replaced is kept in the profile
}

TEST_CASE("optimize with verbose writes the explanation to the log", "[plan]") {
  auto square = [](const int& x) { return x * x; };
  const std::vector<int> items{1, 2, 3};
  std::ostringstream log;
  optimize_options options;
  options.verbose = true;
  options.log = &log;
  const auto result = optimize(square, items, options);
  CHECK(log.str() == result.explain());
}

// An endless source can be streamed in bounded memory, but gathering all of it never ends.
TEST_CASE("an endless generator: streaming is bounded, gathering all warns", "[plan]") {
  auto endless = [n = 0]() mutable -> std::optional<int> { return n++; };
  auto sleep_2ms = [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return x;
  };

  const auto streamed = optimize_streaming(sleep_2ms, endless);
  INFO(streamed.explain());
  CHECK(streamed.buffer_size > 0);
  CHECK_FALSE(streamed.profile.total_items.has_value());
  CHECK_FALSE(streamed.has_warning(warning_kind::endless_source_gathered));
  CHECK_FALSE(streamed.data.size().has_value());

  const auto gathered = optimize(sleep_2ms, endless);
  CHECK(gathered.has_warning(warning_kind::endless_source_gathered));
}

TEST_CASE("estimate_safe_batch_size fits 1 MiB results in available memory", "[plan]") {
  constexpr std::size_t mib = 1024 * 1024;
  auto one_mib = [](const int& x) { return std::vector<std::uint8_t>(mib, static_cast<std::uint8_t>(x)); };
  auto src = make_source(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  const std::size_t batch = estimate_safe_batch_size(one_mib, src);
  const std::uint64_t available = probe_node().available_memory;
  INFO("batch " << batch << ", available " << available);
  CHECK(batch > 0);
  CHECK(batch < available / mib);
  CHECK(static_cast<double>(batch) > 0.4 * static_cast<double>(available / mib));  // half of it, by default
  // The sampled items went back into the source.
  CHECK(src.size() == std::optional<std::size_t>(8));
  CHECK(src.next() == std::optional<int>(0));

  const std::size_t quarter = estimate_safe_batch_size(one_mib, std::vector<int>{1, 2, 3}, 0.25, 2);
  CHECK(quarter < batch);
  CHECK(static_cast<double>(quarter) > 0.2 * static_cast<double>(available / mib));
}
