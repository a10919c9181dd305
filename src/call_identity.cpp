#include <amorsize/detail/call_identity.hpp>

#include <cxxabi.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace amorsize::detail {
namespace {

/// Demangles a C++ name; returns it unchanged when it is not one (a C symbol, say).
std::string demangle(const char* name) {
  int status = 0;
  const std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                        std::free);
  return status == 0 && readable ? std::string(readable.get()) : std::string(name);
}

/// Returns the last component of a path.
std::string base_name(const char* path) {
  const std::string whole = path ? path : "";
  const std::size_t slash = whole.rfind('/');
  return slash == std::string::npos ? whole : whole.substr(slash + 1);
}

/// Writes `value` in hexadecimal with a 0x prefix.
std::string hex(std::uintptr_t value) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), digits[value % 16]);
    value /= 16;
  } while (value);
  return "0x" + out;
}

}  // namespace

std::string type_name(const std::type_info& type) {
  return demangle(type.name());
}

std::string function_place(const void* address) {
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fbase == nullptr) {
    // Not in a loaded module (code made at run time): nothing names it the same way on every rank.
    return "at an address outside every loaded module";
  }
  const auto offset = reinterpret_cast<std::uintptr_t>(address) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  std::string place;
  // dladdr gives the nearest exported symbol below the address: a name only when it is this function's.
  if (info.dli_sname != nullptr && info.dli_saddr == address) place = demangle(info.dli_sname) + " ";
  return place + "at " + base_name(info.dli_fname) + "+" + hex(offset);
}

std::string member_function_place(const void* representation, std::size_t size) {
  // The Itanium C++ ABI: {ptr, adj}. A virtual function has a vtable offset in ptr, marked by ptr's
  // low bit (ARM: by adj's low bit, adj then holding twice the adjustment).
  struct itanium_member_pointer {
    std::uintptr_t ptr;
    std::ptrdiff_t adj;
  };
  if (size != sizeof(itanium_member_pointer)) return {};
  itanium_member_pointer p{};
  std::memcpy(&p, representation, sizeof p);
#if defined(__arm__) || defined(__aarch64__)
  const bool is_virtual = (p.adj & 1) != 0;
  const std::ptrdiff_t adjust = p.adj >> 1;
  const std::uintptr_t vtable_offset = p.ptr;
#else
  const bool is_virtual = (p.ptr & 1) != 0;
  const std::ptrdiff_t adjust = p.adj;
  const std::uintptr_t vtable_offset = p.ptr - 1;
#endif
  std::string place = is_virtual ? "virtual slot " + std::to_string(vtable_offset / sizeof(void*))
                                 : function_place(reinterpret_cast<const void*>(p.ptr));
  if (adjust != 0) place += " (this adjusted by " + std::to_string(adjust) + ")";
  return place;
}

std::size_t next_call_number() {
  static std::atomic<std::size_t> calls{0};
  return ++calls;
}

}  // namespace amorsize::detail
