#pragma once
// The wire format of items, results and chunks: Boost binary archives for single values, and chunk
// codecs that write trivially copyable items and results as flat arrays (Boost for other types).
//
// A chunk of items of a flat type T:   u64 count, then count * sizeof(T) raw bytes.
// A chunk of records of a flat type R: u64 count, u64 errors, count * sizeof(R) raw bytes (a failed
//   item's slot is zero), then per error: u64 position in the chunk, u64 length, the message.
// Other types: the Boost archive of std::vector<T>, and of std::vector<item_result<R>> for records.
// Both ends run the same binary, so raw bytes mean the same on both (as Boost's binary archive assumes).

#include <amorsize/item_result.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace amorsize::detail {

/// The archive flags every amorsize message uses: no header, so small items stay small.
inline constexpr unsigned archive_flags = boost::archive::no_header;

/// Serializes `value` with the Boost binary archive the engine sends over the wire.
template <class T>
std::string to_bytes(const T& value) {
  std::ostringstream out(std::ios::binary);
  {
    boost::archive::binary_oarchive archive(out, archive_flags);
    archive << value;
  }
  return std::move(out).str();
}

/// A read-only stream buffer over bytes held elsewhere, so reading a message does not copy it.
class bytes_view_buffer : public std::streambuf {
 public:
  /// Reads `size` bytes at `data`, which must outlive the buffer.
  bytes_view_buffer(const char* data, std::size_t size) {
    char* begin = const_cast<char*>(data);  // get area only: never written through
    setg(begin, begin, begin + size);
  }
};

/// Reads a value written by `to_bytes` from `bytes`, starting `offset` bytes in.
template <class T>
T from_bytes(const std::string& bytes, std::size_t offset = 0) {
  bytes_view_buffer buffer(bytes.data() + offset, bytes.size() - offset);
  std::istream in(&buffer);
  boost::archive::binary_iarchive archive(in, archive_flags);
  T value;
  archive >> value;
  return value;
}

/// True for types a chunk carries as raw bytes: trivially copyable, default-constructible values that are not pointers.
template <class T>
inline constexpr bool flat_wire =
    std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> && !std::is_pointer_v<T> &&
    !std::is_member_pointer_v<T>;

/// Appends the raw bytes of `value` (a flat type) to `out`.
template <class V>
void put_raw(std::string& out, const V& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

/// Reads a flat value at `offset` of `bytes`; throws when the bytes end first (a torn message).
template <class V>
V get_raw(const std::string& bytes, std::size_t offset) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(V)) {
    throw std::runtime_error("a chunk's payload ends early (" + std::to_string(bytes.size()) + " bytes)");
  }
  V value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

/// Writes the items of one chunk, appended one by one; `payload()` is the chunk's wire form.
template <class T>
class item_writer {
 public:
  /// Starts a chunk; room for `expected` items is reserved (flat types).
  explicit item_writer(std::size_t expected = 0) {
    if constexpr (flat_wire<T>) {
      bytes_.reserve(sizeof(std::uint64_t) + expected * sizeof(T));
      bytes_.resize(sizeof(std::uint64_t));
    }
  }
  /// Adds `item` at the end of the chunk.
  void add(T&& item) {
    if constexpr (flat_wire<T>) put_raw(bytes_, item);
    else items_.push_back(std::move(item));
    ++count_;
  }
  /// Returns the number of items added.
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /// Returns the chunk's wire form; the writer is spent.
  std::string payload() && {
    if constexpr (flat_wire<T>) {
      const auto n = static_cast<std::uint64_t>(count_);
      std::memcpy(bytes_.data(), &n, sizeof n);
      return std::move(bytes_);
    } else {
      return to_bytes(items_);
    }
  }

 private:
  std::string bytes_;     // flat: the count, then the raw items
  std::vector<T> items_;  // other types: archived at the end
  std::size_t count_ = 0;
};

/// Returns the wire form of a chunk holding `items`.
template <class T>
std::string encode_items(const std::vector<T>& items) {
  if constexpr (flat_wire<T>) {
    std::string out;
    out.reserve(sizeof(std::uint64_t) + items.size() * sizeof(T));
    put_raw(out, static_cast<std::uint64_t>(items.size()));
    if (!items.empty()) out.append(reinterpret_cast<const char*>(items.data()), items.size() * sizeof(T));
    return out;
  } else {
    return to_bytes(items);
  }
}

