"""The structure of a trace-cmd ``trace.dat`` file (versions 6 and 7): headers, options,
sections, event formats, saved cmdlines, kallsyms and where each CPU's ring-buffer pages are.

Layout learnt from trace-cmd's Documentation/trace-cmd/trace-cmd.dat.v6.5.txt and
.v7.5.txt.  Every number after the version string is in the file's byte order.  Version 7
keeps its metadata in sections (2-byte id, 2-byte flags, 4-byte string id, 8-byte size), any of
which may be compressed (4-byte compressed size, 4-byte uncompressed size, data); CPU data is
compressed in chunks.  Nothing here decodes events: see ``tracedat`` and ``_ftdat``.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass, field as _dcfield

from ._source import DAT_MAGIC, InputError

MAGIC = DAT_MAGIC

# option ids (trace-cmd.dat.v7.5.txt, OPTIONS SECTION)
OPT_DONE, OPT_DATE, OPT_CPUSTAT, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME = 0, 1, 2, 3, 4, 5
OPT_OFFSET, OPT_CPUCOUNT, OPT_VERSION, OPT_TRACEID, OPT_TIME_SHIFT, OPT_GUEST = 7, 8, 9, 11, 12, 13
OPT_TSC2NSEC, OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS = 14, 16, 17, 18
OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES, OPT_BUFFER_TEXT = 19, 20, 21, 22
# section ids of v7 that are not options pointing elsewhere
SEC_OPTIONS = 0
SEC_FLYRECORD = OPT_BUFFER
SECTION_COMPRESSED = 1


class DatError(InputError):
    """A trace.dat that cannot be read: the message names the file offset and what was
    expected there."""


@dataclass
class Field:
    name: str
    type: str          # the C declaration without the name ("unsigned long", "char[16]")
    offset: int
    size: int
    signed: bool
    array_len: int     # elements of a fixed array, 0 otherwise
    dynamic: bool      # __data_loc / __rel_loc: a u32 of (length << 16 | offset)
    relative: bool     # __rel_loc: the offset counts from the end of this field
    is_string: bool    # char arrays and __data_loc char[]
    is_pointer: bool
    is_long: bool


@dataclass
class EventFormat:
    id: int
    system: str
    name: str
    fields: list       # the event's own fields (after the common_* ones)
    common: dict       # common_type, common_flags, common_preempt_count, common_pid
    print_fmt: str

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass
class Buffer:
    name: str
    clock: str
    page_size: int
    cpus: list         # [(cpu id, file offset, size)]
    compressed: bool
    option_offset: int = -1


@dataclass
class DatFile:
    path: str
    size: int
    version: int
    big_endian: bool
    long_size: int
    page_size: int
    compression: str | None = None
    compression_version: str = ""
    header_page: dict = _dcfield(default_factory=dict)
    formats: dict = _dcfield(default_factory=lambda: Formats())     # id -> EventFormat
    kallsyms: bytes = b""
    printk: bytes = b""
    cmdlines: dict = _dcfield(default_factory=dict)    # pid -> comm
    cpus_declared: int = 0
    buffers: list = _dcfield(default_factory=list)
    options: dict = _dcfield(default_factory=dict)     # option id -> [raw data bytes]
    latency_text: bool = False

    # -- numbers in the file's byte order ---------------------------------------------------
    @property
    def bo(self):
        return ">" if self.big_endian else "<"

    def option_str(self, opt):
        v = self.options.get(opt)
        if not v:
            return None
        return v[-1].split(b"\0", 1)[0].decode("utf-8", "replace")

    @property
    def uname(self):
        return self.option_str(OPT_UNAME)

    @property
    def recorder_version(self):
        return self.option_str(OPT_VERSION)

    @property
    def trace_clock(self):
        """The clock the top buffer used (the one in brackets of trace_clock)."""
        for b in self.buffers:
            if b.name == "" and b.clock:
                return b.clock
        return _clock_of(self)

    @property
    def tsc2nsec(self):
        """(mult, shift, offset) of trace-cmd's TSC-to-ns conversion option, or None."""
        v = self.options.get(OPT_TSC2NSEC)
        if not v or len(v[-1]) < 16:
            return None
        mult, shift, offset = struct.unpack(self.bo + "IIQ", v[-1][:16])
        return (mult, shift, offset) if mult else None

    @property
    def ts_offset(self):
        """The OFFSET option (a fixed time added to every timestamp), or 0."""
        s = self.option_str(OPT_OFFSET)
        try:
            return int(s) if s else 0
        except ValueError:
            return 0

    @property
    def trace_id(self):
        v = self.options.get(OPT_TRACEID)
        return struct.unpack(self.bo + "Q", v[-1][:8])[0] if v and len(v[-1]) >= 8 else None

    def time_shift(self):
        """The TIME_SHIFT option: (peer trace id, flags, [per CPU (times, offsets, scalings,
        fractions)]) or None.  v7 files store a fraction array after the scalings."""
        v = self.options.get(OPT_TIME_SHIFT)
        if not v:
            return None
        d = v[-1]
        try:
            peer, flags, ncpu = struct.unpack_from(self.bo + "QII", d, 0)
            pos = 16
            per_cpu = []
            for _ in range(ncpu):
                (n,) = struct.unpack_from(self.bo + "I", d, pos)
                pos += 4
                arrs = []
                for _k in range(3):
                    arrs.append(list(struct.unpack_from(self.bo + f"{n}q", d, pos)))
                    pos += 8 * n
                per_cpu.append(arrs)
            fractions = []
            for i in range(ncpu):
                n = len(per_cpu[i][0])
                if pos + 4 * n <= len(d):
                    fractions.append(list(struct.unpack_from(self.bo + f"{n}I", d, pos)))
                    pos += 4 * n
                else:
                    fractions.append([0] * n)
            return peer, flags, [(a[0], a[1], a[2], fr) for a, fr in zip(per_cpu, fractions)]
        except struct.error:
            raise DatError(f"{self.path}: TIME_SHIFT option: truncated") from None

    def guests(self):
        """GUEST options: [(name, trace id, {vcpu: host pid})]."""
        out = []
        for d in self.options.get(OPT_GUEST, []):
            try:
                name, rest = d.split(b"\0", 1)
                tid, n = struct.unpack_from(self.bo + "QI", rest, 0)
                vcpus = {}
                for i in range(n):
                    c, p = struct.unpack_from(self.bo + "II", rest, 12 + 8 * i)
                    vcpus[c] = p
                out.append((name.decode("utf-8", "replace"), tid, vcpus))
            except (ValueError, struct.error):
                continue
        return out


