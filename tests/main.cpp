// The serial tests' entry point.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
