"""Round-trip property tests: write random valid ftrace text (tests/tracegen.py), load it with
ftrace_fast.load and compare every column of every event with what the writer put there.

Run:  cd /work/main && python -m pytest tests/test_roundtrip.py -q
      (ROUNDTRIP_PROFILE=thorough: 10x the examples; =shrink: minimal failing traces)
      python tests/test_roundtrip.py [N] [variant...]   # survey: every distinct difference

A package or parser that cannot be imported is a failure, not a skip.
"""

from __future__ import annotations

import io
import os
import random
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
import tracegen  # noqa: E402
from tracegen import ANY, VARIANTS  # noqa: E402

import ftrace_fast  # noqa: E402
import ftrace_fast._ftparse  # noqa: E402,F401
from ftrace_fast import events as ev_mod  # noqa: E402

# Settings are applied per test (no global profile: other test files keep theirs).
# By default a failure is reported unshrunk: the message already names the input line, the
# field, expected and got, and shrinking these random traces takes minutes per failing test.
# ROUNDTRIP_PROFILE=shrink: shrink failures to a minimal trace; =thorough: 10x the examples.
_PROFILE = os.environ.get("ROUNDTRIP_PROFILE", "default")
_MAX = 600 if _PROFILE == "thorough" else 60
_PHASES = tuple(Phase) if _PROFILE == "shrink" else (Phase.explicit, Phase.reuse, Phase.generate)


