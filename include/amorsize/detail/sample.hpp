#pragma once
// Sampling: runs the user's function on the first items and measures it (template part of sample.hpp).

#include <amorsize/detail/wire.hpp>
#include <amorsize/engine/local_backends.hpp>
#include <amorsize/error.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/source.hpp>
#include <amorsize/stop.hpp>
#include <amorsize/worker.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <streambuf>
#include <tuple>
#include <variant>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace amorsize::detail {

/// Serializes `value` and reads it back, as a message crosses the wire; returns the serialized size.
template <class T>
std::size_t serialization_round_trip(const T& value) {
  const std::string bytes = to_bytes(value);
  if constexpr (std::is_default_constructible_v<T>) {
    [[maybe_unused]] const T copy = from_bytes<T>(bytes);
  } else {
    [[maybe_unused]] const std::string again = to_bytes(value);  // reading needs a default constructor: charge a second write instead
  }
  return bytes.size();
}

/// Writes `values` as one chunk of the wire format (detail/wire.hpp) and reads it back; returns its size.
template <class T>
std::size_t chunk_round_trip(const std::vector<T>& values) {
  const std::string bytes = encode_items(values);
  if constexpr (std::is_default_constructible_v<T>) {
    [[maybe_unused]] const std::vector<T> copy = decode_items<T>(bytes);
  } else {
    [[maybe_unused]] const std::string again = encode_items(values);  // reading needs a default constructor: charge a second write instead
  }
  return bytes.size();
}

