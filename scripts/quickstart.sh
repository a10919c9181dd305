#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds amorsize and plans the default synthetic workload.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh dev
exec build/dev/amorsize-run plan synthetic "$@"
