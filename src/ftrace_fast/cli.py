"""The ``ftfast`` command line: argument parsing and formatting only (the figures come from
``ftrace_fast.load``, ``ftrace_fast.sched`` and ``ftrace_fast.kvm``).

Exit codes:

0   success (also when a reader such as ``head`` closes the output pipe early)
1   internal error: an unexpected exception (a bug: the line names it; please report it)
2   bad usage: unknown option, bad --comm regex, bad --pid/--tgid/--cpu list (or a number out
    of range), bad time or --start after --end, --sort column that no table has, --tgid on a
    trace without a TGID column, a negative --top, a threshold that is NaN, infinite or
    negative
3   the input cannot be read as ftrace text: missing, a directory, unreadable, empty, binary
    (a trace-cmd ``trace.dat``, a ``perf.data``), no line is an event, or a section needs
    sched_switch and the trace has none
4   the output cannot be written (a missing directory, a directory, no space, the input file
    itself, stdout closed)
5   a malformed line with --strict
6   out of memory
130 interrupted (Ctrl-C, SIGINT)
143 terminated (SIGTERM)

Errors are one line on stderr (``ftfast: ...``), never a traceback; text from the trace in
any human-readable output (tables, errors, notes) has its control characters escaped
(``ftrace_fast._text.printable``), JSON and CSV keep it exact.  Output files are written to
a temporary name beside the target and renamed on success (``ftrace_fast._output``): an
error, Ctrl-C or SIGTERM leaves the old file or none, never half of one; a device, FIFO or
symlink target is written through.  The JSON written by ``--format json`` is documented in
docs/json-schema.md.
"""

from __future__ import annotations

import argparse
import collections.abc
import contextlib
import json
import math
import os
import re
import sys
import warnings

import numpy as np

from . import __version__, _fmt, _group
from ._output import Terminated, atomic_output, remove_temporaries, terminate_as_exception
from ._source import InputError
from ._text import printable
from .trace import ParseError, _time_arg, load

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4
EXIT_STRICT = 5
EXIT_NOMEM = 6
EXIT_INTERRUPTED = 130          # 128 + SIGINT
EXIT_TERMINATED = 143           # 128 + SIGTERM
#: the largest pid or tgid load() takes (larger numbers cannot be in a trace)
PID_MAX = 1 << 30

#: version of the --format json documents (docs/json-schema.md)
JSON_SCHEMA = 1


class CliError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)} (see '{self.prog} --help')\n")


def _check_counts(args):
    """--top and --errors: one rule for every command: 0 means all (--top) or none (--errors),
    a negative count is refused (it meant "all" to stats and diagnose, an error to the rest)."""
    for name, what in (("top", "0 (all)"), ("errors", "0")):
        v = getattr(args, name, None)
        if v is not None and v < 0:
            raise CliError(f"--{name} must be {what} or more", EXIT_USAGE)


# -- filters -------------------------------------------------------------------------------------

def _int_list(s, what, maximum=None):
    """`0,2-4` -> [0, 2, 3, 4]; CliError on anything else (numbers past ``maximum`` too)."""
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise CliError(f"bad {what} list {s!r}: {part!r} is not a number or a range a-b",
                           EXIT_USAGE)
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise CliError(f"bad {what} list {s!r}: empty range {part!r}", EXIT_USAGE)
        if maximum is not None and b > maximum:
            raise CliError(f"bad {what} list {s!r}: {b} out of range (at most {maximum})",
                           EXIT_USAGE)
        if b - a > 1 << 22:
            raise CliError(f"bad {what} list {s!r}: range {part!r} too large", EXIT_USAGE)
        out.extend(range(a, b + 1))
    if not out:
        raise CliError(f"bad {what} list {s!r}: no number in it", EXIT_USAGE)
    return sorted(set(out))


def _ticks(v):
    """`--start 12345ticks`: the trace's own unit (ticks of an integer clock), which load()
    takes as an int; `12345ns` is the same number."""
    m = re.fullmatch(r"\s*(\d+)\s*ticks?\s*", v) if isinstance(v, str) else None
    return f"{m.group(1)}ns" if m else v


class Selection:
    """The filters of a command line, checked before any input is read."""

    def __init__(self, args):
        g = lambda name: getattr(args, name, None)  # noqa: E731
        self.pids = _int_list(g("pid"), "--pid", PID_MAX) if g("pid") is not None else None
        self.tgids = _int_list(g("tgid"), "--tgid", PID_MAX) if g("tgid") is not None else None
        self.cpus = _int_list(g("cpu"), "--cpu") if g("cpu") is not None else None
        if self.cpus is not None and self.cpus[-1] >= 1 << 16:
            raise CliError(f"bad --cpu list {g('cpu')!r}: CPU {self.cpus[-1]} out of range",
                           EXIT_USAGE)
        self.comm_text = g("comm")
        self.comm = None
        if self.comm_text is not None:
            try:
                self.comm = re.compile(self.comm_text)
            except re.error as exc:
                raise CliError(f"bad --comm regex {self.comm_text!r}: {exc}", EXIT_USAGE) from None
        self.start_text, self.end_text = g("start"), g("end")
        self.start, self.end = _ticks(g("start")), _ticks(g("end"))
        try:
            self.start_ns = _time_arg(self.start, "--start")
            self.end_ns = _time_arg(self.end, "--end")
        except ValueError as exc:
            raise CliError(f"bad time: {exc}", EXIT_USAGE) from None
        if self.start_ns is not None and self.end_ns is not None and self.start_ns > self.end_ns:
            raise CliError(f"bad time range: --start {self.start} is after --end {self.end}",
                           EXIT_USAGE)
        self.events = None
        if g("events") is not None:
            self.events = [e.strip() for e in g("events").split(",") if e.strip()]
            if not self.events:
                raise CliError(f"bad --events list {g('events')!r}: no event name in it",
                               EXIT_USAGE)

    @property
    def tasks_restricted(self):
        return self.pids is not None or self.tgids is not None or self.comm is not None

    @property
    def figures_restricted(self):
        """--start, --end or --cpu: restricted figures, which read every table of the walk."""
        return self.start is not None or self.end is not None or self.cpus is not None

    def as_json(self):
        return {"comm": self.comm_text, "pids": self.pids, "tgids": self.tgids,
                "cpus": self.cpus, "start": self.start_text, "end": self.end_text,
                "events": self.events}


def _add_filters(p):
    p.add_argument("more_files", nargs="*", metavar="MORE",
                   help="more traces on the same clock, each its own machine (a host and its guest)")
    g = p.add_argument_group("filters")
    g.add_argument("--machine", metavar="NAME",
                   help="one machine of a host+guest trace (see 'ftfast info')")
    g.add_argument("--comm", metavar="REGEX",
                   help="tasks whose comm the regex finds (searched anywhere in the name)")
    g.add_argument("--pid", metavar="LIST", help="threads by pid, e.g. 1234,1240-1250")
    g.add_argument("--tgid", metavar="LIST",
                   help="processes: every thread of these thread-group ids (needs the "
                        "record-tgid column)")
    g.add_argument("--cpu", metavar="LIST", help="CPUs, e.g. 0,2-3")
    g.add_argument("--start", metavar="T", help="from this time: seconds, or 250ms / 10us / 100ns; "
                                                "12345ticks for integer clocks")
    g.add_argument("--end", metavar="T", help="up to this time (inclusive)")
    g.add_argument("--events", metavar="LIST", help="event names, comma separated")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed line (exit 5)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary on stderr")
    _add_cache_options(p)


def _add_cache_options(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cache", dest="cache", action="store_const", const=True, default=None,
                   help="keep the parsed arrays in the cache even for stdin and files under "
                        "64 MiB (see 'ftfast cache')")
    g.add_argument("--no-cache", dest="cache", action="store_const", const=False,
                   help="neither read nor write the cache")


# -- input ---------------------------------------------------------------------------------------

def _lines_json(t):
    """The line accounting of a trace as the JSON documents carry it."""
    s = t.stats
    return {"total": s.lines, "events": s.events, "headers": s.headers, "filtered": s.filtered,
            "malformed": s.malformed}


def _read(path, args, note_malformed=False, **kw):
    """load() with the command line's errors: InputError -> 3, ParseError -> 5.
    ``note_malformed``: say on stderr (one line) how many lines were malformed, since the
    analyses' output does not show it."""
    kw.setdefault("strict", getattr(args, "strict", False))
    kw.setdefault("progress", False if getattr(args, "quiet", False) else None)
    spooled = args.file == "-" and path != "-"
    name = "<stdin>" if args.file == "-" else path
    # a spooled copy of stdin has a temporary name: no key to find it by later
    kw.setdefault("cache", False if spooled else getattr(args, "cache", None))
    # set by a caller that runs commands in parallel itself (a fleet task: one core each)
    kw.setdefault("threads", getattr(args, "load_threads", None))
    from . import climachine
    try:
        t = climachine.load_cached(args, path, kw)
    except InputError as exc:
        raise CliError(str(exc).replace(path, name) if spooled else str(exc), EXIT_INPUT) from None
    except ParseError as exc:
        raise CliError(f"{name}: {exc} (--strict)", EXIT_STRICT) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if spooled:
        t.source = name
    if t.stats.lines == 0:
        raise CliError(f"{name}: empty input", EXIT_INPUT)
    if t.stats.events == 0 and t.stats.malformed and t.stats.filtered == 0:
        first = t.errors[0].message if t.errors else ""
        raise CliError(f"{name}: not ftrace text: no line of {t.stats.lines} is an event "
                       f"({first})", EXIT_INPUT)
    if note_malformed and t.stats.malformed and not getattr(args, "quiet", False):
        first = f" (first: {t.errors[0].message})" if t.errors else ""
        print(printable(f"ftfast {args.command}: note: {t.stats.malformed} of {t.stats.lines} "
                        f"lines are malformed and were skipped{first}; 'ftfast info' lists "
                        "them"), file=sys.stderr)
    return climachine.select(t, args)


