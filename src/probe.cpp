// Probes the node: hwloc for the topology, /proc and cgroup files for limits, the environment for Slurm.
#include "amorsize/probe.hpp"

#include <hwloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "amorsize/error.hpp"
#include "text.hpp"

namespace amorsize {
namespace {

// ---------------------------------------------------------------------------------------------
// String helpers shared by the parsers (pure, no I/O).

using text::parse_number;

std::string_view trim(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  const auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) {
    return {};
  }
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) {
      return parts;
    }
    start = end + 1;
  }
}

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

/// Returns one "Key: value [kB]" field of /proc/meminfo in bytes, or nullopt when the key is absent.
std::optional<std::uint64_t> meminfo_field(std::string_view meminfo, std::string_view key) {
  for (const auto line : split(meminfo, '\n')) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || line.substr(0, colon) != key) {
      continue;
    }
    auto value = trim(line.substr(colon + 1));
    std::uint64_t unit = 1;
    if (value.size() >= 2 && value.substr(value.size() - 2) == "kB") {
      unit = 1024;  // The kernel writes "kB" but means KiB.
      value = trim(value.substr(0, value.size() - 2));
    }
    const auto number = parse_number<std::uint64_t>(value);
    if (!number || *number > std::numeric_limits<std::uint64_t>::max() / unit) {
      throw input_error("/proc/meminfo field " + std::string(key) + " has the unreadable value " +
                        quoted(trim(line.substr(colon + 1))) + "; expected a number of kB");
    }
    return *number * unit;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The cgroup walk: files come through a file_reader, so tests run it on canned trees.

/// Parses kernel text; nullopt when it is absent or cannot be parsed, because an odd kernel file
/// should leave that one value unknown rather than stop the whole probe.
template <typename Parse>
auto parse_quietly(const std::optional<std::string>& text, Parse parse)
    -> std::optional<decltype(parse(std::string_view{}))> {
  if (!text) {
    return std::nullopt;
  }
  try {
    return parse(std::string_view(*text));
  } catch (const input_error&) {
    return std::nullopt;
  }
}

/// Reads a kernel file through `read` and parses it quietly (see parse_quietly).
template <typename Parse>
auto read_and_parse(const file_reader& read, const std::string& path, Parse parse) {
  return parse_quietly(read(path), parse);
}

/// Returns `mount`+`path` and each of its ancestors up to `mount` itself, leaf first.
/// Limits set on an ancestor bind too, and inside a container the leaf path of /proc/self/cgroup may
/// not exist under the mount, where the mount root then is the container's own cgroup.
std::vector<std::string> cgroup_dirs(const std::string& mount, std::string_view path) {
  std::vector<std::string> dirs;
  path = trim(path);
  // A cgroup outside this cgroup namespace shows as "/.."; only the mount root is then reachable.
  if (path.find("..") != std::string_view::npos) {
    path = "/";
  }
  while (!path.empty() && path != "/") {
    dirs.push_back(mount + std::string(path));
    path = path.substr(0, path.rfind('/'));
  }
  dirs.push_back(mount);
  return dirs;
}

/// Returns the tightest cgroup CPU quota in CPUs over v2 and v1 hierarchies (0 = no quota).
double cgroup_cpu_quota(const cgroup_membership& membership, const file_reader& read) {
  double quota = 0.0;
  const auto tighten = [&quota](std::optional<double> found) {
    if (found && *found > 0.0 && (quota == 0.0 || *found < quota)) {
      quota = *found;
    }
  };
  for (const auto& dir : cgroup_dirs("/sys/fs/cgroup", membership.unified)) {
    tighten(read_and_parse(read, dir + "/cpu.max", parse_cgroup_v2_cpu_max));
  }
  for (const auto* const mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    for (const auto& dir : cgroup_dirs(mount, membership.v1_path("cpu"))) {
      const auto period = read(dir + "/cpu.cfs_period_us");
      tighten(read_and_parse(read, dir + "/cpu.cfs_quota_us", [&period](std::string_view quota_us) {
        return parse_cgroup_v1_cpu_quota(quota_us, period.value_or(""));
      }));
    }
  }
  return quota;
}

