// amorsize-run: plans and runs built-in jobs; every failure ends with a documented exit code.

#include "commands.hpp"

#include <amorsize/session.hpp>

#include <iostream>
#include <optional>
#include <string>

namespace {

using amorsize::exit_code;

/// The names of the built-in jobs, as the command line spells them.
constexpr const char* known_jobs = "synthetic";

/// True when this process is rank 0 of a launcher or runs alone: only it prints messages.
bool prints_messages() {
  const std::optional<int> rank = amorsize::launcher_rank(amorsize::environment_variable);
  return !rank.has_value() || *rank == 0;
}

/// Throws a usage error unless `job` is a built-in job.
void check_job(const std::string& job) {
  if (job != "synthetic") {
    throw amorsize::error(exit_code::usage, "unknown job '" + job + "': the built-in jobs are: " + known_jobs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  namespace runner = amorsize::runner;
  CLI::App app{"amorsize-run: measure a workload, plan how to run it in parallel, and run it"};
  app.require_subcommand(1);
  runner::synthetic_cli synthetic;
  runner::planner_cli planner;
  runner::run_cli run;
  std::string job;

  CLI::App* plan = app.add_subcommand("plan", "Measure a built-in job and print the plan");
  plan->add_option("job", job, std::string("The job to plan: ") + known_jobs)->required();
  runner::add_synthetic_options(*plan, synthetic);
  runner::add_planner_options(*plan, planner, true);

  CLI::App* run_cmd = app.add_subcommand("run", "Plan and run a built-in job; one JSON line per item");
  run_cmd->add_option("job", job, std::string("The job to run: ") + known_jobs)->required();
  runner::add_synthetic_options(*run_cmd, synthetic);
  runner::add_planner_options(*run_cmd, planner, false);
  runner::add_run_options(*run_cmd, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (prints_messages()) std::cerr << "amorsize-run: " << e.what() << " (see amorsize-run --help)\n";
    return static_cast<int>(exit_code::usage);
  }

  try {
    check_job(job);
    return plan->parsed() ? runner::plan_command(synthetic, planner) : runner::run_command(synthetic, planner, run);
  } catch (const amorsize::error& e) {
    if (prints_messages()) std::cerr << "amorsize-run: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    if (prints_messages()) std::cerr << "amorsize-run: internal error: " << e.what() << '\n';
    return static_cast<int>(exit_code::internal);
  }
}
