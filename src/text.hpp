#pragma once
// Text helpers shared by the cost model, the plan report and the runner (internal, not installed).

#include <string>

namespace amorsize::text {

/// Formats like printf into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// Formats seconds with a unit people read at a glance ("12.3 us", "4.56 ms", "7.89 s").
std::string seconds(double s);

/// Formats a byte count with a binary unit ("512 B", "1.5 KiB", "2.0 MiB").
std::string bytes(double b);

}  // namespace amorsize::text
