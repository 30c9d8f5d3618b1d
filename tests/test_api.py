"""load(): inputs, compression, filters, strict mode, pandas frames, payload decoding."""

import bz2
import gzip
import io
import lzma
import subprocess
import sys
import warnings

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import events as ev
from helpers import DATA, arrays_equal, load_text

TEXT = (
    "# tracer: nop\n"
    "       CPU 0/KVM-2024    [001] d..2.  1000.000100: sched_switch: prev_comm=CPU 0/KVM prev_pid=2024 prev_prio=120 prev_state=S ==> next_comm=worker next_pid=3000 next_prio=120\n"
    "          worker-3000    [001] d..3.  1000.000200: sched_waking: comm=CPU 1/KVM pid=2025 prio=120 target_cpu=000\n"
    "          <idle>-0       [000] dNh4.  1000.000300: sched_wakeup: comm=CPU 1/KVM pid=2025 prio=120 target_cpu=000\n"
    "          <idle>-0       [000] d..2.  1000.000400: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=CPU 1/KVM next_pid=2025 next_prio=120\n"
    "       CPU 1/KVM-2025    [000] .....  1000.000500: kvm_vcpu_wakeup: wait time 1000 ns, polling valid\n"
    "          worker-3000    [001] .....  1000.000600: block_rq_issue: 254,0 WS 4096 () 100 + 8 be,0,4 [worker]\n"
    "       CPU 1/KVM-2025    [000] d..2.  1000.000700: sched_switch: prev_comm=CPU 1/KVM prev_pid=2025 prev_prio=120 prev_state=R+ ==> next_comm=other next_pid=4000 next_prio=120\n"
    "           other-4000    [000] .....  1000.000800: my_probe: arg1=0x10 name=foo ratio=0.5 n=-3\n"
)


def test_sources_plain_compressed_fileobj_stdin(tmp_path):
    base = load_text(TEXT)
    raw = TEXT.encode()
    variants = {
        "t.txt": raw, "t.gz": gzip.compress(raw), "t.xz": lzma.compress(raw),
        "t.bz2": bz2.compress(raw), "no_ext_but_gzip": gzip.compress(raw),
    }
    try:
        import zstandard
        variants["t.zst"] = zstandard.ZstdCompressor().compress(raw)
    except ImportError:
        pass
    for name, data in variants.items():
        p = tmp_path / name
        p.write_bytes(data)
        arrays_equal(base, ftrace_fast.load(p))
        arrays_equal(base, ftrace_fast.load(str(p)))
        with open(p, "rb") as f:
            arrays_equal(base, ftrace_fast.load(f))
    t = ftrace_fast.load(tmp_path / "t.gz")
    assert t.compression == "gzip"
    code = ("import ftrace_fast,sys; t=ftrace_fast.load('-'); "
            "print(t.stats.events, t.count('sched_switch'))")
    out = subprocess.run([sys.executable, "-c", code], input=gzip.compress(raw),
                         capture_output=True, check=True)
    assert out.stdout.split() == [b"8", b"3"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ftrace_fast.InputError, match="no such file"):
        ftrace_fast.load(tmp_path / "missing.txt")
    with pytest.raises(ftrace_fast.InputError, match="is a directory"):
        ftrace_fast.load(tmp_path)
    dat = tmp_path / "trace.dat"
    dat.write_bytes(b"\x17\x08\x44tracing6\x00" + bytes(100))
    # a trace.dat is read directly now: a broken one names the offset and what was expected
    with pytest.raises(ftrace_fast.InputError, match="offset 13: expected long size 4 or 8, got 0"):
        ftrace_fast.load(dat)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    t = ftrace_fast.load(empty)
    assert (t.stats.lines, t.stats.events) == (0, 0) and t.events == {}
    with pytest.raises(TypeError):
        ftrace_fast.load(io.StringIO(TEXT))


def test_chunk_invariance_every_boundary():
    base = load_text(TEXT)
    for chunk in (1, 2, 3, 7, 13, 64, 4096):
        arrays_equal(base, load_text(TEXT, chunk_size=chunk))
    # the same without a final newline
    cut = TEXT.rstrip("\n")
    base = load_text(cut)
    for chunk in (1, 5, 4096):
        arrays_equal(base, load_text(cut, chunk_size=chunk))


