"""Opening inputs and cutting them into line-aligned blocks.

An input is a path (plain or compressed: gzip, xz, bzip2, zstd, detected by magic bytes), an
open binary file, or ``"-"`` for stdin.  Blocks are read with ``readinto`` into one reused
buffer; the partial last line of a block is carried to the front of the buffer for the next
read, so no line is ever split and the whole file is never held in memory.
"""

from __future__ import annotations

import io
import os
import sys

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
    """The input cannot be read as ftrace text (missing, empty, binary, unsupported)."""


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
                    raise EOFError(f"corrupt zstd input: {exc}") from None
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


class Source:
    """A readable binary stream of ftrace text, decompressed, with its name and size."""

    def __init__(self, source):
        self._close = []
        self.path = None      # set when the input was opened here, from a path
        if isinstance(source, (str, os.PathLike)) and os.fspath(source) == "-":
            raw = sys.stdin.buffer
            self.name = "<stdin>"
        elif isinstance(source, (str, bytes, os.PathLike)):
            path = os.fspath(source)
            self.name = os.fsdecode(path)
            try:
                raw = open(path, "rb")
            except FileNotFoundError:
                raise InputError(f"{self.name}: no such file") from None
            except IsADirectoryError:
                raise InputError(f"{self.name}: is a directory") from None
            except PermissionError:
                raise InputError(f"{self.name}: permission denied") from None
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
        head = buffered.peek(16)[:16]
        self.compression = None
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                self.compression = kind
                break
        for magic, what in _FOREIGN:
            if head.startswith(magic):
                self.close()
                raise InputError(f"{self.name}: this is {what}")
        self.stream = _wrap(buffered, self.compression)
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


def blocks(stream, chunk_size=DEFAULT_CHUNK):
    """Yield (memoryview, n, final): buf[:n] ends at a line end unless final.

    The same buffer is reused; a consumer must finish with one block before asking for the
    next.  A line longer than the buffer doubles it.  The buffer keeps SPARE bytes past the
    data, which the tokenizer may read (never write) when it loads short strings as words.
    """
    cap = max(1, int(chunk_size))
    buf = bytearray(cap + SPARE)
    view = memoryview(buf)
    have = 0
    readinto = getattr(stream, "readinto", None)
    while True:
        if have == cap:
            # a line longer than the buffer: grow it
            view.release()
            buf.extend(bytes(cap))
            cap *= 2
            view = memoryview(buf)
        if readinto is not None:
            n = readinto(view[have:cap])
        else:
            data = stream.read(cap - have)
            n = len(data)
            view[have:have + n] = data
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
