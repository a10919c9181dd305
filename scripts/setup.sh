#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and the Slurm scripts need; idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  openmpi-bin libopenmpi-dev libboost-mpi-dev libboost-serialization-dev
  catch2 libhwloc-dev nlohmann-json3-dev libcli11-dev
  slurm-wlm munge shellcheck procps
  parallel  # the task-farm benchmark compares with GNU parallel
  libtbb-dev python3-mpi4py python3-matplotlib python3-numpy  # the peers and plots of scripts/benchmarks.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: missing packages ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
