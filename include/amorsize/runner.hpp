#pragma once
/// amorsize-run's command line for any job: `plan JOB` and `run JOB` with the planner's options,
/// JSON records, progress, trace, summary and exit codes, written once for every registered job.
///
/// A job is a type that owns its options and turns them into items and a function (see `job`);
/// a program hosts jobs by adding them to a `job_registry` and handing its command line over:
///
///     int main(int argc, char** argv) {
///       amorsize::runner::job_registry jobs;
///       jobs.add<my_job>();
///       return amorsize::runner::run_command_line(jobs, argc, argv);
///     }

#include <amorsize/amorsize.hpp>

#include <nlohmann/json.hpp>

// GCC 12 reports a false null dereference inside CLI11's inlined string helpers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace amorsize::runner {

/// When, where and by whom one item ran, for the trace (jobs that know it, such as shell tasks).
struct item_timing {
  double start = 0.0;    ///< Wall-clock start, seconds since the epoch.
  double seconds = 0.0;  ///< Wall seconds it took.
  int worker = 0;        ///< The worker that ran it (amorsize::current_worker()).
  std::string host;      ///< The node it ran on.
};

/// How one result appears in its JSON record line, and whether it counts as a failure.
struct record_fields {
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();  ///< Written after "index", in this order.
  std::string failure;                               ///< Non-empty: the item failed, for this one-line reason.
  std::optional<item_timing> timing;                 ///< When set, the item is a span in the --trace.
};

/// What the runner needs of a job type `J`:
/// - `item_type` and `result_type`, both serializable (Boost.Serialization);
/// - `static constexpr std::string_view name` (its subcommand) and `summary` (one line for --help);
/// - `void add_options(CLI::App&)`: binds its own options to its members;
/// - `source<item_type> items() const`: its items (only the root's source is read);
/// - `function() const`: a callable taking an item and returning a result_type;
/// - `record_fields record(const result_type&) const`: a result as its record's fields.
///
/// Optional members, used when present:
/// - `void check() const`: runs on the root before anything else; throws input_error for bad input;
/// - `std::vector<std::string> inputs() const`: files it reads, which no output may overwrite;
/// - `std::string needs_processes() const`: non-empty (the reason) when its items need worker
///   processes (they may crash the process, or are not thread-safe): the run uses processes;
/// - `void setup() const`: runs once in each worker before its first item (pool_options::worker_setup);
/// - `static constexpr std::string_view noun`: what an item is called in messages ("tasks"; default "items").
template <class J>
concept job = std::default_initializable<J> &&
              requires(J& options_target, const J& j, CLI::App& command, const typename J::result_type& result) {
                typename J::item_type;
                typename J::result_type;
                { J::name } -> std::convertible_to<std::string_view>;
                { J::summary } -> std::convertible_to<std::string_view>;
                options_target.add_options(command);
                { j.items() } -> std::same_as<source<typename J::item_type>>;
                { j.function()(std::declval<const typename J::item_type&>()) } -> std::convertible_to<typename J::result_type>;
                { j.record(result) } -> std::same_as<record_fields>;
              };

/// Returns `text` as a number of type T in [min, max]: whole text, digits only for integers, no
/// nan or inf. Throws error(usage) when it is not a number, input_error when it is out of range,
/// both naming `option` and the range.
template <class T>
T parse_number(std::string_view text, std::string_view option, T min, T max);

namespace detail {

/// Returns the long name of an option spelled like "-o,--output": "--output", as messages name it.
inline std::string long_name(const std::string& name) { return name.substr(name.rfind(',') + 1); }

/// Adds option `name` to `command`, its text parsed strictly (see parse_number) into `target`, a T or a std::optional<T>.
template <class T, class Target>
CLI::Option* add_parsed(CLI::App& command, const std::string& name, Target& target, T min, T max, const std::string& help) {
  return command.add_option_function<std::string>(
      name,
      [&target, option = long_name(name), min, max](const std::string& text) { target = parse_number<T>(text, option, min, max); },
      help);
}

}  // namespace detail

/// Adds option `name` (e.g. "--items") to `command`, parsed strictly into `target` (see parse_number).
template <class T>
CLI::Option* add_number(CLI::App& command, const std::string& name, T& target, T min, T max, const std::string& help) {
  return detail::add_parsed(command, name, target, min, max, help)->default_str((std::ostringstream() << target).str());
}

/// Adds option `name` to `command`, parsed strictly into `target` when given (see parse_number).
template <class T>
CLI::Option* add_number(CLI::App& command, const std::string& name, std::optional<T>& target, T min, T max,
                        const std::string& help) {
  return detail::add_parsed(command, name, target, min, max, help);
}

/// Adds option `name` to `command` bound to `target`; an empty value is an input_error naming it.
CLI::Option* add_text(CLI::App& command, const std::string& name, std::string& target, const std::string& help);

namespace detail {
class job_command;
}  // namespace detail

/// The jobs a program offers on its command line, each under its name.
class job_registry {
 public:
  /// One registered job: its name, its help line, and how to make its command.
  struct entry {
    std::string name;                                             ///< The subcommand: `run NAME`.
    std::string summary;                                          ///< Its line in --help.
    std::function<std::unique_ptr<detail::job_command>()> make;  ///< A fresh job with its options unset.
  };

  /// Adds job type `J`; throws std::invalid_argument when a job of that name is already there.
  template <job J>
  job_registry& add();

  /// Returns the jobs, in the order added.
  [[nodiscard]] const std::vector<entry>& entries() const noexcept { return entries_; }

 private:
  void add_entry(entry e);
  std::vector<entry> entries_;
};

/// Parses the command line, plans or runs the job it names, prints errors as one line on the
/// root's stderr and returns the exit code (see README, "Exit codes"); `program` names the
/// executable in messages.
int run_command_line(const job_registry& jobs, int argc, char** argv, std::string_view program = "amorsize-run");

}  // namespace amorsize::runner

#include <amorsize/detail/runner.hpp>
