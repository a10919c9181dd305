// One run's bookkeeping for any job: outputs opened before anything runs, one JSON line per
// item, progress, trace, report, the summary and the exit code.

#include <amorsize/runner.hpp>

#include "progress.hpp"
#include "record_file.hpp"
#include "trace.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <array>

namespace amorsize::runner::detail {
namespace {

/// Returns why `path` cannot be written, or an empty text; an existing file is neither truncated
/// nor changed, and a missing one is made and removed again.
std::string unwritable(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return "is a folder";
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return std::strerror(errno);
    ::close(fd);
    return {};
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(path.c_str());
  return {};
}

/// Returns what names the file at `path` whatever it is called: its device and inode when it
/// exists, else its absolute path with links resolved; "stdout" for "-"; empty for a device or
/// pipe (writing /dev/null twice harms nothing).
std::string file_identity(const std::string& path) {
  if (path == "-") return "stdout";
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISREG(info.st_mode)) return {};
    return std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
  }
  std::error_code ec;
  return std::filesystem::weakly_canonical(path, ec).string();
}

/// One output of a run (--output, --report or --trace): where it points ("-": stdout; empty: not
/// asked for) and, once opened, the stream written.
struct output {
  const char* option;
  std::string path;
  std::unique_ptr<std::ofstream> file;
  std::ostream* stream = nullptr;

  /// Returns how messages name it: its path, or "stdout".
  [[nodiscard]] std::string shown() const { return path == "-" ? "stdout" : path; }

  /// Opens it (an existing file is replaced); throws output_error when it cannot.
  void open() {
    if (path == "-") {
      stream = &std::cout;
      return;
    }
    file = std::make_unique<std::ofstream>(path);
    if (!*file) throw output_error(std::string(option) + " " + path + " cannot be opened for writing: " + std::strerror(errno));
    stream = file.get();
  }

  /// Flushes it and throws output_error when a write failed (a full disk, a closed pipe).
  void check_written() const {
    if (stream->flush()) return;
    throw output_error("writing " + std::string(option) + " " + shown() +
                       " failed: the disk is full, or the file or pipe went away; the run stopped");
  }
};

/// Returns the error policy named on the command line; throws input_error for an unknown name.
error_policy parse_policy(const std::string& name) {
  if (name == "keep-going") return error_policy::keep_going;
  if (name == "stop") return error_policy::stop;
  throw input_error("--on-error " + name + " is not a policy: use keep-going or stop");
}

/// Returns the backend asked for, if any; throws input_error for one the command line does not offer.
std::optional<backend_kind> parse_backend(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name == "processes") return backend_kind::processes;
  if (name == "threads") return backend_kind::threads;
  if (name == "serial") return backend_kind::serial;
  throw input_error("--backend " + name + " is not a backend: use processes, threads or serial (under mpirun/srun: ranks)");
}

