"""Machines: the host and guest traces that one load holds, kept apart.

``trace-cmd report -i host.dat -i guest.dat`` (and ``trace-cmd record -A``) prints several
machines on one time line, every line prefixed with its file's name (``trace.dat: ``,
``trace-guest.dat: ``).  The parser records that prefix as runs of lines (the first line of
each run and the prefix's id), and nothing else: the event arrays stay exactly those of a
one-machine trace.  Here the arrays are split by machine into one ``Trace`` each, so that
every analysis reads one machine's CPUs, pids and comms, unchanged (M1-M3).

M1. A line's machine is its file-name prefix; a line without one (a stack frame, a message
    libtraceevent printed unprefixed) belongs to the machine of the prefixed line before it,
    and lines before the first prefixed line to the first machine.  ``load([a, b])`` loads
    each file as a machine named by its file name (its own machines when it holds several).
M2. A trace with one machine is the machine: ``Trace.machines`` is ``{name: trace}``.  A trace
    with several keeps its merged arrays for line-level uses (``ftfast filter``, counts), and
    no analysis mixes its machines: every analysis given the whole (``sched``, ``kvm``, the
    charts, the Perfetto export) reads one machine, the same for all: the one with the most
    sched_switch lines, then the most kvm_entry/kvm_exit lines, then the first; it says so
    first in ``sched.caveats`` and in a caveat of ``kvm.diagnose``.  One asks
    ``trace.machines[name]`` for any machine (``ftfast``: ``--machine NAME``).
M3. A machine's Trace shares its parent's intern tables (comm, symbol ids mean the same) and
    text arena; its ``stats`` count the lines of its runs (lines, events and malformed lines
    exact, malformed lines as far as the parser keeps error records; header and filtered
    lines are not told apart per machine and are counted together as ``filtered``), ``errors`` and ``lost`` are those of its lines.
"""

from __future__ import annotations

import os

import numpy as np


def _runs(trace):
    runs = getattr(trace, "_machine_runs", None)
    names = getattr(trace, "_machine_names", None) or []
    if runs is None or not len(runs):
        return names, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return names, np.ascontiguousarray(runs[:, 0]), np.ascontiguousarray(runs[:, 1])


def machine_of_lines(trace, lines):
    """Machine index (into the trace's prefix names) of each line number (M1)."""
    _, first, ids = _runs(trace)
    if not len(first):
        return np.zeros(len(lines), np.int64)
    k = np.searchsorted(first, np.asarray(lines), side="right") - 1
    return ids[np.maximum(k, 0)]


def _default_name(trace):
    names, _, _ = _runs(trace)
    if names:
        return names[0]
    return os.path.basename(trace.source) or trace.source or "trace"


def split(trace):
    """{machine name: Trace} of a loaded trace (M1-M3)."""
    from .trace import Stats, Trace
    names, first, ids = _runs(trace)
    present = np.unique(ids) if len(ids) else ids
    if len(present) <= 1:
        if trace.machine is None:      # a machine of another trace keeps its name
            trace.machine = names[int(present[0])] if len(present) else _default_name(trace)
        return {trace.machine: trace}
    # lines per machine from the runs: run i covers [first[i], first[i + 1])
    total = trace.stats.lines
    run_len = np.diff(np.append(first, total + 1))
    run_len[0] += first[0] - 1
    lines_of = np.bincount(ids, weights=run_len, minlength=len(names)).astype(np.int64)
    masks = {}
    for name, a in trace.events.items():
        masks[name] = machine_of_lines(trace, a["line"]) if len(a) else np.zeros(0, np.int64)
    lost_m = machine_of_lines(trace, trace.lost["line"])
    err_m = machine_of_lines(trace, [e.line for e in trace.errors]) if trace.errors else []
    out = {}
    for mid in present.tolist():
        t = Trace(layouts=trace._layouts)
        t.machine = names[mid]
        t.events = {n: a[masks[n] == mid] for n, a in trace.events.items()}
        t.events = {n: a for n, a in t.events.items() if len(a)}
        t.comms, t.symbols, t.text_arena = trace.comms, trace.symbols, trace.text_arena
        t.errors = [e for e, m in zip(trace.errors, err_m) if m == mid]
        t.lost = trace.lost[lost_m == mid]
        t.clock, t.source, t.compression = trace.clock, trace.source, trace.compression
        t.format = trace.format
        nev = sum(len(a) for a in t.events.values())
        nmal = len(t.errors)
        lines = int(lines_of[mid])
        t.stats = Stats(lines=lines, events=nev, headers=0,
                        filtered=lines - nev - nmal, malformed=nmal,
                        error_counts={})
        out[names[mid]] = t
    return out


def combine(traces):
    """One Trace holding the machines of several loads (M1): each file is a machine named by
    its file name, or its own machines when it holds several."""
    from .trace import Stats, Trace
    machines = {}
    for tr in traces:
        ms = tr.machines
        base = os.path.basename(tr.source) or tr.source
        for name, m in ms.items():
            key = base if len(ms) == 1 else name
            if key in machines:
                key = tr.source if len(ms) == 1 else f"{base}:{name}"
            n, k = key, 2
            while n in machines:
                n, k = f"{key}#{k}", k + 1
            m.machine = n
            machines[n] = m
    top = Trace()
    top.source = " + ".join(tr.source for tr in traces)
    top.clock = traces[0].clock if len({tr.clock for tr in traces}) == 1 else "mixed"
    top.format = dict(traces[0].format)
    top.stats = Stats(lines=sum(tr.stats.lines for tr in traces),
                      events=sum(tr.stats.events for tr in traces),
                      headers=sum(tr.stats.headers for tr in traces),
                      filtered=sum(tr.stats.filtered for tr in traces),
                      malformed=sum(tr.stats.malformed for tr in traces), error_counts={})
    top.errors = [e for tr in traces for e in tr.errors]
    top.derived("machines", (), lambda: machines)
    top.machine = None
    return top


def scoped(trace):
    """The machine the scheduling analysis of ``trace`` reads (M2): the trace itself when it
    has one machine."""
    ms = trace.machines
    if len(ms) <= 1:
        return trace
    names = list(ms)
    return max(ms.values(), key=lambda m: (m.count("sched_switch"),
                                           m.count("kvm_entry") + m.count("kvm_exit"),
                                           -names.index(m.machine)))


def scope_note(trace, machine):
    return (f"{trace.source} holds {len(trace.machines)} machines ({', '.join(trace.machines)}): "
            f"the figures are those of {machine.machine} (the most sched_switch, then kvm lines); "
            "trace.machines[NAME] (ftfast --machine NAME) for another")
