#pragma once
/// Resuming a run: the items an earlier run finished, recognised by their position in the source
/// and a key (a hash of the item and of what else decides its result), are skipped; the others run
/// and keep their original positions.

#include <amorsize/detail/sample.hpp>
#include <amorsize/error.hpp>
#include <amorsize/source.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace amorsize {

/// Returns the 64-bit FNV-1a hash of `bytes`, continuing from `hash` (the offset basis by default).
constexpr std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t hash = 0xcbf29ce484222325ULL) noexcept {
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

/// Returns the bytes detail::to_bytes writes for `item`; numbers and strings, the items of long runs,
/// without building an archive (microseconds each, most of a runner's cost per record).
template <class T>
std::string key_bytes(const T& item) {
  if constexpr (std::is_arithmetic_v<T>) {
    return std::string(reinterpret_cast<const char*>(&item), sizeof item);
  } else if constexpr (std::is_same_v<T, std::string>) {
    const std::size_t size = item.size();  // a raw std::size_t, then the characters, as the archive writes it
    return std::string(reinterpret_cast<const char*>(&size), sizeof size) + item;
  } else {
    return detail::to_bytes(item);
  }
}

/// Returns the key of `item` as 16 hex digits: a hash of `context` (what besides the item decides
/// its result, such as a command template) and of the item's serialized bytes.
template <class T>
std::string item_key(std::string_view context, const T& item) {
  const std::uint64_t hash = hash_bytes(key_bytes(item), hash_bytes(context));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

/// What an earlier run finished: the key of the item at each finished source position (empty for a
/// record of an item never read, such as error_policy::stop's "not run" records: nothing to check).
using finished_items = std::unordered_map<std::size_t, std::string>;

/// A source's items less those an earlier run finished, with the positions and keys of the rest.
///
/// Reading an item whose position is finished checks its key: a different key means the source is
/// not the one the earlier run read, and reading throws input_error naming the position.
template <class T>
class resumed_items {
 public:
  /// Wraps `all`, skipping the positions in `finished`; `context` goes into every key; with
  /// `keep_items`, each remaining item is kept until take_item() (to run it again); `start_again`
  /// ends the message of a changed item, saying how to start afresh.
  resumed_items(source<T> all, finished_items finished, std::string context, bool keep_items,
                std::string start_again = "start again with --overwrite")
      : state_(std::make_shared<state>()) {
    state_->all = std::move(all);
    state_->finished = std::move(finished);
    state_->context = std::move(context);
    state_->keep_items = keep_items;
    state_->start_again = std::move(start_again);
  }

  /// Returns the remaining items as a source; its size is known when the wrapped source's is.
  [[nodiscard]] source<T> remaining() const {
    std::optional<std::size_t> size = state_->all.size();
    if (size) *size -= std::min(*size, state_->finished.size());
    if (size && state_->finished.empty() && state_->all.has_random_access()) {
      // Nothing to skip: position p of the remaining items is position p of the wrapped source.
      return source<T>([s = state_] { return s->next(); }, *size,
                       [s = state_](std::size_t position) { return *s->all.peek(position - s->read); });
    }
    return source<T>([s = state_] { return s->next(); }, size);
  }

  /// Returns the original source position of the remaining item at `position` (its index in remaining()).
  [[nodiscard]] std::size_t original_index(std::size_t position) const {
    if (position >= state_->read - state_->skipped) return state_->unread_index(position);
    const auto& jumps = state_->jumps;
    const auto after = std::upper_bound(jumps.begin(), jumps.end(), std::pair{position, ~std::size_t{0}});
    return position + (after == jumps.begin() ? 0 : std::prev(after)->second);
  }

  /// Returns and forgets the key of the item at original position `index` (read already).
  std::string take_key(std::size_t index) { return take(state_->keys, index).value_or(std::string()); }

  /// Returns and forgets the item at original position `index`, when items are kept.
  std::optional<T> take_item(std::size_t index) { return take(state_->items, index); }

  /// Returns how many finished items were skipped so far.
  [[nodiscard]] std::size_t skipped() const noexcept { return state_->skipped; }

  /// Returns true once the wrapped source ended.
  [[nodiscard]] bool exhausted() const noexcept { return state_->exhausted; }

 private:
  struct state {
    source<T> all;
    finished_items finished;
    std::string context;
    bool keep_items = false;
    std::string start_again;
    std::size_t read = 0;      // positions read from `all`
    std::size_t skipped = 0;   // of them, finished ones
    bool exhausted = false;    // `all` ended
    std::vector<std::pair<std::size_t, std::size_t>> jumps;  // (first remaining position, items skipped before it)
    std::unordered_map<std::size_t, std::string> keys;       // keys of items handed out, until taken
    std::unordered_map<std::size_t, T> items;                // items handed out, until taken (keep_items)
    std::pair<std::size_t, std::size_t> ahead{0, 0};          // (position, original index) last asked beyond those read

    // Returns the original index of a remaining position not read yet (a "not run" record's): count
    // on past the finished positions ahead, from the last such position asked when it is not after.
    std::size_t unread_index(std::size_t position) {
      std::size_t at = read - skipped;
      std::size_t index = read;
      if (ahead.second >= read && ahead.first >= at && ahead.first <= position) std::tie(at, index) = ahead;
      while (finished.contains(index)) ++index;
      for (; at < position; ++at) {
        ++index;
        while (finished.contains(index)) ++index;
      }
      ahead = {position, index};
      return index;
    }

    std::optional<T> next() {
      for (;;) {
        std::optional<T> item = all.next();
        if (!item) {
          exhausted = true;
          return std::nullopt;
        }
        const std::size_t index = read++;
        std::string key = item_key(context, *item);
        const auto done = finished.find(index);
        if (done == finished.end()) {
          const std::size_t position = index - skipped;
          if (jumps.empty() ? skipped > 0 : jumps.back().second != skipped) jumps.emplace_back(position, skipped);
          keys.emplace(index, std::move(key));
          if (keep_items) items.emplace(index, *item);
          return item;
        }
        if (!done->second.empty() && done->second != key) {
          throw input_error("item " + std::to_string(index) + " is not the one the earlier run finished (its key was " +
                            done->second + ", now " + key +
                            "): the input or the options changed since; resume with the same ones, or " +
                            start_again);
        }
        ++skipped;
      }
    }
  };

  template <class V>
  static std::optional<V> take(std::unordered_map<std::size_t, V>& from, std::size_t index) {
    const auto found = from.find(index);
    if (found == from.end()) return std::nullopt;
    std::optional<V> value(std::move(found->second));
    from.erase(found);
    return value;
  }

  std::shared_ptr<state> state_;
};

}  // namespace amorsize
