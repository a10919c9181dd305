#!/usr/bin/env bash
# The benchmark suite under its old name: scripts/bench.sh [options] is scripts/benchmarks.sh [options].
set -euo pipefail
exec "$(dirname "$0")/benchmarks.sh" "$@"
