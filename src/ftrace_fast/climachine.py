"""The ``ftfast`` commands on a trace of several machines (a host and its guests): each
machine's figures apart (``--machine NAME`` picks one), and the host/guest split
(``ftrace_fast.guest``, G1-G7).  Formatting only, like ``cli``."""

from __future__ import annotations

import argparse
import json

from . import _fmt, _group, cli
from .cli import EXIT_USAGE, CliError
from .trace import load


class MultiMachine(CliError):
    """A command that reads one machine met a trace of several: exit 2 unless the command
    handles them all."""

    def __init__(self, trace):
        self.trace = trace
        names = ", ".join(trace.machines)
        super().__init__(f"{trace.source}: holds {len(trace.machines)} machines ({names}): "
                         "pick one with --machine NAME", EXIT_USAGE)


def load_cached(args, path, kw):
    """load() of the command's input (its file and MORE files, each a machine); a trace of
    several machines is kept on ``args`` so that each machine's figures read one load."""
    paths = [path] + list(getattr(args, "more_files", None) or [])
    key = (tuple(paths), repr(sorted(kw.items(), key=lambda kv: kv[0])))
    cache = vars(args).setdefault("_ftfast_loaded", {})
    t = cache.get(key)
    if t is None:
        t = load(paths if len(paths) > 1 else path, warn=False, **kw)
        if len(t.machines) > 1:
            cache[key] = t
    return t


def select(t, args):
    """The machine --machine names, the trace itself when it has one machine, else
    MultiMachine (unless the command reads them all: ``args._ftfast_all``)."""
    name = getattr(args, "machine", None)
    ms = t.machines
    if name is not None:
        if name not in ms:
            raise CliError(f"{t.source}: no machine {name!r} (machines: {', '.join(ms)})", EXIT_USAGE)
        return ms[name]
    if len(ms) > 1 and not vars(args).get("_ftfast_all"):
        raise MultiMachine(t)
    return t


def mark(args, doc):
    """A document of one machine picked by --machine says which."""
    if getattr(args, "machine", None) is not None:
        doc["source"]["machine"] = args.machine


def machines_source(trace):
    """The ``source`` of a several-machine document: the input, its clock and time unit (one
    for every machine: they are read on one clock) and the machines."""
    return {"file": trace.source, "clock": trace.clock,
            "time_unit": trace.time_unit, "machines": list(trace.machines)}


def _for(args, name):
    a = argparse.Namespace(**vars(args))
    a.machine = name
    return a


def machines_table(t):
    """One row per machine: name, cpus, span, events, lines."""
    rows = []
    for name, m in t.machines.items():
        span = m.span
        cpus = m.cpus()
        rows.append({"machine": name, "cpus": cpus, "ncpus": len(cpus),
                     "span": None if span is None else {"first": span[0], "last": span[1],
                                                        "duration": span[1] - span[0]},
                     "events": m.stats.events, "lines": m.stats.lines})
    return rows


def write_machines(out, t):
    rows = machines_table(t)
    out.write(f"machines:  {len(rows)}\n")
    for r in rows:
        sp = r["span"]
        when = "-" if sp is None else (f"{cli._fmt_ts(t, sp['first'])} .. {cli._fmt_ts(t, sp['last'])}"
                                       f" ({cli._fmt_ts(t, sp['duration'])} s)")
        out.write(f"  {r['machine']}: {r['ncpus']} cpus ({_fmt.ranges(r['cpus'])}), {r['events']} events, "
                  f"span {when}\n")


# -- stats -------------------------------------------------------------------------------------

def cmd_stats(args, out, trace):
    """`ftfast stats` of every machine, then the guest split (in the overview)."""
    overview = not any(getattr(args, d, False) for d in cli.SECTIONS.values())
    docs, errors = {}, {}
    if args.format == "json":
        for name in trace.machines:
            try:
                _, doc, _ = cli.stats_document(_for(args, name))
            except CliError as exc:
                errors[name] = str(exc)
                continue
            doc["source"]["machine"] = name
            docs[name] = doc
        full = {"schema": cli.JSON_SCHEMA, "source": machines_source(trace),
                "machines": docs}
        if errors:
            full["errors"] = errors
        if overview:
            g = guest_document(trace, args)
            if g is not None:
                full["guest"] = g[0]
        json.dump(full, out, indent=1, default=cli._py, allow_nan=False)
        out.write("\n")
        return 0
    for name in trace.machines:
        out.write(f"{'# ' if args.format == 'csv' else ''}== machine {name} ==\n")
        try:
            cli.cmd_stats(_for(args, name), out)
        except CliError as exc:
            out.write(f"note: {exc}\n")
        out.write("\n")
    if overview:
        g = guest_document(trace, args)
        if g is not None:
            _write_guest(out, args, g[1])
    return 0


