// A pool call's journal file: read back whole records, cut a torn last one, append with checked writes.
#include <amorsize/detail/journal.hpp>

#include <amorsize/sample.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace amorsize::detail {
namespace {

constexpr std::string_view file_magic = "AMZJRNL1";
constexpr std::string_view record_magic = "REC1";
constexpr std::size_t key_size = 16;
/// Bytes of a record before its payload: magic, index, key, payload length.
constexpr std::size_t record_header_size = record_magic.size() + 8 + key_size + 8;

/// Appends `value` to `out` as `bytes` little-endian bytes.
void put_uint(std::string& out, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xffU));
}

/// Reads a little-endian integer of `bytes` bytes at `at`.
std::uint64_t get_uint(const char* at, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) value |= std::uint64_t{static_cast<unsigned char>(at[i])} << (8 * i);
  return value;
}

/// Returns the file header for records of `result_type`.
std::string file_header(const std::string& result_type) {
  std::string header(file_magic);
  put_uint(header, result_type.size(), 4);
  return header + result_type;
}

/// Reads up to `size` bytes of `fd` at `offset`; returns fewer only at the end of the file.
std::string read_at(int fd, std::uint64_t offset, std::size_t size, const std::string& path) {
  std::string bytes(size, '\0');
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, bytes.data() + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw journal_file::unusable(path, std::string("it cannot be read: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

/// The output_error for journal `path` that could not be written or cut.
output_error write_failed(const std::string& path, int error_number) {
  return output_error("writing the journal " + path + " failed: " + std::strerror(error_number) +
                      " (a full disk, or the file went away); the records handed over since the last write are not "
                      "in it and will run again");
}

}  // namespace

input_error journal_file::unusable(const std::string& path, const std::string& why) {
  return input_error("pool_options::journal " + path + ": " + why +
                     "; delete it to start again, or give the call another journal");
}

journal_file::journal_file(std::string path, std::string result_type) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw output_error("the journal " + path_ + " cannot be opened: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error_number = errno;
    ::close(fd_);
    if (error_number == EWOULDBLOCK) {
      throw input_error("pool_options::journal " + path_ +
                        " is in use by another call: one call at a time may use a journal; give this one another");
    }
    throw output_error("the journal " + path_ + " cannot be locked: " + std::strerror(error_number));
  }
  try {
    struct stat info {};
    if (::fstat(fd_, &info) != 0) throw write_failed(path_, errno);
    const auto size = static_cast<std::uint64_t>(info.st_size);
    const std::string header = file_header(result_type);
    const std::string found = read_at(fd_, 0, header.size(), path_);
    std::uint64_t whole = 0;  // bytes up to the end of the last whole record
    if (found.size() < header.size() && header.compare(0, found.size(), found) == 0) {
      writer_.add(header);  // new, or cut while its header was written: start it again
    } else if (found != header) {
      if (found.compare(0, file_magic.size(), file_magic) != 0) throw unusable(path_, "it is not a journal");
      const std::uint64_t length = get_uint(found.data() + file_magic.size(), 4);
      const std::string other = read_at(fd_, file_magic.size() + 4, static_cast<std::size_t>(std::min<std::uint64_t>(length, 4096)), path_);
      throw unusable(path_, "it holds results of type " + other + ", not " + result_type +
                                " (a journal belongs to the calls of one function)");
    } else {
      whole = header.size();
      for (;;) {
        const std::string head = read_at(fd_, whole, record_header_size, path_);
        if (head.size() < record_header_size) break;  // cut short in its header (or the end)
        if (head.compare(0, record_magic.size(), record_magic) != 0) {
          throw unusable(path_, "the record at byte " + std::to_string(whole) + " is damaged (it is not a journal record)");
        }
        journal_entry entry;
        const char* at = head.data() + record_magic.size();
        entry.index = static_cast<std::size_t>(get_uint(at, 8));
        entry.key.assign(at + 8, key_size);
        entry.length = get_uint(at + 8 + key_size, 8);
        entry.offset = whole + record_header_size;
        if (entry.length > size - std::min(size, entry.offset)) break;  // cut short in its payload
        whole = entry.offset + entry.length;
        entries_.push_back(std::move(entry));
      }
    }
    if (::ftruncate(fd_, static_cast<off_t>(whole)) != 0 || ::lseek(fd_, 0, SEEK_END) < 0) throw write_failed(path_, errno);
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const journal_entry& a, const journal_entry& b) { return a.index < b.index; });
    entries_.erase(std::unique(entries_.begin(), entries_.end(),
                               [](const journal_entry& a, const journal_entry& b) { return a.index == b.index; }),
                   entries_.end());
  } catch (...) {
    ::close(fd_);
    throw;
  }
  writer_.attach(fd_);
}

journal_file::~journal_file() {
  // The records handed over before the call ended early; a failure cannot be reported from here:
  // those items run again next time. The writer closes the file.
  (void)writer_.flush();
}

std::string journal_file::payload(const journal_entry& entry) const {
  std::string bytes = read_at(fd_, entry.offset, static_cast<std::size_t>(entry.length), path_);
  if (bytes.size() != entry.length) throw unusable(path_, "it was cut short while this call read it");
  return bytes;
}

void journal_file::add(std::size_t index, const std::string& key, const std::string& payload) {
  std::string head(record_magic);
  put_uint(head, index, 8);
  std::string fixed_key = key.substr(0, key_size);
  fixed_key.resize(key_size, '0');
  head += fixed_key;
  put_uint(head, payload.size(), 8);
  writer_.add(head);
  writer_.add(payload);
}

void journal_file::flush() {
  if (!writer_.flush()) throw write_failed(path_, errno);
}

void journal_file::flush_every(double min_seconds) {
  if (!writer_.flush_every(min_seconds)) throw write_failed(path_, errno);
}

}  // namespace amorsize::detail
