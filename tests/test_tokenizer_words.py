"""The tokenizer's word-at-a-time scanners (src/_ftparse_bytes.pxi: ft_digits8, ft_first_of
behind tok_end and name_end, ft_find_byte) against the plain-Python reference parser, on the
shapes where a word load goes wrong: numbers of every length around the 8-byte word and the
int32 / int64 / 9-decimal limits, comms and event names of every length up to three words,
keys that start within the first two words or past them, and a line whose end falls inside a
word (the bytes read past it, which the parse buffer's padding holds, must never count)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from refparser import refparse  # noqa: E402
from test_reference import assert_same, load_fast  # noqa: E402

from ftrace_fast import _ftparse  # noqa: E402

NUMS = ([str(10 ** k) for k in range(20)] + [str(10 ** k - 1) for k in range(1, 21)]
        + ["0", "007", "2147483647", "2147483648", "-1", "-2147483648", "-2147483649",
           "9223372036854775807", "9223372036854775808", "+5", "-", "12a", "1 2"])


def _switch(prev_pid="1", prev_prio="120", next_pid="2", next_prio="120",
            prev_comm="a", next_comm="b", state="S"):
    return (f"bash-1 [000] d..2. 5.000001: sched_switch: prev_comm={prev_comm} "
            f"prev_pid={prev_pid} prev_prio={prev_prio} prev_state={state} ==> "
            f"next_comm={next_comm} next_pid={next_pid} next_prio={next_prio}").encode()


def _wake(pid="1", prio="120", cpu="003", comm="a"):
    return (f"bash-1 [000] d.h3. 5.000001: sched_waking: comm={comm} pid={pid} prio={prio} "
            f"target_cpu={cpu}").encode()


def _lines():
    out = []
    for n in NUMS:
        out += [_switch(prev_pid=n), _switch(prev_prio=n), _switch(next_pid=n),
                _switch(next_prio=n), _wake(pid=n), _wake(prio=n), _wake(cpu=n),
                f"comm-{n} [000] d..2. 5.000001: foo: bar".encode(),
                f"comm-1 [{n}] d..2. 5.000001: foo: bar".encode(),
                f"comm-1 ({n}) [000] d..2. 5.000001: foo: bar".encode(),
                f"x-1 [000] 5.000001: kvm_exit: vcpu {n} reason HLT rip 0x1 info1 0x0 "
                f"info2 0x0 intr_info 0x0 error_code 0x0".encode()]
    for secs in ("0", "5", "1234567", "12345678", "123456789", "9223372035", "9223372036",
                 "18446744073709551616"):
        for dec in range(0, 11):
            frac = "123456789"[:dec] + "0" * max(0, dec - 9)
            out.append(f"bash-1 [000] d..2. {secs}.{frac}: foo: bar".encode())
            out.append(f"bash-1 [000] d..2. {secs}{'.' if dec else ''}{frac}: foo: bar".encode())
    for k in range(1, 26):
        name = ("x" * k)
        dashed = "-".join("ab" for _ in range(k))[:k]
        out += [_switch(prev_comm=name, next_comm=dashed), _wake(comm=name),
                _switch(prev_comm="a b " * (k // 4 + 1), next_comm=name + " x"),
                f"{name}-7 [001] d..2. 5.000001: {name}: a=1".encode(),
                f"{dashed}-7 [001] d..2. 5.000001: sys_{name}(a: 1)".encode(),
                f"{name}-7 [001] d..2. 5.000001: sys_{name} -> 0x{k}".encode(),
                f"{name}\t-7 [001]\td..2.\t5.000001:\t{name}:\ta=1".encode(),
                f"  {dashed} x-{k} [001] d..2. 5.000001: sched_wakeup: comm={dashed} pid={k} "
                f"prio=120 target_cpu=001".encode()]
    # a token or a searched key that ends the line (block rwbs, kvm's words, the function
    # tracer's `func <-parent`), so that the scan for its end meets the line's end
    out += [b"x-1 [000] 5.000001: kvm_exit: vcpu 0 reason HLT",
            b"x-1 [000] 5.000001: kvm_exit: reason HLT rip 0x1 info 0 0",
            b"x-1 [000] 5.000001: kvm_exit: reason EPT_VIOLATION rip 0xffffffff8107e4a8 "
            b"info1 0x181 info2 0x7ffd3000",
            b"x-1 [000] 5.000001: kvm_entry: vcpu 1, rip 0x7f3a1c2e4d10",
            b"x-1 [000] 5.000001: block_rq_issue: 8,0 WS 4096 () 123 + 8 [kworker/0:1]",
            b"x-1 [000] 5.000001: block_rq_complete: 8,0 WS () 123 + 8 [0]",
            b"x-1 [000] 5.000001: block_rq_issue: 8,0 WS",
            b"x-1 [000] 5.000001: block_rq_insert: dev=8,0 sector=5 nr_sector=8 rwbs=WSM",
            b"x-1 [000] 5.000001: irq_handler_entry: irq=24 name=virtio0-input.0",
            b"x-1 [000] 5.000001: softirq_raise: vec=9 [action=RCU]",
            b"x-1 [000] 5.000001: sched_process_exec: filename=/bin/true pid=5 old_pid=5",
            b"x-1 [000] 5.000001: sched_process_fork: comm=a pid=1 child_comm=b child_pid=2",
            b"x-1 [000] 5.000001: do_sys_open <-__x64_sys_openat",
            b"x-1 [000] 5.000001: sys_read(fd: 3, buf: 7ffd, count: 1000)",
            b"x-1 [000] 5.000001: sys_read -> 0x1000"]
    return out


LINES = _lines()


def test_scanned_fields_equal_the_reference():
    text = b"\n".join(LINES) + b"\n"
    assert_same(load_fast(text), refparse(text), text.split(b"\n"))


def _finish(line, pad):
    p = _ftparse.Parser()
    p.feed(bytearray(line + pad), len(line), True)
    out = p.finish()
    events = {k: v.tobytes() for k, v in out["events"].items()}
    return (events, out["comms"], out["symbols"], bytes(out["text"]), out["errors"],
            out["events_count"], out["malformed"], out["headers"])


# what a word load past the line end would take for more of the line: digits, blanks, the
# keys and separators the scanners look for
PADS = [b"9" * 64, b" " * 64, b"\t" * 64, b"-1 [000] :(" * 6, b" next_pid=1 prev_pid=" * 4]


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 5, 7])
def test_bytes_past_the_line_end_never_count(cut):
    """The last line of the input, without its line end, followed by bytes the word scanners
    would take for more digits, blanks or keys: the same records as with zeros after it, and
    the reference's.  cut trims the line so that its end falls at every place in a word."""
    checked = 0
    for line in LINES[::3] + LINES[-15:]:
        line = line[:len(line) - cut] if cut < len(line) else line
        want = _finish(line, bytes(64))
        for pad in PADS:
            assert _finish(line, pad) == want, (line, pad)
        checked += 1
    assert checked > 100
    tail = [ln[:len(ln) - cut] for ln in LINES[::7] + LINES[-15:]]
    text = b"\n".join(tail)     # unterminated last line: its end is the input's
    assert_same(load_fast(text), refparse(text), text.split(b"\n"))


