// A pool of threads in this process, each with its own queue of chunks.
#include <amorsize/engine/local_backends.hpp>
#include <amorsize/error.hpp>
#include <amorsize/worker.hpp>

#include "worker_number.hpp"
#include "worker_process.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace amorsize::engine {
namespace {

class thread_backend final : public backend {
 public:
  thread_backend(int workers, chunk_task task, worker_setup setup) : task_(std::move(task)), setup_(std::move(setup)) {
    if (workers < 1) throw input_error("a thread pool needs at least one worker, not " + std::to_string(workers));
    if (!task_) throw input_error("a thread pool needs a task to run");
    lanes_.reserve(static_cast<std::size_t>(workers));
    for (int w = 0; w < workers; ++w) lanes_.push_back(std::make_unique<lane>());
    int w = 0;
    try {
      for (; w < workers; ++w) lanes_[static_cast<std::size_t>(w)]->thread = std::thread([this, w] { serve(w); });
    } catch (const std::system_error& e) {
      stop();
      throw resource_error(detail::refused_message("worker thread", static_cast<std::size_t>(w), lanes_.size(),
                                                   e.code().value()));
    } catch (...) {
      stop();
      throw;
    }
  }

  thread_backend(const thread_backend&) = delete;
  thread_backend& operator=(const thread_backend&) = delete;

  ~thread_backend() override { stop(); }

  [[nodiscard]] int workers() const override { return static_cast<int>(lanes_.size()); }

  void send(int w, chunk c) override {
    if (!alive(w)) throw std::logic_error("chunk sent to thread worker " + std::to_string(w) + ", which is not alive");
    lane& l = *lanes_[static_cast<std::size_t>(w)];
    {
      const std::lock_guard lock(l.mutex);
      l.queue.push_back(std::move(c));
    }
    l.wake.notify_one();
  }

  std::optional<event> wait(double timeout_seconds) override {
    if (stopped_) return std::nullopt;  // nothing can come
    std::unique_lock lock(results_mutex_);
    if (!results_ready_.wait_until(lock, detail::deadline_after(timeout_seconds), [this] { return !results_.empty(); })) {
      return std::nullopt;
    }
    event e = std::move(results_.front());
    results_.pop_front();
    return e;
  }

  [[nodiscard]] bool alive(int w) const override { return !stopped_ && w >= 0 && w < workers(); }

  /// Joins every thread; a thread cannot be interrupted, so this waits for the chunk each one runs.
  void stop() override {
    abandon();
    for (auto& l : lanes_) {
      if (l->thread.joinable()) l->thread.join();
    }
    const std::lock_guard lock(results_mutex_);
    results_.clear();
  }

  /// Drops the chunks not started and tells every thread to end after its running chunk, without waiting.
  void abandon() override {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : lanes_) {
      {
        const std::lock_guard lock(l->mutex);
        l->stopping = true;
        l->queue.clear();
      }
      l->wake.notify_one();
    }
  }

 private:
  /// One worker thread and the chunks waiting for it.
  struct lane {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<chunk> queue;  ///< Chunks sent and not started, oldest first.
    bool stopping = false;    ///< Set by stop(): finish the running chunk, start no other.
    std::thread thread;
  };

  /// Worker `w`'s loop: run the setup, then its chunks in the order sent until stop(); a setup that
  /// throws is reported once and the worker runs nothing.
  void serve(int w) {
    detail::set_thread_worker(w);
    if (std::optional<std::string> failure = detail::try_worker_setup(setup_)) {
      report(setup_failed{w, std::move(*failure)});
      return;
    }
    lane& l = *lanes_[static_cast<std::size_t>(w)];
    for (;;) {
      chunk c;
      {
        std::unique_lock lock(l.mutex);
        l.wake.wait(lock, [&l] { return l.stopping || !l.queue.empty(); });
        if (l.stopping) return;
        c = std::move(l.queue.front());
        l.queue.pop_front();
      }
      std::string out;
      double seconds = 0.0;
      report(detail::run_task(task_, c.payload, out, seconds) ? event{chunk_result{c.id, w, std::move(out), seconds}}
                                                                : event{worker_lost{w, {c.id}, std::move(out)}});
    }
  }

  /// Hands `e` to the root's wait().
  void report(event e) {
    {
      const std::lock_guard lock(results_mutex_);
      results_.push_back(std::move(e));
    }
    results_ready_.notify_one();
  }

  chunk_task task_;
  worker_setup setup_;
  std::vector<std::unique_ptr<lane>> lanes_;
  std::mutex results_mutex_;
  std::condition_variable results_ready_;
  std::deque<event> results_;  ///< Events not yet handed out, oldest first.
  bool stopped_ = false;       ///< Only the root reads or writes it.
};

}  // namespace

std::unique_ptr<backend> make_thread_backend(int workers, chunk_task task, worker_setup setup) {
  return std::make_unique<thread_backend>(workers, std::move(task), std::move(setup));
}

}  // namespace amorsize::engine
