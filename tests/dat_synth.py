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


#: printk formats of bprint_dat(), at made-up addresses added to the file's printk section
PRINTK = {
    0xffff000009990000: r"a=%d b=%5d c=%-5d| u=%u x=%x y=%08X",
    0xffff000009990100: r"s=%s t=%6s| p=%.3s w=%*d l=%ld ll=%lld lu=%lu lx=%lx",
    0xffff000009990200: r"i=%i next=%d s=%s",
    0xffff000009990300: r"ptr=%p sym=%ps symoff=%pS pct=%% end",
    0xffff000009990400: r"bputs constant string",
}
# (the formats not written as records stay in the section: the printk lookup sees several)


def buf_page(dat):
    return dat.buffers[0].page_size


def bprint_dat(base_gz, out, only=None):
    """bprint records over every conversion of PRINTK, and a bputs record, on CPU 0."""
    raw = bytearray(gzip.open(base_gz).read())
    out.write_bytes(bytes(raw))
    dat = open_dat(out)
    ids = {n: dat.formats.by_name(n).id for n in ("bprint", "bputs")}
    (sched, sched2) = _symbols(dat, ["schedule", "__schedule"])
    # the printk section: u32 size then the text; the data after it moves
    old = struct.pack("<I", len(dat.printk)) + dat.printk
    at = raw.find(old)
    assert at > 0 and raw.find(old, at + 1) < 0
    extra = "".join(f'0x{a:x} : "{f}"\n' for a, f in PRINTK.items()).encode()
    new = struct.pack("<I", len(dat.printk) + len(extra)) + dat.printk + extra
    raw[at:at + len(old)] = new
    # CPU data stays page-aligned (trace-cmd insists): zeros after the CPU table make the
    # shift whole pages
    delta = len(new) - len(old)
    pad = -delta % buf_page(dat)
    first = min(off for _c, off, _s in dat.buffers[0].cpus) + delta
    fly = raw.rfind(b"flyrecord\0", 0, first)
    end = fly + 10 + 16 * dat.cpus_declared
    raw[end:end] = bytes(pad)
    shift = delta + pad
    for i in range(dat.cpus_declared):
        off, size = struct.unpack_from("<QQ", raw, fly + 10 + 16 * i)
        struct.pack_into("<QQ", raw, fly + 10 + 16 * i, off + shift, size)
    addrs = list(PRINTK)

    def args(*items):
        b = bytearray()
        for kind, v in items:
            if kind == "s":
                b += v.encode() + b"\0"
                continue
            size = struct.calcsize("<" + kind)
            while len(b) % min(size, 4):
                b += b"\0"
            b += struct.pack("<" + kind, v)
        while len(b) % 4:
            b += b"\0"
        return bytes(b)

    def bprint(fmt, payload):
        head = struct.pack("<HBBi", ids["bprint"], 0, 0, 3121) + struct.pack("<QQ", sched, fmt)
        return head + payload

    # libtraceevent 1.7.1 misprints the last argument of a bprint record that is not the last
    # of its page, and every bprint after a misprinted one: one bprint, last on the page
    recs = [
        struct.pack("<HBBi", ids["bputs"], 0, 0, 3121) + struct.pack("<QQ", sched2, addrs[4]),
        bprint(addrs[1], args(("s", "hello"), ("s", "ab"), ("s", "truncated"), ("i", 6), ("i", 33),
                              ("q", -5), ("q", 1 << 40), ("Q", 1 << 63), ("Q", 0xdeadbeef))),
    ]
    if only is not None:
        # one record of the first format with these args (a probe of one conversion)
        recs = [bprint(addrs[0], args(*only))]
    t0 = 7_000_000_000
    buf = dat.buffers[0]
    pages = []
    for k, (cpu, off, size) in enumerate(buf.cpus):
        body = []
        if k == 0:
            body = [(1000 * (i + 1), r) for i, r in enumerate(recs)]
        data = b""
        for delta, payload in body:
            assert len(payload) % 4 == 0
            n = len(payload) // 4
            if n <= 28:
                data += struct.pack("<I", n | (delta << 5)) + payload
            else:
                data += struct.pack("<II", delta << 5, len(payload) + 4) + payload
        page = struct.pack("<QQ", t0, len(data)) + data
        page += bytes(buf.page_size - len(page))
        region = (page + bytes(size))[:size] if body else \
            b"".join(struct.pack("<QQ", t0, 0) + bytes(buf.page_size - 16) for _ in range(size // buf.page_size))
        pages.append((off + shift, region))
    for off, region in pages:
        raw[off:off + len(region)] = region
    out.write_bytes(bytes(raw))
    return out
