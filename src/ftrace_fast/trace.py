"""``load()`` and the ``Trace`` it returns."""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from . import events as _ev
from ._source import (DEFAULT_CHUNK, SPARE, InputError, LongLine, Region, Source, blocks,
                      is_tracedat, line_starts)
from ._text import printable

try:
    from . import _ftparse
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(
        "ftrace_fast's compiled parser (ftrace_fast._ftparse) cannot be imported: "
        f"{exc}. Rebuild it with 'pip install .' (or 'pip install -e .') from the source tree."
    ) from exc


class ParseError(ValueError):
    """A malformed line in strict mode."""

    def __init__(self, error):
        self.error = error
        super().__init__(error.message)


class OutOfMemoryError(MemoryError):
    """load() ran out of memory: the message says how far it got and how to load less."""


#: default line limit in bytes (line end excluded); FTFAST_MAX_LINE or load(max_line=) change it
DEFAULT_MAX_LINE = _ftparse.DEFAULT_MAX_LINE

#: The rule that tells an ftrace text log from other bytes: load() raises InputError "not an
#: ftrace text log" when at least NOT_FTRACE_MIN_LINES lines are not headers (blank lines,
#: comments, LOST markers), more than NOT_FTRACE_MALFORMED_FRACTION of them are malformed and
#: fewer than NOT_FTRACE_EVENT_FRACTION of them are events (kept or filtered out).  Smaller
#: inputs are too little evidence (the CLI refuses one with no event line at all).  20 MB of
#: random bytes: 80,616 of 81,266 lines malformed, 5 event lines.
NOT_FTRACE_MIN_LINES = 100
NOT_FTRACE_MALFORMED_FRACTION = 0.5
NOT_FTRACE_EVENT_FRACTION = 0.02


def _max_line_arg(v):
    """load(max_line=): bytes as an int, or a str with an optional K/M/G suffix (binary);
    None: $FTFAST_MAX_LINE, else DEFAULT_MAX_LINE."""
    src = "max_line"
    if v is None:
        v = os.environ.get("FTFAST_MAX_LINE")
        if v is None or not v.strip():
            return DEFAULT_MAX_LINE
        src = "FTFAST_MAX_LINE"
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{src}: not a size: {v!r}")
    if isinstance(v, (int, np.integer)):
        n = int(v)
    else:
        m = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)i?B?\s*", str(v), re.I)
        if not m:
            raise ValueError(f"{src}: not a size: {v!r} (use bytes, or a K/M/G suffix: 4M)")
        n = int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
    if n < 1:
        raise ValueError(f"{src}: the line limit must be at least 1 byte, got {v!r}")
    return n


_DESCRIPTIONS = {
    "no_prefix": "not an ftrace line (no 'comm-pid [cpu] timestamp:' prefix)",
    "bad_timestamp": "bad timestamp: expected {what}",
    "no_event": "no event after the timestamp",
    "bad_field": "expected '{what}'",
    "orphan_stack_frame": "stack frame with no event line before it",
    "bad_funcgraph": "function_graph line: expected {what}",
    "truncated_last_line": "truncated last line (no newline at the end of the input)",
    "timestamp_range": "timestamp does not fit in int64 nanoseconds",
    "bad_flags": "irq-info flags column longer than 8 characters",
    "out_of_range": "{what} out of range",
    "line_too_long": "line of {nbytes} bytes, longer than the line limit of {limit} bytes "
                     "(load(max_line=) or FTFAST_MAX_LINE)",
}

#: codes whose message shows what follows the error's column
_AT_COLUMN = ("bad_field", "bad_timestamp", "bad_funcgraph", "out_of_range")


@dataclass(frozen=True)
class LineError:
    """A malformed input line."""

    line: int
    offset: int
    code: str
    col: int
    what: str
    event: str | None
    text: str
    #: for ``truncated_last_line``: the code of the error the unterminated last line had
    cause: str | None = None
    #: the line's length in bytes (line end excluded)
    nbytes: int = 0
    #: the excerpt's exact bytes (``text`` is their UTF-8 decoding, invalid bytes as ``\\xNN``)
    raw: bytes = b""
    #: the line limit the input was read with (for ``line_too_long``)
    max_line: int = 0

    @property
    def message(self):
        """One line for a person: ``line 8123: sched_switch: expected 'next_pid=', got
        'next_pdi=12'``.  Text from the input is passed through ``printable`` (control
        characters escaped); ``text``/``raw`` keep it exact."""
        if self.code == "truncated_last_line" and self.cause:
            inner = LineError(self.line, self.offset, self.cause, self.col, self.what,
                              self.event, self.text, None, self.nbytes, self.raw, self.max_line)
            msg = inner.message
            head = f"line {self.line}: "
            return (f"{head}{_DESCRIPTIONS['truncated_last_line']}; "
                    f"{msg[len(head):] if msg.startswith(head) else msg}")
        what = self.what.rstrip("=") if self.code == "out_of_range" else self.what
        desc = _DESCRIPTIONS.get(self.code, self.code).format(
            what=what, nbytes=self.nbytes, limit=self.max_line)
        where = f"line {self.line}: "
        if self.event and self.code in ("bad_field", "out_of_range"):
            where += f"{printable(self.event)}: "
        raw = self.raw
        if not raw and self.text:
            raw = self.text.encode("utf-8", "surrogateescape")
        if self.col >= 0 and self.code in _AT_COLUMN:
            # the column counts bytes of the line: cut the bytes, then decode
            got = raw[self.col:].decode("utf-8", "backslashreplace")
            if not got.strip():
                return f"{where}{desc}, got end of line"
            got = got[:40] + ("..." if len(got) > 40 else "")
            return f"{where}{desc}, got '{printable(got)}'"
        text = raw.decode("utf-8", "backslashreplace")
        more = len(text) > 120 or self.nbytes > len(raw)
        text = text[:120] + ("..." if more else "")
        return f"{where}{desc}: '{printable(text)}'"

    def __str__(self):
        return self.message


