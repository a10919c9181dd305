// The session of a build with MPI: Boost.MPI's environment under a launcher, node discovery,
// link measurement and collectives that wait without spinning a core.
#include <amorsize/session.hpp>

#include "session_common.hpp"
#include "mpi_transport.hpp"

#include <boost/mpi/detail/mpi_datatype_cache.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/mpi/exception.hpp>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace amorsize {
namespace {

using mpi_transport::barrier_politely;
using mpi_transport::broadcast_text;
using mpi_transport::broadcast_value;
using mpi_transport::check;
using mpi_transport::gather_text;
using mpi_transport::owned_comm;
using mpi_transport::steady;
using mpi_transport::transfer_spin;

/// A measured round trip: its message size, unmeasured warm-ups, and how many are timed at most
/// and at least; past `budget` a phase stops at its least count, so a busy machine ends it early.
struct round_trip_phase {
  int bytes;
  int warmups;
  int most;
  int least;
  std::chrono::microseconds budget;
};
constexpr round_trip_phase small_phase{8, 2, 20, 5, std::chrono::microseconds{2000}};
constexpr round_trip_phase large_phase{256 * 1024, 1, 4, 1, std::chrono::microseconds{2000}};

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

/// Calls `visit(name, field)` for every field of `facts`, so writing and reading list them once.
template <class Facts, class Visit>
void visit_fields(Facts& facts, Visit&& visit) {
  visit("hostname", facts.hostname);
  visit("physical_cores", facts.physical_cores);
  visit("logical_cores", facts.logical_cores);
  visit("numa_nodes", facts.numa_nodes);
  visit("affinity_cpus", facts.affinity_cpus);
  visit("cpu_quota", facts.cpu_quota);
  visit("total_memory", facts.total_memory);
  visit("available_memory", facts.available_memory);
  visit("usable_cores", facts.usable_cores);
  visit("load_average", facts.load_average);
  visit("probe_seconds", facts.probe_seconds);
  visit("slurm_present", facts.slurm.present);
  visit("slurm_job_id", facts.slurm.job_id);
  visit("slurm_cpus_on_node", facts.slurm.cpus_on_node);
  visit("slurm_ntasks", facts.slurm.ntasks);
  visit("slurm_ntasks_per_node", facts.slurm.ntasks_per_node);
  visit("slurm_cpus_per_task", facts.slurm.cpus_per_task);
  visit("slurm_nnodes", facts.slurm.nnodes);
  visit("slurm_node_id", facts.slurm.node_id);
}

nlohmann::json facts_to_json(const node_facts& facts) {
  nlohmann::json json;
  visit_fields(facts, [&json](const char* name, const auto& field) { json[name] = field; });
  return json;
}

node_facts facts_from_json(const nlohmann::json& json) {
  node_facts facts;
  visit_fields(facts, [&json](const char* name, auto& field) { json.at(name).get_to(field); });
  return facts;
}

std::string layout_to_text(const cluster_layout& layout) {
  nlohmann::json json;
  json["world_size"] = layout.world_size;
  json["nodes"] = nlohmann::json::array();
  for (const node_facts& facts : layout.nodes) {
    json["nodes"].push_back(facts_to_json(facts));
  }
  json["ranks_per_node"] = layout.ranks_per_node;
  json["node_of_rank"] = layout.node_of_rank;
  return json.dump();
}

cluster_layout layout_from_text(const std::string& text) {
  const nlohmann::json json = nlohmann::json::parse(text);
  cluster_layout layout;
  layout.mpi = true;
  layout.world_size = json.at("world_size").get<int>();
  for (const nlohmann::json& facts : json.at("nodes")) {
    layout.nodes.push_back(facts_from_json(facts));
  }
  layout.ranks_per_node = json.at("ranks_per_node").get<std::vector<int>>();
  layout.node_of_rank = json.at("node_of_rank").get<std::vector<int>>();
  return layout;
}

/// Finds the nodes and their ranks; collective over `comm`, the same result on every rank.
cluster_layout discover_layout(MPI_Comm comm, int rank, int size) {
  // The split blocks (and spins): line the ranks up first so that none waits in it for long.
  barrier_politely(comm);
  owned_comm node_comm;
  check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, node_comm.out()),
        "MPI_Comm_split_type");
  int node_rank = 0;
  check(MPI_Comm_rank(node_comm.get(), &node_rank), "MPI_Comm_rank");
  // Keyed by world rank, so a node's leader (node rank 0) is its lowest world rank and the root leads node 0.
  int leader = rank;
  broadcast_value(leader, node_comm.get());

  nlohmann::json mine{{"leader", leader}};
  if (node_rank == 0) {
    mine["facts"] = facts_to_json(probe_node());
  }
  const std::vector<std::string> gathered = gather_text(mine.dump(), comm);

  std::string text;
  cluster_layout layout;
  if (rank == 0) {
    // Nodes are numbered in the order of their leaders' ranks; a leader comes before the rest of its node.
    std::vector<int> node_led_by(gathered.size(), -1);
    layout.mpi = true;
    layout.world_size = size;
    for (std::size_t r = 0; r < gathered.size(); ++r) {
      const nlohmann::json entry = nlohmann::json::parse(gathered[r]);
      if (entry.contains("facts")) {
        node_led_by[r] = static_cast<int>(layout.nodes.size());
        layout.nodes.push_back(facts_from_json(entry.at("facts")));
        layout.ranks_per_node.push_back(0);
      }
      const int node = node_led_by.at(entry.at("leader").get<std::size_t>());
      layout.node_of_rank.push_back(node);
      ++layout.ranks_per_node.at(static_cast<std::size_t>(node));
    }
    text = layout_to_text(layout);
  }
  text = broadcast_text(text, comm);
  return rank == 0 ? layout : layout_from_text(text);
}

