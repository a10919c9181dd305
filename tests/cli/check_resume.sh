#!/usr/bin/env bash
# The output as the run's journal, from outside: an existing output is refused or replaced as asked,
# --resume keeps whole records and runs the rest exactly once, --retry-failed and --retries run
# failed tasks again, --max-failures stops early, --timeout stops a task, a signal stops sampling, a
# changed input is refused.
#   check_resume.sh AMORSIZE_RUN [LAUNCHER...]
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$(readlink -f "$0")")/signals.sh"
run=$(readlink -f "$1")
shift
launcher=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { printf 'check_resume: FAIL: %s\n--- stderr\n%s\n' "$*" "$(cat stderr 2>/dev/null)" >&2; exit 1; }

# Runs `amorsize-run run ARGS...`; exit code in $status.
run() {
  status=0
  "${launcher[@]}" "$run" run "$@" 2>stderr || status=$?
}
expect() {
  local want=$1
  shift
  ((status == want)) || fail "$* exited $status, expected $want"
}

# Prints the number of records in $1 after checking each index in 0..$2-1 is there exactly once, in whole lines.
exactly_once() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "the last line is cut short"
indices = sorted(json.loads(line)["index"] for line in text.splitlines())
assert indices == list(range(int(sys.argv[2]))), f"indices are not 0..{sys.argv[2]}-1 exactly once"
print(len(indices))
EOF
}

synthetic=(synthetic --items 300 --mean-ms 1)

# An existing output is refused without --resume or --overwrite, and left as it was.
run "${synthetic[@]}" --output out.jsonl -q
expect 0 "first run"
before=$(sha256sum out.jsonl)
run "${synthetic[@]}" --output out.jsonl -q
expect 3 "a run over an existing output"
grep -q "already holds records .*--resume.*--overwrite" stderr || fail "the refusal does not say what to do"
[[ $(sha256sum out.jsonl) == "$before" ]] || fail "a refused run changed the output"
run "${synthetic[@]}" --output out.jsonl --overwrite -q
expect 0 "--overwrite"
exactly_once out.jsonl 300 >/dev/null || fail "--overwrite did not leave every item once"

# Resuming a finished run runs nothing; a cut file is finished exactly once.
run "${synthetic[@]}" --output out.jsonl --resume -q
expect 0 "--resume of a finished run"
grep -q "all 300 items already have records" stderr || fail "--resume of a finished run does not say so"
{ head -n 120 out.jsonl; sed -n 121p out.jsonl | head -c 25; } >cut.jsonl
run "${synthetic[@]}" --output cut.jsonl --resume
expect 0 "--resume of a cut output"
grep -q "resumed: 120 items kept" stderr || fail "the summary does not count the kept records"
exactly_once cut.jsonl 300 >/dev/null || fail "--resume of a cut output"
cmp <(sort out.jsonl) <(sort cut.jsonl) || fail "the resumed records differ from an uninterrupted run's"

# A changed input (another seed) is refused before anything is written.
before=$(sha256sum cut.jsonl)
run synthetic --items 300 --mean-ms 1 --seed 7 --output cut.jsonl --resume
expect 3 "--resume with other options"
grep -q "is not the one the earlier run finished" stderr || fail "a changed input is not named"
[[ $(sha256sum cut.jsonl) == "$before" ]] || fail "a refused resume changed the output"

# Failed tasks: kept by --resume, run again by --retry-failed, by --retries within the run.
seq 1 40 >tasks.txt
shell=(shell --input tasks.txt --command "sh -c 'test {} -le 30 || test -e ok_{}'")
run "${shell[@]}" --output tasks.jsonl -q
expect 7 "tasks 31..40 failing"
run "${shell[@]}" --output tasks.jsonl --resume -q
expect 7 "--resume keeping the error records"
grep -Eq "10 (of them are )?error records" stderr || fail "--resume does not say error records were kept"
touch ok_3{1..9} ok_40
run "${shell[@]}" --output tasks.jsonl --resume --retry-failed -q
expect 0 "--resume --retry-failed once the cause is fixed"
[[ $(exactly_once tasks.jsonl 40) == 40 ]] || fail "--retry-failed"
! grep -q '"error"' tasks.jsonl || fail "error records left after --retry-failed"

