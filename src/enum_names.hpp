#pragma once
// One name table per enum, read both ways: to_string and the parser share it, so they cannot drift
// apart, and a name the table lacks is an error (internal, not installed).

#include <amorsize/error.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace amorsize::enum_names {

/// An enum's values, each beside its name.
template <class Enum, std::size_t N>
using table = std::array<std::pair<Enum, std::string_view>, N>;

/// Returns whether the table lists the enum's values in their order, from 0, each once: with the
/// last value's position it proves, at compile time, that no value lacks a name.
template <class Enum, std::size_t N>
constexpr bool lists_in_order(const table<Enum, N>& names) {
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(names[i].first) != i) return false;
  }
  return true;
}

/// Returns the name of `value` in `names` ("?" for a value the table lacks, which is a bug).
template <class Enum, std::size_t N>
constexpr std::string_view name_of(const table<Enum, N>& names, Enum value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "?";
}

/// Returns the value named `name` in `names`; throws input_error naming it and the known names otherwise.
template <class Enum, std::size_t N>
Enum value_named(const table<Enum, N>& names, std::string_view name, const char* what) {
  for (const auto& [v, known] : names) {
    if (known == name) return v;
  }
  std::string known_names;
  for (std::size_t i = 0; i < N; ++i) {
    known_names += i == 0 ? "" : (i + 1 == N ? " or " : ", ");
    known_names += names[i].second;
  }
  throw input_error("unknown " + std::string(what) + " '" + std::string(name) + "': use " + known_names);
}

}  // namespace amorsize::enum_names
