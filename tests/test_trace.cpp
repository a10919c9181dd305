// The Chrome trace-event writer: valid JSON as written, tracks with their metadata, spans in microseconds.
#include "runner/trace.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace amorsize::runner;
using json = nlohmann::json;

namespace {

/// Parses a finished trace; fails the test when it is not JSON.
json parse(const std::string& text) {
  INFO(text);
  json trace;
  REQUIRE_NOTHROW(trace = json::parse(text));
  REQUIRE(trace.is_object());
  REQUIRE(trace.at("traceEvents").is_array());
  CHECK(trace.at("displayTimeUnit") == "ms");
  return trace;
}

/// Returns the events of a phase ("X", "M") in the order written.
std::vector<json> events(const json& trace, const std::string& phase) {
  std::vector<json> out;
  for (const auto& event : trace.at("traceEvents")) {
    if (event.at("ph") == phase) out.push_back(event);
  }
  return out;
}

/// Returns the metadata event `name` for pid and, when tid > 0, tid.
json metadata(const json& trace, const std::string& name, int pid, int tid = 0) {
  for (const auto& event : events(trace, "M")) {
    if (event.at("name") == name && event.at("pid") == pid && (tid == 0 || event.value("tid", 0) == tid)) return event;
  }
  FAIL("no metadata " << name << " for pid " << pid << " tid " << tid);
  return {};
}

}  // namespace

TEST_CASE("an empty trace is valid JSON, whether finished or destroyed", "[trace]") {
  std::ostringstream finished;
  {
    trace_writer writer(finished, 0.0);
    writer.finish();
    writer.finish();  // idempotent
  }
  CHECK(parse(finished.str()).at("traceEvents").empty());

  std::ostringstream destroyed;
  { trace_writer writer(destroyed, 0.0); }
  CHECK(parse(destroyed.str()).at("traceEvents").empty());
  CHECK(destroyed.str() == finished.str());
}

TEST_CASE("tracks get one pid per process, one tid per thread in it, and metadata once", "[trace]") {
  std::ostringstream out;
  trace_writer writer(out, 0.0);
  const int root = writer.track("amorsize", "dispatcher");
  const int w1 = writer.track("workers", "worker 1");
  const int w2 = writer.track("workers", "worker 2");
  const int w1_again = writer.track("workers", "worker 1");
  const int other = writer.track("amorsize", "worker 1");  // same thread name, other process
  CHECK(w1 == w1_again);
  CHECK(std::vector<int>{root, w1, w2, other} == std::vector<int>{0, 1, 2, 3});
  writer.finish();

  const json trace = parse(out.str());
  CHECK(events(trace, "X").empty());
  CHECK(events(trace, "M").size() == 2 * 2 + 4 * 2);  // name and sort index per process and per thread
  CHECK(metadata(trace, "process_name", 1).at("args") == json{{"name", "amorsize"}});
  CHECK(metadata(trace, "process_name", 2).at("args") == json{{"name", "workers"}});
  CHECK(metadata(trace, "process_sort_index", 2).at("args") == json{{"sort_index", 2}});
  CHECK(metadata(trace, "thread_name", 1, 1).at("args") == json{{"name", "dispatcher"}});
  CHECK(metadata(trace, "thread_name", 1, 2).at("args") == json{{"name", "worker 1"}});
  CHECK(metadata(trace, "thread_name", 2, 1).at("args") == json{{"name", "worker 1"}});
  CHECK(metadata(trace, "thread_name", 2, 2).at("args") == json{{"name", "worker 2"}});
  CHECK(metadata(trace, "thread_sort_index", 2, 2).at("args") == json{{"sort_index", 2}});
  for (const auto& event : events(trace, "M")) {
    const std::string name = event.at("name");
    CHECK(event.contains("tid") == name.starts_with("thread_"));
  }
}

