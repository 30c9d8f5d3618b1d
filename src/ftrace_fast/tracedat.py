"""trace-cmd's binary ``trace.dat`` (file versions 6 and 7) loaded into the same ``Trace`` the
text path builds, so every analysis is blind to the input format.

What comes from where:

- the file structure (headers, options, sections, compression): ``_datfile``;
- ring-buffer pages -> one row per record (time, payload offset, length, event type id), and
  lost-events / damaged-page markers: the ``nogil`` walker in ``_ftdat``, one thread per CPU;
- the time merge of the CPU streams, in the order ``trace-cmd report`` prints them (smallest
  time first, the lower CPU on a tie): ``_ftdat.merge_order``;
- fields: read with NumPy at the offsets and sizes of each event's ``format`` stored in the
  file (never hard-coded offsets), into the layouts of ``events.py``.

Choices, where the binary holds more than the text:

- ``line`` is the 1-based position of the row in the merged stream (lost-event markers take a
  position too, as their ``CPU:N [LOST M EVENTS]`` lines do in text).
- ``comm`` of a row is the saved-cmdlines name of its pid (``<idle>`` for pid 0, ``<...>``
  when the pid is not saved), as ``trace-cmd report`` prints it.  ``flags`` holds the kernel's
  irq flags and preempt count as the latency format prints them (``dNhs`` + depth).
- ``prev_state`` letters come from the kernel's own print format stored in the file (its
  ``__print_flags`` table and its preempted-bit test), not from libtraceevent's fixed table.
- kvm_exit ``reason`` is named through the ``__print_symbolic`` table the file's kvm_exit
  format selects by its ``isa`` field (VMX or SVM); softirq ``action`` likewise by ``vec``.
- ``print`` (trace_marker) keeps trace-cmd's text ``<caller>: <message>`` as payload;
  ``bprint`` (trace_printk) and ``bputs`` too, the message formatted from the printk format
  the file saved and the record's binary arguments (``_ftdat.format_bprint``).
- kernel_stack events give ``stack_frame`` rows (one per frame, symbol from the file's
  kallsyms), as ``=> func (addr)`` lines do in a report.
- ``function`` records: the function's kallsyms name as payload, ``ip``/``parent_ip``
  columns; ``funcgraph_entry``/``funcgraph_exit``: the text path's funcgraph layout, an
  exit's duration = rettime - calltime, and an entry whose next record in the merged stream
  is its own exit a leaf with that duration, the exit dropped (trace-cmd's rule).
- ``tgid``: from a saved-tgids option when the file has one (``saved_tgids``), else -1.
- Any other event keeps its fields as ``name=value`` payload text, in format order (strings
  as text, integers in decimal, pointers in hex), so ``Trace.payload(name)`` types them, and
  every field of its format as a typed column of its array (``format_columns``).

Time: the buffer's clock.  ``local``/``global``/``mono``/``perf``/``boot`` are ns;
``tsc2nsec`` and an ``x86-tsc`` file with trace-cmd's TSC2NSEC option are converted to ns with
the option's multiplier and shift, as trace-cmd does; ``counter`` and ``x86-tsc`` without it
stay in ticks.  A guest file's TIME_SHIFT option is applied only when asked (``guest_sync``).
"""

from __future__ import annotations

import functools
import os
import re
import threading

import numpy as np

from . import _group
from . import events as _ev
from ._datfile import DatError, MAGIC, cpu_chunks, open_dat
from ._source import InputError, is_tracedat

try:
    from . import _ftdat
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(f"ftrace_fast._ftdat cannot be imported: {exc}; rebuild with "
                      "'pip install -e .'") from exc

__all__ = ["is_tracedat", "load_dat", "DatError", "MAGIC"]

_NS_CLOCKS = ("local", "global", "uptime", "perf", "mono", "mono_raw", "boot", "tai", "tsc2nsec")


# -- reading fields with NumPy -------------------------------------------------------------

def _gather(buf, offs, start, size, lens=None):
    """(n, size) uint8: bytes [off + start, off + start + size) of each record (zero past the
    record when lens is given, and past the buffer)."""
    if lens is None:
        lens = np.full(len(offs), np.iinfo(np.int32).max, np.int32)
    return _ftdat.gather(buf, np.ascontiguousarray(offs, np.int64),
                         np.ascontiguousarray(lens, np.int32), start, size)


def _number(buf, offs, f, bo, lens=None):
    """Integer values of a numeric field (int64; unsigned 8-byte values wrap into int64)."""
    size = f.size if f.size in (1, 2, 4, 8) else 8
    raw = _gather(buf, offs, f.offset, size, lens)
    kind = "i" if f.signed else "u"
    vals = raw.reshape(-1).view(f"{bo}{kind}{size}") if len(offs) else np.zeros(0, f"{bo}{kind}{size}")
    return vals.astype(np.int64) if not (kind == "u" and size == 8) else vals.astype(np.uint64).view(np.int64)


def _uniq(vals):
    """(distinct values, inverse) of integers; a lookup table instead of a sort when their
    range is small (pids, flags, states, ids)."""
    vals = np.asarray(vals)
    if len(vals) == 0:
        return vals[:0], np.zeros(0, np.int64)
    lo, hi = int(vals.min()), int(vals.max())
    if hi - lo < (1 << 22):
        present = np.zeros(hi - lo + 1, bool)
        present[vals - lo] = True
        u = np.flatnonzero(present)
        table = np.zeros(hi - lo + 1, np.int64)
        table[u] = np.arange(len(u))
        return (u + lo).astype(vals.dtype), table[vals - lo]
    u, inv = np.unique(vals, return_inverse=True)
    return u, inv.reshape(-1)


def _fixed_strings(buf, offs, f, lens=None):
    """Distinct strings of a char[N] field (up to its first NUL) and each record's index into
    them: hashed once per record in _ftdat, decoded once per distinct string."""
    if lens is None:
        lens = np.full(len(offs), np.iinfo(np.int32).max, np.int32)
    ids, first = _ftdat.intern_fixed(buf, np.ascontiguousarray(offs, np.int64),
                                     np.ascontiguousarray(lens, np.int32), f.offset, f.size)
    names = []
    for r in first.tolist():
        o = int(offs[r]) + f.offset
        end = min(o + f.size, int(offs[r]) + int(lens[r]), len(buf))
        names.append(bytes(buf[o:max(end, o)]).split(b"\0", 1)[0].decode("utf-8", "replace"))
    return names, ids


def _dyn_bounds(buf, offs, lens, f, bo):
    """(start, length) in buf of a __data_loc / __rel_loc field's bytes, clipped to the record."""
    loc = _number(buf, offs, f, bo, lens).astype(np.uint64) & np.uint64(0xffffffff)
    start = (loc & np.uint64(0xffff)).astype(np.int64)
    n = (loc >> np.uint64(16)).astype(np.int64)
    if f.relative:
        start += f.offset + f.size
    ok = (start >= 0) & (start + n <= lens)
    n = np.where(ok, n, 0)
    return offs + np.where(ok, start, 0), n


def _ragged(buf, starts, lens):
    """Concatenated bytes [starts[i], starts[i] + lens[i]) and their offsets in the result."""
    total = int(lens.sum())
    out_off = np.zeros(len(lens), np.int64)
    if len(lens) > 1:
        np.cumsum(lens[:-1], out=out_off[1:])
    if total == 0:
        return np.zeros(0, np.uint8), out_off
    idx = np.repeat(starts - out_off, lens) + np.arange(total, dtype=np.int64)
    return buf[idx], out_off


def _strip_nul(data, offs, lens):
    """Lengths up to the first NUL (and without a trailing newline) of ragged strings."""
    if not len(lens):
        return lens
    nul = (data == 0) | (data == 10)
    # first NUL at or after each start: cumulative count trick
    csum = np.concatenate(([0], np.cumsum(nul)))
    out = lens.copy()
    has = csum[offs + lens] - csum[offs] > 0
    if has.any():
        pos = np.flatnonzero(nul)
        first = pos[np.searchsorted(pos, offs[has])]
        out[has] = first - offs[has]
    return out


class _Interner:
    def __init__(self, table):
        self.table = table
        self.index = {s: i for i, s in enumerate(table)}

    def ids(self, names):
        out = np.empty(len(names), np.int32)
        for i, s in enumerate(names):
            j = self.index.get(s)
            if j is None:
                j = self.index[s] = len(self.table)
                self.table.append(s)
            out[i] = j
        return out


def _ragged_strings(data, offs, lens, interner):
    """Intern ragged byte strings: one decode per distinct string."""
    n = len(lens)
    if n == 0:
        return np.zeros(0, np.int32)
    width = int(lens.max()) if n else 0
    width = max(width, 1)
    mat = np.zeros((n, width), np.uint8)
    if lens.sum():
        rows = np.repeat(np.arange(n), lens)
        cols = np.arange(int(lens.sum())) - np.repeat(_starts_of(lens), lens)
        mat[rows, cols] = data[np.repeat(offs, lens) + cols]
    sv = mat.view(f"S{width}").reshape(-1)
    u, inv = np.unique(sv, return_inverse=True)
    names = [bytes(x).decode("utf-8", "replace") for x in u]
    return interner.ids(names)[inv.reshape(-1)]


def _starts_of(lens):
    s = np.zeros(len(lens), np.int64)
    if len(lens) > 1:
        np.cumsum(lens[:-1], out=s[1:])
    return s


#: the records of load_dat(fields=False)
_INFO_DTYPE = np.dtype([("ts", "i8"), ("line", "i8"), ("cpu", "i4")])


def _void(a):
    return a.view(np.dtype((np.void, a.dtype.itemsize)))


def _take(a, index):
    """a[index] for structured records, copied as opaque bytes (NumPy copies structured
    records field by field, an order of magnitude slower)."""
    return np.take(_void(a), index).view(a.dtype)


def _concat(parts):
    return np.concatenate([_void(p) for p in parts]).view(parts[0].dtype)


# -- print-format tables -------------------------------------------------------------------

_SAFE_EXPR = re.compile(r"^[0-9a-fA-Fx|&+\-<>() ]+$")


def _eval_int(expr):
    expr = expr.strip()
    if not _SAFE_EXPR.match(expr):
        return None
    try:
        return int(eval(expr, {"__builtins__": {}}, {}))  # digits and operators only
    except Exception:
        return None


@functools.lru_cache(maxsize=256)
def _symbolic_tables(fmt, field):
    """[{value: name}] of each __print_symbolic(REC->field ...) in a print fmt, in order."""
    out = []
    for m in re.finditer(r"__print_symbolic\(\s*REC->" + re.escape(field) + r"\b[^,]*,(.*?)\)\s*(?:,|:|$)",
                         fmt, re.S):
        table = {}
        for v, s in re.findall(r"\{\s*([-0-9a-fA-Fx]+)\s*,\s*\"([^\"]*)\"\s*\}", m.group(1)):
            iv = _eval_int(v)
            if iv is not None:
                table[iv] = s
        out.append(table)
    return out


@functools.lru_cache(maxsize=64)
def _state_table(fmt):
    """(mask, [(bit, letter)], preempt bits) of sched_switch's prev_state from its print fmt."""
    m = re.search(r"__print_flags\(\s*REC->prev_state\s*&\s*(.*?),\s*\"\|\"\s*,(.*?)\)\s*:", fmt, re.S)
    if not m:
        return None
    mask = _eval_int(m.group(1))
    pairs = []
    for v, s in re.findall(r"\{\s*([0-9a-fA-Fx]+)\s*,\s*\"([^\"]*)\"\s*\}", m.group(2)):
        iv = _eval_int(v)
        if iv is not None:
            pairs.append((iv, s))
    pm = re.search(r"REC->prev_state\s*&\s*([^?]*?)\s*\?\s*\"\+\"", fmt[m.end():])
    plus = _eval_int(pm.group(1)) if pm else None
    return (mask if mask is not None else ~0), pairs, plus or 0


