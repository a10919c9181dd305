// record_digests: computes a digest of every record of a batch in parallel, the same program without
// a launcher (local worker processes) and under mpirun or srun (MPI ranks).
//   record_digests [ITEMS=600] [OUTPUT=digests.tsv]
// The root writes one line per record to OUTPUT ("index<TAB>digest", or "index<TAB>error<TAB>message"),
// prints the plan and a summary; every rank prints one line to stderr when it is done.
#include <amorsize/amorsize.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

/// One record's digest; a result crosses ranks as a Boost archive, so it is serializable.
struct record_digest {
  std::uint64_t digest = 0;  ///< FNV-1a of the record, stretched over many rounds.
  std::uint32_t bytes = 0;   ///< The record's size.

  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar & digest & bytes;
  }
};

/// Builds record `id`: 4 KiB of deterministic text, the same on every rank.
std::string make_record(std::uint32_t id) {
  std::string record;
  record.reserve(4096);
  std::uint64_t state = 0x9e3779b97f4a7c15ULL * (id + 1);
  while (record.size() < 4096) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
    record += static_cast<char>('a' + state % 26);
  }
  return record;
}

/// Returns the digest of record `id`, stretched to a few milliseconds (a stand-in for real work:
/// parsing, compressing, scoring); every 97th record is corrupt and throws.
record_digest digest_record(const std::uint32_t& id) {
  if (id % 97 == 96) throw std::runtime_error("record " + std::to_string(id) + " is corrupt: bad header");
  const std::string record = make_record(id);
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (int round = 0; round < 100; ++round) {
    for (const char c : record) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  return {hash, static_cast<std::uint32_t>(record.size())};
}

/// Reads the item count; the same on every rank, so every rank fails alike on a bad one.
std::uint32_t parse_items(const char* text) {
  const std::string s(text);
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) {
    throw amorsize::input_error("ITEMS must be a count below 10^9, got '" + s + "'");
  }
  return static_cast<std::uint32_t>(std::stoul(s));
}

/// Formats a digest as 16 hex digits.
std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

int main(int argc, char** argv) {
  // Under mpirun/srun every rank runs all of main; without a launcher there is one process, the root.
  amorsize::session& session = amorsize::session::current();  // MPI_Init under a launcher only
  const bool root = session.is_root();
  try {
    const std::uint32_t items = argc > 1 ? parse_items(argv[1]) : 600;
    const std::string output_path = argc > 2 ? argv[2] : "digests.tsv";

    // Only the root writes. A failure only it sees must reach every rank: a rank that leaves
    // early would leave the others waiting in the next collective call.
    std::ofstream output;
    std::string problem;
    if (root) {
      output.open(output_path);
      if (!output) problem = "cannot open " + output_path + " for writing";
    }
    problem = session.broadcast(problem);
    if (!problem.empty()) throw amorsize::input_error(problem);

    // Every rank makes the same amorsize calls in the same order; only the root's items are read.
    std::vector<std::uint32_t> ids(items);
    std::iota(ids.begin(), ids.end(), 0U);
    auto result = amorsize::optimize_streaming(digest_record, ids);  // the plan reaches every rank
    if (root) std::cout << result.explain() << std::flush;

    amorsize::pool pool(result);
    std::size_t records = 0;
    std::size_t failed = 0;
    // On the root: every record, in the plan's order. Elsewhere: serves chunks, then yields nothing.
    for (const auto& r : pool.stream(digest_record, result)) {
      ++records;
      if (r) {
        output << r.index() << '\t' << hex(r->digest) << '\n';
      } else {
        ++failed;  // the item threw: its record carries the message, the others went on
        output << r.index() << "\terror\t" << r.error() << '\n';
      }
    }

    // Code after the pool calls runs on every rank: guard output with is_root().
    // One string, one write: the ranks share stderr, and pieces of their lines would interleave.
    std::cerr << "rank " + std::to_string(session.rank()) + " of " + std::to_string(session.size()) + " done\n";
    if (root) {
      output.close();
      if (!output) {
        std::cerr << "record_digests: writing " << output_path << " failed\n";
        return 1;
      }
      std::cout << records << " records, " << failed << " failed, in " << output_path << '\n';
    }
    return 0;
  } catch (const amorsize::error& e) {
    // amorsize's errors before the run (bad options, a source that threw while sampled, ...) reach
    // every rank; those during it (a source that threw later) only the root, whose exit code mpirun reports.
    if (root) std::cerr << "record_digests: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {  // out of memory, ...: on this rank only
    std::cerr << "record_digests: rank " << session.rank() << ": " << e.what() << '\n';
    return 1;
  }
}
