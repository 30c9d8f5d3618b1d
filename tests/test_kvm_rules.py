"""Each rule of kvm.diagnose (kvm.RULES) against the simulator's truth (tests/simkvm.py): with
its threshold between two of the truth's figures it names exactly the subjects at or past it,
and with its threshold past the largest figure it stays quiet.

The truth functions below restate each rule's definition over what the simulator recorded
(K3-K9 of ftrace_fast/kvm.py), not over the analysis's own tables."""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict

import pytest

import ftrace_fast
from ftrace_fast import kvm, sched

import simkvm
import simsched
from test_kvm import _findings

INF = 1e12


def _contended():
    """4 vCPUs on 2 CPUs beside a CPU hog: the vCPUs wait, are stacked and overcommitted."""
    return simkvm.simulate(seed=5, variant="kernel5_tgid", hog=True, n_vcpu=4, ncpu=2,
                           missing_idle=False)


def _exits_io():
    """Exits of several reasons, an iothread and a vhost worker blocking in D, block requests."""
    return simkvm.simulate(seed=4, variant="kernel_ns", missing_idle=False)


def _window_ns(sim):
    w0, w1 = sim.truth.window
    return w1 - w0


def _steal(sim):
    """K3: steal % = wait / (run + wait) of each vCPU thread that waited."""
    st = sim.truth.tasks
    return {p: 100.0 * st[p].wait_ns / (st[p].run_ns + st[p].wait_ns) for p in sim.kvm.vcpus
            if st[p].wait_ns > 0}


def _stacking(sim):
    """K4: share of each vCPU thread's wait spent behind vCPU threads of its own VM."""
    k, st = sim.kvm, sim.truth.tasks
    stacked = defaultdict(int)
    for (a, b, _), s in k.neighbours.items():
        if b in k.vcpus and k.vm_of.get(b) == k.vm_of[a]:
            stacked[a] += s
    return {p: 100.0 * s / st[p].wait_ns for p, s in stacked.items() if s > 0 and st[p].wait_ns > 0}


def _overcommit(sim):
    """K5: the share of the window with more RUNNING/RUNNABLE vCPU threads than CPUs."""
    k = sim.kvm
    over = sum(v for n, v in k.runnable_hist.items() if n > k.ncpus)
    return {"vms": 100.0 * over / _window_ns(sim)} if over else {}


def _wakeup_latency(sim):
    """D4 p99 (µs) of each vCPU thread with 10 wakeup samples at least."""
    out = {}
    for p in sim.kvm.vcpus:
        s = simsched.lat_stats(sim.truth.tasks[p].lat)
        if s["lat_count"] >= 10:
            out[p] = s["lat_p99_ns"] / 1e3
    return out


def _exit_latency(sim):
    """K6 p99 handling time (µs) per (vCPU thread, non-HLT reason) with 5 timed exits."""
    out = {}
    for p, v in sim.kvm.vcpus.items():
        for reason, xs in v.handled.items():
            e = simkvm.exit_stats(xs)
            if reason not in ("HLT", "hlt") and e["handled"] >= 5:
                out[(p, reason)] = e["p99_ns"] / 1e3
    return out


def _exit_rate(sim):
    """K9: exits per second of the window per (vCPU thread, reason)."""
    secs = _window_ns(sim) / 1e9
    return {(p, reason): n / secs for p, v in sim.kvm.vcpus.items() for reason, n in v.exits.items()}


def _io_blocked_ms(sim):
    """K8: the longest D stretch (ms) of each QEMU I/O thread but the main one."""
    k = sim.kvm
    return {p: d / 1e6 for p, d in k.longest_d.items() if d and k.io_threads[p] != "main"}


def _io_blocked_pct(sim):
    """K8: the D share (%) of the window of each QEMU I/O thread but the main one."""
    k, st = sim.kvm, sim.truth.tasks
    return {p: 100.0 * st[p].blocked_ns / _window_ns(sim) for p in k.io_threads
            if k.io_threads[p] != "main" and st[p].blocked_ns}


def _block_latency(sim):
    """K8: issue-to-complete p99 (ms) of each device with 5 completed requests."""
    lat = defaultdict(list)
    for d, i, c, _ in sim.kvm.block:
        if c is not None:
            lat[d].append(c - i)
    return {d: sched.latency_stats(v)["p99_ns"] / 1e6 for d, v in lat.items() if len(v) >= 5}


def _pid(f):
    return f["subject"]["pid"]


def _pid_reason(f):
    return f["subject"]["pid"], f["evidence"]["reason"]


#: kind, the simulation, the truth {subject: figure in the threshold's unit}, the threshold it
#: compares with, the other thresholds (so that only this one decides), the key of a finding
RULE_CASES = [
    ("vcpu_steal", _contended, _steal, "steal_pct", dict(min_wait_ms=0), _pid),
    ("vcpu_stacking", _contended, _stacking, "stack_pct", dict(min_wait_ms=0), _pid),
    ("overcommit", _contended, _overcommit, "overcommit_pct", {}, lambda f: "vms"),
    ("vcpu_wakeup_latency", _contended, _wakeup_latency, "wakeup_p99_us", dict(min_wait_ms=0), _pid),
    ("exit_latency", _exits_io, _exit_latency, "exit_p99_us", dict(min_exits=5), _pid_reason),
    ("exit_rate", _exits_io, _exit_rate, "exit_rate", {}, _pid_reason),
    ("io_blocked", _exits_io, _io_blocked_ms, "io_blocked_ms", dict(io_blocked_pct=INF), _pid),
    ("io_blocked", _exits_io, _io_blocked_pct, "io_blocked_pct", dict(io_blocked_ms=INF), _pid),
    ("block_latency", _exits_io, _block_latency, "block_p99_ms", {}, lambda f: f["subject"]["device"]),
]
_IDS = [f"{kind}-{field}" for kind, _, _, field, _, _ in RULE_CASES]
_SIMS = {}


