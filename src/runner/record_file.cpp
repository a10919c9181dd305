// The records' output as the run's journal: read back on --resume, written a whole line at a time.

#include "record_file.hpp"

#include <amorsize/sample.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>

namespace amorsize::runner::detail {
namespace {

/// Bytes gathered after which lines are written whatever the time.
constexpr std::size_t flush_bytes = std::size_t{1} << 20U;

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

/// Writes all of `text` to `fd`, retrying short writes; returns false (errno set) on failure.
bool write_all(int fd, const char* text, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, text, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    text += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// The output_error for a failed write to `shown` of `option`.
output_error write_failed(const std::string& option, const std::string& shown, int error_number) {
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

record_file::~record_file() {
  if (fd_ > STDERR_FILENO) ::close(fd_);
}

void record_file::open_fd(int flags) {
  fd_ = ::open(path_.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644);
  if (fd_ < 0) throw output_error("--output " + path_ + " cannot be opened for writing: " + std::strerror(errno));
  last_flush_ = monotonic_seconds();
  struct stat info {};
  whole_bytes_ = ::fstat(fd_, &info) == 0 && S_ISREG(info.st_mode) ? info.st_size : -1;
}

void record_file::open(const std::string& path) {
  path_ = path;
  if (path == "-") {
    fd_ = STDOUT_FILENO;
    return;
  }
  open_fd(O_CREAT | O_TRUNC);
}

void record_file::open_to_resume(const std::string& path, const kept_records& kept) {
  path_ = path;
  if (kept.dropped_failures == 0 && kept.dropped_duplicates == 0) {
    // Everything whole is kept: cut a last line written halfway, then append.
    open_fd(O_CREAT);
    if (::ftruncate(fd_, static_cast<off_t>(kept.whole_bytes)) != 0 || ::lseek(fd_, 0, SEEK_END) < 0) {
      throw write_failed("--output", path_, errno);
    }
    whole_bytes_ = static_cast<off_t>(kept.whole_bytes);
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
    const auto kept_key = kept.finished.find(record.index);
    if (kept_key == kept.finished.end() || !seen.emplace(record.index, record.key).second) return;
    add(text);
    if (pending_.size() >= flush_bytes) flush();
  });
  flush();
  if (::fsync(fd_) != 0 || std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error_number = errno;
    ::unlink(temporary.c_str());
    throw write_failed("--output", path_, error_number);
  }
}

void record_file::add(const std::string& line) {
  pending_ += line;
  pending_ += '\n';
}

void record_file::flush() {
  if (pending_.empty() || fd_ < 0) return;
  if (!write_all(fd_, pending_.data(), pending_.size())) {
    const int error_number = errno;
    // A write cut short (a full disk) would leave half a record: a file keeps whole lines only.
    if (whole_bytes_ >= 0 && ::ftruncate(fd_, whole_bytes_) == 0) (void)::lseek(fd_, whole_bytes_, SEEK_SET);
    throw write_failed("--output", shown(), error_number);
  }
  if (whole_bytes_ >= 0) whole_bytes_ += static_cast<off_t>(pending_.size());
  pending_.clear();
  last_flush_ = monotonic_seconds();
}

void record_file::flush_every(double min_seconds) {
  if (pending_.empty()) return;
  if (pending_.size() >= flush_bytes || monotonic_seconds() - last_flush_ >= min_seconds) flush();
}

void record_file::close() {
  flush();
  if (fd_ > STDERR_FILENO) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw write_failed("--output", shown(), errno);
  }
}

void write_atomically(const std::string& path, const std::string& text, const std::string& option) {
  struct stat info {};
  if (path == "-" || (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode))) {
    // stdout, a device or a pipe: written in place (replacing /dev/null with a file would be wrong).
    const int fd = path == "-" ? STDOUT_FILENO : ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && write_all(fd, text.data(), text.size());
    const int error_number = errno;
    if (fd > STDERR_FILENO) ::close(fd);
    if (!ok) throw write_failed(option, path == "-" ? "stdout" : path, error_number);
    return;
  }
  const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw write_failed(option, path, errno);
  bool ok = write_all(fd, text.data(), text.size());
  int error_number = ok ? 0 : errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    error_number = errno;
  }
  if (ok && std::rename(temporary.c_str(), path.c_str()) == 0) return;
  if (ok) error_number = errno;
  ::unlink(temporary.c_str());
  throw write_failed(option, path, error_number);
}

}  // namespace amorsize::runner::detail
