"""Hostile input to load() (issue 11, the input side): bytes that are not ftrace, corrupt
compressed data, paths that cannot be opened, lines too long to hold, values that do not fit
their columns, filters that must keep what they match, escapes in messages, memory bounds.

Memory is checked in a subprocess under a resource.setrlimit(RLIMIT_AS) cap, with bombs made
in the test from a stream (a few hundred MB expanded), so a regression fails fast instead of
eating the machine.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import re
import socket
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import _ftparse
from ftrace_fast._text import printable
from ftrace_fast.trace import LineError

sys.path.insert(0, os.path.dirname(__file__))
from helpers import load_text  # noqa: E402
from refparser import refparse  # noqa: E402
from test_reference import assert_same, load_fast  # noqa: E402

WAKE = b"  a-1 [000] .... 1.%06d: sched_waking: comm=b pid=2 prio=120 target_cpu=000\n"
GOOD = b"".join(WAKE % i for i in range(200))


def good_lines(n):
    return b"".join(WAKE % (i % 1000000) for i in range(n))


def _load(src, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(src, **kw)


# ---------------------------------------------------------------------------------------------
# not ftrace


def test_random_bytes_are_not_an_ftrace_text_log():
    data = random.Random(5).randbytes(2 << 20)
    with pytest.raises(ftrace_fast.InputError, match=r"^<stream>: not an ftrace text log: "
                       r"[0-9,]+ of [0-9,]+ lines malformed, \d+ event lines? \(first: line 1: "):
        _load(io.BytesIO(data))
    with pytest.raises(ftrace_fast.InputError, match="not an ftrace text log"):
        _load(io.BytesIO(gzip.compress(data, 1)))


def test_the_rule_counts_event_lines_not_kept_ones_and_spares_small_inputs():
    junk = b"".join(b"junk line %d\n" % i for i in range(150))
    # 150 malformed, 200 events (even when a filter drops them all): an ftrace log
    t = _load(io.BytesIO(GOOD + junk), pids=[99])
    assert (t.stats.events, t.stats.filtered, t.stats.malformed) == (0, 200, 150)
    assert t.stats.malformed_summary() == "150 of 350 lines malformed"
    # 150 malformed, 2 events (< 2% of 152): not one
    with pytest.raises(ftrace_fast.InputError, match="150 of 152 lines malformed, 2 event lines"):
        _load(io.BytesIO(good_lines(2) + junk))
    # fewer than 100 lines that are not headers: too little evidence, loaded with the errors
    t = _load(io.BytesIO(b"# tracer: nop\n" + b"".join(junk.splitlines(True)[:40])))
    assert t.stats.events == 0 and t.stats.malformed > 0
    assert t.stats.as_dict() == {"lines": t.stats.lines, "events": 0, "headers": 1,
                                 "filtered": 0, "malformed": t.stats.lines - 1,
                                 "truncated_last_line": False,
                                 "error_counts": {"no_prefix": t.stats.lines - 1}}


# ---------------------------------------------------------------------------------------------
# inputs that cannot be read: one line, an InputError


def _corrupt(data):
    b = bytearray(data)
    for i in range(20, len(b) - 20, 7):
        b[i] ^= 0x55
    return bytes(b)


def _zstd(data):
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind,compress", [("gzip", gzip.compress), ("xz", lzma.compress),
                                           ("bzip2", bz2.compress), ("zstd", _zstd)])
def test_corrupt_compressed_input_is_an_input_error(tmp_path, kind, compress):
    path = tmp_path / "t"
    path.write_bytes(_corrupt(compress(GOOD * 20)))
    with pytest.raises(ftrace_fast.InputError) as e:
        _load(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: corrupt or truncated {kind} input: ") and "\n" not in msg


def test_paths_that_cannot_be_opened(tmp_path):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "f").write_bytes(GOOD)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        cases = [
            (tmp_path / "loop1", "too many levels of symbolic links (a symlink loop?)"),
            (tmp_path / "f" / "x", "a component of the path is not a directory"),
            (tmp_path / ("x" * 5000), "file name too long"),
            (tmp_path / "sock", "is a socket, not a file"),
        ]
        for path, what in cases:
            with pytest.raises(ftrace_fast.InputError) as e:
                _load(str(path))
            assert str(e.value) == f"{path}: {what}"
    finally:
        sock.close()


def test_a_closed_stdin_is_an_input_error():
    code = ("import ftrace_fast\ntry:\n    ftrace_fast.load('-')\n"
            "except ftrace_fast.InputError as e:\n    print(e)\n")
    p = subprocess.run(f"exec {sys.executable} -c \"{code}\" <&-", shell=True,
                       capture_output=True, text=True, timeout=60)
    assert (p.stdout, p.stderr) == ("<stdin>: standard input is closed\n", "")


def test_a_path_with_escapes_is_shown_escaped(tmp_path):
    with pytest.raises(ftrace_fast.InputError) as e:
        _load(str(tmp_path / "a\x1b[2Jb"))
    assert str(e.value) == f"{tmp_path}/a\\x1b[2Jb: no such file"


# ---------------------------------------------------------------------------------------------
# values that do not fit their column: malformed, never wrapped

RANGE_LINES = [
    (b"a-1 [000] .... 1.0: sched_migrate_task: comm=b pid=2 prio=120 orig_cpu=0 "
     b"dest_cpu=4294967296",
     "line 1: sched_migrate_task: dest_cpu out of range, got '4294967296'"),
    (b"a-1 [000] .... 1.0: sched_waking: comm=b pid=2147483648 prio=120 target_cpu=000",
     "line 1: sched_waking: pid out of range, got '2147483648 prio=120 target_cpu=000'"),
    (b"a-1 [000] .... 1.0: sched_waking: comm=b pid=2 prio=-2147483649 target_cpu=000",
     "line 1: sched_waking: prio out of range, got '-2147483649 target_cpu=000'"),
    (b"a-1 [000] .... 1.0: sched_waking: comm=b pid=2 prio=120 success=256 target_cpu=000",
     "line 1: sched_waking: success out of range, got '256 target_cpu=000'"),
    (b"a-1 [000] .... 1.0: sched_waking: comm=b pid=2 prio=120 target_cpu=0x100000000",
     "line 1: sched_waking: target_cpu out of range, got '0x100000000'"),
    (b"a-1 [000] .... 1.0: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> "
     b"next_comm=b next_pid=4294967298 next_prio=120",
     "line 1: sched_switch: next_pid out of range, got '4294967298 next_prio=120'"),
    (b"a-1 [000] .... 1.0: sched_switch: a:1 [120] S ==> b:4294967298 [120]",
     "line 1: sched_switch: next pid [prio] out of range, got '4294967298 [120]'"),
    (b"a-1 [000] .... 1.0: sched_process_fork: comm=a pid=1 child_comm=b child_pid=9999999999",
     "line 1: sched_process_fork: child_pid out of range, got '9999999999'"),
    (b"a-1 [000] .... 1.0: kvm_exit: vcpu 4294967297 reason HLT rip 0x0 info1 0x0 info2 0x0 "
     b"intr_info 0x0 error_code 0x0",
     "line 1: kvm_exit: vcpu out of range, got '4294967297 reason HLT rip 0x0 info1 0x0 ...'"),
    (b"a-1 [000] .... 1.0: irq_handler_entry: irq=0x100000000 name=x",
     "line 1: irq_handler_entry: irq out of range, got '0x100000000 name=x'"),
    (b"a-1 [000] .... 1.0: softirq_entry: vec=4294967296 [action=TIMER]",
     "line 1: softirq_entry: vec out of range, got '4294967296 [action=TIMER]'"),
    (b"a-1 [000] .... 1.0: kvm_vcpu_wakeup: ns=5 waited=300 valid=1",
     "line 1: kvm_vcpu_wakeup: waited out of range, got '300 valid=1'"),
    (b"a-1 [000] .... 1.0: block_rq_issue: 8,4294967296 W 4096 () 100 + 8 [a]",
     "line 1: block_rq_issue: minor out of range, got '4294967296 W 4096 () 100 + 8 [a]'"),
    (b"a-1 [000] .... 1.0: block_rq_complete: 8,0 W () 100 + 4294967296 [0]",
     "line 1: block_rq_complete: nr_sector out of range, got '4294967296 [0]'"),
    (b"a-1 [000] .... 1.0: block_rq_issue: dev=2251799813685248 sector=1 nr_sector=8",
     "line 1: block_rq_issue: dev out of range, got '2251799813685248 sector=1 nr_sector=8'"),
    (b"CPU:1 [LOST -5 EVENTS]", "line 1: LOST count out of range, got '-5 EVENTS]'"),
    (b" 0)  bash-4294967296  |   0.245 us    |  f();",
     "line 1: pid out of range, got '4294967296  |   0.245 us    |  f();'"),
]


@pytest.mark.parametrize("line,message", RANGE_LINES, ids=[m.split(":")[1] + m.split(" ")[-6]
                                                            for _, m in RANGE_LINES])
def test_values_out_of_range_are_malformed_not_wrapped(line, message):
    t = load_text(line + b"\n")
    assert (t.stats.events, t.stats.malformed) == (0, 1)
    assert [(e.code, e.message) for e in t.errors] == [("out_of_range", message)]
    assert len(t.lost) == 0
    # the reference parser says the same
    assert_same(load_fast(line + b"\n"), refparse(line + b"\n"))


def test_a_pid_past_int32_is_no_prefix_anchor():
    payload = b" [000] .... 1.0: sched_waking: comm=b pid=9 prio=120 target_cpu=0\n"
    t = load_text(b"a-99999999999" + payload + b"a-2147483647" + payload)
    assert [e.code for e in t.errors] == ["no_prefix"]
    assert t.events["sched_waking"]["pid"].tolist() == [2**31 - 1]


def test_the_cpu_bound_is_the_same_for_prefixes_lost_markers_and_function_graph():
    text = (b"a-1 [1048576] .... 1.0: sched_waking: comm=b pid=9 prio=120 target_cpu=0\n"
            b"CPU:1048576 [LOST 3 EVENTS]\n"
            b" 1048576)   0.245 us    |  f();\n"
            b"a-1 [1048577] .... 1.0: sched_waking: comm=b pid=9 prio=120 target_cpu=0\n"
            b"CPU:1048577 [LOST 3 EVENTS]\n"
            b" 1048577)   0.245 us    |  f();\n"
            b"CPU:-1 [LOST 3 EVENTS]\n")
    t = load_text(text)
    assert (t.stats.events, t.stats.headers, t.stats.malformed) == (2, 1, 4)
    assert t.events["sched_waking"]["cpu"].tolist() == [1 << 20]
    assert t.events["funcgraph_entry"]["cpu"].tolist() == [1 << 20]
    assert t.lost["cpu"].tolist() == [1 << 20]
    assert_same(load_fast(text), refparse(text))
    with pytest.raises(ValueError):
        _ftparse.Parser(cpus=[(1 << 20) + 1])
    assert load_text(text, cpus=[1 << 20]).stats.events == 2


# ---------------------------------------------------------------------------------------------
# a match-everything filter keeps every line; context selects the lines without a time or task

FUNCGRAPH = b"""# tracer: function_graph
 1)               |  early() {
 1)   0.100 us    |    g();
 1)   1.000 us    |  }
 ------------------------------------------
 1)    bash-431    =>    sleep-77
 ------------------------------------------
 1)   0.100 us    |  h();
 0)  bash-431    |   0.200 us    |  k();
 0)   0.300 us    |  m();
