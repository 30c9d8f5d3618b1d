"""Host and guest in one load: machines kept apart (machines.M1-M3) and the host/guest split
(guest.G1-G7), exact to the nanosecond against the simulator (tests/simguest.py), in the
multi-file report form and as two files; the HIP24 corpus pair against its single-file
reports."""

import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simguest  # noqa: E402

import ftrace_fast  # noqa: E402
from ftrace_fast import cli, guest, kvm, sched  # noqa: E402
from ftrace_fast.trace import _load  # noqa: E402
from helpers import corpus_dir, loads_checked  # noqa: E402

SEEDS = (1, 4)
GUEST_NAME = "trace-guest.dat"


@pytest.fixture(scope="module", params=SEEDS)
def pair(request, tmp_path_factory):
    return _make_pair(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def pair1(tmp_path_factory):
    """One run for the command line (its charts and page cost more than the figures)."""
    return _make_pair(SEEDS[0], tmp_path_factory)


def _make_pair(seed, tmp_path_factory):
    sim = simguest.simulate(seed=seed)
    d = tmp_path_factory.mktemp(f"pair{seed}")
    paths = {}
    for name, text in (("merged.txt", sim.merged_text()), ("host.txt", sim.host_text()),
                       ("guest.txt", sim.guest_text())):
        paths[name] = d / name
        paths[name].write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = ftrace_fast.load(paths["merged.txt"])
        two = ftrace_fast.load([paths["host.txt"], paths["guest.txt"]])
    return sim, paths, {"merged": (merged, GUEST_NAME), "two files": (two, "guest.txt")}


def _forms(pair):
    return pair[2].items()


def _split_of(sp):
    out = {"guest": 0, "steal": 0, "halted": 0, "unknown": 0, "exit": 0}
    for k, v in sp.items():
        out["exit" if k.startswith("exit:") else k] += v
    return out


# -- machines (M1-M3) ------------------------------------------------------------------------

def test_machines_are_kept_apart(pair):
    """M1: each line's machine is its prefix (or its file); CPUs, pids, events per machine."""
    sim, paths, forms = pair
    merged, _ = forms["merged"]
    two, _ = forms["two files"]
    assert list(merged.machines) == ["trace.dat", GUEST_NAME]
    assert list(two.machines) == ["host.txt", "guest.txt"]
    for t, h, g in ((merged, "trace.dat", GUEST_NAME), (two, "host.txt", "guest.txt")):
        host, gst = t.machines[h], t.machines[g]
        assert host.machine == h and gst.machine == g
        assert host.stats.events == len(sim.host) and gst.stats.events == len(sim.guest)
        assert host.cpus() == gst.cpus() == list(range(sim.nvcpu))
        assert host.span == (simguest.T0, sim.t1) and gst.span == (sim.g0, sim.g1)
        hp = set(sched.model(host).pids.tolist())
        gp = set(sched.model(gst).pids.tolist())
        assert hp == {simguest.QEMU + 1 + v for v in range(sim.nvcpu)} | {5000 + v for v in range(sim.nvcpu)}
        assert gp == set(sim.tasks)
    # M3: the merged report's line accounting per machine (the two `cpus=` headers are
    # lines of their machines)
    assert merged.machines["trace.dat"].stats.lines == len(sim.host) + 1
    assert merged.machines[GUEST_NAME].stats.lines == len(sim.guest) + 1
    # the same figures whichever form, and as the guest file alone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = ftrace_fast.load(paths["guest.txt"])
    ref = sched.task_summary(alone)
    for t, g in ((merged, GUEST_NAME), (two, "guest.txt")):
        got = sched.task_summary(t.machines[g])
        for col in ("pid", "run_ns", "wait_ns", "sleep_ns", "switches_in", "lat_max_ns"):
            assert np.array_equal(got[col], ref[col]), col


def test_one_machine_is_itself(pair):
    """M2: a trace of one machine is {name: trace}; of several, every analysis reads the
    machine with the most sched_switch lines and says so."""
    _, paths, forms = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = ftrace_fast.load(paths["guest.txt"])
    assert list(t.machines) == ["guest.txt"] and t.machines["guest.txt"] is t
    merged, _ = forms["merged"]
    # the simulated host switches its vCPU threads more often than the guest its tasks
    most = max(merged.machines.values(), key=lambda m: m.count("sched_switch"))
    assert most.count("sched_switch") > min(m.count("sched_switch") for m in merged.machines.values())
    for fn in (sched.task_summary, sched.cpu_summary, sched.task_intervals):
        assert repr(fn(merged).tolist()) == repr(fn(most).tolist())   # nan == nan here
    assert sched.model(merged).trace is most
    note = sched.caveats(merged)[0]
    assert note.startswith(f"{merged.source} holds 2 machines (trace.dat, trace-guest.dat): the "
                           f"figures are those of {most.machine}")
    # the KVM analysis reads the same machine, and says so
    assert kvm.topology(merged) is kvm.topology(most) and kvm.exits(merged) is kvm.exits(most)
    assert repr(kvm.vcpu_summary(merged).tolist()) == repr(kvm.vcpu_summary(most).tolist())
    assert note in [f["explanation"] for f in kvm.diagnose(merged) if f["kind"] == "caveat"]


def test_machine_runs_chunk_and_part_invariant(pair):
    """M1 under any chunking, and when the file is cut into parts (prefixed parts are parsed
    in sequence, so the runs stay in line order)."""
    _, paths, forms = pair
    ref = forms["merged"][0]
    for kw in ({"chunk_size": 7}, {"chunk_size": 4096}, {"part_offsets": [1000, 40000]}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = _load(paths["merged.txt"], **kw)
        assert np.array_equal(t._machine_runs, ref._machine_runs), kw
        for name, m in t.machines.items():
            r = ref.machines[name]
            assert set(m.events) == set(r.events)
            for ev in m.events:
                assert np.array_equal(m.events[ev], r.events[ev]), (kw, name, ev)


# -- the correlation (G2-G6) --------------------------------------------------------------------

def test_mapping(pair):
    """G2: guest CPU v -> the host thread with vCPU index v, all guest lines in guest mode."""
    sim, _, forms = pair
    for form, (t, g) in forms.items():
        m = guest.correlate(t, guest=g).mapping
        assert m["guest_cpu"].tolist() == list(range(sim.nvcpu))
        assert m["host_pid"].tolist() == [simguest.QEMU + 1 + v for v in range(sim.nvcpu)]
        assert not m["ambiguous"].any() and (m["covered_pct"] == 100.0).all(), form


def test_slices_exact(pair):
    """G3, G4: every guest running slice split to the nanosecond, in both forms."""
    sim, _, forms = pair
    truth = sorted(sim.truth_slices(), key=lambda x: (x[2], x[0]))
    cats = _split_of({})
    for _, (t, g) in forms.items():
        ss = guest.correlate(t, guest=g).slice_split()
        assert len(ss) == len(truth)
        for r, (p, v, lo, hi, sp) in zip(ss, truth):
            assert (int(r["pid"]), int(r["cpu"]), int(r["start_ns"]), int(r["end_ns"])) == (p, v, lo, hi)
            exp = _split_of(sp)
            got = {k: int(r[k + "_ns"]) for k in exp}
            assert got == exp, (p, v, lo, hi)
            assert sum(got.values()) == int(r["run_ns"])
        for k in cats:
            cats[k] += int(ss[k + "_ns"].sum())
    # the run has every kind of host time under guest tasks, halts excepted (a vCPU halts only
    # when its guest idles)
    assert all(cats[k] > 0 for k in ("guest", "steal", "exit", "unknown")), cats
    assert cats["halted"] == 0


def test_tasks_and_exit_reasons_exact(pair):
    """G5: per (task, guest CPU) sums, the exit time by reason and the top reason."""
    sim, _, forms = pair
    want, reasons = {}, {}
    for p, v, lo, hi, sp in sim.truth_slices():
        w = want.setdefault((p, v), {"run": 0, **_split_of({})})
        w["run"] += hi - lo
        for k, x in _split_of(sp).items():
            w[k] += x
        for k, x in sp.items():
            if k.startswith("exit:"):
                reasons[(p, v, k[5:])] = reasons.get((p, v, k[5:]), 0) + x
    for _, (t, g) in forms.items():
        c = guest.correlate(t, guest=g)
        ts = c.task_split()
        assert {(int(r["pid"]), int(r["cpu"])) for r in ts} == set(want)
        for r in ts:
            w = want[(int(r["pid"]), int(r["cpu"]))]
            assert int(r["run_ns"]) == w["run"]
            for k in ("guest", "steal", "halted", "unknown", "exit"):
                assert int(r[k + "_ns"]) == w[k], k
            assert int(r["lost_ns"]) == w["steal"] + w["exit"]
            assert int(r["host_pid"]) == simguest.QEMU + 1 + int(r["cpu"])
            mine = {rs: x for (p, v, rs), x in reasons.items() if (p, v) == (r["pid"], r["cpu"])}
            best = min(mine.items(), key=lambda kv: (-kv[1], kv[0]))
            assert (r["top_exit"], int(r["top_exit_ns"])) == best
        ex = c.exit_split()
        assert {(int(r["pid"]), int(r["cpu"]), r["reason"]): int(r["exit_ns"]) for r in ex} == reasons


def test_latency_split_exact(pair):
    """G6: each guest wakeup sample = guest side + host wait + host halted + host exit +
    unknown, exact; remote wakeups put host halt time into samples."""
    sim, _, forms = pair
    truth = sorted(sim.truth_latency(), key=lambda x: (x[2], x[0]))
    assert sim.remote_wakeups > 0
    for _, (t, g) in forms.items():
        ls = np.sort(guest.correlate(t, guest=g).latency_split(), order=["ts", "pid"])
        assert len(ls) == len(truth)
        tot = {"halted": 0, "steal": 0, "exit": 0, "guest": 0}
        for r, (p, v, w, lat, sp) in zip(ls, truth):
            s = _split_of(sp)
            assert (int(r["pid"]), int(r["cpu"]), int(r["ts"]), int(r["latency_ns"])) == (p, v, w, lat)
            assert (int(r["guest_side_ns"]), int(r["host_wait_ns"]), int(r["host_halted_ns"]),
                    int(r["host_exit_ns"]), int(r["unknown_ns"])) == \
                (s["guest"], s["steal"], s["halted"], s["exit"], s["unknown"])
            assert int(r["host_side_ns"]) == s["steal"] + s["halted"] + s["exit"]
            for k in tot:
                tot[k] += s[k]
        assert all(v > 0 for v in tot.values()), tot


def test_summary_and_finding(pair):
    """G6 per task, G7: a finding for each (task, vCPU) past the thresholds, with the figures."""
    sim, _, forms = pair
    t, g = forms["merged"]
    c = guest.correlate(t, guest=g)
    lsum = c.latency_summary()
    ls = c.latency_split()
    for r in lsum:
        k = ls["pid"] == r["pid"]
        assert int(r["samples"]) == int(k.sum())
        assert int(r["host_side_ns"]) == int(ls["host_side_ns"][k].sum())
        assert int(r["max_ns"]) == int(ls["latency_ns"][k].max())
    ts = c.task_split()
    expect = {(int(r["pid"]), int(r["cpu"])) for r in ts
              if r["lost_ns"] >= guest.GUEST_LOSS_MS * 1e6 and r["lost_pct"] >= guest.GUEST_LOSS_PCT}
    found = guest.findings(t)
    assert {(f["subject"]["pid"], f["subject"]["cpu"]) for f in found} == expect and expect
    f = found[0]
    r = ts[(ts["pid"] == f["subject"]["pid"]) & (ts["cpu"] == f["subject"]["cpu"])][0]
    assert f["evidence"]["steal_ns"] == int(r["steal_ns"]) and f["evidence"]["exit_ns"] == int(r["exit_ns"])
    assert f["explanation"].startswith(f"guest task {r['comm']} (pid {int(r['pid'])}, {GUEST_NAME}) "
                                       f"on vCPU {int(r['cpu'])} lost ")
    assert f"ms to host steal, {int(r['exit_ns']) / 1e6:.3f} ms to exits (mostly {r['top_exit']})" \
        in f["explanation"]


def test_mapping_choice_and_override(pair, tmp_path):
    """G2: with two threads of vCPU index 0 (two VMs), the one whose guest mode covers the guest's
    lines; vcpu_map overrides; a guest CPU without a thread is ambiguous and all unknown."""
    sim, paths, _ = pair
    other = simguest.simulate(seed=99)
    extra = [(ts, seq, sim.nvcpu, 6001 if pid == simguest.QEMU + 1 else pid, comm, ev,
              pl.replace("next_pid=4001", "next_pid=6001").replace("prev_pid=4001", "prev_pid=6001"))
             for ts, seq, cpu, pid, comm, ev, pl in other.host if cpu == 0 and pid != 5000]
    host = tmp_path / "host2.txt"
    host.write_text("".join(simguest.Sim._line(r) + "\n" for r in sorted(sim.host + extra)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = ftrace_fast.load([host, paths["guest.txt"]])
    m = guest.correlate(t, guest="guest.txt").mapping
    assert int(m["host_pid"][0]) == simguest.QEMU + 1 and int(m["candidates"][0]) == 2
    assert m["covered_pct"][0] == 100.0 and not m["ambiguous"][0]
    g = guest.correlate(t, guest="guest.txt", vcpu_map={0: 6001})
    assert int(g.mapping["host_pid"][0]) == 6001 and g.mapping["how"][0] == "given"
    # no host thread for guest CPU 1
    only0 = tmp_path / "host0.txt"
    only0.write_text("".join(simguest.Sim._line(r) + "\n" for r in sorted(sim.host) if r[2] == 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = ftrace_fast.load([only0, paths["guest.txt"]])
    c = guest.correlate(t0, guest="guest.txt")
    assert c.mapping["ambiguous"].tolist() == [False, True] and c.mapping["host_pid"][1] == -1
    ts = c.task_split()
    on1 = ts[ts["cpu"] == 1]
    assert len(on1) and (on1["unknown_ns"] == on1["run_ns"]).all()


def test_refusals(pair):
    """G1: one machine is no pair; no host among the machines is named."""
    _, paths, forms = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = ftrace_fast.load(paths["guest.txt"])
        gg = ftrace_fast.load([paths["guest.txt"], paths["guest.txt"]])
    with pytest.raises(ValueError, match="one machine"):
        guest.correlate(g)
    with pytest.raises(ValueError, match="no machine has vCPU threads"):
        guest.correlate(gg)


# -- the command line ---------------------------------------------------------------------------

def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _json(capsys, *argv):
    """``ftfast ARGV --format json``, exit 0, its document checked against docs/schema."""
    rc, out, err = _run(capsys, *argv, "--format", "json")
    assert rc == 0, err
    return loads_checked(str(argv[0]), out)


def test_cli(pair1, capsys, tmp_path):
    sim, paths, forms = pair1
    merged, host, gfile = paths["merged.txt"], paths["host.txt"], paths["guest.txt"]
    doc = _json(capsys, "info", merged)
    assert [m["machine"] for m in doc["machines"]] == ["trace.dat", GUEST_NAME]
    assert doc["machines"][1]["span"]["first"] == sim.g0 and doc["machines"][0]["ncpus"] == sim.nvcpu
    rc, out, _ = _run(capsys, "info", merged)
    assert "trace-guest.dat: 2 cpus (0-1)" in out
    # stats of every machine, and the guest split, in one document
    doc = _json(capsys, "stats", merged)
    assert list(doc["machines"]) == ["trace.dat", GUEST_NAME]
    assert doc["machines"][GUEST_NAME]["source"]["machine"] == GUEST_NAME
    tasks = doc["guest"][GUEST_NAME]["tasks"]
    ref = guest.correlate(forms["merged"][0], guest=GUEST_NAME).task_split()
    assert [(r["pid"], r["steal_ns"], r["exit_ns"]) for r in tasks] == \
        [(int(r["pid"]), int(r["steal_ns"]), int(r["exit_ns"])) for r in ref]
    # two files give the same split
    two = _json(capsys, "stats", "--guest", host, gfile)["guest"]["guest.txt"]["tasks"]
    assert [(r["pid"], r["steal_ns"], r["run_ns"]) for r in two] == \
        [(r["pid"], r["steal_ns"], r["run_ns"]) for r in tasks]
    # --machine picks one: the same as the file alone
    one = _json(capsys, "stats", merged, "--task-stats", "--machine", GUEST_NAME)
    alone = _json(capsys, "stats", gfile, "--task-stats")
    assert one["source"]["machine"] == GUEST_NAME and "machine" not in alone["source"]
    assert one["tasks"] == alone["tasks"]
    rc, out, _ = _run(capsys, "stats", merged)
    assert "== machine trace.dat ==" in out and "by what the host did" in out
    # refusals: a one-machine command on two, an unknown machine, --guest on one machine
    rc, _, err = _run(capsys, "plot", merged, "--kind", "cpu-util", "-o", tmp_path / "x.png")
    assert rc == 2 and "holds 2 machines (trace.dat, trace-guest.dat): pick one with --machine" in err
    rc, _, err = _run(capsys, "stats", merged, "--machine", "nope")
    assert rc == 2 and "no machine 'nope'" in err
    rc, _, err = _run(capsys, "stats", "--guest", gfile)
    assert rc == 3 and "one machine" in err
    # filter copies every machine's lines as before; export reads one machine
    rc, _, _ = _run(capsys, "filter", merged, "--pid", "100", "-o", tmp_path / "f.txt", "-q")
    kept = (tmp_path / "f.txt").read_text().splitlines()
    assert rc == 0 and kept[0].endswith("trace.dat: cpus=2") and len(kept) > 10
    rc, _, err = _run(capsys, "filter", merged, "--machine", "trace.dat", "-o", tmp_path / "g.txt")
    assert rc == 2 and "--machine" in err
    rc, _, _ = _run(capsys, "export", merged, "--perfetto", tmp_path / "p.json", "-q")
    assert rc == 2
    rc, _, _ = _run(capsys, "export", merged, "--machine", GUEST_NAME, "--perfetto", tmp_path / "p.json", "-q")
    assert rc == 0
    # diagnose, report, timeline
    found = _json(capsys, "diagnose", merged)["findings"]
    assert any(f["kind"] == "guest_host_loss" and f["subject"]["machine"] == GUEST_NAME
                           for f in found)
    rc, _, _ = _run(capsys, "report", merged, "-o", tmp_path / "r.html", "-q")
    page = (tmp_path / "r.html").read_text()
    assert rc == 0 and 'id="guest"' in page and "guest-timeline" in page
    rc, _, _ = _run(capsys, "plot", merged, "--kind", "timeline", "-o", tmp_path / "t.png", "-q")
    assert rc == 0 and (tmp_path / "t.png").stat().st_size > 1000


def test_cli_json_documents(pair1, capsys):
    """The other JSON documents of several machines, each checked against docs/schema: one
    machine picked (source.machine in info, stats and diagnose alike), section flags (no guest
    split), the guest split restricted, filtered findings."""
    _, paths, forms = pair1
    merged = paths["merged.txt"]
    t, g = forms["merged"]
    for name in ("trace.dat", GUEST_NAME):
        docs = [_json(capsys, cmd, merged, "--machine", name) for cmd in ("info", "stats", "diagnose")]
        assert [d["source"]["machine"] for d in docs] == [name] * 3
        assert "machines" not in docs[0] and docs[0]["cpus"] == t.machines[name].cpus()
    assert all(f["kind"] == "caveat" for f in docs[2]["findings"])    # the guest alone: no vCPU threads
    doc = _json(capsys, "stats", merged, "--kvm", "--latency")
    assert "guest" not in doc and "errors" not in doc and doc["source"]["time_unit"] == "ns"
    assert doc["machines"]["trace.dat"]["kvm"]["vcpus"] and doc["machines"][GUEST_NAME]["latency"]["count"]
    a, b = simguest.T0 + 5_000_000, simguest.T0 + 17_000_000
    doc = _json(capsys, "stats", "--guest", merged, "--start", f"{a}ns", "--end", f"{b}ns", "--pid", "100,110")
    assert doc["filters"]["pids"] == [100, 110] and doc["source"]["clock"] == "ns"
    c = guest.correlate(t, guest=g)
    want = c.task_split(start=f"{a}ns", end=f"{b}ns", pids=[100, 110])
    got = doc["guest"][GUEST_NAME]
    assert [(r["pid"], r["cpu"], r["run_ns"], r["lost_ns"]) for r in got["tasks"]] == \
        [(int(r["pid"]), int(r["cpu"]), int(r["run_ns"]), int(r["lost_ns"])) for r in want]
    assert {r["pid"] for r in got["latency"]} == {100, 110} and got["mapping"][1]["host_pid"] == 4002
    doc = _json(capsys, "diagnose", merged, "--pid", "100", "--steal-pct", "1")
    assert {(f["kind"], f["subject"]["machine"]) for f in doc["findings"] if f["kind"] != "caveat"} == \
        {("guest_host_loss", GUEST_NAME)}


def test_timeline_rows(pair1):
    """The timeline: each guest CPU's tasks right above its vCPU thread's host row, whose
    columns show G3's states."""
    from ftrace_fast import plot
    sim, _, forms = pair1
    t, g = forms["merged"]
    p = plot.guest_timeline(t, guest=g, width_px=600)
    d = p.data
    assert d["kinds"] == ["guest", "guest", "host", "guest", "guest", "host"]
    assert d["labels"][2] == "host pid 4001: vCPU 0" and d["labels"][0].endswith("CPU 0")
    c = guest.correlate(t, guest=g)
    lo, hi, code = c.states.segments(4001)
    e = d["column_edges"]
    # a column wholly inside one segment shows that segment's state
    i = np.searchsorted(lo, e[:-1], side="right") - 1
    whole = hi[i] >= e[1:]
    assert whole.sum() > 50
    assert np.array_equal(d["states"][2][whole], np.minimum(code[i], 4)[whole])


# -- the corpus pair ------------------------------------------------------------------------------

CORPUS = corpus_dir()


@pytest.mark.skipif(CORPUS is None, reason="no ../shared/corpus")
def test_corpus_pair():
    """The HIP24 pair: two machines whose events match their single-file reports exactly, and
    guest CPU 0 on host thread 483882 (the host's GUEST option in its trace.dat)."""
    d = CORPUS / "tracecmd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = ftrace_fast.load(d / "hip24-kvm-host-guest-merged.txt.gz")
        host = ftrace_fast.load(d / "hip24-kvm-host-20cpu-entry-exit.txt")
        gst = ftrace_fast.load(d / "hip24-kvm-guest-salamander4-xenomai-1cpu.txt.gz")
    assert list(t.machines) == ["trace.dat", "trace-Salamander4.dat"]
    for name, single in (("trace.dat", host), ("trace-Salamander4.dat", gst)):
        m = t.machines[name]
        assert m.stats.lines == single.stats.lines and m.stats.events == single.stats.events
        assert {k: len(v) for k, v in m.events.items()} == {k: len(v) for k, v in single.events.items()}
        assert m.cpus() == single.cpus()
        assert m.span == single.span
    hm, gm = t.machines["trace.dat"], t.machines["trace-Salamander4.dat"]
    assert gm.count("sched_switch") == gst.count("sched_switch") == 3835
    assert hm.count("kvm_entry") == host.count("kvm_entry") == 5861
    assert hm.count("kvm_exit") == host.count("kvm_exit") == 5860
    assert hm.count("sched_switch") == 0 and gm.cpus() == [0] and len(hm.cpus()) == 15
    assert np.array_equal(sched.task_summary(gm)["run_ns"], sched.task_summary(gst)["run_ns"])
    c = guest.correlate(t, guest="trace-Salamander4.dat")
    assert int(c.mapping["host_pid"][0]) == 483882 and int(c.mapping["candidates"][0]) == 2
    ts = c.task_split()
    assert ((ts["guest_ns"] + ts["exit_ns"] + ts["steal_ns"] + ts["halted_ns"] + ts["unknown_ns"])
            == ts["run_ns"]).all()
    assert (ts["steal_ns"] == 0).all()      # G3: no host sched_switch, no steal to see


@pytest.mark.skipif(CORPUS is None, reason="no ../shared/corpus")
def test_corpus_dat_pair_equals_its_merged_report():
    """load([host.dat, guest.dat]): two machines, the guest's TIME_SHIFT applied, every time
    stamp the merged report's to its microsecond, the same vCPU mapping, and a split within
    the report's rounding (each time stamp of the text is within 500 ns of the file's)."""
    d = CORPUS / "tracecmd"
    pair = d / "dat" / "hip24-kvm-host-guest-pair"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ftrace_fast.load([pair / "trace.dat", pair / "trace-Salamander4.dat"])
        b = ftrace_fast.load(d / "hip24-kvm-host-guest-merged.txt.gz")
    assert list(a.machines) == list(b.machines) == ["trace.dat", "trace-Salamander4.dat"]
    assert a.machines["trace-Salamander4.dat"].dat.guest_synced
    for name in a.machines:
        ma, mb = a.machines[name], b.machines[name]
        assert ma.cpus() == mb.cpus()
        for ev in ("sched_switch", "kvm_entry", "kvm_exit"):
            if ev in mb.events:
                x, y = ma.events[ev]["ts"], mb.events[ev]["ts"]
                assert len(x) == len(y) and np.array_equal((x + 500) // 1000, y // 1000), (name, ev)
    ca = guest.correlate(a, guest="trace-Salamander4.dat")
    cb = guest.correlate(b, guest="trace-Salamander4.dat")
    assert ca.mapping["host_pid"].tolist() == cb.mapping["host_pid"].tolist() == [483882]
    ta, tb = (np.sort(c.task_split(), order="pid") for c in (ca, cb))
    assert ta["pid"].tolist() == tb["pid"].tolist() and (ta["slices"] == tb["slices"]).all()
    states = ("guest_ns", "exit_ns", "steal_ns", "halted_ns", "unknown_ns")
    for t in (ta, tb):
        assert (sum(t[f] for f in states) == t["run_ns"]).all()
    # a slice has two ends, each within 500 ns; a state boundary inside it is a host event
    assert (np.abs(ta["run_ns"] - tb["run_ns"]) <= 1000 * ta["slices"]).all()
    host_events = a.machines["trace.dat"].count("kvm_entry") + a.machines["trace.dat"].count("kvm_exit")
    for f in states:
        assert abs(int(ta[f].sum()) - int(tb[f].sum())) <= 1000 * (int(ta["slices"].sum()) + host_events), f


@pytest.mark.skipif(CORPUS is None, reason="no ../shared/corpus")
def test_corpus_pair_json(capsys):
    """The HIP24 pair's documents follow docs/schema; the host has no sched_switch, so its
    task table is an error of the several-machine document, not a missing machine."""
    f = CORPUS / "tracecmd" / "hip24-kvm-host-guest-merged.txt.gz"
    info = _json(capsys, "info", f)
    assert [m["ncpus"] for m in info["machines"]] == [15, 1]
    doc = _json(capsys, "stats", f, "--task-stats")
    assert list(doc["machines"]) == ["trace-Salamander4.dat"] and "no sched_switch" in doc["errors"]["trace.dat"]
    assert _json(capsys, "stats", f)["guest"]["trace-Salamander4.dat"]["mapping"][0]["host_pid"] == 483882
    assert _json(capsys, "diagnose", f)["source"]["machines"] == ["trace.dat", "trace-Salamander4.dat"]


def test_restricted_split_exact(pair):
    """G5 with D10's restrictions: start/end clip the guest slices, pids keep tasks; the split
    of what is left is still exact."""
    sim, _, forms = pair
    t, g = forms["merged"]
    c = guest.correlate(t, guest=g)
    a, b = simguest.T0 + 5_000_000, simguest.T0 + 17_000_000
    want = {}
    for p, v, lo, hi, _ in sim.truth_slices():
        x, y = max(lo, a), min(hi, b)
        if y <= x:
            continue
        w = want.setdefault((p, v), _split_of({}))
        for k, ns in _split_of(sim.state_split(v, x, y)).items():
            w[k] += ns
    ts = c.task_split(start=f"{a}ns", end=f"{b}ns")
    got = {(int(r["pid"]), int(r["cpu"])): {k: int(r[k + "_ns"]) for k in _split_of({})}
           for r in ts if r["run_ns"] > 0}
    assert got == want
    one = c.task_split(pids=[100])
    assert set(one["pid"].tolist()) == {100}