/// The stop request the signal handler triggers (null: no run listens), and what it has seen.
std::atomic<stop_request*> signalled_stop{nullptr};
std::atomic<int> signals_seen{0};
std::atomic<int> first_signal{0};
double signal_grace = 0.0;        // set before the handler is installed, read only by it
std::string draining_message;     // likewise
std::string abandoning_message;   // likewise
static_assert(std::atomic<stop_request*>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

/// The signals that stop a run gracefully (the first) or at once (the next).
constexpr std::array stop_signals{SIGINT, SIGTERM, SIGHUP, SIGUSR1};

/// Async-signal-safe: the first signal drains the run, the next abandons what is in flight.
extern "C" void on_stop_signal(int number) {
  stop_request* stop = signalled_stop.load();
  if (stop == nullptr) return;
  const int saved_errno = errno;
  if (signals_seen.fetch_add(1) == 0) {
    first_signal.store(number);
    stop->drain(signal_grace);
    (void)!::write(STDERR_FILENO, draining_message.data(), draining_message.size());
  } else {
    stop->abandon();
    (void)!::write(STDERR_FILENO, abandoning_message.data(), abandoning_message.size());
  }
  errno = saved_errno;
}

/// Routes the stop signals to a run's stop request on the root, and makes the other ranks ignore
/// them (the root stops them), for as long as it lives.
class stop_signals_guard {
 public:
  stop_signals_guard(stop_request& stop, bool root, double grace, const std::string& noun) {
    signal_grace = grace;
    draining_message = "\namorsize: stopping: no new " + noun + " start; those running get up to " + format_grace(grace) +
                       " to finish (a second signal abandons them); then records and report are written\n";
    abandoning_message = "\namorsize: abandoning the " + noun + " still running; they run again on --resume\n";
    signals_seen = 0;
    first_signal = 0;
    signalled_stop = &stop;
    struct sigaction action {};
    action.sa_handler = root ? on_stop_signal : SIG_IGN;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (std::size_t i = 0; i < stop_signals.size(); ++i) ::sigaction(stop_signals[i], &action, &previous_[i]);
  }
  ~stop_signals_guard() {
    for (std::size_t i = 0; i < stop_signals.size(); ++i) ::sigaction(stop_signals[i], &previous_[i], nullptr);
    signalled_stop = nullptr;
  }
  stop_signals_guard(const stop_signals_guard&) = delete;
  stop_signals_guard& operator=(const stop_signals_guard&) = delete;

 private:
  static std::string format_grace(double grace) {
    return (std::ostringstream() << grace << " s").str();
  }
  std::array<struct sigaction, stop_signals.size()> previous_{};
};

/// Returns the name of signal `number` ("SIGTERM").
std::string signal_name(int number) {
  switch (number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal " + std::to_string(number);
  }
}

/// Returns the report's "signal": the name of the first stop signal, null when none came.
nlohmann::ordered_json signal_json() {
  return first_signal != 0 ? nlohmann::ordered_json(signal_name(first_signal)) : nlohmann::ordered_json(nullptr);
}

/// Under MPI, gives every rank the root's `failure` and its exit `code`; throws it where non-empty.
void share_failure(std::string failure, int code) {
  session& where = session::current();
  if (where.mpi()) {
    failure = where.broadcast(failure.empty() ? std::string() : std::to_string(code) + ' ' + failure);
    if (!failure.empty()) {
      const std::size_t space = failure.find(' ');
      code = std::stoi(failure.substr(0, space));
      failure.erase(0, space + 1);
    }
  }
  if (!failure.empty()) throw error(static_cast<exit_code>(code), failure);
}

}  // namespace

struct run_reporter::impl {
  const planner_cli& planner;
  const run_cli& options;
  std::string noun;
  session& where = session::current();
  error_policy policy = error_policy::keep_going;
  std::optional<backend_kind> backend;

  output records{"--output", {}, nullptr, nullptr};
  output report{"--report", {}, nullptr, nullptr};
  output trace_file{"--trace", {}, nullptr, nullptr};
  std::string processes_reason;  // why the job needs worker processes (empty: it does not)
  bool job_stops_own_items = false;
  record_file out;               // the records, written through --output
  kept_records kept;             // what the output held when resumed
  stop_request stop;             // triggered by a stop signal or --max-failures
  std::optional<stop_signals_guard> signals;
  bool stopped_by_failures = false;
  std::size_t max_failures = 0;  // 0: no limit
  double max_failure_share = 0;  // --max-failures P%: P / 100 of all items (0: none)
  run_stats stats;               // summed over the run and its rounds of retries
  int rounds = 0;                // pool calls added to `stats`
  std::unique_ptr<trace_writer> trace;
  std::unique_ptr<progress_meter> progress;
  int root_track = -1;
  int sampler_track = -1;
  std::map<int, int> rank_of_worker;  // learnt from the chunk spans, so a worker's tasks share its chunks' track
  std::string host = node_name();

  double start = monotonic_seconds();
  double epoch_minus_monotonic = wall_clock_seconds() - monotonic_seconds();
  double planned_at = 0.0;
  double sampling_seconds = 0.0;
  double last_sent = 0.0;
  double root_cpu_start = 0.0;
  std::size_t done = 0;
  std::size_t failed = 0;
  std::optional<std::size_t> total;
  int workers = 1;
  std::string first_failure;
  std::size_t sampled = 0;
  std::size_t sampled_failures = 0;
  std::string first_sampled_failure;

  impl(const planner_cli& p, const run_cli& r, std::string n) : planner(p), options(r), noun(std::move(n)) {}

  /// Returns "task 17 (index 16): exited 1": how messages name a failed item.
  [[nodiscard]] std::string describe(std::size_t index, const std::string& failure) const {
    return singular(noun) + " " + std::to_string(index + 1) + " (index " + std::to_string(index) + "): " + failure;
  }

