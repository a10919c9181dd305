#!/usr/bin/env bash
# Starts or stops a private simulated Slurm cluster (nodes fn1..fnN, each slurmd in its own UTS namespace) under DIR.
#   slurm/cluster.sh start DIR [NODES=3] [PORT_BASE=7817]   then: export SLURM_CONF=DIR/slurm.conf
#   slurm/cluster.sh stop DIR
set -euo pipefail

prog=${0##*/}

usage() {
  cat >&2 <<EOF
usage: $prog start DIR [NODES=3] [PORT_BASE=7817]
       $prog stop DIR
EOF
  exit 2
}

die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

# Starts munged (Slurm's authentication daemon) idempotently. munged refuses to start when /run/munge
# is missing or its log file is owned by root, so both are fixed first.
start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  if [[ -e /var/log/munge/munged.log ]]; then chown munge:munge /var/log/munge/munged.log; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0600 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  timeout 10 bash -c 'until munge -n 2>/dev/null | unmunge >/dev/null 2>&1; do sleep 0.1; done' ||
    die "munged did not start (see /var/log/munge/munged.log)"
}

# True when the pid recorded in file $1 is a live process (not a zombie) whose command is $2.
alive() {
  local file=$1 name=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# Prints the slurm.conf of a cluster of $2 nodes under folder $1 on ports from $3 (paths double-quoted: DIR may hold spaces).
write_conf() {
  local dir=$1 n=$2 base=$3 cpus
  cpus=$(nproc)
  cat <<CONF
# Simulated cluster written by slurm/cluster.sh: $n nodes on this machine, ports from $base.
ClusterName=sim$base
# job ids must not collide with another cluster's: PMIx names its directories after them
FirstJobId=$((base * 100))
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation="$dir/state"
SlurmdSpoolDir="$dir/spool/%n"
SlurmctldPidFile="$dir/run/slurmctld.pid"
SlurmdPidFile="$dir/run/slurmd-%n.pid"
SlurmctldLogFile="$dir/log/slurmctld.log"
SlurmdLogFile="$dir/log/slurmd-%n.log"
SlurmdParameters=config_overrides
# one TmpFS per node, or every srun step fails on a shared PMIx directory
TmpFS="$dir/tmp/%n"
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
# IP literals, not made-up host names: those go to DNS, which may stall for seconds
NodeName=fn[1-$n] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[$((base + 4))-$((base + 3 + n))] CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=sim Nodes=fn[1-$n] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
}

start() {
  (($# >= 1 && $# <= 3)) || usage
  local n=${2:-3} base=${3:-7817}
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "NODES must be a positive count, got '$n'"
  if ! [[ $base =~ ^[1-9][0-9]*$ ]] || ((base < 1024 || base + 3 + n > 65535)); then
    die "PORT_BASE must be a port from 1024 leaving room for $((n + 3)) more, got '$base'"
  fi
  [[ $(id -u) -eq 0 ]] || die "needs root (unshare --uts, munged, SlurmUser=root)"
  for tool in slurmctld slurmd scontrol sinfo munge unmunge unshare; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs slurm-wlm and munge)"
  done
  local dir
  dir=$(readlink -m -- "$1")
  # slurm.conf holds each path in double quotes, which cannot hold these; Slurm expands % in some paths.
  [[ $dir != *[\"#%]* && $dir != *$'\n'* ]] || die "DIR must not hold a double quote, #, % or a line break: $dir"
  mkdir -p "$dir"/{state,run,log,spool,tmp}
  local i
  for ((i = 1; i <= n; i++)); do mkdir -p "$dir/spool/fn$i" "$dir/tmp/fn$i"; done

  local conf=$dir/slurm.conf
  if alive "$dir/run/slurmctld.pid" slurmctld; then
    # Running already: the configuration must be the one asked for.
    write_conf "$dir" "$n" "$base" | cmp -s - "$conf" ||
      die "a cluster with another configuration runs in $dir: '$prog stop $dir' first"
  else
    write_conf "$dir" "$n" "$base" >"$conf"
  fi

  start_munge
  export SLURM_CONF=$conf
  if ! alive "$dir/run/slurmctld.pid" slurmctld; then
    slurmctld -f "$conf" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
  fi
  timeout 30 bash -c 'until scontrol ping 2>/dev/null | grep -q UP; do sleep 0.1; done' ||
    die "slurmctld does not answer on port $base (see $dir/log/slurmctld.log)"
  for ((i = 1; i <= n; i++)); do
    if ! alive "$dir/run/slurmd-fn$i.pid" slurmd; then
      # Its own UTS namespace: each "node" has its own hostname, so MPI sees separate nodes.
      # The values are sh's positional parameters, never part of its code: DIR may hold any character.
      # shellcheck disable=SC2016  # single quotes on purpose
      unshare --uts sh -c 'hostname "$1" && exec slurmd -f "$2" -N "$1"' sh "fn$i" "$conf" ||
        die "slurmd fn$i did not start (see $dir/log/slurmd-fn$i.log)"
    fi
  done
  # shellcheck disable=SC2016  # single quotes on purpose: the node count is bash's $1, not part of its code
  timeout 60 bash -c 'until (($(sinfo -h -N -o %T | grep -c -E "^(idle|mixed|allocated)$") >= $1)); do sleep 0.1; done' bash "$n" ||
    die "not every node came up (see $dir/log/): $(sinfo -h -N -o '%N %T' | tr '\n' ' ')"
  sinfo
  printf '\nCluster up. Use it with:\n  export SLURM_CONF=%s\nStop it with:\n  %s stop %s\n' "$conf" "$0" "$dir"
}

stop() {
  (($# == 1)) || usage
  [[ -d $1 ]] || die "no cluster directory $1"
  local dir
  dir=$(readlink -f -- "$1")
  export SLURM_CONF=$dir/slurm.conf
  # Cancel its jobs first, so that no job step outlives its slurmd.
  if alive "$dir/run/slurmctld.pid" slurmctld && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    local jobs=()
    mapfile -t jobs < <(timeout 5 squeue -h -o %i 2>/dev/null || true)
    if ((${#jobs[@]} > 0)); then
      timeout 5 scancel "${jobs[@]}" 2>/dev/null || true
      local tries
      for ((tries = 0; tries < 100; tries++)); do
        [[ -n $(timeout 5 squeue -h -o %i 2>/dev/null) ]] || break
        sleep 0.1
      done
    fi
  fi
  local pids=() f
  for f in "$dir"/run/slurmd-*.pid "$dir"/run/slurmctld.pid; do
    [[ -e $f ]] || continue
    if alive "$f" slurmd || alive "$f" slurmctld; then
      pids+=("$(<"$f")")
    fi
  done
  if ((${#pids[@]} > 0)); then
    kill "${pids[@]}" 2>/dev/null || true
    local p left killed=0 deadline=$((SECONDS + 15))
    while :; do
      left=()
      for p in "${pids[@]}"; do
        if [[ -e /proc/$p ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; then left+=("$p"); fi
      done
      ((${#left[@]} == 0)) && break
      if ((SECONDS >= deadline)); then
        ((killed == 0)) || die "pids ${left[*]} outlived SIGKILL"
        kill -KILL "${left[@]}" 2>/dev/null || true
        killed=1
        deadline=$((SECONDS + 5))
      fi
      sleep 0.1
    done
  fi
  rm -f "$dir"/run/*.pid
  echo "Cluster in $dir stopped."
}

(($# >= 1)) || usage
command=$1
shift
case $command in
  start) start "$@" ;;
  stop) stop "$@" ;;
  *) usage ;;
esac