def test_filter_events_and_accounting():
    t = load_text(TEXT, events=["sched_switch", "kvm_vcpu_wakeup"])
    assert sorted(t.events) == ["kvm_vcpu_wakeup", "sched_switch"]
    assert (t.stats.events, t.stats.filtered, t.stats.headers) == (4, 4, 1)
    assert t.stats.check()
    # a name given as a plain string is one event, not its letters
    assert sorted(load_text(TEXT, events="sched_switch").events) == ["sched_switch"]


def test_filter_cpus_and_time():
    t = load_text(TEXT, cpus=[1])
    assert sorted(set(np.concatenate([a["cpu"] for a in t.events.values()]).tolist())) == [1]
    assert t.stats.events == 3 and t.stats.check()
    t = load_text(TEXT, start=1000.0003, end="1000.0005")
    ts = sorted(np.concatenate([a["ts"] for a in t.events.values()]).tolist())
    assert ts == [1000000300000, 1000000400000, 1000000500000]
    t = load_text(TEXT, start=1000000300000, end=1000000300000)
    assert t.stats.events == 1
    t = load_text(TEXT, start="1000000300us", end="1000000.4ms")
    assert t.stats.events == 2
    with pytest.raises(ValueError, match="after end"):
        load_text(TEXT, start=2.0, end=1.0)
    with pytest.raises(ValueError, match="not a time"):
        load_text(TEXT, start="soon")


def test_filter_pids_matches_payload_pids():
    t = load_text(TEXT, pids=[2025])
    # the task's own lines, plus sched events naming it (woken, switched in/out)
    assert t.count("sched_waking") == 1 and t.count("sched_wakeup") == 1
    assert t.count("sched_switch") == 2 and t.count("kvm_vcpu_wakeup") == 1
    assert t.count("block_rq_issue") == 0 and t.count("my_probe") == 0
    assert t.stats.check()


def test_filter_comm_regex_like_pids():
    t = load_text(TEXT, comm=r"CPU \d+/KVM")
    assert t.count("sched_switch") == 3  # CPU 0 out, CPU 1 in, CPU 1 out
    assert t.count("block_rq_issue") == 0 and t.count("my_probe") == 0
    assert t.count("sched_waking") == 1  # worker wakes CPU 1/KVM
    t = load_text(TEXT, comm="^worker$")
    assert t.count("block_rq_issue") == 1
    assert t.count("sched_switch") == 1  # switched in on CPU 1
    with pytest.raises(ValueError, match="bad comm regex"):
        load_text(TEXT, comm="(")


def test_strict_mode_raises_with_line_number():
    bad = TEXT + "garbage line\n"
    with pytest.raises(ftrace_fast.ParseError) as ei:
        load_text(bad, strict=True)
    assert ei.value.error.line == 10
    assert "line 10" in str(ei.value) and "garbage line" in str(ei.value)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ftrace_fast.load(io.BytesIO(bad.encode()))
    assert len(w) == 1 and "1 malformed line(s)" in str(w[0].message)


def test_payload_decoder_and_text():
    t = load_text(TEXT)
    p = t.payload("my_probe")
    assert p["arg1"].dtype == np.int64 and p["arg1"].tolist() == [16]
    assert p["n"].tolist() == [-3]
    assert p["ratio"].dtype == np.float64 and p["ratio"].tolist() == [0.5]
    assert p["name"].tolist() == ["foo"]
    assert t.text("my_probe") == ["arg1=0x10 name=foo ratio=0.5 n=-3"]
    sw = t.payload("sched_switch")
    assert sw["next_pid"].tolist() == [3000, 2025, 4000]


def test_dataframe_like_trappy_and_lisa():
    pd = pytest.importorskip("pandas")
    t = load_text(TEXT)
    df = t.df("sched_switch")
    assert df.index.name == "Time"
    assert df.index[0] == pytest.approx(1000.0001)
    assert list(df["__comm"]) == ["CPU 0/KVM", "<idle>", "CPU 1/KVM"]
    assert list(df["prev_state"]) == ["S", "R", "R+"]
    assert list(df["next_comm"]) == ["worker", "CPU 1/KVM", "other"]
    assert list(df["__cpu"]) == [1, 0, 0]
    w = t.df("sched_waking")
    assert list(w["comm"]) == ["CPU 1/KVM"] and list(w["pid"]) == [2025]
    assert list(w["__pid"]) == [3000]
    g = t.df("my_probe")
    assert g["arg1"].tolist() == [16]
    b = t.df("block_rq_issue")
    assert b["comm"].tolist() == ["worker"] and b["rwbs"].tolist() == ["WS"]


