#include <amorsize/plan.hpp>

#include "enum_names.hpp"
#include "text.hpp"

#include <algorithm>
#include <sstream>

namespace amorsize {
namespace {

constexpr enum_names::table<plan_mode, 2> plan_mode_names{{
    {plan_mode::gather_all, "gather_all"},
    {plan_mode::streaming, "streaming"},
}};

constexpr enum_names::table<backend_kind, 4> backend_kind_names{{
    {backend_kind::serial, "serial"},
    {backend_kind::processes, "processes"},
    {backend_kind::threads, "threads"},
    {backend_kind::mpi, "mpi"},
}};

constexpr enum_names::table<warning_kind, 20> warning_kind_names{{
    {warning_kind::nested_parallelism, "nested_parallelism"},
    {warning_kind::waits_on_io, "waits_on_io"},
    {warning_kind::workers_cut_for_memory, "workers_cut_for_memory"},
    {warning_kind::fewer_ranks_than_asked, "fewer_ranks_than_asked"},
    {warning_kind::threads_not_crash_isolated, "threads_not_crash_isolated"},
    {warning_kind::window_cut_for_memory, "window_cut_for_memory"},
    {warning_kind::window_below_in_flight, "window_below_in_flight"},
    {warning_kind::endless_source_gathered, "endless_source_gathered"},
    {warning_kind::results_exceed_memory, "results_exceed_memory"},
    {warning_kind::no_worker_rank, "no_worker_rank"},
    {warning_kind::insufficient_speedup, "insufficient_speedup"},
    {warning_kind::serial_as_fast, "serial_as_fast"},
    {warning_kind::busy_machine, "busy_machine"},
    {warning_kind::root_bottleneck, "root_bottleneck"},
    {warning_kind::item_threw_in_sample, "item_threw_in_sample"},
    {warning_kind::sample_cut_for_memory, "sample_cut_for_memory"},
    {warning_kind::threads_already_running, "threads_already_running"},
    {warning_kind::spawn_cost_assumed, "spawn_cost_assumed"},
    {warning_kind::round_trip_assumed, "round_trip_assumed"},
    {warning_kind::unreliable_sample, "unreliable_sample"},
}};

static_assert(enum_names::lists_in_order(plan_mode_names) &&
              plan_mode_names.size() == static_cast<std::size_t>(plan_mode::streaming) + 1);
static_assert(enum_names::lists_in_order(backend_kind_names) &&
              backend_kind_names.size() == static_cast<std::size_t>(backend_kind::mpi) + 1);
// A new warning kind goes last in the enum and here, or this fails.
static_assert(enum_names::lists_in_order(warning_kind_names) &&
              warning_kind_names.size() == static_cast<std::size_t>(warning_kind::unreliable_sample) + 1);

}  // namespace

std::string_view to_string(plan_mode mode) { return enum_names::name_of(plan_mode_names, mode); }
std::string_view to_string(backend_kind kind) { return enum_names::name_of(backend_kind_names, kind); }
std::string_view to_string(warning_kind kind) { return enum_names::name_of(warning_kind_names, kind); }

plan_mode parse_plan_mode(std::string_view name) { return enum_names::value_named(plan_mode_names, name, "plan mode"); }

backend_kind parse_backend_kind(std::string_view name) {
  return enum_names::value_named(backend_kind_names, name, "backend");
}

warning_kind parse_warning_kind(std::string_view name) {
  return enum_names::value_named(warning_kind_names, name, "warning kind");
}

bool plan::has_warning(warning_kind kind) const {
  return std::any_of(warnings.begin(), warnings.end(), [&](const plan_warning& w) { return w.kind == kind; });
}

void plan::warn(warning_kind kind, std::string message) { warnings.push_back({kind, std::move(message)}); }

namespace {

/// Every profile field once, so the JSON writer and reader cannot drift apart.
template <class Profile, class Visit>
void each_profile_field(Profile& p, Visit&& visit) {
  visit("sample_size", p.sample_size);
  visit("total_items", p.total_items);
  visit("avg_execution_time", p.avg_execution_time);
  visit("cv", p.cv);
  visit("min_execution_time", p.min_execution_time);
  visit("max_execution_time", p.max_execution_time);
  visit("cpu_per_wall", p.cpu_per_wall);
  visit("threads_inside", p.threads_inside);
  visit("input_bytes", p.input_bytes);
  visit("result_bytes", p.result_bytes);
  visit("serialize_seconds", p.serialize_seconds);
  visit("memory_per_call", p.memory_per_call);
  visit("nodes", p.nodes);
  visit("world_size", p.world_size);
  visit("physical_cores", p.physical_cores);
  visit("logical_cores", p.logical_cores);
  visit("usable_cores", p.usable_cores);
  visit("cpu_quota", p.cpu_quota);
  visit("load_average", p.load_average);
  visit("available_memory", p.available_memory);
  visit("spawn_cost", p.spawn_cost);
  visit("spawn_cost_per_worker", p.spawn_cost_per_worker);
  visit("thread_spawn_cost", p.thread_spawn_cost);
  visit("chunk_overhead", p.chunk_overhead);
  visit("engine_serial_per_item", p.engine_serial_per_item);
  visit("engine_root_per_item", p.engine_root_per_item);
  visit("engine_worker_per_item", p.engine_worker_per_item);
  visit("engine_measured", p.engine_measured);
  visit("consumer_per_item", p.consumer_per_item);
  visit("latency_same_node", p.latency_same_node);
  visit("bandwidth_same_node", p.bandwidth_same_node);
  visit("latency_other_node", p.latency_other_node);
  visit("bandwidth_other_node", p.bandwidth_other_node);
  visit("serial_seconds", p.serial_seconds);
  visit("work_seconds", p.work_seconds);
  visit("parallel_seconds", p.parallel_seconds);
  visit("parallel_speedup", p.parallel_speedup);
  visit("root_load", p.root_load);
  visit("overhead_fraction", p.overhead_fraction);
  visit("spread_sample_size", p.spread_sample_size);
  visit("sampling_seconds", p.sampling_seconds);
  visit("probe_seconds", p.probe_seconds);
  visit("benchmark_seconds", p.benchmark_seconds);
  visit("planning_seconds", p.planning_seconds);
}

template <class T>
void read_field(const nlohmann::json& j, const char* key, T& value) {
  if (j.contains(key)) j.at(key).get_to(value);
}

template <class T>
void read_field(const nlohmann::json& j, const char* key, std::optional<T>& value) {
  if (j.contains(key) && !j.at(key).is_null()) value = j.at(key).get<T>();
  else value.reset();
}

}  // namespace

nlohmann::json plan::to_json() const {
  nlohmann::json prof = nlohmann::json::object();
  each_profile_field(profile, [&](const char* key, const auto& value) {
    if constexpr (requires { value.has_value(); }) {
      prof[key] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
    } else {
      prof[key] = value;
    }
  });
  nlohmann::json warns = nlohmann::json::array();
  for (const plan_warning& w : warnings) warns.push_back({{"kind", to_string(w.kind)}, {"message", w.message}});
  return {
      {"mode", to_string(mode)},
      {"backend", to_string(backend)},
      {"serial", serial},
      {"n_jobs", n_jobs},
      {"workers_per_node", workers_per_node},
      {"chunksize", chunksize},
      {"schedule", {{"kind", to_string(schedule.kind)}, {"chunksize", schedule.chunksize},
                    {"min_chunksize", schedule.min_chunksize}, {"adaptive", schedule.adaptive},
                    {"target_seconds", schedule.target_seconds}}},
      {"use_ordered", use_ordered},
      {"buffer_size", buffer_size},
      {"estimated_speedup", estimated_speedup},
      {"reason", reason},
      {"warnings", warns},
      {"profile", prof},
  };
}

plan plan::from_json(const nlohmann::json& j) {
  plan p;
  p.mode = parse_plan_mode(j.at("mode").get<std::string>());
  p.backend = parse_backend_kind(j.at("backend").get<std::string>());
  j.at("serial").get_to(p.serial);
  j.at("n_jobs").get_to(p.n_jobs);
  j.at("workers_per_node").get_to(p.workers_per_node);
  j.at("chunksize").get_to(p.chunksize);
  const auto& s = j.at("schedule");
  p.schedule.kind = parse_schedule_kind(s.at("kind").get<std::string>());
  s.at("chunksize").get_to(p.schedule.chunksize);
  s.at("min_chunksize").get_to(p.schedule.min_chunksize);
  s.at("adaptive").get_to(p.schedule.adaptive);
  s.at("target_seconds").get_to(p.schedule.target_seconds);
  j.at("use_ordered").get_to(p.use_ordered);
  j.at("buffer_size").get_to(p.buffer_size);
  j.at("estimated_speedup").get_to(p.estimated_speedup);
  j.at("reason").get_to(p.reason);
  for (const auto& w : j.at("warnings")) {
    p.warn(parse_warning_kind(w.at("kind").get<std::string>()), w.at("message").get<std::string>());
  }
  const auto& prof = j.at("profile");
  each_profile_field(p.profile, [&](const char* key, auto& value) { read_field(prof, key, value); });
  return p;
}

std::string plan::explain() const {
  using text::format;
  const plan_profile& p = profile;
  std::ostringstream out;
  if (serial) {
    out << "Run serially.\n";
  } else {
    out << format("Run on %d workers (%s", n_jobs, std::string(to_string(backend)).c_str());
    if (workers_per_node.size() > 1) {
      out << ", per node:";
      for (int w : workers_per_node) out << ' ' << w;
    }
    out << format("), chunks of %zu items (%s schedule), %s results", chunksize,
                  std::string(to_string(schedule.kind)).c_str(), use_ordered ? "ordered" : "unordered");
    out << format(", expected speedup %.2fx.\n", estimated_speedup);
  }
  out << "\nWhy: " << reason << "\n";
  if (!warnings.empty()) {
    out << "\nWarnings:\n";
    for (const plan_warning& w : warnings) out << "  - " << w.message << " [" << to_string(w.kind) << "]\n";
  }
  out << "\nWorkload (" << p.sample_size << " items sampled";
  if (p.spread_sample_size > 0) out << " first and " << p.spread_sample_size << " spread";
  out << (p.total_items ? format(" of %zu", *p.total_items) : std::string(" of an endless or unsized source")) << "):\n";
  out << format("  time per item      %s (CV %.2f, min %s, max %s)\n", text::seconds(p.avg_execution_time).c_str(), p.cv,
                text::seconds(p.min_execution_time).c_str(), text::seconds(p.max_execution_time).c_str());
  out << format("  CPU / wall         %.2f (%d thread%s inside)\n", p.cpu_per_wall, p.threads_inside,
                p.threads_inside == 1 ? "" : "s");
  out << format("  bytes in / out     %s / %s per item (serialization %s)\n", text::bytes(p.input_bytes).c_str(),
                text::bytes(p.result_bytes).c_str(), text::seconds(p.serialize_seconds).c_str());
  out << format("  memory per call    %s\n", text::bytes(static_cast<double>(p.memory_per_call)).c_str());
  out << format("Machine: %d node%s, %d rank%s; root's node: %d usable of %d physical / %d logical cores, load "
                "average %.2f, %s available\n",
                p.nodes, p.nodes == 1 ? "" : "s", p.world_size, p.world_size == 1 ? "" : "s", p.usable_cores,
                p.physical_cores, p.logical_cores, p.load_average,
                text::bytes(static_cast<double>(p.available_memory)).c_str());
  out << format("Overheads: start %s + %s per worker, chunk round trip %s", text::seconds(p.spawn_cost).c_str(),
                text::seconds(p.spawn_cost_per_worker).c_str(), text::seconds(p.chunk_overhead).c_str());
  if (p.latency_same_node > 0.0) {
    out << format(", MPI same node %s / %.2f GB/s", text::seconds(p.latency_same_node).c_str(), p.bandwidth_same_node / 1e9);
  }
  if (p.latency_other_node > 0.0) {
    out << format(", other node %s / %.2f GB/s", text::seconds(p.latency_other_node).c_str(), p.bandwidth_other_node / 1e9);
  }
  out << format("\nEngine per item: serial %s, root %s, worker %s%s", text::seconds(p.engine_serial_per_item).c_str(),
                text::seconds(p.engine_root_per_item).c_str(), text::seconds(p.engine_worker_per_item).c_str(),
                p.engine_measured ? "" : " (assumed, not measured)");
  if (p.consumer_per_item > 0.0) out << format("; the caller's use of a result %s", text::seconds(p.consumer_per_item).c_str());
  out << "\n";
  if (p.total_items) {
    out << format("Model: serial %s, parallel %s, overheads %.0f%%, root busy %.0f%%\n",
                  text::seconds(p.serial_seconds).c_str(), text::seconds(p.parallel_seconds).c_str(),
                  100.0 * p.overhead_fraction, 100.0 * p.root_load);
  }
  out << format("Planning: %s beyond %s of sampled calls (probe %s, overhead benchmarks %s)\n",
                text::seconds(p.planning_seconds).c_str(), text::seconds(p.sampling_seconds).c_str(),
                text::seconds(p.probe_seconds).c_str(), text::seconds(p.benchmark_seconds).c_str());
  return out.str();
}

}  // namespace amorsize