# --retries: a task that fails on its first two runs succeeds on its third attempt, its last one.
run shell --input tasks.txt --command "sh -c 'n=\$(cat try_{} 2>/dev/null || echo 0); echo \$((n + 1)) >try_{}; test \$n -ge 2'" \
  --retries 2 --output retries.jsonl -q
expect 0 "--retries 2 over tasks failing twice"
[[ $(grep -c '"attempt":3' retries.jsonl) == 40 ]] || fail "not every task has its third attempt's record"
[[ $(exactly_once retries.jsonl 40) == 40 ]] || fail "--retries wrote an item twice"
[[ $(cat try_{1..40} | sort -u) == 3 ]] || fail "a task did not run exactly three times"

# --max-failures: half of the tasks fail; the run stops soon after the third failure.
seq 1 400 >many.txt
run shell --input many.txt --command "sh -c 'sleep 0.01; exit \$(({} % 2))'" --max-failures 3 --output max.jsonl -q
expect 7 "--max-failures 3"
grep -q "stopped after .* failed tasks (--max-failures 3)" stderr || fail "--max-failures does not say it stopped"
(($(grep -c '' max.jsonl) < 400)) || fail "--max-failures 3 ran every task"
run shell --input many.txt --command true --max-failures 5% --output /dev/null -q
expect 0 "--max-failures 5% of tasks that succeed"

# --on-error stop: a task that exits non-zero stops the run; each task never started gets a "not run" record.
run shell --input many.txt --command "sh -c 'sleep 0.01; test {} -ne 60'" --on-error stop --output stop.jsonl -q
expect 7 "--on-error stop"
[[ $(exactly_once stop.jsonl 400) == 400 ]] || fail "--on-error stop lost a task"
grep -q '"exit_code":1' stop.jsonl || fail "--on-error stop: no record of the failed task"
(($(grep -c '"error":"not run: stopped after' stop.jsonl) > 0)) || fail "--on-error stop ran every task"
# Its records are whole: --resume keeps them all ("not run" records included) and runs nothing;
# --resume --retry-failed runs the failed task and those not run.
cp stop.jsonl stop.before
run shell --input many.txt --command "sh -c 'sleep 0.01; test {} -ne 60'" --on-error stop --output stop.jsonl --resume -q
expect 7 "--resume after --on-error stop"
cmp -s stop.jsonl stop.before || fail "--resume after --on-error stop changed the records"
run shell --input many.txt --command "sh -c 'sleep 0.01; test {} -ne 60'" --output stop.jsonl --resume --retry-failed -q
expect 7 "--resume --retry-failed after --on-error stop"
(($(grep -c '"error":"not run' stop.jsonl) == 0)) || fail "--retry-failed did not run the tasks not run"
# With --retries 1 the failure that stops the run is the second one of the same task.
run shell --input many.txt --command "sh -c 'test {} -ne 60'" --on-error stop --retries 1 --output stop2.jsonl -q
expect 7 "--on-error stop --retries 1"
[[ $(exactly_once stop2.jsonl 400) == 400 ]] || fail "--on-error stop --retries 1 lost a task"
grep -q '"index":59,.*"attempt":2,.*"exit_code":1' stop2.jsonl || fail "--on-error stop --retries 1: task 60 did not fail twice"

# --timeout: a task past it is killed with its whole process group and recorded as timed out, on a
# worker (not sampled) as in the sampler.
printf '%s\n' 0.1 30.25 >sleeps.txt
start=$SECONDS
run shell --input sleeps.txt --command "sh -c 'sleep {}'" --timeout 1 --ordered --sample-size 1 --output timeouts.jsonl -q
expect 7 "a task past --timeout"
((SECONDS - start < 15)) || fail "--timeout 1 did not stop a 30 s task"
grep -q '"index":1,.*"timed_out":true' timeouts.jsonl || fail "the timed-out task's record does not say so"
! pgrep -f "sleep 30.25" >/dev/null || fail "a timed-out task's child is still running"

