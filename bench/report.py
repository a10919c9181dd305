"""Writes BENCHMARKS.md and its plots from the JSON lines scripts/benchmarks.sh measured.

Every number in the document comes from the run's files: results.jsonl (one line per measured run,
tagged with section, workload, system and repetition), loads.jsonl (load average before and after
each section) and the durations files of the workloads (their sum is the serial item time).
Run with /usr/bin/python3 (Debian's matplotlib and numpy).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

NATIVE_SYSTEMS = ("serial", "omp-static", "omp-dynamic", "omp-guided", "tbb")
PYTHON_SYSTEMS = ("multiprocessing.Pool", "mpi4py.futures -np 3")
QUALITY_WORKLOADS = ("uniform", "heavy-tail", "increasing", "decreasing", "bimodal")
# A generator whose first items take no time: the plan before the run says serial, the run goes parallel.
CHEAP_FIRST = "cheap-first"


def parse():
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="the folder benchmarks.sh wrote its measurements to")
    parser.add_argument("--docs", required=True, help="where BENCHMARKS.md and benchmarks/*.png go")
    parser.add_argument("--command", required=True)
    parser.add_argument("--seconds", type=float, required=True, help="wall time of the measurements")
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True, help="cores the local peers used")
    parser.add_argument("--mode", required=True)
    return parser.parse_args()


def read_lines(path):
    """Returns the JSON objects of a JSON-lines file (none when it is absent)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def command_output(command):
    """Returns the first line a command prints, or 'not found'."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "not found"


def package_version(name):
    """Returns the installed version of a Debian package, or 'not installed'."""
    version = command_output(["dpkg-query", "-W", "-f=${Version}", name])
    return version if version and "no packages" not in version else "not installed"


def machine():
    """Returns the machine's CPU model, cores and memory, as lscpu and /proc/meminfo give them."""
    fields = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        total_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read()).group(1))
    return {
        "model": fields.get("Model name", platform.processor()),
        "cpus": fields.get("CPU(s)", "?"),
        "cores": fields.get("Core(s) per socket", "?"),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "memory": f"{total_kib / 1048576:.1f} GiB",
    }


def versions():
    """Returns the versions of every system and tool the suite compares."""
    import mpi4py
    import numpy

    return [
        ("gcc", command_output(["gcc", "--version"])),
        ("Open MPI", command_output(["mpirun", "--version"])),
        ("Boost (libboost-mpi-dev)", package_version("libboost-mpi-dev")),
        ("TBB (libtbb-dev)", package_version("libtbb-dev")),
        ("OpenMP (libgomp1)", package_version("libgomp1")),
        ("Python", platform.python_version() + " (/usr/bin/python3)"),
        ("mpi4py", mpi4py.__version__),
        ("numpy / matplotlib", f"{numpy.__version__} / {matplotlib.__version__}"),
        ("GNU parallel", command_output(["parallel", "--version"])),
        ("xargs", command_output(["xargs", "--version"])),
        ("kernel", platform.release()),
    ]


def spread(values, fmt):
    """Formats the median of `values` with its min-max spread."""
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def median(values):
    """Returns the median, or 0 for no values."""
    return statistics.median(values) if values else 0.0


def ratio(value, reference, digits):
    """Formats value / reference to `digits` decimals with an 'x', or '-' when the reference is not positive."""
    return f"{value / reference:.{digits}f}x" if reference > 0 else "-"


def first_seen(values):
    """Returns the distinct values in the order they first appear."""
    return list(dict.fromkeys(values))


