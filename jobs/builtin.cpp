// The built-in jobs, registered in the order --help lists them.

#include "jobs/builtin.hpp"

#include "jobs/shell_job.hpp"
#include "jobs/synthetic_job.hpp"

namespace amorsize::jobs {

runner::job_registry builtin_jobs() {
  runner::job_registry jobs;
  jobs.add<shell_job>().add<synthetic_job>();
  return jobs;
}

}  // namespace amorsize::jobs
