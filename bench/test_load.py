"""load() throughput against the floor of reading the same bytes, and its peak memory.

The tests run in file order: the floor first, so the load ratios use the floor of this very
session (a load test run alone measures the floor itself, untimed).
"""

from __future__ import annotations

import pytest

from benchlib import (
    CHUNK, RESULTS, count_newlines, floor_seconds, numpy_floor_seconds, record_floor, run_timed,
    set_extra_info,
)

pytestmark = pytest.mark.benchmark(group="load")


def test_floor(benchmark, bench_file):
    """Read the file in 16 MiB blocks into one bytearray and count the newlines."""
    buf = bytearray(CHUNK)
    n, seconds = run_timed(benchmark, lambda: count_newlines(bench_file.path, buf))
    assert n == bench_file.newlines
    r = record_floor(bench_file, seconds, measured_by="test_floor")
    numpy_floor_seconds(bench_file)
    set_extra_info(benchmark, {"file_MB": bench_file.mb, **r})


def _check_counts(trace, expected: dict, wanted=None):
    """The timed load must have produced what the generator wrote (else the figure is void)."""
    got = {k: len(v) for k, v in trace.events.items() if len(v)}
    want = {k: v for k, v in expected.items() if v and (wanted is None or k in wanted)}
    assert got == want, f"event counts differ from the generator's: {got} != {want}"
    malformed = getattr(getattr(trace, "stats", None), "malformed", 0)
    assert not malformed, f"{malformed} malformed lines in a generated log"


def _load_bench(benchmark, bench_file, peak_memory, ftrace_fast, key, events):
    path = bench_file.path
    trace, seconds = run_timed(benchmark, lambda: ftrace_fast.load(path, events=events))
    _check_counts(trace, bench_file.events, events)
    n_events = int(sum(len(a) for a in trace.events.values()))
    nbytes = int(trace.nbytes)
    del trace
    floor = floor_seconds(bench_file)
    r = {
        "file_MB": bench_file.mb,
        "seconds": seconds,
        "MB_per_s": bench_file.mb / seconds,
        "events": n_events,
        "events_per_s": n_events / seconds,
        "lines_per_s": bench_file.event_lines / seconds,
        "floor_seconds": floor,
        "floor_MB_per_s": bench_file.mb / floor,
        "ratio_to_floor": seconds / floor,
        "nbytes": nbytes,
    }
    mem = peak_memory(path, events)
    r.update(mem or {})
    if mem:
        r["fresh_ratio_to_floor"] = mem["fresh_seconds"] / floor
    set_extra_info(benchmark, r)
    RESULTS[key] = dict(r, mem=mem)


def test_load_full(benchmark, bench_file, peak_memory, ftrace_fast):
    """load(path): every event into typed arrays."""
    _load_bench(benchmark, bench_file, peak_memory, ftrace_fast, "load_full", None)


def test_load_one_thread(benchmark, bench_file, ftrace_fast):
    """load(path, threads=1): the tokenizer's own speed, per event line."""
    path = bench_file.path
    trace, seconds = run_timed(benchmark, lambda: ftrace_fast.load(path, threads=1))
    _check_counts(trace, bench_file.events)
    del trace
    r = {"file_MB": bench_file.mb, "seconds": seconds, "MB_per_s": bench_file.mb / seconds,
         "ns_per_line": seconds / bench_file.event_lines * 1e9}
    set_extra_info(benchmark, r)
    RESULTS["load_one_thread"] = r


def test_load_sched_switch(benchmark, bench_file, peak_memory, ftrace_fast):
    """load(path, events=["sched_switch"]): the other ~55% of the lines are only skipped."""
    _load_bench(benchmark, bench_file, peak_memory, ftrace_fast, "load_sched_switch",
                ["sched_switch"])
