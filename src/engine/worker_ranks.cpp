// Which ranks work: pure, so builds with and without MPI share it.
#include <amorsize/engine/mpi_backend.hpp>
#include <amorsize/error.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace amorsize::engine {

std::vector<int> pick_worker_ranks(const cluster_layout& layout, const std::vector<int>& workers_per_node) {
  if (workers_per_node.size() != layout.ranks_per_node.size()) {
    throw input_error("the plan names " + std::to_string(workers_per_node.size()) + " nodes but the run has " +
                      std::to_string(layout.ranks_per_node.size()) + ": plan on this run's layout");
  }
  std::vector<int> wanted(workers_per_node.size());
  std::transform(workers_per_node.begin(), workers_per_node.end(), wanted.begin(),
                 [](int count) { return std::max(count, 0); });
  std::vector<int> ranks;
  for (int rank = 1; rank < static_cast<int>(layout.node_of_rank.size()); ++rank) {
    int& left = wanted.at(static_cast<std::size_t>(layout.node_of_rank[static_cast<std::size_t>(rank)]));
    if (left > 0) {
      --left;
      ranks.push_back(rank);
    }
  }
  return ranks;
}

}  // namespace amorsize::engine
