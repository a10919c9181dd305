// amorsize-run: plans and runs the built-in jobs; every failure ends with a documented exit code.

#include "jobs/builtin.hpp"

int main(int argc, char** argv) { return amorsize::runner::run_command_line(amorsize::jobs::builtin_jobs(), argc, argv); }