class _Reader:
    """pread-based access to the file with errors that name the offset."""

    def __init__(self, path):
        self.path = path
        try:
            self.f = open(path, "rb")
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory") from None
        except PermissionError:
            raise InputError(f"{path}: permission denied") from None
        self.fd = self.f.fileno()
        self.size = os.fstat(self.fd).st_size

    def close(self):
        self.f.close()

    def fail(self, off, what):
        raise DatError(f"{self.path}: offset {off}: expected {what}")

    def read(self, off, n, what):
        if n < 0 or off < 0 or off + n > self.size:
            self.fail(off, f"{what} ({n} bytes; the file ends at {self.size})")
        data = os.pread(self.fd, n, off)
        if len(data) != n:
            self.fail(off, f"{what} ({n} bytes)")
        return data


class _Cursor:
    """Sequential reads over bytes held in memory (a section or the v6 header), each error
    naming the file offset the bytes came from."""

    def __init__(self, rd, data, base, bo, what_base=""):
        self.rd, self.data, self.base, self.bo, self.pos = rd, data, base, bo, 0
        self.ctx = what_base

    def _need(self, n, what):
        if self.pos + n > len(self.data):
            self.rd.fail(self.base + self.pos, f"{what} ({n} bytes){self.ctx}")

    def u(self, n, what):
        self._need(n, what)
        v = int.from_bytes(self.data[self.pos:self.pos + n], "big" if self.bo == ">" else "little")
        self.pos += n
        return v

    def bytes(self, n, what):
        self._need(n, what)
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(v)

    def cstr(self, what):
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            self.rd.fail(self.base + self.pos, f"{what} (a NUL-terminated string){self.ctx}")
        s = bytes(self.data[self.pos:end]).decode("utf-8", "replace")
        self.pos = end + 1
        return s

    def at(self):
        return self.base + self.pos


