#!/usr/bin/env bash
# Interrupts one run again and again at random points and resumes it after each: the final output
# must hold every item exactly once, in whole lines. In turn:
# - without a launcher: SIGINT to the whole process group (a Ctrl-C), SIGTERM to amorsize-run, SIGKILL of it;
# - under a launcher (mpiexec -n 3 ...): SIGUSR1 to the launcher (which forwards it: a graceful
#   stop), SIGTERM to the launcher (Open MPI kills the ranks a second later), SIGKILL of the root rank.
# Each signal comes at a random point after the root has installed its handlers: a launcher drops a
# signal that comes before its ranks have started.
#   check_interrupt.sh AMORSIZE_RUN [LAUNCHER...]
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$(readlink -f "$0")")/signals.sh"
run=$(readlink -f "$1")
shift
launcher=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

seed=${CHECK_INTERRUPT_SEED:-$$}
RANDOM=$seed
items=12000
job=(synthetic --items "$items" --mean-ms 3 --dist lognormal --cv 1)
fail() { printf 'check_interrupt (seed %s): FAIL: %s\n--- stderr\n%s\n' "$seed" "$*" "$(cat stderr 2>/dev/null)" >&2; exit 1; }

# Checks that out.jsonl holds whole lines, each a record of an item not seen before in it. With `cut`
# the last line may be cut short (a kill can end a write halfway; --resume drops that line), with
# `whole` it may not.
#   check_records whole|cut WHEN
check_records() {
  python3 - "$items" "$@" <<'EOF' || fail "records of out.jsonl after $2"
import json, sys
items, cut_allowed = int(sys.argv[1]), sys.argv[2] == "cut"
text = open("out.jsonl", "rb").read().decode(errors="replace")
if cut_allowed and not text.endswith("\n"):
    text = text[: text.rfind("\n") + 1]
assert text == "" or text.endswith("\n"), "the last line is cut short"
seen = set()
for number, line in enumerate(text.splitlines(), 1):
    record = json.loads(line)
    index = record["index"]
    assert 0 <= index < items, f"line {number}: index {index} out of range"
    assert index not in seen, f"line {number}: index {index} a second time"
    seen.add(index)
print(len(seen))
EOF
}

# Prints a digest of out.jsonl (nothing while there is none).
output_digest() {
  if [[ -e out.jsonl ]]; then md5sum <out.jsonl; fi
}

# Returns the pid of the root: the amorsize-run process itself, or under a launcher the rank 0 process.
root_pid() {
  local pid=$1 child
  if ((${#launcher[@]} == 0)); then
    echo "$pid"
    return
  fi
  for _ in $(seq 300); do
    for child in $(pgrep -f -- "$run run" || true); do
      if tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=0'; then
        echo "$child"
        return
      fi
    done
    sleep 0.05
  done
  fail "no root rank found under ${launcher[*]}"
}

signals=(INT TERM KILL)
((${#launcher[@]} == 0)) || signals=(USR1 TERM KILL)
interruptions=0
graceful=0
for round in $(seq 12); do
  signal=${signals[$(((round - 1) % 3))]}
  delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 80) / 100 }')  # 0.10 .. 0.89 s after the start
  status=0
  before=$(output_digest)
  # In a process group of its own, as a terminal's foreground job is (setsid runs it in place).
  setsid "${launcher[@]}" "$run" run "${job[@]}" --output out.jsonl --report report.json --resume --grace 5 -q 2>stderr &
  pid=$!
  root=$(root_pid "$pid")
  wait_for_handlers "$root" USR1
  sleep "$delay"
  target=$pid
  [[ $signal == KILL ]] && target=$root
  [[ $signal == INT ]] && target=-$pid  # a Ctrl-C reaches the whole group: the root and its workers
  kill -s "$signal" -- "$target" 2>/dev/null || true
  wait "$pid" || status=$?
  # SIGKILL (of the root, or of the ranks by Open MPI after a SIGTERM) may end a write halfway; a
  # run stopped before it opened the output leaves the file as the round before left it.
  ending="whole"
  [[ $signal == KILL || ($signal == TERM && ${#launcher[@]} -gt 0) ]] && ending="cut"
  [[ $(output_digest) == "$before" ]] && ending="cut"
  done_now=$(check_records "$ending" "round $round ($signal after $delay s)")
  echo "round $round: $signal after $delay s: exit $status, $done_now of $items records"
  case $status in
    0) break ;;  # it finished before the signal
    $((128 + $(kill -l "$signal"))))
      # Killed by the signal itself: it came before the run installed its handlers (a slow start, as
      # under a sanitizer), or it was SIGKILL; nothing had started, or the records are whole anyway.
      ;;
    12)
      graceful=$((graceful + 1))
      [[ $signal == INT || $signal == USR1 || ($signal == TERM && ${#launcher[@]} -eq 0) ]] || fail "exit 12 after SIG$signal"
      grep -q "run the same command with --resume" stderr || fail "exit 12 without the line saying how to resume"
      python3 -c 'import json,sys; r=json.load(open("report.json")); sys.exit(0 if r["interrupted"] else 1)' ||
        fail "the report of an interrupted run does not say so"
      ;;
    *) [[ $signal == KILL || ($signal == TERM && ${#launcher[@]} -gt 0) ]] || fail "exit $status after SIG$signal (expected 12)" ;;
  esac
  interruptions=$((interruptions + 1))
  if ((${#launcher[@]} == 0)); then
    sleep 0.3
    ! pgrep -f -- "$run run ${job[*]}" >/dev/null || fail "workers outlived their root after SIG$signal"
  fi
done
((interruptions >= 10)) || fail "only $interruptions interruptions before the run finished: give it more work"
((graceful >= 2)) || fail "only $graceful of the signals stopped the run gracefully (exit 12)"

status=0
"${launcher[@]}" "$run" run "${job[@]}" --output out.jsonl --resume -q 2>stderr || status=$?
((status == 0)) || fail "the last resume exited $status"
final=$(check_records whole "the last resume")
((final == items)) || fail "$final of $items items have a record after the last resume"
echo "check_interrupt: $interruptions interruptions, then every one of $items items exactly once (seed $seed)"
