#!/usr/bin/env bash
# Runs the journal example stopped after 50 records, then again: the second run must hand over all
# 200 records, at least the first run's 50 from the journal.
#   check_journal_example.sh PROGRAM JOURNAL
set -euo pipefail
program=$1
journal=$2
rm -f "$journal"

status=0
first=$("$program" "$journal" 50) || status=$?
echo "first run: $first (exit $status)"
[ "$status" -eq 12 ] || { echo "the stopped run should exit 12"; exit 1; }

second=$("$program" "$journal")
echo "second run: $second"
journaled=$(echo "$second" | sed -n 's/^200 records (\([0-9]*\) from the journal), checksum [0-9]*$/\1/p')
[ -n "$journaled" ] || { echo "the second run should hand over all 200 records and finish"; exit 1; }
[ "$journaled" -ge 50 ] || { echo "the second run should take at least 50 records from the journal"; exit 1; }

third=$("$program" "$journal")
echo "third run: $third"
[ "${third%%,*}" = "200 records (200 from the journal)" ] || { echo "the third run should compute nothing"; exit 1; }
[ "${second##*checksum}" = "${third##*checksum}" ] || { echo "the checksums differ"; exit 1; }
rm -f "$journal"
