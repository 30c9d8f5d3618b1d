#!/usr/bin/env python3
"""Drop-in for the ftrace analyzer skill's ``scripts/ftrace_stats.py``, over ftrace_fast.

    python3 scripts/ftrace_stats.py FILE [--wakeup-stats] [--switch-stats] [--cpu-stats]
                                         [--blocking-stats] [--all] [--top N]
                                         [any other `ftfast stats` option]

--wakeup-stats   sched_waking lines per woken comm (sched_wakeup if the trace has no
                 sched_waking; a note on stderr says so)
--switch-stats   sched_switch lines per next_comm (switches in)
--blocking-stats sched_switch lines per prev_comm whose prev_state has D (blocked, I/O wait)
--cpu-stats      ftfast's CPU table: busy / idle / unknown time, utilization, switches

The three count sections print ``uniq -c`` lines (the count right-aligned in 7 columns, a
space, the comm), sorted by count descending and, for equal counts, by comm descending as
``LC_ALL=C sort -rn`` orders them; the first --top (20) lines.  With one section flag the
output is only those lines, so it diffs against the manual pipelines

    grep sched_waking FILE | awk -F'comm=' '{print $2}' | awk '{print $1}' | sort | uniq -c | sort -rn | head -20
    grep sched_switch FILE | awk -F'next_comm=' '{print $2}' | awk '{print $1}' | sort | uniq -c | sort -rn | head -20

The counts equal the pipelines' for every comm without a space.  A comm with spaces
(``CPU 0/KVM``, ``IO io1``) is kept whole here, where the awk split keeps only its first word
and so adds every ``CPU n/KVM`` thread into one ``CPU`` row.  Several sections (or none: all
four, like the original script) print a ``== title ==`` line before each.

Other options go to ``ftfast stats`` (filters --comm/--pid/--tgid/--cpu/--start/--end/--events,
--strict, -q); with ``--format json`` or ``--format csv`` this script is ``ftfast stats``
itself.  Exit codes are ftfast's (0 success, 1 internal error, 2 bad usage, 3 unreadable or
non-ftrace input, 4 output not writable, 5 malformed line with --strict, 6 out of memory,
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
        print(f"ftrace_stats.py: ftrace_fast is not installed ({exc}): run 'pip install .' in the "
              "repository", file=sys.stderr)
        sys.exit(1)

from ftrace_fast._text import printable  # noqa: E402

SECTIONS = ("wakeup", "switch", "blocking", "cpu")
TITLES = {"wakeup": "Top woken threads (sched_waking lines per woken comm)",
          "switch": "Top scheduled threads (sched_switch lines per next_comm)",
          "blocking": "Top blocking threads (sched_switch lines per prev_comm with prev_state D)",
          "cpu": "CPU utilization"}


def uniq_c(counts, top):
    """Lines as `sort | uniq -c | sort -rn | head -N` prints them (LC_ALL=C)."""
    items = sorted(((n, c) for c, n in counts.items() if n > 0),
                   key=lambda x: (x[0], x[1].encode("utf-8", "surrogateescape")), reverse=True)
    if top and top > 0:
        items = items[:top]
    # a comm is trace text: its control characters escaped before they reach a terminal
    return [f"{n:7d} {printable(c)}" for n, c in items]


def by_comm(rows, field):
    out = {}
    for r in rows:
        out[r["comm"]] = out.get(r["comm"], 0) + r[field]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="ftrace_stats.py", add_help=True,
                                description="Scheduling statistics of an ftrace log (ftrace_fast).",
                                epilog="Other options are passed to 'ftfast stats'.")
    p.add_argument("input_file", help="ftrace text (plain or compressed), or - for stdin")
    p.add_argument("--wakeup-stats", action="store_true")
    p.add_argument("--switch-stats", action="store_true")
    p.add_argument("--cpu-stats", action="store_true")
    p.add_argument("--blocking-stats", action="store_true")
    p.add_argument("--all", action="store_true", help="every section (the default)")
    p.add_argument("--top", type=int, default=20, help="lines per section (default 20, 0: all)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="json / csv: run 'ftfast stats' with these sections")
    args, rest = p.parse_known_args(argv)
    chosen = [s for s in SECTIONS if getattr(args, f"{s}_stats")]
    flags = {"wakeup": "--wakeup-stats", "switch": "--switch-stats",
             "blocking": "--switch-stats", "cpu": "--cpu-stats"}
    if args.all or not chosen:
        # every section; without section flags ftfast skips the CPU table, instead of
        # failing, when the trace has no sched_switch
        chosen, ft_flags = list(SECTIONS), []
    else:
        ft_flags = sorted({flags[s] for s in chosen})
    ft_argv = ["stats", args.input_file, *ft_flags, *rest]
    if args.format != "table":
        return cli.main(ft_argv + ["--format", args.format]
                        + (["--top", str(args.top)] if "--top" in (argv or sys.argv) else []))
    if args.top < 0:
        print("ftrace_stats.py: --top must be 0 (all) or more", file=sys.stderr)
        return cli.EXIT_USAGE
    ft = cli.build_parser().parse_args(ft_argv)
    out = cli._Out(sys.stdout)

    def run():
        t, doc, tables = cli.stats_document(ft)
        for s in chosen:
            if len(chosen) > 1:
                out.write(f"== {TITLES[s]} ==\n")
            if s == "wakeup":
                if doc["wakeups_event"] != "sched_waking":
                    print(f"ftrace_stats.py: no sched_waking lines: counting {doc['wakeups_event']}",
                          file=sys.stderr)
                lines = uniq_c({r["comm"]: r["count"] for r in doc["wakeups"]}, args.top)
            elif s == "switch":
                lines = uniq_c(by_comm(doc["switches"], "switches_in"), args.top)
            elif s == "blocking":
                lines = uniq_c(by_comm(doc["switches"], "switches_out_D"), args.top)
            elif "cpus" not in doc:
                lines = ["(no sched_switch events: no CPU table)"]
            else:
                rows = doc["cpus"]
                cli._write_table(out, None, ["cpu", "busy_ns", "idle_ns", "unknown_ns",
                                             "utilization_pct", "switches"], rows)
                lines = []
            for line in lines:
                out.write(line + "\n")
            if len(chosen) > 1:
                out.write("\n")
        return 0
    # the exit codes and one-line errors of ftfast (a closed pipe is success, SIGTERM 143)
    return cli.guarded(run, "ftrace_stats.py", out)


if __name__ == "__main__":
    sys.exit(main())
