"""trace.dat records beyond the scheduling events, against trace-cmd report's text of the same
file: trace_printk (bprint) messages, function and function_graph records, and the typed
field columns of events without a typed layout (against ``trace-cmd report -R``)."""

import shutil
import struct
import subprocess

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import _ftdat, tracedat

from helpers import DATA
from test_tracedat import TC, compare
import dat_synth

BASE = DATA / "public" / "lisa-sched-load.dat.gz"


# -- bprint --------------------------------------------------------------------------------

@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
@pytest.mark.parametrize("txt,dat,n", [
    ("lisa-rtapp-6cpu-utilest-bprint.txt", "lisa-rtapp-6cpu-utilest-bprint.dat", 6242),
    ("trappy-hmp-8cpu-sched.txt.gz", "trappy-hmp-8cpu-sched.dat", 15)])
def test_bprint_messages_equal_the_report(txt, dat, n):
    """%s, %d, %lu and %p arguments of 64-bit (LISA) and 32-bit (trappy, whose kallsyms hides
    every address so the caller prints as hex) kernels."""
    T = ftrace_fast.load(TC / txt, events=["bprint"])
    D = ftrace_fast.load(TC / "dat" / dat, events=["bprint"])
    assert [s.strip() for s in D.text("bprint")] == [s.strip() for s in T.text("bprint")]
    assert D.count("bprint") == n


def _run(fmt, args, long_size=8, big=False):
    """Format one record's packed args with a printk format, through the nogil kernel."""
    lits = bytearray()
    rows, bound = tracedat._bprint_program(fmt, long_size, lits, lits)
    buf = np.frombuffer(bytes(args), np.uint8)
    data, o, ln = _ftdat.format_bprint(
        buf, np.zeros(1, np.int64), np.array([len(args)], np.int32), np.zeros(1, np.int32),
        np.array(rows, np.int64).reshape(-1, 5), np.zeros(1, np.int64),
        np.array([len(rows)], np.int64), np.frombuffer(bytes(lits) + b"\0", np.uint8),
        np.array([0x1000, 0x2000], np.uint64), np.array([0, 4], np.int64),
        np.frombuffer(b"foo\0bar\0", np.uint8), int(big), bound + len(args) + 1)
    return bytes(data[o[0]:o[0] + ln[0]]).decode()


def _pack(*items, big=False):
    """vbin_printf's packing: each integer aligned to its size (at most 4), strings with NUL."""
    out = bytearray()
    for kind, v in items:
        if kind == "s":
            out += v.encode() + b"\0"
            continue
        size = {"b": 1, "h": 2, "i": 4, "q": 8}[kind.lower()]
        while len(out) % min(size, 4):
            out += b"\0"
        out += struct.pack((">" if big else "<") + kind, v)
    return out


@pytest.mark.parametrize("big", [False, True])
def test_bprint_formats_like_printf(big):
    args = _pack(("i", -42), ("i", 7), ("s", "abc"), ("q", 1 << 40), ("I", 0xbeef),
                 ("i", 5), ("i", 33), ("b", 65), ("h", -3), ("s", "hello"), ("Q", 0x1004),
                 ("Q", 0x2000), ("Q", 0xdead), big=big)
    fmt = "a=%d b=%5d s=%-5s| l=%lld x=%08X w=%*d c=%c h=%hd p=%.3s %% f=%ps g=%pS r=%p"
    assert _run(fmt, args, big=big) == \
        "a=-42 b=    7 s=abc  | l=%d x=0000BEEF w=   33 c=A h=-3 p=hel %% f=foo g=bar r=0xdead" % (1 << 40)


def test_bprint_32bit_longs_and_truncated_args():
    args = _pack(("I", 4000000000), ("i", -1))
    assert _run("%lu %ld", args, long_size=4) == "4000000000 -1"
    # args shorter than the format asks: the message stops there, nothing read past them
    assert _run("%d %d %d", _pack(("i", 1), ("i", 2)), long_size=4) == "1 2 "
    assert _run("%s", b"no-nul", long_size=4) == "no-nul"


# -- function / function_graph ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fgraph(tmp_path_factory):
    return dat_synth.funcgraph_dat(BASE, tmp_path_factory.mktemp("fg") / "fg.dat")


REPORT = DATA / "synth" / "funcgraph.report.txt"


