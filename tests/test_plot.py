"""ftrace_fast.plot: every chart is checked against the analysis it draws (and the timeline
against the simulator's exact truth, tests/simsched.py), every kind writes a real image, and bad
options fail with one clear line."""

import io
import os
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import cli, kvm, plot, sched
from helpers import DATA

sys.path.insert(0, os.path.dirname(__file__))
import simkvm  # noqa: E402
import simsched  # noqa: E402
from helpers import corpus_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMP2 = DATA / "kvm_smp2_small.txt.gz"
SMP4 = DATA / "kvm_smp4_contended_small.txt.gz"
NO_SWITCH = DATA / "public" / "trappy-tests-tracecmd-sched-stat.txt"
STATE = {simsched.RUNNING: sched.RUNNING, simsched.RUNNABLE: sched.RUNNABLE,
         simsched.SLEEP_S: sched.SLEEP_S, simsched.SLEEP_D: sched.SLEEP_D,
         simsched.SLEEP_OTHER: sched.SLEEP_OTHER, simsched.DEAD: sched.DEAD,
         simsched.UNKNOWN: sched.UNKNOWN}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(io.BytesIO(data) if isinstance(data, bytes) else data, warn=False)


@pytest.fixture(scope="module")
def sims():
    """Damaged simulations (lost events, missing switches out of idle) in three clocks."""
    out = []
    for seed, variant in ((1, "kernel5"), (2, "kernel_ns"), (3, "kernel_counter")):
        sim = simsched.simulate(seed, variant, lost=True, missing_idle=True)
        out.append((sim, _load(sim.data)))
    return out


@pytest.fixture(scope="module")
def smp4():
    return _load(str(SMP4))


@pytest.fixture(scope="module")
def kvm_sim():
    sim = simkvm.simulate(3, "kernel5_tgid")
    return sim, _load(sim.data)


# -- cpu-util -------------------------------------------------------------------------------------

def test_cpu_util_heatmap_is_the_utilization(sims):
    for sim, t in sims:
        p = plot.cpu_util(t, bins=50)
        edges, busy = sched.cpu_utilization(t, p.data["bin_ns"])
        pct = 100.0 * busy / np.diff(edges)
        drawn = np.asarray(p.figure.axes[1].images[0].get_array())
        assert drawn.shape == (sim.ncpu, len(edges) - 1)
        np.testing.assert_allclose(drawn, pct, rtol=1e-12)
        # and the simulator's own busy time per CPU, bin by bin, to the ns
        w0, w1 = sim.truth.window
        for ci, c in enumerate(p.data["cpus"].tolist()):
            truth = [sum(max(0, min(b, e1) - max(a, e0)) for a, b, kind, _ in sim.truth.cpus[c].intervals
                         if kind == simsched.BUSY) for e0, e1 in zip(edges[:-1].tolist(), edges[1:].tolist())]
            assert p.data["busy_ns"][ci].tolist() == truth, (sim.seed, c)
        overall = busy.sum(0) / (sim.ncpu * np.diff(edges)) * 100
        line = p.figure.axes[0].lines[0]
        np.testing.assert_allclose(np.asarray(line.get_ydata())[:-1], overall, rtol=1e-12)
        assert edges[0] == w0 and edges[-1] == w1


def test_cpu_util_restrictions(sims):
    sim, t = sims[0]
    w0, w1 = sim.truth.window
    mid = (w0 + w1) // 2
    p = plot.cpu_util(t, bin_ns=1_000_000, start=mid, cpus=[1])
    assert p.data["cpus"].tolist() == [1]
    assert p.data["edges"][0] == mid and p.data["edges"][1] - mid == 1_000_000
    edges, busy = sched.cpu_utilization(t, 1_000_000, start=mid)
    assert np.array_equal(p.data["busy_ns"], busy[1:2])


# -- timeline -------------------------------------------------------------------------------------

