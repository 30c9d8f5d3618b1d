"""The cpu-util and timeline charts of the generated trace, as a ratio to load() of the same
file in the same run.  Target: each chart costs less than the load.

Two figures per chart: the chart alone (drawn and saved as PNG from a trace whose scheduling
model is already built: what a second chart, or the standard set, costs), and the chart from a
freshly loaded trace (the scheduling model built too, as `ftfast plot` does).  matplotlib's
first import (a one-off per process, like numpy's) is done before any timing and reported
apart."""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchlib import RESULTS, Untimed, run_timed, set_extra_info

pytestmark = pytest.mark.benchmark(group="plot")


@pytest.fixture(scope="module")
def loaded(bench_file, ftrace_fast):
    trace, load_s = run_timed(Untimed(), lambda: ftrace_fast.load(bench_file.path))
    t0 = time.perf_counter()
    import matplotlib.figure  # noqa: F401
    from ftrace_fast import plot
    plot.output_format("x.png")
    RESULTS["matplotlib_import_seconds"] = time.perf_counter() - t0
    return trace, load_s


@pytest.mark.parametrize("kind", ["cpu-util", "timeline"])
def test_plot(benchmark, loaded, kind, tmp_path):
    from ftrace_fast import plot, sched
    trace, load_s = loaded
    out = str(tmp_path / f"{kind}.png")

    def fresh():
        trace.forget_derived()
        return plot.plot(trace, kind, out)

    _, fresh_s = run_timed(Untimed(), fresh)
    sched.model(trace)
    p, seconds = run_timed(benchmark, lambda: plot.plot(trace, kind, out))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    r = {"seconds": seconds, "with_model_seconds": fresh_s, "load_seconds": load_s,
         "ratio_to_load": seconds / load_s, "with_model_ratio": fresh_s / load_s,
         "events": int(trace.stats.events)}
    if kind == "timeline":
        r["intervals"] = int(p.data["intervals"])
        r["tasks"] = len(p.data["pids"])
        assert r["intervals"] > 0 and r["tasks"] > 0
    else:
        # the bins integrate back to each CPU's busy time (D5)
        cs = sched.cpu_summary(trace)
        busy = np.asarray(p.data["busy_ns"]).sum(axis=-1)
        assert busy.tolist() == cs["busy_ns"][np.isin(cs["cpu"], p.data["cpus"])].tolist()
    set_extra_info(benchmark, r)
    RESULTS.setdefault("plot", {})[kind] = r