def _state_bits(values, table):
    """Kernel prev_state values -> events.STATE_* bit sets through the file's own letters."""
    u, inv = _uniq(values)
    out = np.empty(len(u), np.int32)
    for i, v in enumerate(u.tolist()):
        if table is None:
            out[i] = (v & 0xff) | _ev.STATE_NUMERIC | (_ev.STATE_PREEMPTED if v & ~0xff else 0)
            continue
        mask, pairs, plus = table
        bits = 0
        for b, letter in pairs:
            if v & mask & b:
                bits |= _ev.STATE_BITS.get(letter, _ev.STATE_UNKNOWN_LETTER)
        if plus and v & plus:
            bits |= _ev.STATE_PREEMPTED
        out[i] = bits
    return out[inv.reshape(-1)]


# -- where each layout column comes from ---------------------------------------------------

#: (layout, column) -> kernel field names to try, when not the column's own / kernel name
_SOURCES = {
    ("sched_process_fork", "task_comm"): ("parent_comm", "comm"),
    ("sched_process_fork", "task_pid"): ("parent_pid", "pid"),
    ("kvm_entry", "vcpu"): ("vcpu_id",),
    ("kvm_exit", "vcpu"): ("vcpu_id",),
    ("kvm_exit", "reason"): ("exit_reason",),
    ("kvm_exit", "rip"): ("guest_rip",),
    ("block_rq", "rq_comm"): ("comm",),
    ("stack_frame", "func"): (),
}


def _source_field(fmt, layout, col, kernel):
    names = _SOURCES.get((layout, col))
    if names is None:
        names = (kernel.get(col, col),)
    for n in names:
        f = fmt.field(n)
        if f is not None:
            return f
    return None


class _Kallsyms:
    """/proc/kallsyms of the traced machine: sorted addresses and their names."""

    def __init__(self, text):
        found = re.findall(rb"^([0-9a-fA-F]{1,16}) \S+ (\S+)", text, re.M)
        hexes = np.array([h for h, _n in found], "S16")
        raw = np.zeros((len(found), 16), np.uint8)
        if len(found):
            # right-align the hex digits, then read them as nibbles
            chars = hexes.view(np.uint8).reshape(len(found), 16)
            ln = np.strings.str_len(hexes)
            shift = 16 - ln
            cols = np.arange(16)[None, :] - shift[:, None]
            ok = cols >= 0
            raw[ok] = chars[np.nonzero(ok)[0], cols[ok]]
        nib = np.zeros(256, np.uint64)
        for i, ch in enumerate(b"0123456789abcdef"):
            nib[ch] = i
        for i, ch in enumerate(b"ABCDEF"):
            nib[ch] = 10 + i
        a = np.zeros(len(found), np.uint64)
        for k in range(16):
            a = (a << np.uint64(4)) | nib[raw[:, k]]
        order = np.argsort(a, kind="stable")
        a = a[order]
        # symbols sharing an address: the first in the file names it (as trace-cmd shows)
        first = np.concatenate(([True], a[1:] != a[:-1])) if len(a) else np.zeros(0, bool)
        self.addrs = a[first]
        keep = order[first]
        self._found = found
        self._keep = keep

    @property
    def names(self):
        return _LazyNames(self._found, self._keep)

    def lookup(self, addrs):
        """Index of the symbol at or below each address (-1 when none)."""
        if not len(self.addrs):
            return np.full(len(addrs), -1, np.int64)
        i = np.searchsorted(self.addrs, addrs.astype(np.uint64), side="right") - 1
        return i


class _LazyNames:
    def __init__(self, found, keep):
        self.found, self.keep = found, keep

    def __getitem__(self, i):
        return self.found[self.keep[i]][1].decode("utf-8", "replace")


# -- the decoder -----------------------------------------------------------------------------

class _Context:
    """What every CPU's decode shares: the formats, byte order, interners."""

    def __init__(self, dat, wanted):
        self.dat = dat
        self.bo = dat.bo
        self.wanted = wanted
        self.formats = dat.formats
        self.comms = _Interner([])
        self.symbols = _Interner([])
        self.kallsyms = None
        self.cpus = None
        self.common = dat.formats.common()
        self.lock = threading.Lock()
        self.shift = None
        self.fields = True
        self.per_event = {}     # name -> [structured arrays], one per CPU (and frame batch)
        self.layouts = {}
        self.arena_parts = []
        self.arena_size = 0
        self.field_columns = {}  # event name -> format_columns() of its generic records
        # where each CPU's pages come from (the fuzzer feeds mutated pages through it)
        self.chunks = cpu_chunks

    def arena_add(self, data):
        """Append payload bytes to the text arena; their offset in it."""
        with self.lock:
            base = self.arena_size
            self.arena_parts.append(data)
            self.arena_size += len(data)
        return base

    def ksyms(self):
        if self.kallsyms is None:
            self.kallsyms = _Kallsyms(self.dat.kallsyms)
        return self.kallsyms


def _layout_args(dat, buffer, common):
    hp = dat.header_page
    ct = common.get("common_type")
    return (buffer.page_size, hp.get("timestamp", (0, 8))[0], hp["commit"][0], hp["commit"][1],
            hp["data"][0], ct.offset if ct else 0, ct.size if ct else 2, _min_payload(common))


def _pages(ctx, buffer, i, feeder):
    """Feed one CPU's pages, chunk by chunk as they are decompressed, to a RowWalker or a
    Decoder (whole pages; a partial last page becomes a damaged-page marker)."""
    psize = buffer.page_size
    carry = b""
    for piece in ctx.chunks(ctx.dat, ctx.dat.path, buffer, i):
        if carry:
            piece = carry + bytes(piece)
            carry = b""
        whole = len(piece) - len(piece) % psize
        if whole != len(piece):
            carry = bytes(piece[whole:])
            piece = memoryview(piece)[:whole]
        if whole:
            feeder.feed(piece)
    if carry:
        feeder.partial_page()


def _walk_rows(ctx, buffer, i):
    """Pass 1 of one CPU (in its thread): times in the trace's unit, kinds, lost counts."""
    dat = ctx.dat
    page_size, ts_off, commit_off, commit_size, data_off, type_off, type_size, minp = ctx.layout
    w = _ftdat.RowWalker(page_size, ts_off, commit_off, commit_size, data_off, dat.big_endian,
                         type_off, type_size, minp)
    _pages(ctx, buffer, i, w)
    raw, kind, lost, counts, big_ids, damaged, bad_pages = w.result()
    cpu_id = buffer.cpus[i][0]
    ts = _to_ns(raw, dat, buffer, cpu_id, ctx.shift)
    del raw
    present = {int(t): int(counts[t]) for t in np.flatnonzero(counts)}
    if big_ids:
        u, c = np.unique(kind[kind >= len(counts)], return_counts=True)
        present.update(zip(u.tolist(), c.tolist()))
    return {"cpu": cpu_id, "ts": ts, "kind": kind, "lost": lost, "present": present,
            "damaged": damaged, "bad_pages": bad_pages}


def _i64(v):
    """A Python int as a two's-complement int64 value."""
    return ((int(v) + (1 << 63)) % (1 << 64)) - (1 << 63)


class _Plan:
    """The decode plan of a load: per type id its entry (mode, output, ops) and the op rows,
    lowered from the file's formats; tables and names in one int64 and one byte array."""

    def __init__(self):
        self.ops = []
        self.extra = []
        self.blob = bytearray()

    def name(self, s):
        b = s.encode("utf-8", "surrogateescape")
        off = len(self.blob)
        self.blob += b
        return off, len(b)

    def op(self, code, dst, dst_size, f=None, const=-1, shr=0, mask=0, table=0, aux=None,
           extra=-1, src=None):
        src_off, src_size, sign = (f.offset, f.size, int(f.signed)) if f is not None else (0, 0, 0)
        if src is not None:
            src_off, src_size, sign = src
        aux_off, aux_size, aux_sign = (aux.offset, aux.size, int(aux.signed)) if aux else (0, 0, 0)
        self.ops.append((_ftdat.OPS[code], src_off, src_size, sign, dst, dst_size, _i64(const),
                         shr, mask, table, aux_off, aux_size, aux_sign, extra))

    def symbolic(self, tables, keymask):
        x = len(self.extra)
        self.extra += [len(tables), keymask]
        for t in tables:
            items = sorted((_i64(k), v) for k, v in t.items())
            self.extra.append(len(items))
            for k, v in items:
                o, n = self.name(v)
                self.extra += [k, o, n]
        return x

    def state(self, table):
        x = len(self.extra)
        if table is None:
            self.extra += [0, 0, 0, 0]
            return x
        mask, pairs, plus = table
        self.extra += [1, _i64(mask), _i64(plus), len(pairs)]
        for b, letter in pairs:
            self.extra += [_i64(b), _ev.STATE_BITS.get(letter, _ev.STATE_UNKNOWN_LETTER)]
        return x


def _lower(plan, fmt, layout, dt):
    """Op rows of one event's format into layout ``layout`` (dtype dt); None when a column
    needs the NumPy decode (odd-sized or array fields)."""
    start = len(plan.ops)
    off = {n: dt.fields[n][1] for n in dt.names}
    common = fmt.common
    pid_f = common.get("common_pid")
    plan.op("int", off["pid"], 4, pid_f) if pid_f else plan.op("const", off["pid"], 4)
    plan.op("const", off["tgid"], 4)
    plan.op("pidcomm", off["comm"], 4, pid_f, src=None if pid_f else (0, 0, 0))
    fl = common.get("common_flags")
    plan.op("flags", off["flags"], 8, fl, aux=common.get("common_preempt_count"))
    kinds = _ev.field_kinds(layout)
    kernel = _ev.kernel_names(layout)

    def fits(f):
        return f.size in (1, 2, 4, 8) and not f.dynamic and not f.array_len

    for col, kind in kinds.items():
        if kind == "text":
            return None
        size = _ev._KIND_SIZE[kind]
        if layout == "block_rq" and col in ("dev_major", "dev_minor"):
            f = fmt.field("dev")
            if f is None:
                plan.op("const", off[col], 4)
            elif not fits(f):
                return None
            elif col == "dev_major":
                plan.op("int", off[col], 4, f, const=0, shr=20)
            else:
                plan.op("int", off[col], 4, f, const=0, mask=0xfffff)
            continue
        if layout == "softirq" and col == "action":
            f = fmt.field("vec")
            if f is None:
                plan.op("const", off[col], 4)
            elif not fits(f):
                return None
            else:
                plan.op("symbolic", off[col], 4, f, const=-1,
                        extra=plan.symbolic(_symbolic_tables(fmt.print_fmt, f.name) or [{}], 0))
            continue
        f = _source_field(fmt, layout, col, kernel)
        if f is None:
            plan.op("const", off[col], size, const=0 if kind == "u8" else -1)
        elif kind == "comm" or (kind == "sym" and f.is_string):
            table = 0 if kind == "comm" else 1
            if f.dynamic:
                plan.op("str_dyn", off[col], 4, f, table=table, aux=f if f.relative else None)
                plan.ops[-1] = plan.ops[-1][:12] + (int(f.relative), plan.ops[-1][13])
            else:
                plan.op("str_fixed", off[col], 4, f, table=table)
        elif not fits(f):
            return None
        elif kind == "sym":
            tables = _symbolic_tables(fmt.print_fmt, f.name)
            isa, keymask = None, 0
            if fmt.name == "kvm_exit" and len(tables) > 1:
                isa = fmt.field("isa")
                if isa is not None and not fits(isa):
                    return None
                keymask = 0xffff if "& 0xffff" in fmt.print_fmt else 0
            plan.op("symbolic", off[col], 4, f, const=0, aux=isa,
                    extra=plan.symbolic(tables or [{}], keymask))
        elif kind == "state":
            plan.op("state", off[col], 4, f, const=0,
                    extra=plan.state(_state_table(fmt.print_fmt)))
        else:
            plan.op("int", off[col], size, f, const=-1)
    return start, len(plan.ops) - start


