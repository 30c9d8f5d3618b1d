"""Helpers shared by bench/conftest.py and the benchmark modules.

They live here rather than in conftest.py so that every module imports the same instance
(``RESULTS`` is one dict whatever pytest's import mode).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

MB = 1_000_000
MiB = 1 << 20
#: read size of the floor loop, and the parser's chunk buffer counted in the memory budget
CHUNK = 16 * MiB
ROUNDS = 3

#: the goals the summary reports PASS / MISS against (never asserted: timings are noisy)
TARGETS = {
    "full_ratio": 5.0,  # full load() time <= 5x the floor time
    "full_mbps": 300.0,  # full load() >= 300 MB/s
    "filtered_ratio": 2.5,  # load(events=["sched_switch"]) <= 2.5x the floor time
    "mem_ratio": 1.5,  # (peak RSS - bare import RSS) < 1.5x (Trace.nbytes + chunk buffer)
    "sched_ratio": 1.0,  # task + CPU summaries + latency table < the load() of the same file
    "cli_switch_ratio": 1.0,  # `ftfast stats --switch-stats` < the grep|awk|sort|uniq pipeline
    "cli_filter_ratio": 1.5,  # `ftfast filter --comm RE` <= 1.5x `grep -E RE`
    "diagnose_ratio": 2.0,  # `ftfast diagnose FILE` < 2x a process that only load()s FILE
    "plot_ratio": 1.0,  # the timeline and cpu-util charts (PNG) < the load() of the same file
    # issue 16: load() in a fresh process (first touch included) <= 2x the floor, and one
    # thread at most 200 ns an event line
    "fresh_ratio": 2.0,
    "one_thread_ns": 200.0,
}

#: filled by the tests; printed by conftest's pytest_terminal_summary and saved as JSON
RESULTS: dict = {}


def bench_mb() -> float:
    return float(os.environ.get("FTFAST_BENCH_MB", "200"))


def bench_seed() -> int:
    return int(os.environ.get("FTFAST_BENCH_SEED", "1"))


class BenchFile:
    """A generated log and what the generator recorded about it."""

    def __init__(self, path: str, info: dict):
        self.path = path
        self.info = info
        self.bytes = info["bytes"]
        self.mb = self.bytes / MB
        self.event_lines = info["lines"]
        self.newlines = info["lines"] + info["header_lines"]
        self.events = info["events"]


# -- timing --------------------------------------------------------------------------------------


def _read_counting(path: str, buf: bytearray, count) -> int:
    """readinto one reused buffer, 16 MiB at a time; sum count(n) over the blocks."""
    lines = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            lines += count(n)
    return lines


def count_newlines(path: str, buf: bytearray) -> int:
    """The floor, as the issue defines it: readinto one reused buffer, 16 MiB at a time, and
    count b"\n" (``bytearray.count``)."""
    return _read_counting(path, buf, lambda n: buf.count(b"\n", 0, n))


def count_newlines_numpy(path: str, buf: bytearray) -> int:
    """A stricter floor reported beside it: the same reads, newlines counted by NumPy
    (``count_nonzero(a == 10)``), 2-3x faster than ``bytearray.count`` on these machines."""
    arr = np.frombuffer(buf, np.uint8)
    return _read_counting(path, buf, lambda n: int(np.count_nonzero(arr[:n] == 10)))


def run_timed(benchmark, fn, rounds: int = ROUNDS):
    """``benchmark.pedantic(fn)`` with few rounds; returns (last result, fastest round in s).

    The rounds are also timed here, so the figure exists under --benchmark-disable too.
    """
    times = []

    def target():
        t0 = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t0)
        return r

    result = benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=0)
    return result, min(times)


class Untimed:
    """Runs a function like pytest-benchmark's ``pedantic``, outside the benchmark record
    (for the second time of a ratio)."""

    def pedantic(self, fn, rounds, iterations, warmup_rounds):
        r = None
        for _ in range(rounds):
            r = fn()
        return r


def record_floor(bf: BenchFile, seconds: float, measured_by: str) -> dict:
    RESULTS["floor"] = r = {
        "seconds": seconds,
        "MB_per_s": bf.mb / seconds,
        "lines_per_s": bf.newlines / seconds,
        "measured_by": measured_by,
    }
    return r


def _fastest_newline_count(path: str, count) -> float:
    """Fastest of ROUNDS runs of a newline-count floor over the file, in seconds."""
    buf = bytearray(CHUNK)
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        count(path, buf)
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_floor_seconds(bf: BenchFile) -> float:
    """The NumPy floor of this session, measured once (fastest of ROUNDS)."""
    if "floor_numpy" not in RESULTS:
        s = _fastest_newline_count(bf.path, count_newlines_numpy)
        RESULTS["floor_numpy"] = {"seconds": s, "MB_per_s": bf.mb / s}
    return RESULTS["floor_numpy"]["seconds"]


def floor_seconds(bf: BenchFile) -> float:
    """The floor time of this session: test_floor's, or measured here (untimed by
    pytest-benchmark) when that test did not run."""
    if "floor" not in RESULTS:
        record_floor(bf, _fastest_newline_count(bf.path, count_newlines), measured_by="fixture")
    return RESULTS["floor"]["seconds"]


def set_extra_info(benchmark, d: dict):
    for k, v in d.items():
        if isinstance(v, dict) or v is None:
            continue
        benchmark.extra_info[k] = round(v, 4) if isinstance(v, float) else v


# -- peak memory, in a fresh interpreter ----------------------------------------------------------

_MEM_SCRIPT = r"""
import json, resource, sys, time
import numpy, ftrace_fast


