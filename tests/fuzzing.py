"""Mutation fuzzing of the parser: real lines mutated byte by byte, random bytes, random
chunkings and filters.  Each case must load without a crash and keep the line accounting.

In the test suite (test_fuzz.py) it runs a bounded number of cases.  For long runs under
AddressSanitizer and UBSan build a sanitized extension and preload the runtimes:

    FTFAST_SANITIZE=1 pip install --no-build-isolation -e .
    ASAN_OPTIONS=detect_leaks=0 \\
    LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) \\
        python tests/fuzzing.py --seconds 600 --seed 1
"""

import argparse
import gzip
import io
import os
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ftrace_fast  # noqa: E402
from ftrace_fast import trace as trace_mod  # noqa: E402
from helpers import DATA, corpus_dir  # noqa: E402

ALPHABET = b" -:[]()=|.0123456789abcdefxX>\t\r\n\x00\xff+!#<>,/"
# numbers at and past the edges of the int8 / int32 / int64 columns and of the CPU tables
EDGES = (b"127", b"128", b"-129", b"2147483647", b"2147483648", b"-2147483649", b"4294967296",
         b"0xffffffff", b"0x100000000", b"9223372036854775808", b"1048576", b"1048577", b"-5")
MAGICS = (b"\x1f\x8b", b"\xfd7zXZ", b"BZh", b"\x28\xb5\x2f\xfd", b"\x17\x08\x44", b"PERFILE2",
          b"\xd4\xc3\xb2\xa1")


# what must never reach a terminal from a message (ftrace_fast._text.printable escapes it)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def seed_lines(max_per_file=400):
    files = sorted((DATA / "public").glob("*.txt")) + sorted(DATA.glob("*.txt.gz"))
    c = corpus_dir()
    if c is not None:
        files += sorted(c.glob("*/*.txt")) + sorted(c.glob("*/*.txt.gz"))
    out = []
    for f in files:
        data = gzip.open(f).read() if f.suffix == ".gz" else f.read_bytes()
        lines = data.split(b"\n")[:max_per_file]
        if lines:
            out.append(lines)
    return out


