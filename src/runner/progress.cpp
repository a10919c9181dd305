#include "progress.hpp"

#include <amorsize/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <utility>

namespace amorsize::runner {
namespace {

/// Formats `value` with `decimals` digits after the point ("150.2").
std::string fixed(double value, int decimals) {
  std::array<char, 64> buffer{};
  const auto [end, status] =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed, decimals);
  if (status != std::errc{}) return "--";
  return {buffer.data(), end};
}

/// True for a value that can be shown as a number of seconds.
bool usable_seconds(double s) { return std::isfinite(s) && s >= 0; }

/// Formats whole seconds as a clock, `M:SS` under an hour and `H:MM:SS` from one hour.
std::string clock(double whole_seconds) {
  constexpr double most = 99999.0 * 3600.0;  // keeps the cast below in range
  const auto total = static_cast<long long>(std::clamp(whole_seconds, 0.0, most));
  const long long hours = total / 3600;
  const long long minutes = total / 60 % 60;
  const long long secs = total % 60;
  const auto two_digits = [](long long v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  if (hours > 0) return std::to_string(hours) + ":" + two_digits(minutes) + ":" + two_digits(secs);
  return std::to_string(minutes) + ":" + two_digits(secs);
}

/// Formats a rate per second: one decimal, two below 1 per second ("150.2", "0.05").
std::string rate_text(double per_second) { return fixed(per_second, per_second < 1.0 ? 2 : 1); }

/// Formats done / total as a percentage rounded down, so 100.0 means all are done.
std::string percent_text(std::size_t done, std::size_t total) {
  if (total == 0) return "100.0";
  const double permille = std::floor(static_cast<double>(std::min(done, total)) * 1000.0 / static_cast<double>(total));
  return fixed(permille / 10.0, 1);
}

/// Formats a duration for the summary: "0.10 s", "12.3 s", "12 min 3 s", "2 h 05 min"; "--" if unusable.
std::string duration_text(double s) {
  if (!usable_seconds(s)) return "--";
  if (s < 10.0) return fixed(s, 2) + " s";
  if (s < 600.0) return fixed(s, 1) + " s";
  const auto whole = static_cast<long long>(std::min(s, 99999.0 * 3600.0));
  if (whole < 3600) return std::to_string(whole / 60) + " min " + std::to_string(whole % 60) + " s";
  const long long minutes = whole / 60 % 60;
  return std::to_string(whole / 3600) + " h " + (minutes < 10 ? "0" : "") + std::to_string(minutes) + " min";
}

/// True for a speedup that is known: finite and above 0.
bool known_speedup(double speedup) { return std::isfinite(speedup) && speedup > 0; }

/// Formats a speedup ("3.85x"); "--" when it is not known.
std::string speedup_text(double speedup) { return known_speedup(speedup) ? fixed(speedup, 2) + "x" : "--"; }

/// Returns "N worker" or "N workers".
std::string workers_text(int workers) { return std::to_string(workers) + (workers == 1 ? " worker" : " workers"); }

/// Returns `text` on one line (control characters become spaces), cut at `most` bytes on a UTF-8
/// character boundary with "..." appended.
std::string one_line(std::string_view text, std::size_t most) {
  std::string out;
  out.reserve(std::min(text.size(), most) + 3);
  for (const char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == '\x7f') ? ' ' : c;
  if (out.size() <= most) return out;
  std::size_t cut = most;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0U) == 0x80U) --cut;  // not inside a character
  out.resize(cut);
  return out + "...";
}

/// The longest first failure the failure line shows, in bytes.
constexpr std::size_t failure_text_limit = 200;

}  // namespace

std::string format_progress(const progress_counts& counts, std::string_view noun) {
  const double elapsed = usable_seconds(counts.elapsed) ? counts.elapsed : 0.0;
  const bool rate_known = counts.done > 0 && elapsed > 0;
  const double rate = rate_known ? static_cast<double>(counts.done) / elapsed : 0.0;

  std::string line = std::to_string(counts.done);
  if (counts.total) line += "/" + std::to_string(*counts.total);
  line += " ";
  line += noun;
  if (counts.total) line += " (" + percent_text(counts.done, *counts.total) + "%)";
  if (counts.failed > 0) line += " | " + std::to_string(counts.failed) + " failed";
  line += " | " + (rate_known ? rate_text(rate) : std::string("--")) + "/s";
  if (counts.total) {
    const std::size_t left = *counts.total > counts.done ? *counts.total - counts.done : 0;
    std::string eta = "--";
    if (rate_known) {  // left / rate, in an order that keeps whole numbers exact before rounding up
      eta = clock(std::ceil(static_cast<double>(left) * elapsed / static_cast<double>(counts.done)));
    }
    line += " | ETA " + eta;
  }
  if (counts.workers > 0) line += " | " + workers_text(counts.workers);
  line += " | " + clock(std::floor(elapsed)) + " elapsed";
  return line;
}

