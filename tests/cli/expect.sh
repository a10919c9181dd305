#!/usr/bin/env bash
# Runs a command and checks its exit code and that its output matches a pattern:
#   expect.sh [--launcher] CODE PATTERN COMMAND [ARGS...]
# An error must be one line; with --launcher (mpirun adds lines of its own) exactly one line matches.
set -uo pipefail
launcher=false
if [[ $1 == --launcher ]]; then
  launcher=true
  shift
fi
want_code=$1 pattern=$2
shift 2
output=$("$@" 2>&1)
code=$?
if [[ $code -ne $want_code ]]; then
  printf 'expected exit %s, got %s from: %s\n%s\n' "$want_code" "$code" "$*" "$output" >&2
  exit 1
fi
matches=$(grep -Ec -- "$pattern" <<<"$output")
if [[ $matches -eq 0 ]]; then
  printf 'output of %s does not match /%s/:\n%s\n' "$*" "$pattern" "$output" >&2
  exit 1
fi
if $launcher; then
  if [[ $matches -ne 1 ]]; then
    printf 'expected one line matching /%s/ (one rank speaks), got %s from: %s\n%s\n' "$pattern" "$matches" "$*" "$output" >&2
    exit 1
  fi
  exit 0
fi
lines=$(grep -c '' <<<"$output")
if [[ $want_code -ne 0 && $lines -ne 1 ]]; then
  printf 'an error must be one line, got %s lines from: %s\n%s\n' "$lines" "$*" "$output" >&2
  exit 1
fi
exit 0