@contextlib.contextmanager
def _input_path(path, twice):
    """The input as a path that can be read ``twice``: stdin is then kept in a temporary
    file for the command's duration."""
    if path != "-" or not twice:
        yield path
        return
    import shutil
    import tempfile
    from ._source import stdin_buffer
    try:
        stdin = stdin_buffer()
    except InputError as exc:
        raise CliError(str(exc), EXIT_INPUT) from None
    spool = tempfile.NamedTemporaryFile(prefix="ftfast-stdin-", delete=False)
    try:
        try:
            shutil.copyfileobj(stdin, spool, 1 << 20)
        except OSError as exc:
            raise CliError(f"<stdin>: cannot read: {exc.strerror or exc}", EXIT_INPUT) from None
        finally:
            spool.close()
        yield spool.name
    finally:
        os.unlink(spool.name)


def _tgid_pids(t, tgids):
    """sched.tgid_pids (D12) with the command line's error."""
    from .sched import tgid_pids
    try:
        return tgid_pids(t, tgids)
    except ValueError:
        raise CliError(f"{t.source}: --tgid needs the record-tgid column, which this trace does "
                       "not have (record with 'echo 1 > options/record-tgid', or select threads "
                       "with --pid)", EXIT_USAGE) from None


def _task_pids(t, sel):
    """The pids --pid and --tgid select on ``t`` (None: every task)."""
    if sel.tgids is None:
        return sel.pids
    tp = _tgid_pids(t, sel.tgids)
    return tp if sel.pids is None else sorted(set(tp) & set(sel.pids))


def _load_pids(path, sel, args):
    """The pids to give load(): --pid, and the threads of --tgid found in a first pass."""
    if sel.tgids is None:
        return sel.pids
    return _task_pids(_read(path, args), sel)


def _load_filtered(path, sel, args, **kw):
    """The input with every filter applied while parsing (info, filter)."""
    pids = _load_pids(path, sel, args)
    return _read(path, args, events=sel.events, cpus=sel.cpus, pids=pids, comm=sel.comm,
                 start=sel.start, end=sel.end, **kw)


def _fmt_ts(t, v):
    return _fmt.timestamp(v, t.time_unit)


# -- info ----------------------------------------------------------------------------------------

