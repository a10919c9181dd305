#!/usr/bin/env bash
# Submits slurm/run.sbatch (the synthetic job, then a shell task list) and slurm/plan.sbatch with -N 3 -n 6 to a
# private simulated 3-node Slurm cluster and checks the jobs, their records, report and plan;
# with EXAMPLE, submits docs/examples/record_digests.sbatch the same way with that program and checks its output.
#   check_sbatch.sh BUILD_DIR [EXAMPLE]    (BUILD_DIR holds amorsize-run; EXAMPLE is the built record_digests;
#                                           exits 77, skipped, without root or Slurm)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
cluster_sh=$src/slurm/cluster.sh
nodes=3 tasks=6 items=600
job_timeout=${AMORSIZE_SLURM_JOB_TIMEOUT:-180}

fail() {
  printf 'check_sbatch: FAIL: %s\n' "$*" >&2
  exit 1
}
skip() {
  printf 'check_sbatch: SKIP: %s\n' "$*" >&2
  exit 77
}

(($# == 1 || $# == 2)) || { echo "usage: check_sbatch.sh BUILD_DIR [EXAMPLE]" >&2; exit 2; }
run=$(readlink -f "$1")/amorsize-run
[[ -x $run ]] || fail "no executable $run (build the amorsize-run target)"
example=
if (($# == 2)); then
  example=$(readlink -f "$2")
  [[ -x $example ]] || fail "no executable $example (the CTest example_build builds it)"
fi
[[ $(id -u) -eq 0 ]] || skip "the simulated cluster needs root"
for tool in slurmctld slurmd sbatch squeue scontrol srun munged unshare; do
  command -v "$tool" >/dev/null || skip "$tool not found (scripts/setup.sh installs slurm-wlm and munge)"
done

# Nothing from a surrounding allocation or another cluster may leak into ours.
while read -r var; do unset "$var"; done < <(compgen -v SLURM_)

work=$(mktemp -d "${TMPDIR:-/tmp}/amorsize-slurm.XXXXXX")
cluster=$work/cluster
jobdir=$work/job
mkdir -p "$jobdir"
started=0
cleanup() {
  local status=$?
  if ((started)); then "$cluster_sh" stop "$cluster" >/dev/null 2>&1 || echo "check_sbatch: stopping the cluster in $cluster failed" >&2; fi
  if ((status == 0)); then
    rm -rf "$work"
  else
    echo "check_sbatch: kept $work (logs in cluster/log, job output in job/)" >&2
  fi
}
trap cleanup EXIT

# True when no socket listens on TCP port $1 (read from /proc: no dependency on ss or netstat).
port_free() {
  local hex
  hex=$(printf '%04X' "$1")
  ! awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port base that no other cluster (another session, CI) is likely to use: random, checked free, retried.
start_cluster() {
  local attempt base p free
  for ((attempt = 1; attempt <= 5; attempt++)); do
    base=$((7900 + 10 * (RANDOM % 2000)))
    free=1
    for ((p = base; p <= base + 3 + nodes; p++)); do port_free "$p" || { free=0; break; }; done
    ((free)) || continue
    started=1
    if "$cluster_sh" start "$cluster" "$nodes" "$base" >"$work/cluster.out" 2>&1; then
      echo "check_sbatch: cluster of $nodes nodes up on ports from $base"
      return 0
    fi
    echo "check_sbatch: cluster on ports from $base did not start, retrying: $(tail -1 "$work/cluster.out")" >&2
    "$cluster_sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$cluster"
  done
  cat "$work/cluster.out" >&2
  fail "the simulated cluster did not start"
}

# Submits a batch script; prints the job id.
submit() {
  local id
  id=$(AMORSIZE_RUN=$run sbatch --parsable -N "$nodes" -n "$tasks" --chdir "$jobdir" "$@") || fail "sbatch $* failed"
  echo "${id%%;*}"
}

# Waits (polling squeue every 0.2 s) until job $1 leaves the queue, then checks that it COMPLETED with exit 0
# and that a line of its output ends with $3 (default 'amorsize-run exited 0'; '' checks nothing).
wait_job() {
  local id=$1 out=$2 exited=${3-amorsize-run exited 0} start=$SECONDS info state code
  while [[ -n $(squeue -h -j "$id" -o %T 2>/dev/null) ]]; do
    ((SECONDS - start < job_timeout)) || {
      scancel "$id" 2>/dev/null || true
      fail "job $id still queued or running after ${job_timeout}s: $(tail -5 "$out" 2>/dev/null)"
    }
    sleep 0.2
  done
  # sacct is not configured here: scontrol keeps a finished job for MinJobAge (300 s by default).
  info=$(scontrol show job "$id" 2>/dev/null) || info=
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2 || true)
  code=$(grep -o ' ExitCode=[0-9:]*' <<<"$info" | cut -d= -f2 || true)
  [[ -f $out ]] || fail "job $id ($state) left no output file $out"
  if [[ -n $state ]]; then
    [[ $state == COMPLETED && $code == 0:0 ]] || fail "job $id ended $state with exit code $code: $(tail -20 "$out")"
  fi
  # The batch script's own record of the exit code (all there is once scontrol has forgotten the job).
  if [[ -n $exited ]]; then
    grep -q -- "$exited\$" "$out" || fail "job $id: no line '$exited' in its output: $(tail -20 "$out")"
  fi
  echo "check_sbatch: job $id ${state:-done} (exit ${code:-0}) after $((SECONDS - start))s"
}

export SLURM_CONF=$cluster/slurm.conf
start_cluster

# The plan: made on 3 nodes.
id=$(submit "$src/slurm/plan.sbatch")
out=$jobdir/amorsize-plan-$id.out
wait_job "$id" "$out"
grep -q '^Machine: 3 nodes, 6 ranks' "$out" || fail "the plan does not see 3 nodes and 6 ranks: $(cat "$out")"

# The run: every item once, over MPI, on more than two workers spread over 3 nodes.
id=$(submit "$src/slurm/run.sbatch")
out=$jobdir/amorsize-$id.out
records=$jobdir/amorsize-$id.jsonl
report=$jobdir/amorsize-$id.report.json
wait_job "$id" "$out"
[[ -s $records ]] || fail "job $id wrote no records ($records): $(tail -20 "$out")"
[[ -s $report ]] || fail "job $id wrote no report ($report): $(tail -20 "$out")"
lines=$(grep -c '' "$records")
((lines == items)) || fail "$records has $lines lines, expected $items"
bad=$(grep -o '"index":[0-9]*' "$records" | cut -d: -f2 | sort -n | uniq -c |
  awk -v n="$items" '$1 != 1 || $2 != NR - 1 { print; exit } END { if (NR != n) print NR " distinct indices" }')
[[ -z $bad ]] || fail "$records does not hold every index 0..$((items - 1)) exactly once (first problem: $bad)"
errors=$(grep -c '"error"' "$records" || true)
((errors == 0)) || fail "$records has $errors error records"
grep -q '"backend": *"mpi"' "$report" || fail "report backend is not mpi: $(grep '"backend"' "$report")"
workers=$(grep -o '"workers": *[0-9]*' "$report" | head -1 | grep -o '[0-9]*$' || true)
[[ -n $workers ]] || fail "report has no workers count"
((workers > 2)) || fail "report has $workers workers, expected more than 2"
plan_nodes=$(grep -o '"nodes": *[0-9]*' "$report" | head -1 | grep -o '[0-9]*$' || true)
[[ $plan_nodes == "$nodes" ]] || fail "the plan's profile has nodes=${plan_nodes:-none}, expected $nodes"
echo "check_sbatch: run.sbatch passed ($items records, backend mpi, $workers workers, $plan_nodes nodes)"

# The task farm: a shell task list over the 3 nodes; every task once, and the records' hosts name every node.
shell_tasks=90
seq -f 'task-%g' 1 "$shell_tasks" >"$jobdir/tasks.txt"
id=$(submit "$src/slurm/run.sbatch" shell --input tasks.txt --command "sh -c 'sleep 0.1; echo {}'")
out=$jobdir/amorsize-$id.out
records=$jobdir/amorsize-$id.jsonl
wait_job "$id" "$out"
[[ -s $records ]] || fail "shell job $id wrote no records ($records): $(tail -20 "$out")"
lines=$(grep -c '' "$records")
((lines == shell_tasks)) || fail "$records has $lines lines, expected $shell_tasks"
for ((t = 1; t <= shell_tasks; t++)); do
  (($(grep -cF "\"stdout\":\"task-$t\\n\"" "$records") == 1)) || fail "task-$t is not in $records exactly once"
done
! grep -q '"error"' "$records" || fail "$records has error records: $(grep -m1 '"error"' "$records")"
hosts=$(grep -o '"host":"[^"]*"' "$records" | sort -u | tr '\n' ' ')
(($(wc -w <<<"$hosts") == nodes)) || fail "the shell tasks ran on $hosts, expected $nodes nodes"
echo "check_sbatch: run.sbatch shell passed ($shell_tasks tasks once each on $hosts)"

# The README's example: its own sbatch script (srun --mpi=pmix ./record_digests) submitted from the folder
# that holds the program; the root writes every record once and prints the plan once, every rank ends.
if [[ -n $example ]]; then
  cp "$example" "$jobdir/record_digests"
  # The script leaves Open MPI's settings to the submitter: as root it must allow root; ob1 starts fast here.
  id=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 \
    submit "$src/docs/examples/record_digests.sbatch" 200 digests.tsv)
  out=$jobdir/record-digests-$id.out
  wait_job "$id" "$out" ""
  digests=$jobdir/digests.tsv
  [[ -s $digests ]] || fail "job $id wrote no $digests: $(tail -20 "$out")"
  lines=$(grep -c '' "$digests")
  distinct=$(cut -f1 "$digests" | sort -n | uniq | grep -c '')
  ((lines == 200 && distinct == 200)) || fail "$digests has $lines lines, $distinct distinct indices, expected 200"
  plans=$(grep -c '^Machine: 3 nodes, 6 ranks' "$out" || true)
  ((plans == 1)) || fail "job $id: $plans plans seeing 3 nodes and 6 ranks, expected 1: $(cat "$out")"
  grep -qx '200 records, 2 failed, in digests.tsv' "$out" || fail "job $id: no summary line: $(tail -20 "$out")"
  done_lines=$(grep -c '^rank [0-5] of 6 done$' "$out" || true)
  ((done_lines == tasks)) || fail "job $id: $done_lines ranks reached the end, expected $tasks: $(tail -20 "$out")"
  echo "check_sbatch: record_digests.sbatch passed (200 records, one plan on 3 nodes, $done_lines ranks done)"
fi
echo "check_sbatch: PASS"
