#!/usr/bin/env bash
# The task farm side by side: amorsize-run's shell job against `xargs -P2` and GNU `parallel -j2` on
# the same task lists, in one sitting: amorsize-run held to 2 workers as they are, as planned (the
# plan may run more workers where tasks leave the cores idle), and under mpirun -np 3 (2 worker ranks).
#   bench/task_farm.sh AMORSIZE_RUN [TASKS]     (default 2000 tasks; needs GNU parallel: scripts/setup.sh)
# For each tool it prints the wall time per task (start-up and planning included) and the overhead
# per task: the wall time per task beyond the task's own time shared by 2 slots (10 ms / 2 for the
# sleeps, 0 for `true`), with and without the fixed start-up (measured on a list of TASKS/10, so the
# difference of the two runs is what each further task costs). The targets: overhead at most 1.2x
# xargs' and at most 1/3 of parallel's. With --jsonl first, it prints one JSON line per tool and list
# instead (scripts/benchmarks.sh tabulates those).
set -euo pipefail
jsonl=false
if [[ ${1:-} == --jsonl ]]; then
  jsonl=true
  shift
fi
run=$(readlink -f "${1:?usage: task_farm.sh [--jsonl] AMORSIZE_RUN [TASKS]}")
tasks=${2:-2000}
few=$((tasks / 10))
command -v parallel >/dev/null || { echo "task_farm: GNU parallel not found (scripts/setup.sh installs it)" >&2; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1

# Prints the wall seconds of running "$@" with the file $list on stdin.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" <"$list" >/dev/null 2>"$work/stderr" || { echo "task_farm: failed: $* ($(tail -3 "$work/stderr"))" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f\n", e - s }'
}

# One workload: LABEL LINE TASK_MS COMMAND...: every task line is LINE, each tool runs COMMAND with it
# as the last argument, and a task takes TASK_MS by itself.
compare() {
  local label=$1 line=$2 task_ms=$3
  shift 3
  local shell=("$run" run shell --input - --command "$*" --output /dev/null --quiet)
  local -a names=("xargs -P2" "parallel -j2" "amorsize-run, 2 workers" "amorsize-run, as planned" "amorsize-run, mpirun -np 3")
  local -a tools=("xargs -P2 -n1" "parallel --will-cite -j2" "2" "planned" "mpi")
  local all=() some=() i
  for n in "$tasks" "$few"; do
    list=$work/list-$n
    awk -v n="$n" -v l="$line" 'BEGIN { for (i = 0; i < n; i++) print l }' >"$list"
    for i in "${!tools[@]}"; do
      case ${tools[$i]} in
        2) s=$(seconds "${shell[@]}" --workers-per-node 2) ;;
        planned) s=$(seconds "${shell[@]}") ;;
        mpi) s=$(seconds mpirun --oversubscribe --bind-to none -np 3 "${shell[@]}") ;;
        *) read -ra tool <<<"${tools[$i]}"; s=$(seconds "${tool[@]}" "$@") ;;
      esac
      if ((n == tasks)); then all[i]=$s; else some[i]=$s; fi
      if $jsonl; then
        printf '{"workload":"%s","system":"%s","items":%d,"wall":%s,"task_ms":%s}\n' \
          "$label" "${names[$i]}" "$n" "$s" "$task_ms"
      fi
    done
  done
  if $jsonl; then return; fi
  echo "$label ($tasks tasks; overhead per task = wall per task - $task_ms ms / 2 slots):"
  for i in "${!tools[@]}"; do
    awk -v name="${names[$i]}" -v n="$tasks" -v f="$few" -v a="${all[$i]}" -v s="${some[$i]}" -v t="$task_ms" \
        -v xa="${all[0]}" -v xs="${some[0]}" -v pa="${all[1]}" -v ps="${some[1]}" 'BEGIN {
      share = t / 2
      over = 1000 * a / n - share; marginal = 1000 * (a - s) / (n - f) - share
      xover = 1000 * xa / n - share; xmarg = 1000 * (xa - xs) / (n - f) - share
      pover = 1000 * pa / n - share; pmarg = 1000 * (pa - ps) / (n - f) - share
      printf "  %-27s %7.3f ms/task, overhead %6.3f ms (%.2fx xargs, %.2fx parallel); without start-up %6.3f ms (%.2fx xargs, %.2fx parallel)\n",
        name, 1000 * a / n, over, over / xover, over / pover, marginal, marginal / xmarg, marginal / pmarg
    }'
  done
}

$jsonl || echo "task_farm: $(nproc) cores, $(date -u +%FT%TZ); targets: overhead <= 1.2x xargs and <= 0.33x parallel"
compare "true" 1 0 true
compare "sleep 10 ms" 0.01 10 sleep
