// A pool of forked worker processes, each talking to the root over its own socket pair.
#include <amorsize/engine/local_backends.hpp>
#include <amorsize/error.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/worker.hpp>

#include "../text.hpp"
#include "worker_number.hpp"
#include "worker_process.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace amorsize::engine {
namespace {

/// What precedes a chunk's payload on the way to a worker.
struct chunk_header {
  std::uint64_t id = 0;
  std::uint64_t first_index = 0;
  std::uint64_t count = 0;
  std::uint64_t length = 0;
};

/// How a worker's answer turned out; a failure sends its reason as the payload.
enum class outcome : std::uint64_t {
  done = 0,         ///< The chunk ran; its records follow.
  task_threw = 1,   ///< The chunk task threw for the chunk.
  setup_threw = 2,  ///< The worker's setup threw before any chunk (no chunk is answered).
};

/// What precedes a result's payload on the way back.
struct result_header {
  std::uint64_t id = 0;
  outcome result = outcome::done;
  double compute_seconds = 0.0;
  std::uint64_t length = 0;
};

/// Seconds a stopping pool gives its children to exit before it kills them.
constexpr double stop_grace_seconds = 1.0;

/// Seconds a child that closed its socket gets to finish exiting before it is killed.
constexpr double lost_grace_seconds = 0.2;

/// Seconds a worker holding chunks may answer nothing beyond its items' share of the item timeout
/// (a chunk's transfer, a fork and a setup fit in it) before it is killed as stalled.
constexpr double stall_margin_seconds = 3.0;

/// Bytes read from a worker's socket at a time, at least.
constexpr std::size_t read_block = 64 * 1024;

template <class T>
std::string to_bytes(const T& value) {
  return {reinterpret_cast<const char*>(&value), sizeof value};
}

/// Writes one answer frame, `head` then `payload`, in one write when small (the root wakes once per
/// small result); a large payload follows its header in a write of its own, never copied.
bool write_answer(int fd, result_header head, std::string& payload) {
  head.length = payload.size();
  if (payload.size() >= read_block) {
    return detail::write_all(fd, &head, sizeof head) && detail::write_all(fd, payload.data(), payload.size());
  }
  payload.insert(0, to_bytes(head));
  return detail::write_all(fd, payload.data(), payload.size());
}

/// Reads and drops what the root sends until it hangs up, so its writes never block on this worker.
void drain_until_hang_up(int fd) {
  std::array<char, 4096> sink{};
  for (;;) {
    const ssize_t n = ::read(fd, sink.data(), sink.size());
    if (n == 0 || (n < 0 && errno != EINTR)) return;
  }
}

/// Makes the signals a terminal sends a whole foreground process group (Ctrl-C, a hang-up) and the
/// user signals pass over a worker: the root alone decides how its run stops. SIGTERM still ends
/// it, after the worker stop hook (set_worker_stop_hook).
void ignore_terminal_signals() {
  for (const int sig : {SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) std::signal(sig, SIG_IGN);
  detail::end_with_stop_hook_on_sigterm();
}

/// A worker's whole life: run the setup, then read a chunk, run the task, write the result, until
/// the root hangs up. A setup that throws is answered once; the worker then runs nothing. An item
/// that runs past `item_timeout` seconds (0: no limit) ends the worker with item_timed_out_status.
///
/// The child is a fork of a process that may have other threads, and it runs the user's task
/// (allocating, locking, printing): a lock another thread held at the fork stays locked here
/// forever. That is the hazard of multiprocessing's "fork" start method, accepted for the same
/// reason (no exec, the task needs no registry); start the pool before starting threads.
int worker_main(int fd, int worker, const chunk_task& task, const worker_setup& setup, double item_timeout) {
  ignore_terminal_signals();
  detail::set_process_worker(worker);
  detail::set_item_timeout(item_timeout);
  std::string out;
  if (std::optional<std::string> failure = detail::try_worker_setup(setup)) {
    if (write_answer(fd, result_header{0, outcome::setup_threw, 0.0, 0}, *failure)) drain_until_hang_up(fd);
  } else {
    chunk_header in;
    std::string items;
    while (detail::read_all(fd, &in, sizeof in)) {
      items.resize(in.length);
      if (!detail::read_all(fd, items.data(), items.size())) return 1;
      result_header head{in.id, outcome::done, 0.0, 0};
      if (!detail::run_task(task, items, out, head.compute_seconds)) head.result = outcome::task_threw;
      if (!write_answer(fd, head, out)) return 1;
    }
  }
  std::fflush(stdout);  // the task's own output: start_child flushed the parent's before the fork
  std::fflush(stderr);
  return 0;
}

class process_backend final : public backend {
 public:
  process_backend(int workers, chunk_task task, worker_setup setup, double item_timeout)
      : task_(std::move(task)), setup_(std::move(setup)), item_timeout_(item_timeout) {
    if (workers < 1) throw input_error("a process pool needs at least one worker, not " + std::to_string(workers));
    if (!task_) throw input_error("a process pool needs a task to run");
    slots_.resize(static_cast<std::size_t>(workers));
    for (std::size_t w = 0; w < slots_.size(); ++w) {
      if (!start(w)) {
        const int err = errno;
        stop();
        throw resource_error(detail::refused_message("worker process", w, slots_.size(), err));
      }
    }
  }

  process_backend(const process_backend&) = delete;
  process_backend& operator=(const process_backend&) = delete;

  ~process_backend() override { stop(); }

  [[nodiscard]] int workers() const override { return static_cast<int>(slots_.size()); }

  void send(int w, chunk c) override {
    if (!alive(w)) throw std::logic_error("chunk sent to process worker " + std::to_string(w) + ", which is not alive");
    slot& s = slots_[static_cast<std::size_t>(w)];
    if (s.held.empty()) s.heard_at = watched_seconds_;  // an idle worker owes nothing until now
    s.held.push_back({c.id, c.count});
    if (s.write_broken) return;  // the next wait() reports the worker lost with this chunk
    s.out.push_back(to_bytes(chunk_header{c.id, c.first_index, c.count, c.payload.size()}));
    if (!c.payload.empty()) s.out.push_back(std::move(c.payload));
    flush(s);
  }

  std::optional<event> wait(double timeout_seconds) override {
    using clock = std::chrono::steady_clock;
    const auto deadline = detail::deadline_after(timeout_seconds);
    std::vector<pollfd> fds;
    std::vector<std::size_t> owners;
    for (;;) {
      if (!ready_.empty()) {
        event e = std::move(ready_.front());
        ready_.pop_front();
        return e;
      }
      fds.clear();
      owners.clear();
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        const slot& s = slots_[i];
        if (s.proc.fd < 0) continue;
        const bool writing = !s.out.empty() && !s.write_broken;
        fds.push_back({s.proc.fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0});
        owners.push_back(i);
      }
      if (fds.empty()) return std::nullopt;  // stopped, or every worker is gone for good
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
      const int poll_ms = static_cast<int>(std::clamp<decltype(left)>(left, 0, 1 << 30));
      const double poll_start = monotonic_seconds();
      const int n = ::poll(fds.data(), fds.size(), poll_ms);
      if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll on worker sockets");
      // Only the time the root spends waiting counts against its workers, and never more than the
      // wait asked for: a root that was away (its caller busy, the process stopped) blames no worker.
      watched_seconds_ += std::min(monotonic_seconds() - poll_start, poll_ms * 1e-3 + 0.01);
      if (n <= 0) {
        kill_stalled();
        if (ready_.empty() && clock::now() >= deadline) return std::nullopt;
        continue;
      }
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        const auto w = owners[k];
        slot& s = slots_[w];
        if ((fds[k].revents & POLLOUT) != 0) flush(s);
        if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0 && !receive(s, static_cast<int>(w))) lose(w);
      }
      kill_stalled();  // after reading: a worker that just answered is not stalled
      if (ready_.empty() && clock::now() >= deadline) return std::nullopt;  // only parts of frames moved
    }
  }

  [[nodiscard]] bool alive(int w) const override {
    if (w < 0 || w >= workers()) return false;
    return slots_[static_cast<std::size_t>(w)].proc.fd >= 0;
  }

  void stop() override {
    // Hang up on every worker first, so they all exit at once, then reap them within one grace period.
    for (auto& s : slots_) detail::hang_up(s.proc);
    const auto deadline = detail::deadline_after(stop_grace_seconds);
    for (auto& s : slots_) {
      if (s.proc.pid <= 0) continue;
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      detail::reap(s.proc.pid, std::max(0.0, left));
      s = slot{};
    }
    ready_.clear();
  }

  /// Kills the workers running chunks, then stops the others as stop() does.
  void abandon() override {
    // SIGTERM lets a busy worker run its stop hook (ending what its item started); stop() kills
    // what is still alive after its grace.
    for (const auto& s : slots_) {
      if (s.proc.pid > 0 && !s.held.empty()) ::kill(s.proc.pid, SIGTERM);
    }
    stop();
  }

 private:
  /// A chunk a worker holds: its id and its number of items.
  struct held_chunk {
    std::uint64_t id = 0;
    std::size_t count = 0;
  };

  /// One worker: its process, what is still to be written to it, and what it sent so far.
  struct slot {
    detail::child_process proc;
    std::deque<std::string> out;       ///< Frames (headers and payloads) not fully written yet.
    std::size_t out_offset = 0;        ///< Bytes of out.front() already written.
    bool write_broken = false;         ///< A write failed: the worker is gone; reading will tell why.
    std::string in;                    ///< Bytes received and not yet parsed, then free space to receive into.
    std::size_t in_used = 0;           ///< Bytes of `in` that were received.
    std::deque<held_chunk> held;       ///< The chunks the worker holds, oldest first.
    double heard_at = 0.0;             ///< watched_seconds_ when the worker last sent bytes or, idle, was sent a chunk.
  };

  /// Forks worker `w` into its slot; false when the system refuses.
  bool start(std::size_t w) {
    slot& s = slots_[w];
    s = slot{};
    s.proc = detail::start_child(
        [this, w](int fd) { return worker_main(fd, static_cast<int>(w), task_, setup_, item_timeout_); });
    s.heard_at = watched_seconds_;
    if (s.proc.pid < 0) return false;
    ::fcntl(s.proc.fd, F_SETFL, ::fcntl(s.proc.fd, F_GETFL) | O_NONBLOCK);
    return true;
  }

  /// Writes as much of the queued frames as the socket takes now.
  void flush(slot& s) {
    while (!s.out.empty() && !s.write_broken) {
      std::array<iovec, 16> parts{};
      std::size_t count = 0;
      for (auto it = s.out.begin(); it != s.out.end() && count < parts.size(); ++it, ++count) {
        const std::size_t skip = count == 0 ? s.out_offset : 0;
        parts[count] = {it->data() + skip, it->size() - skip};
      }
      msghdr msg{};
      msg.msg_iov = parts.data();
      msg.msg_iovlen = count;
      const ssize_t n = ::sendmsg(s.proc.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        s.write_broken = true;  // EPIPE or ECONNRESET: the child is gone
        s.out.clear();
        return;
      }
      auto written = static_cast<std::size_t>(n);
      while (written > 0) {
        const std::size_t rest = s.out.front().size() - s.out_offset;
        if (written < rest) {
          s.out_offset += written;
          break;
        }
        written -= rest;
        s.out.pop_front();
        s.out_offset = 0;
      }
    }
  }

  /// Reads what worker `w` sent and queues its complete results; false at end of stream or on error.
  bool receive(slot& s, int w) {
    for (;;) {
      std::size_t want = read_block;
      if (s.in_used >= sizeof(result_header)) {
        result_header head;
        std::memcpy(&head, s.in.data(), sizeof head);
        const std::size_t frame = sizeof head + head.length;
        if (frame > s.in_used) want = std::max(want, frame - s.in_used);
      }
      if (s.in.size() < s.in_used + want) s.in.resize(s.in_used + want);
      const ssize_t n = ::recv(s.proc.fd, s.in.data() + s.in_used, want, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
      }
      s.in_used += static_cast<std::size_t>(n);
      s.heard_at = watched_seconds_;
      parse(s, w);
    }
  }

  /// Moves every complete result frame out of worker `w`'s input buffer.
  void parse(slot& s, int w) {
    std::size_t pos = 0;
    result_header head;
    while (s.in_used - pos >= sizeof head) {
      std::memcpy(&head, s.in.data() + pos, sizeof head);
      if (s.in_used - pos - sizeof head < head.length) break;
      std::string payload;
      if (pos == 0 && sizeof head + head.length == s.in_used && head.length >= read_block) {
        // A large result alone in the buffer: take the buffer rather than copy it.
        payload = std::move(s.in);
        payload.resize(s.in_used);
        payload.erase(0, sizeof head);
        s.in = std::string();
        s.in_used = 0;
      } else {
        payload = s.in.substr(pos + sizeof head, head.length);
        pos += sizeof head + head.length;
      }
      std::erase_if(s.held, [&head](const held_chunk& h) { return h.id == head.id; });
      if (head.result == outcome::setup_threw) {
        ready_.emplace_back(setup_failed{w, std::move(payload)});
      } else if (head.result == outcome::task_threw) {
        ready_.emplace_back(worker_lost{w, {head.id}, std::move(payload)});
      } else {
        deaths_in_a_row_ = 0;
        ready_.emplace_back(chunk_result{head.id, w, std::move(payload), head.compute_seconds});
      }
    }
    if (pos == 0) return;
    std::memmove(s.in.data(), s.in.data() + pos, s.in_used - pos);  // only the partial frame, not the free space
    s.in_used -= pos;
    if (s.in.size() > 4 * read_block && s.in_used < read_block) {  // after a large result
      s.in.resize(read_block);
      s.in.shrink_to_fit();
    }
  }

  /// Kills, with the reason "stalled", each worker that holds chunks and has sent nothing for longer
  /// than their items may take under the item timeout plus a margin (none without a timeout).
  void kill_stalled() {
    if (item_timeout_ <= 0.0) return;
    for (std::size_t w = 0; w < slots_.size(); ++w) {
      slot& s = slots_[w];
      if (s.proc.pid <= 0 || s.held.empty()) continue;
      std::size_t items = 0;
      for (const held_chunk& h : s.held) items += std::max<std::size_t>(1, h.count);
      const double silent = watched_seconds_ - s.heard_at;
      if (silent <= static_cast<double>(items) * item_timeout_ + stall_margin_seconds) continue;
      ::kill(s.proc.pid, SIGKILL);
      lose(w, "stalled: no answer for " + text::format("%.3g", silent) + " s");
    }
  }

  /// Reaps worker `w`, reports it lost with the chunks it held (`why`, else how it ended), and forks
  /// its replacement.
  void lose(std::size_t w, std::optional<std::string> why = std::nullopt) {
    slot& s = slots_[w];
    detail::hang_up(s.proc);
    const int status = detail::reap(s.proc.pid, lost_grace_seconds);
    worker_lost lost{static_cast<int>(w), {}, why.value_or(detail::describe_exit(status))};
    for (const held_chunk& h : s.held) lost.chunks.push_back(h.id);
    lost.timed_out = !why && item_timeout_ > 0.0 && WIFEXITED(status) && WEXITSTATUS(status) == detail::item_timed_out_status;
    s = slot{};
    std::string not_replaced;
    const std::size_t limit = 3 * slots_.size();
    if (++deaths_in_a_row_ > limit) {
      not_replaced = std::to_string(limit) + " workers died in a row without finishing a chunk";
    } else if (!start(w)) {
      not_replaced = "fork failed (" + std::string(std::strerror(errno)) + ")";
      s = slot{};
    }
    if (lost.timed_out) {
      lost.reason = "timed out after " + text::format("%g", item_timeout_) + " s (its worker was killed and " +
                    (not_replaced.empty() ? "replaced)" : "not replaced: " + not_replaced + ")");
    } else if (!not_replaced.empty()) {
      lost.reason += "; not replaced: " + not_replaced;
    }
    ready_.emplace_back(std::move(lost));
  }

  chunk_task task_;
  worker_setup setup_;
  double item_timeout_ = 0.0;         ///< Seconds an item may run (0: no limit).
  double watched_seconds_ = 0.0;      ///< Seconds spent waiting on the workers: the clock stalls are measured on.
  std::vector<slot> slots_;
  std::deque<event> ready_;           ///< Events received and not yet handed out, oldest first.
  std::size_t deaths_in_a_row_ = 0;   ///< Workers lost since the last completed chunk.
};

}  // namespace

bool fork_is_safe() {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer keeps a thread of its own once any thread has started, and forks safely past it.
  constexpr int runtime_threads = 1;
#else
  constexpr int runtime_threads = 0;
#endif
  return process_threads() <= 1 + runtime_threads;
}

std::unique_ptr<backend> make_process_backend(int workers, chunk_task task, worker_setup setup, double item_timeout) {
  return std::make_unique<process_backend>(workers, std::move(task), std::move(setup), item_timeout);
}

}  // namespace amorsize::engine