@dataclass
class Stats:
    """Line accounting: lines == events + headers + filtered + malformed, always."""

    lines: int
    events: int
    headers: int
    filtered: int
    malformed: int
    truncated_last_line: bool = False
    error_counts: dict = None

    def check(self):
        return self.lines == self.events + self.headers + self.filtered + self.malformed

    def as_dict(self):
        """The line accounting as plain JSON values: lines, events, headers, filtered,
        malformed, truncated_last_line and error_counts (malformed lines per error code)."""
        return {"lines": int(self.lines), "events": int(self.events),
                "headers": int(self.headers), "filtered": int(self.filtered),
                "malformed": int(self.malformed),
                "truncated_last_line": bool(self.truncated_last_line),
                "error_counts": {k: int(v) for k, v in (self.error_counts or {}).items()}}

    def malformed_summary(self):
        """``"12 of 3,456 lines malformed"``, or None when no line is."""
        if not self.malformed:
            return None
        return f"{self.malformed:,} of {self.lines:,} lines malformed"

    def not_ftrace(self):
        """True when the counts say the input is not an ftrace text log (the rule at
        NOT_FTRACE_MIN_LINES)."""
        body = self.lines - self.headers
        return (body >= NOT_FTRACE_MIN_LINES
                and self.malformed > NOT_FTRACE_MALFORMED_FRACTION * body
                and self.events + self.filtered < NOT_FTRACE_EVENT_FRACTION * body)


#: Trace.line_kinds codes
LINE_KINDS = _ftparse.LINE_KINDS

LOST_DTYPE = np.dtype([("cpu", "i4"), ("line", "i8"), ("count", "i8"), ("ts", "i8")])


