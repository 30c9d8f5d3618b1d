"""ftrace_fast.sched against a simulated host whose exact schedule is known (tests/simsched.py).

Every figure is compared to the nanosecond (ticks for integer clocks): per task the time in
each state, switch-ins (inferred ones too), switch-outs by state, wakeups, migrations, run
slices and wakeup latency; per CPU busy / idle / unknown time and the utilization series; the
state intervals themselves; the restricted summaries (start/end, pids, cpus).  The simulated
traces are written in several text formats (kernel trace with 5- or 4-char flags, tgid column,
no flags, trace_pipe, trace-cmd report, 9-decimal, counter and x86-tsc clocks) and damaged on
purpose: missing switches out of the idle task and CPU:N [LOST k EVENTS] gaps.

The truth follows the definitions D1-D10 in ftrace_fast/sched.py; where they leave a point open
the simulator settles it as its docstring says (0-length slices at the window's edges count;
a latency sample runs to the next switch-in in the file even across UNKNOWN).

A failure lists every differing figure with the seed, format, task, expected and got values and
the trace lines naming that task (``python tests/simsched.py SEED VARIANT`` prints a whole case).

Run:  python -m pytest tests/test_sched.py -q
"""

from __future__ import annotations

import functools
import io
import math
import os
import random
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import ftrace_fast  # noqa: E402
from ftrace_fast import sched  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import simsched  # noqa: E402

STATE = {
    simsched.RUNNING: sched.RUNNING, simsched.RUNNABLE: sched.RUNNABLE,
    simsched.SLEEP_S: sched.SLEEP_S, simsched.SLEEP_D: sched.SLEEP_D,
    simsched.SLEEP_OTHER: sched.SLEEP_OTHER, simsched.DEAD: sched.DEAD,
    simsched.UNKNOWN: sched.UNKNOWN,
}
STATE_NAME = {v: k for k, v in STATE.items()}

DAMAGE = dict(lost=True, missing_idle=True)
VARIANTS = tuple(simsched.VARIANTS)

# (seed, variant, options): every format, damaged and clean
CASES = (
    [(seed, v, "damaged") for v in VARIANTS for seed in (1, 2)]
    + [(seed, v, "clean") for v in ("kernel5", "tracecmd", "kernel_counter", "kernel_ns") for seed in (3,)]
    + [(4, "kernel4_tgid", "noforks"), (5, "kernel5", "nopreempt"), (6, "kernel_noflags", "malformed")]
)
OPTIONS = {
    "damaged": DAMAGE,
    "clean": {},
    "noforks": dict(DAMAGE, forks=False),
    "nopreempt": dict(DAMAGE, preempt=False, hog=True),
    "malformed": dict(DAMAGE, malformed=True),
}


def _ids(c):
    return "%s-%d-%s" % (c[1], c[0], c[2])


@functools.lru_cache(maxsize=8)
def _case(seed, variant, opts):
    sim = simsched.simulate(seed, variant, **OPTIONS[opts])
    return sim, _load(sim)