def peak_kib():
    # VmHWM: peak RSS of this process image.  ru_maxrss is not usable here: on Linux exec()
    # keeps the high-water mark of the image it replaces, i.e. of the forking pytest process.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


a = json.loads(sys.argv[1])
out = {}
if a["path"] is not None:
    t0 = time.perf_counter()
    t = ftrace_fast.load(a["path"], events=a["events"])
    out["load_seconds"] = time.perf_counter() - t0
    out["nbytes"] = int(t.nbytes)
    out["events"] = int(sum(len(x) for x in t.events.values()))
out["maxrss_kib"] = peak_kib()
out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def mem_run(path, events) -> dict:
    """Run ``load(path, events=events)`` (nothing when path is None) in a fresh interpreter
    that has imported ftrace_fast and numpy; returns its peak RSS in KiB (``maxrss_kib``, from
    VmHWM) and Trace.nbytes."""
    p = subprocess.run(
        [sys.executable, "-c", _MEM_SCRIPT, json.dumps({"path": path, "events": events})],
        capture_output=True, text=True, check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


#: fresh interpreters run per memory figure: the peak RSS is the largest, the load time the
#: least (one fresh process is as noisy as any single run)
FRESH_RUNS = 3


def memory_figures(path, events, baseline_kib: int) -> dict:
    runs = [mem_run(path, events) for _ in range(FRESH_RUNS)]
    maxrss = max(r["maxrss_kib"] for r in runs)
    extra = (maxrss - baseline_kib) * 1024
    return {
        "peak_rss_MiB": maxrss / 1024,
        "baseline_rss_MiB": baseline_kib / 1024,
        "nbytes_MiB": runs[0]["nbytes"] / MiB,
        "mem_ratio": extra / (runs[0]["nbytes"] + CHUNK),
        "fresh_seconds": min(r["load_seconds"] for r in runs),
    }


# -- the summary ----------------------------------------------------------------------------------


def _verdict(ok) -> str:
    return "PASS" if ok else "MISS"


def summary_rows() -> list:
    floor = RESULTS.get("floor")
    full = RESULTS.get("load_full")
    filt = RESULTS.get("load_sched_switch")
    rows = []
    fnp = RESULTS.get("floor_numpy")
    if floor:
        rows.append(("floor: readinto 16 MiB + bytearray.count", f"{floor['MB_per_s']:,.0f} MB/s", "", ""))
    if fnp:
        rows.append(("(stricter floor: NumPy newline count)", f"{fnp['MB_per_s']:,.0f} MB/s", "", ""))
    if full:
        rows.append(("load() full", f"{full['MB_per_s']:,.0f} MB/s",
                     f">= {TARGETS['full_mbps']:.0f} MB/s",
                     _verdict(full["MB_per_s"] >= TARGETS["full_mbps"])))
        rows.append(("load() full, events/s", f"{full['events_per_s'] / 1e6:,.2f} M/s", "", ""))
        rows.append(("ratio full load / floor", f"{full['ratio_to_floor']:.2f}x",
                     f"<= {TARGETS['full_ratio']:g}x",
                     _verdict(full["ratio_to_floor"] <= TARGETS["full_ratio"])))
    if full and fnp:
        rows.append(("(ratio full load / NumPy floor)", f"{full['seconds'] / fnp['seconds']:.2f}x", "", ""))
    if filt:
        rows.append(('load(events=["sched_switch"])', f"{filt['MB_per_s']:,.0f} MB/s", "", ""))
        rows.append(("ratio filtered load / floor", f"{filt['ratio_to_floor']:.2f}x",
                     f"<= {TARGETS['filtered_ratio']:g}x",
                     _verdict(filt["ratio_to_floor"] <= TARGETS["filtered_ratio"])))
        if fnp:
            rows.append(("(ratio filtered load / NumPy floor)", f"{filt['seconds'] / fnp['seconds']:.2f}x", "", ""))
    if full and full.get("mem"):
        fr = full["fresh_ratio_to_floor"]
        rows.append(("ratio full load / floor, a fresh process", f"{fr:.2f}x "
                     f"({full['mem']['fresh_seconds']:.2f} s)", f"<= {TARGETS['fresh_ratio']:g}x",
                     _verdict(fr <= TARGETS["fresh_ratio"])))
    one = RESULTS.get("load_one_thread")
    if one:
        rows.append(("load(threads=1), ns an event line", f"{one['ns_per_line']:.0f} ns",
                     f"<= {TARGETS['one_thread_ns']:g} ns",
                     _verdict(one["ns_per_line"] <= TARGETS["one_thread_ns"])))
    for label, r in (("full", full), ("filtered", filt)):
        if r is None:
            continue
        m = r.get("mem")
        if m is None:
            rows.append((f"peak memory ratio, {label}", "not measured", "", "n/a"))
            continue
        rows.append((f"peak memory ratio, {label}", f"{m['mem_ratio']:.2f}x",
                     f"< {TARGETS['mem_ratio']:g}x", _verdict(m["mem_ratio"] < TARGETS["mem_ratio"])))
        rows.append(("  peak RSS / bare RSS / nbytes",
                     f"{m['peak_rss_MiB']:,.0f} / {m['baseline_rss_MiB']:,.0f} / "
                     f"{m['nbytes_MiB']:,.1f} MiB", "", ""))
    sc = RESULTS.get("sched")
    if sc:
        rows.append(("sched analysis / load() (same run)", f"{sc['ratio_to_load']:.2f}x",
                     f"< {TARGETS['sched_ratio']:g}x",
                     _verdict(sc["ratio_to_load"] < TARGETS["sched_ratio"])))
    for kind, r in sorted(RESULTS.get("plot", {}).items()):
        lim = TARGETS["plot_ratio"]
        rows.append((f"plot {kind} (model built) / load()", f"{r['ratio_to_load']:.2f}x "
                     f"({r['seconds']:.2f} s)", f"< {lim:g}x", _verdict(r["ratio_to_load"] < lim)))
        rows.append((f"plot {kind} with the sched model / load()", f"{r['with_model_ratio']:.2f}x "
                     f"({r['with_model_seconds']:.2f} s)", f"< {lim:g}x",
                     _verdict(r["with_model_ratio"] < lim)))
    if "matplotlib_import_seconds" in RESULTS:
        rows.append(("(matplotlib first import, once per process)",
                     f"{RESULTS['matplotlib_import_seconds']:.2f} s", "", ""))
    for key, label, target in (
            ("cli_switch_stats", "ftfast stats --switch-stats / grep|awk|sort|uniq", "cli_switch_ratio"),
            ("cli_filter", "ftfast filter --comm / grep -E (same run)", "cli_filter_ratio")):
        c = RESULTS.get(key)
        if c:
            lim = TARGETS[target]
            ok = c["ratio"] < lim if target == "cli_switch_ratio" else c["ratio"] <= lim
            rows.append((label, f"{c['ratio']:.2f}x ({c['seconds']:.2f} s vs "
                                f"{c['pipeline_seconds']:.2f} s)",
                         f"{'<' if target == 'cli_switch_ratio' else '<='} {lim:g}x", _verdict(ok)))
    dg = RESULTS.get("diagnose")
    if dg:
        rows.append(("ftfast diagnose / load()-only process (same run)",
                     f"{dg['ratio']:.2f}x ({dg['seconds']:.2f} s vs {dg['load_process_seconds']:.2f} s)",
                     f"< {TARGETS['diagnose_ratio']:g}x", _verdict(dg["ratio"] < TARGETS["diagnose_ratio"])))
        rows.append(("  in process: kvm.diagnose / load()", f"{dg['api_ratio']:.2f}x "
                     f"({dg['api_seconds']:.2f} s vs {dg['load_seconds']:.2f} s)", "", ""))
    rp = RESULTS.get("report")
    if rp:
        rows.append(("ftfast report / load()-only process (same run)",
                     f"{rp['ratio']:.2f}x ({rp['seconds']:.2f} s vs {rp['load_process_seconds']:.2f} s)",
                     "", ""))
        for stage, sec in rp["stages"].items():
            rows.append((f"  in process: {stage}", f"{sec:.2f} s", "", ""))
    peers = RESULTS.get("peers", {})
    for name in sorted(peers):
        p = peers[name]
        rows.append((f"peer: {name} ({p['file_MB']:.0f} MB, 4-char flags)",
                     f"{p['MB_per_s']:,.1f} MB/s", "", ""))
    return rows


def save_results(path: str):
    with open(path, "w") as fh:
        json.dump({"results": RESULTS, "targets": TARGETS}, fh, indent=1, default=float)