class _Codec:
    def __init__(self, name, path):
        self.name = name
        if name == "zstd":
            try:
                import zstandard
            except ImportError:
                raise DatError(f"{path}: zstd-compressed trace.dat needs the 'zstandard' package "
                               "(pip install zstandard)") from None
            self._z = zstandard
        elif name != "zlib":
            raise DatError(f"{path}: unknown compression '{name}' (expected none, zstd or zlib)")

    def decompressor(self):
        """A decompress(data, size) of this codec for one thread (a zstd context is reused,
        never shared)."""
        if self.name == "zlib":
            return self.decompress
        dctx = self._z.ZstdDecompressor()

        def decompress(data, size):
            out = dctx.decompress(data, max_output_size=size)
            if len(out) != size:
                raise ValueError(f"zstd gave {len(out)} bytes, expected {size}")
            return out
        return decompress

    def decompress(self, data, size):
        if self.name == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(data, size)
            if len(out) != size or not d.eof:
                raise ValueError(f"zlib gave {len(out)} bytes, expected {size}")
            return out
        out = self._z.ZstdDecompressor().decompress(data, max_output_size=size)
        if len(out) != size:
            raise ValueError(f"zstd gave {len(out)} bytes, expected {size}")
        return out


_FIELD_RE = re.compile(r"field:\s*(.*?);\s*offset:\s*(\d+);\s*size:\s*(\d+);(?:\s*signed:\s*(\d+);)?")


def parse_format(text, system=""):
    """An event's ``format`` file -> EventFormat (None when it has no name or id)."""
    name = re.search(r"^name:\s*(\S+)", text, re.M)
    eid = re.search(r"^ID:\s*(\d+)", text, re.M)
    if not name or not eid:
        return None
    common, fields = {}, []
    for m in _FIELD_RE.finditer(text):
        decl, off, size, signed = m.group(1).strip(), int(m.group(2)), int(m.group(3)), m.group(4)
        dynamic = decl.startswith(("__data_loc", "__rel_loc"))
        relative = decl.startswith("__rel_loc")
        d = re.sub(r"^__(data|rel)_loc\s+", "", decl)
        am = re.match(r"^(.*?)\s*\b([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$", d)
        if not am:
            continue
        typ, fname, arr = am.group(1).strip(), am.group(2), am.group(3)
        if dynamic and typ.endswith("[]"):
            typ, arr = typ[:-2].strip(), "[]"
        array_len = 0
        if arr and arr != "[]":
            try:
                array_len = int(arr[1:-1], 0)
            except ValueError:
                array_len = 1
        base = typ.replace("const ", "").replace("unsigned ", "").strip()
        is_string = (base == "char" or base.endswith(" char")) and bool(arr)
        f = Field(fname, typ + (arr or ""), off, size,
                  bool(int(signed)) if signed is not None else not typ.startswith("unsigned"),
                  array_len, dynamic, relative, is_string, "*" in typ,
                  bool(re.search(r"\blong\b", typ)) and "long long" not in typ)
        if fname.startswith("common_"):
            common[fname] = f
        else:
            fields.append(f)
    pm = re.search(r"^print fmt:\s*(.*)$", text, re.M | re.S)
    return EventFormat(int(eid.group(1)), system, name.group(1), fields, common,
                       pm.group(1).strip() if pm else "")