/// Cuts `limits` to the tightest cgroup memory limit and the headroom left under it (limit minus usage).
void cgroup_memory_limit(const cgroup_membership& membership, const file_reader& read, cgroup_limits& limits) {
  const auto tighten = [&read, &limits](const std::string& dir, const char* limit_file, const char* usage_file) {
    const auto limit = read_and_parse(read, dir + limit_file, parse_cgroup_memory_limit).value_or(std::nullopt);
    if (!limit) {
      return;
    }
    const auto usage = read_and_parse(read, dir + usage_file, [](std::string_view text) {
                         return parse_number<std::uint64_t>(trim(text));
                       }).value_or(std::nullopt);
    limits.memory_limit = std::min(limits.memory_limit, *limit);
    limits.memory_headroom =
        std::min(limits.memory_headroom, usage ? *limit - std::min(*limit, *usage) : *limit);
  };
  for (const auto& dir : cgroup_dirs("/sys/fs/cgroup", membership.unified)) {
    tighten(dir, "/memory.max", "/memory.current");
  }
  for (const auto& dir : cgroup_dirs("/sys/fs/cgroup/memory", membership.v1_path("memory"))) {
    tighten(dir, "/memory.limit_in_bytes", "/memory.usage_in_bytes");
  }
}

// ---------------------------------------------------------------------------------------------
// I/O helpers used only by the probe.

/// Returns the CPUs in this process's affinity mask, or nullopt when it cannot be read.
std::optional<std::vector<unsigned>> affinity_mask() {
  // A fixed cpu_set_t holds 1024 CPUs; larger machines make sched_getaffinity fail with EINVAL.
  for (int cpus = 1024; cpus <= (1 << 20); cpus *= 2) {
    const std::unique_ptr<cpu_set_t, void (*)(cpu_set_t*)> set(CPU_ALLOC(cpus), [](cpu_set_t* s) { CPU_FREE(s); });
    if (!set) {
      return std::nullopt;
    }
    const auto size = CPU_ALLOC_SIZE(cpus);
    if (sched_getaffinity(0, size, set.get()) == 0) {
      std::vector<unsigned> mask;
      for (int cpu = 0; cpu < cpus; ++cpu) {
        if (CPU_ISSET_S(cpu, size, set.get())) {
          mask.push_back(static_cast<unsigned>(cpu));
        }
      }
      return mask;
    }
    if (errno != EINVAL) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

/// Physical cores, hardware threads and NUMA nodes that hwloc sees.
struct topology_counts {
  int physical_cores = 0;
  int logical_cores = 0;
  int numa_nodes = 0;
};

/// Counts the cores and PUs within `mask` (all when nullopt); nullopt when hwloc fails.
std::optional<topology_counts> hwloc_counts(const std::optional<std::vector<unsigned>>& mask) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) {
    return std::nullopt;
  }
  const std::unique_ptr<hwloc_topology, void (*)(hwloc_topology_t)> topology(raw, hwloc_topology_destroy);
  // Without I/O devices the load takes a few ms instead of tens (no PCI scan).
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_NONE);
  if (hwloc_topology_load(raw) != 0) {
    return std::nullopt;
  }
  // hwloc already drops the CPUs the cpuset cgroup disallows, but not those outside the affinity
  // mask (taskset, srun --cpu-bind), so intersect with that mask here.
  const std::unique_ptr<hwloc_bitmap_s, void (*)(hwloc_bitmap_t)> usable(
      hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(raw)), hwloc_bitmap_free);
  if (!usable) {
    return std::nullopt;
  }
  if (mask) {
    const std::unique_ptr<hwloc_bitmap_s, void (*)(hwloc_bitmap_t)> bound(hwloc_bitmap_alloc(), hwloc_bitmap_free);
    if (!bound) {
      return std::nullopt;
    }
    for (const auto cpu : *mask) {
      hwloc_bitmap_set(bound.get(), cpu);
    }
    hwloc_bitmap_and(usable.get(), usable.get(), bound.get());
  }
  const auto count_within = [raw, &usable](hwloc_obj_type_t type) {
    int count = 0;
    for (hwloc_obj_t obj = nullptr; (obj = hwloc_get_next_obj_by_type(raw, type, obj)) != nullptr;) {
      count += hwloc_bitmap_intersects(obj->cpuset, usable.get()) != 0 ? 1 : 0;
    }
    return count;
  };
  topology_counts counts;
  counts.logical_cores = count_within(HWLOC_OBJ_PU);
  if (counts.logical_cores == 0) {
    return std::nullopt;
  }
  // Some platforms expose no Core level; each PU is then its own core.
  counts.physical_cores = count_within(HWLOC_OBJ_CORE);
  if (counts.physical_cores == 0) {
    counts.physical_cores = counts.logical_cores;
  }
  counts.numa_nodes = std::max(1, hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_NUMANODE));
  return counts;
}

