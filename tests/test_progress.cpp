// The runner's progress line, its throttled writer, the choice of style and the end-of-run summary.
#include "runner/progress.hpp"

#include <amorsize/error.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

using namespace amorsize::runner;
using Catch::Matchers::Contains;

namespace {

/// Counts with a total.
progress_counts counts(std::size_t done, std::size_t failed, std::size_t total, int workers, double elapsed) {
  return {done, failed, total, workers, elapsed};
}

/// Counts of endless input.
progress_counts endless(std::size_t done, std::size_t failed, int workers, double elapsed) {
  return {done, failed, std::nullopt, workers, elapsed};
}

/// True when no character of `text` is part of "nan" or "inf" spelled by a formatter.
bool no_nan_or_inf(const std::string& text) {
  return text.find("nan") == std::string::npos && text.find("inf") == std::string::npos;
}

/// A summary of a finished parallel run with failures.
run_summary failed_run() {
  run_summary s;
  s.items = 2000;
  s.failed = 12;
  s.wall_seconds = 12.34;
  s.sampling_seconds = 0.1;
  s.planning_seconds = 0.05;
  s.running_seconds = 12.0;
  s.tail_seconds = 0.3;
  s.predicted_speedup = 3.9;
  s.measured_speedup = 3.85;
  s.workers = 4;
  s.backend = "processes";
  s.output = "out.jsonl";
  s.first_failure = "task 17 exited 1: no such file";
  return s;
}

}  // namespace

TEST_CASE("the progress line shows counts, rate, ETA, workers and elapsed time", "[progress]") {
  // 1234 done in 8.2 s: 150.5/s, 766 left: 5.09 s, rounded up to 0:06.
  CHECK(format_progress(counts(1234, 12, 2000, 4, 8.2)) ==
        "1234/2000 tasks (61.7%) | 12 failed | 150.5/s | ETA 0:06 | 4 workers | 0:08 elapsed");
  CHECK(format_progress(endless(1234, 12, 4, 8.2)) == "1234 tasks | 12 failed | 150.5/s | 4 workers | 0:08 elapsed");
  CHECK(format_progress(counts(10, 0, 20, 1, 5), "items") ==
        "10/20 items (50.0%) | 2.0/s | ETA 0:05 | 1 worker | 0:05 elapsed");
}

TEST_CASE("the progress line has a fixed rule for its edge cases", "[progress]") {
  SECTION("nothing done yet: no rate, no ETA") {
    CHECK(format_progress(counts(0, 0, 2000, 4, 3.0)) == "0/2000 tasks (0.0%) | --/s | ETA -- | 4 workers | 0:03 elapsed");
    CHECK(format_progress(counts(5, 0, 10, 4, 0.0)) == "5/10 tasks (50.0%) | --/s | ETA -- | 4 workers | 0:00 elapsed");
  }
  SECTION("workers not started yet are left out") {
    CHECK(format_progress(endless(0, 0, 0, 0.0)) == "0 tasks | --/s | 0:00 elapsed");
  }
  SECTION("the percentage is rounded down: 100.0% only when all are done") {
    CHECK_THAT(format_progress(counts(1999, 0, 2000, 4, 10)), Contains("(99.9%)"));
    CHECK_THAT(format_progress(counts(2000, 0, 2000, 4, 10)), Contains("(100.0%) | 200.0/s | ETA 0:00 |"));
    CHECK_THAT(format_progress(counts(0, 0, 0, 4, 1)), Contains("0/0 tasks (100.0%)"));
  }
  SECTION("slow rates keep two decimals") {
    CHECK_THAT(format_progress(counts(1, 0, 100, 4, 20)), Contains("| 0.05/s | ETA 33:00 |"));
  }
  SECTION("long times are H:MM:SS") {
    CHECK(format_progress(counts(1, 0, 7201, 4, 3661.0)) ==
          "1/7201 tasks (0.0%) | 0.00/s | ETA 7322:00:00 | 4 workers | 1:01:01 elapsed");
    CHECK_THAT(format_progress(counts(100, 0, 460, 2, 100)), Contains("ETA 6:00 |"));
    CHECK_THAT(format_progress(counts(100, 0, 3700, 2, 100)), Contains("ETA 1:00:00 |"));
  }
  SECTION("a bad elapsed time reads as zero, never as nan") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(format_progress(counts(3, 0, 10, 2, nan)) == "3/10 tasks (30.0%) | --/s | ETA -- | 2 workers | 0:00 elapsed");
    CHECK(format_progress(counts(3, 0, 10, 2, -1.0)) == "3/10 tasks (30.0%) | --/s | ETA -- | 2 workers | 0:00 elapsed");
  }
}

