"""Parse once: an on-disk cache of a loaded trace's arrays and of its scheduling model.

Where: ``$FTFAST_CACHE_DIR``, else ``$XDG_CACHE_HOME/ftrace_fast``, else
``~/.cache/ftrace_fast``.  One directory per (input, load options) under ``entries/``::

    entries/<key>/manifest       "ftfast-cache <layout> <sha256 of the body>" line, then a
                                 JSON body: the input's fingerprint, the options, ftrace_fast's
                                 version, every scalar of the Trace (stats, errors, format,
                                 clock, comm and symbol tables) and every file with its size,
                                 dtype and shape
    entries/<key>/a<N>.npy       the arrays: event records, text arena, LOST markers, ...
    entries/<key>/model/         the scheduling model's tables, with a manifest of their own
                                 (integer index columns stored in int8/int16 when they fit,
                                 widened on their first read)
    entries/<key>/derived/<h>/   one derived table of the trace (trace.STORED: the KVM
                                 figures, task and CPU summaries, the topology), <h> a hash of
                                 its name and restriction key; a manifest holding the name,
                                 the key and the value as tagged JSON, large arrays as .npy

Arrays are plain ``.npy`` files (``np.save(allow_pickle=False)``), memory-mapped back as
``np.load(mmap_mode="r", allow_pickle=False)`` would, with the dtype and shape of the
checksummed manifest and the header checked by its hash (no header is evaluated, no object
dtype accepted): zero copy, never unpickled.  An entry is used only when its manifest's
checksum, every file's size, dtype and shape, the layout version, ftrace_fast's version and the
input's fingerprint (resolved path, size, mtime in ns, inode, a hash of its first and last
MiB) all match; otherwise it is rebuilt and one line on stderr says why.

The model and the derived tables a command computed are stored when the process ends, each
table in its own directory published by its own rename: a later command with another
restriction adds its tables beside them.

Entries are written into a ``tmp-*`` directory beside ``entries/`` and published by one
``rename``: a killed or interrupted writer, a full disk or two commands racing on one trace
never leave a half entry where a reader looks (the loser of a race drops its copy).  A cache
directory that cannot be written means no cache and one warning, never a failure.  Past
``FTFAST_CACHE_MAX`` bytes (default 10 GiB; suffixes K, M, G, T) the least recently used
entries are removed.  Inputs smaller than ``MIN_BYTES`` (64 MiB, ``FTFAST_CACHE_MIN``; a
compressed file counts 16 times its size), stdin
and loads that keep the text (``keep_text``: ``ftfast filter``) are cached only when asked
(``load(cache=True)``, ``--cache``); stdin is then hashed whole.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import weakref

import numpy as np

#: version of the entry layout: bump it when what is stored, or how, changes
LAYOUT_VERSION = 4
#: inputs smaller than this are parsed again rather than cached (unless asked)
MIN_BYTES = 64 << 20
DEFAULT_MAX_BYTES = 10 << 30
_EDGE_BYTES = 1 << 20
_MAGIC = "ftfast-cache"
# gzip, xz, bzip2, zstd: such a file holds about 16 times its size in text, so it is cached
# from MIN_BYTES / 16 on
_COMPRESSED = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh", b"\x28\xb5\x2f\xfd")
_COMPRESSION_RATIO = 16
# a tmp-* directory this old whose writer is gone is a leftover of a killed writer
_STALE_TMP_S = 60.0

#: the Trace attributes an entry stores (tests hold this list to Trace's own)
TRACE_ATTRIBUTES = ("events", "comms", "symbols", "text_arena", "_layouts", "errors", "lost",
                    "stats", "clock", "source", "compression", "format", "line_kinds",
                    "kept_text", "_machine_names", "_machine_runs",
                    "dat")   # dat: None on every cached Trace (a trace.dat is not cached)
# Trace attributes that are derived from the others, not state (trace.DERIVED: the tables)
TRACE_DERIVED = ("_derived", "machine")


def cache_dir():
    d = os.environ.get("FTFAST_CACHE_DIR")
    if d:
        return d
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ftrace_fast")


def min_bytes():
    """FTFAST_CACHE_MIN: the smallest file cached by default (bytes; default MIN_BYTES)."""
    v = os.environ.get("FTFAST_CACHE_MIN", "").strip()
    try:
        return int(v) if v else MIN_BYTES
    except ValueError:
        return MIN_BYTES


def max_bytes():
    """FTFAST_CACHE_MAX: bytes, or a number with K, M, G or T (powers of 1024)."""
    v = os.environ.get("FTFAST_CACHE_MAX", "").strip()
    if not v:
        return DEFAULT_MAX_BYTES
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    s = v.lower().rstrip("ib").rstrip("b") if v.lower().endswith(("ib", "b")) else v.lower()
    mult = 1
    if s and s[-1] in scale:
        mult, s = scale[s[-1]], s[:-1]
    try:
        return int(float(s) * mult)
    except ValueError:
        _warn(f"FTFAST_CACHE_MAX={v!r} is not a size: using {DEFAULT_MAX_BYTES >> 30} GiB")
        return DEFAULT_MAX_BYTES


_warned = set()


def _warn(message):
    """One line on stderr, once per message and process."""
    if message in _warned:
        return
    _warned.add(message)
    print(f"ftfast: cache: {message}", file=sys.stderr)


def _version():
    from . import __version__
    return __version__


# -- keys ----------------------------------------------------------------------------------------

def options_key(*, events, cpus, pids, comm, start, end, mark_lines, keep_text, records,
                max_line=None):
    """The load options that change the arrays, as JSON-able values (start/end already in the
    trace's unit; strict is no part of it: a strict load that succeeds equals a lenient one)."""
    def ints(x):
        return None if x is None else sorted({int(v) for v in np.asarray(list(x)).ravel()})
    if isinstance(events, str):
        events = [events]
    pattern = None
    if comm is not None:
        pattern = [comm.pattern if isinstance(comm.pattern, str) else
                   comm.pattern.decode("latin-1"), int(comm.flags)]
    return {"events": None if events is None else [str(e) for e in events],
            "cpus": ints(cpus), "pids": ints(pids), "comm": pattern,
            "start": start, "end": end, "mark_lines": bool(mark_lines),
            "keep_text": bool(keep_text), "records": bool(records), "max_line": max_line}


def _edges_hash(fd, size):
    h = hashlib.sha256()
    head = os.pread(fd, min(size, _EDGE_BYTES), 0)
    h.update(head)
    if size > _EDGE_BYTES:
        tail = max(_EDGE_BYTES, size - _EDGE_BYTES)
        h.update(os.pread(fd, size - tail, tail))
    return h.hexdigest(), head.startswith(_COMPRESSED)


def fingerprint(path):
    """What identifies a file's content: resolved path, size, mtime (ns), inode and device,
    and a hash of its first and last MiB.  None when it is no regular file."""
    real = os.path.realpath(path)
    try:
        fd = os.open(real, os.O_RDONLY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        sha, compressed = _edges_hash(fd, st.st_size)
        return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "inode": st.st_ino, "device": st.st_dev, "edges_sha256": sha,
                "compressed": compressed}
    finally:
        os.close(fd)


def _digest(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# -- reading and writing entries -----------------------------------------------------------------

class Damaged(Exception):
    """An entry that must not be used (the message says why)."""


def _write_manifest(dirpath, body):
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    sha = hashlib.sha256(text.encode()).hexdigest()
    with open(os.path.join(dirpath, "manifest"), "w", encoding="utf-8") as f:
        f.write(f"{_MAGIC} {LAYOUT_VERSION} {sha}\n{text}")


def read_manifest(dirpath):
    """The checked body of a manifest (Damaged when it is unreadable or does not match its
    checksum; FileNotFoundError when there is none)."""
    with open(os.path.join(dirpath, "manifest"), "rb") as f:
        data = f.read()
    head, _, text = data.partition(b"\n")
    parts = head.decode("ascii", "replace").split(" ")
    if len(parts) != 3 or parts[0] != _MAGIC:
        raise Damaged("its manifest is not one")
    if hashlib.sha256(text).hexdigest() != parts[2]:
        raise Damaged("its manifest does not match its checksum")
    try:
        return json.loads(text)
    except ValueError:
        raise Damaged("its manifest is not JSON") from None


class _Writer:
    """The files of one entry being written into a temporary directory."""

    def __init__(self, dirpath):
        self.dir = dirpath
        self.files = {}

    def array(self, a):
        name = f"a{len(self.files)}.npy"
        path = os.path.join(self.dir, name)
        a = np.ascontiguousarray(a)
        np.save(path, a, allow_pickle=False)
        size = os.path.getsize(path)
        offset = size - a.nbytes
        with open(path, "rb") as f:
            header = f.read(offset)
        self.files[name] = {"size": size, "offset": offset,
                            "header_sha256": hashlib.sha256(header).hexdigest(),
                            "dtype": np.lib.format.dtype_to_descr(a.dtype),
                            "shape": list(a.shape)}
        return name


class _Reader:
    def __init__(self, dirpath, files):
        self.dir = dirpath
        self.files = files

    def check(self):
        for name, meta in self.files.items():
            try:
                size = os.path.getsize(os.path.join(self.dir, name))
            except OSError:
                raise Damaged(f"{name} is missing") from None
            if size != meta["size"]:
                raise Damaged(f"{name} has {size} bytes, not {meta['size']}")

    def array(self, name):
        """The array, memory-mapped.  The .npy header is checked against the manifest's hash
        of it and the array mapped with the manifest's dtype and shape: what np.load(path,
        mmap_mode="r", allow_pickle=False) gives, without parsing the header (np.load
        evaluates it with ast: 10 ms a file, most of a second run's time)."""
        meta = self.files[name]
        path = os.path.join(self.dir, name)
        try:
            dtype = np.lib.format.descr_to_dtype(meta["dtype"])
            shape = tuple(int(x) for x in meta["shape"])
            offset = int(meta["offset"])
            with open(path, "rb") as f:
                header = f.read(offset)
            if hashlib.sha256(header).hexdigest() != meta["header_sha256"] or \
                    not header.startswith(b"\x93NUMPY"):
                raise Damaged(f"{name}: its header is not the one written")
            if dtype.hasobject:
                raise Damaged(f"{name}: an object array")
            if offset + dtype.itemsize * int(np.prod(shape)) != meta["size"]:
                raise Damaged(f"{name}: its size does not fit its shape")
            if not dtype.itemsize * int(np.prod(shape)):
                return np.zeros(shape, dtype)
            return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset,
                                        shape=shape))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise Damaged(f"{name} cannot be read ({exc})") from None


