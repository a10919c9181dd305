#pragma once
/// The jobs amorsize-run offers: synthetic and shell.

#include <amorsize/runner.hpp>

namespace amorsize::jobs {

/// Returns a registry with the built-in jobs; a program of its own can add its jobs beside them.
runner::job_registry builtin_jobs();

}  // namespace amorsize::jobs