def test_timeline_pixels_match_the_truth(sims):
    """A pixel column that lies inside one true interval of a task shows that interval's state,
    and, inside a RUNNING one, its CPU; a mixed column shows the state with the most time."""
    for sim, t in sims:
        p = plot.timeline(t, comm="", top=0, width_px=300)     # every task
        pids = p.data["pids"].tolist()
        ce = p.data["column_edges"]
        states, cpus = p.data["states"], p.data["cpus"]
        assert set(pids) == set(sim.truth.tasks)
        checked = 0
        for row, pid in enumerate(pids):
            ivs = sim.truth.tasks[pid].intervals
            starts = np.array([a for a, _, _, _ in ivs])
            for col in range(0, len(ce) - 1, 7):
                c0, c1 = ce[col], ce[col + 1]
                i = np.searchsorted(starts, c0, side="right") - 1
                if i < 0:
                    continue
                a, b, st, cpu = ivs[i]
                if a <= c0 and c1 <= b:
                    assert states[row, col] == STATE[st], (sim.seed, pid, col)
                    if st == simsched.RUNNING:
                        assert cpus[row, col] == cpu
                    checked += 1
                else:
                    # mixed column: the largest share wins (compare where it is clear)
                    share = {}
                    for a, b, st, _ in ivs:
                        d = min(b, c1) - max(a, c0)
                        if d > 0:
                            share[STATE[st]] = share.get(STATE[st], 0) + d
                    top = sorted(share.values(), reverse=True)
                    if len(top) == 1 or top[0] > top[1] * 1.001:
                        assert states[row, col] == max(share, key=share.get), (sim.seed, pid, col)
                        checked += 1
        assert checked > 100


def test_timeline_image_is_drawn_from_the_raster(smp4):
    p = plot.timeline(smp4)
    img = np.asarray(p.figure.axes[0].images[0].get_array())
    assert np.array_equal(img, p.data["image"])
    # the state band of each row carries the state colours
    from matplotlib.colors import to_rgba
    per = plot._BAND + plot._STRIP + plot._GAP
    states = p.data["states"]
    for s, (_, color) in plot.STATE_STYLE.items():
        where = states == s
        if where.any():
            rgba = np.round(np.array(to_rgba(color)) * 255)
            assert (img[0::per][where] == rgba).all()
    assert (img[0::per][states == -1][:, 3] == 0).all()
    # default selection: the vCPU threads
    assert p.data["labels"] == [f"CPU {i}/KVM ({p.data['pids'][i]})" for i in range(4)]
    assert p.data["intervals"] > 1000


def test_timeline_accumulation_is_exact():
    """The pixel-grid accumulation against a direct sum, on random intervals with edges inside,
    on and across column edges."""
    rng = np.random.default_rng(5)
    n, width, lo, hi = 4000, 37, 1000, 1000 + 37 * 1000
    a = rng.integers(lo - 500, hi, n)
    b = a + rng.choice([0, 1, 999, 1000, 1001, 5000, 20000], n)
    row = rng.integers(0, 3, n)
    cls = rng.integers(0, 4, n)
    acc = plot._accumulate(row, cls, a, b, lo, hi, 3, 4, width)
    want = np.zeros((3, 4, width))
    for r, c, x, y in zip(row, cls, a, b):
        for j in range(width):
            e0, e1 = lo + j * 1000, lo + (j + 1) * 1000
            want[r, c, j] += max(0, min(y, e1) - max(x, e0)) / 1000
    np.testing.assert_allclose(acc, want, atol=1e-9)


def test_timeline_selection(smp4):
    m = sched.model(smp4)
    s = sched.task_summary(smp4)
    # --top: the busiest; no vCPU default once a task filter is given
    p = plot.timeline(smp4, comm="KVM|worker", top=3)
    busiest = s[np.array(["KVM" in c or "worker" in c for c in s["comm"]])]
    busiest = set(busiest[np.argsort(-busiest["run_ns"], kind="stable")][:3]["pid"].tolist())
    assert set(p.data["pids"].tolist()) == busiest
    assert any("showing the 3 busiest" in n for n in p.notes)
    p = plot.timeline(smp4, pids=[int(m.pids[0])], top=0)
    assert p.data["pids"].tolist() == [int(m.pids[0])]
    p = plot.timeline(smp4, comm="no such task")
    assert p.data["states"].shape[0] == 0


