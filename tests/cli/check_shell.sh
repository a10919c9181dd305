#!/usr/bin/env bash
# Runs `amorsize-run run shell` end to end as a GNU parallel user would and checks its records:
# placeholders, no shell unless asked, stdin, blank lines, failures and their exit codes, captured
# and saved output, progress, trace and summary.
#   check_shell.sh AMORSIZE_RUN [LAUNCHER...]
set -euo pipefail
run=$(readlink -f "$1")
shift
launcher=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { printf 'check_shell: FAIL: %s\n--- stderr\n%s\n' "$*" "$(cat stderr 2>/dev/null)" >&2; exit 1; }

# Runs `amorsize-run run shell ARGS...` (stdin from $stdin_file, default /dev/null); exit code in $status.
stdin_file=/dev/null
shell_run() {
  status=0
  "${launcher[@]}" "$run" run shell "$@" <"$stdin_file" 2>stderr || status=$?
}

# Lines of file $1 that contain the fixed string $2.
count() { grep -cF -- "$2" "$1" || true; }

# Placeholders, one argument per placeholder whatever the line holds; blank lines are no tasks;
# a line that looks like shell code is data.
printf '%s\n' 'dir/sub/file one.tar.gz' '' 'plain' '   ' "a; touch $work/injected" "\$(touch $work/injected2)" >tasks.txt
shell_run --input tasks.txt --command "printf '%s|%s|%s|%s|%s|%s' {} {.} {/} {//} {/.} {#}" --output out.jsonl --ordered
((status == 0)) || fail "placeholder run exited $status"
(($(grep -c '' out.jsonl) == 4)) || fail "expected 4 records (blank lines skipped), got $(grep -c '' out.jsonl)"
(($(count out.jsonl '"stdout":"dir/sub/file one.tar.gz|dir/sub/file one.tar|file one.tar.gz|dir/sub|file one.tar|1"') == 1)) ||
  fail "placeholders of task 1 wrong: $(head -1 out.jsonl)"
(($(count out.jsonl '"stdout":"plain|plain|plain|.|plain|2"') == 1)) || fail "placeholders of task 2 wrong: $(sed -n 2p out.jsonl)"
[[ ! -e injected && ! -e injected2 ]] || fail "a task line was run as shell code"
for key in '"index":0,' '"input":' '"command":' '"exit_code":0' '"host":' '"worker":' '"start":' '"seconds":' '"stderr":""'; do
  (($(count out.jsonl "$key") >= 1)) || fail "records lack $key: $(head -1 out.jsonl)"
done
(($(count out.jsonl '"exit_code":0') == 4)) || fail "not every task exited 0"
grep -q 'speedup' stderr || fail "no summary on stderr"

# No placeholder: the line is the last argument. --shell: the template is shell code, the line stays data.
printf '%s\n' alpha beta >two.txt
shell_run --input two.txt --command echo --output echo.jsonl --ordered --quiet
((status == 0)) || fail "echo run exited $status"
(($(count echo.jsonl '"stdout":"alpha\n"') == 1)) || fail "the line was not appended: $(cat echo.jsonl)"
[[ ! -s stderr ]] || fail "--quiet still printed: $(cat stderr)"
shell_run --input tasks.txt --command 'echo {} | tr a-z A-Z' --shell --output shell.jsonl --ordered
((status == 0)) || fail "--shell run exited $status"
(($(count shell.jsonl '"stdout":"PLAIN\n"') == 1)) || fail "--shell did not pipe: $(sed -n 2p shell.jsonl)"
[[ ! -e injected && ! -e injected2 ]] || fail "a task line was run as shell code under --shell"

# The task list from stdin.
printf 'x\n\ny\nz\n' >stdin.txt
stdin_file=stdin.txt shell_run --input - --command 'echo {#}:{}' --output stdin.jsonl --ordered
((status == 0)) || fail "stdin run exited $status"
(($(grep -c '' stdin.jsonl) == 3)) || fail "stdin: expected 3 records, got $(grep -c '' stdin.jsonl)"
(($(count stdin.jsonl '"stdout":"3:z\n"') == 1)) || fail "stdin: task 3 wrong: $(cat stdin.jsonl)"

# A list from stdin short enough to be sampled whole has run, even when every task failed.
printf 'a\nb\nc\n' >three.txt
stdin_file=three.txt shell_run --input - --command false --output false.jsonl
((status == 7)) || fail "three failing tasks from stdin exited $status, expected 7"
(($(count false.jsonl '"exit_code":1') == 3)) || fail "three failing tasks from stdin: $(cat false.jsonl)"