def test_trace_introspection():
    t = load_text(TEXT)
    assert t.span == (1000000100000, 1000000800000)
    assert t.span == (1000000100000, 1000000800000)          # cached
    sw = t.events["sched_switch"]
    later = sw.copy()
    later["ts"] += 10**9
    t.events["sched_switch"] = later                           # the cache follows the arrays
    assert t.span[1] == int(later["ts"].max())
    t.events["sched_switch"] = sw
    assert t.span == (1000000100000, 1000000800000)
    assert t.cpus() == [0, 1]
    assert t.comm_id("CPU 1/KVM") >= 0 and t.comm_id("nope") == -1
    assert t.nbytes == sum(a.nbytes for a in t.events.values()) + t.text_arena.nbytes
    assert "sched_switch=3" in repr(t)
    # the arrays own their memory: they outlive the Trace
    a = t.events["sched_switch"]
    del t
    assert a["next_pid"].tolist() == [3000, 2025, 4000]


#: the numpy type of each field kind, as events.py's docstring declares it (written here
#: independently of events.dtype_for)
_KIND_TYPE = {"i1": np.int8, "i4": np.int32, "i8": np.int64, "u8": np.uint64, "comm": np.int32,
              "sym": np.int32, "state": np.int32}


def _declared_dtype(layout):
    """The record an event's declaration describes, laid out as a C struct would be (numpy's
    align=True): the common columns, then each field (a text field as <name>_off int64 and
    <name>_len int32), every one at a multiple of its size, the record padded to 8 bytes."""
    cols = [(name, typ) for name, typ, _ in ev.COMMON]
    for field in ev.LAYOUTS[layout]:
        name, kind = field[0], field[1]
        cols += [(name + "_off", np.int64), (name + "_len", np.int32)] if kind == "text" else \
            [(name, _KIND_TYPE[kind])]
    return np.dtype(cols, align=True)


def test_dtype_matches_layout_declaration():
    """The arrays the parser hands over have the columns, types and byte offsets events.py
    declares, for every layout met in the fixtures (each event mapped to its layout by
    EVENT_LAYOUT, any other to generic)."""
    seen = set()
    traces = [load_text(TEXT)] + [ftrace_fast.load(p, warn=False) for p in [
        DATA / "kvm_smp4_contended_small.txt.gz", *sorted((DATA / "public").glob("*.txt"))]]
    for t in traces:
        for name, a in t.events.items():
            layout = ev.EVENT_LAYOUT.get(name, "generic")
            assert t.layout(name) == layout, name
            want = _declared_dtype(layout)
            assert a.dtype.names == want.names, name
            assert {k: (v[0], v[1]) for k, v in a.dtype.fields.items()} == \
                {k: (v[0], v[1]) for k, v in want.fields.items()}, name
            assert a.dtype.itemsize == want.itemsize and a.dtype.itemsize % 8 == 0, name
            assert ev.COMMON_SIZE == want.fields["flags"][1] + 8
            seen.add(layout)
    # most layouts are met (the fixtures hold no sched_process_exec, kvm_entry/exit lines)
    assert len(seen) >= 12, sorted(set(ev.LAYOUTS) - seen)
    for layout in ev.LAYOUTS:
        want = _declared_dtype(layout)
        got = ev.dtype_for(layout)
        assert got.names == want.names and got.itemsize == want.itemsize, layout
        assert {k: v[:2] for k, v in got.fields.items()} == {k: v[:2] for k, v in want.fields.items()}, layout


def test_bundled_example_loads():
    ex = DATA / "kvm_smp2_small.txt.gz"
    if not ex.exists():
        pytest.skip("example not recorded")
    t = ftrace_fast.load(ex)
    assert t.stats.malformed == 0 and t.count("sched_switch") > 1000
