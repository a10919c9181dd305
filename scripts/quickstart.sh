#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds amorsize and plans the default synthetic workload.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh dev
# The default workload: 2000 items of 5 ms on average with some spread; pass options to change it.
if (($# == 0)); then set -- --items 2000 --mean-ms 5 --dist lognormal --cv 0.3; fi
exec build/dev/amorsize-run plan synthetic "$@"