class Formats(dict):
    """Event formats by id, each parsed the first time it is asked for (a file holds a thousand
    formats and a trace uses a few)."""

    def __init__(self):
        super().__init__()
        self.raw = {}       # id -> (system, text)
        self.names = {}     # name -> id

    def add(self, system, text):
        m = re.search(r"^ID:\s*(\d+)", text, re.M)
        n = re.search(r"^name:\s*(\S+)", text, re.M)
        if m and n:
            self.raw[int(m.group(1))] = (system, text)
            self.names[n.group(1)] = int(m.group(1))

    def get(self, eid, default=None):
        if dict.__contains__(self, eid):
            return dict.__getitem__(self, eid)
        got = self.raw.get(eid)
        if got is None:
            return default
        fmt = parse_format(got[1], got[0])
        dict.__setitem__(self, eid, fmt)
        return fmt

    def __getitem__(self, eid):
        fmt = self.get(eid)
        if fmt is None:
            raise KeyError(eid)
        return fmt

    def __contains__(self, eid):
        return eid in self.raw

    def __len__(self):
        return len(self.raw)

    def __iter__(self):
        return iter(self.raw)

    def values(self):
        return [self.get(k) for k in self.raw]

    def by_name(self, name):
        eid = self.names.get(name)
        return None if eid is None else self.get(eid)

    def common(self):
        """The common_* fields (the same for every event of a file)."""
        for eid in self.raw:
            fmt = self.get(eid)
            if fmt is not None and fmt.common:
                return fmt.common
        return {}


def _parse_header_page(text):
    out = {}
    for m in _FIELD_RE.finditer(text):
        am = re.match(r"^(.*?)\s*\b([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$", m.group(1).strip())
        if am:
            out[am.group(2)] = (int(m.group(2)), int(m.group(3)))
    return out


def _parse_cmdlines(data):
    out = {}
    for line in data.decode("utf-8", "replace").splitlines():
        pid, _, comm = line.strip(" ").partition(" ")
        if pid.isdigit():
            # trace-cmd registers the first comm it reads for a pid
            out.setdefault(int(pid), comm)
    return out


def open_dat(path):
    """Read a trace.dat's structure.  Raises DatError (an InputError) naming the offset of the
    first thing that is not what the format says."""
    rd = _Reader(os.fspath(path))
    try:
        return _read(rd)
    finally:
        rd.close()


def _read(rd):
    head = rd.read(0, min(rd.size, 64), "the trace.dat magic")
    if not head.startswith(MAGIC):
        rd.fail(0, "the trace.dat magic \\x17\\x08\\x44tracing")
    end = head.find(b"\0", 10)
    if end < 0 or end + 3 > len(head):
        rd.fail(10, "the version string and the byte-order, long-size and page-size fields")
    vs = head[10:end].decode("ascii", "replace")
    if not vs.isdigit() or int(vs) not in (6, 7):
        rd.fail(10, f"file version 6 or 7, got '{vs}'")
    version = int(vs)
    endian = head[end + 1]
    long_size = head[end + 2]
    if endian not in (0, 1):
        rd.fail(end + 1, f"byte order 0 or 1, got {endian}")
    if long_size not in (4, 8):
        rd.fail(end + 2, f"long size 4 or 8, got {long_size}")
    bo = ">" if endian else "<"
    pos = end + 3
    page_size = int.from_bytes(rd.read(pos, 4, "the page size"), "big" if endian else "little")
    if page_size < 64 or page_size > (1 << 24) or page_size & (page_size - 1):
        rd.fail(pos, f"a power-of-two page size, got {page_size}")
    pos += 4
    dat = DatFile(rd.path, rd.size, version, bool(endian), long_size, page_size)
    if version == 6:
        _read_v6(rd, dat, pos, bo)
    else:
        _read_v7(rd, dat, pos, bo)
    if "commit" not in dat.header_page or "data" not in dat.header_page:
        rd.fail(0, "a header_page format with 'commit' and 'data' fields")
    return dat


# -- shared pieces -------------------------------------------------------------------------

def _header_info(c, dat):
    if c.bytes(12, "'header_page'") != b"header_page\0":
        c.rd.fail(c.at() - 12, "the string 'header_page'")
    n = c.u(8, "the header_page size")
    dat.header_page = _parse_header_page(c.bytes(n, "the header_page format").decode("utf-8", "replace"))
    if c.bytes(13, "'header_event'") != b"header_event\0":
        c.rd.fail(c.at() - 13, "the string 'header_event'")
    n = c.u(8, "the header_event size")
    c.bytes(n, "the header_event format")


