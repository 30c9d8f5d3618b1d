"""ftrace_fast.compat.lisa against the simulator's exact truth (tests/simsched.py)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simsched  # noqa: E402

from ftrace_fast.compat import lisa  # noqa: E402

LETTER = {"RUNNING": "A", "RUNNABLE": "R"}


@pytest.fixture(scope="module", params=["kernel5", "tracecmd"])
def sim_trace(request, tmp_path_factory):
    sim = simsched.simulate(seed=7, variant=request.param)
    p = tmp_path_factory.mktemp("lisa") / "trace.txt"
    p.write_bytes(sim.data)
    return sim, lisa.Trace(str(p))


def test_df_event_sched_switch(sim_trace):
    """Every switch with its comms (spaces and all), pids and prev_state bits (5-char flags
    lines included), Time in seconds."""
    sim, tr = sim_trace
    df = tr.df_event("sched_switch")
    lines = [ln for ln in sim.lines if ln.kept and ln.name == "sched_switch"]
    assert df["prev_comm"].tolist() == [ln.f["prev_comm"] for ln in lines]
    assert df["next_comm"].tolist() == [ln.f["next_comm"] for ln in lines]
    bits = {"R": 0, "R+": 0x100, "S": 1, "D": 2, "T": 4, "t": 8, "X": 16, "Z": 32, "P": 64,
            "I": 128}
    assert df["prev_state"].tolist() == [bits[ln.f["prev_state"]] for ln in lines]
    assert np.array_equal(df.index.to_numpy(), np.array([ln.ts * sim.scale for ln in lines]) / 1e9)
    assert df["__cpu"].tolist() == [ln.cpu for ln in lines]


def test_runtime_and_residency(sim_trace):
    sim, tr = sim_trace
    rt = tr.ana.tasks.df_tasks_runtime()
    for pid, tt in sim.truth.tasks.items():
        assert round(rt.loc[pid, "runtime"] * 1e9) == tt.run_ns, pid
    pid = max(sim.truth.tasks, key=lambda p: sim.truth.tasks[p].run_ns)
    res = tr.ana.tasks.df_task_total_residency(pid)
    per_cpu = {}
    for a, b, state, cpu in sim.truth.tasks[pid].intervals:
        if state == "RUNNING":
            per_cpu[cpu] = per_cpu.get(cpu, 0) + b - a
    assert {c: round(v * 1e9) for c, v in res["runtime"].items() if v} == per_cpu


def test_states_latency_switches(sim_trace):
    sim, tr = sim_trace
    st = tr.ana.tasks.df_tasks_states()
    pid = max(sim.truth.tasks, key=lambda p: len(sim.truth.tasks[p].lat))
    tt = sim.truth.tasks[pid]
    mine = st[st["pid"] == pid]
    run = mine[mine["curr_state"] == 0x2000]
    truth_run = [(a, b) for a, b, s, _ in tt.intervals if s == "RUNNING"]
    got = list(zip(np.round(run.index.to_numpy() * 1e9).astype(np.int64),
                   np.round((run.index.to_numpy() + run["delta"].to_numpy()) * 1e9).astype(np.int64)))
    assert got == truth_run
    runnable = mine[mine["curr_state"] == 0]
    truth_wait = [(a, b) for a, b, s, _ in tt.intervals if s == "RUNNABLE"]
    assert len(runnable) == len(truth_wait)
    assert (runnable["target_cpu"] == runnable["cpu"]).all()
    one = tr.ana.tasks.df_task_states(pid, stringify=True)
    assert "pid" not in one.columns and len(one) == len(mine)
    assert set(one["curr_state_str"]) <= set("ARSDOXU")
    lat = tr.ana.latency.df_latency_wakeup(pid)
    assert np.round(lat["wakeup_latency"].to_numpy() * 1e9).astype(np.int64).tolist() == \
        [l for _, l in tt.lat]
    pre = tr.ana.latency.df_latency_preemption(pid)
    ivs = tt.intervals
    want = [b - a for i, (a, b, s, _) in enumerate(ivs)
            if s == "RUNNABLE" and 0 < i < len(ivs) - 1 and ivs[i - 1][2] == "RUNNING"
            and ivs[i + 1][2] == "RUNNING" and ivs[i - 1][1] == a and ivs[i + 1][0] == b]
    assert np.round(pre["preempt_latency"].to_numpy() * 1e9).astype(np.int64).tolist() == want
    cs = tr.ana.cpus.df_context_switches()
    assert {c: int(v) for c, v in cs["context_switch_cnt"].items()} == \
        {c: ct.switches for c, ct in sim.truth.cpus.items()}


def test_task_ids(sim_trace):
    sim, tr = sim_trace
    pid = next(p for p, t in sim.truth.tasks.items() if "/KVM" in t.comm)
    assert tr.get_task_id(pid).pid == pid
    assert sim.truth.tasks[pid].comm in tr.get_task_pid_names(pid)
    assert tr.start <= tr.end and tr.time_range == tr.end - tr.start
    assert tr.cpus_count == len(sim.truth.cpus)