# -- latency --------------------------------------------------------------------------------------

def test_latency_histogram_and_cdf(smp4):
    p = plot.latency(smp4, top=3)
    lat = sched.wakeup_latencies(smp4)["latency_ns"]
    assert sum(len(s) for s in p.data["samples"]) == len(lat)
    assert p.data["groups"][0] == "CPU N/KVM"
    vcpu = sched.wakeup_latencies(smp4, comm=r"^CPU \d+/KVM$")["latency_ns"]
    assert np.array_equal(p.data["samples"][0], np.sort(vcpu))
    assert p.data["groups"][-1].startswith("other (")
    ax_h, ax_c = p.figure.axes[:2]
    edges = p.data["bin_edges"]
    for stairs, s in zip(ax_h.patches, p.data["samples"]):
        want = np.histogram(np.maximum(s, edges[0]), bins=edges)[0]
        assert np.array_equal(stairs.get_data().values, want)
    lines = ax_c.get_lines()
    assert len(lines) == len(p.data["groups"]) + 1
    for ln, s in zip(lines, p.data["samples"]):
        x, y = np.asarray(ln.get_xdata())[1:] * 1e3, np.asarray(ln.get_ydata())[1:]
        assert y[-1] == 1.0 and np.all(np.diff(y) > 0)
        # every point drawn: the fraction of samples at or below it
        want = np.array([(s <= xi + 0.5).mean() for xi in np.maximum(x, edges[0])])
        assert np.array_equal(y, want)
        assert len(x) == len(np.unique(s))
    # every value falls inside a bin, none between the values the clock can show (µs here)
    assert np.all(np.diff(edges) >= 1000) and np.all((edges + 500) % 1000 == 0)
    assert ax_h.get_xscale() == "log" and ax_c.get_xscale() == "log"
    q = plot.latency(smp4, group="task", top=0)
    assert len(q.data["groups"]) == len(np.unique(sched.wakeup_latencies(smp4)["pid"]))
    # every grouping against a key made sample by sample
    m = sched.model(smp4)
    w = sched.wakeup_latencies(smp4)
    ti = m.task_index(w["pid"])
    keys = {"comm": [plot.task_group(m.comm[i]) for i in ti],
            "task": [f"{m.comm[i]} ({m.pids[i]})" for i in ti],
            "process": [f"tgid {m.tgid[i] if m.tgid[i] >= 0 else m.pids[i]}" for i in ti],
            "all": ["all tasks"] * len(ti)}
    for group, key in keys.items():
        want = {}
        for k, x in zip(key, w["latency_ns"].tolist()):
            want.setdefault(k, []).append(x)
        r = plot.latency(smp4, group=group, top=0)
        assert {g: s.tolist() for g, s in zip(r.data["groups"], r.data["samples"])} == \
            {k: sorted(x) for k, x in want.items()}, group
        counts = [len(s) for s in r.data["samples"]]
        assert counts == sorted(counts, reverse=True)
    with pytest.raises(ValueError, match="group must be"):
        plot.latency(smp4, group="bogus")


def test_task_group():
    assert plot.task_group("CPU 12/KVM") == "CPU N/KVM"
    assert plot.task_group("kworker/u8:0") == "kworker/uN:N"
    assert plot.task_group("qemu-system-x86") == "qemu-system-x86"


# -- switches / wakeups ---------------------------------------------------------------------------

def test_rate_labels_name_a_task_by_its_latest_line_in_time():
    sw = ("{c}-9 [000] .... {t}: sched_switch: prev_comm={c} prev_pid=9 prev_prio=120 "
          "prev_state=S ==> next_comm={n} next_pid={p} next_prio=120\n")
    text = "".join(sw.format(c="x", t=t, n=n, p=p) for t, n, p in
                   (("1.000003", "late", 7), ("1.000001", "early", 7), ("1.000002", "mid", 7),
                    ("1.000004", "y", 8)))
    t = ftrace_fast.load(io.BytesIO(text.encode()), warn=False)
    p = plot.switches(t, top=0)
    assert p.data["labels"] == ["late (7)", "y (8)"]
    t2 = ftrace_fast.load(io.BytesIO(text.replace("1.000003", "1.0000005").encode()), warn=False)
    assert plot.switches(t2, top=0).data["labels"] == ["mid (7)", "y (8)"]


