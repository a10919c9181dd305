#pragma once
/// A pull-based stream of items: a container, an iterator range or a generator, endless or not.

#include <concepts>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

namespace amorsize {

/// Yields items one at a time; items pushed back with `replay` come out first, in order.
///
/// A source made from a container refers to it (the container must outlive the source) unless
/// the container was moved in. Copies share the same underlying stream.
template <class T>
class source {
 public:
  using value_type = T;
  /// The callable a generator source pulls from: returns the next item, or nullopt at the end.
  using generator = std::function<std::optional<T>()>;

  /// Makes an empty source.
  source() : state_(std::make_shared<state>()) {}

  /// Makes a source that pulls from `next`; `size` is the number of items when known (nullopt: unknown or endless).
  explicit source(generator next, std::optional<std::size_t> size = std::nullopt) : source() {
    state_->next = std::move(next);
    state_->remaining = size;
  }

  /// Returns the next item, or nullopt when the source is exhausted.
  std::optional<T> next() {
    state& s = *state_;
    if (!s.replayed.empty()) {
      std::optional<T> item(std::move(s.replayed.front()));
      s.replayed.pop_front();
      return item;
    }
    if (!s.next) return std::nullopt;
    std::optional<T> item = s.next();
    if (!item) {
      s.next = nullptr;
      s.remaining = 0;
    } else if (s.remaining && *s.remaining > 0) {
      --*s.remaining;
    }
    return item;
  }

  /// Puts `items` back in front of the stream, so they come out next, in their order.
  void replay(std::vector<T> items) {
    for (auto it = items.rbegin(); it != items.rend(); ++it) state_->replayed.push_front(std::move(*it));
  }

  /// Returns how many items put back with `replay` have not come out yet.
  [[nodiscard]] std::size_t replayed() const noexcept { return state_->replayed.size(); }

  /// Returns how many items are left, or nullopt when unknown (a generator without a size, an endless stream).
  [[nodiscard]] std::optional<std::size_t> size() const {
    if (!state_->remaining) return std::nullopt;
    return *state_->remaining + state_->replayed.size();
  }

 private:
  struct state {
    generator next;
    std::optional<std::size_t> remaining = 0;
    std::deque<T> replayed;
  };
  std::shared_ptr<state> state_;
};

/// Makes a source over an iterator range [first, last), which must outlive the source.
template <std::input_iterator It, std::sentinel_for<It> S>
auto make_source(It first, S last) {
  using T = std::iter_value_t<It>;
  std::optional<std::size_t> size;
  if constexpr (std::sized_sentinel_for<S, It>) size = static_cast<std::size_t>(std::ranges::distance(first, last));
  return source<T>(
      [first, last]() mutable -> std::optional<T> {
        if (first == last) return std::nullopt;
        std::optional<T> item(*first);
        ++first;
        return item;
      },
      size);
}

/// Makes a source over a container or range held by reference (it must outlive the source).
template <std::ranges::input_range R>
  requires std::is_lvalue_reference_v<R&&>
auto make_source(R&& range) {
  return make_source(std::ranges::begin(range), std::ranges::end(range));
}

/// Makes a source that owns a container moved into it.
template <std::ranges::input_range R>
  requires(!std::is_lvalue_reference_v<R&&>)
auto make_source(R&& range) {
  auto owned = std::make_shared<std::remove_cvref_t<R>>(std::forward<R>(range));
  using T = std::ranges::range_value_t<R>;
  std::optional<std::size_t> size;
  if constexpr (std::ranges::sized_range<R>) size = static_cast<std::size_t>(std::ranges::size(*owned));
  return source<T>(
      [owned, it = std::ranges::begin(*owned)]() mutable -> std::optional<T> {
        if (it == std::ranges::end(*owned)) return std::nullopt;
        std::optional<T> item(*it);
        ++it;
        return item;
      },
      size);
}

/// Makes a source from a generator: a callable returning std::optional<T>, nullopt at the end.
template <class G>
  requires std::invocable<G&> && requires(G& g) { g().has_value(); }
auto make_source(G generator_fn, std::optional<std::size_t> size = std::nullopt) {
  using T = typename std::invoke_result_t<G&>::value_type;
  return source<T>(typename source<T>::generator(std::move(generator_fn)), size);
}

/// Passes a source through unchanged, so `make_source` accepts every kind of data.
template <class T>
source<T> make_source(source<T> s) {
  return s;
}

}  // namespace amorsize
