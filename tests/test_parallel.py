"""Parsing a plain file in parts, one thread each, gives the very Trace of a one-thread parse.

Every fixture and corpus file (and generated and damaged traces) is loaded whole, then cut
into parts at many places -- at every line start for small files, at the lines where state
crosses a cut (stack frames after their event, LOST markers, function_graph, trace-cmd
multi-file headers) and at random offsets -- and the two Traces are compared field by field:
arrays, intern tables, text arena, LOST markers, every error record, line kinds, accounting,
clock, format and event layouts, in the same order.
"""

import gzip
import random
import re
import warnings

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import _ftparse, trace as trace_mod
from helpers import DATA, corpus_dir

import tracegen

CORPUS = corpus_dir()


def _files():
    out = sorted((DATA / "public").glob("*.txt")) + sorted(DATA.glob("*.txt.gz"))
    if CORPUS is not None:
        out += sorted(CORPUS.glob("*/*.txt")) + sorted(CORPUS.glob("*/*.txt.gz"))
    return out


def _plain(path, tmp_path):
    if path.suffix != ".gz":
        return path
    out = tmp_path / path.name[:-3]
    out.write_bytes(gzip.decompress(path.read_bytes()))
    return out


def _load(path, offsets=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if offsets is None:
                return ftrace_fast.load(path, threads=1, **kw)
            return trace_mod._load(path, part_offsets=offsets, **kw)
        except trace_mod.ParseError as exc:
            return ("ParseError", str(exc))


def assert_same_trace(a, b, why=""):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b, why
        return
    assert list(a.events) == list(b.events), why
    for k in a.events:
        assert a.events[k].dtype == b.events[k].dtype, (why, k)
        if not np.array_equal(a.events[k], b.events[k]):
            bad = np.flatnonzero(a.events[k] != b.events[k])[:3]
            raise AssertionError(f"{why}: {k} records differ at {bad.tolist()}: "
                                 f"{a.events[k][bad]} vs {b.events[k][bad]}")
    assert a.comms == b.comms, why
    assert a.symbols == b.symbols, why
    assert np.array_equal(a.text_arena, b.text_arena), why
    assert a.lost.tobytes() == b.lost.tobytes(), why
    assert a.stats == b.stats, why
    assert a.errors == b.errors, why
    assert a.clock == b.clock, why
    assert a.format == b.format, why
    assert list(a._layouts.items()) == list(b._layouts.items()), why
    for t in (a, b):          # the span and CPUs the parser noted are those of the arrays
        assert t.span == t._span() and t.cpus() == t._cpus(), why
    for f in ("line_kinds", "kept_text"):
        x, y = getattr(a, f), getattr(b, f)
        if x is None or y is None:
            assert x is None and y is None, (why, f)
        elif f == "kept_text":
            assert b"".join(x) == b"".join(y), why
        else:
            assert np.array_equal(x, y), (why, f)


def _line_starts(data):
    return [0] + [m.end() for m in re.finditer(b"\n", data)][:-1]


def _awkward_offsets(data, rng, n_random=12):
    """Line starts where state crosses a cut, then random offsets (any byte)."""
    starts = _line_starts(data)
    special = []
    for i, s in enumerate(starts):
        line = data[s:s + 200].lstrip()
        if (line.startswith((b"=>", b"CPU:", b"#", b"cpus=")) or b"|" in line.split(b"\n")[0]
                or b".dat:" in line.split(b"\n")[0] or b": cpus=" in line.split(b"\n")[0]):
            special += [s, starts[i - 1] if i else s, starts[i + 1] if i + 1 < len(starts) else s]
    rng.shuffle(special)
    return special[:40] + [rng.randrange(1, len(data)) for _ in range(n_random) if len(data) > 1]


OPTIONS = [
    {},
    {"mark_lines": True, "keep_text": True, "comm": "KVM|qemu|a"},
    {"events": ["sched_switch", "sched_wakeup", "kernel_stack", "stack_frame"], "cpus": [0, 1]},
    {"pids": [0, 1, 2, 100, 1000, 1234], "start": 0, "end": 10**19 // 10},
    {"strict": True},
    {"keep_text": True, "records": False, "comm": "KVM|qemu|a", "pids": [1234]},
]


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parts_equal_one_thread_on_real_files(path, tmp_path):
    plain = _plain(path, tmp_path)
    data = plain.read_bytes()
    rng = random.Random(path.name)
    big = len(data) > 1 << 20
    for i, kw in enumerate(OPTIONS[:2] if big else OPTIONS):
        whole = _load(plain, **kw)
        cuts = [[len(data) // 2], [len(data) // 3, 2 * len(data) // 3],
                sorted(rng.randrange(len(data)) for _ in range(7))]
        if i < 2 and not big:
            cuts += [[o] for o in _awkward_offsets(data, rng, 4)]
        if i == 0 and len(data) < 12_000:
            cuts += [[s] for s in _line_starts(data)[1:]]
        for c in cuts:
            assert_same_trace(whole, _load(plain, c, **kw), f"{path.name} {kw} cut at {c}")


@pytest.mark.parametrize("variant", tracegen.VARIANTS)
def test_parts_equal_one_thread_on_generated_traces(variant, tmp_path):
    rng = random.Random(variant)
    for k in range(3):
        g = tracegen.generate(rng, variant, n_events=rng.randint(20, 60),
                              final_newline=k != 1, hash_comms=k == 1)
        data = g.data if k < 2 else tracegen.mutate(rng, g.data)
        p = tmp_path / f"{variant}-{k}.txt"
        p.write_bytes(data)
        whole = _load(p)
        for s in _line_starts(data)[1:]:
            assert_same_trace(whole, _load(p, [s]), f"{variant} #{k} cut at {s}")
        for kw in OPTIONS:
            whole = _load(p, **kw)
            for _ in range(3):
                cuts = sorted(rng.randrange(len(data)) for _ in range(4)) if data else []
                assert_same_trace(whole, _load(p, cuts, **kw), f"{variant} #{k} {kw} cuts {cuts}")


HEAD = b"# tracer: nop\n"
EV = (b"   bash-1234  [001] d..2.   100.%06d: sched_switch: prev_comm=bash prev_pid=1234 "
      b"prev_prio=120 prev_state=S ==> next_comm=CPU 0/KVM next_pid=77 next_prio=120\n")
STACK = b"   bash-1234  [001] d..2.   100.%06d: <stack trace>\n => schedule (ffffffff81000010)\n"


def _parse(parts, **kw):
    ps = [_ftparse.Parser(later_part=i > 0, **kw) for i in range(len(parts))]
    for p, data in zip(ps, parts):
        buf = bytearray(data) + bytes(64)
        p.feed(buf, len(data), True)
    return ps


def test_absorb_merges_plain_events_and_refuses_a_part_that_needs_the_lines_before():
    a = HEAD + b"".join(EV % i for i in range(3))
    p, q = _parse([a, b"".join(EV % i for i in range(3, 6))])
    assert p.absorb(q)
    r = p.finish()
    assert r["lines"] == 7 and r["events_count"] == 6
    assert r["events"]["sched_switch"]["line"].tolist() == [2, 3, 4, 5, 6, 7]
    # a stack frame right after the cut belongs to the event before it
    s = STACK % 1
    cut = s.index(b" => ")
    p, q = _parse([a + s[:cut], s[cut:] + EV % 9])
    assert not p.absorb(q)
    # a LOST marker takes the time of the event before it
    p, q = _parse([a, b"CPU:1 [LOST 5 EVENTS]\n" + EV % 9])
    assert not p.absorb(q)
    # ... but not when the part has an event of its own before it
    p, q = _parse([a, EV % 8 + b"CPU:1 [LOST 5 EVENTS]\n"])
    assert p.absorb(q)
    # trace-cmd's multi-file mode lasts across the cut
    p, q = _parse([b"host: cpus=2\n", b"guest: bash-1234 [001] 100.000001: sched_switch: x\n"])
    assert not p.absorb(q)
    # a part with function_graph lines needs the per-CPU stacks of the lines before it
    p, q = _parse([a, b" 1)   0.245 us    |  f();\n"])
    assert not p.absorb(q)
    # only a later part is absorbed, and only into a parser with the same options
    p, q = _parse([a, a])
    with pytest.raises(ValueError):
        p.absorb(_ftparse.Parser(later_part=True, mark_lines=True))
    assert not p.absorb(_ftparse.Parser())


def test_comm_regex_runs_once_per_distinct_comm_across_parts():
    calls = []

    class Counting:
        def search(self, s):
            calls.append(s)
            return re.search("KVM", s)
    verdicts = {}
    text = HEAD + b"".join(EV % i for i in range(4))
    ps = [_ftparse.Parser(comm=Counting(), later_part=i > 0, comm_verdicts=verdicts)
          for i in range(3)]
    for p in ps:
        p.feed(bytearray(text) + bytes(64), len(text), True)
    assert sorted(calls) == ["CPU 0/KVM", "bash"]
    assert ps[0].absorb(ps[1]) and ps[0].absorb(ps[2])
    assert ps[0].finish()["events_count"] == 12


def test_threads_on_a_big_file_equal_one_thread(tmp_path):
    rng = random.Random(7)
    g = tracegen.generate(rng, "kernel5", n_events=3000)
    body = g.data
    p = tmp_path / "big.txt"
    with open(p, "wb") as f:
        while f.tell() < trace_mod.PARALLEL_MIN_BYTES + 1000:
            f.write(body)
    one = _load(p)
    for n in (2, 3, 4):
        before = dict(trace_mod.PART_COUNTS)
        assert_same_trace(one, ftrace_fast.load(p, threads=n, warn=False), f"threads={n}")
        assert trace_mod.PART_COUNTS["merged"] - before["merged"] == n - 1
        assert trace_mod.PART_COUNTS["parsed_again"] == before["parsed_again"]
    before = dict(trace_mod.PART_COUNTS)
    _load(p, [len(body) * 2])
    assert trace_mod.PART_COUNTS["merged"] == before["merged"] + 1


def test_real_files_cut_in_the_middle_merge_unless_state_crosses_the_cut():
    """A part is parsed again only where a line after the cut needs the lines before it:
    function_graph stacks, stack frames, trace-cmd multi-file mode."""
    for path in _files():
        if path.suffix == ".gz" or path.stat().st_size > 1 << 20:
            continue
        before = dict(trace_mod.PART_COUNTS)
        _load(path, [path.stat().st_size // 2])
        merged = trace_mod.PART_COUNTS["merged"] - before["merged"]
        if not re.search("graph|stack|multifile|kstack", path.name):
            assert merged == 1, path.name


@pytest.mark.parametrize("kw", OPTIONS[1:], ids=str)
def test_kept_text_is_the_header_and_kept_event_lines(kw, tmp_path):
    """keep_text copies exactly the lines marked event or header, line ends included."""
    for path in _files()[:25]:
        plain = _plain(path, tmp_path)
        data = plain.read_bytes()
        t = _load(plain, [len(data) // 2], **dict(kw, mark_lines=True, keep_text=True))
        if isinstance(t, tuple):
            continue
        lines = re.findall(b"[^\\n]*\\n|[^\\n]+$", data)
        keep = (t.line_kinds == trace_mod.LINE_KINDS["event"]) | \
            (t.line_kinds == trace_mod.LINE_KINDS["header"])
        assert len(lines) == len(keep) == t.stats.lines
        want = b"".join(ln for ln, k in zip(lines, keep) if k)
        assert b"".join(t.kept_text) == want, path.name


def test_records_false_counts_the_same_and_keeps_the_same_text(tmp_path):
    for path in _files()[:25]:
        plain = _plain(path, tmp_path)
        for kw in ({}, {"comm": "KVM|qemu|a"}, {"events": ["sched_switch"], "cpus": [1]}):
            full = _load(plain, keep_text=True, **kw)
            bare = _load(plain, keep_text=True, records=False, **kw)
            assert bare.events == {} and len(bare.text_arena) == 0
            assert bare.stats == full.stats and bare.errors == full.errors, (path.name, kw)
            assert b"".join(bare.kept_text) == b"".join(full.kept_text), (path.name, kw)


def test_error_records_name_only_their_own_line_event(tmp_path):
    """Found by fuzzing: an orphan stack frame's error named the event id left by an earlier
    line (or the initial 0, sched_switch), which a part parsed on its own could not know."""
    data = (b"=> tty_write (ffffffffa8fee3e1)\nnot a line\n"
            b"   bash-1234  [001] d..2.   100.000001: sched_switch: prev_comm=bash\n"
            b"=> schedule (ffffffff81000010)\n=> f (ffff)\n")
    p = tmp_path / "orphans.txt"
    p.write_bytes(data)
    whole = _load(p, events=["sched_switch"])
    assert [(e.line, e.code, e.event) for e in whole.errors] == [
        (1, "orphan_stack_frame", None), (2, "no_prefix", None),
        (3, "bad_field", "sched_switch"), (4, "orphan_stack_frame", None),
        (5, "orphan_stack_frame", None)]
    for s in _line_starts(data)[1:]:
        assert_same_trace(whole, _load(p, [s], events=["sched_switch"]), f"cut at {s}")


def test_span_and_cpus_past_the_parsers_cpu_bitmap(tmp_path):
    """CPUs at and past the parser's bitmap (4096), a line without a CPU among them."""
    lines = ["# tracer: nop\n"]
    for i, cpu in enumerate([3, 4095, 4096, 70000, 3]):
        lines.append(f"  a-1 [{cpu:03d}] d..2. {100 + i}.000001: sched_wakeup: comm=b pid=2 "
                     f"prio=120 target_cpu={cpu:03d}\n")
    p = tmp_path / "wide.txt"
    p.write_text("".join(lines))
    t = ftrace_fast.load(p)
    # the span is the parser's; the CPUs, past its bitmap, are computed
    assert t.derived_ready("span", t._arrays_key()) and not t.derived_ready("cpus", t._arrays_key())
    assert t.cpus() == [3, 4095, 4096, 70000] == t._cpus()
    assert t.span == (100000001000, 104000001000) == t._span()
    p.write_text("".join(lines[:2] + lines[-1:]))
    t = ftrace_fast.load(p, cpus=[4095])
    assert t.derived_ready("cpus", t._arrays_key())
    assert t.cpus() == [] == t._cpus() and t.span is None


# -- the streamed filtered copy (ftfast filter): chunks merged in order, text handed over ------

def _streamed(path, chunk, threads=2, **kw):
    """load(keep_text, records=False) through trace._stream with chunks of ``chunk`` bytes:
    (trace, the text the sink got, the largest text the sink got at once)."""
    got, most = [], [0]

    def sink(pieces, parser):
        n = sum(len(p) for p in pieces)
        most[0] = max(most[0], n)
        got.extend(bytes(p) for p in pieces)
    old = trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES
    trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES = chunk, 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                t = ftrace_fast.load(path, keep_text=True, records=False, cache=False,
                                     threads=threads, _text_sink=sink, **kw)
            except trace_mod.ParseError as exc:
                return ("ParseError", str(exc)), b"".join(got), most[0]
    finally:
        trace_mod.STREAM_CHUNK, trace_mod.PARALLEL_MIN_BYTES = old
    return t, b"".join(got) + b"".join(t.kept_text), most[0]


def test_streamed_text_buffers_are_lent_again(tmp_path):
    """Each chunk's kept text is a mapping of its own (past 256 KB).  Once written and freed
    it is lent to a later chunk's text, whose pages are then touched already, instead of a
    fresh mapping that the kernel zeroes (_ftparse.lend_freed_buffers).  The text stays the
    one-thread parse's, and no buffer is kept after the load."""
    line = ("       CPU %d/KVM-%d    [%03d] d..2. %5d.%06d: sched_switch: prev_comm=CPU %d/KVM "
            "prev_pid=%d prev_prio=120 prev_state=S ==> next_comm=swapper/%d next_pid=0 "
            "next_prio=120\n")
    path = tmp_path / "big.trace"
    path.write_text("".join(line % (i % 4, 2024 + i % 4, i % 8, i // 100000, i % 1000000,
                                    i % 4, 2024 + i % 4, i % 8) for i in range(40000)))
    whole = _load(path, keep_text=True, records=False)
    lent, kept = _ftparse.lent_buffers()
    # one thread: each block but the first is lent the text of the one before; two threads:
    # how many depends on timing, but the fifth chunk starts only once the first is written
    blocks = -(-path.stat().st_size // (1 << 20))
    assert blocks >= 6
    for threads, kw, least in ((1, {"chunk_size": 1 << 20}, blocks - 1), (2, {}, 1)):
        t, text, _ = _streamed(path, 1 << 20, threads, **kw)
        assert text == b"".join(whole.kept_text)
        assert t.stats == whole.stats
        now, kept = _ftparse.lent_buffers()
        assert now - lent >= least and kept == 0, (threads, now - lent, kept)
        lent = now


@pytest.mark.parametrize("kw", [{}, {"comm": "KVM|qemu|a"}, {"strict": True},
                                {"events": ["sched_switch", "stack_frame"], "cpus": [0, 1]}],
                         ids=str)
def test_streamed_copy_equals_the_one_thread_parse(kw, tmp_path):
    """Cut every few KB (stack frames, LOST markers, function_graph and trace-cmd headers at
    the cuts: a chunk that needs the lines before it is parsed again in order), with 1 to 3
    threads: the same text, counts and errors as one parser reading the whole file."""
    rng = random.Random(7)
    before = dict(trace_mod.PART_COUNTS)
    for path in _files()[:25]:
        plain = _plain(path, tmp_path)
        whole = _load(plain, keep_text=True, records=False, **kw)
        size = plain.stat().st_size            # at most a few hundred chunks a file
        for chunk in (max(rng.randrange(200, 3000), size // 300),
                      max(rng.randrange(3000, 40000), size // 40)):
            for threads in (1, 2, 3):
                t, text, _ = _streamed(plain, chunk, threads, **kw)
                why = f"{path.name} {kw} chunk {chunk} threads {threads}"
                if isinstance(whole, tuple):
                    assert t == whole, why
                    continue
                assert text == b"".join(whole.kept_text), why
                assert t.stats == whole.stats and t.errors == whole.errors, why
    # both ways of joining a chunk were taken: merged, and parsed again after the ones before
    assert all(trace_mod.PART_COUNTS[k] > before.get(k, 0) for k in ("merged", "parsed_again"))


def test_streamed_copy_hands_the_text_over_chunk_by_chunk(tmp_path):
    """The sink gets each chunk's text as it is merged: never the whole copy at once."""
    p = tmp_path / "big.txt"
    p.write_bytes(tracegen.generate(random.Random(5), "kernel5", n_events=8000).data)
    t, text, most = _streamed(p, 16 << 10, 2)
    assert text == b"".join(_load(p, keep_text=True, records=False).kept_text)
    assert len(text) > 400_000 and most <= (16 << 10) * 2, (len(text), most)


# -- _threads.beside, and inline() for a fleet worker's tasks ----------------------------------

def test_beside_runs_on_another_thread_unless_inline():
    import threading
    from ftrace_fast import _threads
    me = threading.get_ident()
    assert _threads.beside(threading.get_ident)() != me
    with _threads.inline():
        assert _threads.beside(threading.get_ident)() == me
        with _threads.inline():
            pass
        assert _threads.beside(threading.get_ident)() == me   # a nested block restores, not clears
        failing = _threads.beside(lambda: 1 // 0)              # raised at the wait, as threaded
        with pytest.raises(ZeroDivisionError):
            failing()
    assert _threads.beside(threading.get_ident)() != me


@pytest.mark.parametrize("seed", [3, 11])
def test_kvm_figures_inline_equal_threaded(seed):
    """stats --kvm and diagnose build their figures on two threads; inline (a fleet task) the
    figures are the same."""
    import contextlib
    import io
    import json
    import simkvm
    from ftrace_fast import _threads, kvm
    data = simkvm.simulate(seed=seed, variant="kernel5").data
    docs = []
    for ctx in (_threads.inline, contextlib.nullcontext):
        t = ftrace_fast.load(io.BytesIO(data))      # a new Trace: nothing memoised
        with ctx():
            doc = [kvm.diagnose(t, kvm.Thresholds()), kvm.host_summary(t)]
        docs.append(json.dumps(doc, default=str, sort_keys=True))
    assert '"vcpus"' in docs[0] and docs[0] == docs[1]


def test_blocks_into_a_reused_buffer_equal_blocks_into_a_new_one():
    """_stream's threads read chunk after chunk into one buffer (blocks(buf=)): what a block
    holds does not depend on what the buffer held before, including long lines that grow it
    or are read through, unterminated ends and empty inputs."""
    import io
    from ftrace_fast._source import SPARE, blocks

    def got(data, chunk, max_line, buf=None):
        out = []
        for view, n, final in blocks(io.BytesIO(data), chunk, max_line, buf):
            out.append((bytes(view[:n]), final) if n or not hasattr(view, "head")
                       else (view, final))
        return out

    rng = random.Random(5)
    for case in range(300):
        chunk = rng.choice([1, 7, 64, 300])
        max_line = rng.choice([None, 50, 400])
        lines = [bytes(rng.choice(b"ab \t:=") for _ in range(rng.choice([0, 3, 40, 200, 900])))
                 for _ in range(rng.randrange(0, 12))]
        data = b"\n".join(lines) + rng.choice([b"", b"\n", b"tail"])
        stale = bytearray(rng.choice(b"\nxy") for _ in range(chunk + SPARE))
        want = got(data, chunk, max_line)
        for _ in range(2):          # the same buffer again, as it is left
            assert got(data, chunk, max_line, stale) == want, (case, chunk, max_line, data)


def test_parts_joined_by_moving_pages_equal_one_thread(tmp_path):
    """Parts whose buffers are mappings are joined by moving the later part's pages behind the
    earlier part's (no copy); at any cut (any misalignment of the first part's last page), with
    several parts (a joined buffer joined again) and with a part parsed again after joins (a
    joined buffer grown by the parser)."""
    rng = random.Random(11)
    comms = [b"bash", b"CPU 0/KVM", b"kworker/1:2", b"qemu-system-x86", b"a b c"]
    lines = [HEAD]
    for i in range(60000):
        ts = b"%d.%06d" % (100 + i // 1000000, i % 1000000)
        c = rng.choice(comms)
        k = rng.random()
        if k < 0.5:
            lines.append(b"%16s-%-7d [%03d] d..2. %s: sched_switch: prev_comm=%s prev_pid=%d "
                         b"prev_prio=120 prev_state=S ==> next_comm=%s next_pid=%d next_prio=120\n"
                         % (c, 1000 + i % 50, i % 4, ts, c, 1000 + i % 50, rng.choice(comms), i % 97))
        elif k < 0.8:
            lines.append(b"%16s-%-7d [%03d] d..2. %s: my_event: text %d with words\n"
                         % (c, 1000 + i % 50, i % 4, ts, rng.randrange(10 ** 9)))
        elif k < 0.98:
            lines.append(b"%16s-%-7d [%03d] dNh4. %s: sched_wakeup: comm=%s pid=%d prio=120 "
                         b"target_cpu=%03d\n" % (c, i % 50, i % 4, ts, c, 2000 + i % 300, i % 4))
        else:
            lines.append(b"%16s-%-7d [%03d] d..2. %s: <stack trace>\n => schedule (ffffffff81000010)\n"
                         b" => do_idle (ffffffff81000020)\n" % (c, 1000 + i % 50, i % 4, ts))
    data = b"".join(lines)
    p = tmp_path / "big.txt"
    p.write_bytes(data)
    whole = _load(p)
    n = len(data)
    frames = [m.start() + 1 for m in re.finditer(b"\n => schedule", data)]
    frame_cut = next(f for f in frames if f > n // 2)
    cuts = [[n // 2], [n // 3, 2 * n // 3], sorted(rng.randrange(n) for _ in range(5)),
            [n // 4, frame_cut, frame_cut + (n - frame_cut) // 2]]
    spliced = _ftparse.spliced_merges()
    for c in cuts:
        before = dict(trace_mod.PART_COUNTS)
        assert_same_trace(whole, _load(p, c), f"cut at {c}")
        if c[1:2] == [frame_cut]:
            assert trace_mod.PART_COUNTS["parsed_again"] == before["parsed_again"] + 1
    assert _ftparse.spliced_merges() - spliced >= 20