  /// Wall-clock seconds since the epoch of a monotonic_seconds() reading.
  [[nodiscard]] double epoch_of(double monotonic) const { return monotonic + epoch_minus_monotonic; }

  /// Returns the track of a worker: a process per node, a thread per worker.
  int worker_track(const std::string& node, int worker, int rank) {
    std::string name = "worker " + std::to_string(worker);
    if (rank >= 0) name += " (rank " + std::to_string(rank) + ")";
    return trace->track(node.empty() ? host : node, name);
  }

  /// Opens the records' output: continued (--resume) or replaced.
  void open_records() {
    if (options.resume) out.open_to_resume(records.path, kept);
    else out.open(records.path);
  }

  /// Opens the records' output and the trace (at the start of the run proper, so that a run that
  /// stops before it leaves an existing file as it was).
  void open_outputs() {
    open_records();
    if (trace_file.path.empty()) return;
    trace_file.open();
    trace = std::make_unique<trace_writer>(*trace_file.stream, epoch_of(start));
    root_track = trace->track(host, "root");
    sampler_track = trace->track(host, "sampler");
  }

  /// Throws input_error when --output cannot take this run's records: it holds records and neither
  /// --resume nor --overwrite says what to do with them, or --resume has nothing it can read back.
  void check_records_output() const {
    const std::string& path = records.path;
    if (path == "-") {
      if (options.resume) throw input_error("--resume continues the records of an --output FILE: give the file of the run to continue");
      return;
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return;  // a new file
    if (options.resume && !S_ISREG(info.st_mode)) {
      throw input_error("--resume continues the records of an --output FILE, and " + path + " is not a regular file");
    }
    if (!S_ISREG(info.st_mode) || info.st_size == 0 || options.resume || options.overwrite) return;
    throw input_error("--output " + path + " already holds records (" + std::to_string(info.st_size) +
                      " bytes): continue that run with --resume, or replace them with --overwrite");
  }

  /// Counts one record and redraws the progress when it is due.
  void count(bool ok) {
    ++done;
    if (!ok) ++failed;
    if (progress) progress->update(counts());
  }

  [[nodiscard]] progress_counts counts() const {
    progress_counts c;
    c.done = done;
    c.failed = failed;
    c.total = total;
    c.workers = workers;
    c.elapsed = monotonic_seconds() - start;
    return c;
  }
};

run_reporter::run_reporter(const planner_cli& planner, const run_cli& run, std::string noun, const job_needs& job)
    : impl_(std::make_unique<impl>(planner, run, std::move(noun))) {
  impl& m = *impl_;
  m.policy = parse_policy(run.on_error);
  m.backend = parse_backend(run.backend);
  if (m.backend && *m.backend != backend_kind::serial && m.where.mpi()) {
    throw input_error("--backend " + run.backend + " applies without a launcher: under mpirun or srun the ranks are "
                      "the workers (--backend serial runs every item on the root)");
  }
  (void)planner.options();  // every rank rejects bad planner options alike, before the root opens anything
  m.records.path = run.output.empty() ? "-" : run.output;
  m.report.path = run.report;
  m.trace_file.path = run.trace;
  m.processes_reason = job.needs_processes;
  m.job_stops_own_items = job.stops_own_items;
  if (const std::string& limit = run.max_failures; !limit.empty()) {
    // Either form's error names both: a count N, or a share P% of all items.
    try {
      if (limit.back() == '%') {
        m.max_failure_share = parse_number(std::string_view(limit).substr(0, limit.size() - 1), "--max-failures", 0.001, 100.0) / 100;
      } else {
        m.max_failures = parse_number<std::size_t>(limit, "--max-failures", 1, std::numeric_limits<std::size_t>::max());
      }
    } catch (const error& e) {
      throw error(e.code(), "--max-failures must be a count of failed " + m.noun + " (a whole number, 1 or more) or a share " +
                                "of all of them (0.001% to 100%, e.g. 5%), got '" + limit + "'");
    }
  }
  // Only the root writes and reads the input: its failure ends every rank with its error, never a hang.
  check_on_root([&] {
    if (job.check) job.check();
    check_outputs(job.inputs);
    if (run.resume) m.kept = read_records(m.records.path, run.retry_failed);
  });
  m.signals.emplace(m.stop, m.where.is_root(), run.grace, m.noun);
  if (!m.where.is_root()) return;

  // Records on a terminal and a progress line redrawn over them would garble each other.
  const bool records_on_terminal = m.records.path == "-" && isatty(STDOUT_FILENO) == 1;
  const progress_style style =
      choose_progress_style(run.progress, isatty(STDERR_FILENO) == 1 && !records_on_terminal, run.progress_interval);
  if (style != progress_style::off) {
    m.progress = std::make_unique<progress_meter>(std::cerr, style, run.progress_interval.value_or(default_progress_interval_seconds), m.noun);
  }
}

void run_reporter::check_outputs(const std::vector<std::string>& inputs) const {
  const impl& m = *impl_;
  std::vector<const output*> outputs;
  for (const output* o : {&m.records, &m.report, &m.trace_file}) {
    if (!o->path.empty()) outputs.push_back(o);
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const output& o = *outputs[i];
    const std::string id = file_identity(o.path);
    for (std::size_t j = 0; j < i && !id.empty(); ++j) {
      if (file_identity(outputs[j]->path) == id) {
        throw input_error(std::string(outputs[j]->option) + " and " + o.option + " both name " + o.shown() +
                          ": give each its own file");
      }
    }
    for (const std::string& input : inputs) {
      if (!id.empty() && file_identity(input) == id) {
        throw input_error(std::string(o.option) + " " + o.path + " is the input " + input +
                          ": the run would overwrite its own task list; write somewhere else");
      }
    }
    if (outputs[i] == &m.records) m.check_records_output();
    if (o.path == "-") continue;
    if (const std::string why = unwritable(o.path); !why.empty()) {
      throw input_error(std::string(o.option) + " " + o.path + " cannot be opened for writing: " + why +
                        " (check the folder exists)");
    }
  }
}


run_reporter::~run_reporter() = default;

optimize_options run_reporter::planning_options() const {
  optimize_options o = impl_->planner.options();
  o.backend = impl_->backend;
  o.stop = &impl_->stop;  // a signal during sampling ends it
  require_processes(o, impl_->processes_reason);
  return o;
}

void run_reporter::sampled_failure(std::size_t index, const std::string& failure) {
  if (impl_->sampled_failures++ == 0) impl_->first_sampled_failure = impl_->describe(index, failure);
}

void run_reporter::planned(const plan& p, std::size_t sampled, bool more_to_run) {
  impl& m = *impl_;
  m.planned_at = monotonic_seconds();
  m.sampled = sampled;
  m.sampling_seconds = p.profile.sampling_seconds;
  m.total = p.profile.total_items;
  m.workers = p.serial ? 1 : p.n_jobs;
  // Stop only when tasks beyond the sampled ones are left (a list that was sampled whole has run)
  // and no retries were asked for (with them, first attempts are expected to fail at times).
  check_on_root([&] {
    if (sampled > 0 && m.sampled_failures == sampled && more_to_run && m.options.retries == 0) {
      throw sample_error("every sampled " + singular(m.noun) + " failed (" + std::to_string(sampled) + " of " +
                         std::to_string(sampled) + "), so the rest were not started; first: " + m.first_sampled_failure);
    }
    if (m.max_failure_share > 0) {
      if (!m.total) throw input_error("--max-failures " + m.options.max_failures + " needs a known number of " + m.noun + ": give a count instead");
      const double all = static_cast<double>(*m.total + m.kept.kept);
      m.max_failures = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(m.max_failure_share * all)));
    }
    m.open_outputs();
  });
  if (m.trace) {
    const double planning_start = m.start + m.sampling_seconds;
    m.trace->span(m.root_track, "sampling", "plan", m.epoch_of(m.start), m.sampling_seconds,
                  {{"items", sampled}, {"failed", m.sampled_failures}});
    m.trace->span(m.root_track, "planning", "plan", m.epoch_of(planning_start), m.planned_at - planning_start,
                  {{"workers", m.workers}, {"chunksize", p.chunksize}, {"predicted_speedup", p.estimated_speedup}});
  }
}

