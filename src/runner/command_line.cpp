// The command line of any set of jobs: `plan JOB` and `run JOB`, each job with its own options
// beside the planner's; every failure ends with one line on stderr, printed once by the root when every rank fails
// alike, and a documented code.

#include <amorsize/runner.hpp>

#include <chrono>
#include <iostream>
#include <regex>
#include <stdexcept>
#include <thread>

namespace amorsize::runner {
namespace {

/// How long a rank other than the root waits before printing a failure no session shared: when every rank
/// fails alike, the root prints first and the launcher ends the job within this time.
constexpr std::chrono::seconds other_rank_grace{5};

/// Prints a failure on stderr and returns its exit code. The root (or a process alone) prints at once. Another
/// rank is silent once a session exists, since the ranks then fail in step and the root prints the error; before
/// that it waits, then prints its own failure: returning at once would let the launcher end the root before the
/// root's line was written.
int report_failure(const std::string& program, const std::string& message, exit_code code) {
  const std::optional<int> rank = launcher_rank(environment_variable);
  if (!rank.has_value() || *rank == 0) {
    std::cerr << program + ": " + message + "\n" << std::flush;
  } else if (!session::alive()) {
    std::this_thread::sleep_for(other_rank_grace);
    std::cerr << program + " (rank " + std::to_string(*rank) + "): " + message + "\n" << std::flush;
  }
  return static_cast<int>(code);
}

/// Returns the jobs' names as a list for messages: "synthetic, shell".
std::string job_names(const job_registry& jobs) {
  std::string names;
  for (const auto& e : jobs.entries()) names += (names.empty() ? "" : ", ") + e.name;
  return names;
}

/// Throws a usage error when the command is not `plan` or `run` followed by one of the jobs, which
/// CLI11 would report less helpfully.
void check_job_named(const job_registry& jobs, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return;
  const std::string command = argv[1];
  if (command != "plan" && command != "run") {
    throw error(exit_code::usage, "unknown command '" + command + "': use plan or run, e.g. run " + jobs.entries().front().name +
                                      " --help");
  }
  const std::string example = " (e.g. " + command + " " + jobs.entries().front().name + " --help)";
  if (argc < 3) throw error(exit_code::usage, command + " needs a job: " + job_names(jobs) + example);
  if (argv[2][0] == '-') {
    const std::string option = argv[2];
    if (option == "-h" || option == "--help") return;
    throw error(exit_code::usage, "options go after the job: " + command + " JOB " + option + " ...; the jobs are: " +
                                      job_names(jobs) + example);
  }
  for (const auto& e : jobs.entries()) {
    if (e.name == argv[2]) return;
  }
  throw error(exit_code::usage, "unknown job '" + std::string(argv[2]) + "': the jobs are: " + job_names(jobs));
}

/// Returns CLI11's message for the common mistakes in plain words: a value missing, an option twice, a flag given a value.
std::string plain_words(const std::string& message) {
  static const std::regex missing(R"(^(-[-\w]+): 1 required \w+ missing$)");
  static const std::regex twice(R"(^(-[-\w]+): At Most 1 required but received \d+$)");
  static const std::regex flag_value(R"(^Could not convert: (-[-\w]+) = (.*)$)");
  std::smatch m;
  if (std::regex_match(message, m, flag_value)) return m[1].str() + " is a flag: it takes no value, got '" + m[2].str() + "'";
  if (std::regex_match(message, m, missing)) return m[1].str() + " needs a value";
  if (std::regex_match(message, m, twice)) return m[1].str() + " is given more than once: give it once";
  return message;
}

/// Returns CLI11's parse error `e` of `app` in plain words, with the help that lists what the
/// command parsed so far takes (`run synthetic --help` for an option of another job).
std::string usage_message(const std::string& name, const CLI::App& app, const CLI::ParseError& e) {
  std::string where = name;
  for (std::vector<CLI::App*> parsed = app.get_subcommands(); !parsed.empty(); parsed = parsed.front()->get_subcommands()) {
    where += " " + parsed.front()->get_name();
  }
  if (where == name && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    return "a command is required: " + name + " plan JOB or " + name + " run JOB (see " + name + " --help)";
  }
  return plain_words(e.what()) + " (see " + where + " --help)";
}

}  // namespace

void job_registry::add_entry(entry e) {
  for (const auto& existing : entries_) {
    if (existing.name == e.name) throw std::invalid_argument("a job named '" + e.name + "' is registered twice");
  }
  entries_.push_back(std::move(e));
}

int run_command_line(const job_registry& jobs, int argc, char** argv, std::string_view program) {
  const std::string name(program);
  if (jobs.entries().empty()) throw std::invalid_argument("run_command_line needs at least one job");
  CLI::App app{name + ": measure a workload, plan how to run it in parallel, and run it"};
  app.require_subcommand(1);
  detail::planner_cli planner;
  detail::run_cli run;
  CLI::App* plan_cmd = app.add_subcommand("plan", "Measure a job and print the plan")->require_subcommand(1);
  CLI::App* run_cmd = app.add_subcommand("run", "Plan and run a job; one JSON line per item")->require_subcommand(1);

  struct bound_job {
    CLI::App* command;
    std::unique_ptr<detail::job_command> job;
    bool runs;
  };
  std::vector<bound_job> bound;
  for (const auto& e : jobs.entries()) {
    for (CLI::App* parent : {plan_cmd, run_cmd}) {
      const bool runs = parent == run_cmd;
      bound_job b{parent->add_subcommand(e.name, e.summary), e.make(), runs};
      b.job->add_options(*b.command);
      detail::add_planner_options(*b.command, planner, !runs);
      if (runs) detail::add_run_options(*b.command, run);
      bound.push_back(std::move(b));
    }
  }

  try {
    check_job_named(jobs, argc, argv);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      return report_failure(name, usage_message(name, app, e), exit_code::usage);
    }
    for (const bound_job& b : bound) {
      if (!b.command->parsed()) continue;
      return b.runs ? b.job->run(planner, run) : b.job->plan(planner);
    }
    throw std::logic_error("no job subcommand was parsed");
  } catch (const error& e) {
    return report_failure(name, e.what(), e.code());
  } catch (const std::exception& e) {
    return report_failure(name, std::string("internal error: ") + e.what(), exit_code::internal);
  }
}

}  // namespace amorsize::runner
