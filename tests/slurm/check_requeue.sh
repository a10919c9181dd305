#!/usr/bin/env bash
# Submits slurm/run.sbatch with a time limit shorter than its work to a private simulated 2-node Slurm cluster:
# the time limit's SIGUSR1 stops the run gracefully (exit 12), the script requeues the job, the next attempt
# resumes its output; checks that the job ends COMPLETED with exit 0 after at least one requeue, and that the
# output holds every item exactly once, in whole lines.
#   check_requeue.sh BUILD_DIR    (BUILD_DIR holds amorsize-run; exits 77, skipped, without root or Slurm)
#
# Timing (Slurm checks time limits every 30 s): with -t 2 and --signal=B:USR1@60 the signal comes 30-60 s
# after the start and the limit's SIGTERM 120-150 s after it. The work (about 90 s on 2 workers) outlasts the
# signal and ends before the limit even if the run does not stop early, so the test holds whether the graceful
# stop ends the run at once or lets it finish. Slurm holds a requeued job for cred_expire (120 s): the test
# starts it 3 s after the requeue (scontrol update StartTime=now+3; at once, in the same second, fails the job).
set -euo pipefail

test_name=check_requeue nodes=2 tasks=3
items=${AMORSIZE_REQUEUE_ITEMS:-300} mean_ms=${AMORSIZE_REQUEUE_MEAN_MS:-600}
# shellcheck source=tests/slurm/sim_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/sim_cluster.sh"
job_timeout=${AMORSIZE_SLURM_JOB_TIMEOUT:-270}

(($# == 1)) || { echo "usage: check_requeue.sh BUILD_DIR" >&2; exit 2; }
sim_setup "$1"
start_cluster

begin=$SECONDS
release_requeued=1
id=$(submit -t 2 --signal=B:USR1@60 "$src/slurm/run.sbatch" synthetic --items "$items" --mean-ms "$mean_ms" --work sleep)
out=$jobdir/amorsize-$id.out
records=$jobdir/amorsize-$id.jsonl
report=$jobdir/amorsize-$id.report.json
echo "$test_name: job $id: $items items of $mean_ms ms on $tasks tasks, time limit 2 min, SIGUSR1 60 s before it"
wait_job "$id" "$out"

# The log keeps every attempt (--open-mode=append): a graceful stop, a requeue, and the last attempt's exit 0.
info=$(scontrol show job "$id")
restarts=$(grep -o 'Restarts=[0-9]*' <<<"$info" | cut -d= -f2)
((restarts >= 1)) || fail "job $id was not requeued (Restarts=$restarts): $(cat "$out")"
requeues=$(grep -c '^run.sbatch: requeueing job ' "$out" || true)
((requeues == restarts)) || fail "job $id: Restarts=$restarts but $requeues requeue lines in its log: $(cat "$out")"
grep -q '^run.sbatch: SIGUSR1 at ' "$out" || fail "job $id: the batch script logged no SIGUSR1: $(cat "$out")"
grep -q '^amorsize: stopping: no new items start' "$out" ||
  fail "job $id: amorsize-run's root did not start a graceful stop: $(cat "$out")"
grep -q '^run.sbatch: amorsize-run exited 12$' "$out" || fail "job $id: no attempt ended with exit 12 (interrupted): $(cat "$out")"
last=$(grep '^run.sbatch: amorsize-run exited ' "$out" | tail -1)
[[ $last == 'run.sbatch: amorsize-run exited 0' ]] || fail "job $id: the last attempt ended '$last': $(cat "$out")"
attempts=$(grep -c '^run.sbatch: job ' "$out")
((attempts == restarts + 1)) || fail "job $id: $attempts attempts in its log, expected $((restarts + 1)): $(cat "$out")"
! grep -q 'SIGTERM at ' "$out" || echo "$test_name: note: the time limit's SIGTERM came before an attempt ended"

# Every item exactly once over all attempts, whole lines only; a last attempt that ran items reports no
# interruption (one that found every item done starts nothing and leaves the report as it was).
check_records_once "$records" "$items"
[[ -s $report ]] || fail "job $id wrote no report ($report)"
if ! tail -3 "$out" | grep -q 'already have records in .*; nothing was started'; then
  grep -q '"interrupted": *false' "$report" || fail "the last report is not 'interrupted: false': $(grep '"interrupted"' "$report")"
fi

# What Slurm did, for the record: when each attempt started, got the signal and ended.
grep -E '^run.sbatch: (job |SIGUSR1 at |SIGTERM at |amorsize-run exited |requeueing )' "$out" | sed "s/^/$test_name:   /"
echo "$test_name: PASS ($items records once each after $restarts requeue(s), $((SECONDS - begin)) s from submission)"
