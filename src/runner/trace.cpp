#include "trace.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace amorsize::runner {
namespace {

/// Dumps `value` as compact JSON, replacing invalid UTF-8 rather than throwing.
std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Returns `text` as a JSON string literal.
std::string quoted(std::string_view text) { return dump(nlohmann::json(std::string(text))); }

/// Formats microseconds rounded to the nanosecond, in plain decimal ("1500000", "12.345").
std::string microseconds(double us) {
  const double rounded = std::round(us * 1e3) / 1e3;
  std::array<char, 64> buffer{};
  const auto [end, status] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), rounded, std::chars_format::fixed);
  if (status != std::errc{}) throw std::invalid_argument("trace time out of range: " + std::to_string(us) + " us");
  return {buffer.data(), end};
}

/// Returns a metadata event naming or ordering a process (tid 0) or one of its threads.
nlohmann::json metadata(const char* name, int pid, int tid, nlohmann::json args) {
  nlohmann::json event = {{"name", name}, {"ph", "M"}, {"pid", pid}, {"args", std::move(args)}};
  if (tid > 0) event["tid"] = tid;
  return event;
}

}  // namespace

trace_writer::trace_writer(std::ostream& out, double origin_seconds) : out_(out), origin_(origin_seconds) {
  out_ << R"({"traceEvents":[)";
}

trace_writer::~trace_writer() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; a stream that fails at the end loses the tail
  }
}

int trace_writer::track(const std::string& process_name, const std::string& thread_name) {
  if (finished_) throw std::logic_error("trace_writer::track after finish");
  auto process = pids_.find(process_name);
  if (process == pids_.end()) {
    const int pid = static_cast<int>(pids_.size()) + 1;
    process = pids_.emplace(process_name, pid).first;
    threads_in_process_.push_back(0);
    write_line(dump(metadata("process_name", pid, 0, {{"name", process_name}})));
    write_line(dump(metadata("process_sort_index", pid, 0, {{"sort_index", pid}})));
  }
  const int pid = process->second;
  const auto key = std::make_pair(pid, thread_name);
  if (const auto known = track_ids_.find(key); known != track_ids_.end()) return known->second;

  const int tid = ++threads_in_process_[static_cast<std::size_t>(pid - 1)];
  const int id = static_cast<int>(tracks_.size());
  tracks_.emplace_back(pid, tid);
  track_ids_.emplace(key, id);
  write_line(dump(metadata("thread_name", pid, tid, {{"name", thread_name}})));
  write_line(dump(metadata("thread_sort_index", pid, tid, {{"sort_index", tid}})));
  return id;
}

void trace_writer::span(int track, std::string_view name, std::string_view category, double start_seconds,
                        double seconds, const nlohmann::json& args) {
  if (finished_) throw std::logic_error("trace_writer::span after finish");
  if (track < 0 || static_cast<std::size_t>(track) >= tracks_.size()) {
    throw std::invalid_argument("trace_writer::span: unknown track " + std::to_string(track));
  }
  if (!std::isfinite(start_seconds) || !std::isfinite(seconds)) {
    throw std::invalid_argument("trace_writer::span: a time is not finite");
  }
  if (!args.is_null() && !args.is_object()) throw std::invalid_argument("trace_writer::span: args must be an object");

  const auto [pid, tid] = tracks_[static_cast<std::size_t>(track)];
  std::string line = R"({"name":)" + quoted(name) + R"(,"cat":)" + quoted(category) + R"(,"ph":"X","ts":)" +
                     microseconds((start_seconds - origin_) * 1e6) + R"(,"dur":)" +
                     microseconds(seconds > 0 ? seconds * 1e6 : 0.0) + R"(,"pid":)" + std::to_string(pid) +
                     R"(,"tid":)" + std::to_string(tid);
  if (!args.is_null()) line += R"(,"args":)" + dump(args);
  line += '}';
  write_line(line);
}

void trace_writer::finish() {
  if (finished_) return;
  finished_ = true;
  out_ << R"(
],"displayTimeUnit":"ms"}
)";
  out_.flush();
}

void trace_writer::write_line(std::string_view event) {
  out_ << (wrote_event_ ? ",\n" : "\n") << event;
  wrote_event_ = true;
}

}  // namespace amorsize::runner
