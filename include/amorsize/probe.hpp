#pragma once
/// Facts about the machine this process runs on: cores, memory, limits and the Slurm allocation.

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace amorsize {

/// What Slurm says this job may use on this node; `present` is false outside a Slurm job.
struct slurm_allocation {
  bool present = false;       ///< True when SLURM_JOB_ID is set.
  std::string job_id;         ///< SLURM_JOB_ID.
  int cpus_on_node = 0;       ///< SLURM_CPUS_ON_NODE (0 when unset).
  int ntasks = 0;             ///< SLURM_NTASKS (0 when unset).
  int ntasks_per_node = 0;    ///< SLURM_NTASKS_PER_NODE, or this node's entry of SLURM_TASKS_PER_NODE.
  int cpus_per_task = 0;      ///< SLURM_CPUS_PER_TASK (0 when unset).
  int nnodes = 0;             ///< SLURM_JOB_NUM_NODES (0 when unset).
  int node_id = 0;            ///< SLURM_NODEID.
};

/// Everything the planner needs to know about one node.
struct node_facts {
  std::string hostname;                 ///< Name of the node.
  int physical_cores = 1;               ///< Cores this process may run on (hwloc, within the affinity mask).
  int logical_cores = 1;                ///< Hardware threads this process may run on.
  int numa_nodes = 1;                   ///< NUMA nodes seen by hwloc.
  int affinity_cpus = 0;                ///< CPUs in this process's affinity mask (sched_getaffinity).
  double cpu_quota = 0.0;               ///< cgroup CPU quota in CPUs (0 = no quota).
  std::uint64_t total_memory = 0;       ///< Bytes of RAM, or the cgroup memory limit if lower.
  std::uint64_t available_memory = 0;  ///< Bytes that can be allocated now (MemAvailable, cut by the cgroup limit).
  slurm_allocation slurm;               ///< The Slurm allocation, if any.
  int usable_cores = 1;                 ///< Cores worth planning on: physical cores cut by quota and Slurm CPUs.
  double load_average = 0.0;            ///< Threads running or waiting for a CPU, 1-minute average (/proc/loadavg) when probed.
  double probe_seconds = 0.0;           ///< Time the first probe took.
};

/// Probes this node once per process (hwloc, /proc, cgroups, environment) and returns the cached facts.
const node_facts& probe_node();

/// Probes this node again, ignoring the cache.
node_facts probe_node_uncached();

/// Looks up an environment variable; returns nullopt when unset.
using env_lookup = std::function<std::optional<std::string>(std::string_view)>;

/// Looks a variable up in this process's environment; nullopt when unset.
std::optional<std::string> environment_variable(std::string_view name);

/// Returns the name of this node as records and traces show it: $SLURMD_NODENAME inside a Slurm
/// job step (simulated nodes share one hostname), else the hostname.
std::string node_name();

/// Reads a whole file by path; returns nullopt when it is absent or unreadable.
using file_reader = std::function<std::optional<std::string>(const std::string& path)>;

/// Reads a small file (a /proc or cgroup file) whole; returns nullopt when it is absent or unreadable.
std::optional<std::string> read_small_file(const std::string& path);

/// The cgroups this process belongs to, from /proc/self/cgroup.
struct cgroup_membership {
  std::string unified = "/";                           ///< Path in the v2 (unified) hierarchy.
  std::map<std::string, std::string, std::less<>> v1;  ///< Path per v1 controller ("cpu", "memory", ...).

  /// Returns the v1 path of `controller`, or the root when the process is not in that hierarchy.
  [[nodiscard]] std::string v1_path(std::string_view controller) const;
};

/// Parses /proc/self/cgroup lines "id:controller,controller:path" ("0::path" is the v2 hierarchy).
cgroup_membership parse_proc_self_cgroup(std::string_view text);

/// The tightest limits that this process's cgroups and their ancestors set.
struct cgroup_limits {
  double cpu_quota = 0.0;  ///< CPUs (0 = no quota).
  std::uint64_t memory_limit = std::numeric_limits<std::uint64_t>::max();     ///< Bytes (max = no limit).
  std::uint64_t memory_headroom = std::numeric_limits<std::uint64_t>::max();  ///< Bytes left under the limits (limit minus usage; max = no limit).
};

/// Reads /proc/self/cgroup and walks the v2 and v1 hierarchies under /sys/fs/cgroup from this
/// process's cgroup up to the mount, reading every file through `read`; absent or unreadable files
/// set no limit, and the tightest limit found wins.
cgroup_limits read_cgroup_limits(const file_reader& read);

/// Parses cgroup v2 `cpu.max` ("max 100000" -> 0, "200000 100000" -> 2.0).
double parse_cgroup_v2_cpu_max(std::string_view text);

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` ("-1" -> 0, "150000","100000" -> 1.5).
double parse_cgroup_v1_cpu_quota(std::string_view quota_us, std::string_view period_us);

/// Counts the CPUs in a Linux CPU list such as "0-3,8,10-11" (-> 7); throws input_error when malformed.
int count_cpu_list(std::string_view list);

/// Returns MemAvailable (or MemFree + Cached when absent) in bytes from /proc/meminfo text.
std::uint64_t parse_meminfo_available(std::string_view meminfo);

/// Returns MemTotal in bytes from /proc/meminfo text.
std::uint64_t parse_meminfo_total(std::string_view meminfo);

/// Returns the 1-minute load average from /proc/loadavg text ("0.52 0.58 0.59 1/467 12345" -> 0.52).
double parse_loadavg(std::string_view text);

/// Parses a cgroup memory limit ("max" or a huge v1 value -> nullopt, else bytes).
std::optional<std::uint64_t> parse_cgroup_memory_limit(std::string_view text);

/// Expands a Slurm task count list such as "2(x3),1" and returns the entry of node `node_id`.
int slurm_tasks_on_node(std::string_view tasks_per_node, int node_id);

/// Reads the Slurm allocation from environment variables.
slurm_allocation parse_slurm_env(const env_lookup& env);

/// Combines physical cores, cgroup quota, affinity and Slurm CPUs into the cores worth planning on.
int usable_cores(const node_facts& facts);

}  // namespace amorsize