def test_switch_and_wakeup_rates_count_the_lines(smp4):
    sw = smp4.events["sched_switch"]
    p = plot.switches(smp4, top=3)
    counts = p.data["counts"]
    nxt = sw["next_pid"][sw["next_pid"] > 0]
    assert counts.sum() == len(nxt)
    u, n = np.unique(nxt, return_counts=True)
    top3 = u[np.lexsort((u, -n))][:3]
    assert [int(lab.rsplit("(", 1)[1][:-1]) for lab in p.data["labels"]] == top3.tolist()
    for i, pid in enumerate(top3.tolist()):
        assert counts[i].sum() == (nxt == pid).sum()
        # the name shown: the comm of the pid's latest line
        last = sw[sw["next_pid"] == pid][-1]
        assert p.data["labels"][i] == f"{smp4.comms[last['next_comm']]} ({pid})"
    # the bins: every line in the bin its time stamp falls in
    e = p.data["edges"]
    pid0 = top3[0]
    h = np.histogram(sw["ts"][sw["next_pid"] == pid0], bins=e)[0]
    assert np.array_equal(counts[0], h)
    w = smp4.events["sched_waking"]
    q = plot.wakeups(smp4, cpus=[1])
    assert q.data["event"] == "sched_waking"
    assert q.data["counts"].sum() == ((w["cpu"] == 1) & (w["task_pid"] > 0)).sum()
    r = plot.wakeups(smp4, source="wakeup", comm="KVM")
    wk = smp4.events["sched_wakeup"]
    kvm = np.array(["KVM" in smp4.comms[c] for c in wk["task_comm"]])
    assert r.data["counts"].sum() == kvm.sum()


# -- kvm-exits -------------------------------------------------------------------------------------

def _reason_names(t, x, k):
    return np.array([t.symbols[r] for r in x.x_reason[k].tolist()], dtype=object)


def test_kvm_exits_counts_and_handling_are_the_simulators(kvm_sim):
    """Every exit of the simulation (K6) is drawn in the bin of its kvm_exit line under its
    reason, and the handling-time distribution of each reason is its handled exits' times."""
    for sim, t in (kvm_sim, (lambda s: (s, _load(s.data)))(simkvm.simulate(7, "kernel5", svm=True))):
        p = plot.kvm_exits(t, top=0)
        truth = {}
        hand = {}
        swo = {}
        for v in sim.kvm.vcpus.values():
            for r, n in v.exits.items():
                truth[r] = truth.get(r, 0) + n
            for r, xs in v.handled.items():
                hand.setdefault(r, []).extend(xs)
            for r, n in v.switched_out.items():
                swo[r] = swo.get(r, 0) + n
        d = p.data
        assert not any(r.startswith("other (") for r in d["reasons"])
        assert dict(zip(d["reasons"], d["counts"].sum(axis=1).tolist())) == truth
        assert dict(zip(d["reasons"], d["exits"])) == truth
        assert d["counts"][-1].sum() == 0                 # nothing pooled with top=0
        for r, s in zip(d["reasons"], d["handling"]):
            assert s.tolist() == sorted(hand.get(r, [])), r
        assert {r: n for r, n in zip(d["reasons"], d["switched_out"]) if n} == \
            {r: n for r, n in swo.items() if n}
        # ordered by count, the histogram is of the samples drawn
        assert d["exits"] == sorted(d["exits"], reverse=True)
        for s, h in zip(d["handling"], d["hist"]):
            assert np.array_equal(h, np.histogram(np.maximum(s, d["bin_edges"][0]),
                                                  bins=d["bin_edges"])[0])


