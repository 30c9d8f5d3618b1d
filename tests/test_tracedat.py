"""trace.dat input: every corpus file decodes to the same Trace as its `trace-cmd report` text,
event by event and field by field, with the documented differences (tracedat module doc and
../shared/corpus/tracecmd/SOURCES.md):

- time stamps: the report prints µs rounded to nearest, so text_ns == (dat_ns + 500) // 1000 * 1000;
- prev_state: the report's letters come from libtraceevent 1.7.1's fixed table "SDTtZXxW"
  and drop the preempted marker; the .dat uses the kernel's own print format (``I`` for
  TASK_IDLE, ``+`` kept), so the text letters are mapped back to a value through that fixed
  table and printed through the file's table before comparing (the ``+`` aside);
- kvm_exit: the report's kvm plugin prints no vcpu / intr_info / error_code (text: -1);
- generic events: the .dat keeps every field as ``name=value``; compared with the ``-R``
  (raw) reports, exactly for the 6.10 kernelshark file, value by value for the kvm one (its
  -R prints some fields in hex through the print format).
"""

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import events as ev
from ftrace_fast import tracedat
from ftrace_fast._datfile import open_dat

from helpers import DATA, corpus_dir

CORPUS = corpus_dir()
TC = CORPUS / "tracecmd" if CORPUS is not None and (CORPUS / "tracecmd" / "dat").is_dir() else None

PAIRS = [
    ("hebel23-driver-1cpu-irq-gpio.txt", "hebel23-driver-1cpu-irq-gpio.dat"),
    ("hip24-kvm-host-20cpu-large.txt.gz", "hip24-kvm-host-20cpu-large.dat"),
    ("hip24-kvm-host-allkvm-x86tsc.txt", "hip24-kvm-host-allkvm-x86tsc.dat"),
    ("hip24-kvm-host-cpu0kvm-comm.txt", "hip24-kvm-host-cpu0kvm-comm.dat"),
    ("hip24-kvm-host-20cpu-entry-exit.txt", "hip24-kvm-host-guest-pair/trace.dat"),
    ("hip24-kvm-guest-salamander4-xenomai-1cpu.txt.gz", "hip24-kvm-host-guest-pair/trace-Salamander4.dat"),
    ("kernel-monitor-4cpu-sched-switch.txt", "kernel-monitor-4cpu-sched-switch.dat"),
    ("kernelshark-survey-8cpu-kernel-stack.txt", "kernelshark-survey-8cpu-kernel-stack.dat"),
    ("kernelshark-survey-8cpu-sched-full.txt", "kernelshark-survey-8cpu-sched-full.dat"),
    ("langraph-4cpu-softirq-kstack.txt.gz", "langraph-4cpu-softirq-kstack.dat"),
    ("lisa-rtapp-6cpu-utilest-bprint.txt", "lisa-rtapp-6cpu-utilest-bprint.dat"),
    ("lisa-sched-load-6cpu-pelt-idle.txt", "lisa-sched-load-6cpu-pelt-idle.dat"),
    ("trappy-hmp-8cpu-sched.txt.gz", "trappy-hmp-8cpu-sched.dat"),
]

#: libtraceevent 1.7.1 plugin_sched_switch's fixed letters, bit 0 upwards
PLUGIN_LETTERS = "SDTtZXxW"
#: kvm_exit columns the report's kvm plugin does not print
KVM_UNPRINTED = {"vcpu", "intr_info", "error_code"}


@pytest.fixture(scope="module")
def data_pair(tmp_path_factory):
    """The copy in tests/data (LISA's sched_load trace.dat, Apache-2.0) and its report."""
    d = tmp_path_factory.mktemp("dat")
    dat = d / "trace.dat"
    with gzip.open(DATA / "public" / "lisa-sched-load.dat.gz") as f, open(dat, "wb") as g:
        shutil.copyfileobj(f, g)
    return dat, DATA / "public" / "lisa-sched-load.report.txt.gz"


