"""Opening inputs and cutting them into line-aligned blocks.

An input is a path (plain or compressed: gzip, xz, bzip2, zstd, detected by magic bytes), an
open binary file, or ``"-"`` for stdin.  Blocks are read with ``readinto`` into one reused
buffer; the partial last line of a block is carried to the front of the buffer for the next
read, so no line is ever split and the whole file is never held in memory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from typing import NamedTuple

from ._text import printable

#: the first bytes of a trace-cmd trace.dat
DAT_MAGIC = b"\x17\x08\x44tracing"


def is_tracedat(source):
    """True when source is a path whose first bytes are trace-cmd's magic (here, not in
    tracedat, so that a text input never imports the trace.dat reader)."""
    if not isinstance(source, (str, bytes, os.PathLike)) or os.fspath(source) in ("-", b"-"):
        return False
    try:
        with open(source, "rb") as f:
            return f.read(len(DAT_MAGIC)) == DAT_MAGIC
    except OSError:
        return False

DEFAULT_CHUNK = 16 << 20
SPARE = 64

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
# binary formats users hand us by mistake, with what to do instead
_FOREIGN = (
    (b"\x17\x08\x44tracing", "a trace-cmd binary trace.dat on a stream: give its path "
                             "(load() and ftfast read a trace.dat by path)"),
    (b"PERFILE2", "a perf.data file: convert it with 'perf script' first"),
    (b"\xd4\xc3\xb2\xa1", "a pcap capture, not ftrace text"),
)


class InputError(Exception):
    """The input cannot be read as ftrace text (missing, empty, binary, unsupported, corrupt,
    not an ftrace text log).  Its message is one line, control characters escaped."""


#: what an open() failure is called in an InputError (the OS's words otherwise)
_OPEN_ERRORS = {
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENXIO: "cannot be opened for reading (a socket, or a device without a driver)",
}


class _ZstdReader(io.RawIOBase):
    """zstd frames one after another, decoded with zstandard's decompressobj; unlike its
    stream_reader, a stream cut inside a frame is an error (EOFError), as with gzip."""

    def __init__(self, raw, zstandard):
        self.raw = raw
        self.zstandard = zstandard
        self.dobj = zstandard.ZstdDecompressor().decompressobj()
        self.pending = b""
        self.off = 0
        self.started = False

    def readable(self):
        return True

    def readinto(self, b):
        while self.off >= len(self.pending):
            self.pending = b""
            self.off = 0
            data = self.raw.read(1 << 20)
            if not data:
                if self.started and not self.dobj.eof:
                    raise EOFError("compressed input ended before the end of its zstd frame")
                return 0
            while data:
                if self.dobj.eof:
                    self.dobj = self.zstandard.ZstdDecompressor().decompressobj()
                self.started = True
                try:
                    self.pending += self.dobj.decompress(data)
                except self.zstandard.ZstdError as exc:
                    raise EOFError(str(exc)) from None
                data = self.dobj.unused_data if self.dobj.eof else b""
        n = min(len(b), len(self.pending) - self.off)
        b[:n] = memoryview(self.pending)[self.off:self.off + n]
        self.off += n
        return n


def _open_zstd(raw):
    try:
        import zstandard
    except ImportError:
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            raise InputError("zstd-compressed input needs the 'zstandard' package "
                             "(pip install zstandard)") from None
        return zstd.ZstdFile(raw)
    return io.BufferedReader(_ZstdReader(raw, zstandard), 1 << 20)


def _wrap(raw, kind):
    if kind == "gzip":
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "xz":
        import lzma
        return lzma.LZMAFile(raw)
    if kind == "bzip2":
        import bz2
        return bz2.BZ2File(raw)
    if kind == "zstd":
        return _open_zstd(raw)
    return raw


def stdin_buffer():
    """The binary stream of standard input; InputError when it is closed."""
    stdin = sys.stdin
    if stdin is None or getattr(stdin, "closed", False) or not hasattr(stdin, "buffer"):
        raise InputError("<stdin>: standard input is closed")
    try:
        os.fstat(stdin.fileno())
    except io.UnsupportedOperation:
        pass  # a stdin replaced by an object without a descriptor: read it as it is
    except (OSError, ValueError):
        raise InputError("<stdin>: standard input is closed") from None
    return stdin.buffer


class Source:
    """A readable binary stream of ftrace text, decompressed, with its name and size."""

    def __init__(self, source):
        self._close = []
        self.path = None      # set when the input was opened here, from a path
        if isinstance(source, (str, os.PathLike)) and os.fspath(source) == "-":
            self.name = "<stdin>"
            raw = stdin_buffer()
        elif isinstance(source, (str, bytes, os.PathLike)):
            path = os.fspath(source)
            self.name = os.fsdecode(path)
            shown = printable(self.name)
            try:
                raw = open(path, "rb")
            except OSError as exc:
                what = _OPEN_ERRORS.get(exc.errno, exc.strerror or str(exc))
                if exc.errno == errno.ENXIO:
                    with contextlib.suppress(OSError):
                        if stat.S_ISSOCK(os.stat(path).st_mode):
                            what = "is a socket, not a file"
                raise InputError(f"{shown}: {what}") from None
            except ValueError as exc:  # an embedded NUL
                raise InputError(f"{shown}: not a usable path ({exc})") from None
            self._close.append(raw)
            self.path = path
        elif hasattr(source, "read"):
            raw = source
            self.name = getattr(source, "name", "<stream>")
            if not isinstance(self.name, str):
                self.name = "<stream>"
        else:
            raise TypeError("source must be a path, '-' or a binary file object")
        if isinstance(raw, io.TextIOBase):
            raise TypeError("source must be opened in binary mode")
        self.raw = raw
        try:
            self.size = os.fstat(raw.fileno()).st_size if raw.seekable() else None
        except (OSError, AttributeError, ValueError):
            self.size = None
        if not isinstance(raw, io.BufferedReader):
            buffered = io.BufferedReader(_RawAdapter(raw)) if not hasattr(raw, "peek") else raw
        else:
            buffered = raw
        try:
            head = buffered.peek(16)[:16]
        except (OSError, ValueError) as exc:
            self.close()
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"{printable(self.name)}: read error: {printable(why)}") from None
        self.compression = None
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                self.compression = kind
                break
        for magic, what in _FOREIGN:
            if head.startswith(magic):
                self.close()
                raise InputError(f"{printable(self.name)}: this is {what}")
        try:
            self.stream = _wrap(buffered, self.compression)
        except InputError:
            self.close()
            raise
        if self.stream is not buffered:
            self._close.append(self.stream)
        self._buffered = buffered

    def position(self):
        """Bytes consumed from the underlying (compressed) input, for progress."""
        try:
            return self._buffered.tell()
        except (OSError, ValueError, AttributeError):
            return None

    def close(self):
        for f in reversed(self._close):
            try:
                f.close()
            except Exception:
                pass
        self._close = []


class _RawAdapter(io.RawIOBase):
    """Lets io.BufferedReader wrap any object with read()."""

    def __init__(self, f):
        self.f = f

    def readable(self):
        return True

    def readinto(self, b):
        data = self.f.read(len(b))
        n = len(data)
        b[:n] = data
        return n


class Region(io.RawIOBase):
    """Bytes [start, end) of an open file, read with pread (no shared file position, so one
    thread per region)."""

    def __init__(self, fd, start, end):
        self.fd = fd
        self.pos = start
        self.end = end

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.end - self.pos)
        if n <= 0:
            return 0
        if hasattr(os, "preadv"):
            with memoryview(b) as m:
                got = os.preadv(self.fd, [m[:n]], self.pos)
        else:  # pragma: no cover - systems without preadv
            data = os.pread(self.fd, n, self.pos)
            got = len(data)
            b[:got] = data
        self.pos += got
        return got


def line_starts(fd, size, offsets):
    """For each offset, the start of the first line that begins at or after it (size when
    none does), found with small preads."""
    out = []
    for off in offsets:
        if off <= 0:
            out.append(0)
            continue
        pos = off - 1          # a line starts at off when the byte before it ends a line
        while pos < size:
            data = os.pread(fd, 1 << 16, pos)
            if not data:
                break
            i = data.find(b"\n")
            if i >= 0:
                pos += i + 1
                break
            pos += len(data)
        out.append(min(pos, size))
    return out


class LongLine(NamedTuple):
    """A line over the line limit, which blocks() skipped: its first bytes and its length
    (line end excluded)."""

    head: bytes
    nbytes: int


#: bytes of a skipped line kept for its error record (the parser's excerpt)
LONG_HEAD = 200


def blocks(stream, chunk_size=DEFAULT_CHUNK, max_line=None, buf=None):
    """Yield (memoryview, n, final): buf[:n] ends at a line end unless final.

    The same buffer is reused; a consumer must finish with one block before asking for the
    next.  A line longer than the buffer doubles it, up to room for a line of max_line bytes
    (None: no limit); a line longer than that is read through without being kept and yielded
    as (LongLine, 0, final), final when it is the input's unterminated end.  The buffer keeps
    SPARE bytes past the data, which the tokenizer may read (never write) when it loads
    short strings as words.

    ``buf``: a bytearray of chunk_size + SPARE bytes to read into, which a caller parsing
    chunk after chunk passes to each (a new buffer costs a page fault per 4 KB and the
    kernel's zeroing); its content is never looked at before it is read over.
    """
    cap = max(1, int(chunk_size))
    if buf is None or len(buf) != cap + SPARE:
        buf = bytearray(cap + SPARE)
    view = memoryview(buf)
    have = 0
    readinto = getattr(stream, "readinto", None)

    def read(lo, hi):
        if readinto is not None:
            return readinto(view[lo:hi]) or 0
        data = stream.read(hi - lo)
        view[lo:lo + len(data)] = data
        return len(data)

    while True:
        if have == cap:
            if max_line is not None and cap > max_line:
                # buf[:cap] is the start of one line over the limit: read to its end
                head = bytes(view[:min(cap, LONG_HEAD)])
                nbytes = cap
                while True:
                    n = read(0, cap)
                    if not n:
                        yield LongLine(head, nbytes), 0, True
                        return
                    cut = buf.find(b"\n", 0, n)
                    if len(head) < LONG_HEAD:
                        # the excerpt is the line's first bytes whatever the buffer's size
                        head += bytes(view[:min(n if cut < 0 else cut, LONG_HEAD - len(head))])
                    if cut >= 0:
                        break
                    nbytes += n
                yield LongLine(head, nbytes + cut), 0, False
                have = n - cut - 1
                if have:
                    view[:have] = view[cut + 1:n]
                    # what follows the long line may hold whole lines
                    cut = buf.rfind(b"\n", 0, have)
                    if cut >= 0:
                        cut += 1
                        yield view, cut, False
                        tail = have - cut
                        if tail:
                            view[:tail] = view[cut:have]
                        have = tail
                continue
            # a line longer than the buffer: grow it (to hold a line of max_line bytes and
            # its line end at most)
            grow = cap if max_line is None else min(cap, max_line + 1 - cap)
            view.release()
            buf.extend(bytes(grow))
            cap += grow
            view = memoryview(buf)
        n = read(have, cap)
        if not n:
            if have:
                yield view, have, True
            return
        end = have + n
        cut = buf.rfind(b"\n", have, end)
        if cut < 0:
            have = end
            continue
        cut += 1
        yield view, cut, False
        tail = end - cut
        if tail:
            view[:tail] = view[cut:end]
        have = tail
