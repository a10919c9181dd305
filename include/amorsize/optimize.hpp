#pragma once
/// The planner's entry points: optimize, optimize_streaming and estimate_safe_batch_size.

#include <amorsize/cost_model.hpp>
#include <amorsize/detail/call_identity.hpp>
#include <amorsize/detail/sample.hpp>
#include <amorsize/plan.hpp>
#include <amorsize/source.hpp>
#include <amorsize/stop.hpp>

#include <cstddef>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace amorsize {

/// What the caller may tell the planner (the seed's keyword arguments).
struct optimize_options {
  std::size_t sample_size = 5;                 ///< Items run on the root to measure the function (at least 1).
  double target_chunk_duration = 0.2;          ///< Seconds one chunk should take.
  std::optional<bool> prefer_ordered;          ///< True: input order; false: as completed; unset: decide.
  std::optional<std::size_t> buffer_size;      ///< Items in flight at most when streaming; unset: decide.
  std::optional<int> workers_per_node;         ///< Force this many workers per node.
  std::optional<std::size_t> chunksize;        ///< Force this chunk size.
  std::optional<backend_kind> backend;         ///< Force processes or threads (without a launcher), or serial (also under one).
  double memory_fraction = 0.5;                ///< Share of available memory results may take.
  double min_speedup = 1.2;                    ///< Below this predicted speedup, advise serial.
  /// Seconds the caller's loop spends on each result on the root (writing it out, say): the model
  /// adds them to a serial run and to the root's share of a parallel one, where they may bound it.
  double consumer_seconds_per_item = 0.0;
  bool use_spawn_benchmark = true;             ///< Measure the cost of starting workers (else assume 0.5 ms each).
  bool use_chunking_benchmark = true;          ///< Measure the chunk round trip and the engine's per-item costs (else assume 50 us and 30 / 20 / 10 ns).
  std::size_t spread_sample = detail::spread_sample_most; ///< Items sampled spread over a random-access source (a container, the synthetic job), at most; they run again in the run, so a function with side effects may want 0 (off).
  /// Ends sampling early (see stop_request): once requested no new sampled call starts, once abandoned
  /// the one in progress is dropped (a forked sampler is killed); planning throws stopped_error when no
  /// sampled call had returned. Pass the pool's own, so that a signal during sampling stops the call.
  const stop_request* stop = nullptr;
  bool verbose = false;                        ///< Print the plan's explanation while planning.
  std::ostream* log = &std::cerr;              ///< Where verbose output goes.
  /// Runs once in the sampler (a forked process, or this thread when sampling in-process) before the
  /// sampled items, as pool_options::worker_setup runs in each worker; empty: none. If it throws,
  /// planning throws setup_error. A pool made from the plan does not inherit it (see pool_options).
  std::function<void()> worker_setup;
};

/// Throws input_error naming the first option out of range.
void validate(const optimize_options& options);

/// A plan for gathering every result, with the data to run it on (the seed's OptimizationResult).
template <class T, class R>
struct optimization_result : plan {
  source<T> data;                              ///< Every item, the sampled ones first: use it instead of the original.
  std::vector<std::optional<R>> sampled_results; ///< Results of the first items (nullopt where the call threw), reused by the engine.
  std::vector<item_error> sample_errors;       ///< Sampled items the function threw on.
  /// What the model read, kept on the root when it planned serial (serial asked for keeps none): a
  /// serial run re-plans its rest from it when its items take longer than sampled.
  std::shared_ptr<const model_inputs> model;
};

/// A plan for streaming results through imap/imap_unordered (the seed's StreamingOptimizationResult).
template <class T, class R>
struct streaming_optimization_result : optimization_result<T, R> {};

