/* The benchmark kernel: a busy-spin and a sleep on CLOCK_MONOTONIC, and a near-zero item. */
#include "spin.h"

#include <errno.h>
#include <time.h>

/* Returns `t` plus `microseconds`. */
static struct timespec add_us(struct timespec t, double microseconds) {
  const long long ns = (long long)(microseconds * 1e3);
  t.tv_sec += (time_t)(ns / 1000000000LL);
  t.tv_nsec += (long)(ns % 1000000000LL);
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec += 1;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

void amorsize_bench_spin_us(double microseconds) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const struct timespec deadline = add_us(now, microseconds > 0.0 ? microseconds : 0.0);
  do {
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec < deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec < deadline.tv_nsec));
}

void amorsize_bench_sleep_us(double microseconds) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline = add_us(deadline, microseconds > 0.0 ? microseconds : 0.0);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
  }
}

uint64_t amorsize_bench_tiny(uint64_t x) {
  x ^= x >> 33U;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33U;
  return x;
}