/// Returns a sysconf page count in bytes; the fallback when /proc/meminfo cannot be read.
std::uint64_t sysconf_bytes(int pages_name) {
  const long pages = sysconf(pages_name);
  const long page_size = sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size) : 0;
}

std::string host_name() {
  std::vector<char> name(HOST_NAME_MAX + 1, '\0');
  if (gethostname(name.data(), name.size() - 1) != 0) {
    return "localhost";
  }
  return name.data();
}

}  // namespace

std::string node_name() {
  if (const auto slurm_node = environment_variable("SLURMD_NODENAME"); slurm_node && !slurm_node->empty()) return *slurm_node;
  return host_name();
}

std::optional<std::string> environment_variable(std::string_view name) {
  const char* const value = std::getenv(std::string(name).c_str());
  return value == nullptr ? std::nullopt : std::optional<std::string>(value);
}

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return std::nullopt;
  }
  return std::move(text).str();
}

// -----------------------------------------------------------------------------------------------
// The cgroup walk.

std::string cgroup_membership::v1_path(std::string_view controller) const {
  const auto found = v1.find(controller);
  return found == v1.end() ? "/" : found->second;
}

cgroup_membership parse_proc_self_cgroup(std::string_view text) {
  cgroup_membership membership;
  for (const auto line : split(text, '\n')) {
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      continue;
    }
    const auto controllers = line.substr(first + 1, second - first - 1);
    const std::string path(trim(line.substr(second + 1)));
    if (controllers.empty()) {
      membership.unified = path;
      continue;
    }
    for (const auto controller : split(controllers, ',')) {
      membership.v1.emplace(controller, path);
    }
  }
  return membership;
}

cgroup_limits read_cgroup_limits(const file_reader& read) {
  const auto membership =
      read_and_parse(read, "/proc/self/cgroup", parse_proc_self_cgroup).value_or(cgroup_membership{});
  cgroup_limits limits;
  limits.cpu_quota = cgroup_cpu_quota(membership, read);
  cgroup_memory_limit(membership, read, limits);
  return limits;
}

// -----------------------------------------------------------------------------------------------
// Parsers.