class Unstorable(Exception):
    """A derived table holding what an entry cannot keep without pickling (it is computed
    again by the next run instead)."""


_INLINE_BYTES = 1 << 16


def _encode(v, w):
    """A derived table as JSON for the manifest: plain values as they are, the rest tagged
    ({"t": kind, ...}) so that the types come back exactly; arrays past _INLINE_BYTES as
    .npy files written with w.  Unstorable for anything else (no pickle)."""
    if isinstance(v, np.generic):          # before float: np.float64 is one
        if v.dtype.kind not in "biuf":
            raise Unstorable(f"a {v.dtype} scalar")
        return {"t": "scalar", "dtype": v.dtype.str, "v": v.item()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.names:
            return {"t": "record", "dtype": np.lib.format.dtype_to_descr(v.dtype),
                    "shape": list(v.shape),
                    "fields": [[f, _encode(np.ascontiguousarray(v[f]), w)] for f in v.dtype.names]}
        if v.dtype.hasobject:
            items = v.ravel().tolist()
            if not all(x is None or isinstance(x, str) for x in items):
                raise Unstorable("an object array of other than str")
            return {"t": "objects", "shape": list(v.shape), "v": items}
        if v.dtype.kind not in "biuf":
            raise Unstorable(f"a {v.dtype} array")
        if v.nbytes <= _INLINE_BYTES:
            return {"t": "array", "dtype": v.dtype.str, "shape": list(v.shape),
                    "v": v.ravel().tolist()}
        return {"t": "file", "name": w.array(v)}
    if isinstance(v, (list, tuple)):
        return {"t": "list" if isinstance(v, list) else "tuple", "v": [_encode(x, w) for x in v]}
    if isinstance(v, dict):
        return {"t": "dict", "v": [[_encode(k, w), _encode(x, w)] for k, x in v.items()]}
    raise Unstorable(f"a {type(v).__name__}")


def _decode(e, r):
    if not isinstance(e, dict):
        return e
    t = e["t"]
    if t == "scalar":
        return np.dtype(e["dtype"]).type(e["v"])
    if t == "record":
        dtype = np.lib.format.descr_to_dtype(e["dtype"])
        out = np.zeros(tuple(e["shape"]), dtype)
        for f, col in e["fields"]:
            out[f] = _decode(col, r)
        return out
    if t == "objects":
        out = np.empty(len(e["v"]), object)
        out[:] = e["v"]
        return out.reshape(tuple(e["shape"]))
    if t == "array":
        return np.array(e["v"], np.dtype(e["dtype"])).reshape(tuple(e["shape"]))
    if t == "file":
        return np.array(r.array(e["name"]))      # a copy: tables are not read-only
    if t == "list":
        return [_decode(x, r) for x in e["v"]]
    if t == "tuple":
        return tuple(_decode(x, r) for x in e["v"])
    if t == "dict":
        return {_decode(k, r): _decode(x, r) for k, x in e["v"]}
    raise Damaged(f"a table of unknown kind {t!r}")


def _trace_body(t, w):
    """The manifest's part about a Trace, its arrays written with w."""
    stats = dataclasses.asdict(t.stats)
    # dicts as lists of pairs: the manifest's JSON sorts keys, the Trace keeps their order
    stats["error_counts"] = None if t.stats.error_counts is None else \
        list(t.stats.error_counts.items())
    return {
        "events": [[name, t._layouts.get(name), w.array(a)] for name, a in t.events.items()],
        "layouts": list(t._layouts.items()),
        "comms": list(t.comms), "symbols": list(t.symbols),
        "text_arena": w.array(t.text_arena), "lost": w.array(t.lost),
        # an excerpt's exact bytes as hex: JSON holds no bytes
        "errors": [dict(dataclasses.asdict(e), raw=e.raw.hex()) for e in t.errors], "stats": stats,
        "clock": t.clock, "source": t.source, "compression": t.compression,
        "format": list(t.format.items()),
        "line_kinds": None if t.line_kinds is None else w.array(t.line_kinds),
        "kept_text": None if t.kept_text is None else [w.array(x) for x in t.kept_text],
        "machine_names": list(t._machine_names),
        "machine_runs": None if t._machine_runs is None else w.array(t._machine_runs),
        # derived, but a pass over every event array: a second info reads them from here
        "span": t.span, "cpus": t.cpus(),
    }


def _trace_from(body, r):
    from .trace import LineError, Stats, Trace
    t = Trace(layouts=dict(body["layouts"]), machine_names=list(body["machine_names"]),
              machine_runs=None if body["machine_runs"] is None else r.array(body["machine_runs"]))
    t.events = {name: r.array(f) for name, _, f in body["events"]}
    t.comms = list(body["comms"])
    t.symbols = list(body["symbols"])
    t.text_arena = r.array(body["text_arena"])
    t.lost = r.array(body["lost"])
    t.errors = [LineError(**dict(e, raw=bytes.fromhex(e["raw"]))) for e in body["errors"]]
    stats = dict(body["stats"])
    if stats["error_counts"] is not None:
        stats["error_counts"] = dict(stats["error_counts"])
    t.stats = Stats(**stats)
    t.clock = body["clock"]
    t.source = body["source"]
    t.compression = body["compression"]
    t.format = dict(body["format"])
    t.line_kinds = None if body["line_kinds"] is None else r.array(body["line_kinds"])
    t.kept_text = None if body["kept_text"] is None else [r.array(f) for f in body["kept_text"]]
    key = t._arrays_key()
    span = body["span"]
    t._derived.put("span", key, None if span is None else (int(span[0]), int(span[1])))
    t._derived.put("cpus", key, [int(c) for c in body["cpus"]])
    return t


def _is_space_error(exc):
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _describe_os_error(exc):
    if _is_space_error(exc):
        return "no space left"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "the directory is read-only"
    return getattr(exc, "strerror", None) or str(exc)


def _remove(path, root=None):
    """Take a directory out of sight by one rename (into the cache root), then delete it."""
    root = root or cache_dir()
    trash = os.path.join(root, f"trash-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _publish(root, tmp, final, replace):
    """Rename tmp to final; True when it is now there.  An entry that appeared meanwhile (a
    racing writer) wins: ours is dropped."""
    if replace:
        _remove(final, root)
    try:
        os.rename(tmp, final)
        return True
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise


def _write_dir(root, final, replace, fill, tag=""):
    """Write a directory with fill(writer) -> manifest body, and publish it.  False (and one
    warning) when the cache directory cannot take it.  tag: in the temporary directory's
    name (an entry's key: a reader of the entry waits for its writer)."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f"tmp-{os.getpid()}-{tag}-" if tag else
                               f"tmp-{os.getpid()}-", dir=root)
        w = _Writer(tmp)
        body = fill(w)
        body["files"] = w.files
        _write_manifest(tmp, body)
        ok = _publish(root, tmp, final, replace)
        tmp = None
        return ok
    except Unstorable:
        return False
    except Exception as exc:  # the cache never fails a command
        _warn(f"{root}: {_describe_os_error(exc)}: not cached")
        return False
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# -- the entry of one load -----------------------------------------------------------------------

class Entry:
    """The cache entry of one input read with one set of options."""

    def __init__(self, root, key, ident, options):
        self.root = root
        self.dir = os.path.join(root, "entries", key)
        self.ident = ident            # {"kind": "file", fingerprint...} or {"kind": "stdin", ...}
        self.options = options
        self.model_have = None        # the model tables stored (IV | CO | SW bits), or None
        self._model = None            # weakref to the model to store at exit
        self._tables = {}             # derived tables to store at exit: dir -> (name, key, value, dump)

    def _stale_reason(self, body):
        if body.get("layout") != LAYOUT_VERSION or body.get("version") != _version():
            return (f"the entry was written by ftrace_fast {body.get('version')} "
                    f"(layout {body.get('layout')})")
        old = body.get("input", {})
        for k, what in (("size", "its size"), ("mtime_ns", "its modification time"),
                        ("inode", "its inode"), ("edges_sha256", "its content"),
                        ("sha256", "its content")):
            if old.get(k) != self.ident.get(k):
                return f"the input changed since it was cached ({what})"
        return None

    def _wait_for_writer(self):
        """Wait while another live process writes this entry (a command's forked writer):
        reading it then is cheaper than parsing the input again."""
        key = os.path.basename(self.dir)
        deadline = time.monotonic() + WRITER_WAIT_S
        while not os.path.isdir(self.dir) and time.monotonic() < deadline:
            try:
                names = os.listdir(self.root)
            except OSError:
                return
            pids = set()
            for n in names:
                parts = n.split("-")
                if n.startswith("tmp-") and len(parts) > 3 and parts[2] == key:
                    with contextlib.suppress(ValueError):
                        pids.add(int(parts[1]))
            pids.discard(os.getpid())
            if not any(_pid_alive(p) for p in pids):
                return
            time.sleep(0.02)

    def read(self, name):
        """The cached Trace, or None (a stale or damaged entry is removed, with one line)."""
        if not os.path.isdir(self.dir):
            self._wait_for_writer()
        try:
            body = read_manifest(self.dir)
            reason = self._stale_reason(body)
            if reason is None:
                r = _Reader(self.dir, body["files"])
                r.check()
                t = _trace_from(body["trace"], r)
        except FileNotFoundError:
            return None
        except (Damaged, KeyError, TypeError, ValueError, OSError) as exc:
            reason = f"the entry is damaged ({exc})" if isinstance(exc, Damaged) else \
                f"the entry cannot be read ({type(exc).__name__}: {exc})"
        if reason is not None:
            _warn(f"{name}: {reason}: parsing it again")
            with contextlib.suppress(OSError):
                _remove(self.dir, self.root)
            return None
        with contextlib.suppress(OSError):
            os.utime(self.dir)        # the LRU clock
        self.model_have = self._model_have()
        t.source = name
        return t

    def write(self, t):
        def fill(w):
            return {"layout": LAYOUT_VERSION, "version": _version(), "input": self.ident,
                    "options": self.options, "created": time.time(),
                    "trace": _trace_body(t, w)}
        # read() removed a stale entry: one there now is a racing writer's, equal to ours
        if _write_dir(self.root, self.dir, False, fill, tag=os.path.basename(self.dir)):
            evict(self.root, keep=self.dir)

    # -- derived tables (trace.STORED) -----------------------------------------------------------
    def _table_dir(self, name, key):
        """Where the table is kept, or None for a key that is no plain data."""
        try:
            return os.path.join(self.dir, "derived", _digest(name, _encode(key, None)))
        except (Unstorable, TypeError, ValueError):
            return None

    def load(self, trace, name, key, restore):
        """The stored derived table (name, key) of the trace, or trace.MISSING."""
        from .trace import MISSING
        if name == "sched.model":
            m = self.load_model(trace)
            if m is None:
                return MISSING
            self.keep_model(m)
            return m
        d = self._table_dir(name, key)
        if d is None:
            return MISSING
        try:
            body = read_manifest(d)
            if body.get("name") != name or body.get("key") != _encode(key, None):
                raise Damaged("it holds another table")
            r = _Reader(d, body["files"])
            r.check()
            v = _decode(body["value"], r)
            return v if restore is None else restore(trace, v)
        except FileNotFoundError:
            return MISSING
        except (Damaged, KeyError, TypeError, ValueError, OSError) as exc:
            _warn(f"{trace.source}: the stored table {name} cannot be used ({exc}): "
                  "computing it again")
            with contextlib.suppress(OSError):
                _remove(d, self.root)
            return MISSING

    def has(self, name, key):
        """Whether the entry holds the table (a damaged one is found out by load)."""
        if name == "sched.model":
            return self.model_have is not None
        d = self._table_dir(name, key)
        return d is not None and os.path.isdir(d)

    def keep(self, trace, name, key, value, dump):
        """Store a derived table the trace computed when the process ends."""
        if name == "sched.model":
            self.keep_model(value)
            return
        d = self._table_dir(name, key)
        if d is None:
            return
        # a copy as it is now: a caller may change a shared result in place later (the CLI
        # filters io_summary's threads) and the entry must hold what was computed
        state = copy.deepcopy(value if dump is None else dump(value))
        self._tables[d] = (name, key, state, None)
        if self not in _PENDING:
            _PENDING.append(self)

    def store_tables(self):
        tables, self._tables = self._tables, {}
        if not tables or not os.path.isdir(self.dir):
            return
        wrote = False
        for d, (name, key, value, dump) in tables.items():
            if os.path.isdir(d):
                continue          # another process stored it meanwhile

            def fill(w, name=name, key=key, value=value, dump=dump):
                return {"layout": LAYOUT_VERSION, "version": _version(), "name": name,
                        "key": _encode(key, None),
                        "value": _encode(value if dump is None else dump(value), w)}
            wrote |= _write_dir(self.root, d, False, fill)
        if wrote:
            evict(self.root, keep=self.dir)

    # -- the scheduling model --------------------------------------------------------------------
    def _model_have(self):
        try:
            return int(read_manifest(os.path.join(self.dir, "model"))["have"])
        except (OSError, Damaged, KeyError, TypeError, ValueError):
            return None

    def load_model(self, trace):
        """The stored scheduling model of the trace, or None."""
        from .sched import SchedModel
        d = os.path.join(self.dir, "model")
        try:
            body = read_manifest(d)
            r = _Reader(d, body["files"])
            r.check()
            wide = {k: np.dtype(v) for k, v in body.get("narrowed", {}).items()}
            state = {}
            for k, v in body["state"].items():
                if isinstance(v, str) and v.endswith(".npy"):
                    v = r.array(v)
                state[k] = v
            m = SchedModel._restore(trace, _WidenedOnRead(state, wide))
        except FileNotFoundError:
            return None
        except (Damaged, KeyError, TypeError, ValueError, OSError) as exc:
            _warn(f"{trace.source}: the stored scheduling model cannot be used ({exc}): "
                  "walking the trace again")
            with contextlib.suppress(OSError):
                _remove(d, self.root)
            self.model_have = None
            return None
        self.model_have = m._have
        return m

    def keep_model(self, m):
        """Store the model's tables when the process ends (by then the commands have asked
        for every table they read)."""
        self._model = weakref.ref(m)
        if self not in _PENDING:
            _PENDING.append(self)

    def _model_to_store(self):
        """The kept model when it has tables the entry does not hold yet, else None."""
        m = self._model() if self._model is not None else None
        if m is None or (self.model_have is not None and m._have & ~self.model_have == 0):
            return None
        return m

    def has_pending(self):
        """Whether store_model or store_tables has anything to write."""
        return bool(self._tables) or self._model_to_store() is not None

    def store_model(self):
        m = self._model_to_store()
        if m is None:
            return
        if not os.path.isdir(self.dir):
            return
        state = m._stored()

        def fill(w):
            narrowed, files = {}, {}
            for k, v in state.items():
                if isinstance(v, np.ndarray):
                    small = _narrow(v)
                    if small is not v:
                        narrowed[k] = v.dtype.str
                    v = w.array(small)
                files[k] = v
            return {"layout": LAYOUT_VERSION, "version": _version(), "have": int(m._have),
                    "state": files, "narrowed": narrowed}
        if _write_dir(self.root, os.path.join(self.dir, "model"), True, fill):
            self.model_have = m._have
            evict(self.root, keep=self.dir)


_PENDING = []
#: write a new entry beside the command (the CLI sets it): in a forked process on Linux,
#: else on a thread; at exit the model and tables to store into an entry are handed to a
#: forked child, which waits for the entry's writer (flush), so the command waits for neither
BACKGROUND = False
_WRITERS = []      # threads
_CHILDREN = []     # (pid, entry) of forked writers
#: how long a load waits for another process writing the entry it wants (seconds)
WRITER_WAIT_S = 120.0


def _write_beside(entry, t):
    """Write a new entry while the command goes on.  A forked child writes it, so that a
    command that finishes first (info) exits without waiting for 1x its arrays' bytes to go
    through the page cache; the child's output goes to /dev/null, so the parent checks first
    that the cache directory takes a temporary directory (one warning if not)."""
    if hasattr(os, "fork") and sys.platform.startswith("linux"):
        try:
            os.makedirs(os.path.dirname(entry.dir), exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=f"tmp-{os.getpid()}-", dir=entry.root))
        except OSError as exc:
            _warn(f"{entry.root}: {_describe_os_error(exc)}: not cached")
            return
        try:
            pid = os.fork()
        except OSError:
            pid = None
        if pid == 0:                          # the writer: never returns
            code = 1
            try:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                entry.write(t)
                code = 0
            finally:
                os._exit(code)
        if pid is not None:
            _CHILDREN.append((pid, entry))
            return
    w = threading.Thread(target=entry.write, args=(t,), name="ftfast-cache-write")
    w.start()
    _WRITERS.append(w)


class _WidenedOnRead(dict):
    """Columns read from an entry, those stored narrow (_narrow) widened on their first read:
    a run that never reads a table pays no copy of it.  part(prefix): the columns under a
    prefix, alike."""

    def __init__(self, data, wide):
        super().__init__(data)
        self._wide = {k: dt for k, dt in wide.items() if k in data}
        self._lock = threading.Lock()

    def __getitem__(self, k):
        if k in self._wide:
            with self._lock:        # the KVM figures read tables on two threads
                dt = self._wide.pop(k, None)
                if dt is not None:
                    dict.__setitem__(self, k, dict.__getitem__(self, k).astype(dt))
        return dict.__getitem__(self, k)

    def __setitem__(self, k, v):
        with self._lock:
            self._wide.pop(k, None)
            dict.__setitem__(self, k, v)

    def get(self, k, default=None):
        return self[k] if k in self else default

    # every way to read the values goes through __getitem__ (dict.update and dict(x) take
    # the slow path that does once __iter__ is not dict's)
    def __iter__(self):
        return iter(list(dict.keys(self)))

    def items(self):
        return [(k, self[k]) for k in list(dict.keys(self))]

    def values(self):
        return [self[k] for k in list(dict.keys(self))]

    def part(self, prefix):
        n = len(prefix)
        return _WidenedOnRead({k[n:]: dict.__getitem__(self, k) for k in list(dict.keys(self))
                               if k.startswith(prefix)},
                              {k[n:]: dt for k, dt in self._wide.items() if k.startswith(prefix)})


def _narrow(a):
    """An integer table column (task, CPU indices) in the smallest integer type that holds
    it: the model's index columns fit in int8 or int16 and would make most of an entry's
    bytes past the event arrays.  Read back widened (a copy of a few MB)."""
    if a.dtype.kind != "i" or a.dtype.itemsize < 4 or a.size < 4096:
        return a
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a


def flush():
    """Finish the entries being written, then store the scheduling models and the derived
    tables built on cached traces (called at exit)."""
    while _WRITERS:
        _WRITERS.pop().join()
    writers = [(pid, entry) for pid, entry in _CHILDREN if entry in _PENDING]
    _CHILDREN.clear()
    if not any(e.has_pending() for e in _PENDING):
        _PENDING.clear()
        return
    if BACKGROUND and _store_after(writers):
        return
    for pid, _ in writers:                    # the entry has to be there before we store into it
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
    _store_pending()


def _store_after(writers):
    """Store the pending models and tables from a forked child once the entries' writers are
    done, so that the command exits now (it would wait for 1x its arrays' bytes to be
    written, and for the tables' own).  The child's marker directory in each cache directory
    it stores into tells readers (and tests) a writer is live."""
    roots = sorted({e.root for e in _PENDING})
    try:
        go_r, go_w = os.pipe()
    except OSError:
        return False
    try:
        pid = os.fork()
    except OSError:
        os.close(go_r)
        os.close(go_w)
        return False
    markers = [os.path.join(r, f"tmp-{pid if pid else os.getpid()}-store") for r in roots]
    if pid == 0:
        code = 1
        try:
            os.close(go_w)
            os.read(go_r, 1)                  # the parent has made the marker (or died)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            deadline = time.monotonic() + WRITER_WAIT_S
            # a writer is done when its entry is published (or it died without one)
            while any(not os.path.isdir(e.dir) and _pid_alive(w) for w, e in writers) and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            _store_pending()
            code = 0
        finally:
            for m in markers:
                shutil.rmtree(m, ignore_errors=True)
            os._exit(code)
    # the parent names the child's marker before it may go, so no reader sees neither writer
    os.close(go_r)
    for m in markers:
        with contextlib.suppress(OSError):
            os.mkdir(m)
    os.close(go_w)
    _PENDING.clear()
    return True


def _store_pending():
    while _PENDING:
        e = _PENDING.pop()
        try:
            e.store_model()
        except Exception as exc:  # the cache never fails a command
            _warn(f"the scheduling model was not stored ({type(exc).__name__}: {exc})")
        try:
            e.store_tables()
        except Exception as exc:  # the cache never fails a command
            _warn(f"the derived tables were not stored ({type(exc).__name__}: {exc})")


atexit.register(flush)


def _stdin_entry(root, options):
    """Spool stdin into the cache directory, hashing it: (path of the copy, its sha256)."""
    os.makedirs(root, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"tmp-{os.getpid()}-stdin-", dir=root)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                data = sys.stdin.buffer.read(1 << 20)
                if not data:
                    break
                h.update(data)
                f.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path, h.hexdigest()


def load(source, options, *, cache, parse, strict, warn):
    """load() through the cache: parse(path) reads the input (path: the source, or a copy
    of stdin).  cache: None (the default rule), True (always), False is handled by the
    caller."""
    from .trace import ParseError
    root = cache_dir()
    spool = None
    try:
        is_path = isinstance(source, (str, bytes, os.PathLike))
        if is_path and os.fspath(source) in ("-", b"-"):
            if cache is not True:
                return parse(source)
            try:
                spool, sha = _stdin_entry(root, options)
            except OSError as exc:
                _warn(f"{root}: {_describe_os_error(exc)}: not cached")
                return parse(source)
            ident = {"kind": "stdin", "sha256": sha}
            name = "<stdin>"
        elif is_path:
            try:
                fp = fingerprint(source)
            except OSError:
                fp = None      # the parser says what is wrong with the input
            scale = _COMPRESSION_RATIO if fp is not None and fp["compressed"] else 1
            if fp is None or (cache is not True and fp["size"] * scale < min_bytes()):
                return parse(source)
            ident = {"kind": "file", **fp}
            name = os.fsdecode(source)
        else:
            return parse(source)
        key = _digest(ident["kind"], ident.get("path") or ident.get("sha256"), options)
        entry = Entry(root, key, ident, options)
        t = entry.read(name)
        if t is None:
            t = parse(spool or source)
            t.source = name
            if BACKGROUND:
                t._derived.backing = entry
                _write_beside(entry, t)
            else:
                entry.write(t)
                if os.path.isdir(entry.dir):
                    t._derived.backing = entry
        else:
            t._derived.backing = entry
            if strict and t.errors:
                raise ParseError(t.errors[0])
            if warn and t.stats.malformed:
                import warnings
                first = "; ".join(e.message for e in t.errors[:3])
                warnings.warn(
                    f"{t.source}: {t.stats.malformed} malformed line(s) of {t.stats.lines} "
                    f"(see Trace.errors): {first}", stacklevel=3)
        return t
    finally:
        if spool is not None:
            with contextlib.suppress(OSError):
                os.unlink(spool)


# -- size bound, listing, clearing ---------------------------------------------------------------

def _dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _sweep(root):
    """Remove what killed writers and interrupted removals left (tmp-*, trash-*)."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    now = time.time()
    for n in names:
        p = os.path.join(root, n)
        if n.startswith("trash-"):
            shutil.rmtree(p, ignore_errors=True)
        elif n.startswith("tmp-"):
            try:
                pid = int(n.split("-")[1])
                age = now - os.lstat(p).st_mtime
            except (ValueError, IndexError, OSError):
                continue
            if pid != os.getpid() and (not _pid_alive(pid) or age > 24 * 3600) \
                    and age > _STALE_TMP_S:
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(p)


def entries(root=None):
    """Every entry: dicts of dir, input, options, bytes, created, used (epoch s), ok."""
    root = root or cache_dir()
    base = os.path.join(root, "entries")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    out = []
    for n in names:
        d = os.path.join(base, n)
        try:
            used = os.stat(d).st_mtime
        except OSError:
            continue
        row = {"dir": d, "input": None, "options": None, "bytes": _dir_bytes(d),
               "created": None, "used": used, "ok": True, "model": False}
        try:
            body = read_manifest(d)
            ident = body["input"]
            row["input"] = ident.get("path") if ident.get("kind") == "file" else "<stdin>"
            row["options"] = body.get("options")
            row["created"] = body.get("created")
            row["model"] = os.path.isdir(os.path.join(d, "model"))
        except (OSError, Damaged, KeyError, TypeError, AttributeError):
            row["ok"] = False
        out.append(row)
    return out


def evict(root=None, keep=None, limit=None):
    """Remove the least recently used entries until the cache holds at most ``limit`` bytes
    (FTFAST_CACHE_MAX); ``keep`` (the entry just written) goes last.  Returns the removed."""
    root = root or cache_dir()
    _sweep(root)
    limit = max_bytes() if limit is None else limit
    rows = entries(root)
    total = sum(r["bytes"] for r in rows)
    removed = []
    for r in sorted(rows, key=lambda r: (r["dir"] == keep, r["used"])):
        if total <= limit:
            break
        if _remove(r["dir"], root):
            removed.append(r)
        total -= r["bytes"]
    return removed


def clear(path=None, root=None):
    """Remove every entry, or those of one input file.  Returns the removed entries."""
    root = root or cache_dir()
    want = os.path.realpath(path) if path is not None else None
    removed = []
    for r in entries(root):
        if want is None or r["input"] == want:
            if _remove(r["dir"], root):
                removed.append(r)
    if want is None:
        _sweep(root)
    return removed
