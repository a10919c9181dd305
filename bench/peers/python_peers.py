"""The Python peers of the benchmark suite: multiprocessing.Pool and mpi4py.futures.MPIPoolExecutor.

Each runs the shared kernel (spin.c, loaded with ctypes from $AMORSIZE_BENCH_SPIN_LIB) over the
durations amorsize_bench_peer --dump wrote, or over near-zero items, once per chunk size of a sweep
in one pool, and prints one JSON line per run. Run it with /usr/bin/python3 (Debian's, which has
mpi4py); mpi4py.futures runs as `mpirun -np N /usr/bin/python3 -m mpi4py.futures python_peers.py ...`.
"""

import argparse
import ctypes
import json
import os
import resource
import sys
import time

_LIB = ctypes.CDLL(os.environ["AMORSIZE_BENCH_SPIN_LIB"])
_LIB.amorsize_bench_spin_us.argtypes = [ctypes.c_double]
_LIB.amorsize_bench_sleep_us.argtypes = [ctypes.c_double]
_LIB.amorsize_bench_tiny.argtypes = [ctypes.c_uint64]
_LIB.amorsize_bench_tiny.restype = ctypes.c_uint64


def tiny_item(index):
    """Runs the near-zero item."""
    return _LIB.amorsize_bench_tiny(index)


def spin_item(microseconds):
    """Spins for the item's duration."""
    _LIB.amorsize_bench_spin_us(microseconds)


def sleep_item(microseconds):
    """Sleeps for the item's duration."""
    _LIB.amorsize_bench_sleep_us(microseconds)


def large_item(item):
    """Spins for the item's duration and returns its result of the given size."""
    microseconds, size = item
    _LIB.amorsize_bench_spin_us(microseconds)
    return bytes(size)


def cpu_seconds():
    """Returns the CPU time this process has used (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse():
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["mp", "mpi4py"], required=True)
    parser.add_argument("--workers", type=int, default=2, help="multiprocessing workers (mpi4py: the ranks but one)")
    parser.add_argument("--source", required=True, help="a durations file, or tiny:N for N near-zero items")
    parser.add_argument("--kind", choices=["spin", "sleep"], default="spin")
    parser.add_argument("--chunks", default="1", help="chunk sizes, comma-separated")
    parser.add_argument("--result-bytes", type=int, default=0, help="> 0: items return this many bytes, streamed")
    return parser.parse_args()


def workload(args):
    """Returns the function and the items of the run."""
    if args.source.startswith("tiny:"):
        return tiny_item, list(range(int(args.source[5:])))
    with open(args.source, encoding="ascii") as durations:
        items = [float(line) for line in durations if line.strip()]
    if args.result_bytes > 0:
        return large_item, [(us, args.result_bytes) for us in items]
    return (sleep_item if args.kind == "sleep" else spin_item), items


def sweep(args, run, workers):
    """Runs every chunk size with `run(fn, items, chunksize)` and prints a JSON line for each."""
    fn, items = workload(args)
    run(tiny_item, list(range(100)), 1)  # warm-up: every worker has started and imported the module
    for chunk in [int(c) for c in args.chunks.split(",")]:
        cpu = cpu_seconds()
        start = time.perf_counter()
        run(fn, items, chunk)
        wall = time.perf_counter() - start
        record = {"chunksize": str(chunk), "wall": round(wall, 6), "items": len(items), "workers": workers,
                  "chunks": -(-len(items) // chunk), "root_cpu": round(cpu_seconds() - cpu, 6),
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        print(json.dumps(record), flush=True)


def main():
    """Runs the sweep on the chosen system."""
    args = parse()
    streamed = args.result_bytes > 0
    if args.system == "mp":
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            def run(fn, items, chunk):
                if streamed:
                    for _ in pool.imap_unordered(fn, items, chunk):
                        pass
                else:
                    pool.map(fn, items, chunk)

            sweep(args, run, args.workers)
    else:
        from mpi4py import MPI
        from mpi4py.futures import MPIPoolExecutor

        workers = MPI.COMM_WORLD.Get_size() - 1
        with MPIPoolExecutor() as executor:
            def run(fn, items, chunk):
                for _ in executor.map(fn, items, chunksize=chunk, unordered=streamed):
                    pass

            sweep(args, run, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
