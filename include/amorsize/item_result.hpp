#pragma once
/// One item's outcome: its position in the source and its result, or the error it raised.

#include <amorsize/error.hpp>

#include <boost/serialization/split_member.hpp>
#include <boost/serialization/string.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace amorsize {

/// Thrown by item_result::value() when the item failed.
class item_failed : public error {
 public:
  /// Creates the error for item `index` with the message the function raised.
  item_failed(std::size_t index, const std::string& message)
      : error(exit_code::items_failed, "item " + std::to_string(index) + " failed: " + message), index_(index) {}
  /// Returns the position of the failed item.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }

 private:
  std::size_t index_;
};

namespace detail {

/// An error message held by pointer, so that a record of a small result stays small (a record of
/// a std::uint64_t is 24 bytes, not 48); copies copy the message.
class error_text {
 public:
  /// Holds `message`.
  explicit error_text(std::string message) : text_(std::make_unique<std::string>(std::move(message))) {}
  /// Copies `other`'s message.
  error_text(const error_text& other) : text_(std::make_unique<std::string>(other.str())) {}
  error_text(error_text&&) noexcept = default;
  error_text& operator=(const error_text& other) {
    if (this != &other) text_ = std::make_unique<std::string>(other.str());
    return *this;
  }
  error_text& operator=(error_text&&) noexcept = default;
  ~error_text() = default;
  /// Returns the message (empty once moved from).
  [[nodiscard]] const std::string& str() const noexcept {
    static const std::string none;
    return text_ ? *text_ : none;
  }

 private:
  std::unique_ptr<std::string> text_;
};

}  // namespace detail

/// The result of one item, or the message of the exception it raised.
template <class R>
class item_result {
 public:
  /// Makes an empty record (for deserialization).
  item_result() = default;

  /// Makes the record of item `index` that returned `value`.
  static item_result success(std::size_t index, R value) { return item_result(index, std::in_place_index<0>, std::move(value)); }
  /// Makes the record of item `index` that failed with `message`.
  static item_result failure(std::size_t index, std::string message) {
    return item_result(index, std::in_place_index<1>, detail::error_text(std::move(message)));
  }

  /// Returns the position of the item in the source.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  /// Returns true when the item produced a result.
  [[nodiscard]] bool ok() const noexcept { return outcome_.index() == 0; }
  /// Returns true when the item produced a result.
  explicit operator bool() const noexcept { return ok(); }
  /// Returns the result; throws item_failed when the item failed.
  [[nodiscard]] const R& value() const {
    if (!ok()) throw item_failed(index_, error());
    return std::get<0>(outcome_);
  }
  /// Returns the result; throws item_failed when the item failed.
  [[nodiscard]] R& value() {
    if (!ok()) throw item_failed(index_, error());
    return std::get<0>(outcome_);
  }
  /// Returns the result (the item must have succeeded).
  const R& operator*() const { return value(); }
  /// Returns a pointer to the result (the item must have succeeded).
  const R* operator->() const { return &value(); }
  /// Returns the error message, empty when the item succeeded.
  [[nodiscard]] const std::string& error() const noexcept {
    static const std::string none;
    return ok() ? none : std::get<1>(outcome_).str();
  }
  /// Sets the position (the wire format leaves it out: it follows from the chunk).
  void set_index(std::size_t index) noexcept { index_ = index; }

  /// Writes the outcome (not the index) to a Boost archive.
  template <class Archive>
  void save(Archive& ar, unsigned /*version*/) const {
    const bool success_flag = ok();
    ar << success_flag;
    if (success_flag) ar << std::get<0>(outcome_);
    else ar << std::get<1>(outcome_).str();
  }
  /// Reads the outcome from a Boost archive.
  template <class Archive>
  void load(Archive& ar, unsigned /*version*/) {
    bool success_flag = false;
    ar >> success_flag;
    if (success_flag) {
      R value{};
      ar >> value;
      outcome_.template emplace<0>(std::move(value));
    } else {
      std::string message;
      ar >> message;
      outcome_.template emplace<1>(std::move(message));  // an error_text
    }
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()

 private:
  template <std::size_t I, class V>
  item_result(std::size_t index, std::in_place_index_t<I> tag, V&& value) : index_(index), outcome_(tag, std::forward<V>(value)) {}

  std::size_t index_ = 0;
  std::variant<R, detail::error_text> outcome_;
};

}  // namespace amorsize
