#!/usr/bin/env bash
# Runs jobs/example's primes-run as its user would: plan, run with records, progress and trace, and
# the count checked against the known one; each worker's setup must have run for the count to be right.
#   check_primes.sh PRIMES_RUN [LAUNCHER...]
set -euo pipefail
program=$(readlink -f "$1")
shift
launcher=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { printf 'check_primes: FAIL: %s\n--- stderr\n%s\n' "$*" "$(cat stderr 2>/dev/null)" >&2; exit 1; }

"${launcher[@]}" "$program" plan primes --limit 2000000 --block 20000 >plan.txt 2>stderr || fail "plan exited $?"
grep -q 'Run' plan.txt || fail "no plan: $(cat plan.txt)"
status=0
"${launcher[@]}" "$program" run primes --limit 2000000 --block 20000 --output primes.jsonl --trace trace.json \
  --progress 2>stderr || status=$?
((status == 0)) || fail "run exited $status"
(($(grep -c '' primes.jsonl) == 100)) || fail "expected 100 records, got $(grep -c '' primes.jsonl)"
total=$(grep -o '"primes":[0-9]*' primes.jsonl | cut -d: -f2 | awk '{ s += $1 } END { print s }')
((total == 148933)) || fail "counted $total primes below 2,000,000, expected 148933"
grep -q 'amorsize: progress 100/100 blocks' stderr || fail "no progress line"
grep -q '"traceEvents"' trace.json || fail "no trace"
status=0
"${launcher[@]}" "$program" run primes --limit 1 >/dev/null 2>stderr || status=$?
((status == 3)) || fail "--limit 1 exited $status, expected 3"
grep -q -- '--limit must be a whole number from 2' stderr || fail "--limit 1 not explained"
echo "check_primes: all checks passed ($total primes)"