progress_style choose_progress_style(std::optional<bool> forced, bool stderr_is_terminal,
                                     std::optional<double> interval) {
  if (forced == false) return progress_style::off;
  if (stderr_is_terminal) return progress_style::redraw;
  if (forced == true || interval) return progress_style::lines;
  return progress_style::off;
}

progress_meter::progress_meter(std::ostream& out, progress_style style, double interval_seconds, std::string noun)
    : out_(out),
      style_(style),
      period_(style == progress_style::lines ? interval_seconds : redraw_period_seconds),
      noun_(std::move(noun)),
      next_due_(style == progress_style::lines ? interval_seconds : 0.0) {
  if (style == progress_style::lines && !(std::isfinite(interval_seconds) && interval_seconds > 0)) {
    throw input_error("--progress-interval must be a positive number of seconds, not " +
                      std::to_string(interval_seconds));
  }
}

void progress_meter::update(const progress_counts& counts) {
  if (finished_ || style_ == progress_style::off || !(counts.elapsed >= next_due_)) return;
  draw(counts, false);
  next_due_ = counts.elapsed + period_;
}

void progress_meter::finish(const progress_counts& counts) {
  if (finished_) return;
  finished_ = true;
  if (style_ != progress_style::off) draw(counts, true);
}

void progress_meter::draw(const progress_counts& counts, bool last) {
  const std::string line = format_progress(counts, noun_);
  if (style_ == progress_style::lines && line == last_line_) return;  // a final line that says nothing new
  last_line_ = line;
  if (style_ == progress_style::redraw) {
    out_ << '\r' << line << "\x1b[K";
    if (last) out_ << '\n';
  } else {
    out_ << "amorsize: progress " << line << '\n';
  }
  out_.flush();
}

std::string singular(const std::string& noun) {
  return !noun.empty() && noun.back() == 's' ? noun.substr(0, noun.size() - 1) : noun;
}

std::string count_text(std::size_t count, const std::string& noun) {
  return std::to_string(count) + " " + (count == 1 ? singular(noun) : noun);
}

double whole_run_speedup(double work_seconds, double run_seconds, double planning_seconds, double plan_speedup) {
  const double wall = planning_seconds + run_seconds;
  if (work_seconds <= 0.0 || wall <= 0.0) return plan_speedup;
  return work_seconds / wall;
}

std::string format_summary(const run_summary& s) {
  std::string counts = "amorsize: " + count_text(s.items, s.noun) + ", " + std::to_string(s.failed) + " failed, in " +
                       duration_text(s.wall_seconds);
  if (s.workers > 0) counts += " on " + workers_text(s.workers);
  if (!s.backend.empty()) counts += " (" + s.backend + ")";

  const std::string efficiency =
      known_speedup(s.measured_speedup) && s.workers > 0 ? fixed(100.0 * s.measured_speedup / s.workers, 0) + "%" : std::string("--");
  const std::string speedups = "amorsize: speedup " + speedup_text(s.measured_speedup) + " measured, " +
                               speedup_text(s.predicted_speedup) + " predicted; efficiency " + efficiency;

  const std::string times = "amorsize: time: sampling " + duration_text(s.sampling_seconds) + ", planning " +
                            duration_text(s.planning_seconds) + ", running " + duration_text(s.running_seconds) +
                            " (tail " + duration_text(s.tail_seconds) + ")";

  return counts + "\n" + speedups + "\n" + times + "\n";
}

std::string format_failure_line(const run_summary& s) {
  std::string line = std::to_string(s.failed) + " of " + std::to_string(s.items) + " " + one_line(s.noun, 64) + " failed";
  if (!s.first_failure.empty()) line += "; first: " + one_line(s.first_failure, failure_text_limit);
  if (!s.output.empty()) line += "; records in " + one_line(s.output, s.output.size());
  return line;
}

}  // namespace amorsize::runner