/// The partners the root measures against: the first other rank on its node and the first rank elsewhere.
struct link_partners {
  int same_node = -1;
  int other_node = -1;
};

link_partners find_partners(const cluster_layout& layout) {
  link_partners partners;
  for (int rank = 1; rank < layout.world_size; ++rank) {
    int& partner = layout.node_of_rank[static_cast<std::size_t>(rank)] == 0 ? partners.same_node
                                                                            : partners.other_node;
    if (partner < 0) {
      partner = rank;
    }
  }
  return partners;
}

/// Sends the first `bytes` bytes of `buffer` to `peer` as a link message.
void send_to(MPI_Comm comm, int peer, std::vector<char>& buffer, int bytes) {
  mpi_transport::send_politely(comm, peer, mpi_transport::tag::link,
                               std::span<const char>(buffer.data(), static_cast<std::size_t>(bytes)), transfer_spin);
}

/// Receives a link message from `peer` into `buffer` and returns its size in bytes.
int receive_from(MPI_Comm comm, int peer, std::vector<char>& buffer) {
  return mpi_transport::receive_politely(comm, peer, mpi_transport::tag::link, buffer, transfer_spin);
}

/// Returns the sorted round-trip times of `phase` with `partner`.
std::vector<double> time_round_trips(MPI_Comm comm, int partner, std::vector<char>& buffer,
                                     const round_trip_phase& phase) {
  const steady::time_point deadline = steady::now() + phase.budget;
  std::vector<double> times;
  for (int i = 0; i < phase.warmups + phase.most; ++i) {
    const steady::time_point start = steady::now();
    send_to(comm, partner, buffer, phase.bytes);
    receive_from(comm, partner, buffer);
    if (i >= phase.warmups) {
      times.push_back(seconds_since(start));
      if (static_cast<int>(times.size()) >= phase.least && steady::now() > deadline) {
        break;
      }
    }
  }
  std::sort(times.begin(), times.end());
  return times;
}

/// Measures the root's round trips with `partner`, which runs echo_link, and then stops it.
link_cost measure_link(MPI_Comm comm, int partner, std::vector<char>& buffer) {
  link_cost link;
  link.measured = true;
  link.partner_rank = partner;
  const std::vector<double> small = time_round_trips(comm, partner, buffer, small_phase);
  link.latency_seconds = small[small.size() / 2] / 2.0;
  const double large_one_way = time_round_trips(comm, partner, buffer, large_phase).front() / 2.0;
  send_to(comm, partner, buffer, 0);
  // A large message faster than the latency estimate (noise) is charged in full.
  const double transfer = large_one_way > link.latency_seconds ? large_one_way - link.latency_seconds
                                                               : large_one_way;
  link.bandwidth_bytes_per_second = transfer > 0.0 ? large_phase.bytes / transfer : 0.0;
  return link;
}

/// Sends every message of measure_link back to the root, until an empty one.
void echo_link(MPI_Comm comm, std::vector<char>& buffer) {
  for (;;) {
    const int bytes = receive_from(comm, 0, buffer);
    if (bytes == 0) {
      return;
    }
    send_to(comm, 0, buffer, bytes);
  }
}

