#!/usr/bin/env bash
# Runs a command under a launcher and checks its exit code and that exactly one line of its output
# matches a pattern (one rank speaks; the launcher may add lines of its own):
#   expect_once.sh CODE PATTERN COMMAND [ARGS...]
set -uo pipefail
want_code=$1 pattern=$2
shift 2
output=$("$@" 2>&1)
code=$?
if [[ $code -ne $want_code ]]; then
  printf 'expected exit %s, got %s from: %s\n%s\n' "$want_code" "$code" "$*" "$output" >&2
  exit 1
fi
matches=$(grep -Ec -- "$pattern" <<<"$output")
if [[ $matches -ne 1 ]]; then
  printf 'expected one line matching /%s/, got %s from: %s\n%s\n' "$pattern" "$matches" "$*" "$output" >&2
  exit 1
fi
exit 0
