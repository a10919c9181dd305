#include <amorsize/cost_model.hpp>

#include "text.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace amorsize {
namespace {

using text::format;

/// The per-item and per-chunk costs the model charges, derived once from the measurements.
struct unit_costs {
  double item_serial = 0.0;   ///< Seconds per item of a serial run: the call, the engine's record, the caller's use of it.
  double item_worker = 0.0;   ///< Worker seconds per item: the call, the engine's unpacking and packing, its half of serialization.
  double item_worker_cpu = 0.0; ///< Core-seconds a worker spends per item (the call's CPU share, not its waits).
  double item_root = 0.0;     ///< Root seconds per item: the engine's reading and handing over, its half of serialization, moving the bytes, the caller's use of the result.
  double item_bytes_time = 0.0; ///< Seconds to move one item and its result over the link.
  double chunk_root = 0.0;    ///< Root seconds per chunk: receive a request, send a chunk.
  double chunk_worker = 0.0;  ///< Worker seconds per chunk it cannot hide behind work: sending its results.
  double startup = 0.0;       ///< Seconds before the first item runs in parallel (per worker part added later).
  double startup_per_worker = 0.0; ///< Extra start-up seconds per worker.
};

/// The link most chunks cross: the same node when all workers are there, else the slower one.
link_cost dominant_link(const model_inputs& in) {
  const bool multi_node = in.cluster.nodes.size() > 1 && in.links.other_node.measured;
  return multi_node ? in.links.other_node : in.links.same_node;
}

unit_costs costs_of(const model_inputs& in) {
  const sample_stats& w = in.work;
  unit_costs c;
  const double bytes = w.input_bytes + w.result_bytes;
  if (in.cluster.mpi) {
    const link_cost link = dominant_link(in);
    c.item_bytes_time = link.bandwidth_bytes_per_second > 0.0 ? bytes / link.bandwidth_bytes_per_second : 0.0;
    // A chunk costs the root a request received and a chunk sent; the worker sends its results
    // (the next chunk is already there: one is prefetched).
    c.chunk_root = 2.0 * link.latency_seconds;
    c.chunk_worker = link.latency_seconds;
    // Ranks are running already: the plan is one broadcast away.
    c.startup = link.latency_seconds;
  } else if (in.request.backend == backend_kind::threads) {
    // Threads share memory: no bytes cross a socket. A chunk's hand-over (a wake-up) is charged
    // like the measured socket round trip, an upper bound.
    const local_overheads& l = in.local;
    c.chunk_root = l.chunk_round_trip;
    c.chunk_worker = 0.5 * l.chunk_round_trip;
    c.startup_per_worker = l.thread_spawn_per_worker;
  } else {
    const local_overheads& l = in.local;
    c.item_bytes_time = l.pipe_bandwidth > 0.0 ? bytes / l.pipe_bandwidth : 0.0;
    c.chunk_root = l.chunk_round_trip;
    c.chunk_worker = 0.5 * l.chunk_round_trip;
    c.startup = l.process_spawn_fixed;
    c.startup_per_worker = l.process_spawn_per_worker;
  }
  const engine_costs& e = in.engine;
  const double consumer = in.request.consumer_seconds_per_item;
  c.item_serial = w.mean_seconds + e.serial_per_item + consumer;
  const double engine_worker = e.worker_per_item + 0.5 * w.serialize_seconds + c.item_bytes_time;
  c.item_worker = w.mean_seconds + engine_worker;
  c.item_worker_cpu = w.mean_seconds * std::max(w.cpu_per_wall, 1.0 / max_workers_per_core) + engine_worker;
  c.item_root = e.root_per_item + 0.5 * w.serialize_seconds + c.item_bytes_time + consumer;
  return c;
}

/// Returns the cores the root and the workers share when all run on the root's node (0: they are
/// spread over nodes): together they cannot keep more than these busy.
double shared_cores(const model_inputs& in) {
  return in.cluster.nodes.size() == 1 ? static_cast<double>(std::max(1, in.cluster.nodes.front().usable_cores)) : 0.0;
}

/// Fills the share of the run that is not the items themselves.
prediction finish(prediction p, int workers) {
  p.speedup = p.parallel_seconds > 0.0 ? p.serial_seconds / p.parallel_seconds : 1.0;
  const double ideal = p.serial_seconds / std::max(1, workers);
  p.overhead_fraction = p.parallel_seconds > 0.0 ? std::max(0.0, (p.parallel_seconds - ideal) / p.parallel_seconds) : 0.0;
  return p;
}

}  // namespace

std::size_t safe_batch_size(double result_bytes, std::uint64_t available_memory, double fraction) {
  const double budget = fraction * static_cast<double>(available_memory);
  if (result_bytes <= 0.0) return std::numeric_limits<std::size_t>::max();
  return static_cast<std::size_t>(std::max(1.0, std::floor(budget / result_bytes)));
}