pool_options run_reporter::running_options(const plan& p) {
  impl& m = *impl_;
  pool_options po = pool(p).options();
  po.on_error = error_policy::keep_going;  // run_job applies --on-error to failures of every kind, after retries
  po.verbose = m.planner.verbose;
  po.on_chunk = [&m](const chunk_span& c) {
    m.last_sent = std::max(m.last_sent, c.sent);
    if (!m.trace) return;
    m.rank_of_worker[c.worker] = c.rank;
    m.trace->span(m.worker_track(c.host, c.worker, c.rank), "chunk " + std::to_string(c.id), "chunk", m.epoch_of(c.sent),
                  c.received - c.sent,
                  {{"first_index", c.first_index}, {"items", c.count}, {"compute_seconds", c.compute_seconds}});
  };
  po.stop = &m.stop;
  if (m.options.timeout && !m.job_stops_own_items) po.item_timeout = *m.options.timeout;
  m.root_cpu_start = thread_cpu_seconds();
  return po;
}

bool run_reporter::interrupted() const { return impl_->stop.requested() && !impl_->stopped_by_failures; }

bool run_reporter::stops_at_first_failure() const { return impl_->policy == error_policy::stop; }

bool run_reporter::may_retry(int attempt) const {
  return attempt <= impl_->options.retries && !impl_->stop.requested();
}