def cmd_info(args, out):
    from . import climachine
    sel = Selection(args)
    args._ftfast_all = True      # a trace of several machines lists them
    with _input_path(args.file, twice=sel.tgids is not None) as path:
        if sel.pids is None and sel.tgids is None and sel.comm is None and _is_dat(path):
            # info shows counts, times and CPUs: a trace.dat's payload fields need no decoding
            t = _read(path, args, events=sel.events, cpus=sel.cpus, start=sel.start,
                      end=sel.end, _dat_fields=False)
        else:
            t = _load_filtered(path, sel, args)
    span = t.span
    cpus = t.cpus()
    info = {
        "schema": JSON_SCHEMA,
        "source": {"file": t.source, "compression": t.compression,
                   "format": t.format_description(), "clock": t.clock,
                   "time_unit": t.time_unit},
        "filters": sel.as_json(),
        "cpus": cpus,
        "span": None if span is None else {"first": span[0], "last": span[1],
                                           "duration": span[1] - span[0]},
        "lines": _lines_json(t),
        "events": {k: len(v) for k, v in sorted(t.events.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "lost": [{"cpu": int(r["cpu"]), "line": int(r["line"]), "count": int(r["count"])}
                 for r in t.lost],
        "malformed": [{"line": e.line, "message": e.message} for e in t.errors[:args.errors]],
    }
    if args.machine is not None:
        info["source"]["machine"] = args.machine
    if len(t.machines) > 1:
        info["machines"] = climachine.machines_table(t)
    if t.dat is not None:
        info["source"]["dat"] = t.dat.as_json()
    if args.format == "json":
        _dump_json(info, out)
        return 0
    w = out.write
    w(f"file:      {printable(t.source)}" + (f" ({t.compression})" if t.compression else "")
      + "\n")
    w(f"format:    {printable(t.format_description())}\n")
    for key, text in (t.dat.info_lines() if t.dat is not None else ()):
        w(printable(f"{key + ':':<10} {text}") + "\n")
    w(f"clock:     {t.clock} (times in {'seconds' if t.time_unit == 'ns' else 'ticks'})\n")
    if args.machine is not None:
        w(f"machine:   {args.machine}\n")
    multi = len(t.machines) > 1
    if multi:
        climachine.write_machines(out, t)    # CPUs and spans per machine: never merged
    else:
        w(f"cpus:      {len(cpus)} ({_fmt.ranges(cpus)})\n")
    if span and not multi:
        w(f"span:      {_fmt_ts(t, span[0])} .. {_fmt_ts(t, span[1])} "
          f"({_fmt_ts(t, span[1] - span[0])}{' s' if t.time_unit == 'ns' else ' ticks'})\n")
    s = t.stats
    w(f"lines:     {s.lines}: {s.events} events, {s.headers} header/comment, "
      f"{s.filtered} filtered, {s.malformed} malformed\n")
    if len(t.lost):
        tot = int(t.lost["count"].sum())
        w(f"lost:      {tot} events in {len(t.lost)} marker(s): " + ", ".join(
            f"CPU {r['cpu']} at line {r['line']} ({r['count']})" for r in t.lost[:5])
          + (", ..." if len(t.lost) > 5 else "") + "\n")
    else:
        w("lost:      none\n")
    w("\n  count  event\n")
    for name, n in info["events"].items():
        w(f"{n:7d}  {printable(name)}\n")
    if t.errors:
        w(f"\nmalformed lines (first {min(len(t.errors), args.errors)} of {s.malformed}):\n")
        for e in t.errors[:args.errors]:
            w(f"  {printable(e.message)}\n")
    return 0


def _is_dat(path):
    from . import tracedat
    return tracedat.is_tracedat(path)


# -- tables ------------------------------------------------------------------------------------

def _fmt_cell(v):
    """A table cell as text; trace text (comms) with its control characters escaped."""
    if isinstance(v, float):
        return f"{v:.1f}" if v == v else "-"
    if v is None:
        return "-"
    return printable(str(v))


def _write_table(out, title, columns, rows):
    """An aligned text table: numbers right-aligned, text left-aligned."""
    cells = [[_fmt_cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r[c], (int, float)) or r[c] is None for r in rows) for c in columns]
    if title:
        out.write(f"\n{printable(title)}\n")
    out.write("  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(columns, widths, numeric)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric)).rstrip() + "\n")
    if not rows:
        out.write("(none)\n")


def _write_csv(out, title, columns, rows):
    import csv
    out.write(f"# {title}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([r[c] if r[c] is not None else "" for c in columns])
    out.write("\n")


# -- stats ---------------------------------------------------------------------------------------

#: section key (JSON) -> its command-line flag's dest
SECTIONS = {"cpus": "cpu_stats", "tasks": "task_stats", "latency": "latency",
            "wakeups": "wakeup_stats", "switches": "switch_stats", "migrations": "migrations",
            "kvm": "kvm"}
#: the events a line-count section reads (sections needing the scheduling model read them all)
_LINE_EVENTS = {"wakeups": ("sched_waking", "sched_wakeup"), "switches": ("sched_switch",),
                "migrations": ("sched_migrate_task",)}
_MODEL_SECTIONS = ("cpus", "tasks", "latency")
_LAT_KEYS = ("lat_count", "lat_mean_ns", "lat_p50_ns", "lat_p90_ns", "lat_p99_ns", "lat_max_ns",
             "lat_max_ts")


def _py(v):
    if isinstance(v, _Rows):
        return v.all()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _dump_json(doc, out):
    """``doc`` as indented JSON and a newline, written in blocks of about 1 MiB.  A table (a
    list of row objects) has one row per line, each encoded by the C encoder: the indenting
    encoder is pure Python, some 100 s for the 385 MB document of 300,000 tasks."""
    buf, size = [], 0
    for chunk in _json_chunks(doc, 0):
        buf.append(chunk)
        size += len(chunk)
        if size >= 1 << 20:
            out.write("".join(buf))
            buf, size = [], 0
    buf.append("\n")
    out.write("".join(buf))


#: compact, C-accelerated (no indent): one table row per call
_ROW_JSON = json.JSONEncoder(default=lambda v: _py(v), allow_nan=False, separators=(", ", ": "))


def _json_chunks(v, level):
    """The JSON text of ``v`` at indentation ``level``, as json.dump(indent=1) lays it out,
    except that the rows of a table take one line each."""
    pad = " " * (level + 1)
    if isinstance(v, _Rows) or (isinstance(v, list) and len(v) > 1 and
                                all(isinstance(r, dict) for r in v)):
        rows = v.all() if isinstance(v, _Rows) else v
        if not rows:
            yield "[]"
            return
        yield "[\n"
        last = len(rows) - 1
        for i, r in enumerate(rows):
            yield pad + _ROW_JSON.encode(r) + (",\n" if i < last else "\n")
        yield " " * level + "]"
    elif isinstance(v, dict) and v:
        yield "{\n"
        last = len(v) - 1
        for i, (k, x) in enumerate(v.items()):
            yield pad + json.dumps(str(k)) + ": "
            yield from _json_chunks(x, level + 1)
            yield ",\n" if i < last else "\n"
        yield " " * level + "}"
    else:
        # a scalar or a small value: the standard layout, shifted to this level (a JSON
        # string holds no raw newline, so every newline is layout)
        yield json.dumps(v, indent=1, default=_py, allow_nan=False).replace("\n", "\n" + " " * level)


def _id_rank(names, ids):
    """The rank of each comm id of ``ids`` in the string order of their names (``names``:
    trace.comms), sorting only the distinct ids present."""
    if not len(ids):
        return np.zeros(0, np.int64)
    u, inv = np.unique(ids, return_inverse=True)
    text = [names[i] if 0 <= i < len(names) else "" for i in u.tolist()]
    by_text = sorted(range(len(u)), key=text.__getitem__)
    rank = np.empty(len(u), np.int64)
    # equal names (an id -1 and "") share a rank
    r = 0
    for k, j in enumerate(by_text):
        if k and text[j] != text[by_text[k - 1]]:
            r += 1
        rank[j] = r
    return rank[inv.reshape(-1)]


def _text_rank(values):
    """Each string's rank in Python's string order (equal strings, equal ranks)."""
    if not len(values):
        return np.zeros(0, np.int64)
    v = np.asarray(values, dtype=object)
    return np.unique(np.where(v == None, "", v), return_inverse=True)[1].reshape(-1)  # noqa: E711


def _ordered(cols, key, tiebreak, nulls=None, ranks=None):
    """Row order of a table held as columns, as _sort orders dicts: by ``key`` descending
    (numbers; NaN and ``nulls[key]`` rows last) or ascending (text), then the ``tiebreak``
    columns ascending.  One lexsort; ``ranks``: the string order of text columns when the
    caller has it (from comm ids, see _id_rank)."""
    n = len(next(iter(cols.values())))
    ranks = ranks or {}

    def text(c):
        return ranks[c] if c in ranks else _text_rank(cols[c])
    keys = [text(c) if np.asarray(cols[c]).dtype == object else cols[c]
            for c in reversed(tiebreak)]
    if key is not None:
        v = np.asarray(cols[key])
        if v.dtype == object:
            keys.append(text(key))
        else:
            null = np.isnan(v) if v.dtype.kind == "f" else np.zeros(n, bool)
            if nulls and key in nulls:
                null = null | nulls[key]
            keys.append(-np.where(null, 0, v))
            keys.append(null)
    return np.lexsort(keys) if keys else np.arange(n)


class _Rows(collections.abc.Sequence):
    """A table's rows, made into dicts only when read: a table of a million tasks prints its
    top 20 rows without building a million dicts (JSON and csv read them all).

    ``cols``: name -> array (object arrays for text); ``order``: row positions in table
    order; ``finish(rows, idx)``: fills the derived keys of freshly made rows in place."""

    def __init__(self, cols, order=None, finish=None):
        self.cols = cols
        n = len(next(iter(cols.values()))) if cols else 0
        self.order = np.arange(n) if order is None else np.asarray(order)
        self.finish = finish
        self._all = None

    def _make(self, idx):
        rows = _group.dicts(self.cols, idx) if len(idx) else []
        if self.finish is not None and rows:
            self.finish(rows, idx)
        return rows

    def all(self):
        if self._all is None:
            self._all = self._make(self.order)
        return self._all

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        if self._all is not None:
            return self._all[i]
        if isinstance(i, slice):
            return self._make(self.order[i])
        return self._make(self.order[[i]])[0]

    def __iter__(self):
        return iter(self.all())

    def __eq__(self, other):
        return list(self) == list(other)

    def sorted_by(self, key, tiebreak, nulls=None):
        """The same rows in another order (see _ordered)."""
        return _Rows(self.cols, _ordered(self.cols, key, tiebreak, nulls), self.finish)


def _no_latency(r):
    """Latency columns of a task without samples: null, not -1."""
    if not r.get("lat_count"):
        for k in _LAT_KEYS[1:]:
            if k in r:
                r[k] = None
    return r


def _no_rows(**cols):
    return _Rows({c: np.zeros(0, dtype) for c, dtype in cols.items()})


def _wakeup_rows(t, source, sel, pids, sort=None):
    """{comm, count, threads, pids: [{pid, count}]} per woken comm of sched.wakeup_counts, by
    count (or ``sort``: count, comm, threads), then comm."""
    from . import sched
    c = sched.wakeup_counts(t, source=source, start=sel.start, end=sel.end, cpus=sel.cpus,
                            pids=pids, comm=sel.comm)
    if not len(c):
        return _no_rows(comm=object, count=np.int64, threads=np.int64)
    cid, pid, n = c["comm_id"], c["pid"], c["count"]
    ucid, start, threads = np.unique(cid, return_index=True, return_counts=True)
    cols = {"comm": t.comm_names(ucid), "count": np.add.reduceat(n, start), "threads": threads}
    ranks = {"comm": _id_rank(t.comms, ucid)}
    by_count = np.lexsort((pid, -n, cid))     # each comm's pairs stay where they were

    def finish(rows, idx):
        for r, lo, m in zip(rows, start[idx].tolist(), threads[idx].tolist()):
            seg = by_count[lo:lo + m]
            r["pids"] = [{"pid": p, "count": k} for p, k in zip(pid[seg].tolist(),
                                                                 n[seg].tolist())]
    return _Rows(cols, _ordered(cols, sort or "count", ["comm"], ranks=ranks), finish)


def _switch_rows(t, sel, pids, sort=None):
    """sched.switch_counts as printed, by switches_in (or ``sort``), then comm and pid."""
    from . import sched
    c = sched.switch_counts(t, start=sel.start, end=sel.end, cpus=sel.cpus, pids=pids,
                            comm=sel.comm)
    table = {k: c[k] for k in ("comm", "pid", "switches_in", "voluntary", "involuntary",
                               "switches_out_D")}
    ranks = {"comm": _id_rank(t.comms, c["comm_id"])}
    return _Rows(table, _ordered(table, sort or "switches_in", ["comm", "pid"], ranks=ranks))


def _migration_rows(t, sel, pids, sort=None):
    """sched.migration_counts as printed, by count (or ``sort``), then pid and comm."""
    from . import sched
    c = sched.migration_counts(t, start=sel.start, end=sel.end, cpus=sel.cpus, pids=pids,
                               comm=sel.comm)
    table = {k: c[k] for k in ("count", "pid", "comm")}
    return _Rows(table, _ordered(table, sort or "count", ["pid", "comm"],
                                 ranks={"comm": _id_rank(t.comms, c["comm_id"])}))


def _sort(rows, key, tiebreak):
    """Rows by key descending (numbers; None last) or ascending (text), then tiebreak."""
    if key is None:
        return rows
    if any(isinstance(r[key], str) for r in rows):
        return sorted(rows, key=lambda r: (r[key] or "", tiebreak(r)))
    return sorted(rows, key=lambda r: (r[key] is None, -(r[key] or 0), tiebreak(r)))


class _Stats:
    """What each section of ``ftfast stats`` reads: the trace, the command line, the filters
    and the pids they select; the task summary is made once for the tasks and latency
    sections."""

    def __init__(self, t, args, sel, pids):
        self.t, self.args, self.sel, self.pids = t, args, sel, pids
        self.unit = t.time_unit
        self.rng = dict(start=sel.start, end=sel.end)
        self._summary = None

    def sort_in(self, columns):
        """--sort when it names one of ``columns``, else None (that table keeps its order)."""
        return self.args.sort if self.args.sort in columns else None

    def summary(self):
        from . import sched
        if self._summary is None:
            self._summary = sched.task_summary(self.t, cpus=self.sel.cpus, pids=self.pids,
                                               comm=self.sel.comm, **self.rng)
        return self._summary


# each section: _Stats -> ({JSON key: value}, [(section, title, columns, rows)])

def _cpus_section(c):
    from . import sched
    rows = _group.records(sched.cpu_summary(c.t, cpus=c.sel.cpus, **c.rng))
    for r in rows:
        for k in ("irq_ns", "softirq_ns"):
            if r[k] == -1:
                r[k] = None
    rows = _sort(rows, c.sort_in(dict(sched.CPU_FIELDS)), lambda r: r["cpu"])
    return {"cpus": rows}, [("cpus", "CPUs (times in " + c.unit + ")",
                             ["cpu", "busy_ns", "idle_ns", "unknown_ns", "utilization_pct",
                              "switches", "irq_ns", "softirq_ns"], rows)]


def _tasks_section(c):
    from . import sched
    s = c.summary()
    m = sched.model(c.t)

    def finish(rows, idx):
        names = m.names_of([r["pid"] for r in rows])
        for r, nm in zip(rows, names):
            _no_latency(r)
            if r["tgid"] < 0:
                r["tgid"] = None
            r["comms"] = nm or [r["comm"]]
            r["wakeup_latency"] = {"count": r["lat_count"], "mean_ns": r["lat_mean_ns"],
                                   "p50_ns": r["lat_p50_ns"], "p90_ns": r["lat_p90_ns"],
                                   "p99_ns": r["lat_p99_ns"], "max_ns": r["lat_max_ns"],
                                   "max_at": r["lat_max_ts"]}
    cols = {n: s[n] for n in s.dtype.names}
    # the values the rows show as null sort last, as null
    nulls = {k: s["lat_count"] == 0 for k in _LAT_KEYS[1:]}
    nulls["tgid"] = s["tgid"] < 0
    key = c.sort_in(dict(sched.TASK_FIELDS)) or "run_ns"
    rows = _Rows(cols, _ordered(cols, key, ["pid"], nulls), finish)
    return {"tasks": rows}, [("tasks", "Tasks (times in " + c.unit + ")",
                              ["pid", "tgid", "comm", "run_ns", "wait_ns", "sleep_ns",
                               "blocked_ns", "switches_in", "inferred_switch_ins", "preemptions",
                               "wakeups", "migrations", "lat_p99_ns", "lat_max_ns"], rows)]


def _latency_section(c):
    from . import sched
    a, sel, summary = c.args, c.sel, c.summary()
    lat = sched.wakeup_latencies(c.t, source=a.latency_from, cpus=sel.cpus, pids=c.pids,
                                 comm=sel.comm, **c.rng)
    cols = ["pid", "comm", "run_ns", "switches_in", "lat_count", "lat_mean_ns",
            "lat_p50_ns", "lat_p90_ns", "lat_p99_ns", "lat_max_ns", "lat_max_ts"]
    if a.latency_from == "wakeup":
        # latency_table's rows and order, without copying every column of every task
        order = sched.latency_order(summary, a.latency_sort)
        order = order[summary["lat_count"][order] > 0]
        table = {k: summary[k][order] for k in cols}
    else:
        lt = sched.latency_table(c.t, source=a.latency_from, sort=a.latency_sort,
                                 cpus=sel.cpus, pids=c.pids, comm=sel.comm, summary=summary,
                                 **c.rng)
        lt = lt[lt["lat_count"] > 0]
        table = {k: lt[k] for k in cols}
    rows = _Rows(table, _ordered(table, a.sort, ["pid"]) if a.sort in cols else None)
    g = dict(sched.latency_stats(lat["latency_ns"]), source="sched_" + a.latency_from)
    return {"latency": dict(g, tasks=rows)}, [
        ("latency", f"Wakeup latency from sched_{a.latency_from}: {g['count']} "
         f"samples, mean {_fmt_cell(g['mean_ns'])}, p50 {_fmt_cell(g['p50_ns'])}, "
         f"p90 {_fmt_cell(g['p90_ns'])}, p99 {_fmt_cell(g['p99_ns'])}, "
         f"max {_fmt_cell(g['max_ns'])} ({c.unit})",
         ["pid", "comm", "run_ns", "switches_in", "lat_count", "lat_mean_ns",
          "lat_p99_ns", "lat_max_ns", "lat_max_ts"], rows)]


def _wakeups_section(c):
    t = c.t
    src = "waking" if c.args.wakeups_from == "waking" else "wakeup"
    if src == "waking" and not t.count("sched_waking") and t.count("sched_wakeup"):
        src = "wakeup"      # a trace without sched_waking: count what there is
    ev = "sched_" + src
    rows = _wakeup_rows(t, src, c.sel, c.pids, c.sort_in(("count", "comm", "threads")))
    return {"wakeups": rows, "wakeups_event": ev}, [
        ("wakeups", f"Wakeups ({ev} lines per woken comm)", ["count", "threads", "comm"], rows)]


def _switches_section(c):
    cols = ["switches_in", "voluntary", "involuntary", "switches_out_D", "pid", "comm"]
    rows = _switch_rows(c.t, c.sel, c.pids, c.sort_in(cols))
    return {"switches": rows}, [
        ("switches", "Context switches (sched_switch lines per comm and pid as printed; out: "
         "voluntary = prev_state not R/R+, involuntary = R/R+)", cols, rows)]


def _migrations_section(c):
    rows = _migration_rows(c.t, c.sel, c.pids, c.sort_in(("count", "pid", "comm")))
    return {"migrations": rows}, [("migrations", "Migrations (sched_migrate_task lines per task)",
                                   ["count", "pid", "comm"], rows)]


def _kvm_stats_section(c):
    doc, tables = _kvm_section(c.t, c.sel, c.pids, c.unit)
    return {"kvm": doc}, tables


def _stats_input(args, sel):
    """The trace ``ftfast stats`` reads and the sections it shows: (trace, sections, whether
    they need the scheduling model)."""
    chosen = [s for s, dest in SECTIONS.items() if getattr(args, dest, False)]
    overview = not chosen
    if overview:
        chosen = list(SECTIONS)
    need_model = any(s in _MODEL_SECTIONS for s in chosen)
    events = sel.events
    if not need_model and sel.tgids is None and "kvm" not in chosen:
        # line counts only: read just those events (the rest is skipped, not parsed)
        want = {e for s in chosen for e in _LINE_EVENTS[s]}
        events = sorted(want if events is None else (want & set(events)) or events)
    # every other filter restricts the figures, not what is read: the analysis needs every
    # task's and CPU's lines to know who runs where (a filtered load changes run/wait times)
    t = _read(args.file, args, note_malformed=True, events=events)
    has_sched = "sched_switch" in t.events and len(t.events["sched_switch"]) > 0
    from . import sched
    tables = getattr(args, "model_tables", 0)
    if need_model and sel.figures_restricted:
        tables |= sched.ALL         # restricted figures read every table of the walk
    if has_sched and tables:
        sched.model(t, intervals=tables)    # one walk for the sums, the tables and the charts
    if overview and "kvm" in chosen:
        from . import kvm
        if not len(kvm.topology(t).vcpu_pids):
            chosen.remove("kvm")      # the overview shows KVM figures only for a KVM host
    if need_model and not has_sched:
        if overview:
            need_model = False
            chosen = [s for s in chosen if s not in _MODEL_SECTIONS]
        else:
            raise CliError(f"{t.source}: no sched_switch events: --task-stats, --cpu-stats and "
                           "--latency need sched:sched_switch"
                           + (" (not in --events)" if sel.events else ""), EXIT_INPUT)
    return t, chosen, need_model


def stats_document(args):
    """Run ``ftfast stats``: (trace, doc, tables).  doc is the --format json document;
    tables is [(section, title, columns, rows)] for the table and csv formats."""
    from . import sched
    sel = Selection(args)
    t, chosen, need_model = _stats_input(args, sel)
    pids = _task_pids(t, sel)
    if "kvm" in chosen:
        from . import kvm
        # the model with the exits paired beside its walk
        kvm.prepare(t, sel.figures_restricted)
    w = sched.window(t) if need_model else (t.span or (0, 0))
    doc = {"schema": JSON_SCHEMA,
           "source": {"file": t.source, "format": t.format_description(), "clock": t.clock,
                      "time_unit": t.time_unit,
                      "window": {"start": w[0], "end": w[1], "duration": w[1] - w[0]}},
           "filters": sel.as_json(), "lines": _lines_json(t)}
    caveats = list(sched.caveats(t)) if need_model else []
    if not need_model and len(t.lost):
        caveats.append(f"{int(t.lost['count'].sum())} events were lost "
                       f"({len(t.lost)} LOST markers): the counts are lower bounds")
    if (sel.start_ns is not None and sel.start_ns > w[1]) or \
            (sel.end_ns is not None and sel.end_ns < w[0]):
        caveats.append(f"--start/--end select nothing: the trace runs from {_fmt_ts(t, w[0])} "
                       f"to {_fmt_ts(t, w[1])}")
    doc["caveats"] = caveats
    ctx = _Stats(t, args, sel, pids)
    tables = []
    for section in chosen:
        part, shown = _SECTION_BUILDERS[section](ctx)
        doc.update(part)
        tables.extend(shown)
    if args.sort is not None and not _sortable(args.sort, [c for _, _, c, _ in tables], doc):
        raise CliError(f"--sort: no table shown has a column {args.sort!r} (tasks: run_ns, "
                       "wait_ns, blocked_ns, switches_in, lat_max_ns, ...; cpus: "
                       "utilization_pct; switches: voluntary, involuntary; wakeups: count)",
                       EXIT_USAGE)
    return t, doc, tables


def _kvm_section(t, sel, pids, unit):
    """The --kvm section: (kvm.host_summary, tables).  --pid/--tgid/--comm select vCPU and
    I/O rows; --cpu/--start/--end restrict the figures as for the other sections."""
    from . import kvm
    doc = kvm.host_summary(t, start=sel.start, end=sel.end, cpus=sel.cpus, pids=pids,
                           comm=sel.comm)
    rows, io = doc["vcpus"], doc["io"]
    tables = []
    vrows = [dict(d, exits_n=d["exits_total"]["count"], halts_n=(d["halts"] or {}).get("count"),
                  lat_p99_ns=(d["wakeup_latency"] or {}).get("p99_ns")) for d in rows]
    tables.append(("kvm_vcpus", f"vCPU threads (times in {unit}; steal = wait / (run + wait))",
                   ["vm", "vcpu", "pid", "comm", "run_ns", "wait_ns", "steal_pct", "sleep_ns",
                    "blocked_ns", "guest_ns", "handling_ns", "exits_n", "halts_n", "lat_p99_ns",
                    "main_cpu"], vrows))
    if "kvm_exit" in t.events and len(t.events["kvm_exit"]) > 0:
        er = [dict(r, vm=v["vm"]) | {"reason": reason} for v in doc["vms"] if v["exits"]
              for reason, r in sorted(v["exits"].items(), key=lambda kv: -kv[1]["count"])]
        tables.append(("kvm_exits", f"Exits per VM and reason (handling: kvm_exit to the next "
                       f"kvm_entry without a switch-out; times in {unit})",
                       ["vm", "reason", "count", "rate_per_s", "handled", "mean_ns", "p50_ns",
                        "p99_ns", "max_ns", "switched_out"], er))
    nrows = [{"vcpu_pid": d["pid"], "vcpu_comm": d["comm"], "pid": n["pid"], "comm": n["comm"],
              "stolen_ns": n["stolen_ns"], "share_pct": 100.0 * n["stolen_ns"] / d["wait_ns"]
              if d["wait_ns"] else None, "same_vm": n["same_vm"]}
             for d in rows for n in d["neighbours"][:5]]
    if nrows:
        tables.append(("kvm_neighbours", f"Noisy neighbours: who ran on the CPU a vCPU waited "
                       f"for (top 5 per vCPU; {unit})",
                       ["vcpu_pid", "vcpu_comm", "pid", "comm", "stolen_ns", "share_pct",
                        "same_vm"], nrows))
    if io["threads"]:
        tables.append(("kvm_io_threads", f"QEMU I/O and other threads ({unit})",
                       ["vm", "role", "pid", "comm", "run_ns", "wait_ns", "sleep_ns", "blocked_ns",
                        "blocked_count", "longest_blocked_ns", "wakeups"], io["threads"]))
    if io["devices"]:
        tables.append(("kvm_block", f"Block requests, issue to complete ({unit})",
                       ["device", "issued", "completed", "paired", "bytes", "latency_mean_ns",
                        "latency_p50_ns", "latency_p99_ns", "latency_max_ns"], io["devices"]))
    return doc, tables


#: section key -> the function that builds it, in the order the document holds them
_SECTION_BUILDERS = {"cpus": _cpus_section, "tasks": _tasks_section,
                     "latency": _latency_section, "wakeups": _wakeups_section,
                     "switches": _switches_section, "migrations": _migrations_section,
                     "kvm": _kvm_stats_section}


def _sortable(key, table_columns, doc):
    from . import sched
    if any(key in cols for cols in table_columns):
        return True
    if "tasks" in doc and key in dict(sched.TASK_FIELDS):
        return True
    if "cpus" in doc and key in dict(sched.CPU_FIELDS):
        return True
    return key in ("lat_p50_ns", "lat_p90_ns") and "latency" in doc


def cmd_stats(args, out):
    from . import climachine
    if args.guest:
        return climachine.cmd_guest_stats(args, out)
    try:
        t, doc, tables = stats_document(args)
    except climachine.MultiMachine as exc:
        return climachine.cmd_stats(args, out, exc.trace)
    climachine.mark(args, doc)
    if args.format == "json":
        _dump_json(doc, out)
        return 0
    top = args.top if args.top is not None else (20 if args.format == "table" else 0)
    cut = (lambda rows: rows[:top]) if top and top > 0 else (lambda rows: rows)
    if args.format == "csv":
        for section, _, cols, rows in tables:
            if section == "latency":
                g = doc["latency"]
                _write_csv(out, "latency_global", ["source", "count", "mean_ns", "p50_ns", "p90_ns",
                                                   "p99_ns", "max_ns"], [g])
                section = "latency_tasks"
                cols = ["pid", "comm", "run_ns", "switches_in", "lat_count", "lat_mean_ns",
                        "lat_p50_ns", "lat_p90_ns", "lat_p99_ns", "lat_max_ns", "lat_max_ts"]
            elif section == "tasks":
                first = rows[0] if rows else None
                cols = [c for c in first if not isinstance(first[c], (dict, list))] if first \
                    else cols
            elif section == "wakeups":
                # tidy: one row per (comm, pid)
                rows = [{"comm": r["comm"], "pid": x["pid"], "count": x["count"]}
                        for r in rows for x in r["pids"]]
                cols = ["comm", "pid", "count"]
            _write_csv(out, section, cols, cut(rows))
        return 0
    w = doc["source"]["window"]
    out.write(f"{printable(t.source)}: {printable(t.format_description())}; clock {t.clock}; window "
              f"{_fmt_ts(t, w['start'])} .. {_fmt_ts(t, w['end'])}\n")
    for c in doc["caveats"]:
        out.write(f"note: {printable(c)}\n")
    for _, title, cols, rows in tables:
        shown = cut(rows)
        if len(shown) < len(rows):
            title += f"; top {len(shown)} of {len(rows)}"
        _write_table(out, title, cols, shown)
    return 0


# -- diagnose ------------------------------------------------------------------------------------

#: --option -> (Thresholds field, help)
_THRESHOLD_OPTS = {
    "--steal-pct": ("steal_pct", "a vCPU waiting this share of its runnable time, %%"),
    "--stack-pct": ("stack_pct", "share of a vCPU's wait behind vCPUs of its own VM, %%"),
    "--min-wait-ms": ("min_wait_ms", "ignore vCPUs that waited less than this, ms"),
    "--exit-rate": ("exit_rate", "exits of one reason per second on one vCPU"),
    "--exit-p99-us": ("exit_p99_us", "p99 handling time of a non-HLT exit reason, µs"),
    "--min-exits": ("min_exits", "judge exit latency only with this many timed exits"),
    "--wakeup-p99-us": ("wakeup_p99_us", "vCPU wakeup-to-run latency p99, µs"),
    "--io-blocked-ms": ("io_blocked_ms", "longest D (blocked) stretch of an I/O thread, ms"),
    "--io-blocked-pct": ("io_blocked_pct", "D share of the window of an I/O thread, %%"),
    "--block-p99-ms": ("block_p99_ms", "block device issue-to-complete p99, ms"),
    "--busy-pct": ("busy_pct", "a CPU this busy (%%) ..."),
    "--idle-pct": ("idle_pct", "... while another idles this much (%%)"),
    "--overcommit-pct": ("overcommit_pct", "share of the window with more runnable vCPUs than CPUs, %%"),
}


def _add_thresholds(parser, title):
    """The diagnose thresholds as options (diagnose, report)."""
    g = parser.add_argument_group(title)
    defaults = _threshold_defaults()
    for opt, (field, hlp) in _THRESHOLD_OPTS.items():
        g.add_argument(opt, dest=field, type=float, metavar="X",
                       help=f"{hlp} (default {getattr(defaults, field):g})")


def _threshold_defaults():
    from .options import Thresholds
    return Thresholds()


def cmd_diagnose(args, out):
    from . import kvm
    sel = Selection(args)
    th = _thresholds(args)
    # the analysis needs every task's lines (who ran while a vCPU waited): filters select
    # findings, they do not thin the input
    from . import climachine
    try:
        t = _read(args.file, args, note_malformed=True, events=sel.events)
    except climachine.MultiMachine as exc:
        return climachine.cmd_diagnose(args, out, exc.trace, th, sel)
    pids = _task_pids(t, sel)
    found = _select_findings(t, kvm.diagnose(t, th, start=sel.start, end=sel.end, cpus=sel.cpus),
                             pids, sel.comm)
    if args.top:
        found = found[:args.top]
    w = kvm._window(t)
    if args.format == "json":
        doc = {"schema": JSON_SCHEMA,
               "source": {"file": t.source, "format": t.format_description(), "clock": t.clock,
                          "time_unit": t.time_unit, "window": {"start": w[0], "end": w[1],
                                                        "duration": w[1] - w[0]}},
               "filters": sel.as_json(), "lines": _lines_json(t), "thresholds": vars(th),
               "findings": found}
        climachine.mark(args, doc)
        _dump_json(doc, out)
        return 0
    out.write(f"{printable(t.source)}: {printable(t.format_description())}; clock {t.clock}; window "
              f"{_fmt_ts(t, w[0])} .. {_fmt_ts(t, w[1])}\n")
    write_findings(out, found)
    return 0


def write_findings(out, found):
    """Findings as text, most severe first (a finding about one machine of several names it),
    then the caveats as notes; text from the trace escaped for the terminal."""
    real = [f for f in found if f["kind"] != "caveat"]
    out.write(f"\n{len(real)} finding{'s' if len(real) != 1 else ''}, most severe first"
              + (" (none past the thresholds)" if not real else "") + "\n")
    for n, f in enumerate(real, 1):
        where = f["subject"].get("machine")
        out.write("\n" + printable(f"{n:2d}. [{f['severity']}] {f['kind']}"
                                   + (f" ({where})" if where else "") + f": {f['explanation']}")
                  + "\n")
        ev = ", ".join(f"{k}={_fmt_cell(v)}" for k, v in f["evidence"].items()
                       if not isinstance(v, (list, dict)))
        if ev:
            out.write(printable(f"    evidence: {ev}") + "\n")
    notes = [f for f in found if f["kind"] == "caveat"]
    if notes:
        out.write("\n")
        for f in notes:
            out.write(f"note: {printable(f['explanation'])}\n")


# -- filter --------------------------------------------------------------------------------------

def _check_output(output, src):
    """Refuse an output that cannot be written before reading the input."""
    if output == "-":
        return
    if os.path.isdir(output):
        raise CliError(f"cannot write {output}: is a directory", EXIT_OUTPUT)
    if src != "-" and os.path.exists(output) and os.path.exists(src) \
            and os.path.samefile(output, src):
        raise CliError(f"cannot write {output}: it is the input file", EXIT_OUTPUT)
    d = os.path.dirname(os.path.abspath(output))
    if os.path.exists(output):
        if not os.access(output, os.W_OK):
            raise CliError(f"cannot write {output}: permission denied", EXIT_OUTPUT)
    elif not os.path.isdir(d):
        raise CliError(f"cannot write {output}: no such directory {d}", EXIT_OUTPUT)
    elif not os.access(d, os.W_OK):
        raise CliError(f"cannot write {output}: permission denied", EXIT_OUTPUT)


@contextlib.contextmanager
def _output(path, mode, out):
    """The file a command writes: stdout for "-" (``out``, the command's stdout), else
    :func:`ftrace_fast._output.atomic_output` (a temporary file beside the target renamed on
    success; a device, FIFO or symlink target written through).  A failed write is exit 4;
    a reader closing the pipe is left to main (exit 0)."""
    if path == "-":
        if out is None:
            raise CliError("cannot write an image to stdout: give a file name", EXIT_USAGE)
        out.flush()
        f = out.binary() if "b" in mode else out
        yield f
        f.flush()
        return
    try:
        with atomic_output(path, mode) as f:
            yield f
    except BrokenPipeError:
        raise                       # a FIFO whose reader went away: as a closed stdout pipe
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_OUTPUT) from None


class _WriteFailed(Exception):
    """An OSError of the output met inside the loader (which reads OSErrors as the input's)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _TextOut:
    """Where ``ftfast filter`` writes the kept text as the parser hands it over.  A file is
    published only on success (_output); on stdout (hold) nothing is written before the
    first event is kept, so that an input that is no ftrace text writes nothing there."""

    def __init__(self, dst, hold):
        self.dst = dst
        self.held = [] if hold else None

    def __call__(self, pieces, parser):
        if self.held is not None:
            self.held += pieces
            if not parser.events:
                return
            pieces, self.held = self.held, None
        try:
            for piece in pieces:
                self.dst.write(memoryview(piece))
        except OSError as exc:      # a full disk, a reader gone: the load stops here
            raise _WriteFailed(exc) from None

    def close(self, rest):
        """The text not handed over while parsing (a cached load hands over none)."""
        pieces = (self.held or []) + list(rest or [])
        self.held = None
        for piece in pieces:
            self.dst.write(memoryview(piece))


def cmd_filter(args, out):
    sel = Selection(args)
    if args.machine is not None or args.more_files:
        raise CliError("ftfast filter copies lines of one input as they are, every machine's: "
                       "--machine and more input files do not apply", EXIT_USAGE)
    args._ftfast_all = True
    _check_output(args.output, args.file)
    # the kept lines are written while parsing: the input is read twice only for --tgid
    with _input_path(args.file, twice=sel.tgids is not None) as path:
        with _output(args.output, "wb", out) as dst:
            text = _TextOut(dst, hold=args.output == "-")
            try:
                t = _load_filtered(path, sel, args, keep_text=True, records=False,
                                   _text_sink=text)
            except _WriteFailed as exc:
                # out of the loader, whose own OSErrors are the input's
                raise exc.error from None
            text.close(t.kept_text)
    kept = t.stats.events + t.stats.headers
    if not args.quiet:
        print(f"ftfast filter: kept {kept} of {t.stats.lines} lines ({t.stats.events} events, "
              f"{t.stats.headers} header lines); {t.stats.filtered} filtered out, "
              f"{t.stats.malformed} malformed dropped", file=sys.stderr)
    return 0


# -- plot / export -------------------------------------------------------------------------------

def _analysis_input(args, sel, need):
    """The whole trace for a plot or an export (the filters restrict the figures, as in
    ``stats``) and the pids of --pid/--tgid; CliError 3 when an event it ``need``s is absent."""
    t = _read(args.file, args, note_malformed=True, events=sel.events)
    present = [e for e in need if t.count(e)]
    if not present:
        what = f"ftfast {args.command}" + (f" --kind {args.kind}" if args.command == "plot" else "")
        raise CliError(f"{t.source}: no {' or '.join(need)} events: {what} needs "
                       + " or ".join(("kvm:" if e.startswith("kvm_") else "sched:") + e
                                     for e in need)
                       + (" (not in --events)" if sel.events else ""), EXIT_INPUT)
    pids = _task_pids(t, sel)
    return t, pids


def _bin_ns(v):
    try:
        ns = _time_arg(_ticks(v), "--bin")
    except ValueError as exc:
        raise CliError(f"bad --bin: {exc}", EXIT_USAGE) from None
    if ns is None or ns <= 0:
        raise CliError(f"bad --bin {v!r}: the bin width must be positive", EXIT_USAGE)
    return ns


def _notes(args, notes):
    if not getattr(args, "quiet", False):
        for n in notes:
            print(printable(f"ftfast {args.command}: note: {n}"), file=sys.stderr)


#: the options each plot kind takes beyond the time and CPU filters (a kind not listed takes
#: only those)
_PLOT_OPTIONS = {"cpu-util": {"bin"}, "timeline": {"tasks", "top"},
                 "latency": {"tasks", "top", "group", "latency_from"},
                 "switches": {"tasks", "top", "bin"}, "wakeups": {"tasks", "top", "bin", "wakeups_from"},
                 "kvm-exits": {"tasks", "top", "bin"}}


def cmd_plot(args, out):
    from . import plot as plotmod
    sel = Selection(args)
    try:
        plotmod.output_format(args.output)
    except ValueError as exc:
        raise CliError(f"-o: {exc}", EXIT_USAGE) from None
    takes = _PLOT_OPTIONS.get(args.kind, set())
    given = {"tasks": sel.tasks_restricted, "top": args.top is not None, "bin": args.bin is not None,
             "group": args.group is not None, "latency_from": args.latency_from is not None,
             "wakeups_from": args.wakeups_from is not None}
    flag = {"tasks": "--comm/--pid/--tgid", "top": "--top", "bin": "--bin", "group": "--group",
            "latency_from": "--latency-from", "wakeups_from": "--wakeups-from"}
    for k, v in given.items():
        if v and k not in takes:
            raise CliError(f"--kind {args.kind} does not take {flag[k]}", EXIT_USAGE)
    bin_ns = _bin_ns(args.bin) if args.bin is not None else None
    _check_output(args.output, args.file)
    need = plotmod.NEEDS[args.kind]
    from . import climachine
    try:
        t, pids = _analysis_input(args, sel, need)
    except climachine.MultiMachine as exc:
        return climachine.cmd_plot(args, exc.trace, sel)
    kw = dict(start=sel.start, end=sel.end, cpus=sel.cpus)
    if "tasks" in takes:
        kw.update(pids=pids, comm=sel.comm)
    if args.top is not None:
        kw["top"] = args.top
    if bin_ns is not None:
        kw["bin_ns"] = bin_ns
    if args.group is not None:
        kw["group"] = args.group
    if args.latency_from is not None:
        kw["source"] = args.latency_from
    if args.wakeups_from is not None:
        kw["source"] = args.wakeups_from
    try:
        p = plotmod.plot(t, args.kind, **kw)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    with _output(args.output, "wb", None) as f:
        p.save(f, format=plotmod.output_format(args.output))
    _notes(args, p.notes)
    if not args.quiet:
        print(printable(f"ftfast plot: wrote {args.output}"), file=sys.stderr)
    return 0


def cmd_export(args, out):
    from . import export
    sel = Selection(args)
    if args.max_events is not None and args.max_events < 1:
        raise CliError("--max-events must be at least 1", EXIT_USAGE)
    if args.parquet is not None or args.csv is not None:
        return _export_tables(args, sel)
    _check_output(args.perfetto, args.file)
    t, pids = _analysis_input(args, sel, ("sched_switch",))
    kw = dict(pids=pids, comm=sel.comm, start=sel.start, end=sel.end, cpus=sel.cpus,
              max_events=args.max_events or export.MAX_EVENTS)
    if args.top is not None:
        kw["top"] = args.top
    with _output(args.perfetto, "w", out) as f:
        r = export.perfetto(t, f, **kw)
    if r["truncated_at"] is not None:
        print(f"ftfast export: note: {r['would_have']} events exceed --max-events "
              f"{kw['max_events']}: the file stops at {_fmt_ts(t, r['truncated_at'])} "
              "(choose a part with --start/--end, or raise --max-events)", file=sys.stderr)
    if not args.quiet:
        print(printable(f"ftfast export: wrote {r['events']} events to {args.perfetto} "
                        f"({r['cpu_slices']} CPU slices, {r['task_slices']} task state slices, "
                        f"{r['guest_slices']} guest slices, {r['flows']} wakeup flows, "
                        f"{r['counters']} counter samples)"), file=sys.stderr)
    return 0


def _export_tables(args, sel):
    """export --parquet DIR / --csv DIR: the event and analysis tables (ftrace_fast.export)."""
    from . import export
    try:
        export._pyarrow("parquet" if args.parquet is not None else "csv")
    except ImportError:
        raise CliError(f"export --parquet/--csv needs pyarrow: {export.PARQUET_HINT}",
                       EXIT_USAGE) from None
    fmt, out_dir = ("parquet", args.parquet) if args.parquet is not None else ("csv", args.csv)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"cannot write {out_dir}: not a directory", EXIT_OUTPUT)
    t = _read(args.file, args, events=sel.events)
    pids = _task_pids(t, sel)
    try:
        meta = export.write_tables(t, out_dir, fmt, start=sel.start, end=sel.end, cpus=sel.cpus,
                                   pids=pids, comm=sel.comm)
    except OSError as exc:
        raise CliError(f"cannot write {out_dir}: {exc.strerror or exc}", EXIT_OUTPUT) from None
    if not args.quiet:
        print(f"ftfast export: wrote {len(meta['events'])} event tables and "
              f"{len(meta['tables'])} analysis tables to {out_dir}", file=sys.stderr)
    return 0


def cmd_cache(args, out):
    from . import cache
    root = cache.cache_dir()
    if args.action == "clear":
        removed = cache.clear(args.target)
        freed = sum(r["bytes"] for r in removed)
        out.write(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} "
                  f"({freed / 2**20:.1f} MiB) from {root}\n")
        return 0
    rows = cache.entries()
    now = __import__("time").time()
    total = sum(r["bytes"] for r in rows)
    out.write(f"{root}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, "
              f"{total / 2**20:.1f} MiB (limit {cache.max_bytes() / 2**30:.1f} GiB)\n")
    if not rows:
        return 0
    table = []
    for r in sorted(rows, key=lambda r: -r["used"]):
        opts = r["options"] or {}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(opts.items())
                          if v not in (None, False) and k != "records") or "-"
        if opts.get("records") is False:
            shown = "no records" if shown == "-" else shown + ", no records"
        age = now - (r["created"] or r["used"])
        table.append({"input": r["input"] or "(damaged entry)", "MiB": round(r["bytes"] / 2**20, 1),
                      "age": _age(age), "last used": _age(now - r["used"]),
                      "model": "yes" if r["model"] else "no", "options": shown})
    _write_table(out, None, ["input", "MiB", "age", "last used", "model", "options"], table)
    return 0


def _age(s):
    s = max(s, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"


def _add_plot_parsers(sub):
    from .options import PLOT_KINDS as KINDS
    s = sub.add_parser("plot", help="draw a chart: cpu-util, timeline, latency, switches, wakeups, "
                                    "kvm-exits",
                       description="Draw one chart of the trace as PNG, SVG or PDF.  Filters "
                                   "select what is drawn; the analysis reads every task's lines.")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("--kind", required=True, choices=list(KINDS),
                   help="cpu-util: per-CPU utilization heat map; timeline: task states "
                        "(default tasks: the vCPU threads, else the busiest); latency: wakeup "
                        "latency histogram and CDF; switches / wakeups: rates over time; "
                        "kvm-exits: VM exits per reason over time and their handling times")
    s.add_argument("-o", "--output", required=True, help="image file: .png, .svg or .pdf")
    s.add_argument("--top", type=int, metavar="N",
                   help="tasks (timeline: 20), groups (latency: 8), stacked tasks "
                        "(switches, wakeups: 8) or exit reasons (kvm-exits: 8) shown; 0: all")
    s.add_argument("--bin", metavar="T",
                   help="time bin (cpu-util, switches, wakeups, kvm-exits), e.g. 10ms")
    s.add_argument("--group", choices=("comm", "task", "process", "all"),
                   help="latency: group tasks by comm with numbers as N (default), per task, "
                        "per process or all together")
    s.add_argument("--latency-from", choices=("wakeup", "waking"))
    s.add_argument("--wakeups-from", choices=("waking", "wakeup"))
    _add_filters(s)
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("export", help="write a Chrome trace-event JSON for ui.perfetto.dev, or "
                                      "the events and analysis tables as Parquet or CSV",
                       description="--perfetto: CPU tracks, task state tracks, vCPU guest "
                                   "slices, utilization counters and wakeup flows as Chrome "
                                   "trace-event JSON (ui.perfetto.dev, chrome://tracing).  "
                                   "--parquet / --csv: a directory with one table per event, "
                                   "the analysis tables and meta.json (for DuckDB, pandas, "
                                   "Spark).")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    dest = s.add_mutually_exclusive_group(required=True)
    dest.add_argument("--perfetto", metavar="OUT.json", help="output file, or - for stdout")
    dest.add_argument("--parquet", metavar="DIR",
                      help="one Parquet file per event, the analysis tables (tasks, cpus, "
                           "latency; vcpus, exits, neighbours, findings on KVM hosts) and "
                           "meta.json (needs pyarrow: pip install 'ftrace_fast[parquet]')")
    dest.add_argument("--csv", metavar="DIR", help="the same tables as CSV files")
    s.add_argument("--top", type=int, metavar="N",
                   help="task tracks: the N busiest selected tasks (default 20; 0: all)")
    s.add_argument("--max-events", type=int, metavar="N",
                   help="at most N events (default 1000000): past it the file stops at the "
                        "time the limit is reached")
    _add_filters(s)
    s.set_defaults(func=cmd_export)


# -- report --------------------------------------------------------------------------------------

def _select_findings(t, found, pids, comm):
    """The findings about the selected tasks (--pid/--tgid/--comm), caveats kept."""
    if pids is None and comm is None:
        return found
    from .sched import comm_match
    cm = comm_match(t, comm) if comm is not None else None
    pids = None if pids is None else set(pids)

    def wanted(f):
        p = f["subject"].get("pid")
        if p is None:
            return f["kind"] == "caveat"
        return (pids is None or p in pids) and (cm is None or cm.name(f["subject"]["comm"]))
    return [f for f in found if wanted(f)]


def _thresholds(args):
    from . import kvm
    th = kvm.Thresholds()
    for opt, (field, _) in _THRESHOLD_OPTS.items():
        v = getattr(args, field)
        if v is not None:
            if not math.isfinite(v):
                # NaN turns every comparison false: the findings would silently change
                raise CliError(f"bad {opt} {v}: must be a finite number", EXIT_USAGE)
            if v < 0:
                raise CliError(f"bad {opt} {v}: must not be negative", EXIT_USAGE)
            setattr(th, field, v)
    return th


def cmd_report(args, out):
    from . import kvm, report
    sel = Selection(args)
    th = _thresholds(args)
    _check_output(args.output, args.file)
    # the tables are the `ftfast stats` overview's, from the same code
    st = argparse.Namespace(**vars(args))
    for dest in SECTIONS.values():
        setattr(st, dest, False)
    st.sort, st.latency_from, st.latency_sort, st.wakeups_from = None, "wakeup", "max", "waking"
    # the charts read task intervals and CPU occupancy, KVM host or not
    from . import sched
    st.model_tables = sched.IV | sched.CO
    from . import climachine
    with _input_path(args.file, twice=sel.tgids is not None) as path:
        st.file = path
        try:
            t, doc, tables = stats_document(st)
        except climachine.MultiMachine as exc:
            return climachine.cmd_report(args, st, exc.trace, th, sel)
    if args.file == "-":
        t.source = "<stdin>"
    pids = _task_pids(t, sel)
    found = _select_findings(t, kvm.diagnose(t, th, start=sel.start, end=sel.end, cpus=sel.cpus),
                             pids, sel.comm)
    charts = report.charts(t, start=sel.start, end=sel.end, cpus=sel.cpus, pids=pids,
                           comm=sel.comm)
    page = report.render(t, tables=tables, findings=found, charts=charts, caveats=doc["caveats"],
                         filters=sel.as_json(), top=20 if args.top is None else args.top,
                         latency=doc.get("latency"))
    with _output(args.output, "w", out) as f:
        f.write(page)
    if not args.quiet:
        drawn = [c.kind for c in charts if c.png is not None]
        real = [f for f in found if f["kind"] != "caveat"]
        print(printable(f"ftfast report: wrote {args.output} ({len(real)} findings, "
                        f"{len(tables)} tables, charts: {', '.join(drawn) or 'none'})"),
              file=sys.stderr)
    return 0


def _add_report_parser(sub):
    s = sub.add_parser("report", help="one self-contained HTML page: trace info, findings, "
                                      "tables and charts",
                       description="Write one HTML file that opens offline in any browser "
                                   "(charts embedded, no scripts, no external resources): the "
                                   "trace's info, the ranked findings of 'diagnose', the "
                                   "'stats' tables and the standard charts.  Filters select "
                                   "rows, findings and chart tasks; the analysis reads every "
                                   "task's lines.")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("-o", "--output", required=True, metavar="OUT.html",
                   help="the HTML file, or - for stdout")
    s.add_argument("--top", type=int, metavar="N", help="rows per table (default 20; 0: all)")
    _add_thresholds(s, "thresholds of the findings (as 'ftfast diagnose')")
    _add_filters(s)
    s.set_defaults(func=cmd_report)


#: ftfast's commands, as build_parser adds them
COMMANDS = ("info", "stats", "diagnose", "filter", "plot", "export", "report", "fleet", "diff",
            "cache")


class _Unbuilt:
    """A command's parser that will not parse: its options are not added."""

    def __getattr__(self, name):
        return self._ignore

    def _ignore(self, *args, **kwargs):
        return self


class _Commands:
    """build_parser's subparsers for one command: every command is listed (name and help),
    but only `only`'s options are added, most of a short command's start-up otherwise."""

    def __init__(self, sub, only):
        self.sub, self.only = sub, only

    def add_parser(self, name, **kwargs):
        s = self.sub.add_parser(name, **kwargs)
        return s if self.only is None or name == self.only else _Unbuilt()


def build_parser(only=None):
    """ftfast's argument parser; with only, one command's options (the others are listed)."""
    p = _Parser(prog="ftfast", description="Fast, exact analysis of ftrace text logs.",
                epilog="Exit codes: 0 success, 1 internal error, 2 bad usage, 3 unreadable or "
                       "non-ftrace input, 4 output not writable, 5 malformed line with --strict, "
                       "6 out of memory, 130 interrupted (SIGINT), 143 terminated (SIGTERM).")
    p.add_argument("--version", action="version", version=f"ftfast {__version__}")
    sub = _Commands(p.add_subparsers(dest="command", metavar="COMMAND"), only)
    s = sub.add_parser("info", help="format, clock, CPUs, span, events per name, lost and malformed lines")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--errors", type=int, default=10, metavar="N", help="malformed lines to show")
    _add_filters(s)
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("stats", help="per-task, per-CPU, wakeup, switch, latency and migration statistics",
                       description="Scheduling statistics.  Filters select rows (tasks, CPUs, "
                                   "time); the analysis always reads every task's lines.")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    g = s.add_argument_group("sections (default: all of them)")
    g.add_argument("--task-stats", action="store_true", help="run / wait / sleep / blocked per task")
    g.add_argument("--cpu-stats", action="store_true", help="busy / idle / utilization per CPU")
    g.add_argument("--wakeup-stats", action="store_true", help="wakeups received per woken comm")
    g.add_argument("--switch-stats", action="store_true", help="context switches per comm and pid")
    g.add_argument("--latency", action="store_true", help="wakeup latency, global and per task")
    g.add_argument("--migrations", action="store_true", help="sched_migrate_task per task")
    g.add_argument("--kvm", action="store_true",
                   help="vCPU threads: run / wait (steal) / halt, exits per reason, noisy "
                        "neighbours, I/O threads and block latency (in the overview on KVM hosts)")
    g.add_argument("--guest", action="store_true",
                   help="host + guest trace: each guest task's running time and wakeup latency "
                        "split by what the host did to its vCPU (in the overview of such a trace)")
    s.add_argument("--top", type=int, metavar="N",
                   help="rows per table (default 20 in tables, all in json/csv; 0: all)")
    s.add_argument("--sort", metavar="KEY",
                   help="sort every table that has this column by it, largest first "
                        "(default: tasks by run_ns, switches by switches_in, wakeups by count)")
    s.add_argument("--latency-from", choices=("wakeup", "waking"), default="wakeup")
    s.add_argument("--latency-sort", choices=("max", "mean", "runtime", "switches", "count"), default="max")
    s.add_argument("--wakeups-from", choices=("waking", "wakeup"), default="waking",
                   help="count sched_waking (default, as the classic pipeline) or sched_wakeup lines")
    s.add_argument("--format", choices=("table", "json", "csv"), default="table")
    _add_filters(s)
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("diagnose", help="ranked findings for a KVM host: vCPU steal and who took the "
                       "CPU, stacked vCPUs, exits, I/O, CPU imbalance",
                       description="Ranked findings, each with its evidence.  Filters select "
                                   "findings and restrict the figures (--cpu, --start, --end); "
                                   "the analysis reads every task's lines.")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--top", type=int, metavar="N", help="show the N most severe findings (0: all)")
    _add_thresholds(s, "thresholds")
    _add_filters(s)
    s.set_defaults(func=cmd_diagnose)

    s = sub.add_parser("filter", help="write the lines of selected tasks / CPUs / events / times as ftrace text",
                       description="Write the header and the selected event lines as ftrace text. "
                                   "A line is kept when its own task or a task named in its "
                                   "payload (prev/next, woken, migrated, forked, exiting) is "
                                   "selected by --comm / --pid / --tgid.")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("-o", "--output", required=True, help="output file, or - for stdout")
    _add_filters(s)
    s.set_defaults(func=cmd_filter)
    _add_plot_parsers(sub)
    _add_report_parser(sub)
    _add_fleet_parsers(sub)
    s = sub.add_parser("cache", help="list or remove the cached parsed traces",
                       description="Parsed traces are kept in $FTFAST_CACHE_DIR (else "
                                   "$XDG_CACHE_HOME/ftrace_fast, else ~/.cache/ftrace_fast), "
                                   "least recently used removed past FTFAST_CACHE_MAX "
                                   "(default 10G).")
    s.add_argument("action", choices=("info", "clear"),
                   help="info: the entries (input, size, age); clear: remove them")
    s.add_argument("target", nargs="?", metavar="FILE",
                   help="clear: only the entries of this input")
    s.set_defaults(func=cmd_cache)
    return p


# -- fleet and diff (ftrace_fast.fleet, fleet_sql, diff: parsing here, the work there) ----------

def _fleet_call(fn):
    """Run a fleet/diff command: without the [fleet] extra, exit 2 with the install line;
    FleetError becomes CliError."""
    def run(args, out):
        from .fleet import FleetError, require
        try:
            require()
            return fn(args, out)
        except FleetError as exc:
            raise CliError(str(exc), exc.code) from None
    return run


def _fleet_dispatch(name):
    def call(args, out):
        if name == "run":
            from .fleet import cmd_run as f
        elif name == "report":
            from .fleet_sql import cmd_report as f
        elif name == "query":
            from .fleet_sql import cmd_query as f
        else:
            from .diff import cmd_diff as f
        return f(args, out)
    return _fleet_call(call)


def _add_fleet_parsers(sub):
    s = sub.add_parser("fleet", help="many traces: analyse them on Dask into a Parquet store, rank "
                                     "them with DuckDB (needs the [fleet] extra)",
                       description="Analyse fleets of traces: 'run' writes each trace's stats and "
                                   "diagnose figures to a Parquet store (one Dask task per trace), "
                                   "'report' ranks the store, 'query' runs SQL on it.  Needs "
                                   "pip install 'ftrace_fast[fleet]'.")
    fs = s.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")

    def usage(args, out):
        s.print_help(sys.stderr)
        return EXIT_USAGE
    s.set_defaults(func=_fleet_call(usage))
    r = fs.add_parser("run", help="analyse traces into a store",
                      description="One Dask task per trace: load it, compute what 'ftfast stats "
                                  "--format json' and 'ftfast diagnose --format json' print, and "
                                  "write it as Parquet partitions STORE/<table>/host=<H>/trace=<ID>/"
                                  "part.parquet (ID: content hash).  Traces already in the store are "
                                  "skipped; a trace that cannot be read is a row of the failures view.")
    r.add_argument("traces", nargs="+", metavar="TRACE",
                   help="trace files, globs, directories (every file under them) or @list.txt")
    r.add_argument("--store", required=True, metavar="DIR",
                   help="the store: a directory, or an fsspec URL (s3://bucket/fleet, ...)")
    r.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local Dask cluster (default: the CPUs)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="use an existing Dask cluster, e.g. tcp://host:8786")
    r.add_argument("--host-from", metavar="REGEX",
                   help="the host of a trace: the regex's 'host' group, first group or match in "
                        "its path (default: the name of its directory)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    r.set_defaults(func=_fleet_dispatch("run"))
    r = fs.add_parser("report", help="fleet-wide rankings (DuckDB over the store)",
                      description="Worst vCPUs by steal and who took their CPU, hosts by overcommit "
                                  "and stacking, exit reasons that stand out (robust z-score), "
                                  "wakeup latency per host, findings per host and kind, failures.")
    r.add_argument("--store", required=True, metavar="DIR")
    r.add_argument("--top", type=int, metavar="N", help="rows per ranking (default 10; 0: all)")
    r.add_argument("--format", choices=("table", "json", "csv", "html"), default="table")
    r.set_defaults(func=_fleet_dispatch("report"))
    r = fs.add_parser("query", help="SQL over the store's views",
                      description="Run DuckDB SQL over the store's views (traces, tasks, cpus, "
                                  "vcpus, neighbours, exits, vm_exits, vms, findings, failures, "
                                  "...); --schema lists them with their columns and units.")
    r.add_argument("sql", nargs="?", help="the statement")
    r.add_argument("--store", required=True, metavar="DIR")
    r.add_argument("--format", choices=("table", "json", "csv"), default="table")
    r.add_argument("--schema", action="store_true", help="list the views and their columns")
    r.set_defaults(func=_fleet_dispatch("query"))

    d = sub.add_parser("diff", help="compare two traces (or two fleet stores) figure by figure",
                       description="Every figure of the per-task (matched by comm), per-comm-group, "
                                   "per-vCPU (VM and vCPU number), per-CPU and per-exit-reason "
                                   "tables of A and B side by side with the absolute and relative "
                                   "change, the largest change in time first; rows with fewer than "
                                   "--min-samples samples are flagged, not ranked.")
    d.add_argument("a", metavar="A", help="a trace file, or a fleet store")
    d.add_argument("b", metavar="B", help="a trace file, or a fleet store")
    d.add_argument("--format", choices=("table", "json", "csv"), default="table")
    d.add_argument("--top", type=int, metavar="N", help="rows shown in the table (default 30; 0: all)")
    d.add_argument("--min-samples", type=int, default=10, metavar="N",
                   help="rows with fewer samples (switches, wakeups, exits) in A or B are flagged")
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=_fleet_dispatch("diff"))


class _Out:
    """stdout for the commands: a failed write (no space, I/O error, stdout closed) becomes
    exit code 4; EPIPE stays BrokenPipeError (main: exit 0)."""

    def __init__(self, f):
        self.f = f

    def _call(self, fn, *a):
        if self.f is None:
            # the shell closed stdout (`>&-`): the output would be lost without a word
            raise CliError("cannot write the output: stdout is closed", EXIT_OUTPUT)
        try:
            return getattr(self.f, fn)(*a)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            # ValueError: "I/O operation on closed file"
            _drop_stdout()
            raise CliError(f"cannot write the output: {getattr(exc, 'strerror', None) or exc}",
                           EXIT_OUTPUT) from None

    def write(self, s):
        return self._call("write", s)

    def flush(self):
        return self._call("flush")

    def binary(self):
        """The same stdout for bytes (filter -o -)."""
        return _Out(getattr(self.f, "buffer", None) if self.f is not None else None)


def _drop_stdout():
    """After EPIPE or a failed write: point stdout at /dev/null so the interpreter's final
    flush of what is still buffered is quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _fail(prog, message, code):
    print(f"{prog}: {printable(message)}", file=sys.stderr)
    return code


def guarded(run, prog="ftfast", out=None):
    """``run()`` (which returns an exit code) with every way out turned into a documented exit
    code and one line on stderr: the ftfast commands and the scripts/ front ends share it.
    ``out``: the _Out whose buffered output must reach stdout before success is claimed."""
    try:
        # numpy's empty-slice and matplotlib's layout warnings are no news to a command-line
        # user and would break the one-line error contract; scoped to this call
        with warnings.catch_warnings(), terminate_as_exception():
            warnings.simplefilter("ignore")
            rc = run()
            if out is not None:
                out.flush()
        return rc
    except CliError as exc:
        return _fail(prog, str(exc), exc.code)
    except BrokenPipeError:
        _drop_stdout()
        return 0
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", EXIT_INTERRUPTED)
    except Terminated as exc:
        return _fail(prog, "terminated", 128 + exc.signum)
    except MemoryError:
        return _fail(prog, "out of memory (--events, --start/--end or a smaller input loads "
                     "less)", EXIT_NOMEM)
    except Exception as exc:  # noqa: BLE001 - the contract: one line and a code, never a traceback
        if os.environ.get("FTFAST_TRACEBACK"):
            raise
        return _fail(prog, f"internal error: {type(exc).__name__}: {exc}{_where(exc)} (please "
                     "report it; FTFAST_TRACEBACK=1 shows the traceback)", EXIT_INTERNAL)
    finally:
        remove_temporaries()


def main(argv=None):
    """Run one command; every way out is a documented exit code, errors one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word that is no option (ftfast's own are --help and --version)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from . import cache
    cache.BACKGROUND = True       # a new cache entry is written while the command runs
    out = _Out(sys.stdout)

    def run():
        _check_counts(args)
        return args.func(args, out)
    _python_sigint()
    return guarded(run, "ftfast", out)


def _python_sigint():
    """SIGINT raises KeyboardInterrupt again (the entry point exits at once on it while the
    imports run), now that guarded() turns it into exit 130."""
    import signal
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:        # not the main thread: the caller's handlers stay
        pass


def _where(exc):
    """' at FILE:LINE' of the innermost frame of an exception."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else \
        f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