def _settings(n):
    return settings(max_examples=n, deadline=None, phases=_PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


# ---------------------------------------------------------------------------------------------
# comparison


def _load(data: bytes, **kw):
    return ftrace_fast.load(io.BytesIO(data), **kw)


def _events_of(trace, name):
    try:
        return trace.events[name]
    except KeyError:
        return None


def _event_names(trace):
    ev = trace.events
    return list(ev.keys()) if hasattr(ev, "keys") else list(ev)


def _lookup(table, i):
    if i == -1:
        return None
    if 0 <= i < len(table):
        return table[i]
    return "<bad id %d of %d>" % (i, len(table))


class Diff(str):
    """one difference; ``key`` groups differences of one kind, ``line`` is the input line."""

    def __new__(cls, key, line, msg):
        d = str.__new__(cls, msg)
        d.key, d.line = key, line
        return d


def compare(gen: tracegen.GeneratedTrace, trace, *, check_stats=True) -> list:
    """every difference between the expected parse of ``gen`` and ``trace`` (list of Diff)."""
    out = []

    def bad(lineno, what, exp, got):
        out.append(Diff(what, lineno, "line %s %s: expected %r, got %r\n    | %s"
                        % (lineno, what, exp, got, gen.line_text(lineno) if lineno else "")))

    if check_stats:
        s = trace.stats
        got = dict(lines=s.lines, events=s.events, headers=s.headers, filtered=s.filtered,
                   malformed=s.malformed)
        exp = dict(lines=gen.n_lines, events=gen.n_events, headers=gen.n_headers, filtered=0,
                   malformed=0)
        if got != exp:
            errs = [(e.line, e.code, e.message) for e in list(trace.errors)[:5]]
            key = "stats " + ",".join(sorted(k for k in exp if exp[k] != got[k]))
            if errs:
                key += " [%s]" % errs[0][1]
            out.append(Diff(key, errs[0][0] if errs else 0, "stats: expected %r, got %r; first errors %r%s" % (
                exp, got, errs, "".join("\n    | %d: %s" % (ln, gen.line_text(ln)) for ln, _, _ in errs))))
        if s.lines != s.events + s.headers + s.filtered + s.malformed:
            out.append(Diff("stats sum", 0, "stats do not add up: %r" % (got,)))
        if gen.clock is not ANY and trace.clock != gen.clock:
            out.append(Diff("clock", 0, "clock: expected %r, got %r" % (gen.clock, trace.clock)))
        lost = [(int(r["cpu"]), int(r["line"]), int(r["count"])) for r in trace.lost]
        if lost != gen.lost:
            ln = (set(x[1] for x in gen.lost) ^ set(x[1] for x in lost) or {0}).pop()
            out.append(Diff("lost", ln, "lost: expected %r, got %r\n    | %s" % (gen.lost, lost, gen.line_text(ln))))

    comms, syms = trace.comms, trace.symbols
    by_name = gen.by_name()
    total = 0
    for name in _event_names(trace):
        arr = _events_of(trace, name)
        n = 0 if arr is None else len(arr)
        total += n
        if n and name not in by_name:
            lines = [int(x) for x in arr["line"][:3]]
            out.append(Diff("unexpected event %s" % name, lines[0], "unexpected event %r x%d at lines %r\n    | %s" % (
                name, n, lines, gen.line_text(lines[0]))))
    for name, exp_list in by_name.items():
        arr = _events_of(trace, name)
        layout = ev_mod.EVENT_LAYOUT.get(name, "generic")
        if arr is None or len(arr) != len(exp_list):
            got_lines = [] if arr is None else [int(x) for x in arr["line"]]
            missing = [e.line for e in exp_list if e.line not in got_lines]
            out.append(Diff("%s missing" % (name if layout != "generic" else "<generic>"),
                            missing[0] if missing else 0,
                            "%s: expected %d events, got %d; missing lines %r%s" % (
                name, len(exp_list), 0 if arr is None else len(arr), missing[:5],
                "".join("\n    | %d: %s" % (ln, gen.line_text(ln)) for ln in missing[:3]))))
            if arr is None:
                continue
            # compare what can be matched by line number
            idx = {int(l): i for i, l in enumerate(arr["line"])}
            pairs = [(e, idx[e.line]) for e in exp_list if e.line in idx]
        else:
            pairs = list(zip(exp_list, range(len(arr))))
        want_dtype = ev_mod.dtype_for(layout)
        if arr.dtype != want_dtype:
            out.append(Diff("%s dtype" % name, 0, "%s: dtype %r, expected %r" % (name, arr.dtype, want_dtype)))
            continue
        kinds = ev_mod.field_kinds(layout)
        texts = {f: trace.text(name, f) for f, k in kinds.items() if k == "text"}
        ename = name if layout != "generic" else "<generic>"
        for e, i in pairs:
            r = arr[i]
            ln = e.line
            for col, exp in (("line", e.line), ("ts", e.ts), ("cpu", e.cpu), ("pid", e.pid),
                             ("tgid", e.tgid), ("flags", e.flags)):
                got = r[col].item() if hasattr(r[col], "item") else r[col]
                if got != exp:
                    bad(ln, "%s.%s" % (ename, col), exp, got)
            gc = _lookup(comms, int(r["comm"]))
            if gc != e.comm:
                bad(ln, "%s.comm" % ename, e.comm, gc)
            for f, exp in e.fields.items():
                k = kinds[f]
                if exp is ANY:
                    continue
                if k == "text":
                    got = texts[f][i]
                elif k == "comm":
                    got = _lookup(comms, int(r[f]))
                elif k == "sym":
                    got = _lookup(syms, int(r[f]))
                else:
                    got = int(r[f])
                if got != exp:
                    if k == "state":
                        bad(ln, "%s.%s" % (ename, f), "%#x (%s)" % (exp, ev_mod.state_string(exp)),
                            "%#x (%s)" % (got, ev_mod.state_string(got)))
                    else:
                        bad(ln, "%s.%s" % (ename, f), exp, got)
    if total != gen.n_events:
        out.append(Diff("total events", 0, "total events: expected %d, got %d" % (gen.n_events, total)))
    return out


def assert_same(gen, trace, **kw):
    diffs = compare(gen, trace, **kw)
    if diffs:
        head = "variant %s %s\n" % (gen.variant, gen.fmt)
        pytest.fail(head + "\n".join(diffs[:25]) + ("\n... %d more" % (len(diffs) - 25) if len(diffs) > 25 else ""),
                    pytrace=False)


# ---------------------------------------------------------------------------------------------
# writer self-checks (no parser needed): the spec's anchor rule recovers the common columns


def _reference_common(gen, line: str):
    """comm, pid, cpu, flags, ts text of an event line, found the way the spec says."""
    F = gen.fmt
    if F.dmesg:
        assert line.startswith("[") and "] " in line
        line = line[line.index("] ") + 2:]
    if F.files:
        w = max(len(x) for x in F.files)
        assert line[w:w + 2] == ": ", line
        line = line[w + 2:]
    m = tracegen.PREFIX_ANCHOR.search(line)
    assert m, line
    comm = line[:m.start()].lstrip(" ")
    rest = line[m.start() + 1:]
    pid_s, rest = rest.split(None, 1) if not F.latency else (rest.split(" ", 1)[0], rest.split(" ", 1)[1])
    pid = int(pid_s)
    tgid = -1
    if rest.startswith("("):
        t, rest = rest[1:].split(")", 1)
        tgid = -1 if set(t) == {"-"} else int(t)
        rest = rest.lstrip(" ")
    if F.latency:
        rest = rest.lstrip(" ")
        j = 0
        while rest[j].isdigit():
            j += 1
        cpu = int(rest[:j])
        flags = rest[j:j + F.flags]
        rest = rest[j + F.flags:]
    else:
        assert rest.startswith("["), rest
        cpu_s, rest = rest[1:].split("]", 1)
        cpu = int(cpu_s)
        flags = ""
        if F.flags:
            rest = rest.lstrip(" ")
            flags, rest = rest[:F.flags], rest[F.flags:]
    ts_s, rest = rest.split(":", 1)
    return comm, pid, tgid, cpu, flags, ts_s.strip().rstrip(" +!#*@$"), rest


@pytest.mark.parametrize("variant", VARIANTS)
def test_writer_selfcheck(variant):
    for seed in range(40):
        g = tracegen.generate(random.Random(seed), variant, final_newline=seed % 4 != 0)
        assert g.n_lines == g.text.count(g.fmt.eol) + (0 if g.fmt.final_newline or not g.lines else 1)
        ev_lines = {e.line for e in g.events}
        assert len(ev_lines) == g.n_events
        assert g.n_headers + g.n_events == g.n_lines
        for cpu, ln, cnt in g.lost:
            assert "[LOST %d EVENTS]" % cnt in g.line_text(ln)
        for e in g.events:
            line = g.line_text(e.line)
            assert "\n" not in line and "\r" not in line
            comm, pid, tgid, cpu, flags, ts_s, rest = _reference_common(g, line)
            assert (comm, pid, tgid, cpu, flags.encode()) == (e.comm, e.pid, e.tgid, e.cpu, e.flags), line
            if ts_s.endswith("us"):
                ts = int(ts_s[:-2]) * 1000
            elif "." in ts_s:
                a, b = ts_s.split(".")
                ts = int(a) * 10**9 + int(b) * 10 ** (9 - len(b))
            else:
                ts = int(ts_s)
            assert ts == e.ts, line
            assert rest.lstrip(" +!#*@$").startswith(e.name + ": ") or rest.lstrip(" +!#*@$") == e.name + ":", line
            assert tracegen.comm_ok(comm) or g.fmt.latency


# real lines from /work/shared/corpus, re-rendered by the writer from their values
_REAL_LINES = [
    (dict(), ("sched_switch", "python3", 2141, 1, "d..2.", 1154513760, "prev_comm=python3"),
     "         python3-2141    [001] d..2.  1154.513760: sched_switch: prev_comm=python3"),
    (dict(tgid=7), ("irq_handler_entry", "<idle>", 0, 1, "d.h1.", 1181254112, "irq=36 name=virtio1-req.0"),
     "          <idle>-0       (-------) [001] d.h1.  1181.254112: irq_handler_entry: irq=36 name=virtio1-req.0"),
    (dict(flags=0), ("kvm_vcpu_wakeup", "CPU 1/KVM", 2843, 1, "", 1172188763, "wait time 2234210 ns, polling valid"),
     "       CPU 1/KVM-2843    [001]   1172.188763: kvm_vcpu_wakeup: wait time 2234210 ns, polling valid"),
    (dict(clock="int"), ("sched_switch", "python3", 3913, 1, "d..2.", 3, "prev_comm=python3"),
     "         python3-3913    [001] d..2.            3: sched_switch: prev_comm=python3"),
    (dict(family="tracecmd", flags=0, pidw=5),
     ("sched_switch", "trace-cmd", 10022, 0, "", 1347435537, "trace-cmd:10022 [120] S ==> CPU 0/KVM:9855 [120]"),
     "       trace-cmd-10022 [000]  1347.435537: sched_switch:         trace-cmd:10022 [120] S ==> CPU 0/KVM:9855 [120]"),
    (dict(family="tracecmd", flags=0, pidw=5), ("sched_stat_runtime", "trace-cmd", 2461, 0, "", 34896920, "comm=x"),
     "       trace-cmd-2461  [000]    34.896920: sched_stat_runtime:   comm=x"),
    (dict(family="tracecmd", flags=5, pidw=5, latency=True), ("sched_waking", "<idle>", 0, 5, "d.h3.", 926697934128, "comm=nx"),
     "  <idle>-0       5d.h3. 926697.934128: sched_waking:         comm=nx"),
    (dict(family="tracecmd", flags=5, pidw=5, latency=True, clock="int"),
     ("kvm_entry", "qemu-system-x86", 533825, 5, "d..1.", 303280081944169, " vcpu 0 rip 0x1"),
     "qemu-sys-533825   5d..1.303280081944169: kvm_entry:             vcpu 0 rip 0x1"),
    (dict(family="tracecmd", flags=0, pidw=5, clock="int"),
     ("kvm_vcpu_wakeup", "qemu-system-x86", 533825, 5, "", 303280081909057, " ns=3279293 waited=1 valid=1"),
     " qemu-system-x86-533825 [005]303280081909057: kvm_vcpu_wakeup:       ns=3279293 waited=1 valid=1"),
    (dict(family="tracecmd", flags=5, pidw=5), ("sched_wakeup", "<idle>", 0, 5, "dNh2.", 223087004012, "trace-cmd:89992 [120] CPU:005"),
     "          <idle>-0     [005] dNh2. 223087.004012: sched_wakeup:         trace-cmd:89992 [120] CPU:005"),
    (dict(latency=True, clock="lat"), ("sched_wakeup", "rcu_torture", 70, 1, "dNh3.", 10607789211, "comm=x"),
     "rcu_tort-70        1dNh3. 10607789211us : sched_wakeup: comm=x"),
    (dict(flags=4, pidw=5), ("sched_wakeup", "<idle>", 0, 0, "d..4", 1212465074, "comm=k"),
     "          <idle>-0     [000] d..4  1212.465074: sched_wakeup: comm=k"),
    (dict(flags=4, pidw=5, tgid=5), ("tracing_mark_write", "<...>", 19161, 1, "...1", 683201354908, "E"),
     "           <...>-19161 (-----) [001] ...1 683201.354908: tracing_mark_write: E"),
    (dict(flags=4, pidw=5, tgid=5), ("tracing_mark_write", "ndroid.systemui", 13580, 1, "...1", 683202104223, "S|1"),
     " ndroid.systemui-13580 (13580) [001] ...1 683202.104223: tracing_mark_write: S|1"),
]


@pytest.mark.parametrize("fmt,values,want", _REAL_LINES)
def test_writer_matches_real_lines(fmt, values, want):
    class _R(random.Random):
        def choice(self, s):  # latency mark: the blank one
            return " " if s == "  +!#*@$" else super().choice(s)

    F = tracegen.Format("real", **fmt)
    name, comm, pid, cpu, flags, t, payload = values
    ev = tracegen.ExpectedEvent(name, 0, 0, cpu, pid, -1 if "(-" in want else 13580, comm, flags.encode(), {})
    assert tracegen.render_line(_R(0), F, ev, t, payload, comm) == want


def test_writer_comm_constraints():
    rng = random.Random(7)
    for _ in range(3000):
        c = tracegen.gen_comm(rng, compact=True)
        assert tracegen.comm_ok(c, compact=True)
        assert not tracegen.PREFIX_ANCHOR.search(c) and not tracegen.COMPACT_ANCHOR.search(c)


# ---------------------------------------------------------------------------------------------
# round trip


@pytest.mark.parametrize("variant", VARIANTS)
@_settings(_MAX)
@given(rng=st.randoms(use_true_random=False))
def test_roundtrip(variant, rng):
    g = tracegen.generate(rng, variant)
    t = _load(g.data)
    assert_same(g, t)


@_settings(max(10, _MAX // 3))
@given(rng=st.randoms(use_true_random=False), variant=st.sampled_from(VARIANTS))
def test_roundtrip_no_final_newline(rng, variant):
    """a complete last line without a line end is still an event (trace_pipe cut, editors)."""
    g = tracegen.generate(rng, variant, final_newline=False)
    assert_same(g, _load(g.data))


@_settings(max(10, _MAX // 3))
@given(rng=st.randoms(use_true_random=False), variant=st.sampled_from(("kernel5", "tracecmd", "trace_pipe", "kernel_tgid")))
def test_roundtrip_unicode_text(rng, variant):
    """UTF-8 in comms, marker text and unknown-event payloads comes back decoded."""
    g = tracegen.generate(rng, variant, unicode=True)
    assert_same(g, _load(g.data))


@_settings(max(10, _MAX // 3))
@given(rng=st.randoms(use_true_random=False), variant=st.sampled_from(VARIANTS))
def test_roundtrip_hash_in_comm(rng, variant):
    """task names with '#' (prctl allows any byte): a line whose comm starts with '#' is an
    event, not a header comment, even at column 0 in the latency formats."""
    g = tracegen.generate(rng, variant, hash_comms=True)
    assert_same(g, _load(g.data))


@_settings(max(10, _MAX // 6))
@given(rng=st.randoms(use_true_random=False), variant=st.sampled_from(VARIANTS))
def test_roundtrip_from_path(tmp_path_factory, rng, variant):
    g = tracegen.generate(rng, variant)
    p = tmp_path_factory.mktemp("rt") / "trace.txt"
    g.write(p)
    assert_same(g, ftrace_fast.load(str(p), strict=True))  # valid input: strict never raises


@pytest.mark.parametrize("variant", VARIANTS)
def test_roundtrip_large(variant):
    """one longer trace per variant (several parser blocks at the default chunk size)."""
    g = tracegen.generate(random.Random(12345), variant, n_events=3000)
    assert_same(g, _load(g.data))


# ---------------------------------------------------------------------------------------------
# chunk invariance


def _snapshot(t):
    names = sorted(n for n in _event_names(t) if len(_events_of(t, n)))
    texts = {}
    for n in names:
        layout = ev_mod.EVENT_LAYOUT.get(n, "generic")
        for f, k in ev_mod.field_kinds(layout).items():
            if k == "text":
                texts[(n, f)] = list(t.text(n, f))
    s = t.stats
    return dict(
        names=names, comms=list(t.comms), symbols=list(t.symbols), texts=texts,
        stats=(s.lines, s.events, s.headers, s.filtered, s.malformed), clock=t.clock,
        lost=[tuple(int(x) for x in (r["cpu"], r["line"], r["count"])) for r in t.lost],
        errors=[(e.line, e.code) for e in t.errors],
    )


def _assert_chunk_invariant(data: bytes, sizes=(1, 7, 4096)):
    base = _load(data)
    b = _snapshot(base)
    for cs in sizes:
        t = _load(data, chunk_size=cs)
        s = _snapshot(t)
        for k in b:
            assert s[k] == b[k], "chunk_size=%d: %s differ: %r vs default %r" % (cs, k, s[k], b[k])
        for n in b["names"]:
            a1, a2 = _events_of(base, n), _events_of(t, n)
            assert a1.dtype == a2.dtype
            if not np.array_equal(a1, a2):
                diff = [i for i in range(len(a1)) if a1[i].tobytes() != a2[i].tobytes()][:3]
                raise AssertionError("chunk_size=%d: %s records differ at %r: %r vs %r" % (
                    cs, n, diff, [a2[i] for i in diff], [a1[i] for i in diff]))
    return base


@pytest.mark.parametrize("variant", VARIANTS)
@_settings(max(5, _MAX // 6))
@given(seed=st.integers(0, 2**32 - 1))
def test_chunk_invariance(variant, seed):
    g = tracegen.generate(random.Random(seed), variant)
    _assert_chunk_invariant(g.data)


@pytest.mark.filterwarnings("ignore")
@_settings(max(10, _MAX // 2))
@given(seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(VARIANTS))
def test_chunk_invariance_mutated(seed, variant):
    rng = random.Random(seed)
    g = tracegen.generate(rng, variant, n_events=rng.randint(0, 25))
    _assert_chunk_invariant(tracegen.mutate(rng, g.data), sizes=(1, rng.randint(2, 64), 4096))


# ---------------------------------------------------------------------------------------------
# mutation fuzz: never crash, stats always add up, line numbers in range


# inputs that load() may refuse with InputError: compressed or foreign binary formats
_MAGICS = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh", b"\x28\xb5\x2f\xfd", b"\x17\x08\x44tracing",
           b"PERFILE2", b"\xd4\xc3\xb2\xa1")


def _load_fuzz(data: bytes, **kw):
    """load(), allowing only a clean InputError for data that starts with a binary magic."""
    try:
        return _load(data, **kw)
    except getattr(ftrace_fast, "InputError", ()) as e:
        if any(data.startswith(m) for m in _MAGICS):
            return None
        raise AssertionError("InputError on text-like input %r...: %s" % (data[:40], e))


def _check_sane(data: bytes, t):
    if t is None:  # refused: binary magic
        return
    s = t.stats
    n_lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert s.lines == s.events + s.headers + s.filtered + s.malformed, vars(s) if hasattr(s, "__dict__") else s
    assert s.lines == n_lines, (s.lines, n_lines)
    assert min(s.lines, s.events, s.headers, s.filtered, s.malformed) >= 0
    assert sum(len(_events_of(t, n)) for n in _event_names(t)) == s.events
    for e in t.errors:
        assert 1 <= e.line <= max(n_lines, 1), (e.line, n_lines, e.code, e.message)
    for n in _event_names(t):
        a = _events_of(t, n)
        if len(a):
            assert a["line"].min() >= 1 and a["line"].max() <= n_lines, n
            assert len(set(a["line"].tolist())) == len(a), "two records of %s from one line" % n
            comm = a["comm"]
            assert ((comm >= -1) & (comm < len(t.comms))).all()
    for r in t.lost:
        assert 1 <= int(r["line"]) <= n_lines


@pytest.mark.filterwarnings("ignore")
@_settings(max(40, 4 * _MAX))
@given(seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(VARIANTS))
def test_fuzz_mutations(seed, variant):
    rng = random.Random(seed)
    g = tracegen.generate(rng, variant, n_events=rng.randint(0, 30))
    data = tracegen.mutate(rng, g.data)
    cs = rng.choice((None, None, 1, 7, 4096, rng.randint(1, 300)))
    t = _load_fuzz(data, chunk_size=cs) if cs else _load_fuzz(data)
    _check_sane(data, t)
    if t is not None:  # strict: the same input raises a ValueError (ParseError) iff malformed
        try:
            _load(data, strict=True)
            raised = None
        except ValueError as e:
            raised = e
        assert (raised is not None) == (t.stats.malformed > 0), (raised, t.stats)


@pytest.mark.filterwarnings("ignore")
@_settings(max(40, 2 * _MAX))
@given(data=st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    _check_sane(data, _load_fuzz(data))


@pytest.mark.filterwarnings("ignore")
@_settings(max(20, _MAX))
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzz_line_soup(seed):
    """random lines of structural tokens: prefixes, brackets, digits, LOST markers, headers."""
    rng = random.Random(seed)
    toks = ["  ", "-", "123", "[001]", "(   12)", "(-----)", "d..2.", " 1.000001:", " 12:", "cpus=2",
            "CPU:1 [LOST 3 EVENTS]", "#", "sched_switch:", "prev_comm=a", " ==> ", "prev_state=",
            "R+", "\r", "\0", "trace.dat: ", "[  1.000000] ", "5d..2.", "99999999999999999999999",
            "-0x1", ":", "us :", "kvm_exit:", "reason", "rip 0x", "vec=", "[action=", "]", "\t"]
    lines = ["".join(rng.choice(toks) for _ in range(rng.randint(0, 14))) for _ in range(rng.randint(0, 40))]
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    for cs in (None, 3):
        t = _load_fuzz(data, chunk_size=cs) if cs else _load_fuzz(data)
        _check_sane(data, t)


# ---------------------------------------------------------------------------------------------
# filters: a filtered load returns exactly the matching subset; the rest counts as filtered


@_settings(max(10, _MAX // 2))
@given(rng=st.randoms(use_true_random=False), variant=st.sampled_from(VARIANTS))
def test_filters_subset(rng, variant):
    g = tracegen.generate(rng, variant)
    names = sorted({e.name for e in g.events})
    cpus = sorted({e.cpu for e in g.events})
    kw = {}
    if names and rng.random() < 0.5:
        kw["events"] = [n for n in names if rng.random() < 0.5] or names[:1]
    if cpus and rng.random() < 0.5:
        kw["cpus"] = [c for c in cpus if rng.random() < 0.5] or cpus[:1]
    keep = [e for e in g.events
            if ("events" not in kw or e.name in kw["events"]) and ("cpus" not in kw or e.cpu in kw["cpus"])]
    t = _load(g.data, **kw)
    sub = tracegen.GeneratedTrace(variant=g.variant, fmt=g.fmt, lines=g.lines, events=keep, lost=g.lost,
                                  n_headers=g.n_headers, clock=g.clock)
    assert_same(sub, t, check_stats=False)
    s = t.stats
    assert (s.lines, s.events, s.headers, s.filtered, s.malformed) == (
        g.n_lines, len(keep), g.n_headers, g.n_events - len(keep), 0)


# ---------------------------------------------------------------------------------------------
# survey: every distinct kind of difference over many random traces, with the shortest line


def survey(n_per_variant=200, variants=VARIANTS, n_events=None, **gen_kw):
    """{(variant, key): [count, shortest line text, message]} over random traces."""
    import warnings

    found = {}
    for v in variants:
        for seed in range(n_per_variant):
            g = tracegen.generate(random.Random(seed), v, n_events, **gen_kw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = _load(g.data)
            for d in compare(g, t):
                k = (v, d.key)
                txt = g.line_text(d.line) if d.line else ""
                cur = found.get(k)
                if cur is None:
                    found[k] = [1, txt, str(d), seed]
                else:
                    cur[0] += 1
                    if d.line and (not cur[1] or len(txt) < len(cur[1])):
                        cur[1], cur[2], cur[3] = txt, str(d), seed
    return found


if __name__ == "__main__":  # python tests/test_roundtrip.py [N] [variant ...]
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    vs = tuple(sys.argv[2:]) or VARIANTS
    res = survey(n, vs)
    res.update({(v + "/no-final-newline", k): x for (v, k), x in
                survey(max(1, n // 10), vs, final_newline=False).items()})
    res.update({(v + "/unicode", k): x for (v, k), x in survey(max(1, n // 5), vs, unicode=True).items()})
    res.update({(v + "/hash-comms", k): x for (v, k), x in survey(max(1, n // 5), vs, hash_comms=True).items()})
    for (v, k), (cnt, line, msg, seed) in sorted(res.items()):
        print("%-28s %-40s x%-5d seed %d\n    %s\n" % (v, k, cnt, seed, msg.replace("\n", "\n    ")))