prediction predict(const model_inputs& in, std::size_t items, int workers, const chunk_schedule& schedule) {
  const unit_costs c = costs_of(in);
  const sample_stats& w = in.work;
  workers = std::max(1, workers);
  prediction p;
  // Amdahl's serial part: the sampled calls already ran on the root, one after another.
  const double sampled = w.total_seconds;
  p.serial_seconds = sampled + static_cast<double>(items) * c.item_serial;
  p.work_seconds = sampled + static_cast<double>(items) * w.mean_seconds;
  if (items == 0) {
    p.parallel_seconds = p.serial_seconds;
    return finish(p, workers);
  }

  const std::size_t chunks = schedule.chunk_count(items, workers);
  const double n = static_cast<double>(items);
  const double k = static_cast<double>(chunks);
  const double worker_total = n * c.item_worker + k * c.chunk_worker;
  const double average = worker_total / workers;

  // The tail: workers finish together only if chunks divide evenly and items cost the same.
  double makespan = 0.0;
  // Chunks of c items vary by cv / sqrt(c): when that is small, equal chunks keep workers in step.
  const double chunk_cv = w.cv / std::sqrt(static_cast<double>(std::max<std::size_t>(1, schedule.chunksize)));
  if (schedule.kind == schedule_kind::fixed && chunk_cv < 0.1) {
    const double chunk_time = static_cast<double>(schedule.chunksize) * c.item_worker + c.chunk_worker;
    const double rounds = std::ceil(k / workers);
    const std::size_t last_round = chunks % static_cast<std::size_t>(workers);
    const std::size_t last_items = items - (chunks - 1) * schedule.chunksize;
    makespan = rounds * chunk_time;
    if (last_round == 1 && chunks > 1) {  // the short last chunk runs alone in the final round
      makespan = (rounds - 1.0) * chunk_time + static_cast<double>(last_items) * c.item_worker + c.chunk_worker;
    }
    makespan = std::max(makespan, average);
  } else {
    const std::size_t last_chunk =
        schedule.kind == schedule_kind::guided ? std::max<std::size_t>(1, schedule.min_chunksize) : schedule.chunksize;
    const double last = static_cast<double>(last_chunk);
    // Half a chunk on average, more when its items vary (the spread of a sum of `last` items).
    // A rising trend makes the last items the dearest: time at the end is mean x (1 + trend / 2).
    const double end_factor = 1.0 + 0.5 * std::max(0.0, w.trend);
    const double tail = 0.5 * last * w.mean_seconds * end_factor * (1.0 + w.cv / std::sqrt(last));
    makespan = average + std::max(tail, workers > 1 ? 0.5 * (w.max_seconds - w.mean_seconds) : 0.0);
  }

  // The root hands out every chunk and takes in every result; past some scale it is the bottleneck.
  const double root_busy = k * c.chunk_root + n * c.item_root;
  const double startup = c.startup + workers * c.startup_per_worker + c.chunk_root;
  // On one node the root shares its cores with the workers: together they cannot use more.
  const double cores = shared_cores(in);
  const double cpu_total = n * c.item_worker_cpu + k * c.chunk_worker + root_busy;
  const double run = std::max({makespan, root_busy, cores > 0.0 ? cpu_total / cores : 0.0});
  // The spread sample ran on the root before the run, and its items run again in it.
  p.parallel_seconds = sampled + w.spread_total_seconds + startup + run;
  p.root_load = run > 0.0 ? root_busy / run : 0.0;
  return finish(p, workers);
}

prediction predict_steady(const model_inputs& in, int workers, const chunk_schedule& schedule) {
  const unit_costs c = costs_of(in);
  workers = std::max(1, workers);
  const double items_per_chunk = static_cast<double>(std::max<std::size_t>(1, schedule.chunksize));
  // Per item: the workers' share of the work, or the root's cost if the root is slower.
  const double worker_per_item = (c.item_worker + c.chunk_worker / items_per_chunk) / workers;
  const double root_per_item = c.item_root + c.chunk_root / items_per_chunk;
  const double cores = shared_cores(in);
  const double cpu_per_item = c.item_worker_cpu + c.chunk_worker / items_per_chunk + root_per_item;
  prediction p;
  p.serial_seconds = 0.0;
  p.parallel_seconds = 0.0;
  const double per_item =
      std::max({worker_per_item, root_per_item, cores > 0.0 ? cpu_per_item / cores : 0.0});
  p.speedup = per_item > 0.0 ? c.item_serial / per_item : 1.0;
  p.root_load = per_item > 0.0 ? root_per_item / per_item : 0.0;
  const double ideal = c.item_serial / workers;
  p.overhead_fraction = per_item > 0.0 ? std::max(0.0, (per_item - ideal) / per_item) : 0.0;
  return p;
}