/// Reads the items of a chunk: a flat chunk is read in place, others are unpacked once.
template <class T>
class item_reader {
 public:
  /// Reads `payload`, which must outlive the reader.
  explicit item_reader(const std::string& payload) : payload_(payload) {
    if constexpr (flat_wire<T>) {
      const auto n = get_raw<std::uint64_t>(payload, 0);
      if ((payload.size() - sizeof n) / sizeof(T) < n || (payload.size() - sizeof n) % sizeof(T) != 0) {
        throw std::runtime_error("a chunk's payload of " + std::to_string(payload.size()) + " bytes cannot hold " +
                                 std::to_string(n) + " items of " + std::to_string(sizeof(T)) + " bytes");
      }
      count_ = static_cast<std::size_t>(n);
    } else {
      items_ = from_bytes<std::vector<T>>(payload);
      count_ = items_.size();
    }
  }
  /// Returns the number of items.
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /// Returns item `i` (a copy for flat types, which are cheap to copy; a reference otherwise).
  [[nodiscard]] decltype(auto) operator[](std::size_t i) const {
    if constexpr (flat_wire<T>) {
      T item;
      std::memcpy(static_cast<void*>(&item), payload_.data() + sizeof(std::uint64_t) + i * sizeof(T), sizeof(T));
      return item;
    } else {
      return static_cast<const T&>(items_[i]);
    }
  }
  /// Moves item `i` out (the reader keeps a valid but unspecified item).
  [[nodiscard]] T take(std::size_t i) {
    if constexpr (flat_wire<T>) return (*this)[i];
    else return std::move(items_[i]);
  }

 private:
  const std::string& payload_;
  std::vector<T> items_;
  std::size_t count_ = 0;
};

/// Returns the items of a chunk's wire form.
template <class T>
std::vector<T> decode_items(const std::string& payload) {
  item_reader<T> reader(payload);
  std::vector<T> items;
  items.reserve(reader.size());
  for (std::size_t i = 0; i < reader.size(); ++i) items.push_back(reader.take(i));
  return items;
}

/// Returns one wire form per item of a chunk (to find the item that kills workers).
template <class T>
std::vector<std::string> split_items(const std::string& payload) {
  item_reader<T> reader(payload);
  std::vector<std::string> pieces;
  pieces.reserve(reader.size());
  for (std::size_t i = 0; i < reader.size(); ++i) {
    item_writer<T> one(1);
    one.add(reader.take(i));
    pieces.push_back(std::move(one).payload());
  }
  return pieces;
}

/// Writes the records of one chunk, in item order, without a per-record allocation for flat results.
template <class R>
class record_writer {
 public:
  /// Starts the records of a chunk of `count` items; each must then be set once, in order.
  explicit record_writer(std::size_t count) : count_(count) {
    if constexpr (flat_wire<R>) {
      bytes_.resize(header + count * sizeof(R));  // zero-filled: a failed item's slot stays zero
      put(0, static_cast<std::uint64_t>(count));
    } else {
      records_.reserve(count);
    }
  }
  /// Sets the next record to the result `value`.
  void success(R value) {
    if constexpr (flat_wire<R>) {
      std::memcpy(bytes_.data() + header + next_ * sizeof(R), static_cast<const void*>(&value), sizeof(R));
    } else {
      records_.push_back(item_result<R>::success(0, std::move(value)));
    }
    ++next_;
  }
  /// Sets the next record to the error `message`.
  void failure(std::string message) {
    if constexpr (flat_wire<R>) {
      put_raw(errors_, static_cast<std::uint64_t>(next_));
      put_raw(errors_, static_cast<std::uint64_t>(message.size()));
      errors_ += message;
      ++error_count_;
    } else {
      records_.push_back(item_result<R>::failure(0, std::move(message)));
    }
    ++next_;
  }
  /// Returns the chunk's wire form; every record must be set. The writer is spent.
  std::string payload() && {
    if (next_ != count_) throw std::logic_error("a chunk's records were not all set");
    if constexpr (flat_wire<R>) {
      put(sizeof(std::uint64_t), static_cast<std::uint64_t>(error_count_));
      bytes_ += errors_;
      return std::move(bytes_);
    } else {
      return to_bytes(records_);
    }
  }

