#!/usr/bin/env bash
# Submits slurm/run.sbatch (the synthetic job, then a shell task list) and slurm/plan.sbatch with -N 3 -n 6 to a
# private simulated 3-node Slurm cluster and checks the jobs, their records, report and plan;
# with EXAMPLE, submits docs/examples/record_digests.sbatch the same way with that program and checks its output.
#   check_sbatch.sh BUILD_DIR [EXAMPLE]    (BUILD_DIR holds amorsize-run; EXAMPLE is the built record_digests;
#                                           exits 77, skipped, without root or Slurm)
set -euo pipefail

test_name=check_sbatch nodes=3 tasks=6 items=600
# shellcheck source=tests/slurm/sim_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/sim_cluster.sh"

(($# == 1 || $# == 2)) || { echo "usage: check_sbatch.sh BUILD_DIR [EXAMPLE]" >&2; exit 2; }
example=
if (($# == 2)); then
  example=$(readlink -f "$2")
  [[ -x $example ]] || fail "no executable $example (the CTest example_build builds it)"
fi
sim_setup "$1"
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
check_records_once "$records" "$items"
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