def test_function_graph_equals_the_report(fgraph):
    T = ftrace_fast.load(REPORT)
    D = ftrace_fast.load(fgraph)
    assert compare(T, D, fgraph) == T.stats.events == D.stats.events == 16
    # the leaf update_curr(): one entry with the exit's duration, its exit not a row
    e = D["funcgraph_entry"]
    leaf = e[e["duration_ns"] >= 0]
    assert D.symbol_names(leaf["func"]).tolist() == ["update_curr"] and leaf["duration_ns"][0] == 1234
    assert D.count("funcgraph_exit") == 5
    # the nested exits: rettime - calltime to the ns (12345.678 us printed)
    assert D["funcgraph_exit"]["duration_ns"].tolist() == [700, 1000, 5500, 6600, 12345678]
    # function records: the function's name as payload, both addresses as columns
    assert D.text("function") == [s.strip() for s in T.text("function")]
    f = D["function"]
    assert f["ip"].dtype == np.uint64 and (f["parent_ip"] > 0).all()


def test_funcgraph_leaf_needs_the_next_record_of_the_merged_stream(fgraph):
    """schedule() on CPU 0 returns right after it was entered on that CPU, but CPU 1's entry
    comes between them in time: the report prints it nested, so does the .dat."""
    D = ftrace_fast.load(fgraph, events=["funcgraph_entry", "funcgraph_exit"])
    e = D["funcgraph_entry"]
    first = e[D.symbol_names(e["func"]) == "schedule"][0]
    assert first["duration_ns"] == -1


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd not installed")
def test_synthetic_file_report_is_still_the_stored_text(fgraph):
    r = subprocess.run(["trace-cmd", "report", "-i", str(fgraph)], capture_output=True, check=True)
    assert r.stdout == REPORT.read_bytes()


# -- every field of the other events as typed columns ---------------------------------------

@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
def test_typed_field_columns_equal_the_raw_report():
    """-R prints every field's raw value: exactly for the 6.10 kernelshark file; the low 32
    bits for the kvm file (its -R prints some fields through the print fmt in hex, signed)."""
    checked = 0
    for txt, dat, mask in (("kernelshark-survey-8cpu-sched-full-raw.txt",
                            "kernelshark-survey-8cpu-sched-full.dat", -1),
                           ("hip24-kvm-host-allkvm-x86tsc-raw.txt",
                            "hip24-kvm-host-allkvm-x86tsc.dat", (1 << 32) - 1)):
        T = ftrace_fast.load(TC / txt)
        D = ftrace_fast.load(TC / "dat" / dat)
        for name in (n for n in T.events if T.layout(n) == "generic"):
            cols = {c[2]: c for c in D.dat.fields[name]}
            a = D[name]
            for k, v in T.payload(name).items():
                col, kind, _k, _t = cols[k]
                if kind != "int" or v.dtype != np.int64 or (name, k) == ("kvm_ioapic_set_irq", "e"):
                    continue
                got = a[col].astype(np.int64) if a[col].dtype != np.uint64 else a[col].view(np.int64)
                np.testing.assert_array_equal(got & mask, v & mask, err_msg=f"{name}.{k}")
                checked += len(v)
    assert checked > 10000


@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
def test_data_loc_strings_and_arrays_as_columns():
    T = ftrace_fast.load(TC / "kernelshark-survey-8cpu-kernel-stack.txt")
    D = ftrace_fast.load(TC / "dat" / "kernelshark-survey-8cpu-kernel-stack.dat")
    # kmem_cache_free's name is a __data_loc char[]
    kinds = {c[0]: c[1] for c in D.dat.fields["kmem_cache_free"]}
    assert kinds == {"call_site": "int", "ptr": "int", "name": "sym"}
    a = D["kmem_cache_free"]
    assert D.symbol_names(a["name"]).tolist() == T.payload("kmem_cache_free")["name"].tolist()
    # kernel pointers do not fit int64: payload() keeps their text
    assert ["0x%x" % v for v in a["ptr"].tolist()] == T.payload("kmem_cache_free")["ptr"].tolist()
    # sys_enter's args is an unsigned long[6]: a (n, 6) sub-array column
    s = D["sys_enter"]
    assert s["args"].shape == (len(s), 6) and s["args"].dtype == np.uint64
    # a common-column name in a format gets the layouts' name (pid/comm) or an f_ prefix
    cols = [c[0] for f in D.dat.fields.values() for c in f]
    assert "pid" not in cols and "cpu" not in cols and "comm" not in cols