_FLAG_TEXT = None


def _flag_text():
    """The latency-format flag characters of every (irq flags << 8 | preempt count): 64 K x 8
    bytes, as _flags_column prints them."""
    global _FLAG_TEXT
    if _FLAG_TEXT is None:
        key = np.arange(1 << 16)
        f, p = key >> 8, key & 0xff
        c1 = np.where(f & 1, b"d", np.where(f & 2, b"X", b"."))
        c2 = np.where((f & 4) & ((f & 0x20) != 0), b"N", np.where(f & 4, b"n", np.where(f & 0x20, b"p", b".")))
        hard, soft = (f & 8) != 0, (f & 0x10) != 0
        c3 = np.where(hard & soft, b"H", np.where(hard, b"h", np.where(soft, b"s", b".")))
        hexd = np.array([b"%x" % i for i in range(16)], "S1")
        c4 = np.where((p & 0xf) == 0, b".", hexd[p & 0xf])
        out = np.zeros((1 << 16, 8), np.uint8)
        for k, c in enumerate((c1, c2, c3, c4)):
            out[:, k] = c.astype("S1").view(np.uint8)
        _FLAG_TEXT = out
    return _FLAG_TEXT


def _pid_names(cmd):
    """(blob, (offset, length) per pid) of the saved cmdlines; length -1: pid not saved."""
    pids = [p for p in cmd if 0 < p < (1 << 23)]
    n = max(pids) + 1 if pids else 1
    table = np.full((n, 2), -1, np.int64)
    blob = bytearray()
    for p in pids:
        b = cmd[p].encode("utf-8", "surrogateescape")
        table[p] = (len(blob), len(b))
        blob += b
    return bytes(blob), table


def _run_threads(fn, n, n_threads):
    results = [None] * n
    errors = []

    def run(k):
        try:
            results[k] = fn(k)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    if n_threads > 1 and n > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(n_threads, n)) as ex:
            list(ex.map(run, range(n)))
    else:
        for k in range(n):
            run(k)
    if errors:
        raise errors[0]
    return results


def _decode_all(ctx, buf_desc, n_threads, path, *, pids, comm, start, end, shift, Trace,
                Stats, LOST_DTYPE):
    """Pass 1 (rows), the merge (ts/line/cpu at their place), pass 3 (fields at their place),
    then the events the NumPy decode handles, and the Trace."""
    dat = ctx.dat
    ctx.layout = _layout_args(dat, buf_desc, ctx.common)
    n = len(buf_desc.cpus)
    rows = _run_threads(lambda k: _walk_rows(ctx, buf_desc, k), n, n_threads)
    # what each type id becomes
    per_type = {}
    for r in rows:
        for tid, c in r["present"].items():
            per_type.setdefault(tid, []).append((r["cpu"], c))
    if not ctx.fields and _has_funcgraph_exits(ctx, per_type):
        # which exits the report merges into leaves needs their pid and function: decoded
        ctx.fields = True
    enabled = np.array([ctx.cpus is None or r["cpu"] in ctx.cpus for r in rows], np.uint8)
    unknown_types, total_events, filtered = {}, 0, 0
    out_names, out_layout, out_mode, out_rows = [], [], [], []
    entries = {}            # type id -> (mode, output index, first op, ops)
    plan = _Plan()
    by_name = {}
    for tid in sorted(per_type):
        counts = per_type[tid]
        fmt = ctx.formats.get(tid)
        if fmt is None:
            unknown_types[tid] = sum(c for _cpu, c in counts)
            continue
        total_events += sum(c for _cpu, c in counts)
        kept = sum(c for cpu, c in counts if ctx.cpus is None or cpu in ctx.cpus)
        if ctx.wanted is not None and fmt.name not in ctx.wanted:
            filtered += sum(c for _cpu, c in counts)
            continue
        filtered += sum(c for _cpu, c in counts) - kept
        layout = _ev.EVENT_LAYOUT.get(fmt.name, "generic")
        if layout in ("text", "funcgraph", "stack_frame"):
            layout = "generic"
        lowered = None
        if ctx.fields and layout != "generic" and fmt.name != "kernel_stack":
            lowered = _lower(plan, fmt, layout, _ev.dtype_for(layout))
        mode = "none" if not ctx.fields else ("decode" if lowered else "fallback")
        key = (fmt.name, mode)
        if key not in by_name:
            by_name[key] = len(out_names)
            out_names.append(fmt.name)
            out_layout.append(layout)
            out_mode.append(mode)
            out_rows.append(0)
        o = by_name[key]
        out_rows[o] += kept
        entries[tid] = (_ftdat.MODES.get(mode, 0), o) + (lowered or (0, 0))
    # np.empty: large arrays get transparent huge pages; merge_place writes every row whole
    outs = [np.empty(k, _ev.dtype_for(lay) if m == "decode" else _INFO_DTYPE)
            for k, lay, m in zip(out_rows, out_layout, out_mode)]
    ntypes = max(entries) + 1 if entries else 0
    type_of = np.full(ntypes, -1, np.int32)
    types = np.zeros((len(entries), 4), np.int64)
    for e, (tid, ent) in enumerate(sorted(entries.items())):
        type_of[tid] = e
        types[e] = ent
    table = np.zeros((len(outs), 6), np.int64)
    for o, a in enumerate(outs):
        d = a.dtype.fields
        table[o] = (a.ctypes.data, a.dtype.itemsize, d["ts"][1], d["line"][1], d["cpu"][1], len(a))
    nmark = sum(len(r["lost"]) for r in rows)
    lost = np.zeros(nmark, LOST_DTYPE)
    lc, ll, lk, lt = (np.zeros(nmark, t) for t in (np.int32, np.int64, np.int64, np.int64))
    filled = np.zeros(len(outs), np.int64)
    nl = _ftdat.merge_place([r["ts"] for r in rows], [r["kind"] for r in rows],
                            [r["lost"] for r in rows], np.array([r["cpu"] for r in rows], np.int32),
                            enabled, type_of, table, filled, lc, ll, lk, lt)
    if not np.array_equal(filled, table[:, 5]):
        raise DatError(f"{path}: the merge placed other rows than the walk counted")
    lost["cpu"], lost["line"], lost["count"], lost["ts"] = lc[:nl], ll[:nl], lk[:nl], lt[:nl]
    del lc, ll, lk, lt
    damaged = sum(r["damaged"] for r in rows)
    for r in rows:
        r["ts"] = r["lost"] = None
    fallback = [None] * n
    comms, symbols = _ftdat.StringTable(), _ftdat.StringTable()
    if ctx.fields and len(entries):
        blob, pid_name = _pid_names(dat.cmdlines)
        extra = np.array(plan.extra, np.int64)
        ops = np.array(plan.ops, np.int64).reshape(-1, len(_ftdat.OP_COLUMNS))
        blob = np.frombuffer(bytes(plan.blob) + blob, np.uint8)
        pid_name[:, 0] += np.where(pid_name[:, 1] >= 0, len(plan.blob), 0)
        flag_text = _flag_text()

        def decode(k):
            r = rows[k]
            dec = _ftdat.Decoder(ctx.layout, dat.big_endian, r["kind"], type_of, types, ops,
                                 extra, blob, outs, flag_text, pid_name, comms, symbols,
                                 r["bad_pages"])
            _pages(ctx, buf_desc, k, dec)
            try:
                out = dec.finish()
            except ValueError as exc:
                raise DatError(f"{path}: CPU {r['cpu']}: {exc} (did the file change?)") from None
            r["kind"] = None
            return out
        fallback = _run_threads(decode, n, n_threads)
    rows_cpu = [r["cpu"] for r in rows]
    del rows
    ctx.comms = _Interner(comms.names())
    ctx.symbols = _Interner(symbols.names())
    per_event, layouts = {}, {}
    for o, (name, lay, mode) in enumerate(zip(out_names, out_layout, out_mode)):
        if mode != "fallback":
            per_event[name] = outs[o]
            layouts[name] = lay
    # the events decoded with NumPy: their payload bytes were kept by pass 3
    fb_parts = {}
    entry_tid = {e: tid for tid, e in enumerate(type_of.tolist()) if e >= 0}
    for k, got in enumerate(fallback):
        if got is None:
            continue
        arena, ent, place, off, ln = got
        if not len(ent):
            continue
        for e in np.unique(ent).tolist():
            sel = np.flatnonzero(ent == e)
            fmt = ctx.formats.get(entry_tid[e])
            info = outs[int(types[e, 1])]
            pl = place[sel]
            r = {"cpu": rows_cpu[k], "line": info["line"][pl], "ts_ns": info["ts"][pl]}
            tmp_events, tmp_layouts = {}, {}
            _decode_event(ctx, fmt, arena, off[sel], ln[sel].astype(np.int32), r,
                          np.arange(len(sel)), dat.cmdlines, ctx.arena_add, ctx.bo, tmp_events,
                          tmp_layouts)
            for name, parts in tmp_events.items():
                fb_parts.setdefault(name, []).extend(parts)
                layouts[name] = tmp_layouts[name]
    for name, parts in fb_parts.items():
        parts = _same_columns(ctx, name, parts)
        a = _concat(parts) if len(parts) > 1 else parts[0]
        # in line order; stack frames share their kernel_stack's line and keep their order
        per_event[name] = _take(a, np.argsort(a["line"], kind="stable")) if len(parts) > 1 else a
    for o, (name, lay, mode) in enumerate(zip(out_names, out_layout, out_mode)):
        if mode == "fallback" and name not in per_event:
            per_event[name] = np.zeros(0, _ev.dtype_for(lay))
            layouts[name] = lay
    del outs, fallback
    t = Trace(layouts=layouts)
    t.comms = ctx.comms.table
    t.symbols = ctx.symbols.table
    t.text_arena = (np.concatenate(ctx.arena_parts) if ctx.arena_parts else np.zeros(0, np.uint8))
    ctx.arena_parts = []
    if ctx.fields:
        _funcgraph_leaves(per_event)
        _learn_comms(per_event, ctx.comms, dat.cmdlines)
        _apply_tgids(per_event, saved_tgids(dat))
    # selections the text path applies while parsing
    selected = pids is not None or comm is not None or start is not None or end is not None
    if selected:
        filtered += _select(t, per_event, layouts, pids, comm, start, end)
    t.events = per_event
    t.lost = lost
    if not selected:
        # the walk counted each CPU's rows: Trace.cpus() needs no pass over them
        known = sorted({cpu for tid in entries for cpu, c in per_type[tid] if c and cpu >= 0 and
                        (ctx.cpus is None or cpu in ctx.cpus)})
        t.derived("cpus", t._arrays_key(), lambda: known)
    kept = sum(len(a) for a in per_event.values())
    t.stats = Stats(lines=kept + len(lost) + filtered, events=kept, headers=len(lost),
                    filtered=filtered, malformed=0, truncated_last_line=False, error_counts={})
    clock = buf_desc.clock or dat.trace_clock
    t.clock = "ns" if (clock in _NS_CLOCKS or clock.startswith("mono") or
                       (dat.tsc2nsec and clock == "x86-tsc")) else (
        "x86-tsc" if clock == "x86-tsc" else "counter")
    t.source = path
    t.compression = None
    t.format = {"tracecmd_headers": 0, "prefixed_lines": 0, "latency_lines": 0, "flags_lines": 1,
                "noflags_lines": 0, "tgid_lines": 0, "funcgraph_lines": 0, "dmesg_lines": 0,
                "flags_width": 4}
    t.line_kinds = None
    t.kept_text = None
    t.dat = DatInfo(dat, buf_desc, clock, damaged, unknown_types, shift is not None,
                    names=[b.name for b in dat.buffers])
    t.dat.fields = dict(ctx.field_columns)
    return t