namespace detail {

/// Plans collectively: under MPI first agrees on the call (`name_call` names it), then cluster
/// layout and links on every rank, sampling and the model on the root, and the plan (or the root's
/// error) broadcast to every rank. `sample_on_root(in_child)` samples in a forked sampler process
/// when `in_child`, else in the root itself. A serial verdict of the model keeps its inputs
/// in the root's `serial_model` (see optimization_result::model).
plan plan_collectively(const std::function<std::string()>& name_call, const optimize_options& options, plan_mode mode,
                       std::optional<std::size_t> total_items,
                       const std::function<sample_stats(bool in_child)>& sample_on_root,
                       std::shared_ptr<const model_inputs>* serial_model = nullptr);

/// True when sampling may run in a forked sampler: no launcher, and this process has no other thread.
bool sample_in_child();

/// Samples `fn` on the first `count` items of `src` after `setup` (and up to `spread_most` spread over a
/// random-access source), in a forked sampler when `in_child`, until `stop` is requested.
template <class Fn, class T>
auto sample(Fn& fn, source<T>& src, std::size_t count, bool in_child, const std::function<void()>& setup = {},
            std::size_t spread_most = spread_sample_most, const stop_request* stop = nullptr) {
  return in_child ? run_sample_in_child(fn, src, count, setup, spread_most, stop)
                  : run_sample(fn, src, count, setup, spread_most, stop);
}

/// Samples `fn` on the first items of `src` as `options` say (sample size, setup), puts them back, and
/// returns how many results fit in `options.memory_fraction` of available memory.
template <class Fn, class T>
std::size_t safe_batch_size_of(Fn& fn, source<T>& src, const optimize_options& options) {
  validate(options);
  auto sampled = sample(fn, src, options.sample_size, sample_in_child(), options.worker_setup, 0, options.stop);
  src.replay(std::move(sampled.items));
  return safe_batch_size(sampled.stats.result_bytes, probe_node().available_memory, options.memory_fraction);
}

/// Samples and plans; fills `result`'s plan, data and sampled results.
template <class Fn, class T, class Result>
void optimize_into(Fn& fn, source<T> src, const optimize_options& options, plan_mode mode, Result& result) {
  validate(options);
  const std::optional<std::size_t> total = src.size();
  using R = std::decay_t<std::invoke_result_t<Fn&, const T&>>;
  std::optional<sample_outcome<T, R>> sampled;
  const auto name_call = [&] {
    const char* method = mode == plan_mode::streaming ? "optimize_streaming" : "optimize";
    return call_name<std::decay_t<Fn>, T>(method, fn, next_call_number());
  };
  static_cast<plan&>(result) = plan_collectively(name_call, options, mode, total, [&](bool in_child) {
    sampled.emplace(sample(fn, src, options.sample_size, in_child, options.worker_setup, options.spread_sample, options.stop));
    return sampled->stats;
  }, &result.model);
  if (sampled) {
    result.sampled_results = std::move(sampled->results);
    result.sample_errors = sampled->stats.errors;
    src.replay(std::move(sampled->items));
  }
  result.data = std::move(src);
}

template <class Fn, class Data>
using item_type_t = typename decltype(make_source(std::declval<Data>()))::value_type;

template <class Fn, class Data>
using result_type_t = std::decay_t<std::invoke_result_t<Fn&, const item_type_t<Fn, Data>&>>;

}  // namespace detail

/// Measures `fn` on the first items of `data` and plans a run that gathers every result on the root.
///
/// `data` is a container (by reference: it must outlive the result), a moved-in container, an
/// iterator range made with make_source, a generator returning std::optional<T>, or a source.
/// Under MPI every rank calls it; only the root's data is read and the plan reaches every rank.
template <class Fn, class Data>
optimization_result<detail::item_type_t<Fn, Data>, detail::result_type_t<Fn, Data>> optimize(
    Fn&& fn, Data&& data, const optimize_options& options = {}) {
  optimization_result<detail::item_type_t<Fn, Data>, detail::result_type_t<Fn, Data>> result;
  detail::optimize_into(fn, make_source(std::forward<Data>(data)), options, plan_mode::gather_all, result);
  return result;
}

/// Measures `fn` and plans a streaming run (imap / imap_unordered) in bounded memory.
template <class Fn, class Data>
streaming_optimization_result<detail::item_type_t<Fn, Data>, detail::result_type_t<Fn, Data>> optimize_streaming(
    Fn&& fn, Data&& data, const optimize_options& options = {}) {
  streaming_optimization_result<detail::item_type_t<Fn, Data>, detail::result_type_t<Fn, Data>> result;
  detail::optimize_into(fn, make_source(std::forward<Data>(data)), options, plan_mode::streaming, result);
  return result;
}

/// Measures the results of `fn` on the first items and returns how many fit in `max_memory_fraction` of available memory.
///
/// Items taken from a generator are put back when `data` is a source (copies of a source share its
/// stream). `worker_setup` runs once in the sampler before the sampled items (see optimize_options).
template <class Fn, class Data>
std::size_t estimate_safe_batch_size(Fn&& fn, Data&& data, double max_memory_fraction = 0.5, std::size_t sample_size = 5,
                                     std::function<void()> worker_setup = {}) {
  optimize_options options;
  options.sample_size = sample_size;
  options.memory_fraction = max_memory_fraction;
  options.worker_setup = std::move(worker_setup);
  auto src = make_source(std::forward<Data>(data));
  return detail::safe_batch_size_of(fn, src, options);
}

}  // namespace amorsize
