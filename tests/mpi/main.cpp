// The multi-rank tests' entry point: every rank runs every test inside one amorsize session.
//
// Rank 0 reports as usual; another rank keeps its report to itself unless it failed, and the
// process exits with the worst result over all ranks, so a failure anywhere fails the test.
#define CATCH_CONFIG_RUNNER
#include <amorsize/session.hpp>

#include <catch2/catch.hpp>
#include <mpi.h>

#include <iostream>
#include <sstream>
#include <string>

namespace {

/// Runs the tests with std::cout and std::cerr sent to `captured`.
int run_captured(Catch::Session& tests, std::ostringstream& captured) {
  std::streambuf* const out = std::cout.rdbuf(captured.rdbuf());
  std::streambuf* const err = std::cerr.rdbuf(captured.rdbuf());
  int result = 0;
  try {
    result = tests.run();
  } catch (...) {
    result = 1;
    captured << "an exception escaped the test session\n";
  }
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);
  return result;
}

/// Prints `text` to stderr with every line prefixed by the rank.
void print_prefixed(const std::string& text, int rank) {
  std::istringstream lines(text);
  std::ostringstream prefixed;
  for (std::string line; std::getline(lines, line);) {
    prefixed << "[rank " << rank << "] " << line << '\n';
  }
  std::cerr << prefixed.str() << std::flush;
}

}  // namespace

int main(int argc, char* argv[]) {
  amorsize::session session;
  Catch::Session tests;
  int result = tests.applyCommandLine(argc, argv);
  if (result == 0) {
    if (session.is_root()) {
      result = tests.run();
    } else {
      std::ostringstream captured;
      result = run_captured(tests, captured);
      if (result != 0) {
        print_prefixed(captured.str(), session.rank());
      }
    }
  }
  int worst = result;
  if (session.mpi()) {
    MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  }
  return worst;
}
