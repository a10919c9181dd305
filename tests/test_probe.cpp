// Tests of the node probe: the parsers on canned kernel and Slurm text, the core arithmetic, and a live probe.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "amorsize/error.hpp"
#include "amorsize/probe.hpp"
#include "amorsize/sample.hpp"

namespace {

using amorsize::input_error;

constexpr std::uint64_t kib = 1024;

// A /proc/meminfo as a 5.x kernel writes it (trimmed).
constexpr const char* meminfo_text =
    "MemTotal:       24684092 kB\n"
    "MemFree:         1234567 kB\n"
    "MemAvailable:   24299336 kB\n"
    "Buffers:          102400 kB\n"
    "Cached:          2048000 kB\n"
    "SwapCached:            0 kB\n"
    "Active:          3000000 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

// The same from a kernel older than 3.14, which has no MemAvailable.
constexpr const char* old_meminfo_text =
    "MemTotal:        8000000 kB\n"
    "MemFree:         1000000 kB\n"
    "Buffers:           50000 kB\n"
    "Cached:          3000000 kB\n"
    "SwapCached:            0 kB\n";

/// Builds an env_lookup over a fixed map, standing in for the process environment.
amorsize::env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto found = vars.find(std::string(name));
    return found == vars.end() ? std::nullopt : std::optional<std::string>(found->second);
  };
}

/// Builds a file_reader over a fixed map of path -> contents, standing in for /proc and /sys/fs/cgroup.
amorsize::file_reader files_of(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path) -> std::optional<std::string> {
    const auto found = files.find(path);
    return found == files.end() ? std::nullopt : std::optional<std::string>(found->second);
  };
}

constexpr std::uint64_t gib = kib * kib * kib;
constexpr std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

/// Facts for a node with `cores` cores, one thread each, no limits.
amorsize::node_facts plain_node(int cores) {
  amorsize::node_facts facts;
  facts.physical_cores = cores;
  facts.logical_cores = cores;
  facts.affinity_cpus = cores;
  return facts;
}

}  // namespace

