// Pool options, one call and the session resolved into one run, decided here and nowhere else.
#include <amorsize/cost_model.hpp>
#include <amorsize/engine/local_backends.hpp>
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>
#include <amorsize/pool.hpp>
#include <amorsize/probe.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/session.hpp>
#include <amorsize/worker.hpp>

#include "text.hpp"

#include <algorithm>
#include <numeric>
#include <string>

namespace amorsize {
namespace {

/// Largest chunk size a caller may ask for; anything larger is a negative number converted, most likely.
constexpr std::size_t max_chunksize = std::size_t{1} << 31;

/// Writes `counts` as "{a, b, c}".
std::string braced(const std::vector<int>& counts) {
  std::string out = "{";
  for (std::size_t i = 0; i < counts.size(); ++i) out += (i ? ", " : "") + std::to_string(counts[i]);
  return out + "}";
}

/// The workers on each node of `layout` that `asked` gives: one count per node, one count for
/// every node, or none for every rank but the root. The root's rank never works.
std::vector<int> workers_on_each_node(const cluster_layout& layout, const std::vector<int>& asked) {
  std::vector<int> per_node(layout.nodes.size());
  for (std::size_t n = 0; n < per_node.size(); ++n) {
    const int ranks = layout.ranks_per_node[n] - (n == 0 ? 1 : 0);
    const int want = asked.size() == per_node.size() ? asked[n] : asked.size() == 1 ? asked[0] : ranks;
    per_node[n] = std::clamp(want, 0, ranks);
  }
  return per_node;
}

/// The ranks a serial run under MPI keeps on standby: every rank but the root.
std::vector<int> standby_ranks(const cluster_layout& layout) {
  return engine::pick_worker_ranks(layout, workers_on_each_node(layout, {}));
}

/// The local workers `options` ask for, capped at max_workers_per_core per usable core unless forced.
int local_workers(const pool_options& options) {
  const int asked = std::max(1, std::accumulate(options.workers_per_node.begin(), options.workers_per_node.end(), 0));
  if (options.workers_per_node.empty()) return std::max(1, probe_node().usable_cores);
  const int cap = max_workers_per_core * std::max(1, probe_node().usable_cores);
  if (options.force_workers || asked <= cap) return asked;
  if (options.log) {
    *options.log << "amorsize: warning: " << asked << " workers asked for on " << probe_node().usable_cores
                 << " usable cores; running " << cap << " (" << max_workers_per_core
                 << " per core). Set pool_options::force_workers to run them all.\n";
  }
  return cap;
}

/// Where workers `ranks` of `layout` are (empty `ranks`: `count` local workers, or the calling thread).
detail::worker_places places_of(const cluster_layout& layout, const std::vector<int>& ranks, int count) {
  detail::worker_places places;
  const auto host_of = [&layout](int rank) {
    const auto node = static_cast<std::size_t>(layout.node_of_rank.at(static_cast<std::size_t>(rank)));
    return layout.nodes.at(node).hostname;
  };
  if (ranks.empty()) {
    const int here = layout.mpi ? session::current().rank() : -1;
    places.ranks.assign(static_cast<std::size_t>(count), here);
    places.hosts.assign(static_cast<std::size_t>(count), host_of(std::max(here, 0)));
    return places;
  }
  for (const int rank : ranks) {
    places.ranks.push_back(rank);
    places.hosts.push_back(host_of(rank));
  }
  return places;
}

/// The dispatcher's settings for a call: the pool's chunk policy unless the call fixes a size, its window and order.
engine::dispatch_options dispatch_for(const pool_options& options, const detail::call_request& call) {
  engine::dispatch_options dispatch;
  dispatch.schedule = options.schedule;
  if (call.chunksize > 0) {
    dispatch.schedule = chunk_schedule{schedule_kind::fixed, call.chunksize, call.chunksize, false,  // the caller chose it
                                       options.schedule.target_seconds};
  }
  dispatch.ordered = call.ordered.value_or(options.use_ordered);
  dispatch.buffer_size = call.buffer_size > 0 ? call.buffer_size : options.buffer_size;
  dispatch.stop = options.stop;
  return dispatch;
}

/// Says in options.log that a run on `backend` ignores the item timeout asked for (only worker processes can stop an item).
void warn_if_no_item_timeout(const pool_options& options, backend_kind backend) {
  if (options.item_timeout <= 0.0 || backend == backend_kind::processes || !options.log) return;
  *options.log << "amorsize: warning: item_timeout applies to worker processes: "
               << (backend == backend_kind::threads ? "a thread" : backend == backend_kind::mpi ? "a worker rank" : "a serial run")
               << " cannot be stopped; this run has no timeout\n";
}

}  // namespace

namespace detail {

void agree_on_call(const std::function<std::string()>& key, const std::string& refusal) {
  session& s = session::current();
  if (s.mpi() && key) engine::agree_on_call(s, key(), refusal);
  if (!refusal.empty()) throw input_error(refusal);
}

bool hands_records() { return session::current().is_root(); }

chunk_span span_of(const worker_places& places, const engine::finished_chunk& done) {
  const auto worker = static_cast<std::size_t>(done.worker);
  return chunk_span{done.id,
                    done.worker,
                    worker < places.ranks.size() ? places.ranks[worker] : -1,
                    worker < places.hosts.size() ? places.hosts[worker] : std::string(),
                    done.first_index,
                    done.count,
                    done.sent,
                    done.received,
                    done.compute_seconds};
}

namespace {

/// start_run without its warning about the item timeout.
resolved_run resolve_run(const pool_options& options, const call_request& call, const engine::chunk_task& task,
                         const std::string& refusal) {
  agree_on_call(call.agreement_key, refusal);  // before any other message
  session& s = session::current();
  const cluster_layout& layout = s.layout();  // collective on first use under MPI: every rank, every backend
  resolved_run run;
  run.dispatch = dispatch_for(options, call);
  std::ostream* log = options.log;
  const bool verbose = options.verbose && log;
  // A serial run is the calling thread's: worker 0, which runs the setup before the first item.
  const auto run_here = [&] {
    run.backend = backend_kind::serial;
    run.places = places_of(layout, {}, 1);
    run_setup_here(options.worker_setup);
  };

  run.backend = options.backend.value_or(s.mpi() ? backend_kind::mpi : backend_kind::processes);
  if (s.mpi() && run.backend != backend_kind::serial) run.backend = backend_kind::mpi;
  if (!s.mpi() && run.backend == backend_kind::mpi) run.backend = backend_kind::processes;
  if (run.backend == backend_kind::processes && !engine::fork_is_safe()) {
    run.backend = backend_kind::threads;
    if (log) {
      *log << "amorsize: warning: the program already runs " << process_threads()
           << " threads: forking worker processes from it could deadlock them (a lock held at the fork stays "
              "locked), so the workers are threads. Start the pool before any threads (OpenMP, a thread pool) to "
              "get processes.\n";
    }
  }

  if (run.backend == backend_kind::serial) {
    // Under MPI a serial run is the root's; the other ranks have nothing to serve, unless the run may
    // go parallel: then they wait, idle, for the rest of it.
    const bool standby = s.mpi() && s.size() > 1 && options.may_go_parallel && call.planned_data;
    run.hands_records = s.is_root();
    if (!run.hands_records) {
      if (standby) {
        const std::vector<int> ranks = standby_ranks(layout);
        const auto mine = std::find(ranks.begin(), ranks.end(), s.rank());
        engine::serve_chunks(s, task, mine == ranks.end() ? -1 : static_cast<int>(mine - ranks.begin()),
                             options.worker_setup);
      }
      return run;
    }
    if (verbose) *log << "amorsize: running serially in the calling thread\n";
    if (standby) run.standby = engine::make_mpi_backend(s, standby_ranks(layout));
    run_here();
    return run;
  }
  if (run.backend == backend_kind::mpi) {
    const std::vector<int> ranks = engine::pick_worker_ranks(layout, workers_on_each_node(layout, options.workers_per_node));
    if (!s.is_root()) {
      const auto mine = std::find(ranks.begin(), ranks.end(), s.rank());
      const int worker = mine == ranks.end() ? -1 : static_cast<int>(mine - ranks.begin());  // -1: it sits out
      engine::serve_chunks(s, task, worker, options.worker_setup);
      run.hands_records = false;
      return run;
    }
    if (verbose) {
      *log << "amorsize: " << ranks.size() << " worker ranks of " << s.size() << "; "
           << (s.size() - 1 - static_cast<int>(ranks.size())) << " sit out (the plan needs no more)\n";
    }
    run.workers = engine::make_mpi_backend(s, ranks);
    if (ranks.empty()) {
      run.workers->stop();  // the other ranks are serving: release them, then run here
      run.workers.reset();
      run_here();
      return run;
    }
    run.places = places_of(layout, ranks, 0);
    return run;
  }
  const int count = local_workers(options);
  run.workers = run.backend == backend_kind::threads ? engine::make_thread_backend(count, task, options.worker_setup)
                                                     : engine::make_process_backend(count, task, options.worker_setup,
                                                                                    options.item_timeout);
  run.places = places_of(layout, {}, count);
  if (verbose) *log << "amorsize: " << count << " worker " << to_string(run.backend) << '\n';
  return run;
}

}  // namespace

resolved_run start_run(const pool_options& options, const call_request& call, const engine::chunk_task& task,
                       const std::string& refusal) {
  resolved_run run = resolve_run(options, call, task, refusal);
  if (run.hands_records) warn_if_no_item_timeout(options, run.backend);
  return run;
}

resolved_run run_on_standby(const pool_options& options, const call_request& call,
                            std::unique_ptr<engine::backend> standby) {
  const cluster_layout& layout = session::current().layout();
  resolved_run run;
  run.backend = backend_kind::mpi;
  run.dispatch = dispatch_for(options, call);
  run.workers = std::move(standby);
  run.places = places_of(layout, standby_ranks(layout), 0);
  warn_if_no_item_timeout(options, run.backend);
  return run;
}

std::optional<went_parallel_plan> plan_going_parallel(const model_inputs& model, double mean_seconds,
                                                      std::size_t items_run, std::optional<std::size_t> items_left,
                                                      double at_seconds) {
  // Items about as dear as sampled leave the serial verdict standing: re-planning on noise would only churn.
  constexpr double clearly_slower = 1.25;
  const double mean = std::max(0.0, mean_seconds - model.engine.serial_per_item);
  if (mean < clearly_slower * model.work.mean_seconds || (items_left && *items_left == 0)) return std::nullopt;
  went_parallel_plan out{plan_rest_of_run(model, mean, items_run, items_left), {}};
  const plan& rest = out.rest;
  if (rest.serial) return std::nullopt;
  replan& why = out.why;
  why.at_seconds = at_seconds;
  why.items_done = items_run;
  why.old_kind = schedule_kind::fixed;
  why.old_chunksize = 1;
  why.new_kind = rest.schedule.kind;
  why.new_chunksize = rest.chunksize;
  why.old_workers = 1;
  why.new_workers = rest.n_jobs;
  why.eta_seconds = rest.profile.parallel_seconds;
  const std::string left = items_left ? text::count_of(static_cast<long long>(*items_left), "item") : "an unknown number";
  const std::string workers = rest.backend == backend_kind::mpi ? text::count_of(rest.n_jobs, "worker rank")
                                                                  : text::format("%d %s", rest.n_jobs,
                                                                                 std::string(to_string(rest.backend)).c_str());
  why.reason = text::format("Items took %s each, not the %s sampled: after %zu in the calling thread, the rest (%s) "
                            "runs on %s, predicted speedup %.2fx.",
                            text::seconds(mean).c_str(), text::seconds(model.work.mean_seconds).c_str(), items_run,
                            left.c_str(), workers.c_str(), rest.estimated_speedup);
  return out;
}

}  // namespace detail

void validate(const pool_options& options) {
  const std::vector<int>& workers = options.workers_per_node;
  bool any = false;
  for (std::size_t n = 0; n < workers.size(); ++n) {
    if (workers[n] < 0) {
      throw input_error("pool: workers_per_node[" + std::to_string(n) + "] is " + std::to_string(workers[n]) +
                        " (pool(n) sets {n}): a worker count cannot be negative; give 1 or more (0 leaves a node out)");
    }
    any = any || workers[n] > 0;
  }
  if (!workers.empty() && !any) {
    throw input_error("pool: workers_per_node " + braced(workers) +
                      " (pool(n) sets {n}) gives no node a worker: give at least one worker, leave it empty to "
                      "let the pool decide, or choose backend serial");
  }
  validate_chunksize(options.schedule.chunksize);
  if (!(options.item_timeout >= 0.0)) {
    throw input_error("pool: item_timeout is " + std::to_string(options.item_timeout) +
                      ": give the seconds an item may run in a worker process, or 0 for no limit");
  }
}

void validate_chunksize(std::size_t chunksize) {
  if (chunksize > max_chunksize) {
    throw input_error("pool: chunk size " + std::to_string(chunksize) + " is over the maximum " +
                      std::to_string(max_chunksize) +
                      "; it looks like a negative number converted to std::size_t: give a positive chunk size, "
                      "or 0 to let the pool decide");
  }
}

}  // namespace amorsize
