#!/usr/bin/env bash
# Configures and builds one CMake preset (default: dev), every target or those named:
#   scripts/build.sh [preset [target...]]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}
cmake --preset "$preset" >/dev/null
targets=("${@:2}")
cmake --build --preset "$preset" -j "$(nproc)" ${targets[@]:+--target "${targets[@]}"}