def _plugin_value(letters):
    if letters == "R":
        return 0
    v = 0
    for ch in letters.split("|"):
        v |= 1 << PLUGIN_LETTERS.index(ch)
    return v


def _kernel_letters(value, table):
    mask, pairs, _plus = table
    got = [ch for b, ch in pairs if value & mask & b]
    return "|".join(got) if got else "R"


def compare(text_trace, dat_trace, dat_path, ns=False):
    """Every event of the report against the .dat (ns: the report has -t's ns time stamps);
    returns the events compared."""
    T, D = text_trace, dat_trace
    assert set(T.events) == set(D.events)
    state_table = None
    fmt = open_dat(dat_path).formats.by_name("sched_switch")
    if fmt is not None:
        state_table = tracedat._state_table(fmt.print_fmt)
    n = 0
    for name, ta in T.events.items():
        da = D.events[name]
        assert len(da) == len(ta), name
        if T.time_unit == "ns" and not ns:
            np.testing.assert_array_equal((da["ts"] + 500) // 1000 * 1000, ta["ts"], err_msg=name)
        else:
            np.testing.assert_array_equal(da["ts"], ta["ts"], err_msg=name)
        np.testing.assert_array_equal(da["cpu"], ta["cpu"], err_msg=name)
        np.testing.assert_array_equal(da["pid"], ta["pid"], err_msg=name)
        np.testing.assert_array_equal(D.comm_names(da["comm"]), T.comm_names(ta["comm"]), err_msg=name)
        layout = T.layout(name)
        assert D.layout(name) == layout, name
        if name == "print":
            # trace_marker writes: `<caller>: <message>` exactly as the report prints them
            assert [x.strip() for x in D.text(name)] == [x.strip() for x in T.text(name)]
        for col, kind in ev.field_kinds(layout).items():
            if kind == "text":
                continue
            x, y = ta[col], da[col]
            if kind == "comm":
                x, y = T.comm_names(x), D.comm_names(y)
            elif kind == "sym":
                x, y = T.symbol_names(x), D.symbol_names(y)
            elif kind == "state":
                xs = [_kernel_letters(_plugin_value(ev.state_string(int(v))), state_table) for v in x]
                ys = [ev.state_string(int(v) & ~ev.STATE_PREEMPTED) for v in y]
                x, y = np.array(xs), np.array(ys)
            elif name == "kvm_exit" and col in KVM_UNPRINTED:
                assert (x == -1).all()
                continue
            np.testing.assert_array_equal(y, x, err_msg=f"{name}.{col}")
        n += len(ta)
    return n


@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
@pytest.mark.parametrize("txt,dat", PAIRS, ids=[p[1] for p in PAIRS])
def test_corpus_dat_matches_its_report(txt, dat):
    T = ftrace_fast.load(TC / txt)
    D = ftrace_fast.load(TC / "dat" / dat)
    assert D.stats.malformed == 0 and not len(D.lost) and D.dat.damaged_pages == 0
    assert compare(T, D, TC / "dat" / dat) == T.stats.events == D.stats.events


def test_bundled_dat_matches_its_report(data_pair):
    dat, report = data_pair
    T = ftrace_fast.load(report)
    D = ftrace_fast.load(dat)
    assert compare(T, D, dat) == 3724
    assert D.dat.version == 6 and D.dat.compression == "none" and D.clock == "ns"
    # generic payloads keep every field, typed through Trace.payload()
    p = D.payload("sched_load_cfs_rq")
    assert p["cpu"].dtype == np.int64 and len(p["cpu"]) == D.count("sched_load_cfs_rq")


@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
def test_generic_fields_equal_the_raw_report():
    T = ftrace_fast.load(TC / "kernelshark-survey-8cpu-sched-full-raw.txt")
    D = ftrace_fast.load(TC / "dat" / "kernelshark-survey-8cpu-sched-full.dat")
    generic = [n for n in T.events if T.layout(n) == "generic"]
    assert generic
    for name in generic:
        assert [s.strip() for s in T.text(name)] == D.text(name)
    T = ftrace_fast.load(TC / "hip24-kvm-host-allkvm-x86tsc-raw.txt")
    D = ftrace_fast.load(TC / "dat" / "hip24-kvm-host-allkvm-x86tsc.dat")
    compared = 0
    for name in (n for n in T.events if T.layout(n) == "generic"):
        tp, dp = T.payload(name), D.payload(name)
        assert set(tp) == set(dp), name
        for k, col in tp.items():
            # -R prints kvm_ioapic_set_irq's u64 `e` through its print fmt (the low byte)
            if col.dtype == np.int64 and (name, k) != ("kvm_ioapic_set_irq", "e"):
                # -R prints some fields in hex through the print fmt, some signed: the low bits agree
                mask = (1 << 32) - 1
                assert ((col & mask) == (dp[k] & mask)).all(), (name, k)
                compared += len(col)
    assert compared > 5000


@pytest.mark.skipif(TC is None, reason="../shared/corpus/tracecmd not present")
def test_guest_time_shift_applied_like_report_and_optional():
    g = TC / "dat" / "hip24-kvm-host-guest-pair" / "trace-Salamander4.dat"
    shifted = ftrace_fast.load(g, events=["sched_switch"])
    raw = ftrace_fast.load(g, events=["sched_switch"], guest_sync=False)
    assert shifted.dat.guest_synced and not raw.dat.guest_synced
    off = shifted["sched_switch"]["ts"] - raw["sched_switch"]["ts"]
    # the file's one TIME_SHIFT offset (63430235715905 ticks) went through tsc2nsec
    assert len(np.unique(off)) <= 2 and off[0] > 10**13
    host = ftrace_fast.load(TC / "dat" / "hip24-kvm-host-guest-pair" / "trace.dat")
    assert host.dat.guests and host.dat.guests[0][2] == {0: 483882}
    with pytest.raises(ftrace_fast.InputError, match="no TIME_SHIFT"):
        ftrace_fast.load(TC / "dat" / "hip24-kvm-host-guest-pair" / "trace.dat", guest_sync=True)


def test_filters_match_the_text_path(data_pair):
    dat, report = data_pair
    for kw in ({"events": ["sched_switch", "cpu_idle"]}, {"cpus": [1, 3]}, {"pids": [0]},
               {"comm": "sugov"}, {"start": "5.7s", "end": "5.8s"}):
        T = ftrace_fast.load(report, **kw)
        D = ftrace_fast.load(dat, **kw)
        assert {k: len(v) for k, v in D.events.items() if len(v)} == \
            {k: len(v) for k, v in T.events.items() if len(v)}, kw
        assert D.stats.events + D.stats.filtered == 3724, kw


def test_analyses_run_unchanged(data_pair):
    from ftrace_fast import sched
    dat, report = data_pair
    a = sched.task_summary(ftrace_fast.load(report))
    b = sched.task_summary(ftrace_fast.load(dat))
    assert len(a) == len(b) > 0


# -- bad input -----------------------------------------------------------------------------

def _bytes(data_pair):
    return bytearray(data_pair[0].read_bytes())


def _write(tmp_path, data):
    p = tmp_path / "bad.dat"
    p.write_bytes(bytes(data))
    return p


def test_truncated_header_names_offset(data_pair, tmp_path):
    data = _bytes(data_pair)
    for cut in (12, 40, 300, 5000):
        p = _write(tmp_path, data[:cut])
        with pytest.raises(ftrace_fast.InputError, match=r"bad\.dat: offset \d+: expected "):
            ftrace_fast.load(p)


def test_unknown_version_and_compression(data_pair, tmp_path):
    data = _bytes(data_pair)
    data[10] = ord("9")
    with pytest.raises(ftrace_fast.InputError, match="offset 10: expected file version 6 or 7, got '9'"):
        ftrace_fast.load(_write(tmp_path, data))
    v7 = bytearray(b"\x17\x08\x44tracing7\x00\x00\x08\x00\x10\x00\x00lz4\x001\x00" + bytes(8))
    with pytest.raises(ftrace_fast.InputError, match="unknown compression 'lz4'"):
        ftrace_fast.load(_write(tmp_path, v7))


def test_truncated_cpu_data_is_an_input_error(data_pair, tmp_path):
    data = _bytes(data_pair)
    p = _write(tmp_path, data[:len(data) - 5000])
    with pytest.raises(ftrace_fast.InputError, match="expected CPU 5's .* bytes of ring-buffer pages"):
        ftrace_fast.load(p)


def test_damaged_page_becomes_a_lost_gap_and_the_rest_loads(data_pair, tmp_path):
    data = _bytes(data_pair)
    d = open_dat(data_pair[0])
    cpu, off, size = d.buffers[0].cpus[2]
    # commit of the second page of CPU 2 claims more than a page
    data[off + 4096 + 8:off + 4096 + 16] = struct.pack("<Q", 5000)
    D = ftrace_fast.load(_write(tmp_path, data))
    full = ftrace_fast.load(data_pair[0])
    assert D.dat.damaged_pages == 1
    assert len(D.lost) == 1 and D.lost["cpu"][0] == 2 and D.lost["count"][0] == 0
    assert 0 < full.stats.events - D.stats.events < 200
    # a record running past its page: the length word of the first record of page 1
    data = _bytes(data_pair)
    data[off + 4096 + 16:off + 4096 + 20] = struct.pack("<I", 0)      # type_len 0, delta 0
    data[off + 4096 + 20:off + 4096 + 24] = struct.pack("<I", 60000)  # length past the page
    D = ftrace_fast.load(_write(tmp_path, data))
    assert D.dat.damaged_pages == 1 and len(D.lost) == 1


def test_lost_events_marker_from_page_header(data_pair, tmp_path):
    data = _bytes(data_pair)
    d = open_dat(data_pair[0])
    cpu, off, size = d.buffers[0].cpus[1]
    (commit,) = struct.unpack_from("<Q", data, off + 8)
    used = commit & ((1 << 27) - 1)
    # events were lost before this page and the count (77) is stored after its data
    struct.pack_into("<Q", data, off + 8, used | (1 << 31) | (1 << 30))
    struct.pack_into("<Q", data, off + 16 + used, 77)
    D = ftrace_fast.load(_write(tmp_path, data))
    assert D.lost.tolist()[0][0] == 1 and D.lost["count"].tolist() == [77]
    first = min(a["line"][a["cpu"] == 1].min() for a in D.events.values() if (a["cpu"] == 1).any())
    # the marker sits right before the first record of its page, as report prints it
    assert D.lost["line"][0] < first
    from ftrace_fast import sched
    assert any("77 events were lost" in c for c in sched.caveats(D))


def test_cli_on_a_dat(data_pair, tmp_path):
    dat, report = data_pair
    exe = [sys.executable, "-m", "ftrace_fast"]
    r = subprocess.run(exe + ["info", str(dat)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "trace.dat v6" in r.stdout and "clock:     ns" in r.stdout
    assert "   2437  sched_load_cfs_rq" in r.stdout
    for cmd in (["stats"], ["diagnose"], ["report", "-o", str(tmp_path / "r.html")]):
        r = subprocess.run(exe + cmd[:1] + [str(dat)] + cmd[1:], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)
    bad = tmp_path / "cut.dat"
    bad.write_bytes(dat.read_bytes()[:100])
    r = subprocess.run(exe + ["info", str(bad)], capture_output=True, text=True)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "offset" in r.stderr


def test_json_of_a_dat_follows_the_schema(data_pair):
    """info/stats/diagnose --format json of a trace.dat: the documents of docs/schema, with
    the file's facts typed in info's source.dat."""
    from helpers import check_json
    dat, _ = data_pair
    exe = [sys.executable, "-m", "ftrace_fast"]
    for cmd in ("info", "stats", "diagnose"):
        r = subprocess.run(exe + [cmd, str(dat), "--format", "json"], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)
        doc = check_json(cmd, json.loads(r.stdout))
        if cmd == "info":
            d = doc["source"]["dat"]
            assert (d["version"], d["compression"], d["buffer"], d["damaged_pages"]) == (6, "none", "top", 0)
            assert d["cpus_with_data"] <= d["cpus"] and d["long_size"] in (4, 8)


def test_filter_writes_ftrace_text_that_loads_back(data_pair, tmp_path):
    dat, report = data_pair
    out = tmp_path / "f.txt"
    exe = [sys.executable, "-m", "ftrace_fast"]
    r = subprocess.run(exe + ["filter", str(dat), "-o", str(out), "--events", "sched_switch,sched_migrate_task"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    back = ftrace_fast.load(out)
    D = ftrace_fast.load(dat, events=["sched_switch", "sched_migrate_task"])
    for name in ("sched_switch", "sched_migrate_task"):
        a, b = D[name], back[name]
        np.testing.assert_array_equal(a["ts"], b["ts"])
        for col, kind in ev.field_kinds(D.layout(name)).items():
            if kind == "comm":
                np.testing.assert_array_equal(D.comm_names(a[col]), back.comm_names(b[col]))
            else:
                np.testing.assert_array_equal(a[col], b[col], err_msg=col)


def test_bounded_fuzz_of_pages_and_files():
    """A few thousand mutated pages through the walker, gather, interning and field copy, and
    mutated whole files through load() (tests/fuzzing_tracedat.py runs the long ASan rounds)."""
    from fuzzing_tracedat import run
    assert run(5, pages=2000, files=12) == 2012


RECORD = Path(__file__).resolve().parents[1] / "bench" / "record_pingpong.sh"


@pytest.mark.skipif(os.environ.get("FTFAST_RECORD_TESTS") != "1" or shutil.which("trace-cmd") is None,
                    reason="records with trace-cmd (root, tracefs): set FTFAST_RECORD_TESTS=1")
@pytest.mark.parametrize("opts", [["-C", "mono"], ["-C", "x86-tsc"], ["--file-version", "6"],
                                  ["--compression", "none"]], ids=lambda o: " ".join(o))
def test_own_recording_matches_report_to_the_ns(opts, tmp_path):
    """trace-cmd record of this machine in each clock / version / compression variant: the .dat
    equals `trace-cmd report -t` (ns time stamps) field by field."""
    dat = tmp_path / "v.dat"
    subprocess.run(["bash", str(RECORD), str(dat), "1", *opts], check=True,
                   env=dict(os.environ, PAIRS="0"), capture_output=True)
    text = subprocess.run(["trace-cmd", "report", "-t", "-i", str(dat)], check=True,
                          capture_output=True).stdout
    # the recording is in instance 'ftfast': report prefixes its lines with the buffer name
    text = b"\n".join(ln[len(b"ftfast: "):] if ln.startswith(b"ftfast: ") else ln
                      for ln in text.split(b"\n"))
    (tmp_path / "v.txt").write_bytes(text)
    T = ftrace_fast.load(tmp_path / "v.txt")
    D = ftrace_fast.load(dat)
    assert D.dat.buffer == "ftfast" and T.stats.events == D.stats.events > 100
    for name, a in T.events.items():
        np.testing.assert_array_equal(D[name]["ts"], a["ts"], err_msg=name)
    assert compare(T, D, dat, ns=True) == T.stats.events
