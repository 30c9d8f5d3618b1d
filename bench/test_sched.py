"""The scheduling analysis (per-task summary, per-CPU summary, latency table) of the generated
trace's arrays, as a ratio to load() of the same file in the same run.  Target: the analysis
costs less than the load."""

from __future__ import annotations

import pytest

from benchlib import RESULTS, Untimed, run_timed, set_extra_info

pytestmark = pytest.mark.benchmark(group="sched")


def test_sched_analysis(benchmark, bench_file, ftrace_fast):
    from ftrace_fast import sched

    trace, load_s = run_timed(Untimed(), lambda: ftrace_fast.load(bench_file.path))

    def analysis():
        trace._sched_model = None
        sched.task_summary(trace)
        sched.cpu_summary(trace)
        return sched.latency_table(trace)

    table, seconds = run_timed(benchmark, analysis)
    assert len(table) > 0
    r = {"seconds": seconds, "load_seconds": load_s, "ratio_to_load": seconds / load_s,
         "events": int(trace.stats.events)}
    set_extra_info(benchmark, r)
    RESULTS["sched"] = r