class Results:
    """The measured runs, grouped for the tables."""

    def __init__(self, work):
        self.runs = read_lines(os.path.join(work, "results.jsonl"))
        self.loads = read_lines(os.path.join(work, "loads.jsonl"))
        self.work = work
        self.serial_seconds = {}
        for w in read_lines(os.path.join(work, "workloads.jsonl")):
            with open(os.path.join(work, w["file"]), encoding="ascii") as durations:
                self.serial_seconds[w["workload"]] = sum(float(line) for line in durations) / 1e6

    def select(self, section, workload=None, system=None, chunksize=None):
        """Returns the runs that match every given tag."""
        return [r for r in self.runs if r["section"] == section
                and (workload is None or r["workload"] == workload)
                and (system is None or r["system"] == system)
                and (chunksize is None or r["chunksize"] == chunksize)]

    def workloads(self, section):
        """Returns the workloads measured in a section, in first-measured order."""
        return first_seen(r["workload"] for r in self.select(section))

    def systems(self, section, workload):
        """Returns the systems measured on a workload, in first-measured order."""
        return first_seen(r["system"] for r in self.select(section, workload))

    def chunk_sizes(self, section, workload, system):
        """Returns the chunk sizes a system ran on a workload, in first-measured order."""
        return first_seen(r["chunksize"] for r in self.select(section, workload, system))

    def fixed_chunks(self, section, workload, system):
        """Returns the chunk sizes other than 'auto' a system ran on a workload, in first-measured order."""
        return [c for c in self.chunk_sizes(section, workload, system) if c != "auto"]


def configurations(results, section, workload, system, score):
    """Returns the (label, chunk size) rows a system gets: the auto plan or its own chunking; chunk 1
    and the best of a sweep."""
    fixed = results.fixed_chunks(section, workload, system)
    auto = "auto" in results.chunk_sizes(section, workload, system)
    rows = [(describe(results.select(section, workload, system, "auto")[0]), "auto")] if auto else []
    if len(fixed) == 1:
        rows.append((describe(results.select(section, workload, system, fixed[0])[0]), fixed[0]))
    elif fixed:
        if "1" in fixed:
            rows.append(("chunk 1", "1"))
        best = max(fixed, key=lambda c: median([score(r) for r in results.select(section, workload, system, c)]))
        rows.append((f"best chunk of {{{','.join(fixed)}}}: {best}", best))
    return rows


def configuration_runs(results, section, workload, score):
    """Yields (system, label, runs) for every configuration of every system measured on a workload."""
    for system in results.systems(section, workload):
        for label, chunk in configurations(results, section, workload, system, score):
            yield system, label, results.select(section, workload, system, chunk)


def describe(run):
    """Describes the configuration of a run in a few words."""
    if run["chunksize"] == "auto":
        schedule = run.get("schedule", "?")
        return f"auto plan: {run.get('backend', '?')}, {schedule}"
    return {"own": "its own chunking", "loop": "plain loop", "1": "chunk 1"}.get(run["chunksize"], "chunk " + run["chunksize"])


def cores(run):
    """Workers a run held: those that ran chunks, or the plan's when it started more."""
    return max(run["workers"], run.get("plan_workers", 1))


def ns_per_item(run):
    """Wall time times workers over items, in ns (a near-zero item's cost with parallelism charged)."""
    return 1e9 * run["wall"] * cores(run) / run["items"]


def items_per_second(run):
    """Items over wall time: a run's throughput."""
    return run["items"] / run["wall"]


def table(header, rows):
    """Returns a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_table(out, header, rows):
    """Appends a Markdown table and a blank line to the document."""
    out.append(table(header, rows))
    out.append("")


def open_section(results, out, section, heading, intro):
    """Appends a section's heading and introduction if it was measured; returns whether it was."""
    if not results.select(section):
        return False
    out.append(heading)
    out.append(intro)
    return True


def loads_table(results):
    """Returns the load average before and after each section."""
    by_section = defaultdict(dict)
    for load in results.loads:
        by_section[load["section"]][load["load"]] = f"{load['loadavg']} ({load['time'][11:19]} UTC)"
    rows = [(s, v.get("before", "-"), v.get("after", "-")) for s, v in by_section.items()]
    return table(["section", "load average before (1, 5, 15 min)", "after"], rows)