def _selection(args):
    sel = cli.Selection(args)
    return sel, dict(start=sel.start, end=sel.end, pids=sel.pids, comm=sel.comm)


def guest_document(trace, args, *, required=False):
    """(JSON object, tables) of the guest split of a host+guest trace, or None (no host or
    no guest with sched_switch) unless ``required``."""
    from . import guest
    sel, rk = _selection(args)
    try:
        corr = guest.correlate(trace)
    except ValueError as exc:
        if required:
            raise CliError(str(exc), cli.EXIT_INPUT) from None
        return None
    if not corr:
        if required:
            raise CliError(f"{trace.source}: no guest machine has sched_switch events: nothing to "
                           "split", cli.EXIT_INPUT)
        return None
    doc, tables = {}, []
    for gname, c in corr.items():
        mapping = _group.records(c.mapping)
        tasks = _group.records(c.task_split(**rk))
        exits = _group.records(c.exit_split(**rk))
        src = getattr(args, "latency_from", None) or "wakeup"
        lat = _group.records(c.latency_summary(source=src, **rk))
        doc[gname] = {"host": c.host_name, "mapping": mapping, "tasks": tasks, "exits": exits,
                      "latency": lat}
        pre = f"guest {gname} on host {c.host_name}"
        amb = [r["guest_cpu"] for r in mapping if r["ambiguous"]]
        tables.append(("guest_mapping", f"{pre}: vCPU mapping (G2)"
                       + (f"; AMBIGUOUS for guest CPU {', '.join(map(str, amb))}" if amb else ""),
                       ["guest_cpu", "host_pid", "vcpu", "host_comm", "how", "ambiguous",
                        "covered_pct", "candidates"], mapping))
        tables.append(("guest_tasks", f"{pre}: guest tasks' running time by what the host did "
                       "(G4, G5; ns)",
                       ["pid", "comm", "cpu", "host_pid", "run_ns", "guest_ns", "exit_ns",
                        "steal_ns", "halted_ns", "unknown_ns", "lost_pct", "top_exit"], tasks))
        tables.append(("guest_exits", f"{pre}: exit time under guest tasks by reason (ns)",
                       ["pid", "comm", "cpu", "reason", "exit_ns"], exits))
        tables.append(("guest_latency", f"{pre}: guest wakeup latency (from sched_{src}) split "
                       "into guest- and host-side delay (G6; ns)",
                       ["pid", "comm", "samples", "latency_ns", "guest_side_ns", "host_side_ns",
                        "host_wait_ns", "host_halted_ns", "host_exit_ns", "unknown_ns",
                        "host_side_pct", "max_ns", "max_host_side_ns"], lat))
    return doc, tables


def _write_guest(out, args, tables):
    top = args.top if getattr(args, "top", None) is not None else \
        (20 if args.format == "table" else 0)
    for section, title, cols, rows in tables:
        shown = rows[:top] if top and top > 0 else rows
        if args.format == "csv":
            cli._write_csv(out, section, cols, shown)
        else:
            if len(shown) < len(rows):
                title += f"; top {len(shown)} of {len(rows)}"
            cli._write_table(out, title, cols, shown)


def cmd_guest_stats(args, out):
    """`ftfast stats --guest`: the split tables only."""
    a = argparse.Namespace(**vars(args))
    a._ftfast_all = True
    a.machine = None
    t = cli._read(args.file, a)
    doc, tables = guest_document(t, args, required=True)
    if args.format == "json":
        json.dump({"schema": cli.JSON_SCHEMA, "source": machines_source(t),
                   "filters": cli.Selection(args).as_json(), "guest": doc},
                  out, indent=1, default=cli._py, allow_nan=False)
        out.write("\n")
        return 0
    _write_guest(out, args, tables)
    return 0


