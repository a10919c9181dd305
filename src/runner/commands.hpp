#pragma once
// The runner's commands: each returns the process exit code.

#include "cli.hpp"

namespace amorsize::runner {

/// Measures the synthetic job and prints the plan (text or JSON) on the root.
int plan_command(const synthetic_cli& job, const planner_cli& planner);

/// Plans and runs the synthetic job, writing one JSON line per item and optionally a report.
int run_command(const synthetic_cli& job, const planner_cli& planner, const run_cli& run);

}  // namespace amorsize::runner