namespace {

/// Returns the record line of item `index` (without its newline); `attempt` is written when retries are on.
std::string record_line(std::size_t index, const std::string& record_key, std::optional<int> attempt,
                        record_fields&& fields) {
  nlohmann::ordered_json line = {{"index", index}, {"key", record_key}};
  if (attempt) line["attempt"] = *attempt;
  for (auto& [key, value] : fields.fields.items()) line[key] = std::move(value);
  if (!fields.failure.empty()) line["error"] = fields.failure;
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

double record_seconds(const std::function<keyed_record()>& make) {
  constexpr int least = 64;
  constexpr int most = 4096;
  constexpr double budget = 2e-3;
  std::size_t bytes = 0;  // stored below, so the lines are not optimized away
  const double start = monotonic_seconds();
  int made = 0;
  double elapsed = 0.0;
  while (made < most && (made < least || elapsed < budget)) {
    auto [key, fields] = make();
    bytes += record_line(static_cast<std::size_t>(made), key, std::nullopt, std::move(fields)).size();
    ++made;
    elapsed = monotonic_seconds() - start;
  }
  const volatile std::size_t kept = bytes;
  static_cast<void>(kept);
  return elapsed / made;
}

void run_reporter::record(std::size_t index, const std::string& record_key, int attempt, record_fields&& fields) {
  impl& m = *impl_;
  const bool ok = fields.failure.empty();
  if (!ok && m.failed == 0) m.first_failure = m.describe(index, fields.failure);
  // record_line takes the fields' values only: the timing stays for the trace.
  m.out.add(record_line(index, record_key, m.options.retries > 0 ? std::optional<int>(attempt) : std::nullopt,
                        std::move(fields)));
  if (m.trace && fields.timing) {
    const item_timing& t = *fields.timing;
    // The sampled items ran in the sampler, on the root's node; the others on their worker.
    const auto rank = m.rank_of_worker.find(t.worker);
    const int track = index < m.sampled ? m.sampler_track
                                        : m.worker_track(t.host, t.worker, rank == m.rank_of_worker.end() ? -1 : rank->second);
    m.trace->span(track, singular(m.noun) + " " + std::to_string(index + 1), m.noun,
                  t.start, t.seconds, {{"index", index}, {"ok", ok}});
  }
  m.count(ok);
  if (!ok && m.max_failures > 0 && m.failed >= m.max_failures && !m.stop.requested()) {
    m.stopped_by_failures = true;
    m.stop.drain(std::numeric_limits<double>::infinity());
  }
}

void run_reporter::chunk_done() {
  // At most one write per few milliseconds, so a chunk size of 1 does not cost a write per item.
  constexpr double min_seconds_between_writes = 0.005;
  impl_->out.flush_every(min_seconds_between_writes);
}

void run_reporter::add_stats(const run_stats& stats) {
  run_stats& sum = impl_->stats;
  if (impl_->rounds++ == 0) {
    sum = stats;
    return;
  }
  sum.chunks += stats.chunks;
  sum.lost_workers += stats.lost_workers;
  sum.peak_outstanding = std::max(sum.peak_outstanding, stats.peak_outstanding);
  sum.compute_seconds += stats.compute_seconds;
  sum.root_cpu_seconds += stats.root_cpu_seconds;
  sum.wall_seconds += stats.wall_seconds;
  sum.replans.insert(sum.replans.end(), stats.replans.begin(), stats.replans.end());
}

const finished_items& run_reporter::finished() const { return impl_->kept.finished; }

namespace {

/// The dispatcher's changes to the chunk schedule, for the report.
nlohmann::ordered_json replans_json(const std::vector<replan>& replans) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const replan& r : replans) {
    out.push_back({{"at_seconds", r.at_seconds}, {"items_done", r.items_done},
                   {"old", std::string(to_string(r.old_kind)) + " " + std::to_string(r.old_chunksize)},
                   {"new", std::string(to_string(r.new_kind)) + " " + std::to_string(r.new_chunksize)},
                   {"old_workers", r.old_workers}, {"new_workers", r.new_workers},
                   {"eta_seconds", r.eta_seconds}, {"reason", r.reason}});
  }
  return out;
}

}  // namespace