def tiny_section(results, out):
    """Near-zero items: ns per item on every system."""
    if not open_section(
            results, out, "tiny", "## 1. Near-zero items: cost per item\n",
            "Each item is `amorsize_bench_tiny(i)` (a few ns of integer arithmetic in `spin.c`, called through\n"
            "the shared library, so nothing inlines it). ns per item = wall x workers / items: the item\n"
            "and every overhead of running it in parallel, in core-nanoseconds. The serial loop is the floor.\n"
            "Python pools are timed after their start-up and a warm-up; amorsize's wall includes planning and\n"
            "starting its workers; workers = the workers the plan started. `amorsize` lets the plan choose\n"
            "(serial included); `amorsize processes` and `amorsize threads` force that backend, so the plan\n"
            "must run in parallel. mpi4py.futures polls for results with a 1 ms back-off (its default), which\n"
            "chunk 1 pays per item.\n"):
        return
    serial = median([ns_per_item(r) for r in results.select("tiny", "tiny", "serial")])
    rows = []
    for system, label, sel in configuration_runs(results, "tiny", "tiny", lambda r: -ns_per_item(r)):
        values = [ns_per_item(r) for r in sel]
        rows.append((system, label, cores(sel[0]), sel[0]["items"], spread(values, "{:.1f}"),
                     ratio(median(values), serial, 1)))
    append_table(out, ["system", "configuration", "workers", "items", "ns per item: median (min-max)", "vs serial loop"],
                 rows)


def efficiency(results, run):
    """Serial item time over workers times wall."""
    return results.serial_seconds[run["workload"]] / (cores(run) * run["wall"])


def efficiency_rows(results, section, workload):
    """Returns (system, label, workers, efficiency values) for every configuration on a workload."""
    return [(system, label, cores(sel[0]), [efficiency(results, r) for r in sel])
            for system, label, sel in configuration_runs(results, section, workload, lambda r: efficiency(results, r))]


def versus_best(rows):
    """Formats efficiency rows as (system, label, workers, spread, ratio to the best system's median)."""
    best = max((median(v) for _, _, _, v in rows), default=0.0)
    return [(system, label, workers, spread(v, "{:.3f}"), f"{median(v) / best:.3f}") for system, label, workers, v in rows]


def efficiency_section(results, out, plots):
    """1 ms and 10 ms items: efficiency of every system."""
    if not open_section(
            results, out, "efficiency", "## 2. Efficiency on 1 ms and 10 ms items\n",
            "Efficiency = serial item time (the sum of the items' durations) / (workers x wall). amorsize's\n"
            "wall includes planning (sampling on the root) and starting its workers. On a shared machine every\n"
            "system loses alike (see the load averages): compare systems by the last column.\n"):
        return
    for workload in ("spin-1ms", "spin-10ms"):
        rows = efficiency_rows(results, "efficiency", workload)
        if not rows:
            continue
        n = results.select("efficiency", workload)[0]["items"]
        out.append(f"### {workload} ({n} items, serial {results.serial_seconds[workload]:.2f} s)\n")
        append_table(out, ["system", "configuration", "workers", "efficiency: median (min-max)", "vs the best system"],
                     versus_best(rows))
    plots.append(efficiency_plot(results))


def efficiency_plot(results):
    """Draws efficiency per workload and system (the best configuration of each); returns the file name."""
    workloads = [w for w in ("spin-1ms", "spin-10ms") + QUALITY_WORKLOADS
                 if results.select("efficiency", w) or results.select("quality", w)]
    systems = []
    data = defaultdict(dict)
    for workload in workloads:
        section = "efficiency" if results.select("efficiency", workload) else "quality"
        auto = {s for s in results.systems(section, workload) if "auto" in results.chunk_sizes(section, workload, s)}
        for system, label, _, values in efficiency_rows(results, section, workload):
            if system == "serial" or (system in auto and not label.startswith("auto")):
                continue
            data[system][workload] = max(data[system].get(workload, 0.0), median(values))
            if system not in systems:
                systems.append(system)
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        xs = [k + i * width for k in range(len(workloads))]
        ax.bar(xs, [data[system].get(w, 0.0) for w in workloads], width, label=system)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(workloads))], workloads)
    ax.set_ylabel("efficiency (median)")
    ax.set_ylim(0, 1.1)
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title("Efficiency per workload and system (amorsize: auto plan; sweeps: best chunk size)")
    return save(fig, "efficiency.png")