def test_kvm_exits_bins_and_filters(kvm_sim):
    sim, t = kvm_sim
    x = kvm.exits(t)
    p = plot.kvm_exits(t, top=3, bin_ns=2_000_000)
    e = p.data["edges"]
    assert e[1] - e[0] == 2_000_000 and e[0] == t.span[0]
    names = _reason_names(t, x, np.ones(len(x.x_ts), bool))
    u, n = np.unique(names.astype(str), return_counts=True)
    top3 = [str(r) for r in u[np.lexsort((u, -n))][:3]]
    assert p.data["reasons"][:3] == top3 and p.data["reasons"][3].startswith("other (")
    for i, r in enumerate(top3):
        assert np.array_equal(p.data["counts"][i], np.histogram(x.x_ts[names == r], bins=e)[0])
    assert p.data["counts"][3].sum() == np.isin(names, top3, invert=True).sum()
    # the stacked areas drawn: rate per second of each bin, as steps
    ax = p.figure.axes[0]
    first = ax.collections[0].get_paths()[0].vertices
    assert np.isclose(first[:, 1].max(), p.data["counts"][0].max() / 2e-3)
    # filters: one vCPU thread, one CPU, a window
    vc = int(kvm.topology(t).vcpu_pids[0])
    q = plot.kvm_exits(t, pids=[vc], cpus=[0], start=int(e[0]) + 10_000_000)
    k = (x.x_pid == vc) & (x.x_cpu == 0) & (x.x_ts >= e[0] + 10_000_000)
    assert q.data["counts"].sum() == k.sum() and sum(q.data["exits"]) == k.sum()
    comm = kvm.topology(t).comm(vc)
    r = plot.kvm_exits(t, comm="^" + re.escape(comm) + "$")
    assert r.data["counts"].sum() == (x.x_pid == vc).sum()
    assert plot.kvm_exits(t, comm="no such thread").data["counts"].sum() == 0


def test_kvm_exits_real_host_trace():
    """A trace-cmd recording of a 3-vCPU host without sched_switch: the reasons drawn are the
    lines' own, counted from the text."""
    c = corpus_dir()
    path = c / "tracecmd" / "hip24-kvm-host-20cpu-entry-exit.txt" if c else None
    if path is None or not path.exists():
        pytest.skip("shared corpus absent")
    t = _load(str(path))
    p = plot.kvm_exits(t, top=0)
    want, timed, last = {}, {}, {}
    line = re.compile(r"-(\d+) +\[(\d+)\] +(\d+)\.(\d+): (kvm_exit|kvm_entry): +(?:reason (\S+))?")
    for ln in path.read_text().splitlines():
        mm = line.search(ln)
        if not mm:
            continue
        pid, cpu, ev, reason = int(mm.group(1)), mm.group(2), mm.group(5), mm.group(6)
        if ev == "kvm_exit":
            want[reason] = want.get(reason, 0) + 1
        elif pid in last and last[pid][0] == "kvm_exit" and last[pid][1] == cpu:
            # K6: timed when the thread's next line is an entry on the same CPU
            timed[last[pid][2]] = timed.get(last[pid][2], 0) + 1
        last[pid] = (ev, cpu, reason)
    assert dict(zip(p.data["reasons"], p.data["exits"])) == want
    assert {r: n for r, n in zip(p.data["reasons"], p.data["handled"]) if n} == timed
    assert p.data["handling"][p.data["reasons"].index("HLT")].max() > 100_000_000


def test_kvm_exits_errors_and_timeline_vcpus(smp4):
    with pytest.raises(ValueError, match="no kvm_exit events: the kvm-exits chart needs kvm:kvm_exit"):
        plot.kvm_exits(smp4)
    with pytest.raises(ValueError, match="bin width must be positive"):
        plot.kvm_exits(_load(simkvm.simulate(3, "kernel5_tgid").data), bin_ns=0)
    # QEMU without debug-threads: every thread is qemu-system-x86; the timeline still shows the
    # vCPU threads (K1: their kvm_entry/kvm_exit lines)
    sim = simkvm.simulate(4, "kernel5", debug_threads=False)
    t = _load(sim.data)
    p = plot.timeline(t)
    assert sorted(p.data["pids"].tolist()) == sorted(sim.kvm.vcpus)
    assert all(lab.startswith("qemu-system-x86 (") for lab in p.data["labels"])


