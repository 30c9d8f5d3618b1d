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
        trace.forget_derived()
        return sched.task_summary(trace), sched.cpu_summary(trace), sched.latency_table(trace)

    (tasks, cpus, table), seconds = run_timed(benchmark, analysis)
    # the figures timed are the analysis's (cheap checks of D1-D7 against the arrays):
    # every CPU's busy + idle + unknown is the window, a task runs only while it is a CPU's
    # current task, the switch-ins are the sched_switch lines to a task (plus inferred ones)
    w0, w1 = sched.window(trace)
    assert (cpus["busy_ns"] + cpus["idle_ns"] + cpus["unknown_ns"] == w1 - w0).all()
    assert int(tasks["run_ns"].sum()) == int(cpus["busy_ns"].sum())
    sw = trace.events["sched_switch"]
    assert int(tasks["switches_in"].sum() - tasks["inferred_switch_ins"].sum()) == \
        int((sw["next_pid"] != 0).sum())
    assert len(table) == len(tasks) and int(table["lat_count"].sum()) > 0
    r = {"seconds": seconds, "load_seconds": load_s, "ratio_to_load": seconds / load_s,
         "events": int(trace.stats.events)}
    set_extra_info(benchmark, r)
    RESULTS["sched"] = r
