// Fork safety: functions that start threads (OpenMP, a thread pool of their own) planned and run on
// worker processes, and a program that already runs threads before its pool call.
#include <amorsize/amorsize.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

using namespace amorsize;
using Catch::Matchers::Contains;

namespace {

/// Items 0 .. count - 1.
std::vector<int> numbers(int count) {
  std::vector<int> items(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) items[static_cast<std::size_t>(i)] = i;
  return items;
}

/// Sums i * x over a range on OpenMP's threads (libgomp keeps its pool alive between calls).
std::int64_t openmp_sum(const int& x) {
  std::int64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) num_threads(2)
  for (int i = 0; i < 200000; ++i) sum += static_cast<std::int64_t>(i % 7) * x;
  return sum;
}

std::int64_t expected_sum(int x) {
  std::int64_t sum = 0;
  for (int i = 0; i < 200000; ++i) sum += static_cast<std::int64_t>(i % 7) * x;
  return sum;
}

/// A process-wide pool of two threads started on first use, as TBB or a BLAS starts its own.
class lazy_thread_pool {
 public:
  static lazy_thread_pool& instance() {
    static lazy_thread_pool pool;
    return pool;
  }
  std::future<std::int64_t> submit(std::function<std::int64_t()> job) {
    auto task = std::make_shared<std::packaged_task<std::int64_t()>>(std::move(job));
    {
      const std::lock_guard lock(mutex_);
      jobs_.emplace_back([task] { (*task)(); });
    }
    wake_.notify_one();
    return task->get_future();
  }

 private:
  lazy_thread_pool() {
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> job;
          {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return !jobs_.empty(); });
            job = std::move(jobs_.front());
            jobs_.pop_front();
          }
          job();
        }
      });
      threads_.back().detach();  // lives as long as the process, as such pools do
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
};

std::int64_t pooled_sum(const int& x) {
  auto& pool = lazy_thread_pool::instance();
  auto a = pool.submit([x] { return expected_sum(x) / 2; });
  auto b = pool.submit([x] { return expected_sum(x) - expected_sum(x) / 2; });
  return a.get() + b.get();
}

/// Runs `fn` through optimize and a pool of worker processes; checks every result.
template <class Fn>
void check_planned_on_processes(Fn fn, int count) {
  optimize_options options;
  options.backend = backend_kind::processes;  // the case that forks after the function ran
  const std::vector<int> items = numbers(count);
  auto result = optimize(fn, items, options);
  INFO(result.explain());
  CHECK(result.backend == backend_kind::processes);
  pool workers(result);
  const auto records = workers.map(fn, result);
  REQUIRE(records.size() == items.size());
  for (const auto& r : records) {
    REQUIRE(r.ok());
    CHECK(r.value() == expected_sum(static_cast<int>(r.index())));
  }
  CHECK(workers.last_run().backend == backend_kind::processes);
}

}  // namespace

TEST_CASE("an OpenMP function is planned and run on worker processes", "[fork]") {
  check_planned_on_processes(openmp_sum, 60);
}

TEST_CASE("a function with a thread pool of its own is planned and run on worker processes", "[fork]") {
  check_planned_on_processes(pooled_sum, 60);
}

TEST_CASE("a capturing lambda sees the state it captured, by value and by reference, in worker processes", "[fork]") {
  const std::vector<std::int64_t> weights = {3, 5, 7};
  const std::int64_t offset = 11;
  auto weigh = [&weights, offset](const int& x) { return weights[static_cast<std::size_t>(x) % 3] * x + offset; };
  const std::vector<int> items = numbers(100);
  auto result = optimize(weigh, items);
  pool_options options = pool(result).options();
  options.backend = backend_kind::processes;
  pool workers(options);
  const auto records = workers.map(weigh, result);
  REQUIRE(records.size() == items.size());
  for (const auto& r : records) {
    REQUIRE(r.ok());
    CHECK(r.value() == weights[r.index() % 3] * static_cast<std::int64_t>(r.index()) + offset);
  }
  CHECK(workers.last_run().backend == backend_kind::processes);
}

// Forking a process whose other threads may hold locks is unsafe: such a program gets threads, and is told.
TEST_CASE("a program that ran OpenMP before planning runs on threads, with a warning", "[fork]") {
  REQUIRE(openmp_sum(1) == expected_sum(1));  // libgomp's threads now live in this process
  REQUIRE(process_threads() > 1);
  const std::vector<int> items = numbers(60);
  optimize_options options;
  options.backend = backend_kind::processes;
  auto result = optimize(openmp_sum, items, options);
  INFO(result.explain());
  CHECK(result.backend == backend_kind::threads);
  CHECK(result.has_warning(warning_kind::threads_already_running));

  SECTION("a pool asked for processes switches to threads and says why") {
    std::ostringstream log;
    pool_options po;
    po.backend = backend_kind::processes;
    po.workers_per_node = {2};
    po.log = &log;
    pool workers(po);
    const auto records = workers.map(openmp_sum, items);
    REQUIRE(records.size() == items.size());
    for (const auto& r : records) CHECK(r.value() == expected_sum(static_cast<int>(r.index())));
    CHECK(workers.last_run().backend == backend_kind::threads);
    CHECK_THAT(log.str(), Contains("already runs") && Contains("threads"));
  }
}