# -- images, formats, errors ----------------------------------------------------------------------

def test_every_kind_writes_an_image(tmp_path, smp4, kvm_sim):
    from matplotlib.image import imread
    for kind in plot.KINDS:
        png = tmp_path / f"{kind}.png"
        plot.plot(kvm_sim[1] if kind == "kvm-exits" else smp4, kind, png)
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        img = imread(png)
        assert img.shape[1] == plot.WIDTH_IN * plot.DPI and img.shape[0] > 200
        assert img[..., :3].std() > 0.05                # not a blank canvas
        if kind in ("timeline", "switches"):         # an embedded raster; vector paths
            svg = tmp_path / f"{kind}.svg"
            plot.plot(smp4, kind, svg)
            assert ET.parse(svg).getroot().tag.endswith("svg")
    # the content follows the data: another trace, other pixels
    other = _load(str(SMP2))
    for kind in ("cpu-util", "timeline"):
        a = plot.plot(smp4, kind).to_bytes()
        b = plot.plot(other, kind).to_bytes()
        assert a != b
    a = plot.plot(kvm_sim[1], "kvm-exits").to_bytes()
    b = plot.plot(_load(simkvm.simulate(5, "kernel5").data), "kvm-exits").to_bytes()
    assert a != b


def test_bad_arguments():
    t = _load(str(SMP2))
    with pytest.raises(ValueError, match="unknown plot kind 'pie'"):
        plot.plot(t, "pie")
    with pytest.raises(ValueError, match=r"name it \.png, \.svg or \.pdf"):
        plot.plot(t, "timeline", "out.jpg")
    with pytest.raises(ValueError, match="bin width must be positive"):
        plot.cpu_util(t, bin_ns=-5)
    no_switch = _load(str(NO_SWITCH))
    with pytest.raises(ValueError, match="no sched_switch"):
        plot.timeline(no_switch)


