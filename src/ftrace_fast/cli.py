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

import numpy as np

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


# -- tables ------------------------------------------------------------------------------------

def _fmt_cell(v):
    if isinstance(v, float):
        return f"{v:.1f}" if v == v else "-"
    if v is None:
        return "-"
    return str(v)


def _write_table(out, title, columns, rows):
    """An aligned text table: numbers right-aligned, text left-aligned."""
    cells = [[_fmt_cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r[c], (int, float)) or r[c] is None for r in rows) for c in columns]
    if title:
        out.write(f"\n{title}\n")
    out.write("  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(columns, widths, numeric)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric)).rstrip() + "\n")


def _write_csv(out, title, columns, rows):
    import csv
    out.write(f"# {title}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([r[c] if r[c] is not None else "" for c in columns])
    out.write("\n")


# -- stats ---------------------------------------------------------------------------------------

SECTIONS = ("tasks", "cpus", "wakeups", "switches", "latency", "migrations")


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _records(arr, names=None):
    names = names or arr.dtype.names
    cols = {n: arr[n].tolist() for n in names}
    return [{n: (None if isinstance(cols[n][i], float) and cols[n][i] != cols[n][i] else cols[n][i])
             for n in names} for i in range(len(arr))]


def _counts_by_comm_pid(t, comm_ids, pids):
    """[{comm, count, pids: [{pid, count}]}] of (comm, pid) pairs as printed in the events."""
    if not len(comm_ids):
        return []
    key = comm_ids.astype(np.int64) << 32 | (pids.astype(np.int64) & 0xffffffff)
    u, n = np.unique(key, return_counts=True)
    by = {}
    for k, c in zip(u.tolist(), n.tolist()):
        cid, pid = k >> 32, k & 0xffffffff
        if pid >= 1 << 31:
            pid -= 1 << 32
        name = t.comms[cid] if cid >= 0 else ""
        e = by.setdefault(name, {"comm": name, "count": 0, "pids": []})
        e["count"] += c
        e["pids"].append({"pid": pid, "count": c})
    rows = sorted(by.values(), key=lambda r: (-r["count"], r["comm"]))
    for r in rows:
        r["pids"].sort(key=lambda x: (-x["count"], x["pid"]))
    return rows


def _wakeup_rows(t, source):
    name = "sched_waking" if source == "waking" else "sched_wakeup"
    a = t.events.get(name)
    if a is None or not len(a):
        return name, []
    return name, _counts_by_comm_pid(t, a["task_comm"], a["task_pid"])


def _switch_rows(t):
    """Per (comm, pid) as printed in sched_switch: switches in (as next), out voluntarily
    (prev_state not R/R+) and involuntarily (R/R+)."""
    from . import sched
    a = t.events.get("sched_switch")
    if a is None or not len(a):
        return []
    rows = {}
    def add(comm, pid, field, mask=None):
        c, p = comm, pid
        if mask is not None:
            c, p = c[mask], p[mask]
        for r in _counts_by_comm_pid(t, c, p):
            for x in r["pids"]:
                e = rows.setdefault((r["comm"], x["pid"]), {"comm": r["comm"], "pid": x["pid"],
                                                            "switches_in": 0, "voluntary": 0,
                                                            "involuntary": 0})
                e[field] += x["count"]
    add(a["next_comm"], a["next_pid"], "switches_in")
    runnable = (a["prev_state"] & 0xffff | (a["prev_state"] & 0x40000)) == 0
    add(a["prev_comm"], a["prev_pid"], "involuntary", runnable)
    add(a["prev_comm"], a["prev_pid"], "voluntary", ~runnable)
    del sched
    return sorted(rows.values(), key=lambda r: (-r["switches_in"], r["comm"], r["pid"]))


def _time_to_str(t, v):
    return _fmt_ts(t, v)


def cmd_stats(args, out):
    from . import sched
    t = _load(args)
    if "sched_switch" not in t.events and (args.task_stats or args.cpu_stats or args.latency):
        raise CliError(f"{t.source}: no sched_switch events: --task-stats, --cpu-stats and "
                       "--latency need sched:sched_switch", EXIT_INPUT)
    chosen = [s for s in SECTIONS if getattr(args, {"tasks": "task_stats", "cpus": "cpu_stats",
                                                    "wakeups": "wakeup_stats",
                                                    "switches": "switch_stats",
                                                    "latency": "latency",
                                                    "migrations": "migrations"}[s])]
    if not chosen:
        chosen = ["cpus", "tasks", "latency"] if "sched_switch" in t.events else ["wakeups"]
    has_sched = "sched_switch" in t.events
    w = sched.window(t) if has_sched else (t.span or (0, 0))
    doc = {"schema": 1, "source": {"file": t.source, "format": t.format_description(),
                                   "clock": t.clock, "time_unit": t.time_unit,
                                   "window": {"start": w[0], "end": w[1], "duration": w[1] - w[0]}}}
    if has_sched:
        doc["caveats"] = sched.caveats(t)
    top = args.top
    tables = []
    if "cpus" in chosen:
        rows = _records(sched.cpu_summary(t))
        doc["cpus"] = rows
        tables.append(("CPUs", ["cpu", "busy_ns", "idle_ns", "unknown_ns", "utilization_pct",
                                "switches", "irq_ns", "softirq_ns"], rows))
    if "tasks" in chosen:
        s = sched.task_summary(t)
        key = args.sort or "run_ns"
        if key not in s.dtype.names:
            raise CliError(f"--sort: no column {key!r} in the task table (try run_ns, wait_ns, "
                           "blocked_ns, switches_in, lat_max_ns)", EXIT_USAGE)
        o = np.lexsort((s["pid"], -np.nan_to_num(s[key].astype(float), nan=-1)))
        rows = _records(s[o])
        for r in rows:
            r["wakeup_latency"] = {"count": r["lat_count"], "mean_ns": r["lat_mean_ns"],
                                   "p50_ns": r["lat_p50_ns"], "p90_ns": r["lat_p90_ns"],
                                   "p99_ns": r["lat_p99_ns"], "max_ns": r["lat_max_ns"],
                                   "max_at": r["lat_max_ts"]}
        doc["tasks"] = rows
        tables.append(("Tasks (times in " + sched.unit(t) + ")",
                       ["pid", "tgid", "comm", "run_ns", "wait_ns", "sleep_ns", "blocked_ns",
                        "switches_in", "inferred_switch_ins", "preemptions", "wakeups",
                        "migrations", "lat_p99_ns", "lat_max_ns"], rows[:top] if top else rows))
    if "latency" in chosen:
        lat = sched.wakeup_latencies(t, source=args.latency_from)
        lt = sched.latency_table(t, source=args.latency_from, sort=args.latency_sort)
        lt = lt[lt["lat_count"] > 0]
        rows = _records(lt, ["pid", "comm", "run_ns", "switches_in", "lat_count", "lat_mean_ns",
                             "lat_p50_ns", "lat_p99_ns", "lat_max_ns", "lat_max_ts"])
        doc["latency"] = dict(sched.latency_stats(lat["latency_ns"]), source=
                              "sched_" + args.latency_from, tasks=rows)
        g = doc["latency"]
        tables.append((f"Wakeup latency from sched_{args.latency_from}: {g['count']} samples, "
                       f"mean {_fmt_cell(g['mean_ns'])}, p50 {g['p50_ns']}, p90 {g['p90_ns']}, "
                       f"p99 {g['p99_ns']}, max {g['max_ns']} ({sched.unit(t)})",
                       ["pid", "comm", "run_ns", "switches_in", "lat_count", "lat_mean_ns",
                        "lat_p99_ns", "lat_max_ns", "lat_max_ts"], rows[:top] if top else rows))
    if "wakeups" in chosen:
        ev, rows = _wakeup_rows(t, args.wakeups_from)
        if not rows and args.wakeups_from == "waking" and "sched_wakeup" in t.events:
            ev, rows = _wakeup_rows(t, "wakeup")
        doc["wakeups"] = rows
        doc["wakeups_event"] = ev
        tables.append((f"Wakeups ({ev} lines per woken comm)", ["count", "comm"],
                       rows[:top] if top else rows))
    if "switches" in chosen:
        rows = _switch_rows(t)
        doc["switches"] = rows
        tables.append(("Context switches (per comm and pid as printed)",
                       ["switches_in", "voluntary", "involuntary", "pid", "comm"],
                       rows[:top] if top else rows))
    if "migrations" in chosen:
        a = t.events.get("sched_migrate_task")
        rows = []
        if a is not None and len(a):
            key = a["task_pid"].astype(np.int64)
            u, n = np.unique(key, return_counts=True)
            last = {}
            for p, c in zip(a["task_pid"].tolist(), a["task_comm"].tolist()):
                last[p] = c
            rows = sorted(({"pid": p, "comm": t.comms[last[p]], "count": c}
                           for p, c in zip(u.tolist(), n.tolist())),
                          key=lambda r: (-r["count"], r["pid"]))
        doc["migrations"] = rows
        tables.append(("Migrations (sched_migrate_task per task)", ["count", "pid", "comm"],
                       rows[:top] if top else rows))
    if args.format == "json":
        json.dump(doc, out, indent=1, default=_py)
        out.write("\n")
        return 0
    writer = _write_csv if args.format == "csv" else _write_table
    if args.format == "table":
        out.write(f"{t.source}: {t.format_description()}; clock {t.clock}; window "
                  f"{_fmt_ts(t, w[0])} .. {_fmt_ts(t, w[1])}\n")
        for c in doc.get("caveats", []):
            out.write(f"note: {c}\n")
    for title, cols, rows in tables:
        writer(out, title, cols, rows)
    return 0


# -- filter --------------------------------------------------------------------------------------

def cmd_filter(args, out):
    import os
    import shutil
    import tempfile
    from . import _ftparse
    from ._source import Source, blocks
    from .trace import LINE_KINDS
    spool = None
    path = args.file
    if path == "-":
        # the text is read twice: keep stdin in a temporary file
        spool = tempfile.NamedTemporaryFile(prefix="ftfast-", delete=False)
        shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        spool.close()
        path = spool.name
    try:
        args.file = path
        t = _load(args, mark_lines=True)
        kinds = t.line_kinds
        keep = np.zeros(len(kinds) + 1, np.uint8)
        keep[1:] = (kinds == LINE_KINDS["event"]) | (kinds == LINE_KINDS["header"])
        try:
            dst = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}", EXIT_OUTPUT) from None
        src = Source(path)
        line = 1
        outbuf = None
        try:
            for view, n, final in blocks(src.stream):
                if outbuf is None or len(outbuf) < n:
                    outbuf = bytearray(max(n, 1 << 20))
                nbytes, nlines = _ftparse.copy_lines(view, n, line, keep, outbuf)
                line += nlines
                dst.write(memoryview(outbuf)[:nbytes])
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}", EXIT_OUTPUT) from None
        finally:
            src.close()
            if dst is not sys.stdout.buffer:
                dst.close()
        kept = int(keep.sum())
        if not args.quiet:
            print(f"ftfast filter: kept {kept} of {t.stats.lines} lines ({t.stats.events} events, "
                  f"{t.stats.headers} header lines); {t.stats.filtered} filtered out, "
                  f"{t.stats.malformed} malformed dropped", file=sys.stderr)
    finally:
        if spool is not None:
            os.unlink(spool.name)
    return 0


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

    s = sub.add_parser("stats", help="per-task, per-CPU, wakeup, switch, latency and migration statistics")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    g = s.add_argument_group("sections (default: CPUs, tasks and latency)")
    g.add_argument("--task-stats", action="store_true", help="run / wait / sleep / blocked per task")
    g.add_argument("--cpu-stats", action="store_true", help="busy / idle / utilization per CPU")
    g.add_argument("--wakeup-stats", action="store_true", help="wakeups received per woken comm")
    g.add_argument("--switch-stats", action="store_true", help="context switches per comm and pid")
    g.add_argument("--latency", action="store_true", help="wakeup latency, global and per task")
    g.add_argument("--migrations", action="store_true", help="sched_migrate_task per task")
    s.add_argument("--top", type=int, default=20, metavar="N", help="rows per table (0: all; JSON has all)")
    s.add_argument("--sort", metavar="KEY", help="task table column to sort by (default run_ns)")
    s.add_argument("--latency-from", choices=("wakeup", "waking"), default="wakeup")
    s.add_argument("--latency-sort", choices=("max", "mean", "runtime", "switches", "count"), default="max")
    s.add_argument("--wakeups-from", choices=("waking", "wakeup"), default="waking",
                   help="count sched_waking (default, as the classic pipeline) or sched_wakeup lines")
    s.add_argument("--format", choices=("table", "json", "csv"), default="table")
    _add_filters(s)
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("filter", help="write the lines of selected tasks / CPUs / events / times as ftrace text")
    s.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    s.add_argument("-o", "--output", required=True, help="output file, or - for stdout")
    _add_filters(s)
    s.set_defaults(func=cmd_filter)
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
