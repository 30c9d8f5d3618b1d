"""Synthetic trace.dat files for the record kinds this machine cannot record (its kernel
forbids the function and function_graph tracers): a real file's headers, formats, kallsyms and
cmdlines kept, its ring-buffer pages rewritten with records built here.  trace-cmd report of
the result is the oracle (tests/data/synth/*.report.txt, with the command that made them).

Base file: tests/data/public/lisa-sched-load.dat.gz (file v6, little-endian, 8-byte long,
4096-byte pages, uncompressed), whose ftrace formats are function (ip, parent_ip),
funcgraph_entry (func, depth) and funcgraph_exit (func, overrun, calltime, rettime, depth).
"""

import gzip
import struct

from ftrace_fast._datfile import open_dat


def _symbols(dat, names):
    found = {}
    for line in dat.kallsyms.split(b"\n"):
        parts = line.split()
        if len(parts) >= 3 and parts[2].decode() in names and parts[2].decode() not in found:
            found[parts[2].decode()] = int(parts[0], 16)
    return [found[n] for n in names]


def _record(payload):
    """One ring-buffer record: header word then payload (its length a multiple of 4)."""
    assert len(payload) % 4 == 0 and len(payload) <= 112
    return payload


def _page(records, page_size, base_ts):
    """A page of (delta, payload) records, time deltas from base_ts."""
    data = b""
    for delta, payload in records:
        data += struct.pack("<I", (len(payload) // 4) | (delta << 5)) + payload
    assert 16 + len(data) <= page_size
    return struct.pack("<QQ", base_ts, len(data)) + data + bytes(page_size - 16 - len(data))


def funcgraph_dat(base_gz, out):
    """Write the function / function_graph file; returns its path."""
    raw = bytearray(gzip.open(base_gz).read())
    out.write_bytes(bytes(raw))
    dat = open_dat(out)
    ids = {n: dat.formats.by_name(n).id for n in ("function", "funcgraph_entry", "funcgraph_exit")}
    A, B, C, D, E, F = _symbols(dat, ["schedule", "__schedule", "pick_next_task_fair",
                                      "update_curr", "do_nanosleep", "hrtimer_nanosleep"])

    def common(eid, pid, flags=1, pc=1):
        return struct.pack("<HBBi", eid, flags, pc, pid)

    def fn(pid, ip, parent):
        return common(ids["function"], pid) + struct.pack("<QQ", ip, parent)

    def ent(pid, func, depth):
        return common(ids["funcgraph_entry"], pid) + struct.pack("<Qi", func, depth) + bytes(4)

    def ext(pid, func, depth, call, ret):
        return common(ids["funcgraph_exit"], pid) + struct.pack("<QQQQi", func, 0, call, ret, depth) + bytes(4)

    t0 = 5_000_000_000
    # CPU 0: a nest with a leaf, a function event breaking a would-be leaf, an entry left open
    cpu0 = [
        (0, ent(2863, F, 0)),
        (1000, ent(2863, E, 1)),
        (1500, ent(2863, A, 2)),
        (700, ext(2863, A, 2, t0 + 2500, t0 + 3200)),        # leaf: A();
        (300, ent(2863, B, 2)),
        (400, fn(2863, C, B)),                                # breaks B's leaf
        (600, ext(2863, B, 2, t0 + 3500, t0 + 4500)),
        (2000, ext(2863, E, 1, t0 + 1000, t0 + 6500)),
        (100, ext(2863, F, 0, t0, t0 + 6600)),
        (123456, ent(2863, D, 0)),
        (1234, ext(2863, D, 0, t0 + 130056, t0 + 131290)),   # leaf with 1.234 us
        (50, ent(2863, A, 0)),                                # left open
    ]
    # CPU 1: another task, times interleaved with CPU 0's, a long leaf (ms) and functions
    cpu1 = [
        (800, fn(3121, A, F)),
        (2200, ent(3121, D, 0)),
        (12_345_678, ext(3121, D, 0, t0 + 3000, t0 + 12_348_678)),
        (10, fn(3121, B, A)),
        (5, fn(3121, C, B)),
    ]
    buf = dat.buffers[0]
    for k, (cpu, off, size) in enumerate(buf.cpus):
        recs = cpu0 if k == 0 else cpu1 if k == 1 else []
        pages = [_page(recs, buf.page_size, t0)] if recs else []
        while len(pages) * buf.page_size < size:
            pages.append(struct.pack("<QQ", t0, 0) + bytes(buf.page_size - 16))
        raw[off:off + size] = b"".join(pages)[:size]
    out.write_bytes(bytes(raw))
    return out


def with_option(base_gz, out, oid, data):
    """The base v6 file with one more option (id, bytes) in its options section; the CPU data
    offsets of the flyrecord table moved by the bytes inserted."""
    raw = bytearray(gzip.open(base_gz).read())
    out.write_bytes(bytes(raw))
    dat = open_dat(out)
    cpus = dat.buffers[0].cpus
    fly = raw.rfind(b"flyrecord\0", 0, min(off for _c, off, _s in cpus))
    opt = struct.pack("<HI", oid, len(data)) + data
    if raw.rfind(b"options  \0", 0, fly) >= 0:
        at, ins = fly - 2, opt          # before the options' terminating id 0
    else:
        at, ins = fly, b"options  \0" + opt + struct.pack("<H", 0)
    raw[at:at] = ins
    table = fly + len(ins) + 10
    for i in range(dat.cpus_declared):
        off, size = struct.unpack_from("<QQ", raw, table + 16 * i)
        struct.pack_into("<QQ", raw, table + 16 * i, off + len(ins), size)
    out.write_bytes(bytes(raw))
    return out