def _ftrace_formats(c, dat):
    n = c.u(4, "the count of ftrace event formats")
    for _ in range(n):
        size = c.u(8, "an ftrace format's size")
        dat.formats.add("ftrace", c.bytes(size, "an ftrace event format").decode("utf-8", "replace"))


def _event_formats(c, dat):
    nsys = c.u(4, "the count of event systems")
    for _ in range(nsys):
        system = c.cstr("an event system name")
        n = c.u(4, f"the count of events of system '{system}'")
        for _ in range(n):
            size = c.u(8, "an event format's size")
            dat.formats.add(system, c.bytes(size, "an event format").decode("utf-8", "replace"))


def _kallsyms(c, dat):
    n = c.u(4, "the kallsyms size")
    dat.kallsyms = c.bytes(n, "the kallsyms text")


def _printk(c, dat):
    n = c.u(4, "the printk formats size")
    dat.printk = c.bytes(n, "the printk formats")


def _cmdlines(c, dat):
    n = c.u(8, "the saved cmdlines size")
    dat.cmdlines = _parse_cmdlines(c.bytes(n, "the saved cmdlines"))


def _read_v6(rd, dat, pos, bo):
    # the v6 header is sequential up to the CPU data: read it in growing pieces
    want = min(rd.size - pos, 1 << 20)
    while True:
        data = rd.read(pos, want, "the trace.dat header")
        c = _Cursor(rd, data, pos, bo)
        try:
            _header_info(c, dat)
            _ftrace_formats(c, dat)
            _event_formats(c, dat)
            _kallsyms(c, dat)
            _printk(c, dat)
            _cmdlines(c, dat)
            dat.cpus_declared = c.u(4, "the CPU count")
            kind = c.bytes(10, "'options', 'latency' or 'flyrecord'")
            if kind == b"options  \0":
                while True:
                    oid = c.u(2, "an option id")
                    if oid == 0:
                        break
                    osize = c.u(4, "an option size")
                    dat.options.setdefault(oid, []).append(c.bytes(osize, f"option {oid}'s data"))
                kind = c.bytes(10, "'latency' or 'flyrecord'")
            if kind == b"latency  \0":
                dat.latency_text = True
                return
            if kind != b"flyrecord\0":
                rd.fail(c.at() - 10, f"'flyrecord' or 'latency', got {kind!r}")
            cpus = []
            for i in range(dat.cpus_declared):
                off = c.u(8, f"CPU {i}'s data offset")
                size = c.u(8, f"CPU {i}'s data size")
                cpus.append((i, off, size))
            break
        except DatError:
            if len(data) >= rd.size - pos:
                raise
            want = min(rd.size - pos, want * 4)
    dat.buffers.append(Buffer("", _clock_of(dat), dat.page_size, cpus, False))
    # v6 instances: BUFFER options of (8-byte offset, name); at the offset, as after the CPU
    # count of the header: "options  " (options up to id 0), then "flyrecord" and the CPU table
    for d in dat.options.get(OPT_BUFFER, []):
        if len(d) < 9:
            continue
        (off,) = struct.unpack_from(bo + "Q", d, 0)
        name = d[8:].split(b"\0", 1)[0].decode("utf-8", "replace")
        n = dat.cpus_declared
        c = _Cursor(rd, rd.read(off, min(rd.size - off, 16 * n + (1 << 16)) if off < rd.size else 0,
                                f"buffer '{name}''s header"), off, bo, f" (buffer '{name}')")
        kind = c.bytes(10, "'options', 'latency' or 'flyrecord'")
        if kind == b"options  \0":
            while c.u(2, "an option id") != 0:
                c.bytes(c.u(4, "an option size"), "an option's data")
            kind = c.bytes(10, "'latency' or 'flyrecord'")
        if kind != b"flyrecord\0":
            rd.fail(c.at() - 10, f"'flyrecord' for buffer '{name}', got {kind!r}")
        cpus = []
        for i in range(n):
            cpus.append((i, c.u(8, f"CPU {i}'s data offset"), c.u(8, f"CPU {i}'s data size")))
        dat.buffers.append(Buffer(name, _clock_of(dat), dat.page_size, cpus, False))


