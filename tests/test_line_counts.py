"""sched.switch_counts / wakeup_counts / migration_counts (D11), sched.tgid_pids (D12) and
kvm.vm_summary / host_summary (K10) against the simulator's own record of what it wrote
(tests/simsched.py, tests/simkvm.py), not against the analysis."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import kvm, sched

import simkvm
import simsched

CASES = [(seed, v) for v in simsched.VARIANTS for seed in range(2)]


def _load(sim):
    return ftrace_fast.load(io.BytesIO(sim.data))


def _written(sim, name):
    """The lines of one event the simulator wrote to the text (lines lost to a LOST gap are
    not in it)."""
    return [ln for ln in sim.lines if ln.kept and ln.name == name]


def _table(rows, *cols):
    return {(r["comm"], int(r["pid"])): tuple(int(r[c]) for c in cols) for r in rows}


def _switch_truth(sim, keep=lambda ln, side: True):
    c = defaultdict(lambda: [0, 0, 0, 0])
    for ln in _written(sim, "sched_switch"):
        f = ln.f
        if keep(ln, "next"):
            c[(f["next_comm"], f["next"])][0] += 1
        if keep(ln, "prev"):
            st = f["prev_state"]
            e = c[(f["prev_comm"], f["prev"])]
            e[1 if st not in ("R", "R+") else 2] += 1
            e[3] += "D" in st
    return {k: tuple(v) for k, v in c.items() if v[0] or v[1] or v[2]}


def _count_truth(sim, name, keep=lambda ln: True):
    return dict(Counter((ln.f["task_comm"], ln.f["task"]) for ln in _written(sim, name)
                        if keep(ln)))


@pytest.mark.parametrize("seed,variant", CASES)
def test_line_counts_equal_the_lines_written(seed, variant):
    sim = simsched.simulate(seed=seed, variant=variant, lost=seed == 1)
    t = _load(sim)
    got = _table(sched.switch_counts(t), "switches_in", "voluntary", "involuntary",
                 "switches_out_D")
    assert got == _switch_truth(sim), variant
    for source in ("wakeup", "waking"):
        got = _table(sched.wakeup_counts(t, source=source), "count")
        assert got == {k: (n,) for k, n in _count_truth(sim, "sched_" + source).items()}
    got = _table(sched.migration_counts(t), "count")
    assert got == {k: (n,) for k, n in _count_truth(sim, "sched_migrate_task").items()}
    # rows sorted by comm id, then pid
    s = sched.switch_counts(t)
    assert np.array_equal(np.lexsort((s["pid"], s["comm_id"])), np.arange(len(s)))


@pytest.mark.parametrize("seed,variant", CASES[::3])
def test_switch_counts_same_through_the_table_and_the_pair_index(seed, variant, monkeypatch):
    """switch_counts counts in one pass into a (comm id, pid) table when the ids allow it,
    else through an index of the pairs (pids past sched._PID_MARK): the same rows in the same
    order either way, with and without restrictions, and both the lines written."""
    sim = simsched.simulate(seed=seed, variant=variant, lost=seed == 1)
    t = _load(sim)
    (w0, w1) = sim.truth.window
    comms = sorted({ln.f["next_comm"] for ln in _written(sim, "sched_switch")})
    pids = sorted({ln.f["next"] for ln in _written(sim, "sched_switch")})[1::2]
    kws = [{}, dict(start=f"{(w0 + w1) // 2}ns", cpus=[0]), dict(pids=pids),
           dict(comm=re.escape(comms[0]))]
    fast = [sched.switch_counts(t, **kw) for kw in kws]
    assert sched._switch_cells(t.events["sched_switch"], np.ones(1, bool), np.ones(1, bool))
    monkeypatch.setattr(sched, "_PID_MARK", 1)
    assert sched._switch_cells(t.events["sched_switch"], np.ones(1, bool),
                               np.ones(1, bool)) is None
    for kw, f in zip(kws, fast):
        g = sched.switch_counts(t, **kw)
        assert f.dtype == g.dtype and len(f) == len(g), kw
        for name in f.dtype.names:
            assert np.array_equal(f[name], g[name]), (kw, name)
    got = _table(fast[0], "switches_in", "voluntary", "involuntary", "switches_out_D")
    assert got == _switch_truth(sim)


@pytest.mark.parametrize("seed", [0, 3])
def test_line_counts_restrictions_keep_lines(seed):
    """D11: time and CPU by the line, pids and comm by the task the line names for the count."""
    sim = simsched.simulate(seed=seed, variant="kernel5")
    t = _load(sim)
    sc = sim.scale
    (w0, w1) = sim.truth.window
    a, b = w0 + (w1 - w0) // 4, w0 + (w1 - w0) // 2
    in_w = lambda ln: a <= ln.ts * sc <= b and ln.cpu in (0, 1)  # noqa: E731
    kw = dict(start=f"{a}ns", end=f"{b}ns", cpus=[0, 1])
    got = _table(sched.switch_counts(t, **kw), "switches_in", "voluntary", "involuntary",
                 "switches_out_D")
    assert got == _switch_truth(sim, lambda ln, side: in_w(ln))
    pids = sorted({ln.f["task"] for ln in _written(sim, "sched_wakeup")})[::2]
    got = _table(sched.wakeup_counts(t, pids=pids, **kw), "count")
    assert got == {k: (n,) for k, n in _count_truth(
        sim, "sched_wakeup", lambda ln: in_w(ln) and ln.f["task"] in pids).items()}
    comms = sorted({ln.f["next_comm"] for ln in _written(sim, "sched_switch")})
    rx = re.escape(comms[len(comms) // 2])
    got = _table(sched.switch_counts(t, comm=rx), "switches_in", "voluntary", "involuntary",
                 "switches_out_D")
    want = _switch_truth(sim, lambda ln, side: re.search(rx, ln.f[side + "_comm"]) is not None)
    assert got == want and got


def test_tgid_pids_are_the_threads_of_the_processes():
    sim = simkvm.simulate(seed=3, variant="kernel5_tgid")
    t = _load(sim)
    tgids = sorted(set(sim.kvm.vm_of.values()))
    want = {p for p, tt in sim.truth.tasks.items() if tt.tgid in tgids and tt.tgid_known}
    got = sched.tgid_pids(t, tgids)
    assert got == sorted(got) and want <= set(got) and set(tgids) <= set(got)
    assert set(got) - set(tgids) <= {p for p, tt in sim.truth.tasks.items() if tt.tgid in tgids}
    plain = _load(simkvm.simulate(seed=3, variant="kernel5"))
    with pytest.raises(ValueError, match="record-tgid"):
        sched.tgid_pids(plain, tgids)


@pytest.mark.parametrize("seed,variant", [(0, "kernel5"), (3, "kernel5_tgid"), (5, "kernel_ns"),
                                          (1, "kernel_counter")])
def test_vm_summary_against_simulator(seed, variant):
    """K10: a VM's figures are its vCPUs' truths summed; neighbours outside its vCPUs."""
    sim = simkvm.simulate(seed=seed, variant=variant)
    t = _load(sim)
    k, st = sim.kvm, sim.truth
    vms = kvm.vm_summary(t)
    by_vm = defaultdict(list)
    for p, vm in k.vm_of.items():
        by_vm[vm].append(p)
    assert [v["vm"] for v in vms] == sorted(by_vm)
    for v in vms:
        mine = by_vm[v["vm"]]
        assert sorted(v["vcpus"]) == sorted(mine)
        assert v["run_ns"] == sum(st.tasks[p].run_ns for p in mine)
        assert v["wait_ns"] == sum(st.tasks[p].wait_ns for p in mine)
        assert v["guest_ns"] == sum(k.vcpus[p].guest for p in mine)
        assert v["handling_ns"] == sum(k.vcpus[p].handling for p in mine)
        exits = Counter()
        for p in mine:
            exits.update(k.vcpus[p].exits)
        assert {r: e["count"] for r, e in v["exits"].items()} == dict(exits)
        stolen = Counter()
        for (vp, q, _), s in k.neighbours.items():
            if vp in mine and q not in mine:
                stolen[q] += s
        want = sorted(stolen.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert [(n["pid"], n["stolen_ns"]) for n in v["neighbours"]] == want
        assert v["stacked_ns"] == sum(s for (vp, q, _), s in k.neighbours.items()
                                      if vp in mine and q in mine)


def test_host_summary_restricts_rows_not_figures():
    sim = simkvm.simulate(seed=3, variant="kernel5_tgid")
    t = _load(sim)
    k = sim.kvm
    whole = kvm.host_summary(t)
    assert sorted(d["pid"] for d in whole["vcpus"]) == sorted(k.vcpus)
    one = sorted(k.vcpus)[0]
    part = kvm.host_summary(t, pids=[one])
    assert [d["pid"] for d in part["vcpus"]] == [one]
    assert part["vcpus"][0] == next(d for d in whole["vcpus"] if d["pid"] == one)
    vm = next(v for v in part["vms"] if v["vm"] == k.vm_of[one])
    assert vm["run_ns"] == sim.truth.tasks[one].run_ns
    # exits per VM count every thread of the VM whatever the selection
    assert vm["exits"] == next(v for v in whole["vms"] if v["vm"] == k.vm_of[one])["exits"]
    named = kvm.host_summary(t, comm=re.escape(whole["vcpus"][0]["comm"]) + "$")
    assert [d["pid"] for d in named["vcpus"]] == [whole["vcpus"][0]["pid"]]
    assert {r["pid"] for r in whole["io"]["threads"]} == set(k.io_threads)


def test_stats_kvm_time_restriction_in_seconds(tmp_path, capsys):
    """--start/--end as text reach every KVM figure as times (exits per reason too): the
    JSON is kvm.host_summary of the same restriction."""
    import json

    from ftrace_fast import cli
    from helpers import check_json
    sim = simkvm.simulate(seed=3, variant="kernel5_tgid")
    p = tmp_path / "kvm.txt"
    sim.write(p)
    t = _load(sim)
    w0, w1 = sched.window(t)
    start, end = f"{(w0 + (w1 - w0) // 3) / 1e9:.6f}", f"{(w0 + 2 * (w1 - w0) // 3) / 1e9:.6f}"
    rc = cli.main(["stats", str(p), "--kvm", "--format", "json", "--no-cache", "-q",
                   "--start", start, "--end", end])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = check_json("stats", json.loads(out))
    want = json.loads(json.dumps(kvm.host_summary(t, start=start, end=end), default=cli._py))
    assert doc["kvm"] == want and any(v["exits"] for v in want["vms"])
    whole = kvm.host_summary(t)
    assert sum(e["count"] for v in want["vms"] for e in v["exits"].values()) < \
        sum(e["count"] for v in whole["vms"] for e in v["exits"].values())
