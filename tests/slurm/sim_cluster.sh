# Sourced by the Slurm tests (check_sbatch.sh, check_requeue.sh): a private simulated cluster (slurm/cluster.sh)
# on a random free port base, stopped on exit, and job helpers. Before sourcing, set test_name (the prefix of
# messages) and nodes; after, call sim_setup BUILD_DIR, then start_cluster.
# shellcheck shell=bash

: "${test_name:=slurm-test}" "${nodes:=3}" "${tasks:=6}"
sim_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$sim_here/../.." && pwd)
cluster_sh=$src/slurm/cluster.sh
job_timeout=${AMORSIZE_SLURM_JOB_TIMEOUT:-180}

fail() {
  printf '%s: FAIL: %s\n' "$test_name" "$*" >&2
  exit 1
}
skip() {
  printf '%s: SKIP: %s\n' "$test_name" "$*" >&2
  exit 77
}

# Checks what the tests need (amorsize-run in BUILD_DIR $1, root, Slurm; skips without root or Slurm), makes the
# work folder ($work, with $cluster and $jobdir) and stops the cluster and removes the folder on exit (kept on
# failure). Sets run (the amorsize-run executable) and SLURM_CONF.
sim_setup() {
  run=$(readlink -f "$1")/amorsize-run
  [[ -x $run ]] || fail "no executable $run (build the amorsize-run target)"
  [[ $(id -u) -eq 0 ]] || skip "the simulated cluster needs root"
  local tool var
  for tool in slurmctld slurmd sbatch squeue scontrol srun munged unshare; do
    command -v "$tool" >/dev/null || skip "$tool not found (scripts/setup.sh installs slurm-wlm and munge)"
  done
  # Nothing from a surrounding allocation or another cluster may leak into ours.
  while read -r var; do unset "$var"; done < <(compgen -v SLURM_)

  work=$(mktemp -d "${TMPDIR:-/tmp}/amorsize-slurm.XXXXXX")
  cluster=$work/cluster
  jobdir=$work/job
  mkdir -p "$jobdir"
  started=0
  trap sim_cleanup EXIT
  # A command that fails outside a check names itself (set -e alone would end the test without a word).
  set -E
  trap 'echo "$test_name: FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR
  export SLURM_CONF=$cluster/slurm.conf
}

# shellcheck disable=SC2317  # run from the EXIT trap
sim_cleanup() {
  local status=$?
  if ((started)); then "$cluster_sh" stop "$cluster" >/dev/null 2>&1 || echo "$test_name: stopping the cluster in $cluster failed" >&2; fi
  if ((status == 0)); then
    rm -rf "$work"
  else
    echo "$test_name: kept $work (logs in cluster/log, job output in job/)" >&2
  fi
}

