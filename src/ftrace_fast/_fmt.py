"""Numbers and times written for a person: the tables, sentences, chart labels and reports
all format them here, so a duration or a CPU list reads the same everywhere.

``unit`` is a trace's ``time_unit``: 'ns', or 'ticks' for integer clocks (sched D8).
"""

from __future__ import annotations


def ranges(xs):
    """Sorted integers as runs: [0, 1, 2, 5] -> '0-2,5'; '-' for none."""
    out = []
    for x in xs:
        if out and x == out[-1][1] + 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in out) or "-"


def duration(v, unit):
    """A time for a sentence: '4.2 ms' (3 significant digits), or 'N ticks' for tick clocks;
    '?' for None."""
    if v is None:
        return "?"
    if unit != "ns":
        return f"{int(v)} ticks"
    v = float(v)
    for div, u in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if abs(v) >= div:
            return f"{v / div:.3g} {u}"
    return f"{v:.0f} ns"


def timestamp(v, unit):
    """A trace time as the trace prints it: seconds with 6 decimals, or the tick count; '-'
    for None."""
    if v is None:
        return "-"
    return f"{v / 1e9:.6f}" if unit == "ns" else str(v)