namespace {

/// Decides the workers on each node; appends its sentences to the plan.
std::vector<int> choose_workers(const model_inputs& in, plan& out) {
  const sample_stats& w = in.work;
  const cluster_layout& cl = in.cluster;
  const plan_request& rq = in.request;
  std::vector<int> workers(cl.nodes.size(), 0);

  // Cores one worker keeps busy: >1 when the function runs threads; <1 when it mostly waits.
  const bool compute_bound = w.cpu_per_wall >= 0.5;
  const double demand = compute_bound ? std::max(1.0, std::round(w.cpu_per_wall)) : std::max(w.cpu_per_wall, 1.0 / max_workers_per_core);

  bool memory_cut = false;
  for (std::size_t n = 0; n < cl.nodes.size(); ++n) {
    const node_facts& node = cl.nodes[n];
    int count = rq.workers_per_node ? *rq.workers_per_node
                                    : std::max(1, static_cast<int>(std::floor(node.usable_cores / demand + 1e-9)));
    if (!rq.workers_per_node && w.memory_per_call > 0) {
      const double budget = rq.memory_fraction * static_cast<double>(node.available_memory);
      const int fit = std::max(1, static_cast<int>(budget / static_cast<double>(w.memory_per_call)));
      if (fit < count) {
        count = fit;
        memory_cut = true;
      }
    }
    if (cl.mpi) {
      // The root's rank dispatches; the other ranks on its node and every rank elsewhere can work.
      const int slots = cl.ranks_per_node[n] - (n == 0 ? 1 : 0);
      if (rq.workers_per_node && count > slots) {
        out.warn(warning_kind::fewer_ranks_than_asked,
                 format("Node %zu has %d worker ranks, fewer than the %d workers asked for.", n, slots, count));
      }
      count = std::min(count, slots);
    }
    workers[n] = std::max(0, count);
  }

  const auto& root = cl.nodes.front();
  if (rq.workers_per_node) {
    out.reason += format("%s per node, as asked. ", text::count_of(*rq.workers_per_node, "worker").c_str());
  } else if (compute_bound) {
    out.reason += format("%s on the root's node: %d usable cores (%d physical, %d logical%s)",
                         text::count_of(workers[0], "worker").c_str(), root.usable_cores, root.physical_cores, root.logical_cores,
                         root.cpu_quota > 0.0 ? format(", CPU quota %.1f", root.cpu_quota).c_str() : "");
    out.reason += demand > 1.0 ? format(" shared by workers that run %.0f threads each. ", demand) : ". ";
  } else {
    out.reason += format("%s on the root's node: the function waits most of the time (CPU %.0f%% of wall), "
                         "so up to %.0f workers share each core. ",
                         text::count_of(workers[0], "worker").c_str(), 100.0 * w.cpu_per_wall, 1.0 / demand);
  }
  if (demand <= 1.0 && w.threads_inside > 1) {
    out.warn(warning_kind::nested_parallelism,
             format("Nested parallelism: the call runs on %d threads (the calling one included) but keeps %.1f "
                    "core(s) busy (CPU/wall), so workers per node are not cut (%d). If its threads compete for the "
                    "cores, pin them to one (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, MKL_NUM_THREADS=1).",
                    w.threads_inside, w.cpu_per_wall, workers[0]));
  } else if (demand > 1.0) {
    // Workers forced by the caller are not cut: say what they cost instead.
    const std::string effect =
        rq.workers_per_node
            ? format("the %d workers per node asked for may oversubscribe the cores", workers[0])
            : format("workers per node cut to %d to avoid oversubscription", workers[0]);
    out.warn(warning_kind::nested_parallelism,
             format("Nested parallelism: the function runs %d threads (CPU/wall %.1f); %s. To run more workers, pin "
                    "its threads to one (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, MKL_NUM_THREADS=1).",
                    std::max(w.threads_inside, static_cast<int>(std::round(w.cpu_per_wall))), w.cpu_per_wall,
                    effect.c_str()));
  }
  if (!compute_bound) {
    out.warn(warning_kind::waits_on_io,
             format("The function used %.0f%% CPU while it ran: it waits on I/O or sleeps. More workers than cores "
                    "help it; force them with workers_per_node if this is not enough.",
                    100.0 * w.cpu_per_wall));
  }
  if (memory_cut) {
    out.warn(warning_kind::workers_cut_for_memory,
             format("Each call grows memory by %s: workers per node cut to %d to stay within %.0f%% of available "
                    "memory (%s on the root's node).",
                    text::bytes(static_cast<double>(w.memory_per_call)).c_str(), workers[0], 100.0 * rq.memory_fraction,
                    text::bytes(static_cast<double>(root.available_memory)).c_str()));
  }
  if (cl.mpi && cl.nodes.size() > 1) out.reason += format("%zu nodes. ", cl.nodes.size());
  return workers;
}

/// Chooses the chunk schedule for `workers` workers; appends its sentences to the plan.
chunk_schedule choose_schedule(const model_inputs& in, int workers, std::optional<std::size_t> items, plan& out) {
  const sample_stats& w = in.work;
  const plan_request& rq = in.request;
  const unit_costs c = costs_of(in);
  chunk_schedule s;
  s.target_seconds = rq.target_chunk_duration;
  if (rq.chunksize) {
    s.chunksize = std::max<std::size_t>(1, *rq.chunksize);
    s.min_chunksize = s.chunksize;
    s.adaptive = false;  // the caller chose it
    out.reason += format("Chunks of %zu items, as asked. ", s.chunksize);
    return s;
  }
  const double per_item = std::max(c.item_worker, 1e-9);
  const auto target = static_cast<std::size_t>(std::max(1.0, std::round(rq.target_chunk_duration / per_item)));
  // Keep each chunk's dispatch under 5% of its work.
  const auto overhead_floor = static_cast<std::size_t>(std::max(1.0, std::ceil(c.chunk_root / (0.05 * per_item))));
  // A trend (item time changing along the source) unbalances equal chunks like a spread does.
  const bool heterogeneous = w.cv > 0.5 || std::abs(w.trend) > 0.5;
  // Enough chunks per worker that one slow chunk (or a core stolen for a while) delays little.
  const double chunks_per_worker = heterogeneous ? std::ceil(8.0 * (1.0 + w.cv)) : 8.0;

  std::size_t size = target;
  std::string why = format("%zu items make a chunk of about %s (target %s)", target,
                           text::seconds(static_cast<double>(target) * per_item).c_str(),
                           text::seconds(rq.target_chunk_duration).c_str());
  if (heterogeneous) {
    size = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(size) / (1.0 + w.cv)));
    why += w.cv > 0.5 ? format(", cut to %zu because item times vary (CV %.2f > 0.5)", size, w.cv)
                      : format(", cut to %zu because item times change along the source (trend %+.0f%%)", size,
                               100.0 * w.trend);
  }
  if (items) {
    const double balance = std::floor(static_cast<double>(*items) / (workers * chunks_per_worker));
    const auto balanced = static_cast<std::size_t>(std::max(1.0, balance));
    if (balanced < size) {
      size = std::max(balanced, std::min(overhead_floor, size));
      why += format(", then to %zu so each worker gets about %.0f chunks for balance", size, chunks_per_worker);
    }
  }
  if (!heterogeneous && items && *items > 0 && workers > 1) {
    // Whole rounds: a chunk count that is a multiple of the workers, so no chunk runs alone at the end.
    const std::size_t chunks = (*items + size - 1) / size;
    const auto w_count = static_cast<std::size_t>(workers);
    const std::size_t rounded = (chunks + w_count - 1) / w_count * w_count;
    const std::size_t even = (*items + rounded - 1) / rounded;
    if (even != size) {
      size = even;
      why += format(", then to %zu so the %zu chunks make whole rounds of %d workers", size, rounded, workers);
    }
  }
  s.chunksize = size;
  s.min_chunksize = size;
  // What the chunk is expected to take, cuts for balance included: the dispatcher resizes chunks only when
  // measured item times contradict the sample, and never undoes a cut (a 1 ms item growing chunks cut to
  // 56 back to the 200 of the target left one worker a 0.2 s tail).
  s.target_seconds = static_cast<double>(size) * per_item;
  if (heterogeneous && items) {
    s.kind = schedule_kind::guided;
    s.min_chunksize = std::min(size, overhead_floor);
    why += format("; guided: chunks shrink from %zu to %zu items as the work runs out", s.chunksize, s.min_chunksize);
  }
  out.reason += "Chunks: " + why + ". ";
  return s;
}