/// Seconds and bytes per element of sending `values` as one chunk, in the wire format chunks use, best of two tries.
template <class T>
std::pair<double, double> chunk_serialization_cost(const std::vector<T>& values) {
  if (values.empty()) return {0.0, 0.0};
  double best = 1e300;
  std::size_t size = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {  // the first archive of a type pays Boost's one-time set-up
    const auto start = std::chrono::steady_clock::now();
    size = chunk_round_trip(values);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const auto n = static_cast<double>(values.size());
  return {best / n, static_cast<double>(size) / n};
}

/// The sampled items, their results and the measurements.
template <class T, class R>
struct sample_outcome {
  sample_stats stats;                        ///< What was measured.
  std::vector<T> items;                      ///< The items taken from the source, in order.
  std::vector<std::optional<R>> results;     ///< Their results (nullopt where the function threw).
};

/// Returns the message of the exception in flight.
inline std::string current_exception_message() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

/// Results kept from sampling, at most (bytes): past it sampling stops, so planning a function
/// with huge results holds about one of them, not `sample_size`.
inline constexpr double sample_result_budget = 64.0 * 1024 * 1024;

/// Results up to this size in all are measured as one chunk; larger ones one at a time, as they come.
inline constexpr double chunk_measure_limit = 4.0 * 1024 * 1024;

/// Pulls the next item to sample; an exception from the source becomes source_error, the original nested.
template <class T>
std::optional<T> next_sample_item(source<T>& src, std::size_t index) {
  try {
    return src.next();
  } catch (...) {
    std::throw_with_nested(source_error("the input source threw while item " + std::to_string(index) +
                                        " was read for sampling: " + current_exception_message()));
  }
}

/// Fills the serialization figures of `out` from its items and results; `result_seconds` and
/// `result_bytes` are per-result figures already measured where the results crossed a process
/// boundary (0: measure here).
template <class T, class R>
void measure_serialization(sample_outcome<T, R>& out, double result_seconds, double result_bytes) {
  const auto [item_seconds, item_bytes] = chunk_serialization_cost(out.items);
  out.stats.input_bytes = item_bytes;
  if (result_bytes == 0.0 || result_bytes * static_cast<double>(out.stats.count) <= chunk_measure_limit) {
    // Small results cross the wire a chunk at a time: measure them that way.
    std::vector<R> results;
    results.reserve(out.stats.count);
    for (const auto& r : out.results) {
      if (r) results.push_back(*r);
    }
    std::tie(result_seconds, result_bytes) = chunk_serialization_cost(results);
  }
  out.stats.result_bytes = result_bytes;
  out.stats.serialize_seconds = item_seconds + result_seconds;
}

/// True once `stop` asks that no new sampled call start.
inline bool stop_asked(const stop_request* stop) { return stop != nullptr && stop->requested(); }

/// Throws stopped_error when `stop` ended sampling before any sampled call returned: nothing can be planned.
template <class T, class R>
void check_not_stopped_empty(const sample_outcome<T, R>& out, const stop_request* stop) {
  if (stop_asked(stop) && out.results.empty()) {
    throw stopped_error("a stop request (a signal) ended sampling before any sampled call returned: nothing was run");
  }
}

/// Summarises the sampled calls into `out`; `result_seconds` and `kept_bytes` are the serialization
/// time and size of the results, summed over the successful calls.
template <class T, class R>
void finish_sample(sample_outcome<T, R>& out, sample_accumulator& sampled, double result_seconds, double kept_bytes) {
  const bool cut = out.stats.cut_for_memory;
  out.stats = sampled.finish(out.items.size());
  out.stats.cut_for_memory = cut;
  const auto timed = static_cast<double>(out.stats.count);
  measure_serialization(out, result_seconds / timed, kept_bytes / timed);
}

/// Items of the spread sample, at most.
inline constexpr std::size_t spread_sample_most = 32;
/// Items of the spread sample at least when they all look alike (one per quarter of the source);
/// twice as many when they differ, whatever the budget says.
inline constexpr std::size_t spread_sample_least = 4;
/// Share of the estimated work the spread sample may take beyond its least items: its items run again in the run.
inline constexpr double spread_budget_share = 0.01;

/// Measures items spread over the rest of a random-access source (after the `head` first items taken
/// already) with `measure(item)`, which returns the call's wall time or nullopt when the call threw
/// (or the sampler can take no more); fills the spread fields of `stats` and re-estimates it. The
/// items stay in the source: the run computes them again. Does nothing for a source without random access.
template <class T, class Measure>
void sample_spread(source<T>& src, std::size_t head, std::size_t most, sample_stats& stats, Measure&& measure) {
  if (!src.has_random_access() || stats.count == 0 || most == 0) return;
  const std::size_t rest = *src.size() - src.replayed();
  stats.source_items = head + rest;
  const std::vector<std::size_t> positions = spread_positions(rest, most);
  const double head_mean = stats.mean_seconds;
  for (const std::size_t ahead : positions) {
    std::optional<T> item;
    try {
      item = src.peek(src.replayed() + ahead);
    } catch (...) {
      break;  // the run reads it again and reports what the source throws
    }
    if (!item) break;
    const std::optional<double> seconds = measure(*item);
    if (!seconds) continue;  // the run reports the item's error
    stats.spread_positions.push_back(head + ahead);
    stats.spread_seconds.push_back(*seconds);
    stats.spread_total_seconds += *seconds;
    const std::size_t done = stats.spread_seconds.size();
    if (done < 2) continue;
    const double spread_mean = stats.spread_total_seconds / static_cast<double>(done);
    const double spread_cv = spread_mean > 0.0 ? sample_stddev(stats.spread_seconds, spread_mean) / spread_mean : 0.0;
    // Items alike everywhere: the least sample says it all.
    const bool alike = spread_cv < 0.1 && std::abs(spread_mean - head_mean) < 0.1 * spread_mean;
    const double work = static_cast<double>(stats.source_items) * spread_mean;
    const bool over_budget = stats.spread_total_seconds > spread_budget_share * work;
    if ((alike && done >= spread_sample_least) || (over_budget && done >= (alike ? 2 : 2 * spread_sample_least))) break;
  }
  stats.add_spread();
}

/// Runs `setup` once, then `fn` on the first `count` items of `src` one by one in this process and
/// measures each call; then, on a random-access source, on up to `spread_most` items spread over the
/// rest (see sample_spread), whose results are dropped. Once `stop` is requested no new call starts.
///
/// Throws empty_source_error when the source has no item, sample_error when every call threw,
/// source_error when the source threw, setup_error when `setup` threw and stopped_error when `stop`
/// came before any call returned.
template <class Fn, class T, class R = std::decay_t<std::invoke_result_t<Fn&, const T&>>>
sample_outcome<T, R> run_sample(Fn& fn, source<T>& src, std::size_t count, const std::function<void()>& setup = {},
                                std::size_t spread_most = spread_sample_most, const stop_request* stop = nullptr) {
  run_setup_here(setup);
  sample_outcome<T, R> out;
  sample_accumulator sampled;
  call_meter meter;
  double kept_bytes = 0.0;
  double result_seconds = 0.0;
  for (std::size_t index = 0; index < count && !stop_asked(stop); ++index) {
    std::optional<T> item = next_sample_item(src, index);
    if (!item) break;
    out.items.push_back(std::move(*item));
    const T& current = out.items.back();
    std::optional<R> result;
    std::string failure;
    const call_cost cost = meter.measure([&] {
      try {
        result.emplace(std::invoke(fn, current));
      } catch (...) {
        failure = current_exception_message();
      }
    });
    if (result) {
      sampled.add_success(cost);
      const double start = monotonic_seconds();
      kept_bytes += static_cast<double>(serialization_round_trip(*result));
      result_seconds += monotonic_seconds() - start;
    } else {
      sampled.add_failure(index, std::move(failure));
    }
    out.results.push_back(std::move(result));
    if (kept_bytes > sample_result_budget && index + 1 < count) {
      out.stats.cut_for_memory = true;
      break;
    }
  }
  check_not_stopped_empty(out, stop);
  finish_sample(out, sampled, result_seconds, kept_bytes);
  sample_spread(src, out.items.size(), spread_most, out.stats, [&](const T& item) -> std::optional<double> {
    if (stop_asked(stop)) return std::nullopt;
    bool threw = false;
    const call_cost cost = meter.measure([&] {
      try {
        [[maybe_unused]] const auto discarded = std::invoke(fn, item);
      } catch (...) {
        threw = true;
      }
    });
    return threw ? std::nullopt : std::optional<double>(cost.wall_seconds);
  });
  return out;
}

/// Waits for the sampler's next event; once `stop` is abandoned, kills the sampler and returns nullopt.
inline std::optional<engine::event> wait_for_sampler(engine::backend& sampler, const stop_request* stop) {
  constexpr double stop_check_seconds = 0.05;
  while (true) {
    if (std::optional<engine::event> event = sampler.wait(stop_check_seconds)) return event;
    if (stop != nullptr && stop->abandoned()) {
      sampler.abandon();
      return std::nullopt;
    }
  }
}

/// The header of a sampler's answer for one item; the serialized result (or the error) follows.
struct sampled_call {
  call_cost cost;                 ///< What the call cost.
  std::uint8_t ok = 0;            ///< 1: a result follows; 0: the call threw and its message follows.
  double write_seconds = 0.0;     ///< Time the sampler took to serialize the result.
};

/// Runs `setup` once, then `fn` on the first `count` items of `src` in a forked sampler process,
/// one item at a time, and measures each call there; the root runs none of the user's code.
///
/// User code may start threads (OpenMP, BLAS, TBB) that would make any later fork of the root
/// unsafe, and may crash: both stay in the sampler. A sampler killed by an item reports that item
/// as failed and is replaced. Once `stop` is abandoned the sampler is killed, and the item it ran
/// stays among the items without a result. Throws like run_sample.
template <class Fn, class T, class R = std::decay_t<std::invoke_result_t<Fn&, const T&>>>
sample_outcome<T, R> run_sample_in_child(Fn& fn, source<T>& src, std::size_t count,
                                         const std::function<void()>& setup = {},
                                         std::size_t spread_most = spread_sample_most,
                                         const stop_request* stop = nullptr) {
  // The sampler's side: one item in, its cost and its result (or error) out.
  // The meter (and its watching thread) is made in the sampler, on its first item, never in the root.
  auto meter = std::make_shared<std::optional<call_meter>>();
  engine::chunk_task task = [&fn, meter](const std::string& payload, double& compute_seconds) {
    if (!*meter) meter->emplace();
    const T item = from_bytes<T>(payload);
    std::optional<R> result;
    sampled_call answer;
    std::string body;
    answer.cost = (*meter)->measure([&] {
      try {
        result.emplace(std::invoke(fn, item));
      } catch (...) {
        body = current_exception_message();
      }
    });
    compute_seconds = answer.cost.wall_seconds;
    if (result) {
      const double start = monotonic_seconds();
      body = to_bytes(*result);
      answer.write_seconds = monotonic_seconds() - start;
      answer.ok = 1;
    }
    body.insert(0, reinterpret_cast<const char*>(&answer), sizeof answer);
    return body;
  };
  const std::unique_ptr<engine::backend> sampler = engine::make_process_backend(1, task, setup);

  sample_outcome<T, R> out;
  sample_accumulator sampled;
  double kept_bytes = 0.0;
  double result_seconds = 0.0;
  // A sampler that items keep killing is not replaced (see make_process_backend): stop there.
  for (std::size_t index = 0; index < count && sampler->alive(0) && !stop_asked(stop); ++index) {
    std::optional<T> item = next_sample_item(src, index);
    if (!item) break;
    sampler->send(0, engine::chunk{index, index, 1, to_bytes(*item)});
    out.items.push_back(std::move(*item));
    const std::optional<engine::event> event = wait_for_sampler(*sampler, stop);
    if (!event) break;  // abandoned: the item stays in the source without a result, and the stopped run starts none
    std::optional<R> result;
    if (auto* done = std::get_if<engine::chunk_result>(&*event)) {
      sampled_call answer;
      std::memcpy(&answer, done->payload.data(), sizeof answer);
      if (answer.ok != 0) {
        const double start = monotonic_seconds();
        result.emplace(from_bytes<R>(done->payload, sizeof answer));
        result_seconds += answer.write_seconds + monotonic_seconds() - start;
        kept_bytes += static_cast<double>(done->payload.size() - sizeof answer);
        sampled.add_success(answer.cost);
      } else {
        sampled.add_failure(index, done->payload.substr(sizeof answer));
      }
    } else if (const auto* failed = std::get_if<engine::setup_failed>(&*event)) {
      throw setup_error::in_worker(0, failed->reason);  // the sampler stops with `sampler`
    } else {
      const auto& lost = std::get<engine::worker_lost>(*event);
      sampled.add_crash(index, "its worker died while running it (" + lost.reason + ")");
    }
    out.results.push_back(std::move(result));
    if (kept_bytes > sample_result_budget && index + 1 < count) {
      out.stats.cut_for_memory = true;
      break;
    }
  }
  check_not_stopped_empty(out, stop);
  finish_sample(out, sampled, result_seconds, kept_bytes);
  std::size_t spread_id = count;
  sample_spread(src, out.items.size(), spread_most, out.stats, [&](const T& item) -> std::optional<double> {
    if (!sampler->alive(0) || stop_asked(stop)) return std::nullopt;
    const std::size_t id = spread_id++;
    sampler->send(0, engine::chunk{id, id, 1, to_bytes(item)});
    const std::optional<engine::event> event = wait_for_sampler(*sampler, stop);
    if (!event) return std::nullopt;
    if (std::holds_alternative<engine::worker_lost>(*event)) ++out.stats.crashed;  // the plan must survive it too
    const auto* done = std::get_if<engine::chunk_result>(&*event);
    if (done == nullptr) return std::nullopt;
    sampled_call answer;
    std::memcpy(&answer, done->payload.data(), sizeof answer);
    return answer.ok != 0 ? std::optional<double>(answer.cost.wall_seconds) : std::nullopt;
  });
  sampler->stop();
  return out;
}

}  // namespace amorsize::detail
