// Local overhead benchmarks: forked worker processes, threads, chunk round trips, pipe bandwidth.
#include <amorsize/overheads.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <sys/wait.h>

using namespace amorsize;

TEST_CASE("measure_local_overheads_uncached measures plausible costs", "[overheads]") {
  const local_overheads o = measure_local_overheads_uncached();
  REQUIRE(o.measured);
  // Starting a pool of processes costs something, but far less than 50 ms on any machine. The
  // fixed part is 2 * (pool of one) - (pool of two), which noise may bring to 0, never below.
  CHECK(o.process_spawn_fixed >= 0.0);
  CHECK(o.process_spawn_fixed < 50e-3);
  CHECK(o.process_spawn_per_worker >= 0.0);
  CHECK(o.process_spawn_per_worker < 50e-3);
  CHECK(o.process_spawn_fixed + o.process_spawn_per_worker > 0.0);
  CHECK(o.chunk_round_trip > 0.0);
  CHECK(o.chunk_round_trip < 5e-3);
  CHECK(o.pipe_bandwidth > 10e6);
  CHECK(o.thread_spawn_per_worker > 0.0);
  CHECK(o.thread_spawn_per_worker < 10e-3);
  CHECK(o.measure_seconds > 0.0);
  CHECK(o.measure_seconds < 5.0);  // a runaway; milliseconds on an idle machine, more under sanitizers
}

// Every forked echo worker is reaped: no zombie or running child is left to this process.
TEST_CASE("measuring local overheads leaves no child process behind", "[overheads]") {
  for (int round = 0; round < 2; ++round) {
    const local_overheads o = measure_local_overheads_uncached();
    REQUIRE(o.measured);
    int status = 0;
    errno = 0;
    const pid_t reaped = ::waitpid(-1, &status, WNOHANG);
    CHECK(reaped == -1);
    CHECK(errno == ECHILD);
  }
}

TEST_CASE("measure_local_overheads measures once and then answers from its cache", "[overheads]") {
  const local_overheads& first = measure_local_overheads();
  CHECK(first.measured);
  const local_overheads& second = measure_local_overheads();
  CHECK(&first == &second);
  CHECK(second.chunk_round_trip == first.chunk_round_trip);
  CHECK(second.measure_seconds == first.measure_seconds);
}
