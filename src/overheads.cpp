#include <amorsize/overheads.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace amorsize {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Writes all of `size` bytes; false when the peer is gone.
bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads exactly `size` bytes; false at end of stream or on error.
bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// The child's whole life: say it is ready, then answer each length-prefixed message with one
/// byte until the parent hangs up. Only async-signal-safe calls: the parent may have threads.
[[noreturn]] void echo_child(int fd) {
  // Drop the sockets of sibling workers inherited through fork, so each worker sees its own
  // end of stream when the parent hangs up.
  if (fd > 3) ::close_range(3, static_cast<unsigned>(fd) - 1, 0);
  ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
  static std::array<char, 64 * 1024> buffer;
  const char ready = 'r';
  if (!write_all(fd, &ready, 1)) _exit(1);
  std::uint32_t length = 0;
  while (read_all(fd, &length, sizeof length)) {
    while (length > 0) {
      const std::size_t part = std::min<std::size_t>(length, buffer.size());
      if (!read_all(fd, buffer.data(), part)) _exit(1);
      length -= static_cast<std::uint32_t>(part);
    }
    if (!write_all(fd, &ready, 1)) _exit(1);
  }
  _exit(0);
}

/// A worker process started for a measurement, with a socket to talk to it.
struct echo_worker {
  pid_t pid = -1;
  int fd = -1;
};

/// Forks one echo child; pid -1 when the system refuses.
echo_worker start_worker() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    echo_child(fds[1]);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return {};
  }
  return {pid, fds[0]};
}

void stop_worker(echo_worker& w) {
  if (w.fd >= 0) ::close(w.fd);  // the child sees end of stream and exits
  if (w.pid > 0) {
    int status = 0;
    while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  w = {};
}

bool wait_ready(const echo_worker& w) {
  char ready = 0;
  return w.fd >= 0 && read_all(w.fd, &ready, 1);
}

/// Seconds to start `count` worker processes, see each ready, and stop them all; negative on failure.
double pool_cycle_seconds(int count) {
  std::vector<echo_worker> pool(static_cast<std::size_t>(count));
  const double start = now();
  bool ok = true;
  for (auto& w : pool) ok = ((w = start_worker()).pid > 0) && ok;
  for (auto& w : pool) ok = wait_ready(w) && ok;
  for (auto it = pool.rbegin(); it != pool.rend(); ++it) stop_worker(*it);  // newest first: it holds no sibling's socket
  return ok ? now() - start : -1.0;
}

/// Seconds for one length-prefixed message of `bytes` bytes and its one-byte answer.
double round_trip_seconds(const echo_worker& w, std::size_t bytes) {
  static const std::vector<char> payload(256 * 1024, 'x');
  const auto length = static_cast<std::uint32_t>(std::min(bytes, payload.size()));
  char answer = 0;
  const double start = now();
  if (!write_all(w.fd, &length, sizeof length) || !write_all(w.fd, payload.data(), length) ||
      !read_all(w.fd, &answer, 1)) {
    return -1.0;
  }
  return now() - start;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

local_overheads measure_local_overheads_uncached() {
  const double start = now();
  local_overheads o;

  // Fixed and per-worker start-up cost from pools of one and two processes (minimum of three tries each).
  double one = 1e9;
  double two = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const double a = pool_cycle_seconds(1);
    const double b = pool_cycle_seconds(2);
    if (a < 0.0 || b < 0.0) return o;  // fork refused: leave unmeasured
    one = std::min(one, a);
    two = std::min(two, b);
  }
  o.process_spawn_per_worker = std::max(0.0, two - one);
  o.process_spawn_fixed = std::max(0.0, one - o.process_spawn_per_worker);

  // A chunk's round trip (small message and its answer) and the pipe's bandwidth.
  echo_worker w = start_worker();
  if (w.pid > 0 && wait_ready(w)) {
    std::vector<double> trips;
    for (int i = 0; i < 20; ++i) {
      const double t = round_trip_seconds(w, 64);
      if (i >= 4 && t >= 0.0) trips.push_back(t);  // the first few warm the caches and the scheduler
    }
    o.chunk_round_trip = median(trips);
    double big = 1e9;
    for (int i = 0; i < 3; ++i) {
      const double t = round_trip_seconds(w, 256 * 1024);
      if (t > 0.0) big = std::min(big, t);
    }
    const double transfer = big - o.chunk_round_trip;
    o.pipe_bandwidth = transfer > 0.0 ? 256.0 * 1024.0 / transfer : 0.0;
  }
  stop_worker(w);

  // Threads: start and join four, twice; keep the cheaper round.
  double per_thread = 1e9;
  for (int round = 0; round < 2; ++round) {
    const double t0 = now();
    std::array<std::thread, 4> threads;
    for (auto& t : threads) t = std::thread([] {});
    for (auto& t : threads) t.join();
    per_thread = std::min(per_thread, (now() - t0) / static_cast<double>(threads.size()));
  }
  o.thread_spawn_per_worker = per_thread;

  o.measured = true;
  o.measure_seconds = now() - start;
  return o;
}

const local_overheads& measure_local_overheads() {
  static const local_overheads cached = [] {
    local_overheads first = measure_local_overheads_uncached();
    return first;
  }();
  return cached;
}

}  // namespace amorsize