int run_reporter::finish(const plan& p) {
  impl& m = *impl_;
  const run_stats& stats = m.stats;
  const double end = monotonic_seconds();
  if (!m.where.is_root()) return 0;
  m.out.close();
  if (m.progress) m.progress->finish(m.counts());
  if (m.trace) {
    m.trace->finish();
    m.trace_file.check_written();
  }

  run_summary summary;
  summary.noun = m.noun;
  summary.items = m.done;  // the job's own failures (a task that exited 1) are not the pool's errors
  summary.failed = m.failed;
  summary.wall_seconds = end - m.start;
  summary.sampling_seconds = m.sampling_seconds;
  summary.planning_seconds = std::max(0.0, m.planned_at - m.start - m.sampling_seconds);
  summary.running_seconds = end - m.planned_at;
  summary.tail_seconds = m.last_sent > 0.0 ? std::max(0.0, end - m.last_sent) : 0.0;
  // The plan predicts its run with the sampled calls in it; the planning spent before the run
  // counts too, as it does in the measured speedup.
  const double planned_run = p.serial ? p.profile.serial_seconds : p.profile.parallel_seconds;
  summary.predicted_speedup = whole_run_speedup(p.profile.work_seconds, planned_run, summary.planning_seconds,
                                                p.serial ? 1.0 : p.estimated_speedup);
  const double compute = stats.compute_seconds + m.sampling_seconds;
  summary.measured_speedup = summary.wall_seconds > 0.0 ? compute / summary.wall_seconds : 0.0;
  summary.workers = stats.workers > 0 ? stats.workers : 1;
  summary.backend = std::string(to_string(stats.backend));
  summary.output = m.records.shown();
  summary.first_failure = m.first_failure;

  const bool stopped_by_signal = interrupted();
  // Items never started, when their number is known.
  const bool known_total = m.total.has_value();
  const std::size_t not_run = known_total ? *m.total - std::min(*m.total, m.done) : 0;
  if (!m.report.path.empty()) {
    nlohmann::ordered_json report = {
        {"items", m.done},
        {"errors", m.failed},
        {"chunks", stats.chunks},
        {"backend", summary.backend},
        {"workers", stats.workers},
        {"lost_workers", stats.lost_workers},
        {"wall_seconds", summary.wall_seconds},
        {"sampling_seconds", summary.sampling_seconds},
        {"planning_seconds", summary.planning_seconds},
        {"running_seconds", summary.running_seconds},
        {"tail_seconds", summary.tail_seconds},
        {"compute_seconds", compute},
        {"predicted_speedup", summary.predicted_speedup},
        {"measured_speedup", summary.measured_speedup},
        {"root_cpu_seconds", thread_cpu_seconds() - m.root_cpu_start},
        {"dispatch_cpu_seconds", stats.root_cpu_seconds},
        {"peak_outstanding_items", stats.peak_outstanding},
        {"replans", replans_json(stats.replans)},
        {"peak_root_memory_bytes", peak_memory_bytes()},
        {"first_failure", m.first_failure},
        {"kept_items", m.kept.kept},
        {"kept_errors", m.kept.kept_failures},
        {"interrupted", stopped_by_signal},
        {"signal", stopped_by_signal ? signal_json() : nullptr},
        {"abandoned", m.stop.abandoned()},
        {"stopped_by_max_failures", m.stopped_by_failures},
        {"not_run", known_total ? nlohmann::ordered_json(not_run) : nullptr},
        {"plan", nlohmann::ordered_json::parse(p.to_json().dump())},
    };
    write_atomically(m.report.path, report.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n",
                     m.report.option);
  }
  if (!m.options.quiet) {
    std::cerr << format_summary(summary);
    if (m.kept.kept > 0) {
      std::cerr << "amorsize: resumed: " << count_text(m.kept.kept, m.noun) << " kept from " << summary.output << " ("
                << m.kept.kept_failures << " of them failed)\n";
    }
  }
  const std::string not_run_text = known_total ? count_text(not_run, m.noun) + " not run" : m.noun + " left";
  if (stopped_by_signal) {
    std::cerr << "amorsize: stopped by " << signal_name(first_signal) << " after " << count_text(m.done, m.noun)
              << (m.stop.abandoned() ? ", abandoning those in flight" : "") << "; " << not_run_text << "; the records in "
              << summary.output << " are whole: run the same command with --resume to finish\n";
    return static_cast<int>(exit_code::interrupted);
  }
  if (m.stopped_by_failures) {
    std::cerr << "amorsize: stopped after " << count_text(m.failed, "failed " + m.noun) << " (--max-failures " << m.options.max_failures
              << "); " << not_run_text << ": fix the cause, then run the same command with --resume --retry-failed\n";
  }
  if (m.failed == 0 && m.kept.kept_failures == 0) return 0;
  if (m.failed > 0) std::cerr << "amorsize: " << format_failure_line(summary) << '\n';
  else std::cerr << "amorsize: " << m.kept.kept_failures << " error records kept from " << summary.output
                 << ": --resume --retry-failed runs their " << m.noun << " again\n";
  return static_cast<int>(exit_code::items_failed);
}

