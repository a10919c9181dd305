#!/usr/bin/env bash
# The benchmark suite against the peers, in one command: builds what it needs, runs every section
# side by side on the same kernel (bench/peers/spin.c) and writes docs/BENCHMARKS.md and the plots
# in docs/benchmarks/ (bench/report.py), every number measured by this run.
#   scripts/benchmarks.sh [--smoke] [--reps N] [--sections LIST] [--preset PRESET]
#     --smoke       tiny counts and one repetition (seconds); writes to build/PRESET/benchmarks-smoke/, not docs/
#     --reps N      repetitions of every measurement (default 3; the tables show median and min-max)
#     --sections    comma-separated subset of: tiny,efficiency,quality,large,ranks,shell (default: all)
#     --preset      CMake preset to build and run (default dev; CI passes ci, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
command_line="scripts/benchmarks.sh${*:+ $*}"
smoke=false
reps=3
sections=tiny,efficiency,quality,large,ranks,shell
preset=dev
while (($#)); do
  case $1 in
    --smoke) smoke=true ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --sections) sections=${2:?--sections needs a list}; shift ;;
    --preset) preset=${2:?--preset needs a name}; shift ;;
    *) echo "benchmarks: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
python=/usr/bin/python3  # Debian's Python: it has mpi4py, numpy and matplotlib (scripts/setup.sh)
started=$(date +%s.%N)

build=build/$preset
if $smoke; then
  reps=1
  docs=$build/benchmarks-smoke
else
  docs=docs
fi
cmake --preset "$preset" >/dev/null
cmake --build "$build" -j "$(nproc)" --target amorsize-run amorsize_bench_peer amorsize_bench_native amorsize_bench_spin
peer=$build/bench/amorsize_bench_peer
native=$build/bench/amorsize_bench_native
run=$build/amorsize-run
AMORSIZE_BENCH_SPIN_LIB=$(readlink -f "$build/bench/libamorsize_bench_spin.so")
export AMORSIZE_BENCH_SPIN_LIB
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
mpirun=(mpirun --oversubscribe --bind-to none)
workers=$(nproc)

work=$build/benchmarks-work
rm -rf "$work"
mkdir -p "$work" "$docs/benchmarks"
results=$work/results.jsonl
: >"$results"

# Scales a full-run count down for the smoke run (at least `floor`): scaled COUNT [FLOOR].
scaled() {
  if $smoke; then
    local n=$(($1 / 100))
    echo $((n > ${2:-4} ? n : ${2:-4}))
  else
    echo "$1"
  fi
}

# Runs "$@" and appends each JSON line it prints, tagged with section, workload, system and repetition:
# measure SECTION WORKLOAD SYSTEM REP COMMAND...
measure() {
  local section=$1 load=$2 system=$3 rep=$4 out
  shift 4
  if ! out=$("$@" 2>"$work/stderr"); then
    echo "benchmarks: failed in $section/$load/$system: $*" >&2
    tail -20 "$work/stderr" >&2
    exit 1
  fi
  grep '^{' <<<"$out" | sed "s|^{|{\"section\":\"$section\",\"workload\":\"$load\",\"system\":\"$system\",\"rep\":$rep,|" \
    >>"$results" || true
}

