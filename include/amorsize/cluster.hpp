#pragma once
/// The shape of a run: its nodes, the ranks on each, and the measured cost of messages between them.

#include <amorsize/probe.hpp>

#include <vector>

namespace amorsize {

/// Measured cost of sending a message between the root and one partner rank.
struct link_cost {
  bool measured = false;                   ///< False when there was no partner to measure against.
  int partner_rank = -1;                   ///< The rank the root measured against.
  double latency_seconds = 0.0;            ///< Half the round trip of an 8-byte message (median).
  double bandwidth_bytes_per_second = 0.0; ///< Bytes per second of a large message, one way.

  /// Returns the one-way time of a message of `bytes` bytes over this link.
  [[nodiscard]] double transfer_seconds(double bytes) const {
    return latency_seconds + (bandwidth_bytes_per_second > 0.0 ? bytes / bandwidth_bytes_per_second : 0.0);
  }
};

/// Message costs from the root to a rank on its own node and to a rank on another node.
struct mpi_links {
  link_cost same_node;           ///< Root to a rank on the root's node.
  link_cost other_node;          ///< Root to a rank on another node.
  double measure_seconds = 0.0;  ///< Time the measurement took on the root (0 when cached).
};

/// Where the ranks of a run are; a run without a launcher is one node with one rank.
struct cluster_layout {
  bool mpi = false;                 ///< True when running under an MPI launcher.
  int world_size = 1;               ///< Number of ranks.
  std::vector<node_facts> nodes;    ///< One entry per node; the root's node is nodes[0].
  std::vector<int> ranks_per_node;  ///< Ranks on each node, in the order of `nodes`.
  std::vector<int> node_of_rank;    ///< Node index of every rank (index = rank).
};

}  // namespace amorsize
