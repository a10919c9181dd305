#!/usr/bin/env bash
# Runs docs/examples/record_digests and checks what a user would: the root's file holds every record
# once (the corrupt ones as error lines), only one rank printed the plan, and every rank ran the code
# after the pool calls; and that a failure only the root sees ends every rank.
#   check_example.sh PROGRAM RANKS [LAUNCHER...]    (RANKS: 1 without a launcher)
set -euo pipefail
program=$(readlink -f "$1")
ranks=$2
shift 2
launcher=("$@")
items=300
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
  printf 'check_example: FAIL: %s\n--- stdout\n%s\n--- stderr\n%s\n' "$*" "$(cat stdout 2>/dev/null)" "$(cat stderr 2>/dev/null)" >&2
  exit 1
}

status=0
"${launcher[@]}" "$program" "$items" digests.tsv >stdout 2>stderr || status=$?
((status == 0)) || fail "record_digests exited $status"

# The root's file: one line per record, indices 0..items-1 once each; records 96, 193, 290 are corrupt.
[[ -f digests.tsv ]] || fail "no digests.tsv"
lines=$(grep -c '' digests.tsv)
((lines == items)) || fail "digests.tsv has $lines lines, expected $items"
distinct=$(cut -f1 digests.tsv | sort -n | uniq | grep -c '')
last=$(cut -f1 digests.tsv | sort -n | tail -1)
((distinct == items && last == items - 1)) || fail "digests.tsv does not hold every index 0..$((items - 1)) once"
errors=$(awk -F'\t' '$2 == "error" { print $1 }' digests.tsv | sort -n | tr '\n' ' ')
[[ $errors == "96 193 290 " ]] || fail "error lines for records '$errors', expected '96 193 290 '"
grep -q $'^96\terror\trecord 96 is corrupt: bad header$' digests.tsv || fail "record 96's error line lacks the function's message"
bad=$(awk -F'\t' '$2 != "error" && ($2 !~ /^[0-9a-f]+$/ || length($2) != 16)' digests.tsv | head -1)
[[ -z $bad ]] || fail "a line is neither a digest nor an error: $bad"

# Only the root printed the plan and the summary; every rank printed its "done" line.
plans=$(grep -c '^Machine: ' stdout || true)
((plans == 1)) || fail "the plan was printed $plans times, expected once"
grep -q "^Machine: 1 node, $ranks rank" stdout || fail "the plan does not see $ranks rank(s)"
grep -qx "$items records, 3 failed, in digests.tsv" stdout || fail "no summary line on stdout"
for ((rank = 0; rank < ranks; rank++)); do
  grep -qx "rank $rank of $ranks done" stderr || fail "rank $rank did not reach the code after the pool calls"
done
done_lines=$(grep -c ' done$' stderr || true)
((done_lines == ranks)) || fail "$done_lines 'done' lines, expected $ranks"
if ((ranks > 1)); then
  grep -q '^Run on [0-9]* workers (mpi' stdout || fail "the plan does not run on MPI ranks"
fi

# A failure only the root sees (its output cannot be opened) ends every rank alike, with one message.
status=0
"${launcher[@]}" "$program" 10 missing/digests.tsv >stdout 2>stderr || status=$?
((status == 3)) || fail "with an unwritable output record_digests exited $status, expected 3"
messages=$(grep -c '^record_digests: cannot open missing/digests.tsv for writing$' stderr || true)
((messages == 1)) || fail "$messages messages about the unwritable output, expected 1"

echo "check_example: PASS ($items records on $ranks rank(s))"
