#!/usr/bin/env bash
# Builds the dev preset and runs the engine benchmark locally, then under mpirun with 3 ranks: scripts/bench.sh [benchmark options].
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh dev
bench=build/dev/bench/amorsize_bench_engine

echo "### without a launcher (local worker processes)"
"$bench" "$@"

echo
echo "### under mpirun -np 3 (the root dispatches, two ranks work)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
mpirun --oversubscribe --bind-to none -np 3 "$bench" "$@"