# True when no socket listens on TCP port $1 (read from /proc: no dependency on ss or netstat).
port_free() {
  local hex
  hex=$(printf '%04X' "$1")
  ! awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port base that no other cluster (another session, CI) is likely to use: random, checked free, retried.
start_cluster() {
  local attempt base p free
  for ((attempt = 1; attempt <= 5; attempt++)); do
    base=$((7900 + 10 * (RANDOM % 2000)))
    free=1
    for ((p = base; p <= base + 3 + nodes; p++)); do port_free "$p" || { free=0; break; }; done
    ((free)) || continue
    started=1
    if "$cluster_sh" start "$cluster" "$nodes" "$base" >"$work/cluster.out" 2>&1; then
      echo "$test_name: cluster of $nodes nodes up on ports from $base"
      return 0
    fi
    echo "$test_name: cluster on ports from $base did not start, retrying: $(tail -1 "$work/cluster.out")" >&2
    "$cluster_sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$cluster"
  done
  cat "$work/cluster.out" >&2
  fail "the simulated cluster did not start"
}

# Submits a batch script with -N $nodes -n $tasks from $jobdir (sbatch options may come first); prints the job id.
submit() {
  local id
  id=$(AMORSIZE_RUN=$run sbatch --parsable -N "$nodes" -n "$tasks" --chdir "$jobdir" "$@") || fail "sbatch $* failed"
  echo "${id%%;*}"
}

# Waits (polling squeue every 0.2 s) until job $1 leaves the queue, then checks that it COMPLETED with exit 0
# and that a line of its output $2 ends with $3 (default 'amorsize-run exited 0'; '' checks nothing).
# With release_requeued=1, a requeued job that Slurm holds (Reason=BeginTime: cred_expire, 120 s by
# default) is started 3 s later (scontrol update StartTime=now+3); each release and change of state is logged.
release_requeued=0
wait_job() {
  local id=$1 out=$2 exited=${3-amorsize-run exited 0} start=$SECONDS info state code now held line seen=''
  while line=$(squeue -h -j "$id" -o '%T %r %S' 2>/dev/null) && [[ -n $line ]]; do
    ((SECONDS - start < job_timeout)) || {
      scancel "$id" 2>/dev/null || true
      fail "job $id still queued or running after ${job_timeout}s ($line): $(tail -5 "$out" 2>/dev/null)"
    }
    if ((release_requeued)) && [[ ${line% *} != "${seen% *}" ]]; then
      echo "$test_name: job $id at $((SECONDS - start)) s: ${line% *}"
      seen=$line
    fi
    if ((release_requeued)) && [[ $line == 'PENDING BeginTime '* ]]; then
      now=$(date +%s)
      held=$(date -d "${line##* }" +%s 2>/dev/null) || held=0 # N/A while the controller updates it
      if ((held - now > 5)); then
        echo "$test_name: job $id requeued, held until ${line##* } ($((held - now)) s from now): starting it in 3 s"
        # Not at once: a start in the same second as the requeue that revoked the old credential fails the job
        # ("Killing non-startable batch JobId=N: Job credential revoked", FAILED, exit 1:0).
        scontrol update jobid="$id" StartTime=now+3 || fail "scontrol update jobid=$id StartTime=now+3 failed"
      fi
    fi
    sleep 0.2
  done
  # sacct is not configured here: scontrol keeps a finished job for MinJobAge (300 s by default).
  info=$(scontrol show job "$id" 2>/dev/null) || info=
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2 || true)
  code=$(grep -o ' ExitCode=[0-9:]*' <<<"$info" | cut -d= -f2 || true)
  [[ -f $out ]] || fail "job $id ($state) left no output file $out"
  if [[ -n $state ]]; then
    [[ $state == COMPLETED && $code == 0:0 ]] || fail "job $id ended $state with exit code $code: $(tail -20 "$out")"
  fi
  # The batch script's own record of the exit code (all there is once scontrol has forgotten the job).
  if [[ -n $exited ]]; then
    grep -q -- "$exited\$" "$out" || fail "job $id: no line '$exited' in its output: $(tail -20 "$out")"
  fi
  echo "$test_name: job $id ${state:-done} (exit ${code:-0}) after $((SECONDS - start))s"
}

# Checks that the records in $1 hold every index 0..$2-1 exactly once, in whole lines, and no error record.
check_records_once() {
  local records=$1 items=$2 lines bad errors
  [[ -s $records ]] || fail "no records in $records"
  [[ $(tail -c 1 "$records" | od -An -c | tr -d ' ') == '\n' ]] || fail "$records ends in a line cut short: $(tail -c 200 "$records")"
  bad=$(grep -v -n -x '{.*}' "$records" | head -1 || true)
  [[ -z $bad ]] || fail "$records holds a line that is not a whole record: $bad"
  lines=$(grep -c '' "$records")
  ((lines == items)) || fail "$records has $lines lines, expected $items"
  bad=$(grep -o '"index":[0-9]*' "$records" | cut -d: -f2 | sort -n | uniq -c |
    awk -v n="$items" '$1 != 1 || $2 != NR - 1 { print; exit } END { if (NR != n) print NR " distinct indices" }')
  [[ -z $bad ]] || fail "$records does not hold every index 0..$((items - 1)) exactly once (first problem: $bad)"
  errors=$(grep -c '"error"' "$records" || true)
  ((errors == 0)) || fail "$records has $errors error records: $(grep -m1 '"error"' "$records")"
}