/// Returns the workers in all.
int total_workers(const std::vector<int>& per_node) { return std::accumulate(per_node.begin(), per_node.end(), 0); }

/// Returns the items left once the sampled ones are done: what runs in parallel (nullopt: unknown or endless).
std::optional<std::size_t> items_left(const model_inputs& in) {
  const std::optional<std::size_t>& total = in.request.total_items;
  if (!total) return std::nullopt;
  return *total - std::min(*total, in.work.count + in.work.failed);
}

/// Predicts the run as planned so far: the items left of a sized source, or an endless stream's steady state.
prediction forecast(const model_inputs& in, std::optional<std::size_t> rest, int workers,
                    const chunk_schedule& schedule) {
  return rest ? predict(in, *rest, std::max(1, workers), schedule) : predict_steady(in, std::max(1, workers), schedule);
}

/// Sets the backend the costs are charged for until the model chooses: the ranks under a launcher,
/// else the local backend asked for, else processes. Returns whether a local backend was asked for.
bool assume_backend(model_inputs& in) {
  const bool asked = !in.cluster.mpi && in.request.backend.has_value();
  if (in.cluster.mpi) in.request.backend = backend_kind::mpi;
  if (!in.request.backend) in.request.backend = backend_kind::processes;
  return asked;
}

/// Chooses where the work runs. Under a launcher the ranks work. Locally, processes isolate crashes;
/// threads win when moving results between processes, or starting the processes, would cost a
/// noticeable share of `p`, the run forecast on processes. Appends its sentences to the plan.
backend_kind choose_backend(const model_inputs& in, bool asked, std::optional<std::size_t> rest, int workers,
                            const prediction& p, plan& out) {
  const backend_kind assumed = *in.request.backend;
  if (in.cluster.mpi) return assumed;
  const unit_costs c = costs_of(in);
  const double transfer_share = in.work.mean_seconds > 0.0 ? c.item_bytes_time / in.work.mean_seconds : 0.0;
  const double startup = c.startup + workers * c.startup_per_worker;
  const double startup_share = rest && p.parallel_seconds > 0.0 ? startup / p.parallel_seconds : 0.0;
  if (asked) {
    out.reason += format("Local %s, as asked. ", std::string(to_string(assumed)).c_str());
    return assumed;
  }
  if (in.work.crashed > 0) {
    out.reason += format("Processes: %s crashed the sampler, and only a worker process can die without ending the run. ",
                         text::count_of(static_cast<long long>(in.work.crashed), "sampled item").c_str());
    return backend_kind::processes;
  }
  if (transfer_share > 0.1 || startup_share > 0.1) {
    out.reason += transfer_share > 0.1
                      ? format("Threads: moving each item and result between processes would cost %.0f%% of its "
                               "time. ", 100.0 * transfer_share)
                      : format("Threads: starting worker processes would cost %.0f%% of the run. ",
                               100.0 * startup_share);
    out.warn(warning_kind::threads_not_crash_isolated,
             "Threads share the process: the function must be thread-safe, and a crash in it ends the run (use "
             "backend processes to isolate crashes).");
    return backend_kind::threads;
  }
  out.reason += format("Processes (crash-isolated): starting them costs %.1f%% of the run and moving results "
                       "%.1f%% of an item's time. ",
                       100.0 * startup_share, 100.0 * transfer_share);
  return assumed;
}

