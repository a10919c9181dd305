#pragma once
/// Setting the number current_worker() returns and a worker process's item timeout, for the backends (internal).

namespace amorsize::detail {

/// Makes current_worker() return `worker` in every thread of this process that has no number of its
/// own (process workers and worker ranks, and the threads their items start); clears the calling thread's.
void set_process_worker(int worker) noexcept;

/// Makes current_worker() return `worker` in the calling thread alone (a thread worker).
void set_thread_worker(int worker) noexcept;

/// The exit status of a worker process whose item outlived its item timeout (as timeout(1) exits).
constexpr int item_timed_out_status = 124;

/// Makes every item_timer in the calling thread (a worker process's only one) end the process with
/// item_timed_out_status once its item has run `seconds` (0: never); uses ITIMER_REAL and SIGALRM.
void set_item_timeout(double seconds) noexcept;

}  // namespace amorsize::detail