def test_typed_columns_follow_selections(tmp_path):
    """Field columns travel with their rows through the pid / time selections."""
    import gzip
    dat = tmp_path / "t.dat"
    dat.write_bytes(gzip.open(BASE).read())
    full = ftrace_fast.load(dat, events=["sched_load_cfs_rq"])
    part = ftrace_fast.load(dat, events=["sched_load_cfs_rq"], cpus=[2])
    a, b = full["sched_load_cfs_rq"], part["sched_load_cfs_rq"]
    sel = a[a["cpu"] == 2]
    assert len(b) == len(sel) > 0
    for col, kind, _k, _t in full.dat.fields["sched_load_cfs_rq"]:
        if kind == "sym":
            assert (full.symbol_names(sel[col]) == part.symbol_names(b[col])).all()
        else:
            np.testing.assert_array_equal(sel[col], b[col], err_msg=col)
    # the field columns hold the values the payload text prints
    p = full.payload("sched_load_cfs_rq")
    np.testing.assert_array_equal(a["util"].astype(np.int64), p["util"])


def test_same_name_from_two_formats_keeps_the_generic_columns():
    """Two systems may define one event name with different fields: its parts then keep the
    generic columns only, and no field list is claimed for it."""
    from ftrace_fast import events as ev

    class Ctx:
        field_columns = {"x": (("a", "int", "a", "i4"),)}

    one = np.zeros(2, tracedat._fields_dtype((("a", "int", "a", "i4"),)))
    two = np.zeros(1, tracedat._fields_dtype((("b", "int", "b", "u8"),)))
    one["line"], two["line"] = [1, 3], [2]
    ctx = Ctx()
    got = tracedat._same_columns(ctx, "x", [one, two])
    assert all(p.dtype == ev.dtype_for("generic") for p in got)
    assert [p["line"].tolist() for p in got] == [[1, 3], [2]] and "x" not in ctx.field_columns


# -- saved tgids -----------------------------------------------------------------------------

def test_saved_tgids_fill_the_tgid_column(tmp_path):
    """A file carrying the kernel's saved_tgids (gpuvis' trace-cmd option 32): the tgid
    column of every row is its pid's saved tgid, -1 for pids the list does not name."""
    import gzip
    plain = tmp_path / "plain.dat"
    plain.write_bytes(gzip.open(BASE).read())
    P = ftrace_fast.load(plain)
    assert all((a["tgid"] == -1).all() for a in P.events.values())
    tgids = {2928: 2928, 2930: 2930, 310: 310, 3104: 3104, 3105: 3104, 3106: 3104, 22: 22}
    text = "".join(f"{p} {t}\n" for p, t in tgids.items()).encode()
    D = ftrace_fast.load(dat_synth.with_option(BASE, tmp_path / "tg.dat", 32, text))
    assert D.stats.events == P.stats.events
    named = 0
    for name, a in D.events.items():
        want = np.array([tgids.get(int(p), -1) for p in a["pid"]], np.int32)
        np.testing.assert_array_equal(a["tgid"], want, err_msg=name)
        named += int((want >= 0).sum())
        np.testing.assert_array_equal(a["ts"], P[name]["ts"])
    assert named > 100