# Records the load average at the start or end of a section: load_average SECTION before|after.
load_average() {
  printf '{"section":"%s","load":"%s","loadavg":"%s","time":"%s"}\n' "$1" "$2" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(date -u +%FT%TZ)" >>"$work/loads.jsonl"
  echo "benchmarks: $1 $2, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

# Writes the durations of a workload for the peers: durations NAME AMORSIZE_PEER_WORKLOAD_OPTIONS...
durations() {
  local name=$1
  shift
  "$peer" "$@" --dump "$work/$name.durations"
  printf '{"workload":"%s","file":"%s","options":"%s"}\n' "$name" "$name.durations" "$*" >>"$work/workloads.jsonl"
}

# Runs one timed workload on every system, chunk sizes as each allows:
# all_systems SECTION NAME PYTHON_CHUNKS WORKLOAD_OPTIONS...
all_systems() {
  local section=$1 name=$2 py_chunks=$3 rep system
  shift 3
  local file=$work/$name.durations
  for ((rep = 1; rep <= reps; rep++)); do
    measure "$section" "$name" "amorsize processes" "$rep" "$peer" "$@" --backend processes --chunks auto
    measure "$section" "$name" "amorsize threads" "$rep" "$peer" "$@" --backend threads --chunks auto
    measure "$section" "$name" "amorsize mpirun -np 3" "$rep" "${mpirun[@]}" -np 3 "$peer" "$@" --chunks auto
    for system in omp-static omp-dynamic omp-guided tbb; do
      measure "$section" "$name" "$system" "$rep" "$native" "$system" "$workers" "$file"
    done
    measure "$section" "$name" "multiprocessing.Pool" "$rep" \
      "$python" bench/peers/python_peers.py --system mp --workers "$workers" --source "$file" --chunks "$py_chunks"
    measure "$section" "$name" "mpi4py.futures -np 3" "$rep" "${mpirun[@]}" -np 3 \
      "$python" -m mpi4py.futures bench/peers/python_peers.py --system mpi4py --source "$file" --chunks "$py_chunks"
  done
}

# Near-zero items: ns per item on every system, and the serial loop for reference.
section_tiny() {
  local native_n amorsize_n python_n mpi4py_n rep system
  native_n=$(scaled 20000000 1000)
  amorsize_n=$(scaled 20000000 1000)
  python_n=$(scaled 50000 200)
  mpi4py_n=$(scaled 3000 100)  # mpi4py.futures polls with a 1 ms back-off: chunk 1 costs about 1 ms per item here
  for ((rep = 1; rep <= reps; rep++)); do
    for system in serial omp-static omp-dynamic omp-guided tbb; do
      measure tiny tiny "$system" "$rep" "$native" "$system" "$workers" "tiny:$native_n"
    done
    measure tiny tiny "amorsize" "$rep" "$peer" --kind tiny --items "$amorsize_n"
    measure tiny tiny "amorsize processes" "$rep" "$peer" --kind tiny --items "$amorsize_n" --backend processes
    measure tiny tiny "amorsize threads" "$rep" "$peer" --kind tiny --items "$amorsize_n" --backend threads
    measure tiny tiny "amorsize mpirun -np 3" "$rep" "${mpirun[@]}" -np 3 "$peer" --kind tiny --items "$amorsize_n"
    measure tiny tiny "multiprocessing.Pool" "$rep" "$python" bench/peers/python_peers.py --system mp \
      --workers "$workers" --source "tiny:$python_n" --chunks 1,10,100,1000,10000
    measure tiny tiny "mpi4py.futures -np 3" "$rep" "${mpirun[@]}" -np 3 "$python" -m mpi4py.futures \
      bench/peers/python_peers.py --system mpi4py --source "tiny:$mpi4py_n" --chunks 1,10,100,1000
  done
}

# 1 ms and 10 ms items: efficiency of every system.
section_efficiency() {
  local items
  items=$(scaled 1000 20)
  durations spin-1ms --dist constant --mean-ms 1 --items "$items"
  all_systems efficiency spin-1ms 1,4,16 --dist constant --mean-ms 1 --items "$items"
  items=$(scaled 200 8)
  durations spin-10ms --dist constant --mean-ms 10 --items "$items"
  all_systems efficiency spin-10ms 1,4 --dist constant --mean-ms 10 --items "$items"
}

# Five plan-quality workloads: the auto plan against a fixed chunk-size sweep, predicted against
# measured speedup, and the peers on the same durations.
section_quality() {
  local items rep name system
  local chunks=1,2,4,8,16,32,64,128
  items=$(scaled 1000 40)  # 2 s of work: long enough that planning and start-up are small against it
  $smoke && chunks=1,8
  local -a names=(uniform heavy-tail increasing decreasing bimodal)
  local -a options=("--dist uniform --cv 0.5" "--dist lognormal --cv 2" "--dist increasing --cv 0.5"
    "--dist decreasing --cv 0.5" "--dist bimodal")
  local i
  for i in "${!names[@]}"; do
    name=${names[$i]}
    local -a opts
    read -ra opts <<<"${options[$i]} --mean-ms 2 --items $items"
    durations "$name" "${opts[@]}"
    for ((rep = 1; rep <= reps; rep++)); do
      measure quality "$name" "amorsize processes" "$rep" "$peer" "${opts[@]}" --backend processes --chunks "auto,$chunks"
      for system in omp-static omp-dynamic omp-guided tbb; do
        measure quality "$name" "$system" "$rep" "$native" "$system" "$workers" "$work/$name.durations"
      done
      measure quality "$name" "multiprocessing.Pool" "$rep" "$python" bench/peers/python_peers.py --system mp \
        --workers "$workers" --source "$work/$name.durations" --chunks 1,8,32
    done
  done
  # A generator whose first 20 items take no time, the others 2 ms: a serial plan whose run goes parallel.
  local -a cheap=(--dist constant --mean-ms 2 --cheap-first 20 --items "$items" --source generator)
  durations cheap-first "${cheap[@]}"
  for ((rep = 1; rep <= reps; rep++)); do
    # No backend forced, as a user runs it: the plan is serial, and only a serial plan's run can go parallel.
    measure quality cheap-first "amorsize processes" "$rep" "$peer" "${cheap[@]}" --chunks "auto,$chunks"
  done
}

# Large results: the root's peak RSS against the volume of results that passes through it.
section_large() {
  local items bytes rep
  items=$(scaled 64 4)
  durations large --dist constant --mean-ms 1 --items "$items"
  for ((rep = 1; rep <= reps; rep++)); do
    for bytes in 65536 1048576 4194304; do
      $smoke && ((bytes > 65536)) && continue
      local load=$((bytes / 1024))KiB
      measure large "$load" "amorsize processes" "$rep" "$peer" --mean-ms 1 --items "$items" --result-bytes "$bytes" \
        --backend processes --chunks auto
      measure large "$load" "amorsize mpirun -np 3" "$rep" "${mpirun[@]}" -np 3 "$peer" --mean-ms 1 --items "$items" \
        --result-bytes "$bytes" --chunks auto
      measure large "$load" "multiprocessing.Pool" "$rep" "$python" bench/peers/python_peers.py --system mp \
        --workers "$workers" --source "$work/large.durations" --result-bytes "$bytes" --chunks 1
      measure large "$load" "mpi4py.futures -np 3" "$rep" "${mpirun[@]}" -np 3 "$python" -m mpi4py.futures \
        bench/peers/python_peers.py --system mpi4py --source "$work/large.durations" --result-bytes "$bytes" --chunks 1
    done
  done
}

# Sleep items at 3, 5, 9 and 17 ranks: the root's CPU per chunk and throughput against ideal.
section_ranks() {
  local ranks rep items
  for ((rep = 1; rep <= reps; rep++)); do
    for ranks in 3 5 9 17; do
      $smoke && ((ranks > 5)) && continue
      items=$(scaled $((100 * (ranks - 1))) $((2 * (ranks - 1))))
      ((rep > 1)) || durations "sleep-$ranks" --kind sleep --dist constant --mean-ms 5 --items "$items"
      measure ranks "$ranks ranks" "amorsize" "$rep" "${mpirun[@]}" -np "$ranks" "$peer" --kind sleep --mean-ms 5 \
        --items "$items" --chunks auto,1
      measure ranks "$ranks ranks" "mpi4py.futures" "$rep" "${mpirun[@]}" -np "$ranks" "$python" -m mpi4py.futures \
        bench/peers/python_peers.py --system mpi4py --kind sleep --source "$work/sleep-$ranks.durations" --chunks 1
    done
  done
}

# Shell tasks: xargs -P, GNU parallel and amorsize-run run shell (bench/task_farm.sh) on `true` and 10 ms sleeps.
section_shell() {
  local rep tasks
  tasks=$(scaled 400 40)
  for ((rep = 1; rep <= reps; rep++)); do
    measure shell tasks farm "$rep" bench/task_farm.sh --jsonl "$run" "$tasks"
  done
}

IFS=, read -ra chosen <<<"$sections"
for section in "${chosen[@]}"; do
  case $section in
    tiny | efficiency | quality | large | ranks | shell) ;;
    *) echo "benchmarks: unknown section $section" >&2; exit 2 ;;
  esac
  load_average "$section" before
  "section_$section"
  load_average "$section" after
done

elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
"$python" bench/report.py --work "$work" --docs "$docs" --command "$command_line" --seconds "$elapsed" \
  --reps "$reps" --workers "$workers" --mode "$($smoke && echo smoke || echo full)"
echo "benchmarks: wrote $docs/BENCHMARKS.md and $docs/benchmarks/*.png in ${elapsed} s" >&2