def make_case(rnd, seeds):
    lines = rnd.choice(seeds)
    sample = [bytearray(rnd.choice(lines)) for _ in range(rnd.randint(1, 20))]
    for s in sample:
        for _ in range(rnd.randint(0, 6)):
            op = rnd.random()
            if op < 0.3 and s:
                s[rnd.randrange(len(s))] = rnd.choice(ALPHABET)
            elif op < 0.55:
                i = rnd.randint(0, len(s))
                s[i:i] = bytes([rnd.choice(ALPHABET)]) * rnd.randint(1, 3)
            elif op < 0.8 and s:
                i = rnd.randrange(len(s))
                del s[i:i + rnd.randint(1, 8)]
            elif op < 0.85 and s:
                i = rnd.randrange(len(s))
                s[i:i] = s[:rnd.randint(0, 40)]
            elif op < 0.9 and s:
                # a number of the line replaced by an edge value
                digits = [i for i in range(len(s)) if 48 <= s[i] <= 57]
                if digits:
                    i = rnd.choice(digits)
                    j = i
                    while j < len(s) and 48 <= s[j] <= 57:
                        j += 1
                    s[i:j] = rnd.choice(EDGES)
            else:
                s[:] = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 60)))
    data = b"\n".join(bytes(s) for s in sample)
    if rnd.random() < 0.5:
        data += b"\n"
    kw = {"chunk_size": rnd.choice([1, 3, 17, 256, 1 << 16])}
    r = rnd.random()
    if r < 0.2:
        kw["events"] = ["sched_switch", "stack_frame", "funcgraph_exit", "kvm_exit"]
    elif r < 0.3:
        kw["pids"] = [0, 1, 2025]
    elif r < 0.4:
        kw["comm"] = "K"
    elif r < 0.5:
        kw["start"], kw["end"] = 1.0, 1e6
    elif r < 0.55:
        kw["cpus"] = [0, 1]
    if rnd.random() < 0.2:
        kw["keep_text"] = True
        if rnd.random() < 0.5:
            kw["records"] = False
    if rnd.random() < 0.15:
        # a line limit the lines cross: long lines skipped whole or read through by blocks()
        kw["max_line"] = rnd.choice([8, 40, 100])
    if kw.get("records") is False and rnd.random() < 0.6 and data:
        # ftfast filter's streamed copy, in chunks of a few lines
        kw["stream_chunk"] = rnd.randint(1, max(len(data) // 3, 1))
    elif rnd.random() < 0.3 and data:
        # parsed in parts (threads), compared with the one-thread parse
        kw["part_offsets"] = sorted(rnd.randrange(len(data)) for _ in range(rnd.randint(1, 3)))
    return data, kw


def _same(a, b):
    assert list(a.events) == list(b.events)
    for k in a.events:
        assert a.events[k].tobytes() == b.events[k].tobytes(), k
    assert (a.comms, a.symbols, a.stats, a.errors, a.clock, a.format) == \
        (b.comms, b.symbols, b.stats, b.errors, b.clock, b.format)
    assert a.text_arena.tobytes() == b.text_arena.tobytes()
    assert a.lost.tobytes() == b.lost.tobytes()
    assert list(a._layouts.items()) == list(b._layouts.items())
    assert (a.kept_text is None) == (b.kept_text is None)
    assert a.kept_text is None or b"".join(a.kept_text) == b"".join(b.kept_text)


def _load_parts(data, kw):
    """The same input from a file, parsed in parts; must equal the one-thread parse."""
    kw = dict(kw)
    offsets = kw.pop("part_offsets")
    fd, path = tempfile.mkstemp(prefix="ftfast-fuzz-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        whole = ftrace_fast.load(io.BytesIO(data), **kw)
        parts = trace_mod._load(path, part_offsets=offsets, **kw)
    finally:
        os.unlink(path)
    _same(whole, parts)
    return parts


def _load_streamed(data, kw):
    """The filtered copy streamed (ftfast filter's path: small chunks on two threads, the
    text handed to a sink as they merge); must equal the one-thread parse."""
    kw = dict(kw)
    chunk = kw.pop("stream_chunk")
    got = []
    fd, path = tempfile.mkstemp(prefix="ftfast-fuzz-")
    old = trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        whole = ftrace_fast.load(io.BytesIO(data), **kw)
        trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES = chunk, 0
        t = ftrace_fast.load(path, cache=False, threads=2,
                             _text_sink=lambda pieces, parser: got.extend(map(bytes, pieces)),
                             **kw)
    finally:
        trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES = old
        os.unlink(path)
    got.extend(map(bytes, t.kept_text))
    t.kept_text = [b"".join(got)]
    _same(whole, t)
    return t


def check_case(data, kw):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "stream_chunk" in kw:
                t = _load_streamed(data, kw)
            elif "part_offsets" in kw:
                t = _load_parts(data, kw)
            else:
                t = ftrace_fast.load(io.BytesIO(data), **kw)
    except ftrace_fast.InputError as exc:
        # only inputs that start like a compressed or foreign binary file may be refused, or
        # ones with enough lines for the not-ftrace rule
        assert data.startswith(MAGICS) or (
            "not an ftrace text log" in str(exc)
            and data.count(b"\n") + 1 >= trace_mod.NOT_FTRACE_MIN_LINES), data[:16]
        return
    s = t.stats
    assert s.lines == s.events + s.headers + s.filtered + s.malformed, (data, s)
    # the span and CPUs the parser noted are those of the arrays
    assert t.span == t._span() and t.cpus() == t._cpus()
    assert s.lines == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if kw.get("records", True):
        assert s.events == sum(len(a) for a in t.events.values())
    else:
        assert t.events == {}
    if kw.get("keep_text"):
        assert sum(len(x) for x in t.kept_text) <= len(data)
    for a in t.events.values():
        assert a["line"].min() >= 1 and a["line"].max() <= s.lines
        for f in ("payload", "text"):
            if f + "_off" in a.dtype.names:
                assert (a[f + "_off"] + a[f + "_len"]).max() <= len(t.text_arena)
        for f in a.dtype.names:
            if f == "comm" or f.endswith("_comm"):
                assert a[f].max() < len(t.comms) and a[f].min() >= -1
    for e in t.errors:
        assert 1 <= e.line <= s.lines
        assert not _CONTROL.search(e.message), e.message
        if e.code == "line_too_long" or e.cause == "line_too_long":
            assert e.nbytes > kw.get("max_line", trace_mod.DEFAULT_MAX_LINE)
    for name, a in t.events.items():
        if t.layout(name) == "sched_migrate_task":
            assert (a["dest_cpu"] >= -(2**31)).all()


def run(seed, n=None, seconds=None):
    rnd = random.Random(seed)
    seeds = seed_lines()
    deadline = time.time() + seconds if seconds else None
    done = 0
    while (n is None or done < n) and (deadline is None or time.time() < deadline):
        data, kw = make_case(rnd, seeds)
        check_case(data, kw)
        done += 1
    return done


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    print("cases:", run(a.seed, seconds=a.seconds))
