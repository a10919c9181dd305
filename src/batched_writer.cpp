// A file appended to a batch at a time, each batch written whole or cut back.
#include <amorsize/detail/batched_writer.hpp>

#include <amorsize/sample.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace amorsize::detail {
namespace {

/// Bytes gathered after which they are written whatever the time.
constexpr std::size_t flush_bytes = std::size_t{1} << 20U;

/// Writes all of `size` bytes at `text` to `fd`, retrying short writes; false (errno set) on failure.
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

}  // namespace

batched_writer::~batched_writer() {
  if (fd_ > STDERR_FILENO) ::close(fd_);
}

void batched_writer::attach(int fd) {
  fd_ = fd;
  last_flush_ = monotonic_seconds();
  struct stat info {};
  whole_bytes_ = ::fstat(fd_, &info) == 0 && S_ISREG(info.st_mode) ? ::lseek(fd_, 0, SEEK_CUR) : -1;
}

bool batched_writer::flush() {
  if (pending_.empty() || fd_ < 0) return true;
  if (!write_all(fd_, pending_.data(), pending_.size())) {
    const int error_number = errno;
    if (whole_bytes_ >= 0 && ::ftruncate(fd_, whole_bytes_) == 0) (void)::lseek(fd_, whole_bytes_, SEEK_SET);
    errno = error_number;
    return false;
  }
  if (whole_bytes_ >= 0) whole_bytes_ += static_cast<off_t>(pending_.size());
  pending_.clear();
  last_flush_ = monotonic_seconds();
  return true;
}

bool batched_writer::flush_every(double min_seconds) {
  if (pending_.empty()) return true;
  if (pending_.size() < flush_bytes && monotonic_seconds() - last_flush_ < min_seconds) return true;
  return flush();
}

bool batched_writer::close() {
  const bool flushed = flush();
  const int error_number = errno;
  if (fd_ > STDERR_FILENO) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return false;
  }
  fd_ = -1;
  errno = error_number;
  return flushed;
}

}  // namespace amorsize::detail