/// Share of the run above which the root bounds it: a worker more only overlaps the root's per-item
/// work with the items, a gain too thin to trust (an ASan build forecast 1.20x on two workers for x * x).
constexpr double root_bound_load = 0.9;

/// Gives a busy root core(s) of its own: it competes with the workers on its node when it needs most
/// of one, and either bounds the run or the workers it takes would not speed it by more than 1%.
/// Updates `p` and returns whether it took workers off the root's node; appends its sentence to the plan.
bool reserve_root_core(const model_inputs& in, std::optional<std::size_t> rest, const chunk_schedule& schedule,
                       prediction& p, plan& out) {
  int& on_root = out.workers_per_node[0];
  const bool root_needs_core = !in.request.workers_per_node && p.root_load >= 0.5 &&
                               on_root >= in.cluster.nodes.front().usable_cores && on_root > 1;
  if (!root_needs_core) return false;
  const int reserve = std::min(on_root - 1, std::max(1, static_cast<int>(std::round(p.root_load))));
  const prediction reserved = forecast(in, rest, total_workers(out.workers_per_node) - reserve, schedule);
  if (p.root_load < root_bound_load && reserved.speedup < 0.99 * p.speedup) {
    out.reason += format("The root is busy %.0f%% of the time dispatching and taking results, but a core of its "
                         "own would cost the run %s (predicted %.2fx with, %.2fx without). ",
                         100.0 * p.root_load, text::count_of(reserve, "worker").c_str(), p.speedup, reserved.speedup);
    return false;
  }
  on_root -= reserve;
  out.reason += format("The root is busy %.0f%% of the time dispatching and taking results, so its node keeps %d "
                       "core(s) for it. ",
                       100.0 * p.root_load, reserve);
  p = reserved;
  return true;
}

/// Chooses input order or completion order for the results; appends its sentence to the plan.
bool choose_order(const model_inputs& in, const prediction& p, plan& out) {
  const plan_request& rq = in.request;
  if (rq.prefer_ordered) {
    out.reason += *rq.prefer_ordered ? "Ordered results, as asked. " : "Unordered results, as asked. ";
    return *rq.prefer_ordered;
  }
  if (rq.mode == plan_mode::gather_all) {
    out.reason += "Results are gathered in input order (map keeps them all anyway). ";
    return true;
  }
  if (p.overhead_fraction > 0.2) {
    out.reason += format("Unordered: overheads are %.0f%% of the run (> 20%%), so results go out as they complete. ",
                         100.0 * p.overhead_fraction);
    return false;
  }
  if (in.work.cv > 0.5) {
    out.reason += format("Unordered: item times vary (CV %.2f), so a slow item would hold results back. ", in.work.cv);
    return false;
  }
  out.reason += format("Ordered: overheads are only %.0f%% of the run. ", 100.0 * p.overhead_fraction);
  return true;
}

