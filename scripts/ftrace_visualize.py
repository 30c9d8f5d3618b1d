#!/usr/bin/env python3
"""Drop-in for the ftrace analyzer skill's ``scripts/ftrace_visualize.py``, over ftrace_fast.

    python3 scripts/ftrace_visualize.py FILE [options]

Plotting is not in ftrace_fast yet: it lands as ``ftfast plot``.  Until then this script
accepts the same command line, prints one line on stderr saying so (and what to use in the
meantime) and exits 0, so a workflow that runs it after ftrace_stats.py carries on.  It
writes no file.  A missing FILE argument is a usage error (exit 2).
"""

import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="ftrace_visualize.py",
                                description="Plots of an ftrace log (coming as 'ftfast plot').")
    p.add_argument("input_file", help="ftrace text (plain or compressed), or - for stdin")
    p.parse_known_args(argv)
    print("ftrace_visualize.py: plotting is not in ftrace_fast yet, it lands as 'ftfast plot'; "
          "meanwhile use 'ftfast stats FILE --cpu-stats --task-stats' (or --format json) and "
          "open FILE in Perfetto (ui.perfetto.dev) or KernelShark", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