def _clock_of(dat):
    s = dat.option_str(OPT_TRACECLOCK)
    if s:
        m = re.search(r"\[([^\]]+)\]", s)
        if m:
            return m.group(1)
    return "local"


def _read_v7(rd, dat, pos, bo):
    c = _Cursor(rd, rd.read(pos, min(rd.size - pos, 256), "the compression header"), pos, bo)
    dat.compression = c.cstr("the compression name")
    dat.compression_version = c.cstr("the compression version")
    if dat.compression == "none":
        dat.compression = None
    codec = _Codec(dat.compression, rd.path) if dat.compression else None
    first_opts = c.u(8, "the offset of the first options section")
    strings = {}

    def section(off, want_id, what):
        h = rd.read(off, 16, f"the {what} section header")
        sid, flags, _sname, size = struct.unpack(bo + "HHIQ", h)
        if sid != want_id:
            rd.fail(off, f"a {what} section (id {want_id}), got section id {sid}")
        if flags & SECTION_COMPRESSED:
            if codec is None:
                rd.fail(off, f"an uncompressed {what} section (the file declares no compression)")
            ch = rd.read(off + 16, 8, f"the {what} section's compression header")
            csize, usize = struct.unpack(bo + "II", ch)
            if csize > size:
                rd.fail(off + 16, f"a compressed size within the section ({csize} > {size})")
            raw = rd.read(off + 24, csize, f"the compressed {what} section")
            try:
                data = codec.decompress(raw, usize)
            except Exception as exc:
                rd.fail(off + 24, f"{dat.compression} data of the {what} section ({exc})")
            return _Cursor(rd, data, off + 24, bo, f" (in the {what} section decompressed from offset {off + 24})")
        return _Cursor(rd, rd.read(off + 16, size, f"the {what} section"), off + 16, bo)

    opt_off = first_opts
    seen = set()
    buffers_raw = []
    while opt_off:
        if opt_off in seen:
            rd.fail(opt_off, "an options section not seen before (the chain loops)")
        seen.add(opt_off)
        oc = section(opt_off, SEC_OPTIONS, "options")
        nxt = 0
        while True:
            oid = oc.u(2, "an option id")
            osize = oc.u(4, "an option size")
            odata = oc.bytes(osize, f"option {oid}'s data")
            if oid == OPT_DONE:
                nxt = int.from_bytes(odata[:8], "big" if bo == ">" else "little") if len(odata) >= 8 else 0
                break
            if oid == 15:  # STRINGS
                base = sum(len(s) + 1 for s in strings.values())
                for s in odata.split(b"\0"):
                    strings[base] = s.decode("utf-8", "replace")
                    base += len(s) + 1
                continue
            dat.options.setdefault(oid, []).append(odata)
            if oid == OPT_BUFFER:
                buffers_raw.append((oc.at() - osize, odata))
        opt_off = nxt

    def ptr(opt):
        v = dat.options.get(opt)
        if not v:
            return None
        return struct.unpack(bo + "Q", v[-1][:8])[0]

    hi = ptr(OPT_HEADER_INFO)
    if hi is None:
        rd.fail(first_opts, "a HEADER_INFO option (id 16) in the options")
    _header_info(section(hi, OPT_HEADER_INFO, "header info"), dat)
    for opt, fn, what in ((OPT_FTRACE_EVENTS, _ftrace_formats, "ftrace event formats"),
                          (OPT_EVENT_FORMATS, _event_formats, "event formats"),
                          (OPT_KALLSYMS, _kallsyms, "kallsyms"),
                          (OPT_PRINTK, _printk, "printk formats"),
                          (OPT_CMDLINES, _cmdlines, "saved cmdlines")):
        off = ptr(opt)
        if off is not None:
            fn(section(off, opt, what), dat)
    cc = dat.options.get(OPT_CPUCOUNT)
    if cc:
        dat.cpus_declared = int.from_bytes(cc[-1][:4], "big" if bo == ">" else "little")
    for at, d in buffers_raw:
        b = _Cursor(rd, d, at, bo, " (in a BUFFER option)")
        sec_off = b.u(8, "the buffer's section offset")
        name = b.cstr("the buffer name")
        clock = b.cstr("the buffer clock")
        psize = b.u(4, "the buffer page size")
        n = b.u(4, "the buffer's CPU count")
        cpus = []
        for _ in range(n):
            cpus.append((b.u(4, "a CPU id"), b.u(8, "a CPU data offset"), b.u(8, "a CPU data size")))
        h = rd.read(sec_off, 16, f"buffer '{name}''s flyrecord section header")
        sid, flags, _s, _size = struct.unpack(bo + "HHIQ", h)
        if sid != SEC_FLYRECORD:
            rd.fail(sec_off, f"a flyrecord section (id 3) for buffer '{name}', got id {sid}")
        compressed = bool(flags & SECTION_COMPRESSED)
        if compressed and codec is None:
            rd.fail(sec_off, "an uncompressed flyrecord section (the file declares no compression)")
        if psize < 64 or psize & (psize - 1):
            rd.fail(at + 8 + len(name) + len(clock) + 2, f"a power-of-two page size, got {psize}")
        dat.buffers.append(Buffer(name, clock, psize, cpus, compressed, at))
    dat._codec = codec