TEST_CASE("cgroup v2 cpu.max gives the quota in CPUs", "[probe]") {
  CHECK(amorsize::parse_cgroup_v2_cpu_max("max 100000\n") == 0.0);
  CHECK(amorsize::parse_cgroup_v2_cpu_max("max\n") == 0.0);
  CHECK(amorsize::parse_cgroup_v2_cpu_max("200000 100000\n") == Approx(2.0));
  CHECK(amorsize::parse_cgroup_v2_cpu_max("150000 100000") == Approx(1.5));
  CHECK(amorsize::parse_cgroup_v2_cpu_max("50000 100000\n") == Approx(0.5));
  CHECK_THROWS_AS(amorsize::parse_cgroup_v2_cpu_max(""), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v2_cpu_max("abc 100000"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v2_cpu_max("200000"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v2_cpu_max("200000 0"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v2_cpu_max("200000 100000 7"), input_error);
}

TEST_CASE("cgroup v1 cfs quota and period give the quota in CPUs", "[probe]") {
  CHECK(amorsize::parse_cgroup_v1_cpu_quota("-1\n", "100000\n") == 0.0);
  CHECK(amorsize::parse_cgroup_v1_cpu_quota("-1\n", "") == 0.0);  // No quota: the period does not matter.
  CHECK(amorsize::parse_cgroup_v1_cpu_quota("150000\n", "100000\n") == Approx(1.5));
  CHECK(amorsize::parse_cgroup_v1_cpu_quota("400000", "100000") == Approx(4.0));
  CHECK_THROWS_AS(amorsize::parse_cgroup_v1_cpu_quota("lots", "100000"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v1_cpu_quota("150000", "0"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_v1_cpu_quota("150000", ""), input_error);
}

TEST_CASE("CPU lists are counted and malformed ones rejected", "[probe]") {
  CHECK(amorsize::count_cpu_list("0-3,8,10-11") == 7);
  CHECK(amorsize::count_cpu_list("0-1\n") == 2);
  CHECK(amorsize::count_cpu_list("5") == 1);
  CHECK(amorsize::count_cpu_list("") == 0);
  CHECK(amorsize::count_cpu_list("\n") == 0);
  CHECK_THROWS_AS(amorsize::count_cpu_list("3-1"), input_error);
  CHECK_THROWS_AS(amorsize::count_cpu_list("a"), input_error);
  CHECK_THROWS_AS(amorsize::count_cpu_list("1,,2"), input_error);
  CHECK_THROWS_AS(amorsize::count_cpu_list("1-"), input_error);
  CHECK_THROWS_AS(amorsize::count_cpu_list("-1"), input_error);
  CHECK_THROWS_AS(amorsize::count_cpu_list("0-3,"), input_error);
}

TEST_CASE("/proc/loadavg gives the 1-minute load average", "[probe]") {
  CHECK(amorsize::parse_loadavg("0.52 0.58 0.59 1/467 12345\n") == Approx(0.52));
  CHECK(amorsize::parse_loadavg("13.00 7.25 3.10 9/980 4242") == Approx(13.0));
  CHECK(amorsize::parse_loadavg("0.00 0.00 0.00 1/1 1") == 0.0);
  CHECK_THROWS_AS(amorsize::parse_loadavg(""), input_error);
  CHECK_THROWS_AS(amorsize::parse_loadavg("busy 0.58 0.59"), input_error);
  CHECK_THROWS_AS(amorsize::parse_loadavg("-1.0 0 0"), input_error);
}

TEST_CASE("/proc/meminfo gives total and available bytes", "[probe]") {
  CHECK(amorsize::parse_meminfo_total(meminfo_text) == 24684092 * kib);
  CHECK(amorsize::parse_meminfo_available(meminfo_text) == 24299336 * kib);

  SECTION("without MemAvailable, free plus cached is used") {
    CHECK(amorsize::parse_meminfo_total(old_meminfo_text) == 8000000 * kib);
    CHECK(amorsize::parse_meminfo_available(old_meminfo_text) == (1000000 + 3000000) * kib);
  }
  SECTION("missing or unreadable fields are errors") {
    CHECK_THROWS_AS(amorsize::parse_meminfo_total("MemFree: 1 kB\n"), input_error);
    CHECK_THROWS_AS(amorsize::parse_meminfo_available("MemTotal: 8 kB\nMemFree: 1 kB\n"), input_error);
    CHECK_THROWS_AS(amorsize::parse_meminfo_total("MemTotal: lots kB\n"), input_error);
    CHECK_THROWS_AS(amorsize::parse_meminfo_total(""), input_error);
  }
}

TEST_CASE("cgroup memory limits: 'max' and the v1 sentinel mean no limit", "[probe]") {
  CHECK_FALSE(amorsize::parse_cgroup_memory_limit("max\n").has_value());
  CHECK_FALSE(amorsize::parse_cgroup_memory_limit("9223372036854771712\n").has_value());
  CHECK_FALSE(amorsize::parse_cgroup_memory_limit("1152921504606846976").has_value());  // 2^60
  CHECK(amorsize::parse_cgroup_memory_limit("4294967296\n") == std::optional<std::uint64_t>(4294967296ULL));
  CHECK(amorsize::parse_cgroup_memory_limit("1152921504606846975") ==
        std::optional<std::uint64_t>(1152921504606846975ULL));
  CHECK_THROWS_AS(amorsize::parse_cgroup_memory_limit(""), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_memory_limit("4G"), input_error);
  CHECK_THROWS_AS(amorsize::parse_cgroup_memory_limit("-1"), input_error);
}

TEST_CASE("Slurm task lists expand per node", "[probe]") {
  CHECK(amorsize::slurm_tasks_on_node("2(x3),1", 0) == 2);
  CHECK(amorsize::slurm_tasks_on_node("2(x3),1", 1) == 2);
  CHECK(amorsize::slurm_tasks_on_node("2(x3),1", 2) == 2);
  CHECK(amorsize::slurm_tasks_on_node("2(x3),1", 3) == 1);
  CHECK(amorsize::slurm_tasks_on_node("16", 0) == 16);
  CHECK(amorsize::slurm_tasks_on_node("4,8(x2)", 2) == 8);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("2(x3),1", 4), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("2(x3),1", -1), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("", 0), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("2(3)", 0), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("2(x0)", 0), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("2(x3", 0), input_error);
  CHECK_THROWS_AS(amorsize::slurm_tasks_on_node("two", 0), input_error);
}

TEST_CASE("Slurm environment is read into the allocation", "[probe]") {
  SECTION("outside Slurm nothing is present") {
    const auto slurm = amorsize::parse_slurm_env(env_of({{"HOME", "/root"}, {"SLURM_CPUS_ON_NODE", "8"}}));
    CHECK_FALSE(slurm.present);
    CHECK(slurm.cpus_on_node == 0);
    CHECK(slurm.job_id.empty());
  }
  SECTION("a 3-node job, node 2, with a compressed task list") {
    const auto slurm = amorsize::parse_slurm_env(env_of({{"SLURM_JOB_ID", "123456"},
                                                         {"SLURM_CPUS_ON_NODE", "4"},
                                                         {"SLURM_NTASKS", "5"},
                                                         {"SLURM_TASKS_PER_NODE", "2(x2),1"},
                                                         {"SLURM_CPUS_PER_TASK", "2"},
                                                         {"SLURM_JOB_NUM_NODES", "3"},
                                                         {"SLURM_NODEID", "2"}}));
    CHECK(slurm.present);
    CHECK(slurm.job_id == "123456");
    CHECK(slurm.cpus_on_node == 4);
    CHECK(slurm.ntasks == 5);
    CHECK(slurm.ntasks_per_node == 1);
    CHECK(slurm.cpus_per_task == 2);
    CHECK(slurm.nnodes == 3);
    CHECK(slurm.node_id == 2);
  }
  SECTION("node 1 of the same job gets two tasks; SLURM_NNODES stands in for SLURM_JOB_NUM_NODES") {
    const auto slurm = amorsize::parse_slurm_env(env_of({{"SLURM_JOB_ID", "123456"},
                                                         {"SLURM_TASKS_PER_NODE", "2(x2),1"},
                                                         {"SLURM_NNODES", "3"},
                                                         {"SLURM_NODEID", "1"}}));
    CHECK(slurm.ntasks_per_node == 2);
    CHECK(slurm.nnodes == 3);
    CHECK(slurm.cpus_on_node == 0);
    CHECK(slurm.cpus_per_task == 0);
  }
  SECTION("SLURM_NTASKS_PER_NODE wins over the task list") {
    const auto slurm = amorsize::parse_slurm_env(
        env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_NTASKS_PER_NODE", "8"}, {"SLURM_TASKS_PER_NODE", "2(x2),1"}}));
    CHECK(slurm.ntasks_per_node == 8);
    CHECK(slurm.node_id == 0);
  }
  SECTION("non-numeric values name the variable and its value") {
    CHECK_THROWS_WITH(amorsize::parse_slurm_env(env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_CPUS_ON_NODE", "four"}})),
                      Catch::Contains("SLURM_CPUS_ON_NODE") && Catch::Contains("four"));
    CHECK_THROWS_AS(amorsize::parse_slurm_env(env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_NTASKS", "-2"}})),
                    input_error);
    CHECK_THROWS_AS(amorsize::parse_slurm_env(env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_NODEID", ""}})), input_error);
    CHECK_THROWS_WITH(
        amorsize::parse_slurm_env(
            env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_TASKS_PER_NODE", "2(x2),1"}, {"SLURM_NODEID", "3"}})),
        Catch::Contains("SLURM_TASKS_PER_NODE") && Catch::Contains("2(x2),1"));
  }
}

TEST_CASE("usable cores combine topology, affinity, quota and Slurm", "[probe]") {
  CHECK(amorsize::usable_cores(plain_node(16)) == 16);

  SECTION("a 2-CPU quota on 64 cores") {
    auto facts = plain_node(64);
    facts.cpu_quota = 2.0;
    CHECK(amorsize::usable_cores(facts) == 2);
  }
  SECTION("fractional quotas round to nearest, never below 1") {
    auto facts = plain_node(64);
    facts.cpu_quota = 1.5;
    CHECK(amorsize::usable_cores(facts) == 2);
    facts.cpu_quota = 1.4;
    CHECK(amorsize::usable_cores(facts) == 1);
    facts.cpu_quota = 0.2;
    CHECK(amorsize::usable_cores(facts) == 1);
  }
  SECTION("Slurm CPUs on node 4 on 16 cores") {
    auto facts = plain_node(16);
    facts.slurm.present = true;
    facts.slurm.cpus_on_node = 4;
    CHECK(amorsize::usable_cores(facts) == 4);
    facts.slurm.present = false;  // Stale values outside a job are ignored.
    CHECK(amorsize::usable_cores(facts) == 16);
  }
  SECTION("an affinity mask of 3 CPUs") {
    auto facts = plain_node(16);
    facts.logical_cores = 32;
    facts.affinity_cpus = 3;
    CHECK(amorsize::usable_cores(facts) == 3);
  }
  SECTION("an unknown affinity (0) does not cut") {
    auto facts = plain_node(8);
    facts.affinity_cpus = 0;
    CHECK(amorsize::usable_cores(facts) == 8);
  }
  SECTION("the tightest limit wins") {
    auto facts = plain_node(32);
    facts.affinity_cpus = 12;
    facts.cpu_quota = 6.0;
    facts.slurm.present = true;
    facts.slurm.cpus_on_node = 8;
    CHECK(amorsize::usable_cores(facts) == 6);
  }
  SECTION("never below one core") {
    auto facts = plain_node(0);
    CHECK(amorsize::usable_cores(facts) == 1);
  }
}

TEST_CASE("/proc/self/cgroup gives the v2 path and the v1 path per controller", "[probe]") {
  const auto membership = amorsize::parse_proc_self_cgroup(
      "12:cpu,cpuacct:/docker/abc\n"
      "4:memory:/docker/abc/inner\n"
      "1:name=systemd:/init.scope\n"
      "0::/user.slice/job.scope\n"
      "not a cgroup line\n");
  CHECK(membership.unified == "/user.slice/job.scope");
  CHECK(membership.v1_path("cpu") == "/docker/abc");
  CHECK(membership.v1_path("cpuacct") == "/docker/abc");
  CHECK(membership.v1_path("memory") == "/docker/abc/inner");
  CHECK(membership.v1_path("name=systemd") == "/init.scope");
  CHECK(membership.v1_path("pids") == "/");  // Not in that hierarchy: its root.

  const auto empty = amorsize::parse_proc_self_cgroup("");
  CHECK(empty.unified == "/");
  CHECK(empty.v1.empty());
}

TEST_CASE("the cgroup v2 walk takes the tightest limit from the leaf up to the mount", "[probe]") {
  const std::string leaf = "/sys/fs/cgroup/user.slice/job.scope/step";
  const std::string parent = "/sys/fs/cgroup/user.slice/job.scope";
  const std::string top = "/sys/fs/cgroup/user.slice";
  std::map<std::string, std::string> tree = {
      {"/proc/self/cgroup", "0::/user.slice/job.scope/step\n"},
      {leaf + "/cpu.max", "max 100000\n"},
      {parent + "/cpu.max", "250000 100000\n"},
      {top + "/cpu.max", "400000 100000\n"},
      {"/sys/fs/cgroup/cpu.max", "max\n"},
      {leaf + "/memory.max", "max\n"},
      {leaf + "/memory.current", "536870912\n"},
      {parent + "/memory.max", "8589934592\n"},
      {parent + "/memory.current", "1073741824\n"},
      {top + "/memory.max", "4294967296\n"},
      {top + "/memory.current", "3221225472\n"},
  };

  SECTION("quota and limit come from different levels; the headroom is the least left at any level") {
    const auto limits = amorsize::read_cgroup_limits(files_of(tree));
    CHECK(limits.cpu_quota == Approx(2.5));
    CHECK(limits.memory_limit == 4 * gib);
    CHECK(limits.memory_headroom == 1 * gib);  // 4 GiB - 3 GiB at the top beats 8 GiB - 1 GiB below it.
  }
  SECTION("a limit without a usage file leaves the whole limit as headroom") {
    tree.erase(top + "/memory.current");
    const auto limits = amorsize::read_cgroup_limits(files_of(tree));
    CHECK(limits.memory_limit == 4 * gib);
    CHECK(limits.memory_headroom == 4 * gib);
  }
  SECTION("usage above the limit leaves no headroom") {
    tree[top + "/memory.current"] = "5368709120\n";
    CHECK(amorsize::read_cgroup_limits(files_of(tree)).memory_headroom == 0);
  }
  SECTION("an unreadable file sets no limit; the other levels still do") {
    tree[parent + "/cpu.max"] = "lots 100000\n";
    tree[top + "/memory.max"] = "4G\n";
    const auto limits = amorsize::read_cgroup_limits(files_of(tree));
    CHECK(limits.cpu_quota == Approx(4.0));
    CHECK(limits.memory_limit == 8 * gib);
    CHECK(limits.memory_headroom == 7 * gib);
  }
  SECTION("'max' everywhere and missing files mean no limits") {
    const auto limits = amorsize::read_cgroup_limits(files_of({
        {"/proc/self/cgroup", "0::/user.slice/job.scope/step\n"},
        {leaf + "/cpu.max", "max 100000\n"},
        {leaf + "/memory.max", "max\n"},
        {top + "/memory.max", "max\n"},
    }));
    CHECK(limits.cpu_quota == 0.0);
    CHECK(limits.memory_limit == no_limit);
    CHECK(limits.memory_headroom == no_limit);
  }
}

TEST_CASE("the cgroup v1 walk reads the cpu and memory hierarchies", "[probe]") {
  const std::string cpu = "/sys/fs/cgroup/cpu,cpuacct";
  const std::string memory = "/sys/fs/cgroup/memory";
  std::map<std::string, std::string> tree = {
      {"/proc/self/cgroup",
       "9:name=systemd:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n2:cpuset:/\n0::/\n"},
      {cpu + "/cpu.cfs_quota_us", "-1\n"},
      {cpu + "/cpu.cfs_period_us", "100000\n"},
      {cpu + "/docker/cpu.cfs_quota_us", "-1\n"},
      {cpu + "/docker/cpu.cfs_period_us", "100000\n"},
      {cpu + "/docker/abc/cpu.cfs_quota_us", "150000\n"},
      {cpu + "/docker/abc/cpu.cfs_period_us", "100000\n"},
      {memory + "/memory.limit_in_bytes", "9223372036854771712\n"},
      {memory + "/docker/memory.limit_in_bytes", "2147483648\n"},
      {memory + "/docker/memory.usage_in_bytes", "1073741824\n"},
      {memory + "/docker/abc/memory.limit_in_bytes", "9223372036854771712\n"},
      {memory + "/docker/abc/memory.usage_in_bytes", "536870912\n"},
  };

  SECTION("a quota on the leaf and a limit on its parent") {
    const auto limits = amorsize::read_cgroup_limits(files_of(tree));
    CHECK(limits.cpu_quota == Approx(1.5));
    CHECK(limits.memory_limit == 2 * gib);
    CHECK(limits.memory_headroom == 1 * gib);
  }
  SECTION("the same tree mounted at /sys/fs/cgroup/cpu") {
    std::map<std::string, std::string> moved;
    for (const auto& [path, text] : tree) {
      const bool in_cpu = path.rfind(cpu, 0) == 0;
      moved[in_cpu ? "/sys/fs/cgroup/cpu" + path.substr(cpu.size()) : path] = text;
    }
    CHECK(amorsize::read_cgroup_limits(files_of(moved)).cpu_quota == Approx(1.5));
  }
  SECTION("a quota without a readable period sets no quota") {
    tree.erase(cpu + "/docker/abc/cpu.cfs_period_us");
    CHECK(amorsize::read_cgroup_limits(files_of(tree)).cpu_quota == 0.0);
  }
  SECTION("the v1 'unlimited' sentinel at every level means no limit") {
    tree[memory + "/docker/memory.limit_in_bytes"] = "9223372036854771712\n";
    const auto limits = amorsize::read_cgroup_limits(files_of(tree));
    CHECK(limits.memory_limit == no_limit);
    CHECK(limits.memory_headroom == no_limit);
  }
}

TEST_CASE("the cgroup walk reads leaf first up to the mount, and only the mount outside the namespace", "[probe]") {
  std::vector<std::string> reads;
  std::map<std::string, std::string> files = {{"/proc/self/cgroup", "0::/a/b\n"}};
  const amorsize::file_reader recording = [&reads, &files](const std::string& path) -> std::optional<std::string> {
    reads.push_back(path);
    const auto found = files.find(path);
    return found == files.end() ? std::nullopt : std::optional<std::string>(found->second);
  };
  const auto cpu_max_reads = [&reads] {
    std::vector<std::string> found;
    for (const auto& path : reads) {
      if (path.size() >= 8 && path.substr(path.size() - 8) == "/cpu.max") {
        found.push_back(path);
      }
    }
    return found;
  };

  SECTION("a cgroup two levels down") {
    amorsize::read_cgroup_limits(recording);
    CHECK(reads.front() == "/proc/self/cgroup");
    CHECK(cpu_max_reads() ==
          std::vector<std::string>{"/sys/fs/cgroup/a/b/cpu.max", "/sys/fs/cgroup/a/cpu.max", "/sys/fs/cgroup/cpu.max"});
  }
  SECTION("a cgroup outside this namespace (\"/..\") reads the mount root only, where the container's limit is") {
    files = {{"/proc/self/cgroup", "0::/../../host.slice\n"}, {"/sys/fs/cgroup/cpu.max", "300000 100000\n"}};
    CHECK(amorsize::read_cgroup_limits(recording).cpu_quota == Approx(3.0));
    CHECK(cpu_max_reads() == std::vector<std::string>{"/sys/fs/cgroup/cpu.max"});
  }
  SECTION("without /proc/self/cgroup the mount roots are read") {
    files = {{"/sys/fs/cgroup/memory.max", "1073741824\n"}};
    const auto limits = amorsize::read_cgroup_limits(recording);
    CHECK(cpu_max_reads() == std::vector<std::string>{"/sys/fs/cgroup/cpu.max"});
    CHECK(limits.memory_limit == 1 * gib);
    CHECK(limits.cpu_quota == 0.0);
  }
}

TEST_CASE("/proc/self/stat gives threads and resident pages, whatever the command name holds", "[probe][sample]") {
  // Fields 3.. of a real line: state, ppid, ..., num_threads (20) = 7, ..., rss (24) = 4321, rsslim, ...
  const std::string after_name =
      " S 1 1234 1234 0 -1 4194560 500 0 0 0 12 3 0 0 20 0 7 0 98765 123456789 4321 18446744073709551615 1 1 0 0 0\n";

  SECTION("a plain name") {
    const auto stat = amorsize::parse_proc_stat("1234 (amorsize_tests)" + after_name);
    CHECK(stat.threads == 7);
    CHECK(stat.rss_pages == 4321);
  }
  SECTION("a name with spaces and parentheses") {
    const auto stat = amorsize::parse_proc_stat("1234 (my (odd) prog)" + after_name);
    CHECK(stat.threads == 7);
    CHECK(stat.rss_pages == 4321);
  }
  SECTION("a name that looks like fields, with a newline in it") {
    const auto stat = amorsize::parse_proc_stat("1234 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 99\n)" + after_name);
    CHECK(stat.threads == 7);
    CHECK(stat.rss_pages == 4321);
  }
  SECTION("malformed lines are errors") {
    CHECK_THROWS_AS(amorsize::parse_proc_stat(""), input_error);
    CHECK_THROWS_AS(amorsize::parse_proc_stat("1234 amorsize_tests S 1 1234"), input_error);
    CHECK_THROWS_AS(amorsize::parse_proc_stat("1234 (amorsize_tests)"), input_error);
    CHECK_THROWS_AS(amorsize::parse_proc_stat("1234 (amorsize_tests) S 1 1234 1234 0 -1 4194560 500 0 0 0 12 3 0 0 20 0 7"),
                    input_error);  // Ends before rss.
    CHECK_THROWS_AS(
        amorsize::parse_proc_stat("1234 (p) S 1 1234 1234 0 -1 4194560 500 0 0 0 12 3 0 0 20 0 many 0 98765 1 4321\n"),
        input_error);
    CHECK_THROWS_AS(
        amorsize::parse_proc_stat("1234 (p) S 1 1234 1234 0 -1 4194560 500 0 0 0 12 3 0 0 20 0 7 0 98765 1 -5\n"),
        input_error);
  }
  SECTION("this process's own line") {
    const auto text = amorsize::read_small_file("/proc/self/stat");
    REQUIRE(text.has_value());
    const auto stat = amorsize::parse_proc_stat(*text);
    CHECK(stat.threads >= 1);
    CHECK(stat.rss_pages > 0);
  }
}

TEST_CASE("/proc/self/status gives VmHWM in bytes", "[probe][sample]") {
  CHECK(amorsize::parse_vm_hwm("Name:\tamorsize_tests\nVmPeak:\t  300000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n") ==
        12345 * kib);
  CHECK(amorsize::parse_vm_hwm("VmHWM: 0 kB") == 0);
  CHECK_THROWS_AS(amorsize::parse_vm_hwm(""), input_error);
  CHECK_THROWS_AS(amorsize::parse_vm_hwm("Name:\tVmHWM: 5 kB\nVmRSS:\t1000 kB\n"), input_error);  // Not a VmHWM line.
  CHECK_THROWS_AS(amorsize::parse_vm_hwm("VmHWM:\t lots kB\n"), input_error);
  CHECK_THROWS_AS(amorsize::parse_vm_hwm("VmHWM:\t\n"), input_error);

  const auto text = amorsize::read_small_file("/proc/self/status");
  REQUIRE(text.has_value());
  CHECK(amorsize::parse_vm_hwm(*text) > 0);
}

TEST_CASE("the live probe of this host is sane and cached", "[probe]") {
  const auto fresh = amorsize::probe_node_uncached();
  INFO("host " << fresh.hostname << ": " << fresh.physical_cores << " cores, " << fresh.logical_cores
               << " threads, " << fresh.numa_nodes << " NUMA, affinity " << fresh.affinity_cpus << ", quota "
               << fresh.cpu_quota << ", memory " << fresh.available_memory << "/" << fresh.total_memory
               << " B, usable " << fresh.usable_cores << ", probe " << fresh.probe_seconds << " s");
  CHECK_FALSE(fresh.hostname.empty());
  CHECK(fresh.physical_cores >= 1);
  CHECK(fresh.logical_cores >= fresh.physical_cores);
  CHECK(fresh.numa_nodes >= 1);
  CHECK(fresh.affinity_cpus >= 1);
  CHECK(fresh.logical_cores <= fresh.affinity_cpus);  // hwloc counts only CPUs within the mask.
  CHECK(fresh.cpu_quota >= 0.0);
  CHECK(fresh.total_memory > 0);
  CHECK(fresh.available_memory <= fresh.total_memory);
  CHECK(fresh.usable_cores >= 1);
  CHECK(fresh.usable_cores <= fresh.physical_cores);
  CHECK(fresh.usable_cores == amorsize::usable_cores(fresh));
  CHECK(fresh.probe_seconds > 0.0);
  CHECK(fresh.probe_seconds < 1.0);

  const auto& first = amorsize::probe_node();
  const auto& second = amorsize::probe_node();
  CHECK(&first == &second);  // cached: the same facts, not a new probe
  CHECK(first.physical_cores == fresh.physical_cores);
  CHECK(first.logical_cores == fresh.logical_cores);
  CHECK(first.hostname == fresh.hostname);
}