TEST_CASE("the style follows the flags, then whether stderr is a terminal", "[progress]") {
  CHECK(choose_progress_style(false, true, std::nullopt) == progress_style::off);
  CHECK(choose_progress_style(false, false, 5.0) == progress_style::off);
  CHECK(choose_progress_style(true, true, std::nullopt) == progress_style::redraw);
  CHECK(choose_progress_style(true, false, std::nullopt) == progress_style::lines);
  CHECK(choose_progress_style(std::nullopt, true, std::nullopt) == progress_style::redraw);
  CHECK(choose_progress_style(std::nullopt, true, 5.0) == progress_style::redraw);
  CHECK(choose_progress_style(std::nullopt, false, 5.0) == progress_style::lines);
  CHECK(choose_progress_style(std::nullopt, false, std::nullopt) == progress_style::off);
}

TEST_CASE("redraw draws at once, then at most every 0.25 s, in place", "[progress]") {
  std::ostringstream out;
  progress_meter meter(out, progress_style::redraw, 30.0);
  meter.update(endless(0, 0, 2, 0.0));
  const std::string first = "\r" + format_progress(endless(0, 0, 2, 0.0)) + "\x1b[K";
  CHECK(out.str() == first);
  meter.update(endless(5, 0, 2, 0.1));
  meter.update(endless(9, 0, 2, 0.24));
  CHECK(out.str() == first);  // not due yet
  meter.update(endless(10, 0, 2, 0.25));
  const std::string second = "\r" + format_progress(endless(10, 0, 2, 0.25)) + "\x1b[K";
  CHECK(out.str() == first + second);
  meter.finish(endless(12, 0, 2, 0.3));
  const std::string last = "\r" + format_progress(endless(12, 0, 2, 0.3)) + "\x1b[K\n";
  CHECK(out.str() == first + second + last);
  CHECK(out.str().find('\n') == out.str().size() - 1);  // one newline, at the very end

  meter.update(endless(20, 0, 2, 9.0));
  meter.finish(endless(20, 0, 2, 9.0));
  CHECK(out.str() == first + second + last);  // nothing after finish
}

TEST_CASE("lines are written every interval with a prefix, and a last one at the end", "[progress]") {
  std::ostringstream out;
  progress_meter meter(out, progress_style::lines, 10.0, "items");
  meter.update(counts(0, 0, 100, 4, 0.0));
  meter.update(counts(30, 0, 100, 4, 9.9));
  CHECK(out.str().empty());  // the first line comes after one interval
  meter.update(counts(31, 1, 100, 4, 10.0));
  meter.update(counts(40, 1, 100, 4, 19.9));
  meter.update(counts(62, 1, 100, 4, 20.0));
  meter.finish(counts(100, 1, 100, 4, 25.0));
  CHECK(out.str() == "amorsize: progress " + format_progress(counts(31, 1, 100, 4, 10.0), "items") + "\n" +
                         "amorsize: progress " + format_progress(counts(62, 1, 100, 4, 20.0), "items") + "\n" +
                         "amorsize: progress " + format_progress(counts(100, 1, 100, 4, 25.0), "items") + "\n");
  CHECK_THAT(out.str(), Contains("31/100 items"));
}

TEST_CASE("off writes nothing, and lines need a positive interval", "[progress]") {
  std::ostringstream out;
  progress_meter meter(out, progress_style::off, 0.0);
  meter.update(endless(1, 0, 1, 100.0));
  meter.finish(endless(2, 0, 1, 200.0));
  CHECK(out.str().empty());

  CHECK_THROWS_AS(progress_meter(out, progress_style::lines, 0.0), amorsize::input_error);
  CHECK_THROWS_AS(progress_meter(out, progress_style::lines, -1.0), amorsize::input_error);
  CHECK_THROWS_AS(progress_meter(out, progress_style::lines, std::nan("")), amorsize::input_error);
  CHECK_NOTHROW(progress_meter(out, progress_style::redraw, 0.0));  // redraw has its own period
}

TEST_CASE("the summary gives counts, speedups and phase times", "[progress]") {
  CHECK(format_summary(failed_run()) ==
        "amorsize: 2000 tasks, 12 failed, in 12.3 s on 4 workers (processes)\n"
        "amorsize: speedup 3.85x measured, 3.90x predicted; efficiency 96%\n"
        "amorsize: time: sampling 0.10 s, planning 0.05 s, running 12.0 s (tail 0.30 s)\n");

  run_summary ok = failed_run();
  ok.failed = 0;
  ok.first_failure.clear();
  const std::string text = format_summary(ok);
  CHECK_THAT(text, Contains("amorsize: 2000 tasks, 0 failed, in 12.3 s"));
  CHECK(text.find("of 2000") == std::string::npos);  // no failure line
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);
}