def _load(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = ftrace_fast.load(io.BytesIO(sim.data), warn=False)
    return t


# ---------------------------------------------------------------------------------------------
# comparison with a readable report


class Report:
    """Collects differences; fail() raises one AssertionError listing them all."""

    def __init__(self, sim, what):
        self.sim = sim
        self.what = what
        self.diffs = []  # (key, message, pid or None, cpu or None, time span or None)

    def eq(self, key, exp, got, pid=None, cpu=None, span=None):
        if isinstance(exp, float) or isinstance(got, float):
            ok = (math.isnan(exp) and math.isnan(got)) if (isinstance(exp, float) and math.isnan(exp)) else \
                math.isclose(float(got), float(exp), rel_tol=1e-12, abs_tol=1e-6)
        else:
            ok = exp == got
        if not ok:
            self.diffs.append((key, "expected %r, got %r" % (exp, got), pid, cpu, span))
        return ok

    def check(self, key, cond, msg, pid=None, cpu=None, span=None):
        if not cond:
            self.diffs.append((key, msg, pid, cpu, span))

    def fail(self, limit=12):
        if not self.diffs:
            return
        sim = self.sim
        out = ["%s: %d difference(s); simsched seed=%d variant=%s opts=%s ncpu=%d unit=%s window=%s"
               % (self.what, len(self.diffs), sim.seed, sim.variant,
                  {k: v for k, v in sim.opts.items() if v}, sim.ncpu, sim.unit, sim.truth.window)]
        out += ["  damage: " + a for a in sim.artifacts]
        shown = set()
        for key, msg, pid, cpu, span in self.diffs[:limit]:
            who = ""
            if pid is not None:
                tt = sim.truth.tasks.get(pid)
                who = " pid %d (%s)" % (pid, tt.comm if tt else "?")
            if cpu is not None:
                who += " cpu %d" % cpu
            out.append("- %s%s: %s" % (key, who, msg))
            if pid is not None and (pid, span) not in shown:
                shown.add((pid, span))
                out.append(_indent(sim.lines_of(pid=pid, around=span, limit=24)))
            elif cpu is not None and span is not None and (cpu, span) not in shown:
                shown.add((cpu, span))
                out.append(_indent(sim.lines_of(cpu=cpu, around=span, limit=24)))
        if len(self.diffs) > limit:
            out.append("... %d more" % (len(self.diffs) - limit))
        raise AssertionError("\n".join(out))


def _indent(s):
    return "\n".join("      " + x for x in s.splitlines())


def _rows(arr, key):
    return {int(r[key]): r for r in arr}


# ---------------------------------------------------------------------------------------------
# the checks (each takes a simulation and its loaded trace)

DURATIONS = (("run_ns", "run_ns"), ("wait_ns", "wait_ns"), ("sleep_ns", "sleep_ns"),
             ("blocked_ns", "blocked_ns"), ("other_sleep_ns", "other_sleep_ns"),
             ("unknown_ns", "unknown_ns"), ("dead_ns", "dead_ns"))
COUNTS = ("switches_in", "inferred_switch_ins", "preemptions", "switches_out_S", "switches_out_D",
          "switches_out_other", "switches_out_dead", "wakeups", "migrations")


def _first_diff_span(tt, state):
    """a time span worth showing for a duration difference: the task's intervals in a state."""
    ivs = [iv for iv in tt.intervals if iv[2] == state]
    if not ivs:
        return None
    return (ivs[0][0], ivs[-1][1])


def check_window(sim, t, rep):
    rep.eq("window", tuple(sim.truth.window), tuple(int(x) for x in sched.window(t)))


def check_tasks(sim, t, rep):
    truth = sim.truth
    s = sched.task_summary(t)
    rows = _rows(s, "pid")
    rep.eq("task pids", sorted(truth.tasks), sorted(rows))
    W = truth.window[1] - truth.window[0]
    state_of = {"run_ns": simsched.RUNNING, "wait_ns": simsched.RUNNABLE, "sleep_ns": simsched.SLEEP_S,
                "blocked_ns": simsched.SLEEP_D, "other_sleep_ns": simsched.SLEEP_OTHER,
                "unknown_ns": simsched.UNKNOWN, "dead_ns": simsched.DEAD}
    for pid, tt in sorted(truth.tasks.items()):
        r = rows.get(pid)
        if r is None:
            continue
        for field, attr in DURATIONS:
            rep.eq(field, getattr(tt, attr), int(r[field]), pid=pid,
                   span=_first_diff_span(tt, state_of[field]))
        # identity: the states tile the task's life in W
        life = sum(int(r[f]) for f, _ in DURATIONS if f != "dead_ns")
        rep.eq("run+wait+sleep+blocked+other+unknown == time existed", tt.exist_ns, life, pid=pid)
        rep.check("life <= |W|", life + int(r["dead_ns"]) <= W, "%d > %d" % (life, W), pid=pid)
        for field in COUNTS:
            rep.eq(field, getattr(tt, field), int(r[field]), pid=pid)
        rep.eq("wakings", tt.wakings, int(r["wakings"]), pid=pid)
        rep.eq("slices", len(tt.slices), int(r["slices"]), pid=pid)
        rep.eq("max_slice_ns", max(tt.slices, default=0), int(r["max_slice_ns"]), pid=pid)
        if tt.slices:
            rep.eq("mean_slice_ns", sum(tt.slices) / len(tt.slices), float(r["mean_slice_ns"]), pid=pid)
        rep.eq("comm", tt.comm, r["comm"], pid=pid)
        if tt.tgid_known:
            rep.eq("tgid", tt.tgid, int(r["tgid"]), pid=pid)
        ls = simsched.lat_stats(tt.lat)
        rep.eq("lat_count", ls["lat_count"], int(r["lat_count"]), pid=pid)
        if ls["lat_count"]:
            for f in ("lat_mean_ns", "lat_p50_ns", "lat_p90_ns", "lat_p99_ns", "lat_max_ns"):
                got = float(r[f]) if f == "lat_mean_ns" else int(r[f])
                rep.eq(f, ls[f], got, pid=pid)
            rep.check("lat_max_ts", int(r["lat_max_ts"]) in ls["lat_max_ts"],
                      "expected one of %s, got %d" % (sorted(ls["lat_max_ts"]), int(r["lat_max_ts"])), pid=pid)


def check_cpus(sim, t, rep):
    truth = sim.truth
    c = sched.cpu_summary(t)
    rows = _rows(c, "cpu")
    rep.eq("cpus", sorted(truth.cpus), sorted(rows))
    W = truth.window[1] - truth.window[0]
    for cpu, ct in sorted(truth.cpus.items()):
        r = rows.get(cpu)
        if r is None:
            continue
        for f in ("busy_ns", "idle_ns", "unknown_ns"):
            span = next(((a, b) for (a, b, k, p) in ct.intervals if k + "_ns" == f), None)
            rep.eq(f, getattr(ct, f), int(r[f]), cpu=cpu, span=span)
        rep.eq("busy+idle+unknown == |W|", W, int(r["busy_ns"]) + int(r["idle_ns"]) + int(r["unknown_ns"]), cpu=cpu)
        rep.eq("utilization_pct", 100.0 * ct.busy_ns / W if W else 0.0, float(r["utilization_pct"]), cpu=cpu)
        rep.eq("switches", ct.switches, int(r["switches"]), cpu=cpu)


def _norm_intervals(ivs):
    """[(start, end, state, cpu-if-running-or-waiting)]: zero-length dropped, neighbours merged."""
    out = []
    for (a, b, stt, cpu) in sorted(ivs):
        if b <= a:
            continue
        cpu = cpu if stt in (simsched.RUNNING, simsched.RUNNABLE) else None
        if out and out[-1][1] == a and out[-1][2] == stt and out[-1][3] == cpu:
            out[-1] = (out[-1][0], b, stt, cpu)
        else:
            out.append((a, b, stt, cpu))
    return out


def check_intervals(sim, t, rep):
    iv = sched.task_intervals(t)
    got = {}
    for r in iv:
        got.setdefault(int(r["pid"]), []).append(
            (int(r["start_ns"]), int(r["end_ns"]), STATE_NAME.get(int(r["state"]), int(r["state"])), int(r["cpu"])))
    for pid, tt in sorted(sim.truth.tasks.items()):
        exp = _norm_intervals(tt.intervals)
        g = _norm_intervals(got.get(pid, []))
        if exp != g:
            k = next((i for i, (x, y) in enumerate(zip(exp, g)) if x != y), min(len(exp), len(g)))
            e1 = exp[k] if k < len(exp) else None
            g1 = g[k] if k < len(g) else None
            span = (min(x[0] for x in (e1, g1) if x), max(x[1] for x in (e1, g1) if x))
            rep.check("intervals", False, "first difference at #%d: expected %s, got %s (%d vs %d intervals)"
                      % (k, e1, g1, len(exp), len(g)), pid=pid, span=span)
    rep.eq("interval pids", sorted(sim.truth.tasks), sorted(got))


def _busy_bins(ct, edges):
    out = np.zeros(len(edges) - 1, np.int64)
    for (a, b, kind, pid) in ct.intervals:
        if kind != simsched.BUSY:
            continue
        i = max(int(np.searchsorted(edges, a, side="right")) - 1, 0)
        while i < len(edges) - 1 and edges[i] < b:
            out[i] += max(0, min(b, int(edges[i + 1])) - max(a, int(edges[i])))
            i += 1
    return out


def check_utilization(sim, t, rep, nbins=(7, 50)):
    ws, we = sim.truth.window
    c = sched.cpu_summary(t)
    for n in nbins:
        bin_ns = max(1, (we - ws) // n + (1 if n == 7 else 0))
        edges, busy = sched.cpu_utilization(t, bin_ns)
        edges = np.asarray(edges, np.int64)
        steps = np.diff(edges)
        rep.check("utilization edges", edges[0] <= ws and edges[-1] >= we and len(steps) > 0 and
                  bool(np.all(steps[:-1] == bin_ns)) and 0 < steps[-1] <= bin_ns,
                  "bin %d: edges %s..%s (%d) do not cover the window %s in steps of the bin "
                  "(the last one may be shorter)" % (bin_ns, edges[0], edges[-1], len(edges), (ws, we)))
        rep.eq("utilization shape (bin %d)" % bin_ns, (len(c), len(edges) - 1), tuple(busy.shape))
        for k, cpu in enumerate(c["cpu"].tolist()):
            ct = sim.truth.cpus.get(cpu)
            if ct is None or k >= busy.shape[0]:
                continue
            exp = _busy_bins(ct, edges)
            g = np.asarray(busy[k], np.int64)
            if exp.shape != g.shape or not np.array_equal(exp, g):
                bad = [i for i in range(min(len(exp), len(g))) if exp[i] != g[i]]
                i = bad[0] if bad else 0
                rep.check("utilization (bin %d)" % bin_ns, False,
                          "%d bins differ, first bin %d [%d, %d): expected %d, got %d"
                          % (len(bad), i, edges[i], edges[i + 1], exp[i], g[i]), cpu=cpu,
                          span=(int(edges[i]), int(edges[i + 1])))
            rep.eq("utilization sum == busy_ns (bin %d)" % bin_ns, ct.busy_ns, int(g.sum()), cpu=cpu)


def check_latencies(sim, t, rep):
    for source, attr in (("wakeup", "lat"), ("waking", "lat_waking")):
        lat = sched.wakeup_latencies(t, source=source)
        got = {}
        for r in lat:
            got.setdefault(int(r["pid"]), []).append((int(r["ts"]), int(r["latency_ns"])))
        for pid, tt in sorted(sim.truth.tasks.items()):
            exp = sorted(getattr(tt, attr))
            g = sorted(got.get(pid, []))
            if exp != g:
                missing = sorted(set(exp) - set(g))[:4]
                extra = sorted(set(g) - set(exp))[:4]
                span = None
                if missing or extra:
                    x = (missing + extra)[0]
                    span = (x[0], x[0] + x[1])
                rep.check("latencies (source=%s)" % source, False,
                          "%d expected, %d got; missing (ts, latency) %s, unexpected %s"
                          % (len(exp), len(g), missing, extra), pid=pid, span=span)
        rep.check("latency pids (source=%s)" % source, set(got) <= set(sim.truth.tasks),
                  "samples for unknown pids %s" % sorted(set(got) - set(sim.truth.tasks)))


def check_restrictions(sim, t, rep, rng):
    truth = sim.truth
    ws, we = truth.window
    full = _rows(sched.task_summary(t), "pid")
    # pids=
    pids = sorted(rng.sample(sorted(truth.tasks), min(3, len(truth.tasks))))
    sub = sched.task_summary(t, pids=pids)
    rep.eq("task_summary(pids=) rows", pids, sorted(int(p) for p in sub["pid"]))
    for r in sub:
        f = full[int(r["pid"])]
        for name in r.dtype.names:
            a, b = r[name], f[name]
            same = (a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
            rep.check("task_summary(pids=) %s" % name, bool(same), "%r vs unrestricted %r" % (a, b), pid=int(r["pid"]))
    # start=, end=: times clipped
    for _ in range(2):
        a = rng.randint(ws, we)
        b = rng.randint(a, we)
        s = _rows(sched.task_summary(t, start=a, end=b), "pid")
        for pid, tt in sorted(truth.tasks.items()):
            d = simsched.clipped_durations(tt, a, b)
            r = s.get(pid)
            if r is None:
                rep.check("task_summary(start, end) rows", sum(d.values()) == 0,
                          "no row in [%d, %d] but %s" % (a, b, d), pid=pid)
                continue
            for field, state in (("run_ns", simsched.RUNNING), ("wait_ns", simsched.RUNNABLE),
                                 ("sleep_ns", simsched.SLEEP_S), ("blocked_ns", simsched.SLEEP_D),
                                 ("other_sleep_ns", simsched.SLEEP_OTHER), ("unknown_ns", simsched.UNKNOWN),
                                 ("dead_ns", simsched.DEAD)):
                rep.eq("%s in [%d, %d]" % (field, a, b), d[state], int(r[field]), pid=pid, span=(a, b))
            for field, n in (("wakeups", sum(1 for x in tt.wakeup_ts if a <= x <= b)),
                             ("migrations", sum(1 for x in tt.migrate_ts if a <= x <= b))):
                rep.eq("%s in [%d, %d]" % (field, a, b), n, int(r[field]), pid=pid)
        c = _rows(sched.cpu_summary(t, start=a, end=b), "cpu")
        for cpu, ct in sorted(truth.cpus.items()):
            r = c.get(cpu)
            if r is None:
                rep.check("cpu_summary(start, end) rows", False, "cpu missing", cpu=cpu)
                continue
            tot = simsched.cpu_clipped(ct, a, b)
            for f, k in (("busy_ns", simsched.BUSY), ("idle_ns", simsched.IDLE), ("unknown_ns", simsched.CPU_UNKNOWN)):
                rep.eq("%s in [%d, %d]" % (f, a, b), tot[k], int(r[f]), cpu=cpu, span=(a, b))
            rep.eq("busy+idle+unknown == end-start", b - a,
                   int(r["busy_ns"]) + int(r["idle_ns"]) + int(r["unknown_ns"]), cpu=cpu)
    # cpus=
    cpus = sorted(rng.sample(sorted(truth.cpus), max(1, len(truth.cpus) // 2)))
    c_all = _rows(sched.cpu_summary(t), "cpu")
    c_sub = sched.cpu_summary(t, cpus=cpus)
    rep.eq("cpu_summary(cpus=) rows", cpus, sorted(int(x) for x in c_sub["cpu"]))
    for r in c_sub:
        for f in ("busy_ns", "idle_ns", "unknown_ns", "switches"):
            rep.eq("cpu_summary(cpus=) %s" % f, int(c_all[int(r["cpu"])][f]), int(r[f]), cpu=int(r["cpu"]))
    s = _rows(sched.task_summary(t, cpus=cpus), "pid")
    for pid, tt in sorted(truth.tasks.items()):
        run = sum(b - a for (a, b, stt, cpu) in tt.intervals if stt == simsched.RUNNING and cpu in cpus)
        r = s.get(pid)
        got = int(r["run_ns"]) if r is not None else 0
        rep.eq("run_ns on cpus %s" % cpus, run, got, pid=pid)


CHECKS = (check_window, check_tasks, check_cpus, check_intervals, check_utilization, check_latencies)


def run_checks(sim, t, checks=CHECKS, restrictions=True):
    rep = Report(sim, "sched vs simsched")
    for chk in checks:
        chk(sim, t, rep)
    if restrictions:
        check_restrictions(sim, t, rep, random.Random(sim.seed))
    rep.fail()


# ---------------------------------------------------------------------------------------------
# tests


def test_simulator_selfcheck():
    """the simulator's own invariants (checked at construction) and its damage actually occur."""
    kinds = set()
    for seed in range(6):
        sim = simsched.simulate(seed, "kernel5", **DAMAGE)
        kinds |= {a.split(":")[0] for a in sim.artifacts}
        assert sim.truth.tasks and sim.truth.cpus
    assert {"missing idle switch-out", "lost(run)"} <= kinds, kinds


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_window_and_tasks(case):
    sim, t = _case(*case)
    rep = Report(sim, "task_summary")
    check_window(sim, t, rep)
    check_tasks(sim, t, rep)
    rep.fail()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_cpus_and_utilization(case):
    sim, t = _case(*case)
    rep = Report(sim, "cpu_summary / cpu_utilization")
    check_cpus(sim, t, rep)
    check_utilization(sim, t, rep)
    rep.fail()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_intervals(case):
    sim, t = _case(*case)
    rep = Report(sim, "task_intervals")
    check_intervals(sim, t, rep)
    rep.fail()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_latencies(case):
    sim, t = _case(*case)
    rep = Report(sim, "wakeup_latencies")
    check_latencies(sim, t, rep)
    rep.fail()


@pytest.mark.parametrize("case", CASES[::3], ids=_ids)
def test_restrictions(case):
    sim, t = _case(*case)
    rep = Report(sim, "restricted summaries")
    check_restrictions(sim, t, rep, random.Random(case[0]))
    rep.fail()


# no shrinking: a smaller seed is just another host, and the report names the failing one
@settings(max_examples=int(os.environ.get("SIMSCHED_EXAMPLES", "15")), deadline=None,
          phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), variant=st.sampled_from(VARIANTS), ncpu=st.integers(2, 4),
       lost=st.booleans(), missing_idle=st.booleans(), forks=st.booleans(),
       redundant=st.booleans(), remote=st.booleans())
def test_random_hosts(seed, variant, ncpu, lost, missing_idle, forks, redundant, remote):
    sim = simsched.simulate(seed, variant, ncpu=ncpu, lost=lost, missing_idle=missing_idle,
                            forks=forks, redundant_wakeups=redundant, remote_wakeups=remote,
                            duration=8000)
    run_checks(sim, _load(sim))


def test_unstamped_lines_count_but_are_not_in_the_stream():
    """A line without a time stamp (function_graph output without abstime) is no part of the
    window or the stream (D1), but its sched_wakeup / sched_switch still counts (D9)."""
    sim = simsched.simulate(3, "kernel5")
    t = _load(sim)
    wk = t.events["sched_wakeup"] = t.events["sched_wakeup"].copy()
    sw = t.events["sched_switch"] = t.events["sched_switch"].copy()
    wk["ts"][::5] = -1
    sw["ts"][1::7] = -1
    s = sched.task_summary(t)
    pids, n = np.unique(wk["task_pid"][wk["task_pid"] > 0], return_counts=True)
    got = dict(zip(s["pid"].tolist(), s["wakeups"].tolist()))
    assert {p: got[p] for p in pids.tolist()} == dict(zip(pids.tolist(), n.tolist()))
    c = sched.cpu_summary(t)
    cpus, n = np.unique(sw["cpu"], return_counts=True)
    assert dict(zip(c["cpu"].tolist(), c["switches"].tolist())) == dict(zip(cpus.tolist(), n.tolist()))
    stamped = np.concatenate([a["ts"][a["ts"] >= 0] for a in t.events.values()])
    assert sched.window(t) == (int(stamped.min()), int(stamped.max()))


@pytest.mark.parametrize("scale", [1, 2**59])
def test_percentiles_both_sorts(scale):
    """Grouped nearest-rank statistics (D4) agree with a plain computation, whether the
    (group, value) pairs fit one packed int64 key or need a lexsort (huge tick values)."""
    rng = np.random.default_rng(7)
    groups = rng.integers(0, 6, 300).astype(np.int32)
    values = rng.integers(0, 9, 300).astype(np.int64) * scale
    pc = sched._percentiles(groups, values, 7)
    for g in range(7):
        idx = np.flatnonzero(groups == g)
        if not len(idx):
            assert pc["count"][g] == 0 and pc["argmax"][g] == -1
            continue
        v = np.sort(values[idx])
        assert pc["count"][g] == len(v) and pc["max"][g] == v[-1]
        assert pc["mean"][g] == v.astype(np.float64).sum() / len(v)
        assert pc["argmax"][g] == idx[values[idx] == v[-1]].max()
        for p in (50, 90, 99):
            assert pc[p][g] == v[max(math.ceil(p * len(v) / 100), 1) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_task_intervals_of_some_tasks_are_the_rows_of_all(seed):
    """task_intervals(pids=/comm=) picks rows through a by-task index: the same rows, in the
    same order, as selecting from every task's, under the other restrictions too."""
    sim = simsched.simulate(seed=seed, variant="kernel5", lost=seed == 2, missing_idle=True)
    t = _load(sim)
    allv = sched.task_intervals(t)
    pids = sorted(set(allv["pid"].tolist()))[::3] + [999999999]
    w0, w1 = sched.window(t)
    for kw in ({}, {"start": f"{w0 + (w1 - w0) // 4}ns", "end": f"{w1 - (w1 - w0) // 4}ns"},
               {"cpus": [0]}):
        base = sched.task_intervals(t, **kw)
        got = sched.task_intervals(t, pids=pids, **kw)
        assert np.array_equal(got, base[np.isin(base["pid"], pids)])
        got = sched.task_intervals(t, comm="KVM", **kw)
        want = sched.task_summary(t, comm="KVM")["pid"]
        assert len(want) and np.array_equal(got, base[np.isin(base["pid"], want)])
    assert len(sched.task_intervals(t, pids=[999999999])) == 0


@pytest.mark.parametrize("seed", [4, 5])
def test_one_full_walk_equals_the_lazy_one(seed):
    """model(trace, intervals=True) walks once for the sums and the intervals: the same figures
    as the sums walk followed by the interval walk on first use."""
    sim = simsched.simulate(seed=seed, variant="kernel5_tgid", lost=seed == 5, missing_idle=True)
    a, b = _load(sim), _load(sim)
    sched.model(b, intervals=True)
    for fn in (sched.task_summary, sched.cpu_summary, sched.task_intervals, sched.cpu_intervals,
               sched.wakeup_latencies):
        x, y = fn(a), fn(b)
        assert x.dtype == y.dtype and len(x) == len(y)
        for f in x.dtype.names:
            assert np.array_equal(x[f], y[f]) or (x.dtype[f].kind == "f" and
                                                 np.allclose(x[f], y[f], equal_nan=True)), (fn, f)


@pytest.mark.parametrize("variant", ["kernel5", "trace_pipe", "kernel4_tgid"])
def test_models_built_with_some_tables_answer_like_a_full_one(variant):
    """A model built with some tables (IV, CO, SW: what charts and the KVM figures ask for)
    walks again for the missing ones only, keeps the arrays it handed out, and answers every
    query like a model built with all of them."""
    from ftrace_fast import sched
    sim = simsched.simulate(3, variant, **OPTIONS["damaged"])
    full = _load(sim)
    sched.model(full, intervals=True)
    w0, w1 = sched.window(full)
    mid = (w0 + w1) // 2
    queries = [
        lambda t: sched.task_intervals(t),
        lambda t: sched.cpu_intervals(t),
        lambda t: sched.cpu_utilization(t, max((w1 - w0) // 7, 1))[1],
        lambda t: sched.task_summary(t, start=mid),
        lambda t: sched.cpu_summary(t, end=mid),
        lambda t: sched.task_summary(t),
    ]
    want = [q(full) for q in queries]
    for first in (sched.CO, sched.IV, sched.IV | sched.CO, sched.SW, 0):
        t = _load(sim)
        m = sched.model(t, intervals=first)
        assert m._have == first
        before = {k: v for k, v in (m._r or {}).items() if k[:3] in ("iv_", "co_", "si_", "so_")}
        for i, (q, w) in enumerate(zip(queries, want)):
            got = q(t)
            for name in (w.dtype.names or [None]):
                x, y = (got, w) if name is None else (got[name], w[name])
                assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (variant, first, i, name)
        assert m._have == sched.ALL
        for k, v in before.items():
            assert m._r[k] is v, (k, first)


def _names_reference(m):
    p_, c_ = m._gather((("pid", "comm"), ("a", "acomm"), ("b", "bcomm")))
    keep = (p_ > 0) & (c_ >= 0)
    out = {}
    for p, c in sorted(set(zip(p_[keep].tolist(), c_[keep].tolist()))):
        out.setdefault(p, []).append(m.trace.comms[c])
    return out


def test_every_name_of_a_task_equals_a_gather_of_all_pairs():
    """SchedModel.names keeps a (pid, comm) pair in one pass only where the task's name
    changes: the same names as every pair of every record, on simulated traces in every
    variant, on mutated ones, and with a renamed task whose pid is past the lookup table."""
    import random

    import tracegen
    from ftrace_fast import sched
    for i, variant in enumerate(simsched.VARIANTS):
        t = _load(simsched.simulate(20 + i, variant, **OPTIONS["damaged"]))
        m = sched.model(t)
        assert m.names == _names_reference(m), variant
    for seed in range(30):
        rng = random.Random(500 + seed)
        data = tracegen.generate(rng, rng.choice(tracegen.VARIANTS), n_events=rng.randint(1, 300)).data
        t = ftrace_fast.load(io.BytesIO(tracegen.mutate(rng, data) if seed % 2 else data), warn=False)
        if "sched_switch" in t.events and len(t.events["sched_switch"]):
            m = sched.model(t)
            assert m.names == _names_reference(m), seed
    big = 1 << 23
    text = (f"a-{big} [000] .... 1.000001: sched_switch: prev_comm=a prev_pid={big} prev_prio=120 "
            f"prev_state=S ==> next_comm=b next_pid=7 next_prio=120\n"
            f"b-7 [000] .... 1.000002: sched_switch: prev_comm=b prev_pid=7 prev_prio=120 "
            f"prev_state=S ==> next_comm=c next_pid={big} next_prio=120\n"
            f"c-{big} [000] .... 1.000003: sched_switch: prev_comm=a prev_pid={big} prev_prio=120 "
            f"prev_state=S ==> next_comm=b next_pid=7 next_prio=120\n")
    m = sched.model(ftrace_fast.load(io.BytesIO(text.encode())))
    assert m.names == _names_reference(m) and m.names[big] == ["a", "c"]


@pytest.mark.parametrize("seed,lost,shuffle", [(3, False, False), (4, True, False),
                                               (5, True, True)])
def test_intervals_of_some_tasks_are_those_rows_of_every_task(seed, lost, shuffle):
    """A walk asked for the intervals of some tasks (SchedModel's iv_select) emits exactly
    the rows of those tasks that a walk for every task emits, in the same order, with the same
    sums; LOST gaps (D6) and a file whose time goes back (the sorted walk) included."""
    data = simsched.simulate(seed=seed, variant="kernel5", lost=lost, missing_idle=lost).data
    if shuffle:
        lines = data.split(b"\n")
        ev = [i for i, x in enumerate(lines) if b": sched_" in x]
        i = ev[len(ev) // 2]
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        data = b"\n".join(lines)
    every = sched.SchedModel(ftrace_fast.load(io.BytesIO(data)), tables=sched.IV)
    assert isinstance(every._order, tuple) == (shuffle or lost)   # LOST markers: sorted too
    rng = np.random.default_rng(seed)
    for share in (0.0, 0.1, 0.5, 1.0):
        sel = rng.random(every.ntasks) < share
        some = sched.SchedModel(ftrace_fast.load(io.BytesIO(data)), tables=sched.IV,
                                iv_select=lambda m: sel)
        assert np.array_equal(some._iv_sel, sel) and not some._have & sched.IV
        keep = sel[every._r["iv_task"]]
        for k in ("iv_task", "iv_state", "iv_start", "iv_end", "iv_cpu"):
            assert np.array_equal(some._r[k], every._r[k][keep]), k
        for k, v in every.sums.items():
            if not k.startswith("iv_"):
                assert np.array_equal(some.sums[k], v), k
        assert some.holds_intervals(sel) and (share == 1.0) == some.holds_intervals(~sel | sel)
