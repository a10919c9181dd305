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
  /// The callable a source with random access reads from: returns the item at a position of the
  /// generator's sequence (0: the first item `next` ever returns), without moving the stream.
  using random_access = std::function<T(std::size_t position)>;

  /// Makes an empty source.
  source() : state_(std::make_shared<state>()) {}

  /// Makes a source that pulls from `next`; `size` is the number of items when known (nullopt: unknown or endless).
  explicit source(generator next, std::optional<std::size_t> size = std::nullopt) : source() {
    state_->next = std::move(next);
    state_->remaining = size;
  }

  /// Makes a source of `size` items that pulls from `next` and can also read any item with `at`
  /// (spread sampling reads items far ahead without consuming them).
  source(generator next, std::size_t size, random_access at) : source(std::move(next), std::optional<std::size_t>(size)) {
    state_->at = std::move(at);
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
    } else {
      ++s.taken;
      if (s.remaining && *s.remaining > 0) --*s.remaining;
    }
    return item;
  }

  /// Returns true when items ahead can be read without consuming them (see peek): the source has a
  /// known size and random access (a sized random-access range, or a generator given `at`).
  [[nodiscard]] bool has_random_access() const { return state_->at && state_->remaining.has_value(); }

  /// Returns the item `ahead` positions on (0: the one next() returns next) without consuming it,
  /// or nullopt when there is no random access or fewer items are left.
  [[nodiscard]] std::optional<T> peek(std::size_t ahead) const {
    const state& s = *state_;
    if (ahead < s.replayed.size()) return s.replayed[ahead];
    if (!has_random_access() || ahead >= *size()) return std::nullopt;
    return s.at(s.taken + (ahead - s.replayed.size()));
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
    random_access at;         // empty: no random access
    std::size_t taken = 0;    // items `next` returned so far

  };
  std::shared_ptr<state> state_;
};

/// Makes a source over an iterator range [first, last), which must outlive the source.
template <std::input_iterator It, std::sentinel_for<It> S>
auto make_source(It first, S last) {
  using T = std::iter_value_t<It>;
  std::optional<std::size_t> size;
  if constexpr (std::sized_sentinel_for<S, It>) size = static_cast<std::size_t>(std::ranges::distance(first, last));
  typename source<T>::generator next = [first, last]() mutable -> std::optional<T> {
    if (first == last) return std::nullopt;
    std::optional<T> item(*first);
    ++first;
    return item;
  };
  if constexpr (std::random_access_iterator<It> && std::sized_sentinel_for<S, It>) {
    return source<T>(std::move(next), *size, [first](std::size_t position) -> T {
      return first[static_cast<std::iter_difference_t<It>>(position)];
    });
  } else {
    return source<T>(std::move(next), size);
  }
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
  typename source<T>::generator next = [owned, it = std::ranges::begin(*owned)]() mutable -> std::optional<T> {
    if (it == std::ranges::end(*owned)) return std::nullopt;
    std::optional<T> item(*it);
    ++it;
    return item;
  };
  if constexpr (std::ranges::random_access_range<R> && std::ranges::sized_range<R>) {
    return source<T>(std::move(next), *size, [owned](std::size_t position) -> T {
      return std::ranges::begin(*owned)[static_cast<std::ranges::range_difference_t<R>>(position)];
    });
  } else {
    return source<T>(std::move(next), size);
  }
}

/// Makes a source from a generator: a callable returning std::optional<T>, nullopt at the end.
template <class G>
  requires std::invocable<G&> && requires(G& g) { g().has_value(); }
auto make_source(G generator_fn, std::optional<std::size_t> size = std::nullopt) {
  using T = typename std::invoke_result_t<G&>::value_type;
  return source<T>(typename source<T>::generator(std::move(generator_fn)), size);
}

/// Makes a source of `size` items from a generator and a random-access reader `at(position)` of the
/// same sequence, so the planner can sample items spread over the whole source.
template <class G, class A>
  requires std::invocable<G&> && requires(G& g) { g().has_value(); } &&
           std::invocable<A&, std::size_t>
auto make_source(G generator_fn, std::size_t size, A at) {
  using T = typename std::invoke_result_t<G&>::value_type;
  return source<T>(typename source<T>::generator(std::move(generator_fn)), size,
                   typename source<T>::random_access(std::move(at)));
}

/// Passes a source through unchanged, so `make_source` accepts every kind of data.
template <class T>
source<T> make_source(source<T> s) {
  return s;
}

}  // namespace amorsize
