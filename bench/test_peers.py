"""Optional: the same small log through trappy, a pure-Python peer, and through ftrace_fast.

Skipped unless trappy is importable (it is not a dependency; install it yourself to compare).
trappy's line regex knows the 4-character irq-info flags only, so both parsers read a copy of
the log with the migrate-disable column dropped, on a slice of at most 20 MB.
"""

from __future__ import annotations

import os

import pytest

import gen_trace
from benchlib import MB, RESULTS, bench_mb, bench_seed, run_timed, set_extra_info

trappy = pytest.importorskip("trappy")

pytestmark = pytest.mark.benchmark(group="peers")

PEER_MB = min(20.0, bench_mb())


@pytest.fixture(scope="module")
def peer_file():
    src = gen_trace.cached_trace(PEER_MB, bench_seed())
    # trappy reads "<name>.txt" (it looks for a .dat beside a file first)
    dst = os.path.splitext(src)[0] + "_4flags.txt"
    if not os.path.exists(dst):
        tmp = f"{dst}.{os.getpid()}.tmp"
        gen_trace.four_flag_copy(src, tmp)
        os.replace(tmp, dst)
    return dst, gen_trace.trace_info(src)


def _record(benchmark, name, path, seconds):
    mb = os.path.getsize(path) / MB
    r = {"file_MB": mb, "seconds": seconds, "MB_per_s": mb / seconds}
    RESULTS.setdefault("peers", {})[name] = r
    set_extra_info(benchmark, r)


def _trappy(path, events):
    trappy.FTrace.disable_cache = True  # no .cache directory beside the log
    return trappy.FTrace(path, normalize_time=False, scope="custom", events=list(events))


@pytest.mark.parametrize("which", ["full", "sched_switch"])
def test_peer_trappy(benchmark, peer_file, which):
    path, info = peer_file
    events = list(info["events"]) if which == "full" else ["sched_switch"]
    ft, seconds = run_timed(benchmark, lambda: _trappy(path, events), rounds=1)
    assert len(ft.sched_switch.data_frame) == info["events"]["sched_switch"]
    _record(benchmark, f"trappy {which}", path, seconds)


@pytest.mark.parametrize("which", ["full", "sched_switch"])
def test_peer_ftrace_fast(benchmark, peer_file, ftrace_fast, which):
    path, info = peer_file
    events = None if which == "full" else ["sched_switch"]
    t, seconds = run_timed(benchmark, lambda: ftrace_fast.load(path, events=events))
    assert len(t.events["sched_switch"]) == info["events"]["sched_switch"]
    _record(benchmark, f"ftrace_fast {which}", path, seconds)