# -- diagnose, report, plot ----------------------------------------------------------------------

def findings(trace, th, sel, pids=None):
    """The host's findings (kvm.diagnose, each with its machine) and the guest ones (G7)."""
    from . import guest, kvm
    found = []
    try:
        host, _ = guest.roles(trace)
    except ValueError:
        host = None
    if host is not None:
        for f in kvm.diagnose(trace.machines[host], th, start=sel.start, end=sel.end, cpus=sel.cpus):
            f["subject"] = dict(f["subject"], machine=host)
            found.append(f)
    found += guest.findings(trace, start=sel.start, end=sel.end)
    found = cli._select_findings(trace, found, pids, sel.comm)
    kinds = ("guest_host_loss",) + kvm.KINDS
    found.sort(key=lambda f: (-kvm._SEV[f["severity"]], kinds.index(f["kind"]), -f["score"]))
    return found


def cmd_diagnose(args, out, trace, th, sel):
    found = findings(trace, th, sel, sel.pids)
    if args.top:
        found = found[:args.top]
    if args.format == "json":
        json.dump({"schema": cli.JSON_SCHEMA,
                   "source": machines_source(trace),
                   "filters": sel.as_json(), "thresholds": vars(th), "findings": found},
                  out, indent=1, default=cli._py, allow_nan=False)
        out.write("\n")
        return 0
    out.write(cli.printable(f"{trace.source}: {len(trace.machines)} machines "
                            f"({', '.join(trace.machines)})") + "\n")
    cli.write_findings(out, found)
    return 0


def cmd_report(args, st, trace, th, sel):
    """The report of a host+guest trace: the host's tables, findings and charts, each guest's
    task table, the guest split section and the guest-over-host timeline."""
    import contextlib
    import os
    import sys

    from . import guest, report
    try:
        host, guests = guest.roles(trace)
    except ValueError:
        host, guests = next(iter(trace.machines)), list(trace.machines)[1:]
    tables = []
    caveats = []
    for name in [host] + guests:
        try:
            _, doc, tb = cli.stats_document(_for(st, name))
        except CliError as exc:
            caveats.append(f"{name}: {exc}")
            continue
        tables += [(f"{sec}@{name}", f"{name}: {title}", cols, rows) for sec, title, cols, rows in tb]
        caveats += [f"{name}: {c}" for c in doc["caveats"]]
    g = guest_document(trace, st)
    if g is not None:
        tables += g[1]
    found = findings(trace, th, sel, sel.pids)
    charts = report.charts(trace.machines[host], start=sel.start, end=sel.end, cpus=sel.cpus,
                           pids=sel.pids, comm=sel.comm)
    gc = report.guest_chart(trace, start=sel.start, end=sel.end)
    if gc is not None:
        charts = [gc] + list(charts)
    page = report.render(trace.machines[host], tables=tables, findings=found, charts=charts,
                         caveats=caveats, filters=sel.as_json(),
                         top=20 if args.top is None else args.top)
    if args.output == "-":
        sys.stdout.write(page)
    else:
        tmp = f"{args.output}.part{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(page)
            os.replace(tmp, args.output)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CliError(f"cannot write {args.output}: {exc.strerror or exc}", cli.EXIT_OUTPUT) from None
    if not args.quiet:
        real = [f for f in found if f["kind"] != "caveat"]
        print(f"ftfast report: wrote {args.output} ({len(trace.machines)} machines, {len(real)} "
              f"findings, {len(tables)} tables)", file=sys.stderr)
    return 0


def cmd_plot(args, trace, sel):
    """`ftfast plot --kind timeline` of a host+guest trace: guest tasks over their vCPU
    threads' host rows; other kinds read one machine."""
    import sys

    from . import plot
    if args.kind != "timeline":
        raise MultiMachine(trace)
    kw = dict(start=sel.start, end=sel.end, pids=sel.pids, comm=sel.comm)
    if args.top is not None:
        kw["top"] = args.top
    try:
        p = plot.guest_timeline(trace, **kw)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        p.save(args.output)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}", cli.EXIT_OUTPUT) from None
    cli._notes(args, p.notes)
    if not args.quiet:
        print(f"ftfast plot: wrote {args.output}", file=sys.stderr)
    return 0


__all__ = ["MultiMachine", "load_cached", "select", "machines_table", "guest_document"]
