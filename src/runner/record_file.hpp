#pragma once
// The records' output as the run's journal: read back on --resume, written a whole line at a time,
// every write checked.

#include <amorsize/detail/batched_writer.hpp>
#include <amorsize/resume.hpp>

#include <cstddef>
#include <string>

namespace amorsize::runner::detail {

/// What an earlier run's output holds, as --resume reads it.
struct kept_records {
  finished_items finished;            ///< Key of every item with a whole record that is kept.
  std::size_t kept = 0;               ///< Lines kept (one per finished item).
  std::size_t kept_failures = 0;      ///< Of them, error records (kept without --retry-failed).
  std::size_t dropped_failures = 0;   ///< Error records dropped to run their items again (--retry-failed).
  std::size_t dropped_duplicates = 0; ///< Later records of an index already kept.
  std::size_t partial_bytes = 0;      ///< Bytes of a last line cut short (a run killed while writing it).
  std::size_t whole_bytes = 0;        ///< Bytes up to the end of the last whole line.
};

/// Reads the records in `path` (a missing or empty file holds none); with `retry_failed`, error
/// records are not kept. Throws input_error naming the line when a whole line is not a record
/// written by a run (no "index" or "key").
kept_records read_records(const std::string& path, bool retry_failed);

/// The records' output: lines are gathered and written a batch at a time, whole (batched_writer).
class record_file {
 public:

  /// Opens `path` ("-": stdout) replacing what it holds; throws output_error when it cannot.
  void open(const std::string& path);
  /// Opens `path` to continue it: keeps the records in `kept` and drops the rest (a cut last line,
  /// records dropped); throws output_error when it cannot.
  void open_to_resume(const std::string& path, const kept_records& kept);
  /// Adds one record line (without its newline).
  void add(const std::string& line);
  /// Writes the lines gathered so far; throws output_error when a write fails.
  void flush();
  /// Flushes when lines wait and `min_seconds` passed since the last flush (or much is gathered).
  void flush_every(double min_seconds);
  /// Flushes, then closes the file (a failed close is a failed write); throws output_error.
  void close();
  /// Returns how messages name it: its path, or "stdout".
  [[nodiscard]] std::string shown() const { return path_ == "-" ? "stdout" : path_; }

 private:
  void open_fd(int flags);
  [[noreturn]] void write_failed(int error_number) const;

  std::string path_;
  amorsize::detail::batched_writer writer_;
};

/// Writes `text` to `path` atomically (a temporary file beside it, then rename), or to stdout for "-";
/// `option` names it in the output_error thrown when it cannot.
void write_atomically(const std::string& path, const std::string& text, const std::string& option);

}  // namespace amorsize::runner::detail