def test_a_line_cut_anywhere_ignores_its_own_continuation():
    """The last line cut at every byte, followed by the rest of itself (a key or name cut in
    two, completed past the end, where a scan that ran over the end would find it): the same
    records, errors and counts as with zeros after the cut."""
    checked = 0
    for line in LINES[::5] + LINES[-15:]:
        for k in range(1, len(line)):
            rest = line[k:] + b" " + line + bytes(64)    # at least PAD: fed as it is
            assert _finish(line[:k], rest) == _finish(line[:k], bytes(64)), (line, k)
            checked += 1
    assert checked > 10000


def _kernel(comm="bash", pid="1", cpu="000", flags="d..2.", secs="5", frac="000001",
            rest="sched_waking: comm=a pid=2 prio=120 target_cpu=001", width=7):
    """A line in the kernel's own columns (`%16s-%-7s [%s] %s %5s.%s: `; trace-cmd report's
    are `%16s-%-5s [%s] %5s.%s: `, without flags), which the prefix reads at the places the
    padding gives (kernel_columns, kernel_time)."""
    flags = f"{flags} " if flags is not None else ""
    return f"{comm:>16}-{pid:<{width}} [{cpu}] {flags}{secs:>5}.{frac}: {rest}".encode()


def _kernel_lines():
    out = []
    for comm in ("<idle>", "CPU 1/KVM", "a-1 [002] b", "x-12", "kworker/u16:3-ev", "c" * 17,
                 "-", "a-", "#x", "CPU:3", "=> x", "[1.5] y", "cpus=2"):
        out.append(_kernel(comm=comm))
    for pid in ("0", "7", "1234567", "12345678", "2147483647", "99999999999", "-1", "1 2",
                "1\t", "12a", ""):
        out.append(_kernel(pid=pid))
    for cpu in ("000", "007", "999", "0001", "01", "0a1", " 01", "-01", "000 ", "00:", "001]"):
        out += [_kernel(cpu=cpu), _kernel(cpu=cpu, flags=None)]
    for flags in ("d.h3.", "dNh4.", "....", "d..2..", "1..2.", "d.\t2.", "d h3.", "d..2:",
                  "12345", "X.s1.", "d..2.12"):
        out.append(_kernel(flags=flags))
    for secs in ("0", "5", "1154", "12345", "1234567", "12345678", "123456789", " 5", "5 "):
        for frac in ("000001", "123456", "12345", "1234567", "123456789", "1234a6", ""):
            out.append(_kernel(secs=secs, frac=frac))
    for rest in ("foo: bar", "foo:", "", "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 "
                 "prev_state=S ==> next_comm=b next_pid=2 next_prio=120"):
        out.append(_kernel(rest=rest))
    # older kernels (4-character flags, pid padded to 5) and trace-cmd report (no flags)
    for width in (0, 1, 5, 7, 8, 9):
        for flags in (None, "d..2", "d..2.", "d", "dNh4..2", "dNh4..2.", " d..2", "\td..2"):
            for pid in ("0", "12345", "1234567"):
                out.append(_kernel(width=width, flags=flags, pid=pid))
        for secs, frac in (("1464", "179964"), ("12345", "1"), ("0", "123456789"), ("7", "")):
            out.append(_kernel(width=width, flags=None, secs=secs, frac=frac))
        # a comm with dashes of its own: the columns are read at the first dash that anchors
        for comm in ("qemu-system-x86", "a-1", "x-12 [001]", "kworker/0:1H-kblockd", "b-1 x",
                     "a-1 (7) [x] y"):
            out += [_kernel(comm=comm, width=width, flags=None, pid="483882"),
                    _kernel(comm=comm, width=width)]
    # the time stamp's ':' after blanks, an integer clock, the latency `us`
    out += [_kernel(frac="000001 :x")[:-2], b"            bash-1       [000] d..2. 123: foo: x",
            b"            bash-1       [000] d..2. 123us: foo: x",
            b"            bash-1       [000] d..2.  5.000001 : foo: x",
            b"            bash-1[000] d..2.     5.000001: foo: x",
            b"            bash-1       [001) d..2.     5.000001: foo: x",
            b"            bash-1       [001)     5.000001: foo: x",
            b"            bash-1       [000]d..2.     5.000001: foo: x"]
    return out