def amorsize_rates(results, workload, chunk):
    """Returns the items per second of amorsize processes' runs at one chunk size on a quality workload."""
    return [items_per_second(r) for r in results.select("quality", workload, "amorsize processes", chunk)]


def speedups(results, workload, autos):
    """Returns the measured and the predicted speedups of auto runs on a workload."""
    measured = [results.serial_seconds[workload] / r["wall"] for r in autos]
    predicted = [r["estimated_speedup"] for r in autos]
    return measured, predicted


def quality_section(results, out, plots):
    """Plan-quality workloads: auto against the fixed sweep, predicted against measured speedup."""
    if not open_section(
            results, out, "quality", "## 3. Plan quality: five workloads of 2 ms mean items\n",
            "amorsize's auto plan (optimize_streaming, then its pool; wall includes planning) against fixed\n"
            "chunk sizes on the plan's workers and order, side by side in each repetition. Measured speedup =\n"
            "serial item time / auto wall; the prediction is the plan's `estimated_speedup`.\n"):
        return
    rows = []
    for workload in QUALITY_WORKLOADS:
        system = "amorsize processes"
        if not results.select("quality", workload, system):
            continue
        autos = results.select("quality", workload, system, "auto")
        rate = {c: amorsize_rates(results, workload, c) for c in results.fixed_chunks("quality", workload, system)}
        best = max(rate, key=lambda c: median(rate[c]))
        auto_rate = amorsize_rates(results, workload, "auto")
        ratios = [a / median(rate[best]) for a in auto_rate]
        measured, predicted = speedups(results, workload, autos)
        errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
        rows.append((workload, autos[0]["items"], f"{autos[0]['workers']} workers, {autos[0]['schedule']}",
                     spread(auto_rate, "{:.0f}"), f"{best} ({median(rate[best]):.0f}/s)", spread(ratios, "{:.3f}"),
                     spread(predicted, "{:.2f}"), spread(measured, "{:.2f}"), spread([100 * e for e in errors], "{:.1f}%"),
                     spread([r.get("plan_load", 0.0) for r in autos], "{:.2f}")))
    out.append(table(["workload", "items", "auto plan", "auto items/s", "best fixed chunk", "auto / best fixed",
                      "predicted speedup", "measured speedup", "prediction error", "load the plan saw"], rows))
    out.append("\nWorkloads: uniform (CV 0.5), heavy-tail (lognormal CV 2), increasing and decreasing (cost\n"
               "linear in the index, CV 0.5), bimodal (80% of items 1 ms, 20% 6 ms). The peers run the same\n"
               "durations (dumped by `amorsize_bench_peer --dump`):\n")
    peer_rows = [(workload,) + row for workload in QUALITY_WORKLOADS
                 for row in versus_best(efficiency_rows(results, "quality", workload))]
    append_table(out, ["workload", "system", "configuration", "workers", "efficiency: median (min-max)",
                       "vs the best system"], peer_rows)
    cheap_first_table(results, out)
    plots.append(sweep_plot(results))
    plots.append(prediction_plot(results))