100.000010 |   2)  cat-9   |   0.100 us    |  n();
 2)   0.200 us    |  p();
100.000030 |   2)  cat-9   |   0.100 us    |  q();
 2)   0.200 us    |  r();
"""


def _kept(t):
    return sorted(int(x) for a in t.events.values() for x in a["line"])


def test_match_everything_filters_keep_every_function_graph_line():
    everything = _kept(load_text(FUNCGRAPH))
    assert len(everything) == 10
    for flt in ({"comm": "."}, {"pids": list(range(0, 1000))}, {"start": 0},
                {"start": "0s", "end": 2**63 - 1}):
        assert _kept(load_text(FUNCGRAPH, **flt)) == everything, flt
        assert_same(load_fast(FUNCGRAPH, **flt), refparse(FUNCGRAPH, **flt))


@pytest.mark.parametrize("flt,lines", [
    # lines 2-4 have no task yet (kept: the filter cannot place them); 8 is sleep's (the switch)
    ({"comm": "^sleep$"}, [2, 3, 4, 8]),
    ({"pids": [431]}, [2, 3, 4, 9, 10]),
    ({"comm": "cat"}, [2, 3, 4, 11, 12, 13, 14]),
    # lines 12 and 14 take the time of the line before them on CPU 2
    ({"start": "100.00002"}, [2, 3, 4, 8, 9, 10, 13, 14]),
    ({"end": "100.00002"}, [2, 3, 4, 8, 9, 10, 11, 12]),
])
def test_function_graph_lines_are_selected_by_their_cpu_context(flt, lines):
    assert _kept(load_text(FUNCGRAPH, **flt)) == lines
    assert_same(load_fast(FUNCGRAPH, **flt), refparse(FUNCGRAPH, **flt))


# ---------------------------------------------------------------------------------------------
# the comm filter's callback: errors propagate


class _Raises:
    def __init__(self, exc):
        self.exc = exc

    def search(self, s):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), re.error("boom"), RecursionError("deep")])
def test_an_error_in_the_comm_filter_propagates(exc):
    parser = _ftparse.Parser(comm=_Raises(exc))
    buf = bytearray(GOOD) + bytes(64)
    with pytest.raises(type(exc)):
        parser.feed(buf, len(GOOD))
    assert parser.lines == 1  # stopped at the line whose comm raised


# ---------------------------------------------------------------------------------------------
# messages: columns on bytes, escapes, the cause of a truncated last line


def test_the_column_of_an_error_counts_bytes_even_after_invalid_utf8():
    t = load_text(b"a-1 [000] .... 1.0: sched_waking: comm=b\xff\xfe pid=2 prio=120 target_cpu=x\n")
    assert [e.message for e in t.errors] == [
        "line 1: sched_waking: expected 'target_cpu=', got 'x'"]


def test_messages_escape_control_characters_and_keep_the_raw_bytes():
    line = b"\x1b]0;owned\x07\x1b[2J garbage \x00\x9b31m\n"
    t = load_text(line)
    (e,) = t.errors
    assert e.raw == line[:-1]
    assert e.message == ("line 1: not an ftrace line (no 'comm-pid [cpu] timestamp:' prefix): "
                         "'\\x1b]0;owned\\x07\\x1b[2J garbage \\x00\\x9b31m'")
    assert printable(e.message) == e.message
    t = load_text(b"a-1 [000] .... 1.0: sched_waking: comm=b pid=\x1b[31m prio=120\n")
    assert t.errors[0].message == "line 1: sched_waking: expected 'pid=', got '\\x1b[31m prio=120'"


def test_printable_escapes_c0_c1_del_and_bidi_and_leaves_text():
    assert printable("CPU 0/KVM ü 中") == "CPU 0/KVM ü 中"
    assert printable("a\x00b\x07c\x1bd\x7fe\x85f\u202eg\n") == \
        "a\\x00b\\x07c\\x1bd\\x7fe\\x85f\\u202eg\\x0a"
    assert printable(b"x\xffy\x1b") == "x\\xffy\\x1b"
    assert printable(os.fsdecode(b"f\xff\x1b.txt")) == "f\\xff\\x1b.txt"
    assert printable("\ud800") == "\\ud800"


def test_an_unterminated_last_line_keeps_the_error_it_had():
    t = load_text(b"  a-1 [000] .... 1.0: sched_waking: comm=a pid=2 prio=120 target_cpu=0\n"
                  b"  a-1 [000] .... 1.0: sched_waking: comm=a pid=2 prio=99999999999")
    (e,) = t.errors
    assert (e.code, e.cause, t.stats.truncated_last_line) == \
        ("truncated_last_line", "out_of_range", True)
    assert e.message == ("line 2: truncated last line (no newline at the end of the input); "
                         "sched_waking: prio out of range, got '99999999999'")


# ---------------------------------------------------------------------------------------------
# long lines: malformed, skipped while streaming, the same in any chunking


@pytest.mark.parametrize("final", [False, True])
def test_a_long_line_is_malformed_and_the_same_in_any_chunking(final):
    long = b"x" * 150 + b"\x1b" + b"y" * 400
    text = good_lines(4) + long + b"\n" + good_lines(4) + (long if final else b"")
    want = None
    for chunk in (1, 7, 64, 200, 4096, None):
        t = load_text(text, max_line=100, chunk_size=chunk)
        got = (t.stats.as_dict(), t.errors, {k: v.tobytes() for k, v in t.events.items()})
        if want is None:
            want = got
        assert got == want, chunk
    stats, errors, _ = want
    assert stats["malformed"] == 2 if final else 1
    e = errors[0]
    assert (e.line, e.offset, e.code, e.nbytes, e.raw) == \
        (5, 4 * len(WAKE % 0), "line_too_long", 551, long[:200])
    assert e.message == ("line 5: line of 551 bytes, longer than the line limit of 100 bytes "
                         "(load(max_line=) or FTFAST_MAX_LINE): '" + "x" * 120 + "...'")
    if final:
        assert (errors[1].code, errors[1].cause) == ("truncated_last_line", "line_too_long")
    assert_same(load_fast(text, max_line=100), refparse(text, max_line=100))


def test_the_line_limit_comes_from_the_argument_or_the_environment(monkeypatch):
    text = good_lines(4) + b"z" * 3000 + b"\n"
    assert load_text(text).errors[0].code == "no_prefix"
    assert load_text(text, max_line="2K").errors[0].code == "line_too_long"
    monkeypatch.setenv("FTFAST_MAX_LINE", "1000")
    assert load_text(text).errors[0].code == "line_too_long"
    assert load_text(text, max_line=4096).errors[0].code == "no_prefix"
    monkeypatch.setenv("FTFAST_MAX_LINE", "lots")
    with pytest.raises(ValueError, match="FTFAST_MAX_LINE: not a size: 'lots'"):
        load_text(text)
    with pytest.raises(ValueError, match="at least 1 byte"):
        load_text(text, max_line=0)


def test_parts_parsed_in_parallel_count_long_lines_like_one_parser(tmp_path):
    from ftrace_fast import trace as trace_mod
    text = (GOOD + b"q" * 5000 + b"\n") * 4 + GOOD
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    whole = load_text(text, max_line=1000)
    parts = trace_mod._load(str(path), part_offsets=[len(text) // 3, 2 * len(text) // 3],
                            max_line=1000, chunk_size=512, warn=False)
    assert parts.stats == whole.stats and parts.errors == whole.errors
    assert whole.stats.error_counts == {"line_too_long": 4}


# ---------------------------------------------------------------------------------------------
# memory, in a subprocess under an address-space cap

_CAPPED = textwrap.dedent("""
    import io, resource, sys, warnings
    import ftrace_fast
    ftrace_fast.load      # the package imports lazily: NumPy and the parser come in before the cap
    warnings.simplefilter("ignore")
    with open("/proc/self/status") as f:
        vm = dict(l.split(":", 1) for l in f)
    base = int(vm["VmSize"].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (base + CAP_MB * 2**20, resource.RLIM_INFINITY))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    BODY
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) // 1024)
""")


def _run_capped(cap_mb, body):
    code = _CAPPED.replace("CAP_MB", str(cap_mb)).replace("BODY", textwrap.dedent(body).strip())
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return p


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_gzip_bomb_of_one_line_stays_within_a_small_memory():
    # 384 MiB of zeros with no newline, gzip'ed in the test from a stream (~0.4 MB), then
    # three short lines: the long line is skipped unread, the rest parsed
    body = """
        import zlib
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        zero = bytes(1 << 20)
        tail = b"\\n" + b"a-1 [000] .... 1.0: sched_waking: comm=b pid=2 prio=1 target_cpu=0\\n" * 3
        bomb = b"".join([z.compress(zero) for _ in range(384)] + [z.compress(tail), z.flush()])
        t = ftrace_fast.load(io.BytesIO(bomb))
        e = t.errors[0]
        print(t.stats.events, t.stats.malformed, e.code, e.nbytes)
    """
    p = _run_capped(160, body)
    assert p.returncode == 0, p.stderr[-2000:]
    result, grew_mb = p.stdout.splitlines()
    assert result == f"3 1 line_too_long {384 << 20}"
    assert int(grew_mb) < 100, f"peak RSS grew by {grew_mb} MB"  # 1 GB+ before the limit


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_many_distinct_event_names_cost_memory_in_proportion():
    # 100,000 event names seen once each: 598 MB before per-name buffers started small and the
    # dtypes were shared (ftfast issue 11: 644 MB)
    body = """
        data = b"".join(b"a-1 [000] .... 1.%06d: ev%d: x=1\\n" % (i, i) for i in range(100000))
        t = ftrace_fast.load(io.BytesIO(data))
        print(len(t.events))
    """
    p = _run_capped(400, body)
    assert p.returncode == 0, p.stderr[-2000:]
    names, grew_mb = p.stdout.splitlines()
    assert names == "100000" and int(grew_mb) < 120, f"peak RSS grew by {grew_mb} MB"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_running_out_of_memory_is_one_clear_error():
    # an endless stream of events under a 96 MB cap: the records outgrow it
    body = """
        class Endless(io.RawIOBase):
            line = b"  a-1 [000] .... 1.000000: sched_waking: comm=b pid=2 prio=120 target_cpu=0\\n"
            block = line * 20000
            def readable(self):
                return True
            def readinto(self, b):
                n = min(len(b), len(self.block))
                b[:n] = self.block[:n]
                return n
        try:
            ftrace_fast.load(io.BufferedReader(Endless()))
        except ftrace_fast.OutOfMemoryError as exc:
            print(isinstance(exc, MemoryError), str(exc).split(" (")[0])
    """
    p = _run_capped(96, body)
    assert p.returncode == 0, p.stderr[-2000:]
    line = p.stdout.splitlines()[0]
    assert re.fullmatch(r"True <stream>: out of memory while loading at line [0-9,]+", line), line


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_huge_pid_filter_table_that_cannot_be_allocated_is_a_memory_error():
    body = """
        from ftrace_fast import _ftparse
        try:
            _ftparse.Parser(pids=[2**30])
        except MemoryError as exc:
            print(exc)
    """
    p = _run_capped(64, body)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[0] == "out of memory for the pid filter table"


def test_line_error_defaults_keep_old_records_usable():
    e = LineError(line=3, offset=0, code="no_prefix", col=-1, what="", event=None, text="a\x1bb")
    assert e.message == \
        "line 3: not an ftrace line (no 'comm-pid [cpu] timestamp:' prefix): 'a\\x1bb'"
    assert np.int64(e.line) == 3


# ---------------------------------------------------------------------------------------------
# differential: numbers at the columns' edges, Cython against the reference parser


def _edge_numbers(rng, data):
    """Numbers of a log replaced by values at and past the int8/int32/int64 and CPU edges."""
    from fuzzing import EDGES
    spans = [m.span() for m in re.finditer(rb"\d+", data)]
    b = bytearray(data)
    for i, j in sorted(rng.sample(spans, min(len(spans), rng.randint(1, 12))), reverse=True):
        b[i:j] = rng.choice(EDGES)
    return bytes(b)


@pytest.mark.parametrize("block", range(3))
def test_edge_numbers_match_the_reference(block):
    import tracegen
    failures = []
    for seed in range(block * 60, block * 60 + 60):
        rng = random.Random(seed)
        variant = tracegen.VARIANTS[seed % len(tracegen.VARIANTS)]
        data = _edge_numbers(rng, tracegen.generate(rng, variant, rng.randint(5, 30)).data)
        flt = rng.choice([{}, {}, dict(pids=[0, 1, 42]), dict(comm="^[a-k]"),
                          dict(start=10**9, end=10**15), dict(max_line=60)])
        from test_reference import differences
        diffs = differences(load_fast(data, **flt), refparse(data, **flt), data.split(b"\n"),
                            limit=4)
        if diffs:
            failures.append(f"seed {seed} {flt}:\n    " + "\n    ".join(diffs))
    assert not failures, "\n".join(failures)
