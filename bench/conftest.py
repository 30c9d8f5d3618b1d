"""Fixtures and the end-of-session summary of the ftrace_fast benchmarks.

Run from the repository root: ``python -m pytest bench/ --benchmark-only -s`` (see README.md
beside this file).  Environment:

``FTFAST_BENCH_MB``    size of the generated log in MB (10**6 bytes); default 200
``FTFAST_BENCH_SEED``  generator seed; default 1
``FTFAST_BENCH_DIR``   where generated logs are cached; default ``$TMPDIR/ftrace_fast_bench``
``FTFAST_BENCH_MEM``   ``0`` skips the peak-memory subprocesses
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the benchmarks measure parsing: the parse cache is off for them (bench/test_cache.py measures
# it in a directory of its own)
os.environ.setdefault("FTFAST_CACHE_MIN", str(1 << 62))
import benchlib  # noqa: E402
import gen_trace  # noqa: E402


@pytest.fixture(scope="session")
def bench_file() -> benchlib.BenchFile:
    """The generated log, made (or found in the cache) once per session, outside any timing."""
    mb, seed = benchlib.bench_mb(), benchlib.bench_seed()
    path = gen_trace.cached_trace(mb, seed)
    bf = benchlib.BenchFile(path, gen_trace.trace_info(path))
    # one untimed pass: checks the file and warms the page cache for every measurement
    n = benchlib.count_newlines(path, bytearray(benchlib.CHUNK))
    assert n == bf.newlines, f"{path}: {n} lines, expected {bf.newlines}: remove the stale cache"
    benchlib.RESULTS["file"] = {"path": path, "MB": bf.mb, "lines": bf.event_lines, "seed": seed}
    return bf


@pytest.fixture(scope="session")
def ftrace_fast():
    return pytest.importorskip("ftrace_fast")


@pytest.fixture(scope="session")
def peak_memory(ftrace_fast):
    """A callable: memory figures of load(path, events=...) run in a fresh process (see
    benchlib.memory_figures), or None when FTFAST_BENCH_MEM=0.  The baseline is the peak RSS
    of a bare ``import ftrace_fast, numpy`` interpreter, least of three runs, taken once."""
    baseline = []

    def measure(path, events=None):
        if os.environ.get("FTFAST_BENCH_MEM", "1") == "0":
            return None
        if not baseline:
            baseline.append(min(benchlib.mem_run(None, None)["maxrss_kib"] for _ in range(3)))
        return benchlib.memory_figures(path, events, baseline[0])

    return measure


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    R = benchlib.RESULTS
    if not any(k in R for k in ("floor", "load_full", "load_sched_switch", "peers", "sched",
                                "cli_switch_stats", "cli_filter", "diagnose", "plot", "report")):
        return
    tr = terminalreporter
    f = R.get("file", {})
    tr.section("ftrace_fast load() benchmark summary")
    if f:
        tr.write_line(f"file: {f['path']}")
        tr.write_line(f"      {f['MB']:,.1f} MB, {f['lines']:,} event lines, seed {f['seed']}; "
                      f"times: fastest of {benchlib.ROUNDS} rounds (1 under --benchmark-disable); MB = 10**6 bytes")
    head = ("figure", "measured", "target", "verdict")
    rows = [head] + benchlib.summary_rows()
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        tr.write_line("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    out = os.path.join(gen_trace.cache_dir(), "last_results.json")
    try:
        benchlib.save_results(out)
        tr.write_line(f"(raw figures: {out})")
    except OSError as exc:
        tr.write_line(f"(raw figures not saved: {exc})")
