#!/usr/bin/env python3
"""The ftrace analyzer skill's ``scripts/ftrace_visualize.py``, over ftrace_fast: the standard
charts of a trace, written next to it.

    python3 scripts/ftrace_visualize.py FILE [--outdir DIR] [--format png|svg|pdf]
                                             [--comm RE] [--pid LIST] [--tgid LIST]
                                             [--cpu LIST] [--start T] [--end T] [-q]

Loads FILE once and writes ``<name>.cpu-util.png``, ``.timeline.png``, ``.latency.png``,
``.switches.png``, ``.wakeups.png`` and, when the trace has kvm_exit lines, ``.kvm-exits.png``
(``ftfast plot --kind ...`` for each) beside FILE, or
into ``--outdir``; ``<name>`` is FILE's name without ``.txt`` and a compression suffix (``stdin``
for ``-``).  Prints the path of every file written, one per line.  The filters are
``ftfast plot``'s: ``--comm``/``--pid``/``--tgid`` choose the timeline's tasks and the latency,
switch and wakeup charts' tasks and the exit chart's vCPU threads (the CPU heat map shows
CPUs, so it ignores them).  A chart
whose events the trace lacks (wakeups without sched_waking/sched_wakeup) is skipped with a
note on stderr (a KVM host traced with kvm_exit but without sched_switch gets its exit chart
alone).  Each chart is written to a temporary file beside its name and renamed on success (a
device, FIFO or symlink target is written through).  Exit codes are ftfast's (0 success,
1 internal error, 2 bad usage, 3 unreadable or non-ftrace input or neither sched_switch nor
kvm_exit, 4 output not writable, 5 malformed line with --strict, 6 out of memory,
130 interrupted, 143 terminated).
"""

import argparse
import os
import sys

try:
    from ftrace_fast import _entry  # NumPy-free: NumPy's knobs go in before it loads
    _entry.before_numpy()
    from ftrace_fast import cli
except ImportError:  # a checkout built in place (pip install -e .) but not on sys.path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))
    try:
        from ftrace_fast import _entry
        _entry.before_numpy()
        from ftrace_fast import cli
    except ImportError as exc:
        print(f"ftrace_visualize.py: ftrace_fast is not installed ({exc}): run 'pip install .' in "
              "the repository", file=sys.stderr)
        sys.exit(1)

from ftrace_fast._text import printable  # noqa: E402

_SUFFIXES = (".gz", ".xz", ".bz2", ".zst", ".txt", ".log", ".trace")


def _stem(path):
    if path == "-":
        return "stdin"
    name = os.path.basename(path)
    changed = True
    while changed:
        changed = False
        for s in _SUFFIXES:
            if name.endswith(s) and len(name) > len(s):
                name = name[:-len(s)]
                changed = True
    return name


def run(args):
    from ftrace_fast import plot
    sel = cli.Selection(args)
    outdir = args.outdir or (os.path.dirname(os.path.abspath(args.file)) if args.file != "-"
                             else os.getcwd())
    if not os.path.isdir(outdir):
        raise cli.CliError(f"cannot write into {outdir}: no such directory", cli.EXIT_OUTPUT)
    stem = os.path.join(outdir, _stem(args.file))
    paths = {k: f"{stem}.{k}.{args.format}" for k in plot.KINDS}
    for k in plot.STANDARD:
        cli._check_output(paths[k], args.file)
    args.command = "visualize"
    # a KVM host traced without sched_switch still has its exit chart
    t, pids = cli._analysis_input(args, sel, ("sched_switch", "kvm_exit"))
    kinds = plot.standard(t)
    for k in kinds:
        if k not in plot.STANDARD:
            cli._check_output(paths[k], args.file)
    rng = dict(start=sel.start, end=sel.end, cpus=sel.cpus)
    tasks = dict(pids=pids, comm=sel.comm)
    notes = []
    for kind in kinds:
        need = plot.NEEDS[kind]
        if not any(t.count(e) for e in need):
            print(f"ftrace_visualize.py: note: no {' or '.join(need)} events: "
                  f"{kind} chart skipped", file=sys.stderr)
            continue
        kw = dict(rng) if kind == "cpu-util" else dict(rng, **tasks)
        p = plot.plot(t, kind, **kw)
        # a temporary file beside it renamed on success; a device, FIFO or symlink target
        # written through; a failed write is exit 4
        with cli._output(paths[kind], "wb", None) as f:
            p.save(f, format=args.format)
        for n in p.notes:
            if n not in notes:
                notes.append(n)
        print(printable(paths[kind]), flush=True)
    if not args.quiet:
        for n in notes:
            print(printable(f"ftrace_visualize.py: note: {n}"), file=sys.stderr)
    return 0


def main(argv=None):
    p = cli._Parser(prog="ftrace_visualize.py",
                    description="The standard charts of an ftrace log (ftfast plot --kind "
                                "cpu-util, timeline, latency, switches, wakeups, and kvm-exits "
                                "when the trace has kvm_exit).")
    p.add_argument("file", help="ftrace text (plain or compressed), or - for stdin")
    p.add_argument("--outdir", metavar="DIR", help="where to write (default: beside FILE)")
    p.add_argument("--format", choices=("png", "svg", "pdf"), default="png")
    cli._add_filters(p)
    args = p.parse_args(argv)
    # the exit codes and one-line errors of ftfast (SIGTERM 143, out of memory 6, ...)
    return cli.guarded(lambda: run(args), "ftrace_visualize.py")


if __name__ == "__main__":
    sys.exit(main())
