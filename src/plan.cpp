#include <amorsize/plan.hpp>

#include "text.hpp"

#include <sstream>

namespace amorsize {

std::string_view to_string(plan_mode mode) {
  return mode == plan_mode::streaming ? "streaming" : "gather_all";
}

std::string_view to_string(backend_kind kind) {
  switch (kind) {
    case backend_kind::processes: return "processes";
    case backend_kind::threads: return "threads";
    case backend_kind::mpi: return "mpi";
    case backend_kind::serial: break;
  }
  return "serial";
}

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
  visit("latency_same_node", p.latency_same_node);
  visit("bandwidth_same_node", p.bandwidth_same_node);
  visit("latency_other_node", p.latency_other_node);
  visit("bandwidth_other_node", p.bandwidth_other_node);
  visit("serial_seconds", p.serial_seconds);
  visit("parallel_seconds", p.parallel_seconds);
  visit("parallel_speedup", p.parallel_speedup);
  visit("root_load", p.root_load);
  visit("overhead_fraction", p.overhead_fraction);
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
      {"warnings", warnings},
      {"profile", prof},
  };
}

plan plan::from_json(const nlohmann::json& j) {
  plan p;
  p.mode = j.at("mode").get<std::string>() == "streaming" ? plan_mode::streaming : plan_mode::gather_all;
  const auto backend = j.at("backend").get<std::string>();
  p.backend = backend == "mpi"         ? backend_kind::mpi
              : backend == "processes" ? backend_kind::processes
              : backend == "threads"   ? backend_kind::threads
                                       : backend_kind::serial;
  j.at("serial").get_to(p.serial);
  j.at("n_jobs").get_to(p.n_jobs);
  j.at("workers_per_node").get_to(p.workers_per_node);
  j.at("chunksize").get_to(p.chunksize);
  const auto& s = j.at("schedule");
  p.schedule.kind = s.at("kind").get<std::string>() == "guided" ? schedule_kind::guided : schedule_kind::fixed;
  s.at("chunksize").get_to(p.schedule.chunksize);
  s.at("min_chunksize").get_to(p.schedule.min_chunksize);
  s.at("adaptive").get_to(p.schedule.adaptive);
  s.at("target_seconds").get_to(p.schedule.target_seconds);
  j.at("use_ordered").get_to(p.use_ordered);
  j.at("buffer_size").get_to(p.buffer_size);
  j.at("estimated_speedup").get_to(p.estimated_speedup);
  j.at("reason").get_to(p.reason);
  j.at("warnings").get_to(p.warnings);
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
    for (const auto& w : warnings) out << "  - " << w << "\n";
  }
  out << "\nWorkload (" << p.sample_size << " items sampled";
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