# A second signal abandons the tasks in flight at once, and ends their commands: the abandoned
# tasks get no record and run on --resume.
printf '%s\n' 0.1 30.5 30.5 30.5 >slow.txt
setsid "${launcher[@]}" "$run" run shell --input slow.txt --command "sleep {}" --sample-size 1 --output slow.jsonl -q 2>stderr &
pid=$!
# The first signal must find the tasks running: it waits for them, the second abandons them.
wait_for_handlers "$pid" INT
wait_for_command "sleep 30.5"
kill -INT "$pid"
sleep 1
kill -INT "$pid"
status=0
wait "$pid" || status=$?
expect 12 "two SIGINTs"
grep -q "abandoning" stderr || fail "the second signal does not say it abandons the tasks"
[[ $(grep -c '' slow.jsonl) == 1 ]] || fail "abandoned tasks have records: $(cat slow.jsonl)"
sleep 1
! pgrep -f "sleep 30.5" >/dev/null || fail "an abandoned task's command is still running"

# A signal while the first tasks are sampled stops sampling: the task running finishes with its
# record and no other starts. A second signal kills it: with no task finished, the output is left as
# it was (even with --overwrite) and the report says how many tasks did not run.
printf '%s\n' 3.01 3.02 3.03 3.04 >sampled.txt
for signals in 1 2; do
  rm -f sampled.jsonl sampled.json
  echo "an earlier file" >sampled.jsonl
  start=$SECONDS
  setsid "${launcher[@]}" "$run" run shell --input sampled.txt --command "sleep {}" --sample-size 3 \
    --output sampled.jsonl --overwrite --report sampled.json -q 2>stderr &
  pid=$!
  wait_for_handlers "$pid" INT
  wait_for_command "sleep 3.01"
  kill -INT "$pid"
  if ((signals == 2)); then
    sleep 0.5
    kill -INT "$pid"
  fi
  status=0
  wait "$pid" || status=$?
  expect 12 "$signals SIGINT while sampling"
  ((SECONDS - start < 7)) || fail "$signals SIGINT while sampling 3 tasks of 3 s did not stop sampling ($((SECONDS - start)) s)"
  python3 -c 'import json,sys; r=json.load(open("sampled.json")); sys.exit(0 if r["interrupted"] else 1)' ||
    fail "the report of a run stopped while sampling does not say so"
  if ((signals == 1)); then
    [[ $(grep -c '' sampled.jsonl) == 1 ]] || fail "other tasks than the sampled one ran: $(cat sampled.jsonl)"
    grep -q '"index":0,' sampled.jsonl || fail "the sampled task finished without its record"
  else
    grep -q "while sampling" stderr || fail "a run stopped before any task finished does not say so"
    [[ $(cat sampled.jsonl) == "an earlier file" ]] || fail "a run stopped while sampling changed its output: $(cat sampled.jsonl)"
    python3 -c 'import json,sys; sys.exit(0 if json.load(open("sampled.json"))["not_run"] == 4 else 1)' ||
      fail "the report of a run stopped while sampling does not count the tasks not run"
    rm sampled.jsonl
    sleep 0.5
    ! pgrep -f "sleep 3.01" >/dev/null || fail "the killed sampled task's command is still running"
  fi
  run shell --input sampled.txt --command "sleep {}" --sample-size 1 --output sampled.jsonl --resume -q
  expect 0 "--resume after $signals SIGINT while sampling"
  [[ $(exactly_once sampled.jsonl 4) == 4 ]] || fail "--resume after a stop while sampling lost a task"
done

# Bad combinations.
run "${synthetic[@]}" --resume -q
expect 3 "--resume without an output file"
grep -q -- "--resume continues the records of an --output FILE" stderr || fail "--resume to stdout not explained"
run "${synthetic[@]}" --output out.jsonl --resume --overwrite
expect 2 "--resume --overwrite"
run "${synthetic[@]}" --output new.jsonl --retry-failed
expect 2 "--retry-failed without --resume"
run "${synthetic[@]}" --output new.jsonl --max-failures 0
expect 3 "--max-failures 0"
run synthetic --endless --mean-ms 1 --output new.jsonl --max-failures 5%
expect 3 "--max-failures 5% of endless items"
echo "check_resume: all checks passed"
