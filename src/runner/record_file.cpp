// The records' output as the run's journal: read back on --resume, written a whole line at a time.

#include "record_file.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

namespace amorsize::runner::detail {
namespace {


/// Calls `line(text, number)` for every whole line of `path` (a missing file has none) and returns
/// the bytes after the last whole line (a last line cut short).
std::size_t for_each_line(const std::string& path, const std::function<void(const std::string&, std::size_t)>& line) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return 0;
    throw input_error("--output " + path + " cannot be read to resume it: " + std::strerror(errno));
  }
  std::string text;
  std::size_t number = 0;
  while (std::getline(in, text)) {
    if (in.eof()) return text.size();  // no newline after it: the write of this line was cut short
    line(text, ++number);
  }
  if (in.bad()) throw input_error("--output " + path + " cannot be read to resume it: " + std::strerror(errno));
  return 0;
}

/// The index and key of one record line, and whether it is an error record.
struct record_identity {
  std::size_t index = 0;
  std::string key;
  bool failed = false;
};

/// Reads the identity of line `number` of `path`; throws input_error when it is not a record.
record_identity identify(const std::string& path, const std::string& text, std::size_t number) {
  const auto record = nlohmann::json::parse(text, nullptr, false);
  const auto fail = [&](const std::string& why) {
    return input_error("--output " + path + " line " + std::to_string(number) + " " + why +
                       ": it cannot be resumed; write to another file, or start again with --overwrite");
  };
  if (record.is_discarded() || !record.is_object()) throw fail("is not a JSON record");
  if (!record.contains("index") || !record.contains("key") || !record.at("index").is_number_unsigned() ||
      !record.at("key").is_string()) {
    throw fail("has no \"index\" and \"key\", so it was not written by amorsize-run");
  }
  return {record.at("index").get<std::size_t>(), record.at("key").get<std::string>(), record.contains("error")};
}

/// The output_error for a failed write to `shown` of `option`.
output_error failed_write(const std::string& option, const std::string& shown, int error_number) {
  return output_error("writing " + option + " " + shown + " failed: " + std::strerror(error_number) +
                      " (a full disk, or the file or pipe went away); the run stopped");
}

}  // namespace

kept_records read_records(const std::string& path, bool retry_failed) {
  kept_records kept;
  kept.partial_bytes = for_each_line(path, [&](const std::string& text, std::size_t number) {
    kept.whole_bytes += text.size() + 1;
    const record_identity record = identify(path, text, number);
    if (retry_failed && record.failed) {
      ++kept.dropped_failures;
    } else if (!kept.finished.emplace(record.index, record.key).second) {
      ++kept.dropped_duplicates;
    } else if (record.failed) {
      ++kept.kept_failures;
    }
  });
  kept.kept = kept.finished.size();
  return kept;
}

void record_file::write_failed(int error_number) const { throw failed_write("--output", shown(), error_number); }

void record_file::open_fd(int flags) {
  const int fd = ::open(path_.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) throw output_error("--output " + path_ + " cannot be opened for writing: " + std::strerror(errno));
  writer_.attach(fd);
}

void record_file::open(const std::string& path) {
  path_ = path;
  if (path == "-") writer_.attach(STDOUT_FILENO);
  else open_fd(O_CREAT | O_TRUNC);
}

void record_file::open_to_resume(const std::string& path, const kept_records& kept) {
  path_ = path;
  if (kept.dropped_failures == 0 && kept.dropped_duplicates == 0) {
    // Everything whole is kept: cut a last line written halfway, then append.
    const int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(kept.whole_bytes)) != 0 || ::lseek(fd, 0, SEEK_END) < 0) {
      const int error_number = errno;
      if (fd >= 0) ::close(fd);
      write_failed(error_number);
    }
    writer_.attach(fd);
    return;
  }
  // Records are dropped: write the kept ones to a new file that replaces the old one whole.
  const std::string temporary = path + ".resume-" + std::to_string(::getpid());
  path_ = temporary;
  open_fd(O_CREAT | O_TRUNC);
  path_ = path;
  finished_items seen;
  for_each_line(path, [&](const std::string& text, std::size_t number) {
    const record_identity record = identify(path, text, number);
    if (!kept.finished.contains(record.index) || !seen.emplace(record.index, record.key).second) return;
    add(text);
    flush_every(std::numeric_limits<double>::infinity());  // bounded memory: a write per MiB
  });
  flush();
  if (::fsync(writer_.fd()) != 0 || std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error_number = errno;
    ::unlink(temporary.c_str());
    write_failed(error_number);
  }
}

void record_file::add(const std::string& line) {
  writer_.add(line);
  writer_.add("\n");
}

void record_file::flush() {
  if (!writer_.flush()) write_failed(errno);
}

void record_file::flush_every(double min_seconds) {
  if (!writer_.flush_every(min_seconds)) write_failed(errno);
}

void record_file::close() {
  if (!writer_.close()) write_failed(errno);
}

void write_atomically(const std::string& path, const std::string& text, const std::string& option) {
  struct stat info {};
  // stdout, a device or a pipe is written in place (replacing /dev/null with a file would be wrong).
  const bool in_place = path == "-" || (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode));
  const std::string target = in_place ? path : path + ".tmp-" + std::to_string(::getpid());
  const int fd = path == "-" ? STDOUT_FILENO : ::open(target.c_str(), O_WRONLY | O_CLOEXEC | (in_place ? 0 : O_CREAT | O_TRUNC), 0644);
  const std::string shown = path == "-" ? "stdout" : path;
  if (fd < 0) throw failed_write(option, shown, errno);
  amorsize::detail::batched_writer writer;
  writer.attach(fd);
  writer.add(text);
  if (writer.close() && (in_place || std::rename(target.c_str(), path.c_str()) == 0)) return;
  const int error_number = errno;
  if (!in_place) ::unlink(target.c_str());
  throw failed_write(option, shown, error_number);
}

}  // namespace amorsize::runner::detail
