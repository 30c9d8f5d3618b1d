"""The ``ftfast`` command line: argument parsing and formatting only.

Exit codes: 0 success; 2 bad usage (unknown option, bad regex, bad time range); 3 the input
cannot be read as ftrace text (missing, empty, binary, no event line); 4 the output cannot be
written; 5 a malformed line in --strict mode.  Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__
from ._source import InputError
from .trace import ParseError, load

EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4
EXIT_STRICT = 5


class CliError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def _int_list(s):
    """`0,2-4` -> [0, 2, 3, 4]."""
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _add_filters(p):
    g = p.add_argument_group("filters")
    g.add_argument("--comm", metavar="REGEX", help="tasks whose comm matches (searched anywhere)")
    g.add_argument("--pid", metavar="LIST", help="pids, e.g. 1234,1240-1250")
    g.add_argument("--cpu", metavar="LIST", help="CPUs, e.g. 0,2-3")
    g.add_argument("--start", metavar="T", help="from this time (seconds, or 250ms / 10us / ns)")
    g.add_argument("--end", metavar="T", help="up to this time")
    g.add_argument("--events", metavar="LIST", help="event names, comma separated")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _load(args, **extra):
    try:
        pids = _int_list(args.pid) if getattr(args, "pid", None) else None
        cpus = _int_list(args.cpu) if getattr(args, "cpu", None) else None
    except ValueError as exc:
        raise CliError(f"bad --pid/--cpu list: {exc}", EXIT_USAGE) from None
    events = args.events.split(",") if getattr(args, "events", None) else None
    kw = dict(events=events, cpus=cpus, pids=pids, comm=getattr(args, "comm", None),
              start=getattr(args, "start", None), end=getattr(args, "end", None),
              strict=getattr(args, "strict", False),
              progress=False if getattr(args, "quiet", False) else None, warn=False)
    kw.update(extra)
    try:
        t = load(args.file, **kw)
    except InputError as exc:
        raise CliError(str(exc), EXIT_INPUT) from None
    except ParseError as exc:
        raise CliError(f"{args.file}: {exc}", EXIT_STRICT) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if t.stats.lines == 0:
        raise CliError(f"{t.source}: empty input", EXIT_INPUT)
    if t.stats.events == 0 and t.stats.malformed and t.stats.filtered == 0:
        first = t.errors[0].message if t.errors else ""
        raise CliError(f"{t.source}: not ftrace text: no line of {t.stats.lines} is an event "
                       f"({first})", EXIT_INPUT)
    return t


def _fmt_ts(t, v):
    if v is None:
        return "-"
    return f"{v / 1e9:.6f}" if t.time_unit == "ns" else str(v)


def cmd_info(args, out):
    t = _load(args)
    span = t.span
    cpus = t.cpus()
    info = {
        "schema": 1,
        "source": {"file": t.source, "compression": t.compression,
                   "format": t.format_description(), "clock": t.clock,
                   "time_unit": t.time_unit},
        "cpus": cpus,
        "span": None if span is None else {"first": span[0], "last": span[1],
                                           "duration": span[1] - span[0]},
        "lines": {"total": t.stats.lines, "events": t.stats.events,
                  "headers": t.stats.headers, "filtered": t.stats.filtered,
                  "malformed": t.stats.malformed},
        "events": {k: len(v) for k, v in sorted(t.events.items(), key=lambda kv: -len(kv[1]))},
        "lost": [{"cpu": int(r["cpu"]), "line": int(r["line"]), "count": int(r["count"])}
                 for r in t.lost],
        "malformed": [{"line": e.line, "message": e.message} for e in t.errors[:args.errors]],
    }
    if args.format == "json":
        json.dump(info, out, indent=1)
        out.write("\n")
        return 0
    w = out.write
    w(f"file:      {t.source}" + (f" ({t.compression})" if t.compression else "") + "\n")
    w(f"format:    {t.format_description()}\n")
    w(f"clock:     {t.clock} (times in {'seconds' if t.time_unit == 'ns' else 'ticks'})\n")
    w(f"cpus:      {len(cpus)} ({_ranges(cpus)})\n")
    if span:
        w(f"span:      {_fmt_ts(t, span[0])} .. {_fmt_ts(t, span[1])} "
          f"({_fmt_ts(t, span[1] - span[0])}{' s' if t.time_unit == 'ns' else ' ticks'})\n")
    s = t.stats
    w(f"lines:     {s.lines}: {s.events} events, {s.headers} header/comment, "
      f"{s.filtered} filtered, {s.malformed} malformed\n")
    if len(t.lost):
        tot = int(t.lost["count"].sum())
        w(f"lost:      {tot} events in {len(t.lost)} marker(s): " + ", ".join(
            f"CPU {r['cpu']} at line {r['line']} ({r['count']})" for r in t.lost[:5]) + "\n")
    else:
        w("lost:      none\n")
    w("\n  count  event\n")
    for name, n in info["events"].items():
        w(f"{n:7d}  {name}\n")
    if t.errors:
        w(f"\nmalformed lines (first {min(len(t.errors), args.errors)} of {s.malformed}):\n")
        for e in t.errors[:args.errors]:
            w(f"  {e.message}\n")
    return 0


def _ranges(xs):
    if not xs:
        return "-"
    out, a, b = [], xs[0], xs[0]
    for x in xs[1:]:
        if x == b + 1:
            b = x
            continue
        out.append(f"{a}-{b}" if b > a else f"{a}")
        a = b = x
    out.append(f"{a}-{b}" if b > a else f"{a}")
    return ",".join(out)


def build_parser():
    p = argparse.ArgumentParser(prog="ftfast", description="Fast, exact analysis of ftrace text logs.")
    p.add_argument("--version", action="version", version=f"ftfast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("info", help="format, clock, CPUs, span, events per name, lost and malformed lines")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--errors", type=int, default=10, metavar="N", help="malformed lines to show")
    _add_filters(s)
    s.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    warnings.simplefilter("ignore")
    try:
        return args.func(args, sys.stdout)
    except CliError as exc:
        print(f"ftfast: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("ftfast: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("ftfast: out of memory (try --events or --start/--end to load less)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