TEST_CASE("the summary of an empty, instant or serial run has no nan or inf", "[progress]") {
  SECTION("zero items in zero time, nothing measured") {
    run_summary s;
    s.workers = 4;
    s.backend = "processes";
    s.measured_speedup = std::numeric_limits<double>::quiet_NaN();  // 0 / 0 from a caller
    s.predicted_speedup = std::numeric_limits<double>::infinity();
    const std::string text = format_summary(s);
    CHECK(text == "amorsize: 0 tasks, 0 failed, in 0.00 s on 4 workers (processes)\n"
                  "amorsize: speedup -- measured, -- predicted; efficiency --\n"
                  "amorsize: time: sampling 0.00 s, planning 0.00 s, running 0.00 s (tail 0.00 s)\n");
    CHECK(no_nan_or_inf(text));
  }
  SECTION("a serial run") {
    run_summary s;
    s.items = 10;
    s.wall_seconds = 1.0;
    s.running_seconds = 0.9;
    s.measured_speedup = 0.98;
    s.predicted_speedup = 1.0;
    s.workers = 1;
    s.backend = "serial";
    const std::string text = format_summary(s);
    CHECK_THAT(text, Contains("amorsize: 10 tasks, 0 failed, in 1.00 s on 1 worker (serial)\n"));
    CHECK_THAT(text, Contains("amorsize: speedup 0.98x measured, 1.00x predicted; efficiency 98%\n"));
  }
  SECTION("no workers known, bad times") {
    run_summary s;
    s.items = 3;
    s.measured_speedup = 2.0;
    s.wall_seconds = -1;
    s.tail_seconds = std::numeric_limits<double>::infinity();
    const std::string text = format_summary(s);
    CHECK_THAT(text, Contains("amorsize: 3 tasks, 0 failed, in --\n"));
    CHECK_THAT(text, Contains("efficiency --\n"));
    CHECK_THAT(text, Contains("(tail --)"));
    CHECK(no_nan_or_inf(text));
  }
  SECTION("long runs in minutes and hours") {
    run_summary s;
    s.wall_seconds = 723.4;
    s.running_seconds = 7500;
    const std::string text = format_summary(s);
    CHECK_THAT(text, Contains("in 12 min 3 s\n"));
    CHECK_THAT(text, Contains("running 2 h 05 min"));
  }
}

TEST_CASE("the failure line is exactly one line", "[progress]") {
  run_summary s = failed_run();
  CHECK(format_failure_line(s) ==
        "12 of 2000 tasks failed; first: task 17 exited 1: no such file; records in out.jsonl");

  s.first_failure = "task 3 exited 2: line one\nline two\r\n\tend";
  CHECK(format_failure_line(s) == "12 of 2000 tasks failed; first: task 3 exited 2: line one line two   end; "
                                  "records in out.jsonl");

  s.first_failure = std::string(150, 'a') + std::string(100, 'b');
  const std::string cut = format_failure_line(s);
  CHECK(cut == "12 of 2000 tasks failed; first: " + std::string(150, 'a') + std::string(50, 'b') +
                   "...; records in out.jsonl");

  s.first_failure = std::string(199, 'a') + "\xc3\xa9" + "tail";  // a two-byte character across the cut
  CHECK(format_failure_line(s) == "12 of 2000 tasks failed; first: " + std::string(199, 'a') +
                                      "...; records in out.jsonl");

  s.first_failure.clear();
  s.output.clear();
  s.noun = "items";
  CHECK(format_failure_line(s) == "12 of 2000 items failed");
}

TEST_CASE("the predicted speedup of a whole run counts sampling and planning as the measured one does", "[progress]") {
  // 10.5 s of work (0.5 s of it sampled) planned to run in 1.5 s (the sampled 0.5 s included),
  // after 0.5 s of planning: 10.5 s of work in 2 s.
  CHECK(whole_run_speedup(10.5, 1.5, 0.5, 10.0) == Approx(5.25));
  // A serial plan: slightly below 1, the planning being pure cost.
  CHECK(whole_run_speedup(10.5, 10.5, 0.5, 1.0) == Approx(10.5 / 11.0));
  // Long runs: the plan's own speedup.
  CHECK(whole_run_speedup(1000.0, 100.0, 0.2, 10.0) == Approx(10.0).epsilon(0.01));
  // Endless input: the plan's own.
  CHECK(whole_run_speedup(0.0, 0.0, 0.5, 3.5) == 3.5);
}

TEST_CASE("counts name one item in the singular", "[progress]") {
  CHECK(count_text(1, "tasks") == "1 task");
  CHECK(count_text(0, "tasks") == "0 tasks");
  CHECK(count_text(2, "items") == "2 items");
  run_summary s = failed_run();
  s.items = 1;
  s.failed = 0;
  CHECK_THAT(format_summary(s), Contains("amorsize: 1 task, 0 failed"));
}