KERNEL_LINES = _kernel_lines()


def test_kernel_columns_equal_the_reference():
    """Every near miss of the kernel's fixed columns (a pid, CPU, flags or time stamp one
    character too long or short, a tab or a blank inside, a comm with its own dash) reads
    as the general search reads it: the reference parser's fields, errors and counts."""
    text = b"\n".join(KERNEL_LINES) + b"\n"
    assert_same(load_fast(text), refparse(text), text.split(b"\n"))


def test_kernel_columns_never_read_past_the_line():
    """A kernel-layout line cut short at every byte of its prefix and time stamp, followed by
    bytes that would complete it (or digits, blanks, keys): the same records as with zeros
    after it."""
    checked = 0
    for line in KERNEL_LINES:
        for k in range(1, min(len(line), 64)):
            short = line[:k]
            want = _finish(short, bytes(64))
            for pad in PADS + [line[k:] + bytes(64)]:
                assert _finish(short, pad) == want, (short, pad)
            checked += 1
    assert checked > 5000


def _named(name, tail):
    return _kernel(rest=name + tail)


def test_event_names_known_by_their_first_bytes():
    """A line's event name is looked up by the 16 bytes that start it when the name, its ':'
    and a blank fit in them (parse_event_line's name_head): every name length around that,
    each followed by what makes it a name or not (a blank, a tab, nothing, another byte, a
    syscall's '(' or ' -> '), seen twice so that the second is a lookup: the reference's."""
    lines = []
    for k in range(1, 19):
        name = ("ab" * 10)[:k]
        for tail in (": a=1 b=2 c=3", ":\ta=1", ": ", ":", ":x a=1 b=2 c=3", "(x: 1) y",
                     " -> 0x1 y y y y", ": " + "y" * 30, "  : a=1 b=2 c=3"):
            lines += [_named(name, tail), _named(name, tail), _named("sys_" + name, tail)]
    text = b"\n".join(lines) + b"\n"
    assert_same(load_fast(text), refparse(text), text.split(b"\n"))


def test_a_known_name_is_not_taken_from_past_the_line():
    """A line cut anywhere in its event name after a whole line with the same name, followed
    by the rest of that name and payload (where a lookup by 16 bytes would find the name):
    the same records as with zeros after the cut."""
    checked = 0
    for name in ("sched_switch", "kvm_exit", "x", "abcdefghijklmn", "abcdefghijklmno"):
        full = _named(name, ": a=1 b=2 c=3 d=4 e=5")
        at = full.index(name.encode())
        for k in range(at, len(full)):
            head = full + b"\n" + full[:k]
            assert _finish(head, full[k:] + bytes(64)) == _finish(head, bytes(64)), (name, k)
            checked += 1
    assert checked > 100


def test_prev_comm_taken_from_the_line():
    """A sched_switch's prev_comm is most often the line's own comm, whose id it then takes
    without a lookup (fast_comm_pid): the same comm, one differing in its last byte or in
    length, every length around the two words compared, and a blank inside."""
    lines = []
    for k in (1, 7, 8, 9, 15, 16, 17, 24):
        comm = ("qw" * 12)[:k]
        for prev in (comm, comm[:-1] + "x", comm + "x", comm[:-1], "a b", comm.upper()):
            for name in (comm, "a b"):
                lines.append(_kernel(comm=name, rest=(
                    f"sched_switch: prev_comm={prev} prev_pid=1 prev_prio=120 prev_state=S "
                    f"==> next_comm={comm} next_pid=2 next_prio=120")))
    text = b"\n".join(lines) + b"\n"
    assert_same(load_fast(text), refparse(text), text.split(b"\n"))