def _min_payload(common):
    end = 0
    for f in common.values():
        end = max(end, f.offset + f.size)
    return end or 8


def _to_ns(raw, dat, buffer, cpu_id, guest_sync):
    """Raw ring-buffer times -> the trace's unit (trace-cmd's timestamp_calc)."""
    ts = raw.astype(np.uint64, copy=False)
    if guest_sync:
        ts = _host_sync(ts, cpu_id, guest_sync)
    conv = dat.tsc2nsec
    if conv and (buffer.clock in ("tsc2nsec", "x86-tsc") or dat.trace_clock in ("tsc2nsec", "x86-tsc")):
        mult, shift, _off = conv
        m = np.uint64(mult)
        lo = (ts & np.uint64(0xffffffff)) * m >> np.uint64(shift)
        hi = (ts >> np.uint64(32)) * m
        ts = lo + np.where(ts >> np.uint64(32) != 0, hi << np.uint64(32 - shift), np.uint64(0))
    ts = ts.view(np.int64)
    if dat.ts_offset:
        ts = ts + np.int64(dat.ts_offset)
    return ts


def _host_sync(ts, cpu_id, shift):
    """Guest raw times -> host times with the TIME_SHIFT samples of this CPU (trace-cmd's
    timestamp_host_sync, vectorised)."""
    _peer, flags, per_cpu = shift
    if cpu_id >= len(per_cpu):
        return ts
    times, offsets, scalings, fractions = (np.array(x, np.int64) for x in per_cpu[cpu_id])
    if len(times) == 0:
        return ts
    o = np.argsort(times, kind="stable")
    times, offsets, scalings, fractions = times[o], offsets[o], scalings[o], fractions[o]
    keep = np.concatenate(([True], times[1:] != times[:-1]))
    times, offsets, scalings, fractions = times[keep], offsets[keep], scalings[keep], fractions[keep]
    t = ts.view(np.int64)
    if len(times) == 1:
        return (t + offsets[0]).view(np.uint64)
    j = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    lo_t, hi_t = times[j], times[j + 1]
    lo_o, hi_o = offsets[j], offsets[j + 1]
    if flags & 1:  # TRACECMD_TSYNC_FLAG_INTERPOLATE
        delta = hi_t - lo_t
        cor = lo_o + ((t - lo_t) * (hi_o - lo_o) + delta // 2) // np.where(delta == 0, 1, delta)
    else:
        cor = lo_o
    sc = np.where(scalings[j] == 0, 1, scalings[j])
    scaled = (t * sc) >> fractions[j]
    return (scaled + cor).view(np.uint64)


def _flags_column(buf, offs, common, bo):
    """The latency-format flag characters of each record (irqs-off, need-resched,
    hardirq/softirq, preempt depth), as trace-cmd report -l prints them."""
    n = len(offs)
    out = np.zeros(n, "S8")
    fl = common.get("common_flags")
    pc = common.get("common_preempt_count")
    if fl is None or n == 0:
        return out
    flags = _number(buf, offs, fl, bo).astype(np.int64)
    pcount = _number(buf, offs, pc, bo).astype(np.int64) if pc is not None else np.zeros(n, np.int64)
    key = ((flags & 0xff) << 8) | (pcount & 0xff)
    present = np.flatnonzero(np.bincount(key, minlength=1 << 16))
    table = np.zeros(1 << 16, "S8")
    for v in present.tolist():
        f, p = v >> 8, v & 0xff
        c1 = "d" if f & 0x01 else ("X" if f & 0x02 else ".")
        c2 = "N" if (f & 0x04 and f & 0x20) else ("n" if f & 0x04 else ("p" if f & 0x20 else "."))
        hard, soft = f & 0x08, f & 0x10
        c3 = "H" if (hard and soft) else ("h" if hard else ("s" if soft else "."))
        c4 = "." if (p & 0x0f) == 0 else "%x" % (p & 0x0f)
        table[v] = (c1 + c2 + c3 + c4).encode()
    return table[key]


def load_dat(path, *, events=None, cpus=None, pids=None, comm=None, start=None, end=None,
             buffer=None, guest_sync=None, threads=None, fields=True):
    """Load a trace.dat into a Trace (see the module doc).  ``buffer``: the instance name
    (default: the top buffer); ``guest_sync``: apply a guest file's TIME_SHIFT option (None:
    when the file has one, as trace-cmd report does; False: keep the guest's own clock).
    ``fields=False`` decodes only what ``ftfast info`` shows (counts, times, CPUs, lost
    events): each event's array then holds just ``ts``, ``line`` and ``cpu``.
    ``start``/``end`` are in the trace's unit (already converted by load())."""
    from .trace import LOST_DTYPE, Stats, Trace
    path = os.fspath(path)
    dat = open_dat(path)
    if dat.latency_text:
        raise DatError(f"{path}: a latency-tracer trace.dat (text section): "
                       "read it with 'trace-cmd report' first")
    if not dat.buffers:
        raise DatError(f"{path}: no flyrecord buffer in the file")
    names = [b.name for b in dat.buffers]
    want = "" if buffer is None else buffer
    chosen = [b for b in dat.buffers if b.name == want]
    if buffer is None and not any(size for b in chosen for _c, _o, size in b.cpus):
        # no top-buffer data (trace-cmd record -B NAME): the first instance that has some
        chosen = [b for b in dat.buffers if any(size for _c, _o, size in b.cpus)] or chosen
    if not chosen:
        if buffer is None:
            chosen = dat.buffers[:1]
        else:
            raise InputError(f"{path}: no buffer '{buffer}' (the file has: "
                             + ", ".join(repr(n or "top") for n in names) + ")")
    buf_desc = chosen[0]
    shift = None
    if guest_sync or guest_sync is None:
        shift = dat.time_shift()
        if shift is None and guest_sync:
            raise InputError(f"{path}: guest_sync asked, but the file has no TIME_SHIFT option")
    ctx = _Context(dat, set(events) if events else None)
    ctx.shift = shift
    ctx.fields = fields
    if not fields and (pids is not None or comm is not None):
        raise ValueError("fields=False cannot select by pid or comm")
    idx = list(range(len(buf_desc.cpus)))
    # every CPU is walked (its records count as filtered, as in text); only wanted ones decode
    ctx.cpus = None if cpus is None else set(int(c) for c in cpus)
    n_threads = threads if threads is not None else min(len(idx), os.cpu_count() or 1, 4)
    n_threads = max(1, int(n_threads))
    return _decode_all(ctx, buf_desc, n_threads, path, pids=pids, comm=comm, start=start,
                       end=end, shift=shift, Trace=Trace, Stats=Stats, LOST_DTYPE=LOST_DTYPE)


#: events whose comm fields trace-cmd's sched plugin registers for their pid while printing
_COMM_SOURCES = (("sched_switch", (("prev_pid", "prev_comm"), ("next_pid", "next_comm"))),
                 ("sched_wakeup", (("task_pid", "task_comm"),)),
                 ("sched_wakeup_new", (("task_pid", "task_comm"),)))


def _learn_comms(per_event, comms, cmd):
    """The comm of a pid missing from the saved cmdlines, as trace-cmd report shows it: the
    first comm a sched_switch / sched_wakeup printed before the row names for that pid
    (libtraceevent registers it, never replacing a known one); ``<...>`` before that."""
    unknown = comms.index.get("<...>")
    if unknown is None:
        return
    pl, sub, pp, cc = [], [], [], []
    for name, pairs in _COMM_SOURCES:
        a = per_event.get(name)
        if a is None or not len(a):
            continue
        for k, (pc, cc_name) in enumerate(pairs):
            pl.append(a["line"])
            sub.append(np.full(len(a), k, np.int8))
            pp.append(a[pc].astype(np.int64))
            cc.append(a[cc_name])
    if not pl:
        return
    line, sub, pid, cid = (np.concatenate(x) for x in (pl, sub, pp, cc))
    known = np.array(sorted(cmd), np.int64)
    ok = (pid > 0) & ~np.isin(pid, known) & (cid >= 0)
    line, sub, pid, cid = line[ok], sub[ok], pid[ok], cid[ok]
    if not len(pid):
        return
    o = np.lexsort((sub, line, pid))
    pid, line, cid = pid[o], line[o], cid[o]
    first = np.concatenate(([True], pid[1:] != pid[:-1]))
    fpid, fline, fcid = pid[first], line[first], cid[first]
    for a in per_event.values():
        m = a["comm"] == unknown
        if not m.any():
            continue
        rows = np.flatnonzero(m)
        p = a["pid"][rows].astype(np.int64)
        j = np.searchsorted(fpid, p)
        j = np.clip(j, 0, len(fpid) - 1)
        hit = (fpid[j] == p) & (fline[j] < a["line"][rows])
        a["comm"][rows[hit]] = fcid[j[hit]]


class DatInfo:
    """What ``ftfast info`` and ``Trace.format_description`` say about a trace.dat."""

    def __init__(self, dat, buffer, clock, damaged, unknown_types, guest_synced, names):
        self.version = dat.version
        self.compression = dat.compression or "none"
        self.compression_version = dat.compression_version
        self.clock = clock
        self.tsc2nsec = dat.tsc2nsec
        self.cpus_declared = dat.cpus_declared
        self.cpus_in_buffer = [c for c, _o, _s in buffer.cpus]
        self.buffer = buffer.name
        self.buffers = names
        self.uname = dat.uname
        self.kernel_release = dat.uname.split()[2] if dat.uname and len(dat.uname.split()) > 2 else None
        self.recorder = dat.recorder_version
        self.page_size = buffer.page_size
        self.long_size = dat.long_size
        self.big_endian = dat.big_endian
        self.damaged_pages = damaged
        self.unknown_types = unknown_types
        self.guest_synced = guest_synced
        self.has_time_shift = 12 in dat.options
        self.guests = dat.guests()
        #: event name -> [(column, kind, kernel field, type)]: the format's fields as columns
        #: of the events without a typed layout (tracedat.format_columns)
        self.fields = {}

    def describe(self):
        parts = [f"trace-cmd trace.dat v{self.version}",
                 "uncompressed" if self.compression == "none" else
                 f"{self.compression} {self.compression_version}".strip(),
                 f"{'big' if self.big_endian else 'little'}-endian",
                 f"{self.page_size}-byte pages",
                 f"buffer {self.buffer or 'top'}"]
        if self.guest_synced:
            parts.append("guest times shifted to the host (TIME_SHIFT)")
        return ", ".join(parts)

    def as_json(self):
        """The facts of info_lines as typed values (``ftfast info --format json``)."""
        return {"version": self.version, "compression": self.compression,
                "compression_version": self.compression_version or None,
                "big_endian": bool(self.big_endian), "long_size": self.long_size,
                "page_size": self.page_size, "buffer": self.buffer or "top",
                "buffers": [n or "top" for n in self.buffers], "recorded_clock": self.clock,
                "cpus": self.cpus_declared or len(self.cpus_in_buffer),
                "cpus_with_data": len(self.cpus_in_buffer), "uname": self.uname or None,
                "kernel_release": self.kernel_release, "recorder": self.recorder or None,
                "time_shift": self.has_time_shift, "guest_synced": bool(self.guest_synced),
                "damaged_pages": int(self.damaged_pages)}

    def info_lines(self):
        out = [("dat", f"version {self.version}, compression {self.compression}"
                       + (f" {self.compression_version}" if self.compression != "none" else "")
                       + f", {'big' if self.big_endian else 'little'}-endian, long {self.long_size}"
                       f", page {self.page_size}"),
               ("buffer", (self.buffer or "top") + (f" (of {', '.join(n or 'top' for n in self.buffers)})"
                                                     if len(self.buffers) > 1 else "")
                + f", recorded clock {self.clock}"
                + (f" (TSC2NSEC mult {self.tsc2nsec[0]} shift {self.tsc2nsec[1]})" if self.tsc2nsec else "")
                + f", {self.cpus_declared or len(self.cpus_in_buffer)} CPUs, "
                  f"{len(self.cpus_in_buffer)} with data"),
               ("kernel", self.uname or "-"),
               ("recorder", f"trace-cmd {self.recorder}" if self.recorder else "-")]
        if self.has_time_shift:
            out.append(("timeshift", "applied (guest times on the host clock)" if self.guest_synced
                        else "present, not applied (load with guest_sync=True / --guest-sync)"))
        if self.guests:
            out.append(("guests", "; ".join(f"{n or '?'}: vCPU->pid " + ", ".join(
                f"{c}:{p}" for c, p in sorted(v.items())) for n, _i, v in self.guests)))
        if self.damaged_pages:
            out.append(("damaged", f"{self.damaged_pages} page(s) unreadable, counted as lost-event gaps"))
        if self.unknown_types:
            out.append(("unknown", ", ".join(f"type {k}: {v}" for k, v in sorted(self.unknown_types.items()))
                        + " record(s) with no format in the file"))
        return out


def _decode_event(ctx, fmt, buf, offs, lens, r, sel, cmd, arena_add, bo, per_event, layouts):
    name = fmt.name
    common = fmt.common
    n = len(offs)
    lines = r["line"][sel]
    ts = r["ts_ns"][sel]
    if not ctx.fields:
        # counts, times and CPUs only (ftfast info): three columns, nothing decoded
        layout = _ev.EVENT_LAYOUT.get(name, "generic")
        layout = "generic" if layout in ("text", "funcgraph", "stack_frame") else layout
        a = np.empty(n, _INFO_DTYPE)
        a["ts"], a["line"], a["cpu"] = ts, lines, r["cpu"]
        with ctx.lock:
            per_event.setdefault(name, []).append(a)
            layouts[name] = layout
        return a
    pid_f = common.get("common_pid")
    pid = _number(buf, offs, pid_f, bo, lens).astype(np.int32) if pid_f else np.full(n, -1, np.int32)
    flags = _flags_column(buf, offs, common, bo)
    comm_ids = _pid_comms(ctx, pid, cmd)

    if name == "kernel_stack":
        _stack_frames(ctx, fmt, buf, offs, lens, ts, lines, r["cpu"], pid, comm_ids, flags, bo,
                      per_event, layouts, arena_add)
    layout = _ev.EVENT_LAYOUT.get(name, "generic")
    if layout == "funcgraph" and not _is_ftrace(fmt, "func", "depth"):
        layout = "generic"
    if layout in ("text", "stack_frame"):
        layout = "generic"
    cols = tuple(format_columns(fmt)) if layout == "generic" else ()
    a = np.zeros(n, _fields_dtype(cols) if cols else _ev.dtype_for(layout))
    a["ts"] = ts
    a["line"] = lines
    a["cpu"] = r["cpu"]
    a["pid"] = pid
    a["tgid"] = -1
    a["comm"] = comm_ids
    a["flags"] = flags
    if layout == "generic":
        data, off_in, ln = _generic_payload(ctx, fmt, buf, offs, lens, bo)
        base = arena_add(data)
        a["payload_off"] = off_in + base
        a["payload_len"] = ln
        if cols:
            _fill_format_fields(ctx, fmt, cols, a, buf, offs, lens, bo)
            with ctx.lock:
                ctx.field_columns[name] = cols
    elif layout == "funcgraph":
        _funcgraph_fields(ctx, fmt, a, buf, offs, lens, bo)
    else:
        _typed_fields(ctx, fmt, layout, a, buf, offs, lens, bo)
    with ctx.lock:
        per_event.setdefault(name, []).append(a)
        layouts[name] = layout
    return a


def _pid_comms(ctx, pid, cmd):
    u, inv = _uniq(pid)
    names = []
    for p in u.tolist():
        if p == 0:
            names.append("<idle>")
        else:
            names.append(cmd.get(p, "<...>"))
    with ctx.lock:
        ids = ctx.comms.ids(names)
    return ids[inv.reshape(-1)]


def _typed_fields(ctx, fmt, layout, a, buf, offs, lens, bo):
    kinds = _ev.field_kinds(layout)
    kernel = _ev.kernel_names(layout)
    offsets = {c[0]: c[2] for c in _ev.layout_columns(layout)}
    numeric = []        # (src offset, size, signed, dst offset, dst size) for one Cython pass
    for col, kind in kinds.items():
        if kind == "text":
            continue
        if layout == "block_rq" and col in ("dev_major", "dev_minor"):
            f = fmt.field("dev")
            if f is None:
                a[col] = -1
                continue
            dev = _number(buf, offs, f, bo, lens)
            a[col] = (dev >> 20) if col == "dev_major" else (dev & 0xfffff)
            continue
        f = _source_field(fmt, layout, col, kernel)
        if f is None:
            a[col] = 0 if kind == "u8" else -1
            continue
        if kind == "comm":
            a[col] = _string_ids(ctx, ctx.comms, f, buf, offs, lens, bo)
        elif kind == "sym":
            if f.is_string:
                a[col] = _string_ids(ctx, ctx.symbols, f, buf, offs, lens, bo)
            else:
                vals = _number(buf, offs, f, bo, lens)
                a[col] = _symbolic_ids(ctx, fmt, f, vals, buf, offs, lens, bo)
        elif kind == "state":
            vals = _number(buf, offs, f, bo, lens)
            a[col] = _state_bits(vals, _state_table(fmt.print_fmt))
        elif f.size in (1, 2, 4, 8) and not f.dynamic and not f.array_len:
            numeric.append((f.offset, f.size, int(f.signed), offsets[col], _ev._KIND_SIZE[kind]))
        else:
            a[col] = _number(buf, offs, f, bo, lens)
    if numeric:
        _ftdat.fill_numbers(buf, np.ascontiguousarray(offs, np.int64),
                            np.ascontiguousarray(lens, np.int32), a,
                            np.array(numeric, np.int64).reshape(-1, 5), ctx.dat.big_endian)
    if layout == "softirq":
        f = fmt.field("vec")
        if f is not None:
            a["action"] = _symbolic_ids(ctx, fmt, f, a["vec"].astype(np.int64), buf, offs, lens, bo)


def _string_ids(ctx, interner, f, buf, offs, lens, bo):
    if f.dynamic:
        starts, n = _dyn_bounds(buf, offs, lens, f, bo)
        data, o = _ragged(buf, starts, n)
        n = _strip_nul(data, o, n) if len(data) else n
        with ctx.lock:
            return _ragged_strings(data, o, n, interner)
    names, inv = _fixed_strings(buf, offs, f, lens)
    with ctx.lock:
        return interner.ids(names)[inv]


def _symbolic_ids(ctx, fmt, f, vals, buf, offs, lens, bo):
    """Names of a numeric field through the __print_symbolic table(s) of the print fmt; for
    kvm_exit, the table its ``isa`` field selects (1: VMX, the first table; else SVM)."""
    tables = _symbolic_tables(fmt.print_fmt, f.name)
    key = vals.astype(np.int64)
    which = np.zeros(len(vals), np.int64)
    if fmt.name == "kvm_exit" and len(tables) > 1:
        isa = fmt.field("isa")
        if isa is not None:
            which = np.where(_number(buf, offs, isa, bo, lens) == 1, 0, 1)
        key = key & 0xffff if "& 0xffff" in fmt.print_fmt else key
    elif not tables:
        tables = [{}]
    comb = which * (1 << 40) + key
    u, inv = np.unique(comb, return_inverse=True) if (which != 0).any() else _uniq(key)
    names = []
    for c in u.tolist():
        w, v = c >> 40, c & ((1 << 40) - 1)
        table = tables[w] if w < len(tables) else {}
        names.append(table.get(v, str(v)))
    with ctx.lock:
        ids = ctx.symbols.ids(names)
    return ids[inv.reshape(-1)]


def _stack_frames(ctx, fmt, buf, offs, lens, ts, lines, cpu, pid, comm_ids, flags, bo,
                  per_event, layouts, arena_add):
    """kernel_stack callers -> stack_frame rows (func symbol, addr), as report's `=> f (addr)`."""
    f = fmt.field("caller")
    if f is None:
        return
    word = ctx.dat.header_page["commit"][1]
    n = len(offs)
    # the record holds `size` entries, however long the declared array (caller[8])
    avail = np.clip((lens.astype(np.int64) - f.offset) // word, 0, None)
    nmax = int(avail.max()) if n else 0
    if nmax <= 0:
        return
    size_f = fmt.field("size")
    raw = _gather(buf, offs, f.offset, nmax * word)
    addrs = raw.reshape(n * nmax, word).view(f"{bo}u{word}").reshape(n, nmax).astype(np.uint64)
    count = avail
    if size_f is not None:
        count = np.minimum(count, np.clip(_number(buf, offs, size_f, bo, lens), 0, None))
    col = np.arange(nmax)[None, :]
    endmark = (addrs == 0) | (addrs == np.uint64((1 << (8 * word)) - 1))
    # frames end at the first 0 / ULONG_MAX entry
    first_end = np.where(endmark.any(1), endmark.argmax(1), nmax)
    count = np.minimum(count, first_end)
    keep = col < count[:, None]
    rows, cols = np.nonzero(keep)
    fa = addrs[rows, cols]
    ks = ctx.ksyms()
    si = ks.lookup(fa)
    u, inv = np.unique(si, return_inverse=True)
    names = [ks.names[i] if i >= 0 else "" for i in u.tolist()]
    with ctx.lock:
        ids = ctx.symbols.ids(names)
    a = np.zeros(len(rows), _ev.dtype_for("stack_frame"))
    a["ts"] = ts[rows]
    # frames follow their kernel_stack line: same line number (order kept by a stable sort)
    a["line"] = lines[rows]
    a["cpu"] = cpu
    a["pid"] = pid[rows]
    a["tgid"] = -1
    a["comm"] = comm_ids[rows]
    a["flags"] = flags[rows]
    a["func"] = ids[inv.reshape(-1)]
    a["addr"] = fa
    with ctx.lock:
        per_event.setdefault("stack_frame", []).append(a)
        layouts["stack_frame"] = "stack_frame"


def _generic_payload(ctx, fmt, buf, offs, lens, bo):
    """``name=value`` text of every field, as bytes + (offset, length) per record."""
    n = len(offs)
    if fmt.name == "print" and fmt.field("buf") is not None and fmt.field("ip") is not None:
        return _print_payload(ctx, fmt, buf, offs, lens, bo)
    if fmt.name == "function" and _is_ftrace(fmt, "ip"):
        return _function_payload(ctx, fmt, buf, offs, lens, bo)
    if (fmt.name, fmt.system) in (("bprint", "ftrace"), ("bputs", "ftrace")) and fmt.field("ip") is not None \
            and (fmt.field("fmt") is not None and fmt.field("buf") is not None or fmt.field("str") is not None):
        return _bprint_payload(ctx, fmt, buf, offs, lens, bo)
    if fmt.name == "kernel_stack" and fmt.field("caller") is not None:
        # the frames are stack_frame rows; the line itself reads as in a report
        return _fixed_to_ragged(np.full(n, b"<stack trace >", "S14"))
    pieces = []
    for i, f in enumerate(fmt.fields):
        label = (" " if i else "") + f.name + "="
        if f.is_string:
            if f.dynamic:
                starts, ln = _dyn_bounds(buf, offs, lens, f, bo)
            elif f.size == 0:
                starts = offs + f.offset
                ln = np.clip(lens - f.offset, 0, None)
            else:
                starts = offs + f.offset
                # a damaged record may end inside the field: read no further than it
                ln = np.clip(np.minimum(lens - f.offset, f.size), 0, None)
            data, o = _ragged(buf, starts, ln)
            ln = _strip_nul(data, o, ln) if len(data) else ln
            vals = _ragged_to_fixed(data, o, ln)
        elif f.dynamic or f.array_len or f.size not in (1, 2, 4, 8):
            # arrays as hex bytes (what trace-cmd -R prints as ARRAY[..])
            if f.dynamic:
                starts, ln = _dyn_bounds(buf, offs, lens, f, bo)
            else:
                size = f.size if f.size else 0
                starts = offs + f.offset
                ln = np.clip(np.minimum(lens - f.offset, size if size else lens), 0, None)
            data, o = _ragged(buf, starts, ln)
            vals = _array_text(data, o, ln)
        else:
            v = _number(buf, offs, f, bo, lens)
            if f.is_pointer:
                vals = _hex_strings(v)
            else:
                vals = v.astype("S21") if f.signed or f.size < 8 else v.view(np.uint64).astype("S21")
        pieces.append(np.strings.add(label.encode(), vals) if n else np.zeros(0, "S1"))
    if not pieces:
        return np.zeros(0, np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int32)
    text = pieces[0]
    for p in pieces[1:]:
        text = np.strings.add(text, p)
    return _fixed_to_ragged(text)


def _hex_strings(v):
    u, inv = np.unique(v.view(np.uint64), return_inverse=True)
    s = np.array([("0x%x" % x).encode() for x in u.tolist()], dtype="S18") if len(u) else np.zeros(0, "S18")
    return s[inv.reshape(-1)]


_HEX2 = np.array([b"%02x" % i for i in range(256)], "S2").view(np.uint8).reshape(256, 2)


def _array_text(data, o, ln):
    """``ARRAY[xx, xx, ...]`` of each record's bytes (what trace-cmd -R prints)."""
    n = len(o)
    w = max(int(ln.max()) if n else 0, 1)
    mat = np.zeros((n, 4 * w), np.uint8)
    if n and ln.sum():
        rows = np.repeat(np.arange(n), ln)
        cols = np.arange(int(ln.sum())) - np.repeat(_starts_of(ln), ln)
        hx = _HEX2[data[np.repeat(o, ln) + cols]]
        mat[rows, 4 * cols] = hx[:, 0]
        mat[rows, 4 * cols + 1] = hx[:, 1]
        notlast = cols < np.repeat(ln, ln) - 1
        mat[rows[notlast], 4 * cols[notlast] + 2] = ord(",")
        mat[rows[notlast], 4 * cols[notlast] + 3] = ord(" ")
    body = mat.view(f"S{4 * w}").reshape(-1)
    return np.strings.add(np.strings.add(b"ARRAY[", body), b"]")


def _ragged_to_fixed(data, o, ln):
    n = len(o)
    width = max(int(ln.max()) if n else 1, 1)
    mat = np.zeros((n, width), np.uint8)
    if n and ln.sum():
        rows = np.repeat(np.arange(n), ln)
        cols = np.arange(int(ln.sum())) - np.repeat(_starts_of(ln), ln)
        mat[rows, cols] = data[np.repeat(o, ln) + cols]
    return mat.view(f"S{width}").reshape(-1)


def _fixed_to_ragged(text):
    """A fixed-width bytes array -> (concatenated bytes, offsets, lengths)."""
    n = len(text)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32)
    ln = np.strings.str_len(text).astype(np.int64)
    width = text.dtype.itemsize
    mat = text.view(np.uint8).reshape(n, width)
    keep = np.arange(width)[None, :] < ln[:, None]
    data = mat[keep]
    return data, _starts_of(ln), ln.astype(np.int32)


def _print_payload(ctx, fmt, buf, offs, lens, bo):
    """trace_marker writes: ``<caller symbol>: <message>`` as trace-cmd prints them."""
    ip = _number(buf, offs, fmt.field("ip"), bo, lens).view(np.uint64)
    ks = ctx.ksyms()
    si = ks.lookup(ip)
    u, inv = np.unique(si, return_inverse=True)
    names = np.array([(ks.names[i] if i >= 0 else "").encode() for i in u.tolist()] or [b""], "S64")
    who = names[inv.reshape(-1)] if len(u) else np.zeros(0, "S64")
    f = fmt.field("buf")
    starts = offs + f.offset
    ln = np.clip(lens - f.offset, 0, None)
    data, o = _ragged(buf, starts, ln)
    ln = _strip_nul(data, o, ln) if len(data) else ln
    msg = _ragged_to_fixed(data, o, ln)
    text = np.strings.add(np.strings.add(who, b": "), msg)
    return _fixed_to_ragged(text)


def _select(t, per_event, layouts, pids, comm, start, end):
    """Apply load()'s pid / comm / time selections after decoding; returns rows dropped."""
    import re as _re
    dropped = 0
    comm_ok = None
    if comm is not None:
        rx = comm if isinstance(comm, _re.Pattern) else _re.compile(comm)
        comm_ok = np.array([bool(rx.search(c)) for c in t.comms] + [False], bool)
    want = None if pids is None else np.asarray(sorted(set(int(p) for p in pids)), np.int64)
    for name, a in list(per_event.items()):
        keep = _group.window_mask(a["ts"], start, end)
        if want is not None or comm_ok is not None:
            who = np.zeros(len(a), bool)
            kinds = _ev.field_kinds(layouts.get(name, "generic"))
            pid_cols = ["pid"] + [c for c in ("prev_pid", "next_pid", "task_pid", "child_pid")
                                  if c in kinds]
            comm_cols = ["comm"] + [c for c, k in kinds.items() if k == "comm"]
            if want is not None:
                for c in pid_cols:
                    who |= np.isin(a[c], want)
            if comm_ok is not None:
                for c in comm_cols:
                    ids = a[c]
                    who |= comm_ok[np.where(ids < 0, len(t.comms), ids)]
            keep &= who
        dropped += int((~keep).sum())
        per_event[name] = _take(a, np.flatnonzero(keep))
    return dropped


# -- writing ftrace text ---------------------------------------------------------------------

def _S(a):
    return np.asarray(a).astype("S")


def _col_text(t, a, col, kind):
    if kind == "comm":
        return np.array([c.encode() for c in t.comms] + [b""], dtype="S")[np.where(a[col] < 0, len(t.comms), a[col])]
    if kind == "sym":
        return np.array([s.encode() for s in t.symbols] + [b""], dtype="S")[np.where(a[col] < 0, len(t.symbols), a[col])]
    return _S(a[col])


def _hexS(v, width=0):
    u, inv = np.unique(np.asarray(v).astype(np.int64).view(np.uint64), return_inverse=True)
    fmt = "%%0%dx" % width if width else "%x"
    s = np.array([(fmt % x).encode() for x in u.tolist()], "S") if len(u) else np.zeros(0, "S1")
    return s[inv.reshape(-1)] if len(u) else np.zeros(len(v), "S1")


def _cat(*parts):
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return out


def _payload_text(t, name, a):
    """The kernel's own words for the events the text parser knows, else name=value."""
    lay = t.layout(name)
    c = lambda col, kind="i": _col_text(t, a, col, kind)  # noqa: E731
    if lay == "sched_switch":
        u, inv = np.unique(a["prev_state"], return_inverse=True)
        st = np.array([_ev.state_string(int(x)).encode() for x in u], "S")[inv.reshape(-1)] if len(u) else np.zeros(0, "S1")
        return _cat(b"prev_comm=", c("prev_comm", "comm"), b" prev_pid=", c("prev_pid"),
                    b" prev_prio=", c("prev_prio"), b" prev_state=", st, b" ==> next_comm=",
                    c("next_comm", "comm"), b" next_pid=", c("next_pid"), b" next_prio=", c("next_prio"))
    if lay == "sched_wake":
        out = _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"), b" prio=", c("prio"))
        if (a["success"] >= 0).any():
            out = _cat(out, b" success=", c("success"))
        return _cat(out, b" target_cpu=", np.strings.zfill(c("target_cpu"), 3))
    if lay == "sched_migrate_task":
        return _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"), b" prio=", c("prio"),
                    b" orig_cpu=", c("orig_cpu"), b" dest_cpu=", c("dest_cpu"))
    if lay == "sched_process_fork":
        return _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"),
                    b" child_comm=", c("child_comm", "comm"), b" child_pid=", c("child_pid"))
    if lay == "sched_process_task":
        return _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"), b" prio=", c("prio"))
    if lay == "sched_process_exec":
        return _cat(b"filename=", c("filename", "sym"), b" pid=", c("task_pid"), b" old_pid=", c("old_pid"))
    if lay == "sched_stat_runtime":
        out = _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"), b" runtime=", c("runtime"), b" [ns]")
        if (a["vruntime"] >= 0).any():
            out = _cat(out, b" vruntime=", c("vruntime"), b" [ns]")
        return out
    if lay == "sched_stat_delay":
        return _cat(b"comm=", c("task_comm", "comm"), b" pid=", c("task_pid"), b" delay=", c("delay"), b" [ns]")
    if lay == "kvm_entry":
        return _cat(b"vcpu ", c("vcpu"), b", rip 0x", _hexS(a["rip"]))
    if lay == "kvm_exit":
        return _cat(b"vcpu ", c("vcpu"), b" reason ", c("reason", "sym"), b" rip 0x", _hexS(a["rip"]),
                    b" info1 0x", _hexS(a["info1"], 16), b" info2 0x", _hexS(a["info2"], 16),
                    b" intr_info 0x", _hexS(a["intr_info"] & 0xffffffff, 8),
                    b" error_code 0x", _hexS(a["error_code"] & 0xffffffff, 8))
    if lay == "kvm_vcpu_wakeup":
        return _cat(np.where(a["waited"] > 0, b"wait", b"poll"), b" time ", c("ns"), b" ns, polling ",
                    np.where(a["valid"] > 0, b"valid", b"invalid"))
    if lay == "irq_handler_entry":
        return _cat(b"irq=", c("irq"), b" name=", c("name", "sym"))
    if lay == "irq_handler_exit":
        return _cat(b"irq=", c("irq"), b" ret=", np.where(a["ret"] == 0, b"unhandled", b"handled"))
    if lay == "softirq":
        return _cat(b"vec=", c("vec"), b" [action=", c("action", "sym"), b"]")
    if lay == "block_rq":
        dev = _cat(c("dev_major"), b",", c("dev_minor"), b" ", c("rwbs", "sym"), b" ")
        tail = _cat(b"() ", _S(a["sector"].view(np.uint64)), b" + ", c("nr_sector"))
        if name == "block_rq_complete":
            return _cat(dev, tail, b" [", c("error"), b"]")
        return _cat(dev, c("bytes"), b" ", tail, b" [", c("rq_comm", "comm"), b"]")
    if lay == "stack_frame":
        return _cat(c("func", "sym"), b" (", _hexS(a["addr"], 16), b")")
    if lay == "funcgraph":
        return _funcgraph_text(t, name, a)
    # generic: the payload text as decoded
    arena = t.text_arena
    off, ln = a["payload_off"], a["payload_len"].astype(np.int64)
    data, o = _ragged(arena, off, ln)
    return _ragged_to_fixed(data, o, ln)