def cheap_first_table(results, out):
    """A serial plan that turns out dear: when the run went parallel, and the live prediction after it."""
    system = "amorsize processes"
    autos = results.select("quality", CHEAP_FIRST, system, "auto")
    if not autos:
        return
    rate = {c: amorsize_rates(results, CHEAP_FIRST, c) for c in results.fixed_chunks("quality", CHEAP_FIRST, system)}
    best = max(rate, key=lambda c: median(rate[c]))
    auto_rate = amorsize_rates(results, CHEAP_FIRST, "auto")
    measured, predicted = speedups(results, CHEAP_FIRST, autos)
    serial = results.serial_seconds[CHEAP_FIRST]
    live = [serial / (r["plan_seconds"] + r["live_predicted_seconds"]) for r in autos
            if r.get("live_predicted_seconds", 0.0) > 0.0]
    went = [r for r in autos if "went_parallel_after" in r]
    live_errors = [abs(p - m) / m for p, m in
                   zip(live, [m for r, m in zip(autos, measured) if r.get("live_predicted_seconds", 0.0) > 0.0])]
    out.append(f"\n### A serial plan that turns out dear ({CHEAP_FIRST})\n")
    out.append("A generator of known size whose first 20 items take no time and the others 2 ms each: sampling\n"
               "sees only its first items, so the plan before the run is serial; the serial run re-plans from the\n"
               "items it ran and hands the rest to workers. The live prediction is the run's own\n"
               "(`run_stats::predicted_seconds`) after the switch.\n")
    out.append(table(["items", "plan before the run", "runs that went parallel", "after items", "auto / best fixed",
                      "best fixed chunk", "predicted (plan)", "predicted (live)", "measured speedup",
                      "live prediction error"],
                     [(autos[0]["items"], autos[0]["schedule"], f"{len(went)} of {len(autos)}",
                       spread([r["went_parallel_after"] for r in went], "{:.0f}"),
                       spread([a / median(rate[best]) for a in auto_rate], "{:.3f}"),
                       f"{best} ({median(rate[best]):.0f}/s)", spread(predicted, "{:.2f}"), spread(live, "{:.2f}"),
                       spread(measured, "{:.2f}"), spread([100 * e for e in live_errors], "{:.1f}%"))]))


def sweep_plot(results):
    """Draws throughput against chunk size per workload with the auto plan marked; returns the file name."""
    workloads = [w for w in QUALITY_WORKLOADS if results.select("quality", w, "amorsize processes")]
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads), 3.4), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        fixed = results.fixed_chunks("quality", workload, "amorsize processes")
        ax.plot([int(c) for c in fixed], [median(amorsize_rates(results, workload, c)) for c in fixed], "o-",
                label="fixed chunk")
        autos = results.select("quality", workload, "amorsize processes", "auto")
        auto_rate = median(amorsize_rates(results, workload, "auto"))
        ax.axhline(auto_rate, color="red", linestyle="--", label=f"auto ({autos[0]['schedule']})")
        match = re.search(r"(\d+)", autos[0].get("schedule", ""))
        if match:
            ax.plot([int(match.group(1))], [auto_rate], "r*", markersize=12)
        ax.set_xscale("log", base=2)
        ax.set_title(workload)
        ax.set_xlabel("chunk size")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("items/s (median)")
    fig.suptitle("amorsize processes: throughput against chunk size, auto plan marked")
    return save(fig, "chunk_sweep.png")


def prediction_plot(results):
    """Draws predicted against measured speedup of every auto run; returns the file name."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 1.0
    for workload in QUALITY_WORKLOADS:
        autos = results.select("quality", workload, "amorsize processes", "auto")
        if not autos:
            continue
        measured, predicted = speedups(results, workload, autos)
        ax.plot(measured, predicted, "o", label=workload)
        top = max(top, *measured, *predicted)
    ax.plot([0, top * 1.1], [0, top * 1.1], "k:", label="exact")
    ax.set_xlabel("measured speedup")
    ax.set_ylabel("predicted speedup (plan)")
    ax.set_title("Predicted against measured speedup")
    ax.legend(fontsize=8)
    return save(fig, "prediction.png")


def line_plot(series, name, title, xlabel, ylabel, xscale="linear", yscale="linear"):
    """Draws one line of (x, y) points per labelled series; returns the file name."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, name)


