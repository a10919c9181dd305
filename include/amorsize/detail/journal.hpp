#pragma once
// A pool call's journal file (pool_options::journal): the records of finished items, read back by a
// later call with the same journal and appended to as records are handed over.
//
// Format (integers little-endian):
//   file header: "AMZJRNL1" (8 bytes), u32 length of the result type's name, the name (typeid(R).name())
//   each record: "REC1" (4 bytes), u64 source index, 16 hex digits of the item's key, u64 payload
//                length, the payload (the item_result<R> in a Boost binary archive, detail::to_bytes)
// A last record cut short (a kill while it was written) is dropped and truncated away.

#include <amorsize/detail/batched_writer.hpp>
#include <amorsize/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace amorsize::detail {

/// Where one record of a journal is: its item's source position and key, and its payload's place in the file.
struct journal_entry {
  std::size_t index = 0;      ///< Position of the item in the source.
  std::string key;            ///< The item's key (resume.hpp's item_key), 16 hex digits.
  std::uint64_t offset = 0;   ///< Where the payload starts in the file.
  std::uint64_t length = 0;   ///< Bytes of the payload.
};

/// A journal file held open by one call: its whole records, and appended records written with one checked write(2) at a time.
class journal_file {
 public:
  /// Opens (or creates) `path` for records of the result type named `result_type`, reads its whole
  /// records (sorted by index, the first of an index kept) and cuts a last record written halfway;
  /// throws input_error when the file is not a journal, holds another result type or is in use by
  /// another call, output_error when it cannot be opened or cut.
  journal_file(std::string path, std::string result_type);
  ~journal_file();
  journal_file(const journal_file&) = delete;
  journal_file& operator=(const journal_file&) = delete;

  /// Returns the records the file held when it was opened, sorted by index.
  [[nodiscard]] const std::vector<journal_entry>& entries() const noexcept { return entries_; }
  /// Reads the payload of `entry`; throws input_error when the file ends before it.
  [[nodiscard]] std::string payload(const journal_entry& entry) const;
  /// Gathers the record of item `index` with `key` and `payload`, written at the next flush.
  void add(std::size_t index, const std::string& key, const std::string& payload);
  /// Writes the gathered records; throws output_error naming the journal when the write fails.
  void flush();
  /// Flushes when records wait and `min_seconds` passed since the last flush (or much is gathered).
  void flush_every(double min_seconds);
  /// Returns the journal's path.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Returns the input_error for journal `path` that cannot be used because `why`, naming the fix.
  [[nodiscard]] static input_error unusable(const std::string& path, const std::string& why);

 private:
  std::string path_;
  int fd_ = -1;                 // read from here; written through writer_, which owns it
  std::vector<journal_entry> entries_;
  batched_writer writer_;
};

}  // namespace amorsize::detail