/// Measures the root's links to its partners; collective over `comm`, the same result on every rank.
mpi_links measure_links(MPI_Comm comm, int rank, const cluster_layout& layout) {
  const steady::time_point start = steady::now();
  const link_partners partners = find_partners(layout);
  mpi_links links;
  if (rank == 0 || rank == partners.same_node || rank == partners.other_node) {
    std::vector<char> buffer(static_cast<std::size_t>(large_phase.bytes));
    for (auto [partner, link] : {std::pair{partners.same_node, &links.same_node},
                                 std::pair{partners.other_node, &links.other_node}}) {
      if (partner < 0) {
        continue;
      }
      if (rank == 0) {
        *link = measure_link(comm, partner, buffer);
      } else if (rank == partner) {
        echo_link(comm, buffer);
      }
    }
  }
  links.measure_seconds = seconds_since(start);

  broadcast_value(links, comm);
  return links;
}

}  // namespace

struct session::impl {
  // Declared first so it is destroyed last: MPI_Finalize comes after comm_ is freed.
  std::optional<boost::mpi::environment> environment_;
  bool mpi_ = false;
  int rank_ = 0;
  int size_ = 1;
  /// A private copy of MPI_COMM_WORLD, so the session's messages never meet the user's.
  std::optional<mpi_transport::session_comm> comm_;
  std::optional<cluster_layout> layout_;
  /// The links as first measured, and the copy later calls return (measure_seconds 0).
  std::optional<mpi_links> links_;
  std::optional<mpi_links> cached_links_;

  /// Initialises MPI under a launcher (or adopts the user's) and makes the session's communicator.
  void start(const session& self) {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    // Without a launcher MPI stays down, so a local pool may fork; MPI the user started is used as is.
    if (initialized == 0 && !launched_by_mpi(environment_variable)) {
      return;
    }
    if (mpi_transport::mpi_finalized()) {
      throw error(exit_code::mpi_failure,
                  "MPI was already finalized: create the amorsize session before MPI_Finalize");
    }
    if (initialized == 0) {
      // Boost.MPI's environment clears this cache when it finalizes; creating the cache first makes it
      // outlive a session held in a static (boostorg/mpi issue #92).
      boost::mpi::detail::mpi_datatype_cache();
      try {
        // Funneled lets the user's function run threads; amorsize calls MPI from this thread only,
        // so a library that provides just `single` works as well.
        environment_.emplace(boost::mpi::threading::funneled);
      } catch (const boost::mpi::exception& e) {
        throw error(exit_code::mpi_failure,
                    std::string("MPI initialisation failed under an MPI launcher: ") + e.what());
      }
    }
    mpi_ = true;
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    comm_.emplace(self);
  }
};

session::session() : impl_(std::make_unique<impl>()) {
  session_detail::claim(*this);
  try {
    impl_->start(*this);
  } catch (...) {
    session_detail::release(*this);
    throw;
  }
}

session::~session() {
  impl_.reset();
  session_detail::release(*this);
}

session& session::current() { return session_detail::current(); }

bool session::alive() noexcept { return session_detail::live_session.load() != nullptr; }

bool session::mpi() const noexcept { return impl_->mpi_; }

int session::rank() const noexcept { return impl_->rank_; }

int session::size() const noexcept { return impl_->size_; }

const cluster_layout& session::layout() {
  if (!impl_->layout_) {
    impl_->layout_ = impl_->mpi_ ? discover_layout(impl_->comm_->get(), impl_->rank_, impl_->size_)
                                 : session_detail::single_process_layout();
  }
  return *impl_->layout_;
}

const mpi_links& session::links() {
  if (impl_->cached_links_) {
    return *impl_->cached_links_;
  }
  impl_->links_ = impl_->mpi_ ? measure_links(impl_->comm_->get(), impl_->rank_, layout()) : mpi_links{};
  impl_->cached_links_ = impl_->links_;
  impl_->cached_links_->measure_seconds = 0.0;
  return *impl_->links_;
}

std::string session::broadcast(const std::string& text) {
  return impl_->mpi_ ? broadcast_text(text, impl_->comm_->get()) : text;
}

void session::barrier() {
  if (impl_->mpi_) {
    barrier_politely(impl_->comm_->get());
  }
}

}  // namespace amorsize