def cpu_data(dat, rd_path, buffer, cpu_index):
    """The bytes of one CPU's ring-buffer pages (decompressed), as a bytes-like object."""
    parts = list(cpu_chunks(dat, rd_path, buffer, cpu_index))
    if not parts:
        return b""
    return parts[0] if len(parts) == 1 else b"".join(parts)


#: bytes read at once from the file (compressed chunks, or uncompressed pages)
READ_BLOCK = 1 << 20


def cpu_chunks(dat, rd_path, buffer, cpu_index):
    """One CPU's ring-buffer pages as they are decompressed, chunk by chunk (bytes-like
    pieces, in order), so a reader never holds the whole decompressed stream."""
    _cpu, off, size = buffer.cpus[cpu_index]
    with open(rd_path, "rb") as f:
        fd = f.fileno()
        fsize = os.fstat(fd).st_size
        if not buffer.compressed:
            if off + size > fsize:
                raise DatError(f"{rd_path}: offset {off}: expected CPU {_cpu}'s {size} bytes of "
                               f"ring-buffer pages (the file ends at {fsize})")
            step = max(READ_BLOCK // buffer.page_size, 1) * buffer.page_size
            for at in range(off, off + size, step):
                yield os.pread(fd, min(step, off + size - at), at)
            return
        if not size:
            return
        if off + 4 > fsize:
            raise DatError(f"{rd_path}: offset {off}: expected CPU {_cpu}'s chunk count")
        head = os.pread(fd, 4, off)
        (nchunks,) = struct.unpack(dat.bo + "I", head)
        pos = off + 4
        decompress = dat._codec.decompressor()
        hdr = struct.Struct(dat.bo + "II")
        # compressed chunks are read a block at a time; a chunk is decompressed from it in place
        block, bstart = b"", pos
        for k in range(nchunks):
            if pos + 8 > bstart + len(block):
                block, bstart = os.pread(fd, max(READ_BLOCK, 8), pos), pos
            if pos + 8 > bstart + len(block):
                raise DatError(f"{rd_path}: offset {pos}: expected chunk {k} of CPU {_cpu}'s "
                               f"compressed data (8-byte header)")
            csize, usize = hdr.unpack_from(block, pos - bstart)
            if pos + 8 + csize > fsize or pos + 8 + csize > off + size + 8:
                raise DatError(f"{rd_path}: offset {pos}: expected chunk {k} of CPU {_cpu} "
                               f"({csize} compressed bytes) within the file")
            if pos + 8 + csize > bstart + len(block):
                block, bstart = os.pread(fd, max(READ_BLOCK, 8 + csize), pos), pos
            raw = memoryview(block)[pos + 8 - bstart:pos + 8 + csize - bstart]
            try:
                out = decompress(raw, usize)
            except Exception as exc:
                raise DatError(f"{rd_path}: offset {pos + 8}: expected {dat.compression} data "
                               f"(chunk {k} of CPU {_cpu}: {exc})") from None
            pos += 8 + csize
            yield out