def _main(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_plot(tmp_path, capsys):
    out = tmp_path / "t.png"
    rc, _, err = _main(capsys, "plot", SMP2, "--kind", "timeline", "-o", out, "--comm", "KVM",
                       "--start", "100ms", "--top", "1")
    assert rc == 0 and out.read_bytes().startswith(PNG_MAGIC) and "wrote" in err
    for argv, code, msg in (
            (("--kind", "timeline", "-o", tmp_path / "x.gif"), 2, "name it .png, .svg or .pdf"),
            (("--kind", "cpu-util", "-o", out, "--comm", "KVM"), 2,
             "--kind cpu-util does not take --comm/--pid/--tgid"),
            (("--kind", "timeline", "-o", out, "--bin", "1ms"), 2, "does not take --bin"),
            (("--kind", "switches", "-o", out, "--bin=-1ms"), 2, "bad --bin"),
            (("--kind", "latency", "-o", out, "--top", "-2"), 2, "--top must be 0"),
            (("--kind", "timeline", "-o", out, "--comm", "("), 2, "bad --comm regex"),
            (("--kind", "timeline", "-o", tmp_path / "no" / "x.png"), 4, "no such directory")):
        rc, _, err = _main(capsys, "plot", SMP2, *argv)
        assert rc == code and msg in err and err.count("\n") == 1, (argv, err)
    with pytest.raises(SystemExit) as exc:
        cli.main(["plot", str(SMP2), "--kind", "pie", "-o", str(out)])
    assert exc.value.code == 2 and "invalid choice: 'pie'" in capsys.readouterr().err
    rc, _, err = _main(capsys, "plot", NO_SWITCH, "--kind", "switches", "-o", out)
    assert rc == 3 and "no sched_switch events" in err
    rc, _, err = _main(capsys, "plot", "/no/such/file", "--kind", "switches", "-o", out)
    assert rc == 3
    rc, _, err = _main(capsys, "plot", SMP2, "--kind", "kvm-exits", "-o", out)
    assert rc == 3 and err == (f"ftfast: {SMP2}: no kvm_exit events: ftfast plot --kind kvm-exits "
                               "needs kvm:kvm_exit\n")
    rc, _, err = _main(capsys, "plot", SMP2, "--kind", "kvm-exits", "-o", out, "--group", "task")
    assert rc == 2 and "--kind kvm-exits does not take --group" in err


def test_cli_plot_kvm_exits(tmp_path, capsys):
    sim = simkvm.simulate(3, "kernel5_tgid")
    src = tmp_path / "kvm.txt"
    src.write_bytes(sim.data)
    out = tmp_path / "x.svg"
    rc, _, err = _main(capsys, "plot", src, "--kind", "kvm-exits", "-o", out, "--comm", "CPU 0/",
                       "--bin", "5ms", "--top", "2")
    assert rc == 0, err
    assert ET.parse(out).getroot().tag.endswith("svg")
    assert "bins of 5 ms" in out.read_text()


def test_visualize_script_writes_the_standard_set(tmp_path, capsys):
    src = tmp_path / "run1.txt.gz"
    src.write_bytes(SMP2.read_bytes())
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "ftrace_visualize.py"), str(src),
                        "--comm", "KVM", "-q"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    paths = p.stdout.split("\n")[:-1]
    assert paths == [str(tmp_path / f"run1.{k}.png") for k in plot.STANDARD]
    for q in paths:
        assert Path(q).read_bytes().startswith(PNG_MAGIC)

    # the failures in this process (the script's main(), without an interpreter start-up)
    import importlib.util
    spec = importlib.util.spec_from_file_location("ftrace_visualize",
                                                  ROOT / "scripts" / "ftrace_visualize.py")
    vis = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vis)
    outdir = tmp_path / "charts"
    outdir.mkdir()
    assert vis.main([str(NO_SWITCH), "--outdir", str(outdir)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sched_switch" in err
    assert vis.main([str(src), "--outdir", str(tmp_path / "missing")]) == 4
    with pytest.raises(SystemExit) as exc:
        vis.main([])
    assert exc.value.code == 2
    # a KVM host with exits: the exit chart too
    kv = tmp_path / "kvmhost.txt"
    kv.write_bytes(simkvm.simulate(3, "kernel5_tgid").data)
    assert vis.main([str(kv), "-q"]) == 0
    paths = capsys.readouterr().out.split("\n")[:-1]
    assert paths == [str(tmp_path / f"kvmhost.{k}.png") for k in plot.STANDARD + ("kvm-exits",)]
    assert Path(paths[-1]).read_bytes().startswith(PNG_MAGIC)
    # the same host traced without the sched events: the exit chart alone, the rest noted
    only = tmp_path / "kvmonly.txt"
    only.write_bytes(b"".join(ln for ln in kv.read_bytes().splitlines(True)
                              if b": sched_" not in ln))
    assert vis.main([str(only)]) == 0
    out, err = capsys.readouterr()
    assert out.split("\n")[:-1] == [str(tmp_path / "kvmonly.kvm-exits.png")]
    assert "no sched_switch events: timeline chart skipped" in err


def test_timeline_from_the_whole_table_equals_the_selected_rows(sims, kvm_sim, smp4):
    """Without a time or CPU restriction the timeline accumulates the model's interval table
    as it is; with one (here the window's own start, which clips nothing) it selects the rows
    first: the same rows, pixels, CPUs and counts either way."""
    for t in [t for _, t in sims] + [kvm_sim[1], smp4]:
        w0, _ = sched.window(t)
        for kw in ({}, {"top": 3}, {"comm": "", "top": 0}, {"comm": "KVM|qemu"}, {"pids": [0]}):
            fast = plot.timeline(t, width_px=257, **kw)
            slow = plot.timeline(t, width_px=257, start=w0, **kw)
            for k in ("pids", "labels", "states", "cpus", "intervals", "image"):
                assert np.array_equal(np.asarray(fast.data[k]), np.asarray(slow.data[k])), (k, kw)
            assert fast.data["intervals"] > 0 or not len(fast.data["pids"])
