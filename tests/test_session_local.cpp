// Tests of launcher detection and of a session that runs without a launcher.
#include <amorsize/error.hpp>
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

amorsize::env_lookup canned_env(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](std::string_view name) -> std::optional<std::string> {
    const auto found = variables.find(std::string(name));
    return found != variables.end() ? std::optional<std::string>(found->second) : std::nullopt;
  };
}

bool under_launcher() { return amorsize::launched_by_mpi(amorsize::environment_variable); }

}  // namespace

TEST_CASE("launched_by_mpi sees mpirun, srun and PMI launchers", "[session]") {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    INFO(name);
    CHECK(amorsize::launched_by_mpi(canned_env({{name, "2"}})));
    CHECK(amorsize::launched_by_mpi(canned_env({{name, ""}})));
  }
  CHECK(amorsize::launched_by_mpi(canned_env({{"SLURM_JOB_ID", "7"}, {"PMIX_RANK", "0"}})));
}

TEST_CASE("launched_by_mpi ignores MPI settings and a Slurm job without srun", "[session]") {
  CHECK_FALSE(amorsize::launched_by_mpi(canned_env({})));
  CHECK_FALSE(amorsize::launched_by_mpi(canned_env({{"OMPI_MCA_pml", "ob1"},
                                                    {"OMPI_ALLOW_RUN_AS_ROOT", "1"},
                                                    {"SLURM_JOB_ID", "42"},
                                                    {"SLURM_NTASKS", "4"},
                                                    {"SLURM_CPUS_ON_NODE", "2"}})));
}

TEST_CASE("launcher_rank reads the rank that mpirun, srun or a PMI launcher gives", "[session]") {
  CHECK(amorsize::launcher_rank(canned_env({})) == std::nullopt);
  CHECK(amorsize::launcher_rank(canned_env({{"OMPI_COMM_WORLD_RANK", "3"}})) == std::optional<int>(3));
  CHECK(amorsize::launcher_rank(canned_env({{"PMIX_RANK", "0"}})) == std::optional<int>(0));
  CHECK(amorsize::launcher_rank(canned_env({{"PMI_RANK", "12"}})) == std::optional<int>(12));
  // Open MPI's own variable wins; text that is not a number is not a rank.
  CHECK(amorsize::launcher_rank(canned_env({{"OMPI_COMM_WORLD_RANK", "1"}, {"PMIX_RANK", "0"}})) ==
        std::optional<int>(1));
  CHECK(amorsize::launcher_rank(canned_env({{"PMIX_RANK", "x"}, {"PMI_RANK", "4"}})) == std::optional<int>(4));
  CHECK(amorsize::launcher_rank(canned_env({{"PMI_RANK", ""}})) == std::nullopt);
}

TEST_CASE("a session without a launcher is one rank on one node", "[session]") {
  if (under_launcher()) {
    WARN("skipped: this test describes a process started without mpirun/srun");
    return;
  }
  amorsize::session& session = amorsize::session::current();
  CHECK(&amorsize::session::current() == &session);
  CHECK_FALSE(session.mpi());
  CHECK(session.rank() == 0);
  CHECK(session.size() == 1);
  CHECK(session.is_root());

  const amorsize::cluster_layout& layout = session.layout();
  CHECK_FALSE(layout.mpi);
  CHECK(layout.world_size == 1);
  REQUIRE(layout.nodes.size() == 1);
  CHECK(layout.nodes[0].hostname == amorsize::probe_node().hostname);
  CHECK(layout.ranks_per_node == std::vector<int>{1});
  CHECK(layout.node_of_rank == std::vector<int>{0});
  CHECK(&session.layout() == &layout);

  const amorsize::mpi_links& links = session.links();
  CHECK_FALSE(links.same_node.measured);
  CHECK_FALSE(links.other_node.measured);
  CHECK(links.measure_seconds == 0.0);
}

TEST_CASE("a local broadcast returns its input and a local barrier returns", "[session]") {
  if (under_launcher()) {
    WARN("skipped: this test describes a process started without mpirun/srun");
    return;
  }
  amorsize::session& session = amorsize::session::current();
  CHECK(session.broadcast("hello") == "hello");
  CHECK(session.broadcast("").empty());
  const std::string large(1 << 20, 'x');
  CHECK(session.broadcast(large) == large);
  session.barrier();
}

TEST_CASE("only one session is alive at a time", "[session]") {
  amorsize::session& session = amorsize::session::current();
  try {
    amorsize::session second;
    FAIL("a second session was created while one was alive");
  } catch (const amorsize::error& e) {
    CHECK(e.code() == amorsize::exit_code::mpi_failure);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
  CHECK(&amorsize::session::current() == &session);
}