def large_section(results, out, plots):
    """Large results: the root's peak RSS against the volume of results."""
    if not open_section(
            results, out, "large", "## 4. Large results: the root's peak memory\n",
            "Items of 1 ms that return results of the given size, streamed (amorsize's auto plan;\n"
            "multiprocessing `imap_unordered` and mpi4py `map(unordered=True)` at chunk 1); the root drops each\n"
            "result as it arrives. Peak RSS is the root process's `ru_maxrss` (workers excluded).\n"):
        return
    rows = []
    series = defaultdict(list)
    for workload in results.workloads("large"):
        for system in results.systems("large", workload):
            sel = results.select("large", workload, system)
            volume = sel[0]["items"] * int(workload[:-3]) / 1024
            rss = [r["peak_rss_kib"] / 1024 for r in sel]
            rows.append((workload, system, sel[0]["items"], f"{volume:.1f}", spread(rss, "{:.0f}"),
                         spread([r["wall"] for r in sel], "{:.2f}")))
            series[system].append((volume, median(rss)))
    append_table(out, ["result size", "system", "items", "result volume (MiB)", "root peak RSS (MiB)", "wall (s)"], rows)
    plots.append(line_plot(series, "large_results.png", "Root memory against result volume",
                           "result volume through the root (MiB)", "root peak RSS (MiB, median)", xscale="log"))


def ranks_section(results, out, plots):
    """Sleep items at several rank counts: the root's CPU per chunk and throughput against ideal."""
    if not open_section(
            results, out, "ranks", "## 5. Many ranks on 2 cores: 5 ms sleep items under `mpirun --oversubscribe`\n",
            "Ideal throughput = worker ranks / 5 ms. Root CPU per chunk = the root's CPU time during the run\n"
            "(amorsize: `run_stats::root_cpu_seconds`; mpi4py: `getrusage` of the root process) / chunks sent;\n"
            "a fixed cost per run (start, waits, the end) weighs on it when a run has few chunks. Wall includes\n"
            "amorsize's planning (5 sampled items on the root). mpi4py.futures polls with a 1 ms back-off.\n"):
        return
    rows = []
    series = defaultdict(list)
    for workload in results.workloads("ranks"):
        ranks = int(workload.split()[0])
        ideal = (ranks - 1) / 0.005
        for system in results.systems("ranks", workload):
            for chunk in results.chunk_sizes("ranks", workload, system):
                sel = results.select("ranks", workload, system, chunk)
                per_chunk = [1e6 * r["root_cpu"] / max(1, r["chunks"]) for r in sel]
                through = [items_per_second(r) / ideal for r in sel]
                label = describe(sel[0])
                busy = [100 * r["root_cpu"] / r["wall"] for r in sel]
                rows.append((ranks, system, label, sel[0]["items"], spread([r["chunks"] for r in sel], "{:.0f}"),
                             spread([1e3 * r["root_cpu"] for r in sel], "{:.1f}"), spread(busy, "{:.1f}%"),
                             spread(per_chunk, "{:.0f}"), spread(through, "{:.3f}")))
                series[f"{system}, {'auto' if chunk == 'auto' else 'chunk ' + chunk}"].append((ranks, median(per_chunk)))
    append_table(out, ["ranks", "system", "configuration", "items", "chunks", "root CPU (ms)", "root CPU / wall",
                       "root CPU per chunk (us)", "throughput / ideal"], rows)
    plots.append(line_plot(series, "root_cpu.png", "Root CPU per chunk, 5 ms sleep items", "ranks (one root)",
                           "root CPU per chunk (us, median)", yscale="log"))