# Input that can be read only once: a FIFO, /dev/stdin. A line with a NUL byte is an error record, not a shorter argument.
mkfifo fifo
(seq 3 >fifo &)
shell_run --input fifo --command echo --output fifo.jsonl --quiet
((status == 0 && $(grep -c '' fifo.jsonl) == 3)) || fail "a FIFO input: exit $status, $(grep -c '' fifo.jsonl) records"
stdin_file=two.txt shell_run --input /dev/stdin --command echo --output devstdin.jsonl --quiet
((status == 0 && $(grep -c '' devstdin.jsonl) == 2)) || fail "/dev/stdin: exit $status, $(grep -c '' devstdin.jsonl) records"
printf 'a\0b\nc\n' >nul.txt
shell_run --input nul.txt --command echo --output nul.jsonl --ordered --quiet
((status == 7)) || fail "a NUL byte in a line: exit $status, expected 7"
(($(count nul.jsonl 'holds a NUL byte') == 1 && $(count nul.jsonl '"stdout":"c\n"') == 1)) || fail "NUL line records: $(cat nul.jsonl)"

# Failures: an error record each with its exit code, exit 7 and one line naming the first.
printf '%s\n' 0 1 0 2 0 0 >codes.txt
shell_run --input codes.txt --command "sh -c 'echo oops {} >&2; exit {}'" --output codes.jsonl --ordered
((status == 7)) || fail "a run with failed tasks exited $status, expected 7"
(($(grep -c '' codes.jsonl) == 6)) || fail "failed run: expected 6 records"
(($(count codes.jsonl '"error":"exited 1: oops 1"') == 1)) || fail "no error record for exit 1: $(cat codes.jsonl)"
(($(count codes.jsonl '"exit_code":2') == 1)) || fail "no exit code 2 record"
grep -q '^amorsize: 2 of 6 tasks failed; first: task 2 (index 1): exited 1: oops 1; records in codes.jsonl$' stderr ||
  fail "no failure line"

# A command that does not exist: every sampled task fails, so the run stops (exit 5) before the rest.
seq 1 40 >forty.txt
shell_run --input forty.txt --command 'no-such-command-amorsize {}' --output missing.jsonl
((status == 5)) || fail "a missing command exited $status, expected 5"
[[ ! -e missing.jsonl ]] || fail "a run that stopped after sampling wrote $(wc -c <missing.jsonl) bytes of --output"
grep -q 'command not found: no-such-command-amorsize' stderr || fail "the missing command is not named"

# Killed tasks, captured output cut at --capture-bytes, whole output under --results.
printf '%s\n' 1 2 >kill.txt
shell_run --input kill.txt --command "sh -c 'kill -9 \$\$'" --output kill.jsonl
((status == 7)) || fail "killed tasks: exit $status, expected 7"
(($(count kill.jsonl '"signal":9') == 2)) || fail "no signal 9 in $(cat kill.jsonl)"
shell_run --input two.txt --command "sh -c 'yes {} | head -c 5000'" --capture-bytes 100 --output cut.jsonl
((status == 0)) || fail "capture run exited $status"
(($(count cut.jsonl '"stdout_truncated":true') == 2)) || fail "truncation not marked: $(cat cut.jsonl)"
(($(count cut.jsonl '"stdout_bytes":5000') == 2)) || fail "total bytes not counted"
shell_run --input two.txt --command "sh -c 'yes {} | head -c 5000'" --results results --output saved.jsonl
((status == 0)) || fail "--results run exited $status"
[[ $(wc -c <results/1.stdout) -eq 5000 && -f results/2.stderr ]] || fail "--results files missing or short: $(ls -l results)"
(($(count saved.jsonl '"stdout_file":"results/') == 2)) || fail "records do not name their files"

# Empty input ends cleanly; progress and trace on request.
shell_run --input /dev/null --command 'echo {}' --output empty.jsonl
((status == 0)) || fail "empty input exited $status"
grep -q 'no tasks to run' stderr || fail "empty input not reported"
shell_run --input forty.txt --command 'echo {}' --output forty.jsonl --progress --trace trace.json
((status == 0)) || fail "progress run exited $status"
grep -q 'amorsize: progress 40/40 tasks' stderr || fail "no progress line"
for event in '"traceEvents"' '"name":"task 40"' '"name":"sampling"'; do
  grep -q "$event" trace.json || fail "trace lacks $event: $(head -c 600 trace.json)"
done
echo "check_shell: all checks passed"
