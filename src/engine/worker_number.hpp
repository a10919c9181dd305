#pragma once
/// Setting the number current_worker() returns, for the backends (internal).

namespace amorsize::detail {

/// Makes current_worker() return `worker` in every thread of this process that has no number of its
/// own (process workers and worker ranks, and the threads their items start); clears the calling thread's.
void set_process_worker(int worker) noexcept;

/// Makes current_worker() return `worker` in the calling thread alone (a thread worker).
void set_thread_worker(int worker) noexcept;

}  // namespace amorsize::detail