 private:
  static constexpr std::size_t header = 2 * sizeof(std::uint64_t);
  void put(std::size_t offset, std::uint64_t v) { std::memcpy(bytes_.data() + offset, &v, sizeof v); }

  std::size_t count_;
  std::size_t next_ = 0;
  std::size_t error_count_ = 0;
  std::string bytes_;                     // flat: the header and the values
  std::string errors_;                    // flat: the errors, appended after the values
  std::vector<item_result<R>> records_;  // other types: archived at the end
};

/// Returns the records of a chunk of `count` items that all failed with `reason`.
template <class R>
std::string encode_failed_records(std::size_t count, const std::string& reason) {
  record_writer<R> records(count);
  for (std::size_t i = 0; i < count; ++i) records.failure(reason);
  return std::move(records).payload();
}

/// Reads the records of a chunk one by one, in item order; the indices are set by the caller.
template <class R>
class record_reader {
 public:
  /// Reads `payload` (kept by the reader).
  explicit record_reader(std::string payload) : payload_(std::move(payload)) {
    if constexpr (flat_wire<R>) {
      const auto n = get_raw<std::uint64_t>(payload_, 0);
      const auto errors = get_raw<std::uint64_t>(payload_, sizeof n);
      if ((payload_.size() - header) / sizeof(R) < n) {
        throw std::runtime_error("a chunk's records of " + std::to_string(payload_.size()) + " bytes cannot hold " +
                                 std::to_string(n) + " results of " + std::to_string(sizeof(R)) + " bytes");
      }
      count_ = static_cast<std::size_t>(n);
      error_offset_ = header + count_ * sizeof(R);
      errors_left_ = static_cast<std::size_t>(errors);
      read_error_position();
    } else {
      records_ = from_bytes<std::vector<item_result<R>>>(payload_);
      count_ = records_.size();
    }
  }
  /// Returns the number of records.
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /// Returns the number of records not taken yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return count_ - next_; }
  /// Returns the next record, with index `index`; there must be one left.
  item_result<R> take(std::size_t index) {
    const std::size_t i = next_++;
    if constexpr (flat_wire<R>) {
      if (errors_left_ > 0 && i == error_position_) {
        const auto length = get_raw<std::uint64_t>(payload_, error_offset_ + sizeof(std::uint64_t));
        const std::size_t text = error_offset_ + 2 * sizeof(std::uint64_t);
        if (payload_.size() - text < length) throw std::runtime_error("a chunk's error message ends early");
        std::string message(payload_.data() + text, static_cast<std::size_t>(length));
        error_offset_ = text + static_cast<std::size_t>(length);
        --errors_left_;
        read_error_position();
        return item_result<R>::failure(index, std::move(message));
      }
      R value;
      std::memcpy(static_cast<void*>(&value), payload_.data() + header + i * sizeof(R), sizeof(R));
      return item_result<R>::success(index, value);
    } else {
      item_result<R> record = std::move(records_[i]);
      record.set_index(index);
      return record;
    }
  }

 private:
  static constexpr std::size_t header = 2 * sizeof(std::uint64_t);
  void read_error_position() {
    if (errors_left_ > 0) error_position_ = static_cast<std::size_t>(get_raw<std::uint64_t>(payload_, error_offset_));
  }

  std::string payload_;
  std::size_t count_ = 0;
  std::size_t next_ = 0;
  std::size_t error_offset_ = 0;    // flat: where the next error starts
  std::size_t errors_left_ = 0;     // flat: errors not read yet
  std::size_t error_position_ = 0;  // flat: the chunk position of the next error
  std::vector<item_result<R>> records_;  // other types
};

/// Returns every record of a chunk's wire form, numbered from `first_index`.
template <class R>
std::vector<item_result<R>> decode_records(std::string payload, std::size_t first_index = 0) {
  record_reader<R> reader(std::move(payload));
  std::vector<item_result<R>> records;
  records.reserve(reader.size());
  for (std::size_t i = 0; i < reader.size(); ++i) records.push_back(reader.take(first_index + i));
  return records;
}

/// Returns the wire form of `records` (their indices are left out: they follow from the chunk).
template <class R>
std::string encode_records(const std::vector<item_result<R>>& records) {
  record_writer<R> writer(records.size());
  for (const item_result<R>& r : records) {
    if (r.ok()) writer.success(R(*r));
    else writer.failure(r.error());
  }
  return std::move(writer).payload();
}

}  // namespace amorsize::detail
