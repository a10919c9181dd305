// resume_with_journal: a pool call that survives being stopped. Run it, stop it (Ctrl-C), run it
// again: the second run hands over every record, running only the items the first did not finish.
//   resume_with_journal [JOURNAL=scores.journal] [STOP_AFTER=0]
// STOP_AFTER > 0 stops the call (as Ctrl-C does) after that many records, for a demonstration.
#include <amorsize/amorsize.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

amorsize::stop_request stop;  // drained by Ctrl-C: the records already handed over stay in the journal

/// Scores one word: slow enough to be worth resuming (a stand-in for real work).
long score(const std::string& word) {
  long total = 0;
  for (int round = 0; round < 50000; ++round) {
    for (const char c : word) total = (total * 31 + c + round) % 1000003;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string journal = argc > 1 ? argv[1] : "scores.journal";
  const std::size_t stop_after = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 0;
  std::signal(SIGINT, [](int) { stop.drain(10.0); });

  std::vector<std::string> words;
  for (int i = 0; i < 200; ++i) words.push_back("word" + std::to_string(i));

  amorsize::pool_options options;
  options.workers_per_node = {2};
  options.journal = journal;  // the same file on every run: it resumes the last one
  options.stop = &stop;
  amorsize::pool pool(options);

  auto records = pool.imap(score, words, 4);  // every record, in input order, journaled or computed
  std::size_t handed = 0;
  long sum = 0;
  for (const auto& record : records) {
    if (record) sum += *record;
    if (++handed == stop_after) stop.drain(10.0);
  }
  if (!amorsize::session::current().is_root()) return 0;  // under mpirun the other ranks were the workers
  const amorsize::run_stats stats = records.stats();
  std::printf("%zu records (%zu from the journal), checksum %ld%s\n", stats.items, stats.journaled, sum,
              stats.stopped ? ": stopped, run again to finish" : "");
  return stats.stopped ? 12 : 0;
}
