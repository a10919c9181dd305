#pragma once
/// Errors amorsize reports, each carrying the process exit code the runner uses for it.

#include <stdexcept>
#include <string>

namespace amorsize {

/// Exit codes of `amorsize-run`; the README lists them with their causes.
enum class exit_code : int {
  ok = 0,              ///< The command did what was asked.
  usage = 2,           ///< The command line is not understood: unknown job or option, a value that is not a number.
  bad_input = 3,       ///< A value out of range, or options that do not fit together (--items -3, sample size 0).
  empty_source = 4,    ///< The source had no items to sample.
  sample_failed = 5,   ///< The function threw on every sampled item.
  mpi_failure = 6,     ///< The MPI environment could not be used (launcher present but init failed, ...).
  items_failed = 7,    ///< The run finished but some items failed; each has an error record.
  source_failed = 8,   ///< The input source threw while it was read; records of items read before it were delivered.
  out_of_resources = 9,///< The system refused another process or thread (fork or thread creation failed).
  setup_failed = 10,   ///< The per-worker setup threw in a worker (or the sampler), so the run stopped.
  output_failed = 11,  ///< An output (records, report, trace) could not be written: a full disk, a closed pipe.
  interrupted = 12,    ///< A signal (SIGINT, SIGTERM, SIGHUP, SIGUSR1) stopped the run; its records are whole: continue it with --resume.
  internal = 70,       ///< A bug in amorsize: please report it with the command line.
};

/// Base of every error amorsize throws on purpose; `what()` is one line naming the problem and the fix.
class error : public std::runtime_error {
 public:
  /// Creates an error with its exit code and a one-line message.
  error(exit_code code, const std::string& message) : std::runtime_error(message), code_(code) {}

  /// Returns the exit code the runner should end with.
  [[nodiscard]] exit_code code() const noexcept { return code_; }

 private:
  exit_code code_;
};

/// Thrown for a value out of range or a combination of options that cannot work.
class input_error : public error {
 public:
  /// Creates an input error with a one-line message naming the option and what to do.
  explicit input_error(const std::string& message) : error(exit_code::bad_input, message) {}
};

/// Thrown when the source yields no item to sample.
class empty_source_error : public error {
 public:
  /// Creates an empty-source error.
  explicit empty_source_error(const std::string& message) : error(exit_code::empty_source, message) {}
};

/// Thrown when the function threw on every sampled item, so nothing can be measured.
class sample_error : public error {
 public:
  /// Creates a sampling error whose message names the failing positions and the first cause.
  explicit sample_error(const std::string& message) : error(exit_code::sample_failed, message) {}
};

/// Thrown when the input source itself throws while it is read (not the function on an item).
class source_error : public error {
 public:
  /// Creates a source error whose message names the position and the source's own message.
  explicit source_error(const std::string& message) : error(exit_code::source_failed, message) {}
};

/// Thrown when the system refuses to start another worker process or thread.
class resource_error : public error {
 public:
  /// Creates a resource error whose message names the limit and what to do.
  explicit resource_error(const std::string& message) : error(exit_code::out_of_resources, message) {}
};

/// Thrown when an output of a run cannot be written (amorsize-run's --output, --report, --trace).
class output_error : public error {
 public:
  /// Creates an output error whose message names the output and why.
  explicit output_error(const std::string& message) : error(exit_code::output_failed, message) {}
};

/// Thrown when a stop request (a signal, in amorsize-run) ended sampling before any sampled call returned.
class stopped_error : public error {
 public:
  /// Creates a stopped error whose message says what was cut short.
  explicit stopped_error(const std::string& message) : error(exit_code::interrupted, message) {}
};

/// Thrown when the per-worker setup (pool_options::worker_setup, optimize_options::worker_setup)
/// throws in a worker; the run stops, and the failure is reported once, not per item.
class setup_error : public error {
 public:
  /// Creates a setup error with a one-line message naming the worker and the setup's own message.
  explicit setup_error(const std::string& message) : error(exit_code::setup_failed, message) {}

  /// Creates the error for worker number `worker` (0 in the sampler) whose setup threw `reason`.
  static setup_error in_worker(int worker, const std::string& reason) {
    return setup_error("worker " + std::to_string(worker) + " setup failed: " + reason +
                       " (the per-worker setup threw; fix it or run without it)");
  }
};

}  // namespace amorsize
