#!/usr/bin/env bash
# Runs `amorsize-run run` end to end and checks its records, exit codes and report:
#   check_run.sh AMORSIZE_RUN [LAUNCHER...]
set -euo pipefail
run=$1
shift
launcher=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { printf 'check_run: %s\n' "$*" >&2; exit 1; }

# Every index 0..n-1 exactly once in a JSON-lines file.
check_indices() {
  local file=$1 n=$2
  local got
  got=$(grep -o '"index":[0-9]*' "$file" | cut -d: -f2 | sort -n | uniq | wc -l)
  [[ $(grep -c '' "$file") -eq $n ]] || fail "$file has $(grep -c '' "$file") lines, expected $n"
  [[ $got -eq $n ]] || fail "$file has $got distinct indices, expected $n"
  [[ $(grep -o '"index":[0-9]*' "$file" | cut -d: -f2 | sort -n | tail -1) -eq $((n - 1)) ]] || fail "$file: last index is not $((n - 1))"
}

# Runs the command; its exit code goes in $status.
run_it() {
  status=0
  "${launcher[@]}" "$run" run synthetic "$@" 2>"$work/stderr" || status=$?
}

# Ordered run: every index once, in order, and a report.
run_it --items 60 --mean-ms 1 --output "$work/ordered.jsonl" --report "$work/report.json" --ordered
[[ $status -eq 0 ]] || fail "ordered run exited $status: $(cat "$work/stderr")"
check_indices "$work/ordered.jsonl" 60
grep -o '"index":[0-9]*' "$work/ordered.jsonl" | cut -d: -f2 | sort -nc || fail "ordered run is out of order"
for key in items errors chunks wall_seconds predicted_speedup measured_speedup root_cpu_seconds peak_root_memory_bytes; do
  grep -q "\"$key\"" "$work/report.json" || fail "report lacks $key"
done

# Unordered run: every index once.
run_it --items 60 --mean-ms 1 --output "$work/unordered.jsonl" --unordered --chunksize 7
[[ $status -eq 0 ]] || fail "unordered run exited $status"
check_indices "$work/unordered.jsonl" 60

# Items that throw: an error record each, exit code 7, the rest complete.
run_it --items 50 --mean-ms 1 --fail-every 10 --output "$work/errors.jsonl"
[[ $status -eq 7 ]] || fail "a run with failed items exited $status, expected 7"
check_indices "$work/errors.jsonl" 50
[[ $(grep -c '"error":"synthetic failure' "$work/errors.jsonl") -eq 5 ]] || fail "expected 5 error records"

# Stop at the first error: still one record per item. Ordered, so the first error to arrive is item 9.
run_it --items 50 --mean-ms 1 --fail-every 10 --on-error stop --ordered --output "$work/stop.jsonl" --chunksize 2
[[ $status -eq 7 ]] || fail "a stopped run exited $status, expected 7"
check_indices "$work/stop.jsonl" 50
grep -q '"error":"not run: stopped after item 9 failed"' "$work/stop.jsonl" || fail "no 'not run' records after a stop"

# Zero-size and one-item runs.
run_it --items 1 --mean-ms 1 --output "$work/one.jsonl"
[[ $status -eq 0 ]] || fail "one-item run exited $status"
check_indices "$work/one.jsonl" 1

if ((${#launcher[@]} == 0)); then
  # Crashing workers (local processes only): the items that crash are reported, none is lost.
  run_it --items 60 --mean-ms 1 --crash-every 25 --backend processes --output "$work/crash.jsonl"
  [[ $status -eq 7 ]] || fail "a run with crashing items exited $status, expected 7"
  check_indices "$work/crash.jsonl" 60
  [[ $(grep -c 'worker died' "$work/crash.jsonl") -eq 2 ]] || fail "expected 2 items reported as killing their worker"
  # Threads backend.
  run_it --items 60 --mean-ms 1 --backend threads --output "$work/threads.jsonl"
  [[ $status -eq 0 ]] || fail "threads run exited $status"
  check_indices "$work/threads.jsonl" 60
else
  # Under a launcher the ranks are the workers: a local backend is exit 3, serial runs on the root.
  run_it --items 20 --mean-ms 1 --backend threads --output "$work/threads.jsonl"
  [[ $status -eq 3 ]] || fail "--backend threads under a launcher exited $status, expected 3"
  grep -q 'backend serial runs every item on the root' "$work/stderr" || fail "no hint of --backend serial: $(cat "$work/stderr")"
fi
# Serial, as asked (under a launcher too): every item once, on one worker.
run_it --items 40 --mean-ms 2 --backend serial --output "$work/serial.jsonl"
[[ $status -eq 0 ]] || fail "serial run exited $status"
check_indices "$work/serial.jsonl" 40
grep -q 'on 1 worker (serial)' "$work/stderr" || fail "serial run did not say it ran serially: $(cat "$work/stderr")"
echo "check_run: all checks passed"
