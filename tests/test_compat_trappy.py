"""ftrace_fast.compat.trappy: trappy's own suite run against it, its frames against the
simulator's truth, and its key=value split against trappy's per-line rules."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simsched  # noqa: E402
import tracegen  # noqa: E402

import ftrace_fast  # noqa: E402
from ftrace_fast.compat import trappy  # noqa: E402



def _peer_tests():
    """../shared/peers/trappy-tests/tests beside the checkout (any parent), or ''."""
    here = os.path.dirname(os.path.abspath(__file__))
    while True:
        cand = os.path.join(here, "shared", "peers", "trappy-tests", "tests")
        if os.path.isdir(cand):
            return cand
        up = os.path.dirname(here)
        if up == here:
            return ""
        here = up


PEER_TESTS = _peer_tests()
SUITE = ["test_ftrace.py", "test_sched.py", "test_base.py", "test_systrace.py", "test_dynamic.py",
         "test_baretrace.py"]
#: tests that read a trace.dat with no skip of their own (trappy runs trace-cmd for them),
#: deselected by name: pytest 9.2 names a test outside --rootdir by a path relative to it
NEED_TRACE_CMD = ["test_helpful_error", "test_not_overwritten"]


@pytest.mark.skipif(not PEER_TESTS, reason="../shared/peers/trappy-tests absent")
def test_trappy_own_suite(tmp_path):
    """trappy's text-parsing tests, unchanged, with `import trappy` giving our layer: 83 of 83
    (77 passed + 4 skipped by the suite itself + 2 deselected when trace-cmd is not installed)."""
    (tmp_path / "ftfast_trappy_alias.py").write_text(
        "from ftrace_fast.compat import trappy\ntrappy.install()\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
           "ftfast_trappy_alias", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
           *SUITE]
    have_trace_cmd = shutil.which("trace-cmd") is not None
    cmd += ["-k", " and ".join(["not plot"] + ([] if have_trace_cmd else
                                               [f"not {t}" for t in NEED_TRACE_CMD]))]
    r = subprocess.run(cmd, cwd=PEER_TESTS, env=env, capture_output=True, text=True, timeout=300)
    tail = r.stdout[-3000:]
    assert r.returncode == 0, tail
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|deselected)",
                                               tail.splitlines()[-1])}
    if have_trace_cmd:
        assert counts.get("passed") == 83, tail
    else:
        assert counts.get("passed") == 77 and counts.get("skipped") == 4, tail
    assert not counts.get("failed") and not counts.get("error"), tail


def _sim_file(tmp_path, seed, variant):
    sim = simsched.simulate(seed=seed, variant=variant)
    p = tmp_path / f"sim{seed}.txt"
    p.write_bytes(sim.data)
    return sim, str(p)


@pytest.mark.parametrize("variant", ["kernel5", "kernel4_tgid", "tracecmd"])
def test_sched_frames_match_simulator(tmp_path, variant):
    """sched_switch / sched_wakeup frames hold every line of the simulation, with its comms
    (spaces included), pids, letters (R+, 5-character flags lines included) and times."""
    sim, path = _sim_file(tmp_path, 5, variant)
    ft = trappy.FTrace(path, normalize_time=False)
    sw = ft.sched_switch.data_frame
    lines = [ln for ln in sim.lines if ln.kept and ln.name == "sched_switch"]
    assert len(sw) == len(lines)
    assert list(sw.columns) == ["__comm", "__pid", "__cpu", "__line", "prev_comm", "prev_pid",
                                "prev_prio", "prev_state", "next_comm", "next_pid", "next_prio"]
    assert sw["prev_comm"].tolist() == [ln.f["prev_comm"] for ln in lines]
    assert sw["next_comm"].tolist() == [ln.f["next_comm"] for ln in lines]
    assert sw["prev_pid"].tolist() == [ln.f["prev"] for ln in lines]
    assert sw["next_pid"].tolist() == [ln.f["next"] for ln in lines]
    assert sw["prev_state"].tolist() == [ln.f["prev_state"] for ln in lines]
    assert sw["__cpu"].tolist() == [ln.cpu for ln in lines]
    assert sw["__pid"].tolist() == [ln.pid for ln in lines]
    assert sw["prev_pid"].dtype == np.int64 and sw["__line"].dtype == np.int64
    first = min(ln.lineno for ln in sim.lines if ln.kept)
    assert sw["__line"].tolist() == [ln.lineno - first for ln in lines]
    # trappy's times: the printed time, moved up by whole ulps only where lines share a time
    t_true = np.array([ln.ts * sim.scale for ln in lines]) / 1e9
    t = sw.index.to_numpy()
    assert np.all(t >= t_true) and np.all(np.diff(t) > 0)
    assert np.all((t.view(np.int64) - t_true.view(np.int64)) < 64)
    wk = ft.sched_wakeup.data_frame
    wl = [ln for ln in sim.lines if ln.kept and ln.name == "sched_wakeup"]
    assert wk["pid"].tolist() == [ln.f["task"] for ln in wl]
    assert wk["target_cpu"].tolist() == [ln.f["target_cpu"] for ln in wl]


def test_equal_times_made_unique(tmp_path):
    """Lines with the same time get the next floats, in line order, across events (trappy)."""
    p = tmp_path / "trace.txt"
    p.write_text(
        "  a-1 [000] 10.000001: foo: x=1\n"
        "  a-1 [000] 10.000001: bar: y=2\n"
        "  a-1 [000] 10.000001: foo: x=3\n"
        "  a-1 [000] 10.000000: foo: x=4\n"
        "  a-1 [000] 10.000002: foo: x=5\n")
    ft = trappy.FTrace(str(p), normalize_time=False, scope="custom", events=["foo", "bar"])
    t0 = 10.000001
    ulp = [np.nextafter(t0, np.inf)]
    ulp.append(np.nextafter(ulp[0], np.inf))
    ulp.append(np.nextafter(ulp[1], np.inf))
    assert ft.foo.data_frame.index.tolist() == [t0, ulp[1], ulp[2], 10.000002]
    assert ft.bar.data_frame.index.tolist() == [ulp[0]]
    assert ft.foo.data_frame["x"].tolist() == [1, 3, 4, 5]
    assert ft.basetime == t0 and ft.endtime == 10.000002


@pytest.mark.filterwarnings("ignore:.*not key=value data")
@pytest.mark.parametrize("seed", range(8))
def test_time_sequence_equals_trappys_loop(tmp_path, seed):
    """Every row's time equals trappy's per-line loop (a time not after the previous seen
    line's becomes np.nextafter of it) over random lines with ties, steps back, lines of other
    events, typed events, and lines trappy's regex does not see (empty payload, the function
    tracer's ``func <-parent``), which keep their printed time; basetime / endtime / lines too;
    and the stable-sort path (for lines holding two rows) gives the same times."""
    rng = random.Random(seed)
    t_us = rng.randint(0, 5_000_000_000)
    lines, truth = [], []  # truth: (event, printed seconds, seen by trappy's regex)
    for i in range(400):
        t_us += rng.choice([0, 0, 0, 1, 1, 3, -1, -2, 250]) if i else 0
        t_us = max(t_us, 0)
        stamp = f"{t_us // 1_000_000}.{t_us % 1_000_000:06d}"
        kind = rng.random()
        if kind < 0.35:
            ev, body, seen = "foo", f"x={i}", True
        elif kind < 0.55:
            ev, body, seen = "bar", f"y={i} z=a{i}", True
        elif kind < 0.7:
            ev, body, seen = "sched_wakeup", f"comm=t{i} pid={i} prio=120 target_cpu=001", True
        elif kind < 0.8:
            ev, body, seen = "other", f"v={i}", True
        elif kind < 0.9:
            ev, body, seen = "foo", "", False
        else:
            ev, body, seen = "function", "", False
        if ev == "function":
            text = f"  t-{i} [001] d..1. {stamp}: do_thing <-caller{i}"
        else:
            text = f"  t-{i} [001] d..1. {stamp}: {ev}: {body}".rstrip()
        lines.append(text + "\n")
        truth.append((ev, float(stamp), seen))
    path = tmp_path / "trace.txt"
    path.write_text("# tracer: nop\n#\n" + "".join(lines))
    # trappy's loop, as in trappy.ftrace.GenericFTrace.__populate_data
    want, prev = [], 0.0
    for ev, t, seen in truth:
        if seen:
            prev = t if t > prev else float(np.nextafter(prev, math.inf))
            want.append((ev, prev))
        else:
            want.append((ev, t))
    ft = trappy.FTrace(str(path), normalize_time=False, scope="custom",
                       events=["foo", "bar", "sched_wakeup", "function"])
    for ev, attr in (("foo", "foo"), ("bar", "bar"), ("sched_wakeup", "sched_wakeup"),
                     ("function", "function")):
        got = getattr(ft, attr).data_frame.index.tolist()
        assert got == [t for e, t in want if e == ev], ev
    seen_t = [t for (e, t), (_, _, s) in zip(want, truth) if s]
    all_t = [t for _, t in want]
    assert ft.basetime == min(all_t) and ft.endtime == max(all_t)
    assert seen_t == sorted(seen_t) and len(set(seen_t)) == len(seen_t)
    first = next(i for i, (_, _, s) in enumerate(truth) if s)
    last = max(i for i, (_, _, s) in enumerate(truth) if s)
    assert ft.lines == last - first + 1
    assert ft.foo.data_frame["__line"].tolist() == [
        i - first for i, (e, _, _) in enumerate(truth) if e == "foo"]
    # the stable-sort path of the same sequence
    seq = trappy._TimeSeq(ftrace_fast.load(str(path), warn=False))
    times = {ev: seq.times(ev).tolist() for ev in ("foo", "bar", "function")}
    seq._by_sort([], [])
    for ev, t in times.items():
        assert seq.times(ev).tolist() == t, ev


def _oracle(payloads, name):
    """trappy's per-line rules: the prefix words dropped, arrays exploded over the event, then
    Base.generate_data_dict, into a DataFrame from the dicts."""
    cls = trappy.register_dynamic_ftrace("OracleEvent", name + ":")
    try:
        obj = cls()
        data = [re.sub(r"^(\w+:\s+)*", "", p.strip()) for p in payloads]
        data = [re.sub(r"[A-Za-z0-9_]+=\{\} ", "", d) for d in data]
        lengths = {}
        for d in data:
            for k, v in re.findall(r"([A-Za-z0-9_]+)={([^}]+)}", d):
                lengths[k] = max(lengths.get(k, 0), len(v.split(" ")))
        if lengths:
            data = [trappy.trace_parser_explode_array(d, lengths) for d in data]
        return pd.DataFrame([obj.generate_data_dict(d) for d in data])
    finally:
        trappy.unregister_dynamic_ftrace(cls)


@pytest.mark.parametrize("seed", range(6))
def test_key_value_split_equals_trappy_rules(tmp_path, seed):
    """The NumPy split of generic payloads equals trappy's per-line parse of the same lines
    (values with spaces, [ns] units, arrays of unequal length, hex, leading zeros, '=' inside
    values, duplicate keys, missing keys)."""
    rng = random.Random(seed)
    keys = ["a", "b_1", "comm", "load", "x", "runtime", "cpus"]

    def value():
        r = rng.random()
        if r < 0.3:
            return str(rng.randint(-(1 << 40), 1 << 40)) + rng.choice(["", " [ns]"])
        if r < 0.4:
            return "0x%x" % rng.getrandbits(rng.choice([8, 32, 63]))
        if r < 0.5:
            return "%08d" % rng.randint(0, 999)
        if r < 0.6:
            return "{%s}" % " ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(1, 4)))
        if r < 0.65:
            return "{}"
        if r < 0.85:
            return " ".join(tracegen.gen_word(rng, lo=1, hi=6) for _ in range(rng.randint(1, 3)))
        return rng.choice(["foo=bar", "1=2", "CPU 0/KVM", "-", "0", "00"])

    payloads = []
    for _ in range(300):
        p = " ".join(f"{rng.choice(keys)}={value()}" for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.2:
            p = "w%d: " % rng.randint(0, 3) + p
        payloads.append(p)
    lines = "".join(f"  t-{i} [001] {i // 7}.{i:06d}: myev: {p}\n" for i, p in enumerate(payloads))
    path = tmp_path / "kv.txt"
    path.write_text(lines)
    ft = trappy.FTrace(str(path), scope="custom", events=["myev"])
    got = ft.myev.data_frame.drop(columns=["__comm", "__pid", "__cpu", "__line"])
    want = _oracle(payloads, "myev")
    assert list(got.columns) == list(want.columns)
    for c in want.columns:
        g, w = got[c].tolist(), want[c].tolist()
        same = [(a == b) or (a != a and b != b) for a, b in zip(g, w)]
        assert all(same), (c, [(a, b) for a, b, s in zip(g, w, same) if not s][:5])
        assert got[c].dtype == want[c].dtype or want[c].dtype.kind in "OT", (c, got[c].dtype)


def test_marker_and_printk_lines_route_to_classes(tmp_path):
    p = tmp_path / "trace.txt"
    p.write_text(
        "  sh-1 [002] 1.000001: print: tracing_mark_write: hello world\n"
        "  sh-1 [002] 1.000002: print: tracing_mark_write: cpu_frequency: state=450000 cpu_id=5\n"
        "  sh-1 [002] 1.000003: bputs: 0xffff0000080feeb8s: my_event: my_field=foo=bar\n"
        "  sh-1 [002] 1.000004: cpu_frequency: state=600000 cpu_id=1\n")
    ft = trappy.FTrace(str(p), events=["my_event"])
    assert ft.tracing_mark_write.data_frame["string"].tolist() == ["hello world"]
    freq = ft.cpu_frequency.data_frame
    assert freq["frequency"].tolist() == [450000, 600000] and freq["cpu"].tolist() == [5, 1]
    assert ft.my_event.data_frame["my_field"].tolist() == ["foo=bar"]


def test_plotting_names_ftrace_fast_plot(tmp_path):
    with pytest.raises(NotImplementedError, match="ftrace_fast.plot"):
        trappy.LinePlot(None, None, column="x")
    with pytest.raises(NotImplementedError, match="ftrace_fast.plot"):
        trappy.plotter.ILinePlot()
    p = tmp_path / "trace.txt"
    p.write_text("  a-1 [000] 1.000001: thermal_temperature: thermal_zone=soc id=0 temp=5\n")
    with pytest.raises(NotImplementedError, match="ftrace_fast.plot"):
        trappy.FTrace(str(p)).thermal.plot_temperature()


def test_no_trace_is_ioerror(tmp_path):
    with pytest.raises(IOError, match=re.escape(str(tmp_path))):
        trappy.FTrace(str(tmp_path))
