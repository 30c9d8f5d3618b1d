"""Derived tables (trace.DERIVED): one place on a Trace, keyed by the restriction; the cache
entry stores the STORED ones at exit and a later load reads them instead of computing them,
with the same values and types; a damaged table is computed again; a table the entry cannot
hold (no pickle) is skipped; the model's narrowed columns widen on first read; the exits of
a cached trace are paired only when a figure needs the pairs."""

import gzip
import json
import re
import warnings

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import cache, kvm, sched
from ftrace_fast import trace as trace_mod
from ftrace_fast.trace import DERIVED, STORED, Trace, restriction_key

from helpers import DATA, same


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FTFAST_CACHE_DIR", str(d))
    monkeypatch.delenv("FTFAST_CACHE_MAX", raising=False)
    monkeypatch.delenv("FTFAST_CACHE_MIN", raising=False)
    monkeypatch.setattr(cache, "BACKGROUND", False)
    cache._warned.clear()
    return d


@pytest.fixture(scope="module")
def kvm_text(tmp_path_factory):
    p = tmp_path_factory.mktemp("in") / "kvm.txt"
    p.write_bytes(gzip.decompress((DATA / "kvm_smp4_contended_small.txt.gz").read_bytes()))
    return p


def quiet_load(*a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(*a, **kw)


def figures(t):
    rk = dict(start=None, end=None, cpus=None)
    return {"vcpus": kvm.vcpu_summary(t, **rk), "neighbours": kvm.neighbours(t, **rk),
            "placement": kvm.placement(t, **rk), "overcommit": kvm.overcommit(t, bin_ns=10**7),
            "io": kvm.io_summary(t), "tasks": sched.task_summary(t), "cpus": sched.cpu_summary(t),
            "by_reason": kvm.exits(t).by_reason(None),
            "per_vcpu": kvm.exits(t).per_vcpu(pids=kvm.topology(t).vcpu_pids),
            "topology": kvm.topology(t).table(), "vms": kvm.topology(t).vms,
            "diagnose": kvm.diagnose(t)}


def test_stored_tables_are_read_back_equal_without_computing(cdir, kvm_text, monkeypatch):
    want = figures(quiet_load(kvm_text, cache=False))
    t = quiet_load(kvm_text, cache=True)
    same(figures(t), want)
    cache.flush()
    stored = entry_dirs = sorted((p for p in (cdir / "entries").iterdir()))
    assert len(entry_dirs) == 1
    stored = {json.loads((d / "manifest").read_bytes().split(b"\n", 1)[1])["name"]
              for d in (entry_dirs[0] / "derived").iterdir()}
    assert {"kvm.vcpu_summary", "kvm.neighbours", "kvm.topology", "sched.task_summary",
            "kvm.exits.by_reason", "kvm.exits.per_vcpu"} <= stored <= STORED

    def computed(*a, **kw):
        raise AssertionError("computed again")
    # a second load reads the figures: no walk, no topology, no pairing, no summaries
    monkeypatch.setattr(sched.SchedModel, "_walk", computed)
    monkeypatch.setattr(kvm.Topology, "__init__", computed)
    monkeypatch.setattr(kvm.Exits, "_pair_all", computed)
    u = quiet_load(kvm_text, cache=True)
    same(figures(u), want)
    assert kvm.exits(u).__dict__["_pairs_done"] is False


def test_a_new_restriction_is_computed_and_stored_beside(cdir, kvm_text):
    t = quiet_load(kvm_text, cache=True)
    a = sched.task_summary(t)
    w0, w1 = sched.window(t)
    mid = (w0 + w1) // 2
    b = sched.task_summary(t, end=mid)
    cache.flush()
    u = quiet_load(kvm_text, cache=True)
    same(sched.task_summary(u, end=mid), b)
    same(sched.task_summary(u), a)
    assert not np.array_equal(a["run_ns"], b["run_ns"])


def test_restriction_keys():
    t = quiet_load(DATA / "kvm_smp2_small.txt.gz", cache=False)
    # "1.5s" and 1500000000 ns are one restriction; CPUs in any order are one
    assert restriction_key("start", "1.5s") == restriction_key("start", 1_500_000_000)
    assert restriction_key("cpus", [3, 1, 1]) == restriction_key("cpus", np.array([1, 3]))
    assert restriction_key("pids", np.array([5, 2])) == (5, 2)
    rx = re.compile("KVM", re.I)
    assert restriction_key("comm", rx) == ("re", "KVM", rx.flags)
    a = sched.task_summary(t, start="0.1", cpus=[1, 0])
    assert sched.task_summary(t, start=100_000_000, cpus=(0, 1)) is a
    assert sched.task_summary(t, start="0.1") is not a
    with pytest.raises(ValueError, match="not a time"):
        sched.task_summary(t, start="soon")
    with pytest.raises(TypeError):
        sched.task_summary(t, 5)
    with pytest.raises(KeyError, match="no derived table"):
        t.derived("kvm.undeclared", (), lambda: 1)


def test_one_declared_place(kvm_text):
    t = quiet_load(kvm_text, cache=False)
    sched.model(t)
    kvm.diagnose(t)
    sched.comm_match(t, "KVM")
    t.span, t.cpus(), t.comm_id("x"), t.machines
    # every derived result is in the store, under a declared name; nothing else was added
    assert set(vars(t)) == set(vars(Trace())) | {"stats"}
    names = {n for n, _ in t._derived.tables}
    assert names <= set(DERIVED) and {"sched.model", "kvm.topology",
                                      "kvm.vcpu_summary", "sched.comm_match", "span"} <= names
    m = sched.model(t)
    t.forget_derived()
    assert sched.model(t) is not m and not t.derived_ready("kvm.topology")


def test_latency_table_leaves_the_shared_summary_alone():
    t = quiet_load(DATA / "kvm_smp2_small.txt.gz", cache=False)
    s = sched.task_summary(t)
    before = s.copy()
    sched.latency_table(t, source="waking")
    same(sched.task_summary(t), before)
    assert sched.task_summary(t) is s


def test_codec_round_trip_keeps_types():
    rec = np.zeros(3, [("pid", "i4"), ("comm", "O"), ("x", "f8"), ("m", "i8", (2,))])
    rec["pid"] = [1, 2, 3]
    rec["comm"] = ["a", "CPU 0/KVM", ""]
    rec["x"] = [0.5, np.nan, 1e300]
    rec["m"] = [[1, 2], [3, 4], [5, 6]]
    value = {"rows": rec, 3: (np.int64(7), np.float64(0.25), np.bool_(True)), "none": None,
             "nested": [{"k": 1.5, 2: "s"}, []], "big": np.arange(100_000, dtype=np.int64),
             "bits": np.array([True, False]), "series": (np.zeros(2), np.ones(3, np.float32))}

    class W:
        files = {}

        def array(self, a):
            name = f"a{len(self.files)}"
            self.files[name] = a.copy()
            return name

    class R:
        def array(self, name):
            return W.files[name]
    body = json.loads(json.dumps(cache._encode(value, W())))
    same(cache._decode(body, R()), value)
    assert len(W.files) == 1          # only the big array went to a file
    for bad in ({1, 2}, np.array([object()], object), b"bytes", np.array([1j])):
        with pytest.raises(cache.Unstorable):
            cache._encode({"x": bad}, W())


def test_unstorable_table_is_skipped_quietly(cdir, kvm_text, monkeypatch, capsys):
    t = quiet_load(kvm_text, cache=True)
    monkeypatch.setitem(trace_mod.DERIVED, "test.set", "a set (not storable)")
    monkeypatch.setattr(trace_mod, "STORED", STORED | {"test.set"})
    assert t.derived("test.set", (), lambda: {1, 2}) == {1, 2}
    cache.flush()
    d = next((cdir / "entries").iterdir()) / "derived"
    assert not d.exists() or not any(d.iterdir())
    assert not [n for n in cdir.iterdir() if n.name.startswith("tmp-")]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["checksum", "file", "other"])