def ftrace_text(t):
    """The events of a trace.dat Trace as ftrace text (trace-cmd report's layout with
    nanosecond time stamps), in record order: ``comm-pid [cpu] secs.ns: name: payload``;
    kernel_stack frames as ``=> func (addr)`` lines.  Returns a uint8 array."""
    pieces, lines = [], []
    for name, a in t.events.items():
        if not len(a):
            continue
        body = _payload_text(t, name, a)
        if name == "stack_frame":
            line = _cat(b"=> ", body, b"\n")
            pieces.append(line)
            # frames come right after their kernel_stack line
            lines.append(a["line"].astype(np.float64) + 0.5)
            continue
        comm = np.strings.rjust(_col_text(t, a, "comm", "comm"), 16)
        pid = np.strings.ljust(_S(a["pid"]), 5)
        cpu = np.strings.zfill(_S(a["cpu"]), 3)
        if t.time_unit == "ns":
            ts = _cat(_S(a["ts"] // 10**9), b".", np.strings.zfill(_S(a["ts"] % 10**9), 9))
        else:
            ts = _S(a["ts"])
        pieces.append(_cat(comm, b"-", pid, b" [", cpu, b"] ", ts, b": ", name.encode() + b": ", body, b"\n"))
        lines.append(a["line"].astype(np.float64))
    head = f"cpus={len(t.dat.cpus_in_buffer) if t.dat else len(t.cpus())}\n".encode()
    if not pieces:
        return np.frombuffer(head, np.uint8).copy()
    datas, offs, lens = [], [], []
    base = 0
    for p in pieces:
        d, o, ln = _fixed_to_ragged(p)
        datas.append(d)
        offs.append(o + base)
        lens.append(ln)
        base += len(d)
    order = np.argsort(np.concatenate(lines), kind="stable")
    data = np.concatenate(datas)
    body, _o = _ragged(data, np.concatenate(offs)[order], np.concatenate(lens).astype(np.int64)[order])
    return np.concatenate([np.frombuffer(head, np.uint8), body])


# -- trace_printk: bprint / bputs ----------------------------------------------------------

_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b",
              "f": "\f", "v": "\v", "0": "\0"}


def _unescape(s):
    """The kernel escapes a printk format when it writes printk_formats; undo it."""
    return re.sub(r"\\(.)", lambda m: _C_ESCAPES.get(m.group(1), m.group(0)), s)


def _printk_formats(dat):
    """{address: format string} of the file's printk section (``0xADDR : "fmt"`` lines)."""
    got = getattr(dat, "_printk_map", None)
    if got is None:
        got = {}
        for m in re.finditer(rb'^0x([0-9a-fA-F]+)\s*:\s*"(.*)"\s*$', dat.printk, re.M):
            got[int(m.group(1), 16)] = _unescape(m.group(2).decode("utf-8", "replace"))
        dat._printk_map = got
    return got


_CONV = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?(hh|h|ll|l|L|q|z|Z|j|t)?([diouxXcspS%])")


def _bprint_program(text, long_size, lits, specs):
    """A printk format -> program rows for _ftdat.format_bprint (see _ftdat_bprint.pxi) and a
    bound on the bytes one message takes besides its string arguments.  lits/specs: the
    shared blob (a bytearray) the rows point into."""
    rows, bound = [], 0

    def blob(b):
        off = len(lits)
        lits.extend(b)
        return off

    def lit(s):
        nonlocal bound
        b = s.encode("utf-8", "replace")
        if b:
            rows.append((0, blob(b), len(b), 0, 0))
            bound += len(b)

    pos = 0
    for m in _CONV.finditer(text):
        flags, width, prec, length, conv = m.groups()
        lit(text[pos:m.start()])
        pos = m.end()
        if conv == "%":
            lit("%")
            continue
        stars = (width == "*") + (prec == "*")
        for _ in range(stars):
            rows.append((4, 0, 0, 0, 0))
        wnum = int(width) if width and width != "*" else 0
        pnum = int(prec) if prec and prec != "*" else 0
        bound += wnum + pnum + 32
        size = {None: 4, "hh": 1, "h": 2, "l": long_size, "z": long_size, "Z": long_size,
                "t": long_size, "j": 8, "ll": 8, "L": 8, "q": 8}[length]
        if conv == "p":
            nxt = text[pos:pos + 1]
            if nxt in ("s", "f", "S", "F", "B"):
                pos += 1
                rows.append((3, long_size, int(nxt in "SFB"), 0, 0))
                bound += 256
                continue
            if nxt.isalnum() and nxt not in ("x", "K", "e"):
                # the kernel printed these pointers into the args as a string
                pos += 1
                rows.append((2, 0, -1, blob(b"%.*s\0"), 0))
                continue
            if nxt in ("x", "K", "e"):
                pos += 1
            rows.append((1, long_size, 0, blob(b"0x%llx\0"), 0))
            continue
        if conv == "s":
            spec = "%" + flags + (width if width and width != "*" else "") + ".*s"
            rows.append((2, 0, pnum if prec not in (None, "*") and prec != "" else -1,
                         blob(spec.encode() + b"\0"), 0))
            continue
        if conv == "c":
            rows.append((1, 1, 0, blob(("%" + flags + (width or "") + "c").encode() + b"\0"), 4))
            continue
        spec = "%" + flags + (width or "") + ("." + prec if prec is not None else "") + "ll" + \
            {"d": "d", "i": "d", "u": "u", "o": "o", "x": "x", "X": "X"}[conv]
        rows.append((1, size, int(conv in "di"), blob(spec.encode() + b"\0"), stars))
    lit(text[pos:])
    return rows, bound


def _symbol_table(ctx):
    """(sorted addresses, name offsets, NUL-terminated names) of the file's kallsyms, symbols
    at address 0 left out (a kernel that hid its addresses: report then prints hex)."""
    got = getattr(ctx, "_sym_table", None)
    if got is None:
        ks = ctx.ksyms()
        keep = np.flatnonzero(ks.addrs != 0)
        names = [ks.names[int(i)].encode() + b"\0" for i in keep]
        ln = np.fromiter((len(x) for x in names), np.int64, len(names))
        got = (np.ascontiguousarray(ks.addrs[keep], np.uint64), _starts_of(ln),
               np.frombuffer(b"".join(names), np.uint8) if names else np.zeros(1, np.uint8))
        ctx._sym_table = got
    return got


def _caller_text(ctx, ip):
    """``%ps`` of each address: its kallsyms name, or ``0x..`` when none (as report prints)."""
    ks = ctx.ksyms()
    si = ks.lookup(ip)
    u, inv = np.unique(si, return_inverse=True)
    names = []
    for i in u.tolist():
        names.append(ks.names[i].encode() if i >= 0 and ks.addrs[i] != 0 else None)
    if any(x is None for x in names):
        # addresses with no symbol print as hex, each its own
        uip, iinv = np.unique(ip, return_inverse=True)
        per = np.array([((ks.names[int(s)].encode() if s >= 0 and ks.addrs[s] != 0 else b"0x%x" % a))
                        for a, s in zip(uip.tolist(), ks.lookup(uip).tolist())] or [b""], "S")
        return per[iinv.reshape(-1)] if len(uip) else np.zeros(0, "S1")
    return np.array(names or [b""], "S")[inv.reshape(-1)] if len(u) else np.zeros(0, "S1")


def _bprint_messages(ctx, fmt_ptr, buf, offs, lens, bo):
    """trace_printk messages of bprint records (args at offs, lens bytes) by their format
    pointers: (bytes, offsets, lengths) from _ftdat.format_bprint."""
    dat = ctx.dat
    formats = _printk_formats(dat)
    u, inv = np.unique(fmt_ptr, return_inverse=True)
    lits = bytearray()
    rows, starts, counts, bounds = [], [], [], []
    has_sym = False
    fmt_of = np.full(len(u), -1, np.int32)
    for k, p in enumerate(u.tolist()):
        text = formats.get(p)
        if text is None:
            continue
        r, b = _bprint_program(text, dat.long_size, lits, lits)
        fmt_of[k] = len(starts)
        starts.append(sum(counts))
        counts.append(len(r))
        bounds.append(b)
        rows.extend(r)
        has_sym |= any(x[0] == 3 for x in r)
    per = fmt_of[inv.reshape(-1)]
    prog = np.array(rows or [(0, 0, 0, 0, 0)], np.int64).reshape(-1, 5)
    bound = np.array(bounds or [0], np.int64)
    cap = int(np.where(per >= 0, bound[np.maximum(per, 0)] + lens, 0).sum()) + 1
    if has_sym:
        saddr, soff, snames = _symbol_table(ctx)
    else:
        saddr, soff, snames = np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(1, np.uint8)
    return _ftdat.format_bprint(buf, np.ascontiguousarray(offs, np.int64),
                                np.ascontiguousarray(lens, np.int32), np.ascontiguousarray(per, np.int32),
                                prog, np.array(starts or [0], np.int64), np.array(counts or [0], np.int64),
                                np.frombuffer(bytes(lits) or b"\0", np.uint8), saddr, soff, snames,
                                int(dat.big_endian), cap)


def _bprint_payload(ctx, fmt, buf, offs, lens, bo):
    """bprint (trace_printk) and bputs records: ``<caller>: <message>`` as trace-cmd prints
    them, the message formatted from the printk format saved in the file."""
    ip = _number(buf, offs, fmt.field("ip"), bo, lens).view(np.uint64)
    who = _caller_text(ctx, ip)
    if fmt.name == "bprint":
        f = fmt.field("buf")
        ptr = _number(buf, offs, fmt.field("fmt"), bo, lens).view(np.uint64)
        data, o, ln = _bprint_messages(ctx, ptr, buf, offs + f.offset,
                                       np.clip(lens - f.offset, 0, None).astype(np.int32), bo)
        msg = _ragged_to_fixed(data, o, ln.astype(np.int64))
    else:
        ptr = _number(buf, offs, fmt.field("str"), bo, lens).view(np.uint64)
        formats = _printk_formats(ctx.dat)
        u, inv = np.unique(ptr, return_inverse=True)
        msg = np.array([formats.get(p, "").encode("utf-8", "replace") for p in u.tolist()] or [b""],
                       "S")[inv.reshape(-1)] if len(u) else np.zeros(0, "S1")
    # the message ends at its first newline, as the report's line does
    msg = np.strings.partition(msg, b"\n")[0] if len(msg) else msg
    text = np.strings.add(np.strings.add(who, b": "), msg)
    return _fixed_to_ragged(text)


# -- every field of an event without a typed layout ----------------------------------------

#: events whose payload text is their content (a message, a stack): no field columns
_NO_FIELD_COLUMNS = ("print", "bprint", "bputs", "kernel_stack", "user_stack",
                     "funcgraph_entry", "funcgraph_exit")
#: format fields named like a common column: pid/comm as the typed layouts name them, others
#: prefixed
_RENAMED = {"pid": "task_pid", "comm": "task_comm"}


def _field_column(name, taken, suffixes=("",)):
    """A free column name for the field (each of col + suffix free), marked taken: a format
    (or a damaged one) may name fields like common columns or like another's _off/_len."""
    col = _RENAMED.get(name, name)
    while any(col + x in taken for x in suffixes):
        col = "f_" + col
    taken.update(col + x for x in suffixes)
    return col


def format_columns(fmt):
    """[(column, kind, kernel field name, numpy type)] of an event format's fields as the
    columns of a trace.dat event without a typed layout.  Kinds: ``int`` (a number: i1/u1,
    i4 for 2-byte fields, i4/u4, i8/u8; pointers unsigned), ``array`` (a fixed array of
    numbers: a sub-array column), ``sym`` (a string, char[N] or __data_loc char[]: an id into
    Trace.symbols), ``bytes`` (a __data_loc or trailing array of numbers: ``<col>_off`` /
    ``<col>_len`` into Trace.text_arena)."""
    if fmt.name in _NO_FIELD_COLUMNS:
        return []
    taken = {c[0] for c in _ev.layout_columns("generic")}
    out = []
    for f in fmt.fields:
        el = f.size // f.array_len if f.array_len else 0
        if f.is_string:
            kind, typ = "sym", "i4"
        elif f.dynamic or (f.array_len and f.size == 0) or f.type.endswith("[]"):
            kind, typ = "bytes", None
        elif f.array_len:
            ok = el in (1, 2, 4, 8) and el * f.array_len == f.size
            kind = "array" if ok else "bytes"
            typ = (f"{'i' if f.signed else 'u'}{el}", (f.array_len,)) if ok else None
        elif f.size not in (1, 2, 4, 8):
            kind, typ = "bytes", None
        else:
            signed = f.signed and not f.is_pointer
            kind, typ = "int", {1: "i1" if signed else "u1", 2: "i4", 4: "i4" if signed else "u4",
                                8: "i8" if signed else "u8"}[f.size]
        col = _field_column(f.name, taken, ("", "_off", "_len") if kind == "bytes" else ("",))
        out.append((col, kind, f.name, typ))
    return out


@functools.lru_cache(maxsize=512)
def _fields_dtype(cols):
    """The generic layout's record with the format's field columns appended."""
    base = _ev.dtype_for("generic")
    names = list(base.names)
    formats = [base.fields[n][0] for n in names]
    offsets = [base.fields[n][1] for n in names]
    off = base.itemsize
    for col, kind, _k, typ in cols:
        parts = [(col + "_off", "i8"), (col + "_len", "i4")] if kind == "bytes" else [(col, typ)]
        for n, t in parts:
            dt = np.dtype(t)
            al = dt.base.itemsize
            off = (off + al - 1) & ~(al - 1)
            names.append(n)
            formats.append(dt)
            offsets.append(off)
            off += dt.itemsize
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": (off + 7) & ~7})


def _fill_format_fields(ctx, fmt, cols, a, buf, offs, lens, bo):
    """Every field of the format into its column of a (see format_columns)."""
    numeric = []
    for col, kind, kname, typ in cols:
        f = fmt.field(kname)
        if kind == "sym":
            a[col] = _string_ids(ctx, ctx.symbols, f, buf, offs, lens, bo)
        elif kind == "int":
            numeric.append((f.offset, f.size, int(f.signed), a.dtype.fields[col][1],
                            {1: 1, 2: 4, 4: 4, 8: 8}[f.size]))
        elif kind == "array":
            dt = np.dtype(typ[0]).newbyteorder(bo)
            raw = _gather(buf, offs, f.offset, f.size, lens)
            a[col] = raw.reshape(-1).view(dt).reshape(len(offs), -1) if len(offs) else 0
        else:
            if f.dynamic:
                starts, ln = _dyn_bounds(buf, offs, lens, f, bo)
            else:
                starts = offs + f.offset
                ln = np.clip(lens - f.offset, 0, f.size if f.size else None)
            data, o = _ragged(buf, starts, ln.astype(np.int64))
            base = ctx.arena_add(data)
            a[col + "_off"] = o + base
            a[col + "_len"] = ln
    if numeric:
        _ftdat.fill_numbers(buf, np.ascontiguousarray(offs, np.int64),
                            np.ascontiguousarray(lens, np.int32), a,
                            np.array(numeric, np.int64).reshape(-1, 5), ctx.dat.big_endian)


# -- function and function_graph tracer records --------------------------------------------

def _is_ftrace(fmt, *fields):
    return fmt.system in ("ftrace", "") and all(fmt.field(f) is not None for f in fields)


def _function_payload(ctx, fmt, buf, offs, lens, bo):
    """function tracer records: the traced function's name, as the report prints it (its
    indentation aside; the parent is in the ``parent_ip`` column)."""
    ip = _number(buf, offs, fmt.field("ip"), bo, lens).view(np.uint64)
    return _fixed_to_ragged(_caller_text(ctx, ip))


def _symbol_ids_of(ctx, addrs):
    """Trace.symbols ids of the kallsyms names of code addresses (``0x..`` when none)."""
    u, inv = np.unique(addrs, return_inverse=True)
    names = [x.decode("utf-8", "replace") for x in _caller_text(ctx, u).tolist()]
    with ctx.lock:
        ids = ctx.symbols.ids(names)
    return ids[inv.reshape(-1)] if len(u) else np.zeros(0, np.int32)


def _funcgraph_fields(ctx, fmt, a, buf, offs, lens, bo):
    """funcgraph_entry / funcgraph_exit into the text path's funcgraph layout: depth, func
    (kallsyms name) and, for an exit, duration_ns = rettime - calltime (-1 for an entry: a
    leaf's duration comes from its exit when the rows are merged, see _funcgraph_leaves)."""
    a["depth"] = _number(buf, offs, fmt.field("depth"), bo, lens)
    a["func"] = _symbol_ids_of(ctx, _number(buf, offs, fmt.field("func"), bo, lens).view(np.uint64))
    a["duration_ns"] = -1
    if fmt.field("rettime") is not None and fmt.field("calltime") is not None:
        ret = _number(buf, offs, fmt.field("rettime"), bo, lens)
        call = _number(buf, offs, fmt.field("calltime"), bo, lens)
        a["duration_ns"] = ret - call


def _funcgraph_leaves(per_event):
    """An entry whose very next record of the merged stream (any CPU) is the exit of the same
    pid and function prints as one leaf line ``func();`` with the exit's duration, and that
    exit is not printed (trace-cmd's function_graph handler): the same rows here."""
    ent, ex = per_event.get("funcgraph_entry"), per_event.get("funcgraph_exit")
    if ent is None or ex is None or not len(ent) or not len(ex) or "func" not in ent.dtype.names:
        return
    j = np.searchsorted(ex["line"], ent["line"] + 1)
    j = np.minimum(j, len(ex) - 1)
    leaf = ((ex["line"][j] == ent["line"] + 1) & (ex["pid"][j] == ent["pid"]) &
            (ex["func"][j] == ent["func"]))
    if not leaf.any():
        return
    ent["duration_ns"][leaf] = ex["duration_ns"][j[leaf]]
    keep = np.ones(len(ex), bool)
    keep[j[leaf]] = False
    per_event["funcgraph_exit"] = _take(ex, np.flatnonzero(keep))


def _same_columns(ctx, name, parts):
    """Parts of one event name decoded from formats with different fields (two systems
    defining the same name): the field columns are dropped, the generic columns kept."""
    if len({p.dtype for p in parts}) <= 1:
        return parts
    ctx.field_columns.pop(name, None)
    base = _ev.dtype_for("generic")
    out = []
    for p in parts:
        q = np.zeros(len(p), base)
        for c in base.names:
            if c in p.dtype.names:
                q[c] = p[c]
        out.append(q)
    return out


# -- saved tgids -----------------------------------------------------------------------------

#: the option a trace.dat carries the kernel's saved_tgids in ("pid tgid" lines): written by
#: the trace-cmd of gpuvis (TRACECMD_OPTION_SAVED_TGIDS); upstream trace-cmd records none
OPT_SAVED_TGIDS = 32


def saved_tgids(dat):
    """{pid: tgid} of the file's saved-tgids option (empty when it has none)."""
    out = {}
    for data in dat.options.get(OPT_SAVED_TGIDS, []):
        for m in re.finditer(rb"^\s*(\d+)\s+(\d+)\s*$", data, re.M):
            pid, tgid = int(m.group(1)), int(m.group(2))
            if 0 < pid < (1 << 31) and 0 < tgid < (1 << 31):
                out[pid] = tgid
    return out


def _apply_tgids(per_event, tgids):
    """The ``tgid`` column of every row whose pid the saved tgids know (as the text path's
    ``(tgid)`` column); -1 elsewhere."""
    if not tgids:
        return
    pids = np.fromiter(tgids.keys(), np.int64, len(tgids))
    vals = np.fromiter(tgids.values(), np.int64, len(tgids))
    o = np.argsort(pids)
    pids, vals = pids[o], vals[o]
    for a in per_event.values():
        if not len(a) or "tgid" not in a.dtype.names:
            continue
        p = a["pid"].astype(np.int64)
        j = np.minimum(np.searchsorted(pids, p), len(pids) - 1)
        hit = pids[j] == p
        a["tgid"] = np.where(hit, vals[j], -1)


def _funcgraph_text(t, name, a):
    """function_graph lines as trace-cmd report prints them: ``DURATION us |  func();`` (a
    leaf), ``|  func() {``, ``DURATION us |  } /* func */``; two blanks per depth."""
    dur = a["duration_ns"].astype(np.int64)
    has = dur >= 0
    d = np.maximum(dur, 0)
    num = _cat(_S(d // 1000), b".", np.strings.zfill(_S(d % 1000), 3), b" us |  ")
    col = np.where(has, np.strings.rjust(num, 17), np.strings.rjust(b"|  ", 17))
    indent = np.array([b" " * 2 * k for k in range(64)], "S128")[np.clip(a["depth"], 0, 63)]
    func = _col_text(t, a, "func", "sym")
    if name == "funcgraph_exit":
        body = _cat(b"} /* ", func, b" */")
    else:
        body = _cat(func, np.where(has, b"();", b"() {"))
    return _cat(col, indent, body)


def _has_funcgraph_exits(ctx, per_type):
    """Whether the wanted records hold function_graph exits (see _funcgraph_leaves)."""
    for tid in per_type:
        fmt = ctx.formats.get(tid)
        if fmt is not None and fmt.name == "funcgraph_exit" and \
                (ctx.wanted is None or "funcgraph_exit" in ctx.wanted):
            return True
    return False


def field_values(t, name):
    """{kernel field name: values} of an event's format columns (Trace.df's columns): numbers
    as they are, strings as str, fixed arrays and byte fields as one object per row."""
    cols = getattr(getattr(t, "dat", None), "fields", {}).get(name)
    a = t.events.get(name)
    if not cols or a is None:
        return {}
    out = {}
    for col, kind, kname, _typ in cols:
        if kind == "sym":
            out[kname] = t.symbol_names(a[col])
        elif kind == "array":
            v = np.empty(len(a), object)
            v[:] = list(a[col])
            out[kname] = v
        elif kind == "bytes":
            arena = t.text_arena
            v = np.empty(len(a), object)
            v[:] = [bytes(arena[o:o + n]) for o, n in zip(a[col + "_off"].tolist(), a[col + "_len"].tolist())]
            out[kname] = v
        else:
            out[kname] = a[col]
    return out
