#pragma once
// Text helpers shared by the library and the runner: formatting and number parsing (internal, not installed).

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace amorsize::text {

/// Formats like printf into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// Formats seconds with a unit people read at a glance ("12.3 us", "4.56 ms", "7.89 s").
std::string seconds(double s);

/// Formats a byte count with a binary unit ("512 B", "1.5 KiB", "2.0 MiB").
std::string bytes(double b);

/// Formats a count and its noun, plural unless the count is 1 ("1 worker", "3 workers").
std::string count_of(long long n, const char* noun);

/// Parses the whole of `text` as a number of type T; nullopt when it is empty or holds anything else.
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto* const end = text.data() + text.size();
  const auto [stop, status] = std::from_chars(text.data(), end, value);
  if (text.empty() || status != std::errc{} || stop != end) {
    return std::nullopt;
  }
  return value;
}

}  // namespace amorsize::text