def test_damaged_table_is_computed_again(cdir, kvm_text, capsys, damage):
    t = quiet_load(kvm_text, cache=True)
    want = kvm.neighbours(t)
    cache.flush()
    entry = next((cdir / "entries").iterdir())
    d = entry / "derived" / next(
        p.name for p in (entry / "derived").iterdir()
        if b'"name":"kvm.neighbours"' in (p / "manifest").read_bytes())
    m = d / "manifest"
    if damage == "checksum":
        m.write_bytes(m.read_bytes().replace(b'"stolen_ns"', b'"stolen_NS"'))
    elif damage == "file":
        body = json.loads(m.read_bytes().split(b"\n", 1)[1])
        assert body["files"] == {}          # small tables are inline: make one a file
        (d / "a0.npy").write_bytes(b"junk")
        body["files"] = {"a0.npy": {"size": 99, "offset": 0, "header_sha256": "", "dtype": "<i8",
                                    "shape": [1]}}
        cache._write_manifest(str(d), body)
    else:
        body = json.loads(m.read_bytes().split(b"\n", 1)[1])
        body["name"] = "kvm.placement"
        cache._write_manifest(str(d), body)
    capsys.readouterr()
    u = quiet_load(kvm_text, cache=True)
    same(kvm.neighbours(u), want)
    err = capsys.readouterr().err
    assert "the stored table kvm.neighbours cannot be used" in err and "computing it again" in err
    assert not d.exists()


