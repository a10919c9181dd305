#include <amorsize/error.hpp>
#include <amorsize/pool.hpp>

#include <string>

namespace amorsize {
namespace {

/// Largest chunk size a caller may ask for; anything larger is a negative number converted, most likely.
constexpr std::size_t max_chunksize = std::size_t{1} << 31;

/// Writes `counts` as "{a, b, c}".
std::string braced(const std::vector<int>& counts) {
  std::string out = "{";
  for (std::size_t i = 0; i < counts.size(); ++i) out += (i ? ", " : "") + std::to_string(counts[i]);
  return out + "}";
}

}  // namespace

void validate(const pool_options& options) {
  const std::vector<int>& workers = options.workers_per_node;
  bool any = false;
  for (std::size_t n = 0; n < workers.size(); ++n) {
    if (workers[n] < 0) {
      throw input_error("pool: workers_per_node[" + std::to_string(n) + "] is " + std::to_string(workers[n]) +
                        " (pool(n) sets {n}): a worker count cannot be negative; give 1 or more (0 leaves a node out)");
    }
    any = any || workers[n] > 0;
  }
  if (!workers.empty() && !any) {
    throw input_error("pool: workers_per_node " + braced(workers) +
                      " (pool(n) sets {n}) gives no node a worker: give at least one worker, leave it empty to "
                      "let the pool decide, or choose backend serial");
  }
  validate_chunksize(options.schedule.chunksize);
}

void validate_chunksize(std::size_t chunksize) {
  if (chunksize > max_chunksize) {
    throw input_error("pool: chunk size " + std::to_string(chunksize) + " is over the maximum " +
                      std::to_string(max_chunksize) +
                      "; it looks like a negative number converted to std::size_t: give a positive chunk size, "
                      "or 0 to let the pool decide");
  }
}

}  // namespace amorsize
