"""ftrace_fast.export: the Chrome trace-event JSON is valid by the format's rules and says
exactly what the scheduling analysis says (times to the ns, read back with Decimal)."""

import io
import json
import os
import sys
import warnings
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import cli, export, sched
from helpers import DATA

sys.path.insert(0, os.path.dirname(__file__))
import simsched  # noqa: E402

SMP4 = DATA / "kvm_smp4_contended_small.txt.gz"
NO_SWITCH = DATA / "public" / "trappy-tests-tracecmd-sched-stat.txt"
PHASES = set("XBEMCsftbenIiOPNDR")


def _load(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(io.BytesIO(data) if isinstance(data, bytes) else data, warn=False)


def _ns(v):
    """µs (Decimal, as written) -> int ns, refusing anything finer than a ns."""
    ns = v * 1000
    assert ns == ns.to_integral_value(), v
    return int(ns)


def validate(doc):
    """The Trace Event Format's rules (JSON Object Format): returns the events."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    evs = doc["traceEvents"]
    stacks = defaultdict(list)
    flows = {}
    for e in evs:
        for k in ("ph", "ts", "pid", "tid"):
            assert k in e, (k, e)
        assert e["ph"] in PHASES, e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["ts"], (int, Decimal))
        if e["ph"] in "XBEC":
            assert isinstance(e.get("name"), str) and e["name"], e
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, Decimal)) and e["dur"] >= 0, e
        elif e["ph"] == "B":
            stacks[e["pid"], e["tid"]].append(e)
        elif e["ph"] == "E":
            assert stacks[e["pid"], e["tid"]], ("E without B", e)
            assert stacks[e["pid"], e["tid"]].pop()["ts"] <= e["ts"]
        elif e["ph"] == "C":
            assert e["args"] and all(isinstance(v, (int, Decimal)) and not isinstance(v, bool)
                                     for v in e["args"].values()), e
        elif e["ph"] in "sf":
            key = (e.get("cat"), e["id"])
            d = flows.setdefault(key, {})
            assert e["ph"] not in d, ("flow event twice", e)
            d[e["ph"]] = e
        elif e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "process_sort_index",
                                 "thread_sort_index"), e
            assert "name" in e["args"] or "sort_index" in e["args"]
    assert not any(stacks.values()), "B without E"
    for key, d in flows.items():
        assert set(d) == {"s", "f"}, ("unmatched flow", key, d)
        assert d["s"]["ts"] <= d["f"]["ts"] and d["s"]["name"] == d["f"]["name"]
    return evs


def _export(t, **kw):
    buf = io.StringIO()
    r = export.perfetto(t, buf, **kw)
    doc = json.loads(buf.getvalue(), parse_float=Decimal)
    return r, doc, validate(doc)


@pytest.fixture(scope="module")
def sim_trace():
    sim = simsched.simulate(1, "kernel5", lost=True, missing_idle=True)
    return sim, _load(sim.data)


def test_cpu_tracks_are_the_cpu_occupancy(sim_trace):
    sim, t = sim_trace
    r, doc, evs = _export(t, comm="", top=0)
    assert r["truncated_at"] is None and r["events"] == len(evs) - r["metadata"]
    by_cpu = defaultdict(lambda: defaultdict(int))
    for e in evs:
        if e["ph"] == "X" and e["pid"] == export.CPU_PID:
            cpu = e["tid"] - export.CPU_PID - 1
            kind = {"idle": "idle", "unknown (lost events)": "unknown"}.get(e["name"], "busy")
            by_cpu[cpu][kind] += _ns(e["dur"])
    for c, ct in sim.truth.cpus.items():
        assert (by_cpu[c]["busy"], by_cpu[c]["idle"], by_cpu[c]["unknown"]) == \
            (ct.busy_ns, ct.idle_ns, ct.unknown_ns), c
    # the counters are the utilization per bin
    cnt = [e for e in evs if e["ph"] == "C" and e["name"] == "CPU 0 utilization"]
    ts = [_ns(e["ts"]) for e in cnt]
    assert ts == sorted(ts) and ts[0] == sim.truth.window[0] and ts[-1] == sim.truth.window[1]
    bin_ns = ts[1] - ts[0]
    edges, busy = sched.cpu_utilization(t, bin_ns)
    want = np.round(100 * busy[0] / np.diff(edges), 2)
    assert [float(e["args"]["pct"]) for e in cnt[:-1]] == want.tolist()


def test_task_tracks_are_the_task_states(sim_trace):
    sim, t = sim_trace
    r, doc, evs = _export(t, comm="", top=0)
    per = defaultdict(lambda: defaultdict(int))
    names = {n: s for s, n in export.STATE_NAMES.items()}
    for e in evs:
        if e["ph"] == "X" and e["cat"] == "state":
            per[e["tid"]][names[e["name"]]] += _ns(e["dur"])
    for pid, tt in sim.truth.tasks.items():
        got = per[pid]
        assert (got[sched.RUNNING], got[sched.RUNNABLE], got[sched.SLEEP_S], got[sched.SLEEP_D],
                got[sched.UNKNOWN]) == (tt.run_ns, tt.wait_ns, tt.sleep_ns, tt.blocked_ns,
                                        tt.unknown_ns), pid
    names_meta = {(e["pid"], e["tid"]): e["args"]["name"] for e in evs
                  if e["ph"] == "M" and e["name"] == "thread_name"}
    for pid, tt in sim.truth.tasks.items():
        assert any(tid == pid and name == f"{tt.comm} ({pid})" for (_, tid), name in names_meta.items())


def test_guest_slices_pair_entry_and_exit(sim_trace):
    sim, t = sim_trace
    r, doc, evs = _export(t)                     # default: the vCPU threads
    got = sorted((e["tid"] - export.GUEST_TID, _ns(e["ts"]), _ns(e["ts"]) + _ns(e["dur"]),
                  e["args"]["exit_reason"]) for e in evs if e["ph"] == "X" and e["cat"] == "kvm")
    assert got and r["guest_slices"] == len(got)
    # a direct walk over the lines, per thread in file order
    en, ex = t.events["kvm_entry"], t.events["kvm_exit"]
    lines = sorted([(int(p), int(ln), int(ts), 0, None) for p, ln, ts in zip(en["pid"], en["line"], en["ts"])]
                   + [(int(p), int(ln), int(ts), 1, t.symbols[rs])
                      for p, ln, ts, rs in zip(ex["pid"], ex["line"], ex["ts"], ex["reason"])])
    w0, w1 = sched.window(t)
    want = []
    for i, (p, _, ts, kind, reason) in enumerate(lines):
        prev = lines[i - 1] if i and lines[i - 1][0] == p else None
        nxt = lines[i + 1] if i + 1 < len(lines) and lines[i + 1][0] == p else None
        if kind == 0 and nxt is not None and nxt[3] == 1 and nxt[2] > ts:
            want.append((p, ts, nxt[2], nxt[4]))
        if kind == 0 and nxt is None and w1 > ts:
            want.append((p, ts, w1, None))
        if kind == 1 and prev is None and ts > w0:
            want.append((p, w0, ts, reason))
    assert got == sorted(want)
    vcpus = {int(p) for p in sched.task_summary(t, comm=r"^CPU \d+/KVM$")["pid"]}
    assert {g[0] for g in got} == vcpus


def test_flows_go_from_wakeup_to_switch_in(sim_trace):
    sim, t = sim_trace
    r, doc, evs = _export(t, comm="", top=0)
    lat = sched.wakeup_latencies(t)
    s = {e["id"]: e for e in evs if e["ph"] == "s"}
    f = {e["id"]: e for e in evs if e["ph"] == "f"}
    assert len(s) == len(f) == r["flows"] == len(lat)
    pairs = sorted((int(s[i]["name"].split()[1]), _ns(s[i]["ts"]), _ns(f[i]["ts"]),
                    f[i]["tid"] - export.CPU_PID - 1) for i in s)
    assert pairs == sorted(zip(lat["pid"].tolist(), lat["ts"].tolist(), lat["switch_ts"].tolist(),
                               lat["cpu"].tolist()))
    # the start sits on the CPU of the sched_wakeup line
    wk = t.events["sched_wakeup"]
    where = {(int(p), int(ts)): int(c) for p, ts, c in zip(wk["task_pid"], wk["ts"], wk["cpu"])}
    for i in s:
        key = (int(s[i]["name"].split()[1]), _ns(s[i]["ts"]))
        assert s[i]["tid"] - export.CPU_PID - 1 == where[key]


def test_filters_and_size_guard(sim_trace):
    sim, t = sim_trace
    w0, w1 = sched.window(t)
    a, b = w0 + (w1 - w0) // 4, w0 + (w1 - w0) // 2
    r, doc, evs = _export(t, start=a, end=b, cpus=[1], comm="", top=0)
    for e in evs:
        if e["ph"] == "X":
            assert a <= _ns(e["ts"]) and _ns(e["ts"]) + _ns(e["dur"]) <= b, e
            if e["pid"] == export.CPU_PID:
                assert e["tid"] == export.CPU_PID + 2
            elif e["cat"] == "state" and "cpu" in e["args"]:
                assert e["args"]["cpu"] == 1
        if e["ph"] in "sf":
            assert e["tid"] == export.CPU_PID + 2
    full = _export(t, comm="", top=0)[0]["events"]
    r, doc, evs = _export(t, comm="", top=0, max_events=200)
    body = [e for e in evs if e["ph"] != "M"]
    assert len(body) <= 200 and r["events"] == len(body) and r["would_have"] == full
    cut = r["truncated_at"]
    assert cut is not None and doc["otherData"]["truncated_at"] == cut
    assert all(_ns(e["ts"]) < cut for e in body if e["ph"] not in "s")
    assert max(_ns(e["ts"]) for e in body) < cut
    with pytest.raises(ValueError, match="max_events"):
        export.perfetto(t, io.StringIO(), max_events=0)


def test_real_trace_and_cli(tmp_path, capsys):
    out = tmp_path / "t.json"
    rc = cli.main(["export", str(SMP4), "--perfetto", str(out)])
    err = capsys.readouterr().err
    assert rc == 0 and "wrote" in err
    doc = json.loads(out.read_text(), parse_float=Decimal)
    evs = validate(doc)
    t = _load(str(SMP4))
    s = sched.task_summary(t, comm=r"^CPU \d+/KVM$")
    run = defaultdict(int)
    for e in evs:
        if e["ph"] == "X" and e.get("cat") == "state" and e["name"] == "Running":
            run[e["tid"]] += _ns(e["dur"])
    assert dict(run) == dict(zip(s["pid"].tolist(), s["run_ns"].tolist()))
    assert doc["otherData"]["source"].endswith("kvm_smp4_contended_small.txt.gz")
    rc = cli.main(["export", str(SMP4), "--perfetto", str(out), "--max-events", "100"])
    err = capsys.readouterr().err
    assert rc == 0 and "exceed --max-events 100" in err
    assert len([e for e in validate(json.loads(out.read_text(), parse_float=Decimal))
                if e["ph"] != "M"]) <= 100
    for argv, code, msg in (
            (["--max-events", "0"], 2, "--max-events must be at least 1"),
            (["--top=-1"], 2, "--top must be 0"),
            (["--start", "2s", "--end", "1s"], 2, "bad time range")):
        rc = cli.main(["export", str(SMP4), "--perfetto", str(out)] + argv)
        err = capsys.readouterr().err
        assert rc == code and msg in err and err.count("\n") == 1, (argv, err)
    rc = cli.main(["export", str(SMP4), "--perfetto", str(tmp_path / "no" / "x.json")])
    assert rc == 4 and "no such directory" in capsys.readouterr().err
    rc = cli.main(["export", str(NO_SWITCH), "--perfetto", str(out)])
    assert rc == 3 and "no sched_switch" in capsys.readouterr().err


GUEST = """\
# tracer: nop
          <idle>-0       [000] d..2.   100.000000: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=CPU 0/KVM next_pid=10 next_prio=120
       CPU 0/KVM-10      [000] d..2.   100.000010: kvm_entry: vcpu 0
       CPU 1/KVM-11      [001] d..2.   100.000020: kvm_exit: vcpu 1 reason EXTERNAL_INTERRUPT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0
       CPU 0/KVM-10      [000] d..2.   100.000050: kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0
       CPU 0/KVM-10      [000] d..2.   100.000060: kvm_entry: vcpu 0
       CPU 0/KVM-10      [000] d..2.   100.000070: kvm_entry: vcpu 0
       CPU 0/KVM-10      [000] d..2.   100.000090: kvm_exit: vcpu 0 reason MSR_WRITE rip 0x1 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0
       CPU 0/KVM-10      [000] d..2.   100.000100: kvm_entry: vcpu 0
       CPU 1/KVM-11      [001] d..2.   100.000150: sched_switch: prev_comm=CPU 1/KVM prev_pid=11 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
          <idle>-0       [000] d..2.   100.000200: sched_waking: comm=CPU 1/KVM pid=11 prio=120 target_cpu=001
"""


def test_guest_slices_at_the_edges_and_across_a_lost_exit():
    """In the guest since the window start before a first kvm_exit, to the window end after a
    last kvm_entry; two entries in a row (the exit between them lost) give no slice."""
    t = _load(GUEST.encode())
    r, doc, evs = _export(t)
    got = sorted((e["tid"] - export.GUEST_TID, _ns(e["ts"]) - 100_000_000_000, _ns(e["dur"]),
                  e["args"]["exit_reason"]) for e in evs if e["ph"] == "X" and e["cat"] == "kvm")
    assert got == [(10, 10_000, 40_000, "HLT"), (10, 70_000, 20_000, "MSR_WRITE"),
                   (10, 100_000, 100_000, None), (11, 0, 20_000, "EXTERNAL_INTERRUPT")]
    # clipped by --start/--end like every slice
    r, doc, evs = _export(t, start="100.000040", end="100.000080")
    got = sorted((e["tid"] - export.GUEST_TID, _ns(e["ts"]) - 100_000_000_000, _ns(e["dur"]))
                 for e in evs if e["ph"] == "X" and e["cat"] == "kvm")
    assert got == [(10, 40_000, 10_000), (10, 70_000, 10_000)]
