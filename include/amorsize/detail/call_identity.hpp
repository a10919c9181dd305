#pragma once
// Names a collective call so that the same call has the same name on every rank: the entry point,
// its sequence number, the function's type and identity, and the item type. An address differs
// between processes (ASLR), so a function is named by its module's file name and its offset there.

#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace amorsize::detail {

/// Returns a type's readable name (demangled where the ABI allows, else as typeid gives it).
std::string type_name(const std::type_info& type);

/// Returns where the function at `address` lies, the same in every process of one program: its
/// symbol when its module exports it, and always its module's file name with its offset there.
std::string function_place(const void* address);

/// Returns which member function the `size` bytes of a member-function pointer at `representation`
/// name: a virtual slot, or the function's place and the `this` adjustment ("" if the ABI is unknown).
std::string member_function_place(const void* representation, std::size_t size);

/// Returns the number of this process's next collective call; optimize and every pool call share it.
std::size_t next_call_number();

/// True for std::function.
template <class F>
struct is_std_function : std::false_type {};
template <class R, class... Args>
struct is_std_function<std::function<R(Args...)>> : std::true_type {};

/// Returns the place of the plain function a std::function holds, trying the function pointer types
/// it can name (its own signature, and the same with parameters by value); "" for another target.
template <class R, class... Args>
std::string std_function_target(const std::function<R(Args...)>& fn) {
  if (auto* exact = fn.template target<R (*)(Args...)>()) return function_place(reinterpret_cast<const void*>(*exact));
  if constexpr (!(std::is_same_v<Args, std::remove_cvref_t<Args>> && ...)) {
    if (auto* by_value = fn.template target<R (*)(std::remove_cvref_t<Args>...)>()) {
      return function_place(reinterpret_cast<const void*>(*by_value));
    }
  }
  return {};
}

/// Returns what tells `fn` apart from other callables of its type, the same in every process of one
/// program: the function a pointer (or a std::function) names; "" for lambdas and functors, whose
/// type is their identity (the state they capture is not compared).
template <class F>
std::string call_identity(const F& fn) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    return fn ? function_place(reinterpret_cast<const void*>(fn)) : "null";
  } else if constexpr (std::is_member_function_pointer_v<F>) {
    unsigned char representation[sizeof(F)];
    std::memcpy(representation, &fn, sizeof(F));
    return fn ? member_function_place(representation, sizeof(F)) : "null";
  } else if constexpr (is_std_function<F>::value) {
    if (!fn) return "empty";
    const std::string place = std_function_target(fn);
    return "holding " + type_name(fn.target_type()) + (place.empty() ? "" : " " + place);
  } else {
    return {};
  }
}

/// Names the `call_number`th collective call, to `method` with `fn` on items of type T, for
/// engine::agree_on_call: the same call on every rank has the same name, and it reads well in an error.
template <class F, class T>
std::string call_name(const char* method, const F& fn, std::size_t call_number) {
  const std::string identity = call_identity(fn);
  return std::string(method) + " #" + std::to_string(call_number) + " of " + type_name(typeid(F)) +
         (identity.empty() ? "" : " " + identity) + " on " + type_name(typeid(T));
}

}  // namespace amorsize::detail
