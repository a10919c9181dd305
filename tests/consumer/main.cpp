// A program outside the amorsize tree that plans and runs a workload through the installed package.
#include <amorsize/amorsize.hpp>

#include <iostream>
#include <numeric>
#include <vector>

int main() {
  std::vector<int> data(1000);
  std::iota(data.begin(), data.end(), 0);
  auto square = [](int x) { return x * x; };
  auto result = amorsize::optimize(square, data);
  // A trivial function must not be worth parallelising, and the replayed data must be complete.
  // Under a sanitizer each call and each engine step is instrumented and costs microseconds, so the
  // plan rests on that build's timings, not the function's: there only the replay is checked.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const bool timings_are_real = false;
#else
  const bool timings_are_real = true;
#endif
  std::size_t replayed = 0;
  while (result.data.next()) ++replayed;
  if ((timings_are_real && !result.serial) || replayed != data.size()) {
    std::cerr << "unexpected plan:\n" << result.explain();
    return 1;
  }
  // Two worker processes square every item, in order.
  amorsize::pool pool(2);
  const auto records = pool.map(square, data);
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (records.size() != data.size() || records[i].index() != i || *records[i] != data[i] * data[i]) {
      std::cerr << "pool.map returned a wrong record at " << i << '\n';
      return 1;
    }
  }
  std::cout << "consumer: " << result.reason << '\n';
  return 0;
}