def test_model_columns_widen_on_first_read(cdir, kvm_text, monkeypatch):
    def narrow_small_too(a):        # the fixture's tables are under _narrow's size floor
        if a.dtype.kind != "i" or a.dtype.itemsize < 4 or not a.size:
            return a
        return a.astype(np.int16) if -2**15 <= a.min() and a.max() < 2**15 else a
    monkeypatch.setattr(cache, "_narrow", narrow_small_too)
    t = quiet_load(kvm_text, cache=True)
    want = sched.task_intervals(t)
    cache.flush()
    u = quiet_load(kvm_text, cache=True)
    m = sched.model(u)
    tables = m._r          # the walk's tables (their own part when the sums came first)
    assert isinstance(tables, cache._WidenedOnRead)
    narrow = dict(tables._wide)
    assert narrow["iv_task"] == np.int32         # stored in int16, not widened yet
    assert tables.__class__.__base__.__getitem__(tables, "iv_task").dtype == np.int16
    same(sched.task_intervals(u), want)
    for k, dt in narrow.items():
        assert tables[k].dtype == dt and k not in tables._wide


def test_a_table_changed_in_place_later_is_stored_as_computed(cdir, kvm_text):
    t = quiet_load(kvm_text, cache=True)
    vs = kvm.vcpu_summary(t)
    want = vs.copy()
    io = kvm.io_summary(t)
    want_io = {k: list(v) for k, v in io.items()}
    vs["run_ns"] = -5                      # what a careless caller of a shared result does
    io["threads"] = [{"pid": -1}]
    cache.flush()
    u = quiet_load(kvm_text, cache=True)
    same(kvm.vcpu_summary(u), want)
    same(kvm.io_summary(u), want_io)


def test_forget_keeps_the_machines_of_a_combined_load():
    top = quiet_load([DATA / "kvm_smp2_small.txt.gz", DATA / "kvm_smp4_contended_small.txt.gz"],
                     cache=False)
    ms = top.machines
    assert len(ms) == 2
    m = sched.model(top)
    top.forget_derived()
    assert top.machines is ms and sched.model(top) is not m
    assert sched.model(top).trace in ms.values()


def test_a_key_that_is_no_plain_data_is_computed_not_stored(cdir, kvm_text):
    t = quiet_load(kvm_text, cache=True)
    key = (frozenset({1, 2}),)                  # no JSON for it: the table is not stored
    assert t.derived("kvm.io_summary", key, lambda: {"threads": []}) == {"threads": []}
    assert t.derived_ready("kvm.io_summary", key)
    cache.flush()
    u = quiet_load(kvm_text, cache=True)
    assert not u.derived_ready("kvm.io_summary", key)
    assert u.derived("kvm.io_summary", key, lambda: "again") == "again"