def shell_section(results, out, workers):
    """Shell tasks: xargs, GNU parallel and amorsize-run's shell job."""
    if not open_section(
            results, out, "shell", "## 6. Shell tasks: `xargs -P`, GNU `parallel` and `amorsize-run run shell`\n",
            f"`bench/task_farm.sh --jsonl`: every tool runs the same task list with {workers} slots (amorsize-run\n"
            "also as planned, where the plan may run more workers for tasks that leave the cores idle).\n"
            "Overhead per task = wall per task (start-up included) - task time / 2 slots; without start-up it\n"
            "is the difference between the full list and one a tenth as long. A negative overhead: the plan ran\n"
            "more workers than 2 slots (the tasks sleep). The mpirun row pays mpirun's start once.\n"):
        return
    rows = []
    for workload in results.workloads("shell"):
        sel = results.select("shell", workload)
        most = max(r["items"] for r in sel)
        few = min(r["items"] for r in sel)
        task_ms = sel[0]["task_ms"]

        def walls(system, items):
            return {r["rep"]: r["wall"] for r in sel if r["system"] == system and r["items"] == items}

        def overheads(system):
            full = walls(system, most)
            short = walls(system, few)
            per_task = [1e3 * full[k] / most for k in full]
            over = [p - task_ms / 2 for p in per_task]
            marginal = [1e3 * (full[k] - short[k]) / (most - few) - task_ms / 2 for k in full if k in short]
            return per_task, over, marginal

        xargs_over = median(overheads("xargs -P2")[1])
        parallel_over = median(overheads("parallel -j2")[1])
        for system in first_seen(r["system"] for r in sel):
            per_task, over, marginal = overheads(system)
            rows.append((workload, most, system, spread(per_task, "{:.3f}"), spread(over, "{:.3f}"),
                         spread(marginal, "{:.3f}"),
                         ratio(median(over), xargs_over, 2), ratio(median(over), parallel_over, 2)))
    append_table(out, ["tasks", "count", "tool", "ms per task", "overhead ms per task", "without start-up",
                       "overhead vs xargs", "vs parallel"], rows)


def save(fig, name):
    """Lays out a figure, saves it under benchmarks/ and returns its file name."""
    fig.tight_layout()
    fig.savefig(os.path.join(SAVE_DIR, name), dpi=100)
    plt.close(fig)
    return name


SAVE_DIR = "."


def main():
    """Writes the document and the plots."""
    global SAVE_DIR  # pylint: disable=global-statement
    args = parse()
    SAVE_DIR = os.path.join(args.docs, "benchmarks")
    os.makedirs(SAVE_DIR, exist_ok=True)
    results = Results(args.work)
    m = machine()
    out = ["# Benchmarks: amorsize against its peers\n",
           "Generated by the command below; every number is measured by that run (nothing is copied in).\n",
           f"- Command: `{args.command}` ({args.mode} run, {args.reps} repetition(s) of every measurement, run\n"
           f"  side by side; tables show the median and the min-max spread)",
           f"- Measured in {args.seconds:.0f} s, finished {subprocess.run(['date', '-u', '+%F %T UTC'], capture_output=True, text=True, check=False).stdout.strip()}",
           f"- Machine: {m['model']}, {m['cpus']} CPUs ({m['cores']} cores per socket, {m['threads_per_core']} thread(s) per core), {m['memory']} memory",
           "- The kernel: `bench/peers/spin.c`, a busy-spin on `CLOCK_MONOTONIC` (and a sleep), linked by the C++ peers\n"
           "  and loaded with ctypes by the Python ones; durations from `jobs/synthetic.hpp`'s formula.",
           "- The machine may be shared: the load averages below show what else ran.\n",
           "## Versions\n", table(["component", "version"], versions()), "",
           "## Load average\n", loads_table(results), ""]
    plots = []
    tiny_section(results, out)
    efficiency_section(results, out, plots)
    quality_section(results, out, plots)
    large_section(results, out, plots)
    ranks_section(results, out, plots)
    shell_section(results, out, args.workers)
    out.append("## Plots\n")
    out += [f"![{p}](benchmarks/{p})\n" for p in plots]
    with open(os.path.join(args.docs, "BENCHMARKS.md"), "w", encoding="utf-8") as doc:
        doc.write("\n".join(out))


if __name__ == "__main__":
    main()