def _time_arg(v, name):
    """start/end: a float or a str are seconds (``"1.5"``, ``"1.5s"``, ``"250ms"``,
    ``"10us"``, ``"100ns"``); an int is in the trace's own unit (ns, or ticks for integer
    clocks).  Converted exactly, never through a float's binary value."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name}: not a time: {v!r}")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        s, unit = repr(float(v)), "s"
    elif isinstance(v, str):
        m = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(s|ms|us|ns)?\s*", v)
        if not m:
            raise ValueError(f"{name}: not a time: {v!r} (use seconds like 1.5, or 250ms, 10us, 100ns)")
        s, unit = m.group(1), m.group(2) or "s"
    else:
        raise ValueError(f"{name}: not a time: {v!r}")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"{name}: not a time: {v!r}") from None
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ns = int(d * scale)
    if not -(2**63) <= ns < 2**63:
        raise ValueError(f"{name}: out of range: {v!r}")
    return ns


def _compile_comm(comm):
    if comm is None:
        return None
    if isinstance(comm, re.Pattern):
        return comm
    try:
        return re.compile(comm)
    except re.error as exc:
        raise ValueError(f"bad comm regex {comm!r}: {exc}") from None


class _Progress:
    """A one-line progress bar on stderr, updated once per block."""

    def __init__(self, src, enabled):
        self.src = src
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, done_bytes):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        pos = self.src.position() or done_bytes
        rate = done_bytes / max(now - self.t0, 1e-9) / 1e6
        if self.src.size:
            frac = min(pos / self.src.size, 1.0)
            bar = "#" * int(frac * 30)
            msg = f"\r{self.src.name}: [{bar:<30}] {frac * 100:5.1f}%  {rate:7.1f} MB/s"
        else:
            msg = f"\r{self.src.name}: {done_bytes / 1e6:9.1f} MB  {rate:7.1f} MB/s"
        sys.stderr.write(msg)
        sys.stderr.flush()

    def done(self):
        if self.enabled and self.last:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


#: a plain file smaller than this is parsed in one thread: a second would not pay for itself
PARALLEL_MIN_BYTES = 8 << 20


def _default_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


def load(source, *, events=None, cpus=None, pids=None, comm=None, start=None, end=None,
         strict=False, chunk_size=None, progress=None, warn=True, mark_lines=False,
         keep_text=False, records=True, threads=None, cache=None, buffer=None,
         max_line=None,
         guest_sync=None, _dat_fields=True, _text_sink=None) -> "Trace":
    """Load every event of an ftrace text log, or of a trace-cmd trace.dat (detected by its
    magic bytes, see ``ftrace_fast.tracedat``), into NumPy arrays.

    source: a path (plain, .gz, .xz, .bz2, .zst; detected by magic bytes), an open binary
        file, or ``"-"`` for stdin.
    events: event names to keep (others are counted as filtered).
    cpus, pids: keep only lines of these CPUs / tasks; for sched events a line is also kept
        when a pid named in its payload (prev/next, woken, migrated, forked, exiting) matches.
    comm: regex searched in the comms, like ``pids`` (evaluated once per distinct comm).
    start, end: keep events with start <= ts <= end; floats and strings are seconds
        (``"250ms"``), ints are in the trace's unit (ns, or ticks for integer clocks).
    strict: raise ParseError at the first malformed line instead of counting it.
    progress: show a progress bar on stderr (default: when stderr is a terminal and the input
        is over 256 MB).
    mark_lines: also keep what each line was (Trace.line_kinds: one byte per line, see
        LINE_KINDS), e.g. to write a filtered copy of the text.
    keep_text: also keep a copy of the header lines and the kept event lines as they were
        (Trace.kept_text: a list of uint8 arrays, one per part parsed in parallel, whose
        concatenation is the text, line ends included): the filtered text, in one pass.
    records: False counts the events (Trace.stats) without keeping them (Trace.events is
        empty); with keep_text, a filtered copy at the least cost.
    threads: parsers run at once on parts of a plain (uncompressed) file of at least
        PARALLEL_MIN_BYTES given by path (default: the CPUs this process may use, at most 4).
        The result is identical to a one-thread parse.
    cache: keep the arrays in the on-disk cache (``ftrace_fast.cache``) and read them back
        from it on a later load of the same input with the same options.  None (default):
        files of at least cache.MIN_BYTES given by path, unless keep_text (a copy of the
        text is no parse worth keeping); True: any path, and stdin; False: never.  A
        trace.dat is not cached: it decodes at about the speed of a cache read.
    buffer, guest_sync: trace.dat only: the buffer instance to read (default: the top one),
        and whether to apply a guest file's TIME_SHIFT option (default: when it has one, as
        trace-cmd report does).

    A list of sources loads each as its own machine (a host and a guest trace): the result's
    ``machines`` maps each machine's name to its Trace (see ``ftrace_fast.machines``).
    max_line: the line limit in bytes (an int, or a str like ``"4M"``; default
        $FTFAST_MAX_LINE, else 1 MiB).  A longer line is malformed (``line_too_long``, with
        its line number, offset, length and first 200 bytes) and skipped while reading,
        never held whole: memory stays bounded whatever the input.

    Raises InputError when the input cannot be read or is not an ftrace text log (the rule
    at NOT_FTRACE_MIN_LINES), ParseError (strict), OutOfMemoryError (a MemoryError),
    ValueError for a bad argument.
    """
    if isinstance(source, (list, tuple)):
        from . import machines as _machines
        kw = dict(events=events, cpus=cpus, pids=pids, comm=comm, start=start, end=end,
                  strict=strict, chunk_size=chunk_size, progress=progress, warn=warn,
                  mark_lines=mark_lines, keep_text=keep_text, records=records, threads=threads,
                  cache=cache, buffer=buffer, guest_sync=guest_sync, _dat_fields=_dat_fields,
                  max_line=max_line)
        if len(source) == 1:
            return load(source[0], **kw)
        return _machines.combine([load(s, **kw) for s in source])
    if is_tracedat(source):
        return _load_dat(source, events=events, cpus=cpus, pids=pids, comm=comm, start=start,
                         end=end, threads=threads, buffer=buffer, guest_sync=guest_sync,
                         keep_text=keep_text, records=records, fields=_dat_fields)
    if buffer is not None or guest_sync is not None:
        raise ValueError("buffer= and guest_sync= apply to trace.dat inputs only")
    if cache is None and keep_text:
        cache = False
    text_kw = dict(events=events, cpus=cpus, pids=pids, comm=comm, start=start, end=end,
                   strict=strict, chunk_size=chunk_size, progress=progress, warn=warn,
                   mark_lines=mark_lines, keep_text=keep_text, records=records,
                   threads=threads, max_line=max_line)
    if _text_sink is not None and keep_text and not records and cache is False:
        # (ftfast filter) the kept text handed over as it is parsed, not kept: see _stream
        text_kw["text_sink"] = _text_sink
    if cache is not False:
        from . import cache as _cache
        opts = _cache.options_key(events=events, cpus=cpus, pids=pids,
                                  comm=_compile_comm(comm), start=_time_arg(start, "start"),
                                  end=_time_arg(end, "end"), mark_lines=mark_lines,
                                  keep_text=keep_text, records=records,
                                  max_line=_max_line_arg(max_line))
        return _cache.load(source, opts, cache=cache, strict=strict, warn=warn,
                           parse=lambda src: _load(src, **text_kw))
    return _load(source, **text_kw)


def _window_and_events(start, end, events):
    """load()'s start/end in the trace's unit (checked in order) and its event list."""
    t_start = _time_arg(start, "start")
    t_end = _time_arg(end, "end")
    if t_start is not None and t_end is not None and t_start > t_end:
        raise ValueError(f"start ({start}) is after end ({end})")
    return t_start, t_end, [events] if isinstance(events, str) else events


def _load(source, *, events=None, cpus=None, pids=None, comm=None, start=None, end=None,
          strict=False, chunk_size=None, progress=None, warn=True, mark_lines=False,
          keep_text=False, records=True, threads=None, part_offsets=None, max_line=None,
          text_sink=None):
    """load(); part_offsets (tests): cut a plain file into parts at the first line start
    at or after each of these byte offsets, whatever its size."""
    comm_re = _compile_comm(comm)
    line_limit = _max_line_arg(max_line)
    t_start, t_end, events = _window_and_events(start, end, events)
    verdicts = {}

    def make_parser(later_part=False):
        return _ftparse.Parser(events=events, cpus=cpus, pids=pids, comm=comm_re,
                               start=t_start, end=t_end, strict=strict, mark_lines=mark_lines,
                               keep_text=keep_text, records=records, later_part=later_part,
                               comm_verdicts=verdicts, max_line=line_limit)
    parser = make_parser()
    src = Source(source)
    try:
        return _load_source(src, parser, make_parser, strict=strict, chunk_size=chunk_size,
                            progress=progress, warn=warn, threads=threads,
                            part_offsets=part_offsets, line_limit=line_limit, sink=text_sink)
    except OutOfMemoryError:
        raise
    except MemoryError as exc:
        done = f" at line {parser.lines:,}" if parser.lines else ""
        raise OutOfMemoryError(
            f"{printable(src.name)}: out of memory while loading{done} "
            f"({exc or 'no detail'}); load less with events=/cpus=/pids=/start=/end= "
            "(ftfast: --events, --cpu, --pid, --start, --end)") from None


def _feed(parser, stream, chunk, line_limit, on_block=None, buf=None):
    """Feed the blocks of a stream to a parser until its end (or a strict stop); a line over
    the limit goes to Parser.long_line, its middle never read into memory.  buf: a read
    buffer to reuse (blocks())."""
    for view, n, final in blocks(stream, chunk, line_limit, buf):
        if isinstance(view, LongLine):
            if not parser.long_line(view.head, view.nbytes, final):
                return
            continue
        if not parser.feed(view, n, final):
            return
        if on_block is not None:
            on_block(n)


def _load_source(src, parser, make_parser, *, strict, chunk_size, progress, warn, threads,
                 part_offsets, line_limit, sink=None):
    if progress is None:
        progress = sys.stderr.isatty() and (src.size or 0) > (256 << 20)
    bar = _Progress(src, progress)
    if sink is not None:
        # the text pieces are freed once written: their pages go to the next parts' text
        _ftparse.lend_freed_buffers(True)
    try:
        starts = _part_starts(src, threads, part_offsets)
        if sink is not None and starts is not None and part_offsets is None:
            parser = _stream(src, parser, make_parser, len(starts), bar, line_limit, sink)
        elif starts is None:
            done = [0]

            def on_block(n):
                done[0] += n
                bar.update(done[0])
                if sink is not None:
                    sink(parser._take_kept(), parser)
            _feed(parser, src.stream, chunk_size or DEFAULT_CHUNK, line_limit, on_block)
        else:
            chunk = chunk_size or max(DEFAULT_CHUNK // len(starts), 1 << 20)
            parser = _parse_parts(src, parser, make_parser, starts, chunk, bar, line_limit)
    except InputError:
        raise
    except _READ_ERRORS as exc:
        if src.compression and not (isinstance(exc, OSError) and exc.errno):
            raise InputError(f"{printable(src.name)}: corrupt or truncated {src.compression} "
                             f"input: {_read_error(exc)}") from None
        raise InputError(f"{printable(src.name)}: read error: {_read_error(exc)}") from None
    finally:
        if sink is not None:
            _ftparse.lend_freed_buffers(False)
        bar.done()
        src.close()
    result = parser.finish()
    trace = Trace._from_parser(result, src)
    if strict and trace.errors:
        raise ParseError(trace.errors[0])
    if trace.stats.not_ftrace():
        first = trace.errors[0].message if trace.errors else ""
        event_lines = trace.stats.events + trace.stats.filtered
        raise InputError(f"{printable(src.name)}: not an ftrace text log: "
                         f"{trace.stats.malformed_summary()}, {event_lines:,} event "
                         f"line{'' if event_lines == 1 else 's'}"
                         + (f" (first: {first})" if first else ""))
    if warn and trace.stats.malformed:
        first = "; ".join(e.message for e in trace.errors[:3])
        warnings.warn(
            f"{printable(trace.source)}: {trace.stats.malformed} malformed line(s) of "
            f"{trace.stats.lines} "
            f"(see Trace.errors): {first}", stacklevel=2)
    return trace


def _load_dat(source, *, events, cpus, pids, comm, start, end, threads, buffer, guest_sync,
              keep_text, records, fields=True):
    from . import tracedat
    t_start, t_end, events = _window_and_events(start, end, events)
    t = tracedat.load_dat(source, events=events, cpus=cpus, pids=pids, comm=_compile_comm(comm),
                          start=t_start, end=t_end, buffer=buffer, guest_sync=guest_sync,
                          threads=threads, fields=fields)
    if keep_text:
        t.kept_text = [tracedat.ftrace_text(t)]
    if not records:
        t.events = {}
    return t


#: parts parsed in parallel so far in this process: merged, or parsed again in sequence
#: because a line of the part needed the lines before it
PART_COUNTS = {"merged": 0, "parsed_again": 0}


_MULTIFILE_HEAD = re.compile(rb"(?m)^[ \t]*\S+\.dat: ")


def _part_starts(src, threads, offsets=None):
    """Start offsets of the parts of a plain file to parse in parallel (the first is 0), or
    None for a one-thread parse of the stream."""
    if src.path is None or src.compression is not None or not src.size or not hasattr(os, "pread"):
        return None
    try:
        fd = src.raw.fileno()
        if src.raw.tell() != 0:
            return None
    except (OSError, AttributeError, ValueError):
        return None
    if offsets is None:
        n = _default_threads() if threads is None else int(threads)
        if n < 2 or src.size < PARALLEL_MIN_BYTES:
            return None
        # a multi-file report's parts cannot be merged (the machine runs follow the lines in
        # order, see Parser.absorb): parsed in parallel they would be parsed twice
        if _MULTIFILE_HEAD.search(os.pread(fd, 65536, 0)):
            return None
        offsets = [src.size * k // n for k in range(1, n)]
    starts = _cut(fd, src.size, offsets)
    return starts if len(starts) > 1 else None


def _cut(fd, size, offsets):
    """0 and the first line start at or after each offset, each once, in order."""
    starts = [0]
    for s in line_starts(fd, size, sorted(offsets)):
        if starts[-1] < s < size:
            starts.append(s)
    return starts


def _join(first, part, fd, start, end, chunk, line_limit):
    """Merge the parser of [start, end) into `first`, which has read every line before it;
    a part that needed state from those lines is parsed again by `first` instead."""
    if first.absorb(part):
        PART_COUNTS["merged"] += 1
    else:
        PART_COUNTS["parsed_again"] += 1
        _feed(first, Region(fd, start, end), chunk, line_limit)


#: the chunks a filtered copy is parsed in (_stream), and how many may be parsed ahead of the
#: one being written, per thread
STREAM_CHUNK = 8 << 20
STREAM_AHEAD = 2


def _stream(src, first, make_parser, nthreads, bar, line_limit, sink):
    """Parse a plain file in chunks of STREAM_CHUNK bytes on nthreads threads and merge them
    in order into `first` (Parser.absorb; a chunk that needs the lines before it is parsed
    again by `first`, as in _parse_parts), calling sink(text pieces, first) with the kept
    text of each chunk as it is merged: a filtered copy is written while the input is read,
    with memory bounded by the chunks in flight, not by the output."""
    import threading
    fd = src.raw.fileno()
    starts = _cut(fd, src.size, range(STREAM_CHUNK, src.size, STREAM_CHUNK))
    ends = starts[1:] + [src.size]
    n = len(starts)
    parsed = [None] * n
    cond = threading.Condition()
    st = {"next": 0, "merged": -1, "stop": False, "error": None}

    def work():
        buf = bytearray(DEFAULT_CHUNK // 4 + SPARE)      # read into, chunk after chunk
        while True:
            with cond:
                while not st["stop"] and st["next"] - st["merged"] > STREAM_AHEAD * nthreads:
                    cond.wait()
                if st["stop"] or st["next"] >= n:
                    return
                i = st["next"]
                st["next"] += 1
            try:
                p = first if i == 0 else make_parser(later_part=True)
                _feed(p, Region(fd, starts[i], ends[i]), DEFAULT_CHUNK // 4, line_limit, buf=buf)
            except BaseException as exc:  # re-raised in the calling thread
                with cond:
                    st["error"], st["stop"] = st["error"] or exc, True
                    cond.notify_all()
                return
            with cond:
                parsed[i] = p
                cond.notify_all()
    workers = [threading.Thread(target=work, daemon=True) for _ in range(nthreads)]
    for w in workers:
        w.start()
    try:
        for i in range(n):
            with cond:
                while parsed[i] is None and st["error"] is None:
                    cond.wait()
                if st["error"] is not None:
                    break
                part, parsed[i] = parsed[i], None
            if i:
                if first.stopped:
                    break
                _join(first, part, fd, starts[i], ends[i], DEFAULT_CHUNK // 4, line_limit)
            del part
            sink(first._take_kept(), first)
            bar.update(ends[i])
            with cond:
                st["merged"] = i
                cond.notify_all()
            if first.stopped:
                break
    finally:
        with cond:
            st["stop"] = True
            cond.notify_all()
        for w in workers:
            w.join()
    if st["error"] is not None:
        raise st["error"]
    return first


def _parse_parts(src, first, make_parser, starts, chunk, bar, line_limit):
    """Parse the parts [starts[i], starts[i+1]) of a plain file at once, one thread each
    (the first in this thread, into `first`), then merge them in order with
    Parser.absorb().  A part that needed state from the lines before it is parsed again by
    the merged parser, in sequence, so the result is always that of one parser reading the
    whole file."""
    import threading
    fd = src.raw.fileno()
    ends = starts[1:] + [src.size]
    done = [0] * len(starts)
    failed = [None] * len(starts)

    def run(i, parser):
        try:
            _feed(parser, Region(fd, starts[i], ends[i]), chunk, line_limit,
                  lambda n: done.__setitem__(i, done[i] + n))
        except BaseException as exc:  # re-raised in the calling thread
            failed[i] = exc

    parts = [first] + [make_parser(later_part=True) for _ in starts[1:]]
    workers = [threading.Thread(target=run, args=(i, parts[i]), daemon=True)
               for i in range(1, len(starts))]
    for w in workers:
        w.start()
    def on_first(n):
        done[0] += n
        bar.update(sum(done))
    try:
        _feed(first, Region(fd, starts[0], ends[0]), chunk, line_limit, on_first)
    finally:
        for w in workers:
            w.join()
    for exc in failed:
        if exc is not None:
            raise exc
    for i in range(1, len(starts)):
        if first.stopped:
            break
        _join(first, parts[i], fd, starts[i], ends[i], chunk, line_limit)
        parts[i] = None
    return first


# -- derived tables ---------------------------------------------------------------------------

#: Every table an analysis derives from a Trace's arrays and keeps on it, by name: what it
#: is, and what its key (the restriction it was computed for) holds.  A Trace keeps each
#: (name, key) once (Trace.derived); the Trace a table hangs off is its scope (a trace of
#: several machines keeps each machine's tables on that machine's Trace).  STORED says
#: which the on-disk cache (ftrace_fast.cache) writes into the trace's entry at exit and
#: reads back on a later load instead of computing them again.
DERIVED = {
    "span": "(first, last) time stamp (Trace.span); key: the event arrays' (id, length)",
    "cpus": "sorted CPU numbers with events (Trace.cpus); key: as span",
    "comm_index": "comm string -> id (Trace.comm_id); key: ()",
    "machines": "machine name -> Trace (Trace.machines); key: ()",
    "sched.model": "the scheduling model, sched.SchedModel (sched.model); key: ()",
    "sched.comm_match": "sched.CommMatch of a regex; key: (pattern, flags)",
    "sched.task_summary": "sched.task_summary(); key: (start, end, cpus, pids, comm)",
    "sched.cpu_summary": "sched.cpu_summary(); key: (start, end, cpus)",
    "sched.switch_counts": "sched.switch_counts(); key: (start, end, cpus, pids, comm)",
    "sched.wakeup_counts": "sched.wakeup_counts(); key: (source, start, end, cpus, pids, comm)",
    "sched.migration_counts": "sched.migration_counts(); key: (start, end, cpus, pids, comm)",
    "kvm.topology": "kvm.Topology, the QEMU processes and threads (kvm.topology); key: ()",
    "kvm.exits": "kvm.Exits, the paired exits (kvm.exits); key: ()",
    "kvm.exits.per_vcpu": "Exits.per_vcpu() of every thread with kvm lines; key: (start, end, cpus)",
    "kvm.exits.by_reason": "Exits.by_reason() per thread; key: (start, end, cpus)",
    "kvm.intervals": "interval columns of some tasks; key: (pids, start, end, cpus)",
    "kvm.neighbours": "kvm.neighbours(); key: (pids, start, end, cpus)",
    "kvm.vcpu_summary": "kvm.vcpu_summary(); key: (start, end, cpus)",
    "kvm.placement": "kvm.placement(); key: (pids, start, end, cpus)",
    "kvm.overcommit": "kvm.overcommit(); key: (pids, bin_ns, start, end)",
    "kvm.io_summary": "kvm.io_summary(); key: (start, end, cpus)",
    "kvm.block_latency": "kvm.block_latency(); key: (start, end)",
    "kvm.host_summary": "kvm.host_summary(), the stats --kvm section; key: (start, end, cpus, pids, comm)",
    "guest.correlation": "guest.Correlation of two machines; key: (host, guest, vCPU map)",
}
STORED = frozenset({"sched.model", "sched.task_summary", "sched.cpu_summary",
                    "sched.switch_counts", "sched.wakeup_counts", "sched.migration_counts",
                    "kvm.host_summary",
                    "kvm.topology", "kvm.neighbours", "kvm.vcpu_summary", "kvm.placement",
                    "kvm.overcommit", "kvm.io_summary", "kvm.block_latency",
                    "kvm.exits.per_vcpu", "kvm.exits.by_reason"})


class _Missing:
    def __repr__(self):
        return "MISSING"


#: what a backing store's load() returns for a table it does not hold
MISSING = _Missing()


class Derived:
    """The derived tables of one Trace: (name, key) -> value, each computed once.  A backing
    store (the trace's cache entry) may hold tables of STORED names: asked first, and
    offered what is computed here, with the dump/restore pair of the caller when the value
    is an object rather than plain data."""

    def __init__(self):
        self.tables = {}
        self.backing = None

    def get(self, trace, name, key, build, dump=None, restore=None):
        k = (name, key)
        v = self.tables.get(k, MISSING)
        if v is not MISSING:
            return v
        if name not in DERIVED:
            raise KeyError(f"{name!r} is no derived table (trace.DERIVED)")
        backing = self.backing if name in STORED else None
        if backing is not None:
            v = backing.load(trace, name, key, restore)
        if v is MISSING:
            v = build()
            if backing is not None:
                backing.keep(trace, name, key, v, dump)
        # two threads that built one table at once keep the first
        return self.tables.setdefault(k, v)

    def put(self, name, key, value):
        """Keep a table known otherwise (the cache entry's span and CPU list)."""
        if name not in DERIVED:
            raise KeyError(f"{name!r} is no derived table (trace.DERIVED)")
        self.tables[(name, key)] = value

    def ready(self, name, key=()):
        if (name, key) in self.tables:
            return True
        return self.backing is not None and name in STORED and self.backing.has(name, key)

    def clear(self):
        """Forget every table but the machines (a load of several files holds them as its
        state); they are computed again, or read from the backing store."""
        machines = self.tables.get(("machines", ()))
        self.tables.clear()
        if machines is not None:
            self.tables[("machines", ())] = machines


def restriction_key(name, v):
    """A restriction's value as a key: start/end in the trace's unit (``"1.5s"`` and
    1500000000 are one key), CPUs as a sorted tuple, pids in their order, a regex as
    (pattern, flags), other arrays as tuples, scalars as they are."""
    if v is None or isinstance(v, (bool, str, int, float)) and name not in ("start", "end"):
        return v
    if name in ("start", "end"):
        return _time_arg(v, name)
    if isinstance(v, re.Pattern):
        return ("re", v.pattern, int(v.flags))
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    vals = np.asarray(list(v) if isinstance(v, (set, frozenset)) else v).ravel().tolist()
    return tuple(sorted(set(vals))) if name == "cpus" else tuple(vals)


def derived(name, *params, scope=None):
    """Decorator: ``fn(trace, ...)`` computed once per trace and restriction, kept as the
    derived table ``name`` keyed by the values of ``params`` (positional ones first, in
    order; every one defaults to None), each through restriction_key.  scope(trace): the
    Trace the table belongs to (machines.scoped).  Results are shared: callers must not
    modify them."""
    if name not in DERIVED:
        raise KeyError(f"{name!r} is no derived table (trace.DERIVED)")

    def key_of(args, kw):
        if len(args) > len(params) or not set(kw) <= set(params) or \
                set(params[:len(args)]) & set(kw):
            return None
        vals = dict(zip(params, args), **kw)
        return tuple(restriction_key(p, vals.get(p)) for p in params)

    def decorate(fn):
        def wrapper(trace, *args, **kw):
            if scope is not None:
                trace = scope(trace)
            key = key_of(args, kw)
            if key is None:
                return fn(trace, *args, **kw)        # the function says what is wrong
            return trace.derived(name, key, lambda: fn(trace, *args, **kw))

        def ready(trace, *args, **kw):
            """Whether fn(trace, ...) is computed or stored (costs no computing)."""
            if scope is not None:
                trace = scope(trace)
            key = key_of(args, kw)
            return key is not None and trace.derived_ready(name, key)
        wrapper.ready = ready
        wrapper.__name__ = fn.__name__
        wrapper.__qualname__ = fn.__qualname__
        wrapper.__doc__ = fn.__doc__
        wrapper.__module__ = fn.__module__
        wrapper.__wrapped__ = fn
        return wrapper
    return decorate


class Trace:
    """Every event of one ftrace text log.

    events: event name -> NumPy structured array (common columns of events.COMMON, then the
        typed fields of the event's layout; see ``ftrace_fast.events``).
    comms / symbols: intern tables (lists of str) that the int32 comm / sym columns index.
    stats, errors, lost: line accounting, malformed-line records, LOST-events markers.
    clock: "ns" for decimal-second timestamps (kept as int64 ns), "counter" or "x86-tsc" for
        integer timestamps (kept as raw ticks), "mixed" when a file has both.
    """

    def __init__(self, *, layouts=None, machine_names=None, machine_runs=None):
        # the keywords: state a Trace built elsewhere (cache, machines) starts with
        self.events = {}
        self.comms = []
        self.symbols = []
        self.text_arena = np.zeros(0, np.uint8)
        self.errors = []
        self.lost = np.zeros(0, LOST_DTYPE)
        self.clock = "ns"
        self.source = ""
        self.compression = None
        self._layouts = {} if layouts is None else layouts
        self._derived = Derived()       # derived tables: see DERIVED
        self.format = {}
        self.line_kinds = None
        self.kept_text = None
        self.machine = None
        self._machine_names = [] if machine_names is None else machine_names
        self._machine_runs = machine_runs
        self.dat = None      # tracedat.DatInfo when loaded from a trace.dat

    @classmethod
    def _from_parser(cls, r, src):
        t = cls()
        t.events = r["events"]
        t.comms = r["comms"]
        t.symbols = r["symbols"]
        t.text_arena = r["text"]
        t._layouts = r["event_layouts"]
        t.errors = [LineError(**{k: v for k, v in e.items() if k != "truncated_text"},
                              max_line=r["max_line"])
                    for e in r["errors"]]
        lost = np.zeros(len(r["lost"]), LOST_DTYPE)
        for f in ("cpu", "line", "count", "ts"):
            lost[f] = r["lost"][f]
        t.lost = lost
        t.stats = Stats(lines=r["lines"], events=r["events_count"], headers=r["headers"],
                        filtered=r["filtered"], malformed=r["malformed"],
                        truncated_last_line=r["truncated_last_line"],
                        error_counts=r["error_counts"])
        cc = r["clock_counts"]
        if cc["integer"] and (cc["decimal"] or cc["us"]):
            t.clock = "mixed"
        elif cc["integer"]:
            # a counter clock counts events: it never reaches 10**12 in a text trace
            t.clock = "x86-tsc" if r["max_int_ts"] >= 10**12 else "counter"
        else:
            t.clock = "ns"
        t.source = src.name
        t.compression = src.compression
        t.format = r["format"]
        t.line_kinds = r["line_kinds"]
        t.kept_text = r["kept_text"]
        t._machine_names = r.get("machines", [])
        t._machine_runs = r.get("machine_runs")
        # the parser noted the kept records' span and CPUs as it wrote them: no pass over
        # the arrays for them (0.2 s of `ftfast info` at 1 GB)
        key = t._arrays_key()
        if r.get("span") is not None:
            t._derived.put("span", key, tuple(r["span"]) or None)
        if r.get("cpus") is not None:
            t._derived.put("cpus", key, r["cpus"])
        return t

    @property
    def machines(self):
        """{machine name: Trace}: the machines of a multi-file report or of a load of several
        files, each its own Trace; a one-machine trace is ``{name: self}`` (machines.M1-M3)."""
        from . import machines as _machines
        return self.derived("machines", (), lambda: _machines.split(self))

    # -- derived tables ---------------------------------------------------------------------
    def derived(self, name, key, build, *, dump=None, restore=None):
        """The derived table ``name`` (one of DERIVED) for ``key`` (a tuple of plain values:
        the restriction it is for): build() once, or read from the trace's cache entry when
        the name is STORED (dump(value) -> plain data and restore(trace, data) -> value for a
        table that is an object).  Shared: callers must not modify it."""
        return self._derived.get(self, name, key, build, dump, restore)

    def derived_ready(self, name, key=()):
        """Whether the table is computed or stored: asking for it costs no computing."""
        return self._derived.ready(name, key)

    def forget_derived(self):
        """Drop every derived table, so that the next analysis computes it again (benchmarks:
        a cold analysis of a loaded trace), and those of its machines."""
        self._derived.clear()
        for m in self._derived.tables.get(("machines", ()), {}).values():
            if m is not self:
                m.forget_derived()

    def _arrays_key(self):
        return tuple((id(a), len(a)) for a in self.events.values())

    def format_description(self):
        """What the text looked like, in words (kernel trace / trace-cmd report, columns)."""
        if self.dat is not None:
            return self.dat.describe()
        f = self.format
        parts = ["trace-cmd report" if f["tracecmd_headers"] else "kernel trace text"]
        if f["prefixed_lines"]:
            parts.append("multi-file (file-name prefixes)")
        if f["latency_lines"]:
            parts.append("latency format")
        if f["flags_lines"]:
            parts.append(f"irq-info flags ({f['flags_width']} chars)")
        elif f["noflags_lines"]:
            parts.append("no irq-info flags")
        if f["tgid_lines"]:
            parts.append("record-tgid column")
        if f["funcgraph_lines"]:
            parts.append("function_graph")
        if f["dmesg_lines"]:
            parts.append("ftrace_dump (printk prefixes)")
        return ", ".join(parts)

    # -- introspection ----------------------------------------------------------------------
    @property
    def time_unit(self):
        """'ns' for time clocks, 'ticks' for integer clocks."""
        return "ticks" if self.clock in ("counter", "x86-tsc", "mixed") else "ns"

    @property
    def nbytes(self):
        """Bytes held in arrays (event records and text arena)."""
        return int(sum(a.nbytes for a in self.events.values()) + self.text_arena.nbytes)

    def layout(self, name):
        """Layout name of an event (``generic`` for events without typed columns)."""
        return self._layouts.get(name, _ev.EVENT_LAYOUT.get(name, "generic"))

    def __getitem__(self, name):
        return self.events[name]

    def __contains__(self, name):
        return name in self.events

    def count(self, name):
        a = self.events.get(name)
        return 0 if a is None else len(a)

    def __repr__(self):
        top = sorted(self.events.items(), key=lambda kv: -len(kv[1]))[:5]
        ev = ", ".join(f"{k}={len(v)}" for k, v in top)
        return (f"<Trace {self.source}: {self.stats.events} events, {len(self.events)} kinds "
                f"({ev}{', ...' if len(self.events) > 5 else ''}), clock={self.clock}, "
                f"{self.stats.malformed} malformed>")

    @property
    def span(self):
        """(first, last) timestamp over all events with a timestamp, or None (computed once
        for the arrays the trace holds)."""
        return self.derived("span", self._arrays_key(), self._span)

    def _span(self):
        lo, hi = None, None
        for a in self.events.values():
            ts = a["ts"]
            if not len(ts):
                continue
            # -1 marks a missing time stamp; min/max with `where` copy nothing
            a_hi = ts.max()
            if a_hi < 0:
                continue
            a_lo = ts.min(where=ts >= 0, initial=a_hi)
            lo = a_lo if lo is None else min(lo, a_lo)
            hi = a_hi if hi is None else max(hi, a_hi)
        return None if lo is None else (int(lo), int(hi))

    def cpus(self):
        """Sorted CPU numbers that have events (computed once for the arrays the trace
        holds)."""
        return list(self.derived("cpus", self._arrays_key(), self._cpus))

    def _cpus(self):
        cs = [np.unique(a["cpu"]) for a in self.events.values() if len(a)]
        if not cs:
            return []
        u = np.unique(np.concatenate(cs))
        return [int(c) for c in u if c >= 0]

    # -- strings ----------------------------------------------------------------------------
    def comm_id(self, name):
        """Id of a comm string, or -1."""
        index = self.derived("comm_index", (), lambda: {c: i for i, c in enumerate(self.comms)})
        return index.get(name, -1)

    def comm_names(self, ids):
        """Comm strings of an array of comm ids (-1 -> '')."""
        table = np.array(self.comms + [""], dtype=object)
        ids = np.asarray(ids)
        return table[np.where(ids < 0, len(self.comms), ids)]

    def symbol_names(self, ids):
        table = np.array(self.symbols + [""], dtype=object)
        ids = np.asarray(ids)
        return table[np.where(ids < 0, len(self.symbols), ids)]

    def text(self, name, field=None):
        """The strings of a ``text`` field (``payload`` of generic events, ``text`` of
        tracing_mark_write) as a list of str."""
        a = self.events.get(name)
        if a is None:
            return []
        if field is None:
            field = "payload" if self.layout(name) == "generic" else "text"
        offs = a[field + "_off"]
        lens = a[field + "_len"]
        arena = self.text_arena.tobytes() if len(self.text_arena) < (64 << 20) else self.text_arena
        out = []
        for o, n in zip(offs.tolist(), lens.tolist()):
            out.append(bytes(arena[o:o + n]).decode("utf-8", "backslashreplace"))
        return out

    def payload(self, name):
        """Decode the ``key=value`` words of an event's payload into typed arrays.

        Returns {key: array}: int64 where every present value is an integer (decimal or 0x
        hex; absent: -1), float64 where they are numbers, else an object array of str (absent:
        None).  Events of any layout are decoded from their payload text when it is kept;
        typed events are returned as their columns.
        """
        a = self.events.get(name)
        if a is None:
            return {}
        if self.layout(name) != "generic":
            return {n: a[n] for n in a.dtype.names}
        texts = self.text(name, "payload")
        kv = re.compile(r"(?:^|(?<=\s))([A-Za-z_][\w.]*)=(\S*)")
        cols = {}
        n = len(texts)
        for i, t in enumerate(texts):
            for k, v in kv.findall(t):
                col = cols.get(k)
                if col is None:
                    col = cols[k] = [None] * n
                col[i] = v
        out = {}
        for k, vals in cols.items():
            out[k] = _typed(vals)
        return out

    # -- Arrow and Parquet (pyarrow: pip install 'ftrace_fast[parquet]') ----------------------
    def to_arrow(self, name):
        """One event's records as a pyarrow.Table: comm and symbol columns dictionary-encoded
        strings, ts int64 in the trace's unit (clock in the metadata); see export.py."""
        from . import export
        return export.event_table(self, name)

    def to_parquet(self, out_dir, **filters):
        """Write one Parquet file per event, the analysis tables and meta.json into out_dir
        (written beside it and renamed); filters: start, end, cpus, pids, comm.  Returns
        meta.json's content."""
        from . import export
        return export.write_tables(self, out_dir, "parquet", **filters)

    # -- pandas -----------------------------------------------------------------------------
    def df(self, name):
        """A pandas DataFrame of one event, laid out like trappy's and LISA's: index ``Time``
        (seconds, float), fields by the kernel's names, ``__cpu``, ``__pid``, ``__comm``
        (plus ``__tgid``, ``__line``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Trace.df() needs pandas: pip install pandas") from None
        a = self.events.get(name)
        if a is None:
            raise KeyError(f"no event {name!r} in {self.source}")
        layout = self.layout(name)
        kinds = _ev.field_kinds(layout)
        kernel = _ev.kernel_names(layout)
        data = {}
        if self.time_unit == "ns":
            index = pd.Index(a["ts"] / 1e9, name="Time")
        else:
            index = pd.Index(a["ts"], name="Time")
        data["__cpu"] = a["cpu"]
        data["__pid"] = a["pid"]
        data["__comm"] = self.comm_names(a["comm"])
        data["__tgid"] = a["tgid"]
        data["__line"] = a["line"]
        for field, kind in kinds.items():
            col = kernel.get(field, field)
            if kind == "comm":
                data[col] = self.comm_names(a[field])
            elif kind == "sym":
                data[col] = self.symbol_names(a[field])
            elif kind == "state":
                u, inv = np.unique(a[field], return_inverse=True)
                data[col] = np.array([_ev.state_string(int(x)) for x in u], dtype=object)[inv]
            elif kind == "text":
                data[col] = self.text(name, field)
            else:
                data[col] = a[field]
        if layout == "generic":
            typed = {}
            if self.dat is not None:
                # a trace.dat's format fields, typed (tracedat.format_columns)
                from .tracedat import field_values
                typed = field_values(self, name)
            for k, v in (typed or self.payload(name)).items():
                if k not in data:
                    data[k] = v
        return pd.DataFrame(data, index=index)


def _typed(vals):
    present = [v for v in vals if v is not None]
    try:
        ints = [int(v, 0) if v.lower().startswith(("0x", "-0x")) else int(v) for v in present]
        if all(-(2**63) <= x < 2**63 for x in ints):
            it = iter(ints)
            return np.array([next(it) if v is not None else -1 for v in vals], dtype=np.int64)
    except ValueError:
        pass
    try:
        fl = [float(v) for v in present]
        it = iter(fl)
        return np.array([next(it) if v is not None else np.nan for v in vals], dtype=np.float64)
    except ValueError:
        pass
    return np.array(vals, dtype=object)


def _decompress_errors():
    """The exceptions a decompressor raises on corrupt data (zlib.error, LZMAError, ...)."""
    errs = [EOFError]
    import zlib
    errs.append(zlib.error)
    try:
        import lzma
        errs.append(lzma.LZMAError)
    except ImportError:  # pragma: no cover - Python built without lzma
        pass
    try:
        import gzip
        errs.append(gzip.BadGzipFile)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return tuple(errs)


_READ_ERRORS = (OSError,) + _decompress_errors()


def _read_error(exc):
    """One line for a read error: the OS's words, or the decompressor's."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return printable(text[0] if text else type(exc).__name__)


__all__ = ["load", "Trace", "Stats", "LineError", "ParseError", "InputError", "OutOfMemoryError"]