/// Chooses the streaming window: results in flight, bounded so an endless source runs in bounded
/// memory; appends its sentences to the plan.
std::size_t streaming_window(const model_inputs& in, int workers, std::size_t chunksize, plan& out) {
  const plan_request& rq = in.request;
  const double result_bytes = in.work.result_bytes;
  const std::size_t in_flight = static_cast<std::size_t>(std::max(1, workers)) * chunksize;
  // Room for the chunks workers hold (two each) four times over, so chunk sizes can adapt
  // upwards during the run, unless memory says less.
  std::size_t window = rq.buffer_size ? *rq.buffer_size : 8 * in_flight;
  const std::size_t memory_cap =
      safe_batch_size(result_bytes, in.cluster.nodes.front().available_memory, rq.memory_fraction);
  if (!rq.buffer_size && window > memory_cap) {
    window = std::max<std::size_t>(1, memory_cap);
    out.warn(warning_kind::window_cut_for_memory,
             format("Results of %s each: the window is cut to %zu items to fit in memory.",
                    text::bytes(result_bytes).c_str(), window));
  }
  if (window < in_flight) {
    out.warn(warning_kind::window_below_in_flight,
             format("A window of %zu items is smaller than %d workers x %zu items per chunk: workers will wait for "
                    "the consumer.",
                    window, workers, chunksize));
  }
  out.reason += format("At most %zu results wait in memory (%s). ", window,
                       text::bytes(static_cast<double>(window) * result_bytes).c_str());
  return window;
}

/// Returns the window of a gather-all run, every item; warns when the results could never all be
/// gathered: an endless source, or more than the root's memory budget.
std::size_t gathered_window(const model_inputs& in, plan& out) {
  const plan_request& rq = in.request;
  if (!rq.total_items) {
    out.warn(warning_kind::endless_source_gathered,
             "The source has no known end: gathering all results would never finish. Use optimize_streaming with "
             "imap/imap_unordered, or process_in_batches.");
    return 0;
  }
  const node_facts& root = in.cluster.nodes.front();
  const double all_results = static_cast<double>(*rq.total_items) * in.work.result_bytes;
  const double budget = rq.memory_fraction * static_cast<double>(root.available_memory);
  if (all_results > budget) {
    out.warn(warning_kind::results_exceed_memory,
             format("All %zu results need %s but the root has %s available (%.0f%% budget %s): stream them with "
                    "optimize_streaming + imap, or use process_in_batches with batches of %zu items.",
                    *rq.total_items, text::bytes(all_results).c_str(),
                    text::bytes(static_cast<double>(root.available_memory)).c_str(), 100.0 * rq.memory_fraction,
                    text::bytes(budget).c_str(),
                    safe_batch_size(in.work.result_bytes, root.available_memory, rq.memory_fraction)));
  }
  return *rq.total_items;
}

/// Chooses how many items may be in flight at most, by how the results are consumed.
std::size_t choose_window(const model_inputs& in, int workers, std::size_t chunksize, plan& out) {
  return in.request.mode == plan_mode::streaming ? streaming_window(in, workers, chunksize, out)
                                                 : gathered_window(in, out);
}

/// Seconds of work above which an unreliable sample never makes a serial plan.
constexpr double parallel_work_floor = 1.0;

/// Items shorter than this never run on one worker beside the root: the model underrates the engine's
/// costs on them (1 us items measured slower on one worker than serial).
constexpr double one_worker_least_item_seconds = 50e-6;

/// True when one worker's gain, the overlap of the items with the root's own work on them, is large
/// enough to trust: the overlap is the caller's work (consumer_seconds_per_item, a tenth of an item or
/// more), and the items are long, twenty times the engine's per-item costs or more.
bool one_worker_gain_trusted(const model_inputs& in) {
  const double mean = in.work.mean_seconds;
  const double consumer = in.request.consumer_seconds_per_item;
  const unit_costs c = costs_of(in);
  const double engine_per_item = (c.item_root - consumer) + (c.item_worker - mean);
  return mean >= one_worker_least_item_seconds && mean >= 20.0 * engine_per_item && consumer >= 0.1 * mean;
}