def test_filter_writes_function_graph_text_that_loads_back(fgraph, tmp_path):
    import sys
    out = tmp_path / "f.txt"
    r = subprocess.run([sys.executable, "-m", "ftrace_fast", "filter", str(fgraph), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    D, back = ftrace_fast.load(fgraph), ftrace_fast.load(out)
    assert set(D.events) == set(back.events)
    for name, a in D.events.items():
        b = back[name]
        np.testing.assert_array_equal(a["ts"], b["ts"], err_msg=name)
        if D.layout(name) == "funcgraph":
            for col in ("depth", "duration_ns"):
                np.testing.assert_array_equal(a[col], b[col], err_msg=f"{name}.{col}")
            assert (D.symbol_names(a["func"]) == back.symbol_names(b["func"])).all()
    assert D.text("function") == [s.strip() for s in back.text("function")]


def test_bprint_kernel_on_random_args_stays_in_bounds():
    """Random argument bytes (short, no NUL, huge lengths) through every conversion: the
    output never passes its bound and every message is decodable."""
    rng = np.random.default_rng(7)
    fmt = "%d %5u %-3x %lld %hhd %hd %c %s %*d %.2s %p %ps %pS %pM %% %lu"
    lits = bytearray()
    rows, bound = tracedat._bprint_program(fmt, 8, lits, lits)
    n = 3000
    lens = rng.integers(0, 80, n).astype(np.int32)
    offs = np.concatenate(([0], np.cumsum(lens[:-1]))).astype(np.int64)
    buf = rng.integers(0, 256, int(lens.sum()), dtype=np.uint8)
    buf[rng.random(len(buf)) < 0.7] = rng.integers(32, 127)   # mostly printable, few NULs
    cap = int(bound * n + lens.sum()) + 1
    data, o, ln = _ftdat.format_bprint(
        buf, offs, lens, np.zeros(n, np.int32), np.array(rows, np.int64).reshape(-1, 5),
        np.zeros(1, np.int64), np.array([len(rows)], np.int64),
        np.frombuffer(bytes(lits) + b"\0", np.uint8), np.array([0x1000], np.uint64),
        np.zeros(1, np.int64), np.frombuffer(b"f\0", np.uint8), 0, cap)
    assert len(data) <= cap and (o + ln <= len(data)).all() and (ln >= 0).all()
    assert (np.diff(o) == ln[:-1]).all()


def test_info_counts_leaf_exits_as_the_report_does(fgraph):
    import sys
    r = subprocess.run([sys.executable, "-m", "ftrace_fast", "info", str(fgraph)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "      5  funcgraph_exit" in r.stdout and "      7  funcgraph_entry" in r.stdout


@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
def test_df_of_a_dat_event_has_its_typed_fields():
    pytest.importorskip("pandas")
    D = ftrace_fast.load(TC / "dat" / "kernelshark-survey-8cpu-kernel-stack.dat")
    T = ftrace_fast.load(TC / "kernelshark-survey-8cpu-kernel-stack.txt")
    d, t = D.df("kmem_cache_free"), T.df("kmem_cache_free")
    assert list(d.columns) == list(t.columns)
    assert d["ptr"].dtype == np.uint64 and ["0x%x" % v for v in d["ptr"]] == list(t["ptr"])
    assert list(d["name"]) == list(t["name"])
    assert len(D.df("sys_enter")["args"].iloc[0]) == 6


def test_bprint_and_bputs_of_a_synthetic_file_equal_the_report(tmp_path):
    dat = dat_synth.bprint_dat(BASE, tmp_path / "bp.dat")
    T = ftrace_fast.load(DATA / "synth" / "bprint.report.txt")
    D = ftrace_fast.load(dat)
    assert compare(T, D, dat) == 2
    for name in ("bprint", "bputs"):
        assert D.text(name) == [s.strip() for s in T.text(name)]


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd not installed")
def test_synthetic_bprint_report_is_still_the_stored_text(tmp_path):
    dat = dat_synth.bprint_dat(BASE, tmp_path / "bp.dat")
    r = subprocess.run(["trace-cmd", "report", "-i", str(dat)], capture_output=True, check=True)
    assert r.stdout == (DATA / "synth" / "bprint.report.txt").read_bytes()


def test_field_columns_never_clash():
    """A format (or a damaged one) whose field names meet the common columns, each other or
    another field's _off/_len still gives one column per name: the record dtype builds."""
    from types import SimpleNamespace as F
    from ftrace_fast import tracedat

    def field(name, size=4, dynamic=False, array_len=0, typ="int", string=False):
        return F(name=name, size=size, dynamic=dynamic, array_len=array_len, type=typ,
                 signed=True, is_pointer=False, is_string=string)
    fmt = F(name="odd_event", fields=[
        field("data_off", 8), field("data", 4, dynamic=True, typ="__data_loc u8[]"),
        field("data"), field("pid"), field("task_pid"), field("cpu"), field("f_cpu"),
        field("x", 4, typ="char[4]", string=True), field("x_len"), field("")])
    cols = tracedat.format_columns(fmt)
    assert len(cols) == len(fmt.fields)
    dt = tracedat._fields_dtype(tuple(cols))
    assert len(dt.names) == len(set(dt.names))
    by_field = {k: c for c, _, k, _ in cols if k != "data"}
    assert by_field["data_off"] == "data_off" and by_field["pid"] == "task_pid"
    assert [c for c, kind, k, _ in cols if k == "data" and kind == "bytes"] == ["f_data"]