TEST_CASE("spans are complete events in microseconds from the origin, one per line", "[trace]") {
  std::ostringstream out;
  trace_writer writer(out, 1000.0);
  const int w1 = writer.track("workers", "worker 1");
  const int w2 = writer.track("workers", "worker 2");
  writer.span(w1, "task 0", "task", 1000.5, 0.25);
  writer.span(w2, "task 1", "task", 1001.0000015, 1e-7, json{{"items", 3}, {"failed", false}});
  writer.span(w1, "chunk", "dispatch", 1002.0, -0.5);  // a negative duration is written as 0
  writer.finish();

  const json trace = parse(out.str());
  const auto spans = events(trace, "X");
  REQUIRE(spans.size() == 3);
  CHECK(spans[0] == json{{"name", "task 0"}, {"cat", "task"}, {"ph", "X"}, {"ts", 500000}, {"dur", 250000}, {"pid", 1}, {"tid", 1}});
  CHECK(spans[1].at("ts").get<double>() == Approx(1000001.5).margin(1e-9));  // kept to the nanosecond
  CHECK(spans[1].at("dur").get<double>() == Approx(0.1).margin(1e-9));
  CHECK(spans[1].at("tid") == 2);
  CHECK(spans[1].at("args") == json{{"items", 3}, {"failed", false}});
  CHECK_FALSE(spans[0].contains("args"));
  CHECK(spans[2].at("ts") == 2000000);
  CHECK(spans[2].at("dur") == 0);

  // One event per line between the opening and the closing line; times as plain decimals.
  const std::string text = out.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 6 + 3 + 2);  // 6 metadata, 3 spans, the closing
  CHECK(text.find("e+") == std::string::npos);
  CHECK(text.find("\"ts\":500000,") != std::string::npos);
  CHECK(text.find("\"ts\":1000001.5,") != std::string::npos);
}

TEST_CASE("names with quotes, newlines and bad UTF-8 are escaped, not breaking the JSON", "[trace]") {
  std::ostringstream out;
  const std::string process = "proc \"quoted\"\n";
  const std::string thread = "thread\\back\tslash";
  const std::string name = "cat \"a b\"\nline two \x01";
  {
    trace_writer writer(out, 0.0);
    const int t = writer.track(process, thread);
    writer.span(t, name, "c\"at", 0.0, 1.0, json{{"line", "x\ny"}});
    writer.span(t, "bad \xff utf-8", "task", 0.0, 1.0, json{{"arg", "\xfe"}});
  }  // finished by the destructor

  const std::string text = out.str();
  const json trace = parse(text);
  CHECK(metadata(trace, "process_name", 1).at("args").at("name") == process);
  CHECK(metadata(trace, "thread_name", 1, 1).at("args").at("name") == thread);
  const auto spans = events(trace, "X");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0].at("name") == name);
  CHECK(spans[0].at("cat") == "c\"at");
  CHECK(spans[0].at("args").at("line") == "x\ny");
  CHECK(spans[1].at("name") == "bad \xef\xbf\xbd utf-8");  // U+FFFD
  CHECK(spans[1].at("args").at("arg") == "\xef\xbf\xbd");
  CHECK(std::count(text.begin(), text.end(), '\n') == 4 + 2 + 2);  // raw newlines only between events
}

TEST_CASE("misuse is refused before anything is written", "[trace]") {
  std::ostringstream out;
  trace_writer writer(out, 0.0);
  const int t = writer.track("p", "t");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(writer.span(t + 1, "x", "c", 0.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(writer.span(-1, "x", "c", 0.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(writer.span(t, "x", "c", nan, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(writer.span(t, "x", "c", 0.0, std::numeric_limits<double>::infinity()), std::invalid_argument);
  CHECK_THROWS_AS(writer.span(t, "x", "c", 0.0, 1.0, json::array({1, 2})), std::invalid_argument);
  writer.finish();
  CHECK_THROWS_AS(writer.span(t, "x", "c", 0.0, 1.0), std::logic_error);
  CHECK_THROWS_AS(writer.track("p", "u"), std::logic_error);

  const json trace = parse(out.str());
  CHECK(events(trace, "X").empty());
}

TEST_CASE("a large trace streams out as it is written", "[trace]") {
  std::ostringstream out;
  trace_writer writer(out, 0.0);
  std::vector<int> workers;
  for (int w = 0; w < 8; ++w) workers.push_back(writer.track("workers", "worker " + std::to_string(w + 1)));
  const auto before = out.str().size();
  constexpr int spans = 20000;
  for (int i = 0; i < spans; ++i) {
    writer.span(workers[static_cast<std::size_t>(i % 8)], "task " + std::to_string(i), "task", i * 1e-3, 0.9e-3);
  }
  CHECK(out.str().size() > before + spans * 60);  // written, not held
  writer.finish();
  const json trace = parse(out.str());
  const auto written = events(trace, "X");
  REQUIRE(written.size() == spans);
  CHECK(written.back().at("ts") == (spans - 1) * 1000);
  CHECK(written.back().at("dur") == 900);
}
