#include "text.hpp"

#include <cstdarg>
#include <cstdio>

namespace amorsize::text {

std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list again;
  va_copy(again, args);
  const int size = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string out(size > 0 ? static_cast<std::size_t>(size) : 0, '\0');
  if (size > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

std::string seconds(double s) {
  if (s > 0.0 && s < 1e-6) return format("%.1f ns", s * 1e9);
  if (s < 1e-3) return format("%.1f us", s * 1e6);
  if (s < 1.0) return format("%.2f ms", s * 1e3);
  return format("%.2f s", s);
}

std::string count_of(long long n, const char* noun) { return format("%lld %s%s", n, noun, n == 1 ? "" : "s"); }

std::string bytes(double b) {
  constexpr double kib = 1024.0;
  if (b < kib) return format("%.0f B", b);
  if (b < kib * kib) return format("%.1f KiB", b / kib);
  if (b < kib * kib * kib) return format("%.1f MiB", b / (kib * kib));
  return format("%.2f GiB", b / (kib * kib * kib));
}

}  // namespace amorsize::text
