"""Bounded mutation fuzzing (tests/fuzzing.py has the long, sanitizer-backed runs)."""

import random

import pytest

from fuzzing import check_case, run


@pytest.mark.parametrize("seed", range(4))
def test_mutated_real_lines(seed):
    assert run(seed, n=1500) == 1500


def test_random_bytes():
    rnd = random.Random(7)
    for _ in range(300):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400)))
        check_case(data, {"chunk_size": rnd.choice([1, 5, 4096])})


def test_sched_analysis_on_mutated_traces_keeps_its_invariants():
    """The scheduling kernel on damaged input: no crash, every CPU's busy + idle + unknown is
    the window, every task's states add up to at most the window, nothing negative."""
    import io
    import warnings

    import numpy as np

    import ftrace_fast
    from ftrace_fast import sched
    from fuzzing import make_case, seed_lines

    rnd = random.Random(11)
    seeds = [s for s in seed_lines() if any(b"sched_switch" in ln for ln in s)]
    checked = 0
    for _ in range(600):
        data, kw = make_case(rnd, seeds)
        data = b"\n".join(rnd.choice(seeds)[:60]) + b"\n" + data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = ftrace_fast.load(io.BytesIO(data), chunk_size=kw["chunk_size"])
        if "sched_switch" not in t.events:
            continue
        w0, w1 = sched.window(t)
        c = sched.cpu_summary(t)
        assert (c["busy_ns"] + c["idle_ns"] + c["unknown_ns"] == w1 - w0).all()
        s = sched.task_summary(t)
        tot = (s["run_ns"] + s["wait_ns"] + s["sleep_ns"] + s["blocked_ns"] + s["other_sleep_ns"]
               + s["unknown_ns"] + s["dead_ns"])
        assert (tot <= w1 - w0).all() and (tot >= 0).all()
        iv = sched.task_intervals(t)
        assert (iv["end_ns"] >= iv["start_ns"]).all()
        assert np.all(sched.wakeup_latencies(t)["latency_ns"] >= 0)
        checked += 1
    assert checked > 100