int run_reporter::nothing_to_run(std::size_t kept) {
  impl& m = *impl_;
  if (!m.where.is_root()) return 0;
  m.open_records();  // no new records: a resumed file made whole, or a complete, empty one
  m.out.close();
  if (!m.report.path.empty()) {
    const nlohmann::ordered_json report = {{"items", 0},          {"errors", 0},
                                           {"kept_items", kept},  {"kept_errors", m.kept.kept_failures},
                                           {"interrupted", false}, {"not_run", 0}};
    write_atomically(m.report.path, report.dump(2) + "\n", m.report.option);
  }
  if (kept == 0) {
    std::cerr << "amorsize: no " << m.noun << " to run: the input is empty; nothing was started\n";
    return 0;
  }
  std::cerr << "amorsize: all " << kept << ' ' << m.noun << " already have records in " << m.out.shown()
            << "; nothing was started\n";
  if (m.kept.kept_failures == 0) return 0;
  std::cerr << "amorsize: " << m.kept.kept_failures << " of them are error records: --resume --retry-failed runs them again\n";
  return static_cast<int>(exit_code::items_failed);
}

int run_reporter::stopped_while_sampling(std::size_t kept, std::optional<std::size_t> not_run) {
  impl& m = *impl_;
  if (!m.where.is_root()) return 0;
  // The output was not opened yet: it stays as it was (a file to resume, or none).
  if (!m.report.path.empty()) {
    const nlohmann::ordered_json report = {
        {"items", 0},
        {"errors", 0},
        {"kept_items", kept},
        {"kept_errors", m.kept.kept_failures},
        {"interrupted", true},
        {"signal", signal_json()},
        {"abandoned", m.stop.abandoned()},
        {"not_run", not_run ? nlohmann::ordered_json(*not_run) : nullptr}};
    write_atomically(m.report.path, report.dump(2) + "\n", m.report.option);
  }
  std::cerr << "amorsize: stopped by " << signal_name(first_signal) << " while sampling, before any "
            << singular(m.noun) << " finished; " << m.records.shown() << " is left as it was: run the same command"
            << (m.options.resume ? "" : " (with --resume if it already holds records)") << " to start again\n";
  return static_cast<int>(exit_code::interrupted);
}

std::size_t root_count(std::size_t count) {
  session& where = session::current();
  return where.mpi() ? std::stoul(where.broadcast(std::to_string(count))) : count;
}


void check_on_root(const std::function<void()>& check) {
  std::string failure;
  int code = 0;
  if (check && session::current().is_root()) {
    try {
      check();
    } catch (const error& e) {
      failure = e.what();
      code = static_cast<int>(e.code());
    }
  }
  share_failure(failure, code);
}

void print_plan(const plan& p, const planner_cli& planner) {
  if (!session::current().is_root()) return;
  if (planner.json) std::cout << p.to_json().dump(2) << '\n';
  else std::cout << p.explain();
}

}  // namespace amorsize::runner::detail
