#pragma once
/// A streaming writer of Chrome trace-event JSON (the JSON Object Format), which Perfetto and
/// chrome://tracing open: each event is written as it comes, so a long run's trace is never held.

#include <nlohmann/json.hpp>

#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amorsize::runner {

/// Writes `{"traceEvents":[` ... `],"displayTimeUnit":"ms"}` to a stream, one event per line.
///
/// A track is a (process, thread) pair of names, shown as a row; a process name gets a pid from 1
/// in the order of first use, a thread name a tid from 1 within its process, and each is named by
/// metadata events (`process_name`, `thread_name`, and sort indices keeping the order of first
/// use). Spans are complete events (`ph` "X") with `ts` and `dur` in microseconds, rounded to the
/// nanosecond. Invalid UTF-8 in names or args is replaced by U+FFFD. Not thread-safe.
class trace_writer {
 public:
  /// Starts a trace on `out`; times given later are seconds on the clock `origin_seconds` is read
  /// from, written as microseconds since that origin.
  trace_writer(std::ostream& out, double origin_seconds);

  /// Finishes the trace if finish was not called, swallowing any stream error.
  ~trace_writer();

  /// Not copied or moved: one writer owns the trace on its stream and finishes it once.
  trace_writer(const trace_writer&) = delete;
  trace_writer& operator=(const trace_writer&) = delete;
  trace_writer(trace_writer&&) = delete;
  trace_writer& operator=(trace_writer&&) = delete;

  /// Returns the id of the track named `thread_name` in `process_name`, writing its metadata the
  /// first time the pair is seen; the same names always give the same id.
  int track(const std::string& process_name, const std::string& thread_name);

  /// Writes a span on `track` from `start_seconds` lasting `seconds` (negative: 0), with `args`
  /// (null: none; otherwise a JSON object); throws std::invalid_argument for an unknown track, a
  /// non-finite time or args that are not an object, std::logic_error after finish.
  void span(int track, std::string_view name, std::string_view category, double start_seconds, double seconds,
            const nlohmann::json& args = nullptr);

  /// Closes the JSON and flushes the stream; later calls do nothing.
  void finish();

 private:
  void write_line(std::string_view event);

  std::ostream& out_;
  double origin_;
  bool wrote_event_ = false;
  bool finished_ = false;
  std::map<std::string, int, std::less<>> pids_;         // process name -> pid
  std::map<std::pair<int, std::string>, int> track_ids_;  // (pid, thread name) -> track id
  std::vector<int> threads_in_process_;                   // pid - 1 -> threads named so far
  std::vector<std::pair<int, int>> tracks_;               // track id -> (pid, tid)
};

}  // namespace amorsize::runner
