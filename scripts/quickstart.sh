#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds amorsize, then plans and runs the default synthetic workload.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh dev
# The default workload: 1000 items of 5 ms on average with some spread; pass options to change it.
# The plan's explanation goes to stderr, one JSON line per item to build/dev/quickstart.jsonl, and
# the report (predicted and measured speedup, ...) to stdout.
if (($# == 0)); then set -- --items 1000 --mean-ms 5 --dist lognormal --cv 0.3; fi
exec build/dev/amorsize-run run synthetic --verbose --output build/dev/quickstart.jsonl --report /dev/stdout "$@"