/// Decides whether parallelism pays for `p` on `workers` workers; a serial plan then runs as serial
/// does, with the rejected parallel estimate kept in the reason and the profile. What the caller
/// forced (workers, a chunk size or a local backend) runs as asked, even where serial would do as well.
void decide_serial(const model_inputs& in, const prediction& p, int workers, bool forced, bool sized, plan& out) {
  const plan_request& rq = in.request;
  out.estimated_speedup = p.speedup;
  if (workers == 0) {
    out.serial = true;
    out.reason += "Serial: there is no worker rank (the root only dispatches). ";
    out.warn(warning_kind::no_worker_rank, "Run with more ranks (mpirun -np N with N >= 2) to run in parallel.");
  } else if (workers == 1 && !forced && p.speedup >= rq.min_speedup && !one_worker_gain_trusted(in)) {
    // One worker gains only by overlapping the items with the root's per-item work: a margin of a
    // few per-item costs measured in nanoseconds, which noise (a busy machine, a sanitizer) can invent.
    out.serial = true;
    out.reason += format("Serial: one worker would only overlap the items with the root's own work on them "
                         "(predicted speedup %.2fx), too thin a margin to trust; the serial loop does the same without "
                         "dispatch. ",
                         p.speedup);
  } else if (p.speedup < rq.min_speedup && !forced && workers > 1 && in.work.unreliable() &&
             p.serial_seconds > parallel_work_floor && p.speedup > 1.0) {
    // The sample may misjudge the work badly (few items, a trend, a huge spread): with seconds of
    // work, a parallel run loses little if it was wrong, a serial one loses a factor of workers.
    out.serial = false;
    out.warn(warning_kind::unreliable_sample,
             format("The predicted speedup %.2fx is below %.1fx, but the sample is unreliable (%zu items, CV %.2f, "
                    "trend %+.0f%%) and the work is %s: planned parallel anyway.",
                    p.speedup, rq.min_speedup, in.work.count + in.work.spread_seconds.size(), in.work.cv,
                    100.0 * in.work.trend, text::seconds(p.serial_seconds).c_str()));
    out.reason += format("Expected speedup %.2fx: serial %s, parallel %s.", p.speedup,
                         text::seconds(p.serial_seconds).c_str(), text::seconds(p.parallel_seconds).c_str());
  } else if (p.speedup < rq.min_speedup && !forced) {
    const unit_costs costs = costs_of(in);
    out.serial = true;
    out.reason += format("Serial: the predicted speedup %.2fx on %s is below %.1fx; ", p.speedup,
                         text::count_of(workers, "worker").c_str(), rq.min_speedup);
    out.reason += format("items take %s, the engine adds %s per item on the root and %s in a worker, each chunk "
                         "costs %s to dispatch and each worker %s to start. ",
                         text::seconds(in.work.mean_seconds).c_str(), text::seconds(costs.item_root).c_str(),
                         text::seconds(costs.item_worker - in.work.mean_seconds).c_str(),
                         text::seconds(costs.chunk_root).c_str(),
                         text::seconds(costs.startup_per_worker + costs.startup / workers).c_str());
    out.warn(warning_kind::insufficient_speedup,
             "Insufficient speedup: run serially, or give each call more work (batch several items into one).");
  } else {
    out.serial = false;
    if (p.speedup < rq.min_speedup) {
      out.warn(warning_kind::serial_as_fast,
               format("The predicted speedup %.2fx is below %.1fx: serial would do as well.", p.speedup,
                      rq.min_speedup));
    }
    if (sized) {
      out.reason += format("Expected speedup %.2fx: serial %s, parallel %s.", p.speedup,
                           text::seconds(p.serial_seconds).c_str(), text::seconds(p.parallel_seconds).c_str());
    } else {
      out.reason += format("Expected steady-state speedup %.2fx on an endless stream.", p.speedup);
    }
  }
  if (out.serial) make_serial(out);
}

/// Warns when other work on the root's node takes cores the model counted on, and timings measured now.
void warn_if_machine_busy(const model_inputs& in, plan& out) {
  const node_facts& root = in.cluster.nodes.front();
  if (root.load_average > root.usable_cores + 0.5) {
    out.warn(warning_kind::busy_machine,
             format("Busy machine: the root's node has a load average of %.1f on %d usable cores. The workers will "
                    "share them with other work, so the run may be slower than predicted.",
                    root.load_average, root.usable_cores));
  }
}

/// Warns when a parallel plan keeps the root dispatching nearly all the time.
void warn_if_root_bottleneck(const prediction& p, plan& out) {
  if (p.root_load > root_bound_load && !out.serial) {
    out.warn(warning_kind::root_bottleneck,
             format("The root is the bottleneck (busy %.0f%%): larger chunks or fewer, larger items would help.",
                    100.0 * p.root_load));
  }
}

/// Fills the profile with every number the model used: the sample, the root's node, the costs of
/// the settled backend and the prediction `p`.
void fill_profile(const model_inputs& in, const prediction& p, plan_profile& pr) {
  const sample_stats& w = in.work;
  const node_facts& root = in.cluster.nodes.front();
  const unit_costs costs = costs_of(in);
  pr.sample_size = w.count;
  pr.spread_sample_size = w.spread_seconds.size();
  pr.total_items = in.request.total_items;
  pr.avg_execution_time = w.mean_seconds;
  pr.cv = w.cv;
  pr.min_execution_time = w.min_seconds;
  pr.max_execution_time = w.max_seconds;
  pr.cpu_per_wall = w.cpu_per_wall;
  pr.threads_inside = w.threads_inside;
  pr.input_bytes = w.input_bytes;
  pr.result_bytes = w.result_bytes;
  pr.serialize_seconds = w.serialize_seconds;
  pr.memory_per_call = w.memory_per_call;
  pr.nodes = static_cast<int>(in.cluster.nodes.size());
  pr.world_size = in.cluster.world_size;
  pr.physical_cores = root.physical_cores;
  pr.logical_cores = root.logical_cores;
  pr.usable_cores = root.usable_cores;
  pr.cpu_quota = root.cpu_quota;
  pr.load_average = root.load_average;
  pr.available_memory = root.available_memory;
  pr.spawn_cost = costs.startup;
  pr.spawn_cost_per_worker = costs.startup_per_worker;
  pr.thread_spawn_cost = in.local.thread_spawn_per_worker;
  pr.chunk_overhead = costs.chunk_root;
  pr.engine_serial_per_item = in.engine.serial_per_item;
  pr.engine_root_per_item = in.engine.root_per_item;
  pr.engine_worker_per_item = in.engine.worker_per_item;
  pr.engine_measured = in.engine.measured;
  pr.consumer_per_item = in.request.consumer_seconds_per_item;
  pr.latency_same_node = in.links.same_node.latency_seconds;
  pr.bandwidth_same_node = in.links.same_node.bandwidth_bytes_per_second;
  pr.latency_other_node = in.links.other_node.latency_seconds;
  pr.bandwidth_other_node = in.links.other_node.bandwidth_bytes_per_second;
  pr.serial_seconds = p.serial_seconds;
  pr.work_seconds = p.work_seconds;
  pr.parallel_seconds = p.parallel_seconds;
  pr.parallel_speedup = p.speedup;
  pr.root_load = p.root_load;
  pr.overhead_fraction = p.overhead_fraction;
  pr.sampling_seconds = w.total_seconds;
}

}  // namespace

