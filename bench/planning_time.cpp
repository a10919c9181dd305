// Prints how long planning takes beyond the sampled calls: on the first call of a process
// (probe + overhead benchmarks + model) and on later calls (cached measurements + model).
// Targets: at most 20 ms on the first call, 1 ms on later calls.
#include <amorsize/amorsize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
  std::vector<int> data(10000);
  auto work = [](int x) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return x;
  };
  amorsize::session& session = amorsize::session::current();
  std::vector<double> later;
  double first = 0.0;
  for (int call = 0; call < 21; ++call) {
    const auto result = amorsize::optimize(work, data);
    if (call == 0) first = result.profile.planning_seconds;
    else later.push_back(result.profile.planning_seconds);
  }
  std::sort(later.begin(), later.end());
  if (session.is_root()) {
    std::printf("planning_seconds first call: %.3f ms (target <= 20 ms)\n", first * 1e3);
    std::printf("planning_seconds later calls: median %.3f ms, max %.3f ms (target <= 1 ms)\n",
                later[later.size() / 2] * 1e3, later.back() * 1e3);
  }
  return 0;
}
