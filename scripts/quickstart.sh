#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds amorsize, then runs the default workload end to end: the
# shell job compresses 300 generated files of different sizes with gzip -9, planned from a sample.
#   bash scripts/quickstart.sh                  # the default workload
#   bash scripts/quickstart.sh JOB [OPTIONS]    # any job instead: amorsize-run run JOB OPTIONS
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh dev amorsize-run  # the runner alone: the tests build with scripts/test.sh
run=build/dev/amorsize-run
(($# == 0)) || exec "$run" run "$@"

# The files: text of 20 kB to 1.2 MB (a spread of task times), listed one per line.
work=build/dev/quickstart
rm -rf "$work"
mkdir -p "$work/files"
for ((i = 1; i <= 300; i++)); do
  seq 1 $((3000 + (i * 7919) % 150000)) >"$work/files/part-$i.txt"
done
ls "$work"/files/*.txt >"$work/tasks.txt"

# The plan and its reasons (--verbose), progress and the summary go to stderr; one JSON record per
# task to records.jsonl, and the run's figures to report.json.
"$run" run shell --input "$work/tasks.txt" --command 'gzip -9 --keep --force {}' --verbose --progress \
  --output "$work/records.jsonl" --report "$work/report.json"
echo "quickstart: $(grep -c '"exit_code":0' "$work/records.jsonl") of 300 files compressed; records in $work/records.jsonl, report in $work/report.json"
