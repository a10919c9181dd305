/* The one kernel every system of the benchmark suite runs: C++ peers link it, Python peers load it with ctypes. */
#ifndef AMORSIZE_BENCH_SPIN_H
#define AMORSIZE_BENCH_SPIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Busy-waits for `microseconds` on the monotonic clock. */
void amorsize_bench_spin_us(double microseconds);

/** Sleeps for `microseconds` on the monotonic clock (a task that waits and leaves the core idle). */
void amorsize_bench_sleep_us(double microseconds);

/** Returns a few nanoseconds of arithmetic on `x`: the near-zero item. */
uint64_t amorsize_bench_tiny(uint64_t x);

#ifdef __cplusplus
}
#endif

#endif