void make_serial(plan& p) {
  p.serial = true;
  p.backend = backend_kind::serial;
  p.n_jobs = 1;
  p.estimated_speedup = 1.0;
  // A serial run shares no process with workers, has no root to dispatch and no window to fill.
  std::erase_if(p.warnings, [](const plan_warning& w) {
    return w.kind == warning_kind::threads_not_crash_isolated || w.kind == warning_kind::root_bottleneck ||
           w.kind == warning_kind::serial_as_fast || w.kind == warning_kind::window_below_in_flight;
  });
}

plan plan_rest_of_run(const model_inputs& planned, double mean_seconds, std::size_t items_run,
                      std::optional<std::size_t> items_left) {
  model_inputs in = planned;
  sample_stats& w = in.work;
  const double scale = w.mean_seconds > 0.0 ? mean_seconds / w.mean_seconds : 1.0;
  w.min_seconds *= scale;  // the sample's shape (CV, tail) at the measured scale
  w.max_seconds *= scale;
  w.mean_seconds = mean_seconds;
  // The items run are the sample now: they are done, the sampled calls and the spread are in the past.
  w.count = items_run;
  w.failed = 0;
  w.total_seconds = 0.0;
  w.spread_seconds.clear();
  w.spread_positions.clear();
  w.spread_total_seconds = 0.0;
  w.trend = 0.0;
  in.request.total_items = items_left ? std::optional<std::size_t>(*items_left + items_run) : std::nullopt;
  return make_plan(in);
}

plan make_plan(const model_inputs& measured) {
  model_inputs in = measured;  // the backend is settled below; everything else is as measured
  const plan_request& rq = in.request;
  plan out;
  out.mode = rq.mode;
  const bool backend_asked = assume_backend(in);
  const std::optional<std::size_t> rest = items_left(in);

  if (!in.work.spread_seconds.empty()) {
    out.reason += format("Sampled the first %zu items and %zu spread over the %zu: mean %s per item, trend %+.0f%% "
                         "from first to last. ",
                         in.work.count + in.work.failed, in.work.spread_seconds.size(), in.work.source_items,
                         text::seconds(in.work.mean_seconds).c_str(), 100.0 * in.work.trend);
  }
  const std::size_t alternative_from = out.reason.size();  // the parallel plan's sentences start here
  out.workers_per_node = choose_workers(in, out);
  int workers = total_workers(out.workers_per_node);
  out.schedule = choose_schedule(in, std::max(1, workers), rest, out);
  prediction p = forecast(in, rest, workers, out.schedule);

  const backend_kind backend = choose_backend(in, backend_asked, rest, workers, p, out);
  if (backend != *in.request.backend) {
    in.request.backend = backend;
    p = forecast(in, rest, workers, out.schedule);
  }
  out.backend = backend;
  if (reserve_root_core(in, rest, out.schedule, p, out)) workers = total_workers(out.workers_per_node);
  out.n_jobs = workers;
  out.chunksize = out.schedule.chunksize;

  out.use_ordered = choose_order(in, p, out);
  out.buffer_size = choose_window(in, workers, out.chunksize, out);
  const bool forced = rq.workers_per_node || rq.chunksize || backend_asked;
  const std::size_t verdict_from = out.reason.size();
  decide_serial(in, p, workers, forced, rest.has_value(), out);
  if (out.serial) {
    // The verdict first, then what was sampled, then the parallel plan it rejected, named as such
    // (without a worker rank there was none to reject).
    std::string alternative = out.reason.substr(alternative_from, verdict_from - alternative_from);
    while (!alternative.empty() && alternative.back() == ' ') alternative.pop_back();
    out.reason = out.reason.substr(verdict_from) + out.reason.substr(0, alternative_from);
    if (workers > 0) out.reason += "The parallel plan it rejected: " + alternative;
  }
  warn_if_machine_busy(in, out);
  warn_if_root_bottleneck(p, out);
  fill_profile(in, p, out.profile);
  return out;
}

}  // namespace amorsize