def _trace(make):
    if make not in _SIMS:
        sim = make()
        _SIMS[make] = sim, ftrace_fast.load(io.BytesIO(sim.data))
    return _SIMS[make]


def _got(t, kind, key, **th):
    """{key: score} of the findings of one kind."""
    return {key(f): f["score"] for f in _findings(kvm.diagnose(t, kvm.Thresholds(**th)))
            if f["kind"] == kind}


def test_every_rule_has_a_case_and_a_contract():
    """Each rule is tested here (cpu_imbalance on a hand-made trace in test_kvm.py), says its
    definition in its docstring, and its kind is in the JSON schema's enum at its rank and in
    docs/json-schema.md's table of findings."""
    assert {c[0] for c in RULE_CASES} | {"cpu_imbalance", "caveat"} == set(kvm.KINDS)
    assert [rule.kind for rule in kvm.RULES] == list(kvm.KINDS)
    assert all(rule.__doc__ for rule in kvm.RULES)
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
    with open(os.path.join(docs, "schema", "diagnose.schema.json")) as f:
        schema = json.load(f)
    assert schema["$defs"]["finding"]["properties"]["kind"]["enum"] == list(kvm.KINDS)
    with open(os.path.join(docs, "json-schema.md")) as f:
        rows = {line.split("|")[1].strip(" `") for line in f if line.startswith("| `")}
    assert set(kvm.KINDS) <= rows


@pytest.mark.parametrize("kind,make,truth,field,other,key", RULE_CASES, ids=_IDS)
def test_rule_fires_at_its_threshold(kind, make, truth, field, other, key):
    """The threshold halfway between each two neighbouring figures of the truth (and at half
    the smallest): exactly the subjects whose figure is at or past it are named, each scored
    by how far past it (figure / threshold)."""
    sim, t = _trace(make)
    want = truth(sim)
    vals = sorted(set(want.values()))
    assert vals, f"the simulation gives the {kind} rule nothing to judge"
    for thr in [vals[0] / 2] + [(a + b) / 2 for a, b in zip(vals, vals[1:])][-8:]:
        fired = {k: pytest.approx(v / thr, rel=1e-4, abs=1e-4) for k, v in want.items() if v >= thr}
        assert fired and _got(t, kind, key, **other, **{field: thr}) == fired, thr


@pytest.mark.parametrize("kind,make,truth,field,other,key", RULE_CASES, ids=_IDS)
def test_rule_is_quiet_under_its_threshold(kind, make, truth, field, other, key):
    """The threshold past the truth's largest figure: no finding of the kind."""
    sim, t = _trace(make)
    want = truth(sim)
    assert want
    assert not _got(t, kind, key, **other, **{field: max(want.values()) * 1.01 + 1e-6})


def test_steal_severity_follows_the_truth():
    """vcpu_steal: low from steal_pct, medium from 10 %, high from 25 % of the truth's steal."""
    sim, t = _trace(_contended)
    want = _steal(sim)
    got = {_pid(f): f["severity"] for f in kvm.diagnose(t, kvm.Thresholds(steal_pct=1, min_wait_ms=0))
           if f["kind"] == "vcpu_steal"}
    assert got == {p: "high" if v >= 25 else "medium" if v >= 10 else "low"
                   for p, v in want.items() if v >= 1}


def test_min_wait_keeps_the_vcpu_rules_quiet():
    """A vCPU thread that waited less than min_wait_ms in all is not judged by the vCPU rules."""
    sim, t = _trace(_contended)
    most = max(sim.truth.tasks[p].wait_ns for p in sim.kvm.vcpus)
    f = kvm.diagnose(t, kvm.Thresholds(steal_pct=0.001, stack_pct=0.001, wakeup_p99_us=0.001,
                                       min_wait_ms=most / 1e6 * 1.01))
    assert not [x for x in f if x["kind"] in ("vcpu_steal", "vcpu_stacking", "vcpu_wakeup_latency")]


def _lines(*lines):
    return ftrace_fast.load(io.BytesIO(("\n".join(lines) + "\n").encode()), warn=False)


KVM_ONLY = ("       CPU 0/KVM-100   [000] .....   1.000000: kvm_entry: vcpu 0, rip 0x1",
            "       CPU 0/KVM-100   [000] .....   1.000010: kvm_exit: vcpu 0 reason HLT rip 0x1 "
            "info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0")


def test_caveats_say_what_the_trace_lacks():
    """The caveat rule: kvm lines without sched_switch, no vCPU thread at all; and nothing of
    the sort for a simulated host with every event."""
    f = [x for x in kvm.diagnose(_lines(*KVM_ONLY)) if x["kind"] == "caveat"]
    assert [x["explanation"].split(":")[0] for x in f] == ["the trace has no sched_switch events"]
    assert f[0]["severity"] == "info" and f[0]["score"] == 0
    f = kvm.diagnose(_lines("          <idle>-0     [001] d....   1.000000: sched_switch: "
                            "prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> "
                            "next_comm=cat next_pid=7 next_prio=120"))
    assert [x["kind"] for x in f] == ["caveat"] and f[0]["explanation"].startswith("no vCPU thread")
    sim, t = _trace(_exits_io)
    assert not [x for x in kvm.diagnose(t) if x["kind"] == "caveat"
                and ("sched_switch" in x["explanation"] or "vCPU" in x["explanation"])]
