# shellcheck shell=bash
# For the CLI tests that signal a run; sourced by a test that defines fail().

# Waits until process $1 catches signal $2 (a name such as INT or USR1), which amorsize-run does once
# the run proper starts: a signal before that ends the run at once, and under a launcher is lost
# when the ranks have not started yet. Returns at once when the process has ended.
wait_for_handlers() {
  local pid=$1 signal=$2 caught
  for _ in $(seq 3000); do
    caught=$(awk '/^SigCgt:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || return 0
    [[ -n $caught ]] || return 0
    (((16#$caught >> ($(kill -l "$signal") - 1)) & 1)) && return 0
    sleep 0.02
  done
  fail "process $pid did not install its $signal handler within 60 s"
}

# Waits until a process whose command line matches $1 (pgrep -f) runs; fails after 30 s.
wait_for_command() {
  for _ in $(seq 600); do
    pgrep -f "$1" >/dev/null && return 0
    sleep 0.05
  done
  fail "no process matching '$1' started within 30 s"
}
