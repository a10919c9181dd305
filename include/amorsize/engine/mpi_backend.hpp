#pragma once
/// The MPI backend: the root streams chunks to worker ranks; every other rank serves until told to stop.

#include <amorsize/cluster.hpp>
#include <amorsize/engine/backend.hpp>
#include <amorsize/session.hpp>

#include <memory>
#include <string>
#include <vector>

namespace amorsize::engine {

/// Picks the ranks that work: the first `workers_per_node[n]` non-root ranks of each node n.
std::vector<int> pick_worker_ranks(const cluster_layout& layout, const std::vector<int>& workers_per_node);

/// Checks collectively that every rank is making the same call (`key` names it); throws
/// error(usage) on every rank, naming the ranks that differ, instead of hanging. When they agree,
/// the root's `refusal` of the call (non-empty: its data cannot run) becomes input_error on every rank.
void agree_on_call(session& s, const std::string& key, const std::string& refusal = {});

/// The root's side: sends chunks to `worker_ranks` and receives their results; stop() tells
/// every non-root rank (working or sitting out) to return from serve_chunks.
std::unique_ptr<backend> make_mpi_backend(session& s, std::vector<int> worker_ranks);

/// A non-root rank's side: runs the chunks the root sends with `task` until the root says stop,
/// waiting without spinning a core; returns the number of chunks it ran (0 for a rank sitting out).
/// A worker rank passes its worker number `worker` (current_worker() returns it) and runs `setup`
/// first; a rank sitting out passes -1 and runs no setup.
std::size_t serve_chunks(session& s, const chunk_task& task, int worker = -1, const worker_setup& setup = {});

}  // namespace amorsize::engine