double parse_cgroup_v2_cpu_max(std::string_view text) {
  const auto fields = split(trim(text), ' ');
  if (!fields.empty() && fields[0] == "max") {
    return 0.0;
  }
  const auto quota = fields.size() == 2 ? parse_number<std::uint64_t>(fields[0]) : std::nullopt;
  const auto period = fields.size() == 2 ? parse_number<std::uint64_t>(fields[1]) : std::nullopt;
  if (!quota || !period || *period == 0) {
    throw input_error("cgroup cpu.max " + quoted(trim(text)) + " is unreadable; expected 'max PERIOD' or 'QUOTA PERIOD'");
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

double parse_cgroup_v1_cpu_quota(std::string_view quota_us, std::string_view period_us) {
  const auto quota = parse_number<std::int64_t>(trim(quota_us));
  if (!quota) {
    throw input_error("cgroup cpu.cfs_quota_us " + quoted(trim(quota_us)) + " is not an integer");
  }
  if (*quota <= 0) {
    return 0.0;  // -1 means no quota.
  }
  const auto period = parse_number<std::int64_t>(trim(period_us));
  if (!period || *period <= 0) {
    throw input_error("cgroup cpu.cfs_period_us " + quoted(trim(period_us)) + " is not a positive integer");
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

int count_cpu_list(std::string_view list) {
  list = trim(list);
  if (list.empty()) {
    return 0;
  }
  long long count = 0;
  for (const auto range : split(list, ',')) {
    const auto dash = range.find('-');
    const auto first = parse_number<unsigned>(range.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parse_number<unsigned>(range.substr(dash + 1));
    if (!first || !last || *last < *first) {
      throw input_error("CPU list " + quoted(list) + " has the malformed entry " + quoted(range) +
                        "; expected entries such as '3' or '0-7' separated by commas");
    }
    count += static_cast<long long>(*last) - *first + 1;
  }
  return static_cast<int>(std::min<long long>(count, std::numeric_limits<int>::max()));
}

std::uint64_t parse_meminfo_available(std::string_view meminfo) {
  if (const auto available = meminfo_field(meminfo, "MemAvailable")) {
    return *available;
  }
  // Kernels before 3.14 have no MemAvailable; free plus page cache is the usual estimate there.
  const auto free = meminfo_field(meminfo, "MemFree");
  const auto cached = meminfo_field(meminfo, "Cached");
  if (!free || !cached) {
    throw input_error("/proc/meminfo has neither MemAvailable nor MemFree and Cached");
  }
  return *free + *cached;
}

std::uint64_t parse_meminfo_total(std::string_view meminfo) {
  const auto total = meminfo_field(meminfo, "MemTotal");
  if (!total) {
    throw input_error("/proc/meminfo has no MemTotal line");
  }
  return *total;
}

double parse_loadavg(std::string_view text) {
  const std::string_view first = split(trim(text), ' ').front();
  const auto value = parse_number<double>(first);
  if (!value || !(*value >= 0.0)) {
    throw input_error("/proc/loadavg starts with " + quoted(first) + "; expected the 1-minute load average, such as 0.52");
  }
  return *value;
}

std::optional<std::uint64_t> parse_cgroup_memory_limit(std::string_view text) {
  text = trim(text);
  if (text == "max") {
    return std::nullopt;
  }
  const auto limit = parse_number<std::uint64_t>(text);
  if (!limit) {
    throw input_error("cgroup memory limit " + quoted(text) + " is unreadable; expected 'max' or a number of bytes");
  }
  // cgroup v1 writes "no limit" as a page-rounded LONG_MAX (9223372036854771712); no RAM is 2^60 bytes.
  constexpr std::uint64_t unlimited = std::uint64_t{1} << 60U;
  if (*limit >= unlimited) {
    return std::nullopt;
  }
  return limit;
}

int slurm_tasks_on_node(std::string_view tasks_per_node, int node_id) {
  const auto list = trim(tasks_per_node);
  const auto malformed = [&list](std::string_view entry) {
    return input_error("Slurm task list " + quoted(list) + " has the malformed entry " + quoted(entry) +
                       "; expected entries such as '2' or '2(x3)' separated by commas");
  };
  if (node_id < 0) {
    throw input_error("Slurm node id " + std::to_string(node_id) + " is negative");
  }
  int remaining = node_id;
  int nodes = 0;
  for (const auto entry : split(list, ',')) {
    // "2(x3)" means three nodes with two tasks each.
    const auto paren = entry.find('(');
    const auto tasks = parse_number<int>(entry.substr(0, paren));
    auto repeat = std::optional<int>(1);
    if (paren != std::string_view::npos) {
      const auto inner = entry.substr(paren + 1);
      repeat = inner.size() >= 3 && inner.front() == 'x' && inner.back() == ')'
                   ? parse_number<int>(inner.substr(1, inner.size() - 2))
                   : std::nullopt;
    }
    if (!tasks || *tasks < 0 || !repeat || *repeat < 1) {
      throw malformed(entry);
    }
    if (remaining < *repeat) {
      return *tasks;
    }
    remaining -= *repeat;
    nodes += *repeat;
  }
  throw input_error("Slurm node id " + std::to_string(node_id) + " is outside the task list " + quoted(list) +
                    ", which covers " + std::to_string(nodes) + " node(s)");
}

slurm_allocation parse_slurm_env(const env_lookup& env) {
  slurm_allocation slurm;
  const auto job_id = env("SLURM_JOB_ID");
  if (!job_id) {
    return slurm;
  }
  slurm.present = true;
  slurm.job_id = *job_id;
  const auto read_count = [&env](std::string_view name) -> std::optional<int> {
    const auto text = env(name);
    if (!text) {
      return std::nullopt;
    }
    const auto value = parse_number<int>(trim(*text));
    if (!value || *value < 0) {
      throw input_error(std::string(name) + "=" + quoted(*text) +
                        " is not a non-negative integer; fix or unset it in the job environment");
    }
    return value;
  };
  slurm.cpus_on_node = read_count("SLURM_CPUS_ON_NODE").value_or(0);
  slurm.ntasks = read_count("SLURM_NTASKS").value_or(0);
  slurm.cpus_per_task = read_count("SLURM_CPUS_PER_TASK").value_or(0);
  slurm.node_id = read_count("SLURM_NODEID").value_or(0);
  const auto job_nodes = read_count("SLURM_JOB_NUM_NODES");  // SLURM_NNODES is its older name.
  slurm.nnodes = job_nodes ? *job_nodes : read_count("SLURM_NNODES").value_or(0);
  if (const auto per_node = read_count("SLURM_NTASKS_PER_NODE")) {
    slurm.ntasks_per_node = *per_node;
  } else if (const auto tasks_per_node = env("SLURM_TASKS_PER_NODE")) {
    try {
      slurm.ntasks_per_node = slurm_tasks_on_node(*tasks_per_node, slurm.node_id);
    } catch (const input_error& e) {
      throw input_error("SLURM_TASKS_PER_NODE=" + quoted(*tasks_per_node) + " with SLURM_NODEID=" +
                        std::to_string(slurm.node_id) + ": " + e.what());
    }
  }
  return slurm;
}

int usable_cores(const node_facts& facts) {
  int cores = facts.physical_cores;
  // A real probe has already restricted physical_cores to the affinity mask through hwloc; the cut
  // matters for facts built elsewhere, and counting one core per allowed CPU is the safe side.
  if (facts.affinity_cpus > 0) {
    cores = std::min(cores, facts.affinity_cpus);
  }
  // A fractional quota rounds to nearest (1.5 CPUs -> 2, 1.4 -> 1): one extra worker sharing the
  // quota costs less than leaving almost a whole CPU of quota unused.
  if (facts.cpu_quota > 0.0) {
    cores = std::min(cores, std::max(1, static_cast<int>(std::floor(facts.cpu_quota + 0.5))));
  }
  if (facts.slurm.present && facts.slurm.cpus_on_node > 0) {
    cores = std::min(cores, facts.slurm.cpus_on_node);
  }
  return std::max(1, cores);
}

// -----------------------------------------------------------------------------------------------
// The probe.

node_facts probe_node_uncached() {
  const auto start = std::chrono::steady_clock::now();
  node_facts facts;
  facts.hostname = host_name();

  const auto mask = affinity_mask();
  facts.affinity_cpus = mask ? static_cast<int>(mask->size()) : 0;
  if (const auto counts = hwloc_counts(mask)) {
    facts.physical_cores = counts->physical_cores;
    facts.logical_cores = counts->logical_cores;
    facts.numa_nodes = counts->numa_nodes;
  } else {
    // Without hwloc, count every CPU we may run on as a core.
    const int cpus = facts.affinity_cpus > 0 ? facts.affinity_cpus
                                             : static_cast<int>(std::thread::hardware_concurrency());
    facts.physical_cores = std::max(1, cpus);
    facts.logical_cores = facts.physical_cores;
  }

  const auto cgroups = read_cgroup_limits(read_small_file);
  facts.cpu_quota = cgroups.cpu_quota;

  const auto meminfo = read_small_file("/proc/meminfo");
  const auto total = parse_quietly(meminfo, parse_meminfo_total);
  const auto available = parse_quietly(meminfo, parse_meminfo_available);
  facts.total_memory = std::min(total.value_or(sysconf_bytes(_SC_PHYS_PAGES)), cgroups.memory_limit);
  facts.available_memory = std::min(
      {available.value_or(sysconf_bytes(_SC_AVPHYS_PAGES)), cgroups.memory_headroom, facts.total_memory});

  facts.slurm = parse_slurm_env(environment_variable);
  facts.usable_cores = usable_cores(facts);
  facts.load_average = parse_quietly(read_small_file("/proc/loadavg"), parse_loadavg).value_or(0.0);
  facts.probe_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return facts;
}

const node_facts& probe_node() {
  static const node_facts facts = probe_node_uncached();
  return facts;
}

}  // namespace amorsize
