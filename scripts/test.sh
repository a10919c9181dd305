#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds with warnings as errors and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh ci
ctest --preset ci "$@"
