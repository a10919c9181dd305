#!/usr/bin/env bash
# The task farm side by side: amorsize-run's shell job against `xargs -P2` and GNU `parallel -j2` on
# the same task lists, in one sitting, then amorsize-run under mpirun -np 3 (two worker ranks).
# Prints milliseconds per task (wall time / tasks, start-up and planning included) and the ratios the
# targets name (at most 1.2x xargs, at most 1/3 of parallel) with amorsize-run held to 2 workers as
# they are, and as planned (the plan may run more workers where tasks leave the cores idle).
#   bench/task_farm.sh AMORSIZE_RUN [TASKS]     (default 2000 tasks; needs GNU parallel: scripts/setup.sh)
set -euo pipefail
run=$(readlink -f "${1:?usage: task_farm.sh AMORSIZE_RUN [TASKS]}")
tasks=${2:-2000}
command -v parallel >/dev/null || { echo "task_farm: GNU parallel not found (scripts/setup.sh installs it)" >&2; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seq 1 "$tasks" >"$work/numbers.txt"
awk -v n="$tasks" 'BEGIN { for (i = 0; i < n; i++) print "0.01" }' >"$work/sleeps.txt"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1

# Prints the wall seconds of running "$@" with the task list $list on stdin.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" <"$list" >/dev/null 2>"$work/stderr" || { echo "task_farm: failed: $* ($(tail -3 "$work/stderr"))" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f\n", e - s }'
}

# One workload: LABEL LIST COMMAND...; each tool runs COMMAND with the task's line as its last argument.
compare() {
  local label=$1
  list=$2
  shift 2
  local xargs_s parallel_s two_s planned_s mpi_s
  local shell=("$run" run shell --input - --command "$*" --output /dev/null --quiet)
  xargs_s=$(seconds xargs -P2 -n1 "$@")
  parallel_s=$(seconds parallel --will-cite -j2 "$@")
  two_s=$(seconds "${shell[@]}" --workers-per-node 2)
  planned_s=$(seconds "${shell[@]}")
  mpi_s=$(seconds mpirun --oversubscribe --bind-to none -np 3 "${shell[@]}")
  awk -v label="$label" -v n="$tasks" -v x="$xargs_s" -v p="$parallel_s" -v a="$two_s" -v w="$planned_s" -v m="$mpi_s" 'BEGIN {
    printf "%-12s ms/task: xargs -P2 %.3f | parallel -j2 %.3f | amorsize-run, 2 workers %.3f | amorsize-run, as planned %.3f | amorsize-run under mpirun -np 3 (2 worker ranks) %.3f\n", label, 1000*x/n, 1000*p/n, 1000*a/n, 1000*w/n, 1000*m/n
    printf "%-12s ratios: amorsize(2 workers)/xargs %.2f (target <= 1.2) | amorsize(2 workers)/parallel %.2f (target <= 0.33) | as planned/xargs %.2f | mpirun/xargs %.2f\n", label, a/x, a/p, w/x, m/x
  }'
}

echo "task_farm: $tasks tasks each, $(nproc) cores, $(date -u +%FT%TZ)"
compare "true" "$work/numbers.txt" true
compare "sleep 10 ms" "$work/sleeps.txt" sleep
