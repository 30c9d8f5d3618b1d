"""Pictures of a trace's scheduling: CPU utilization heat map, task timeline, wakeup latency
distribution, context-switch and wakeup rates, VM exit rates and handling times.

Every function takes a loaded :class:`~ftrace_fast.Trace` and the restrictions of
``ftrace_fast.sched`` (``start=``, ``end=``, ``cpus=``, ``pids=``, ``comm=``) and returns a
:class:`Plot`: the matplotlib figure and, in ``Plot.data``, the arrays it draws (the tests
compare them with the analysis, and a report can reuse them).  ``plot(trace, kind, path)``
draws one kind by name (``KINDS``) and saves it as PNG, SVG or PDF.

matplotlib is imported inside the drawing code only, and figures are made with
``matplotlib.figure.Figure`` rather than pyplot: no display, no global backend switch, nothing
left open in the caller's interpreter (a notebook keeps its own backend).

Time axes count from the trace's first event (``Trace.span[0]``), whatever ``start=`` says, so
charts of the same trace line up; the axis label gives that origin as the trace prints it.

The timeline never draws one patch per interval: the state intervals of each task row are
accumulated into the pixel columns of the axes (time per state per column, one ``bincount``)
and every column shows the state the task spent most of that column's time in, so a trace with
millions of intervals costs one pass over them and one image.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from . import _fmt, _ftsched, _group, sched
from . import machines as _machines
from ._output import atomic_output
from .sched import DEAD, RUNNABLE, RUNNING, SLEEP_D, SLEEP_OTHER, SLEEP_S, UNKNOWN
from .trace import _time_arg

#: what each state looks like in a timeline (value: label, colour)
STATE_STYLE = {
    RUNNING: ("Running", "#2ca02c"),
    RUNNABLE: ("Runnable (waiting for a CPU)", "#d62728"),
    SLEEP_S: ("Sleeping (S)", "#c6dbef"),
    SLEEP_D: ("Blocked (D, uninterruptible)", "#6a3d9a"),
    SLEEP_OTHER: ("Sleeping (other state)", "#e5e5e5"),
    DEAD: ("Dead", "#525252"),
    UNKNOWN: ("Unknown (lost events)", "#fdbf6f"),
}
NSTATES = len(STATE_STYLE)
FORMATS = ("png", "svg", "pdf")
DPI = 100
WIDTH_IN = 12.0


class Plot:
    """A drawn figure and what it shows.

    ``figure``: the matplotlib Figure; ``data``: the arrays drawn (documented per kind);
    ``notes``: sentences for the reader (lost events, nothing selected, tasks left out).
    """

    def __init__(self, kind, figure, data, notes=()):
        self.kind = kind
        self.figure = figure
        self.data = data
        self.notes = list(notes)

    def save(self, path, format=None):
        """Write the figure; the format comes from ``format`` or the file name's suffix."""
        fmt = format or output_format(path)
        if hasattr(path, "write"):
            self.figure.savefig(path, format=fmt, dpi=DPI, **_save_options(fmt))
            return path
        # a temporary file renamed on success; devices, FIFOs and symlink targets written through
        with atomic_output(path, "wb") as f:
            self.figure.savefig(f, format=fmt, dpi=DPI, **_save_options(fmt))
        return path

    def to_bytes(self, format="png"):
        """The image as bytes (an HTML report embeds these)."""
        import io
        buf = io.BytesIO()
        self.figure.savefig(buf, format=format, dpi=DPI, **_save_options(format))
        return buf.getvalue()


def _save_options(fmt):
    # zlib level 1: flat-colour charts grow little and encode much faster than at level 6
    return {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}


def output_format(path):
    """'png', 'svg' or 'pdf' from a file name; ValueError for anything else."""
    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the image format of {str(path)!r}: name it .png, .svg or .pdf")
    return ext


# -- shared pieces --------------------------------------------------------------------------------

def _figure(height_in):
    from matplotlib.figure import Figure
    return Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)


class _TimeAxis:
    """Trace times (ns or ticks) to axis units counted from the trace's first event, in s / ms
    / us chosen by the span shown (ticks stay ticks)."""

    def __init__(self, trace, lo, hi):
        span = trace.span
        self.origin = span[0] if span else lo
        self.ticks = trace.time_unit != "ns"
        width = max(hi - lo, 1)
        if self.ticks:
            self.div, self.unit = 1.0, "ticks"
        elif width >= 2e9:
            self.div, self.unit = 1e9, "s"
        elif width >= 2e6:
            self.div, self.unit = 1e6, "ms"
        else:
            self.div, self.unit = 1e3, "µs"
        self.lo, self.hi = lo, hi

    def __call__(self, t):
        return (np.asarray(t, np.float64) - self.origin) / self.div

    @property
    def label(self):
        if self.ticks:
            return f"time (ticks) since the first event at {self.origin}"
        return f"time ({self.unit}) since the first event at {self.origin / 1e9:.6f} s"

    def apply(self, ax):
        ax.set_xlim(self(self.lo), self(self.hi))
        ax.set_xlabel(self.label)


def _range(trace, start, end):
    """The [lo, hi] shown: the scheduling window W (D1) cut by start/end."""
    lo, hi = sched.window(trace)
    if start is not None:
        lo = max(lo, start)
    if end is not None:
        hi = min(hi, end)
    return lo, max(hi, lo)


def _span_range(trace, start, end):
    """[lo, hi] for the charts drawn from event lines alone (no scheduling model needed)."""
    span = trace.span or (0, 0)
    lo = span[0] if start is None else max(span[0], start)
    hi = span[1] if end is None else min(span[1], end)
    return lo, max(hi, lo)


def nice_bin(width, nbins):
    """A bin width of 1, 2 or 5 times a power of ten giving at most about ``nbins`` bins."""
    raw = max(width / max(nbins, 1), 1.0)
    p = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * p >= raw:
            return int(m * p)
    return int(10 * p)  # pragma: no cover


def _fmt_dur(v, ticks):
    return _fmt.duration(v, "ticks" if ticks else "ns")


def _title(fig, what, trace, notes, extra=""):
    src = os.path.basename(str(trace.source)) if trace.source else "trace"
    fig.suptitle(f"{what}: {src}" + (f"\n{extra}" if extra else ""), fontsize=11)
    if notes:
        import textwrap
        fig.text(0.01, 0.005, "\n".join(textwrap.fill("note: " + n, 170) for n in notes),
                 fontsize=7, va="bottom", ha="left", color="#444444")


def _margins(height_in, notes):
    """(bottom, top) figure fractions leaving room in inches for the two-line title above and
    the axis label and the notes below."""
    lines = sum(1 + len(n) // 170 for n in notes)
    return (0.62 + 0.13 * lines) / height_in, 1 - 0.72 / height_in


def _nothing(ax, message):
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=11,
            color="#444444")


def _caveats(trace):
    """sched.caveats (the charts that call it have built the model)."""
    return list(sched.caveats(trace))


def _cpu_colors(cpus):
    """A colour per CPU number, cycling through 26 that stay apart from the state colours
    (tab10 without its green, red, purple and grey, then tab20b)."""
    from matplotlib import colormaps
    t10, t20b = colormaps["tab10"], colormaps["tab20b"]
    palette = [t10(i) for i in (0, 1, 5, 6, 8, 9)] + [t20b(i) for i in range(20)]
    return {int(c): palette[int(c) % len(palette)] for c in cpus}


def _log_axes(ax_h, ax_c):
    """Log scales for a histogram (x and y) and its cumulative distribution (x), with minor
    ticks at 2 and 5 of each decade only (each tick is costly to draw)."""
    from matplotlib.ticker import LogLocator
    ax_h.set_xscale("log")
    ax_h.set_yscale("log")
    ax_c.set_xscale("log")
    for axis in (ax_h.xaxis, ax_h.yaxis, ax_c.xaxis):
        axis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))


def _label_distribution(ax_h, ax_c, quantity, items, prefix, counted=None):
    """Axes of a log-scale histogram (ax_h) beside its cumulative distribution (ax_c)."""
    ax_h.set_xlabel(f"{quantity}, log scale")
    ax_h.set_ylabel(f"{items} per bin (log scale)")
    # a title at a fixed height: matplotlib would otherwise measure every tick label to place it
    ax_h.set_title(prefix + "histogram", fontsize=9, y=1.0)
    ax_c.set_xlabel(f"{quantity}, log scale")
    ax_c.set_ylabel(f"fraction of {counted or items} ≤ x")
    ax_c.set_ylim(0, 1.02)
    ax_c.set_title(prefix + "cumulative distribution", fontsize=9, y=1.0)
    for a in (ax_h, ax_c):
        a.grid(True, which="major", alpha=0.3)


def natural_key(s):
    """'CPU 10/KVM' after 'CPU 9/KVM'."""
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


# -- cpu-util -------------------------------------------------------------------------------------

def cpu_util(trace, *, bins=400, bin_ns=None, start=None, end=None, cpus=None):
    """Per-CPU utilization over time as a heat map (CPU x time bin), the mean over the CPUs
    shown drawn above it.

    ``bin_ns`` (default: a 1-2-5 width giving about ``bins`` bins).  ``data``: ``edges``
    (int64, bin edges in trace time), ``cpus`` (CPU numbers, heat map rows top to bottom),
    ``busy_ns`` (cpu x bin, from ``sched.cpu_utilization``), ``utilization_pct`` (the heat map
    drawn: busy / bin length), ``overall_pct`` (the curve: summed busy / (CPUs x bin length)).
    """
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = sched.model(trace, intervals=sched.CO)  # one walk: the chart reads CPU occupancy
    lo, hi = _range(trace, start, end)
    if bin_ns is None:
        bin_ns = nice_bin(hi - lo, bins)
    edges, busy = sched.cpu_utilization(trace, bin_ns, start=start, end=end)
    rows = np.ones(m.ncpus, bool) if cpus is None else np.isin(m.cpus, np.asarray(list(cpus)))
    cpu_nums = m.cpus[rows]
    busy = busy[rows]
    length = np.diff(edges).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        util = np.where(length > 0, 100.0 * busy / length, 0.0)
        overall = np.where(length > 0, 100.0 * busy.sum(axis=0) / (max(len(cpu_nums), 1) * length),
                           0.0)
    notes = _caveats(trace)
    ncpu = len(cpu_nums)
    h = 3.2 + min(max(ncpu, 1), 64) * 0.16
    fig = _figure(h)
    bottom, top = _margins(h, notes)
    gs = fig.add_gridspec(2, 2, height_ratios=(1, 2.5), width_ratios=(60, 1), hspace=0.08,
                          wspace=0.02, left=0.07, right=0.93, top=top, bottom=bottom)
    ax_top = fig.add_subplot(gs[0, 0])
    ax = fig.add_subplot(gs[1, 0], sharex=ax_top)
    cax = fig.add_subplot(gs[1, 1])
    tx = _TimeAxis(trace, lo, hi)
    x = tx(edges)
    if ncpu:
        ax_top.fill_between(x, np.r_[overall, overall[-1:]], step="post", color="#1f77b4",
                            alpha=0.35, linewidth=0)
        ax_top.step(x, np.r_[overall, overall[-1:]], where="post", color="#1f77b4", linewidth=1)
        im = ax.imshow(util, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0,
                       vmax=100, origin="upper",
                       extent=(x[0], tx(edges[0] + bin_ns * util.shape[1]), ncpu - 0.5, -0.5))
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("utilization (%)")
    else:
        cax.set_axis_off()
        _nothing(ax, "no CPU selected")
    ax_top.set_ylim(0, 100)
    ax_top.set_yticks([0, 50, 100])
    ax_top.set_ylabel("mean (%)")
    ax_top.grid(True, axis="y", alpha=0.3)
    # the time axis is the heat map's below: none here (each tick is costly to draw)
    ax_top.xaxis.set_visible(False)
    step = max(1, math.ceil(ncpu / 32))
    ax.set_yticks(np.arange(0, ncpu, step))
    ax.set_yticklabels([str(c) for c in cpu_nums[::step].tolist()])
    ax.set_ylabel("CPU")
    tx.apply(ax)
    _title(fig, "CPU utilization", trace, notes,
           f"bins of {_fmt_dur(bin_ns, tx.ticks)}; busy = a task other than idle is current (D5); "
           f"above: the mean of the {ncpu} CPUs shown")
    return Plot("cpu-util", fig, {"edges": edges, "cpus": cpu_nums, "busy_ns": busy,
                                  "utilization_pct": util, "overall_pct": overall,
                                  "bin_ns": bin_ns}, notes)


# -- timeline -------------------------------------------------------------------------------------

def timeline_tasks(trace, *, pids=None, comm=None, top=20, start=None, end=None, cpus=None):
    """The tasks a timeline shows, in display order: the tasks with state intervals in the
    window that the restrictions select (with none: the vCPU threads of ``kvm.topology`` (K1)
    if there are any, else every task), the ``top`` busiest of them by run time (0: all), sorted by name.

    Returns (pids, labels, selected, intervals): selected is how many tasks the restrictions
    matched, intervals the ``sched.task_intervals`` rows of the tasks shown."""
    m = sched.model(trace, intervals=sched.IV)  # one walk: the chart reads task intervals
    pids_shown, labels, selected, c = _timeline_rows(trace, pids=pids, comm=comm, top=top,
                                                     start=start, end=end, cpus=cpus)
    t, cpu = c["task"], c["cpu"]
    iv = np.zeros(len(t), dtype=[("pid", "i4"), ("tgid", "i4"), ("state", "i1"),
                                 ("start_ns", "i8"), ("end_ns", "i8"), ("cpu", "i4")])
    iv["pid"], iv["tgid"], iv["state"] = m.pids[t], m.tgid[t], c["state"]
    iv["start_ns"], iv["end_ns"] = c["start"], c["end"]
    iv["cpu"] = np.where(cpu >= 0, m.cpus[np.clip(cpu, 0, max(m.ncpus - 1, 0))] if m.ncpus else -1, -1)
    return pids_shown, labels, selected, iv


def _timeline_rows(trace, *, pids, comm, top, start, end, cpus):
    """timeline_tasks with the intervals as sched.interval_columns plus "row" (the display
    row of each)."""
    m = sched.model(trace, intervals=sched.IV)
    c = None
    if pids is None and comm is None:
        # on a KVM host the vCPU threads (K1, whatever their names), when some are in the window
        from . import kvm
        vp = kvm.topology(trace).vcpu_pids
        if len(vp):
            c = sched.interval_columns(m, start=start, end=end, cpus=cpus, pids=vp)
            c = c if len(c["task"]) else None
    if c is None:
        c = sched.interval_columns(m, start=start, end=end, cpus=cpus, pids=pids, comm=comm)
    ti = c["task"]
    present = np.bincount(ti, minlength=m.ntasks) > 0
    run = c["state"] == sched.RUNNING
    run_ns = _group.sum_by(ti[run], (c["end"] - c["start"])[run], m.ntasks)
    cand, selected, labels, row_of = _rank_rows(m, present, run_ns, top)
    row = row_of[ti] if len(ti) else np.zeros(0, np.int64)
    if len(cand) < selected:
        k = row >= 0
        c = {n: v[k] for n, v in c.items()}
        row = row[k]
    c = dict(c, row=row)
    return m.pids[cand].astype(np.int64), labels, selected, c


def _rank_rows(m, present, run_ns, top):
    """The rows shown among the tasks present (a bool per task): the ``top`` busiest by run
    time (0: all), sorted by name.  Returns (task indices, how many were present, labels,
    the row of each task or -1)."""
    cand = np.flatnonzero(present)
    selected = len(cand)
    if top and len(cand) > top:
        cand = cand[np.lexsort((m.pids[cand], -run_ns[cand]))[:top]]
    cand = np.array(sorted(cand.tolist(), key=lambda i: (natural_key(m.comm[i]), int(m.pids[i]))),
                    np.int64)
    row_of = np.full(m.ntasks, -1, np.int64)
    row_of[cand] = np.arange(len(cand))
    labels = [f"{cm} ({p})" for cm, p in zip(m.comm[cand].tolist(), m.pids[cand].tolist())]
    return cand, selected, labels, row_of


def _timeline_whole(trace, m, *, pids, comm, top, lo, hi, width):
    """The timeline's rows and pixels without a time or CPU restriction, read from the
    model's interval table as it is (no selection copied out of it): (pids, labels, selected,
    states accumulator, CPU accumulator, intervals read), or None when the per-CPU
    accumulator would be large (many CPUs): the caller then selects the rows first."""
    r = m.tables(sched.IV)
    has = np.bincount(r["iv_task"], minlength=m.ntasks) > 0          # a state in W
    present = None
    if pids is None and comm is None:
        from . import kvm
        vp = kvm.topology(trace).vcpu_pids
        if len(vp):
            present = np.isin(m.pids, vp) & has
            present = present if present.any() else None
    if present is None:
        present = sched._select(m, pids, comm) & has
    # run time per task: the walk's sums equal the sums of its RUNNING intervals
    cand, selected, labels, row_of = _rank_rows(m, present, m.sums["task_ns"][:, RUNNING], top)
    if len(cand) * max(m.ncpus, 1) * width > 16_000_000:
        return None
    by_state, by_cpu, n = _ftsched.pixel_accumulate_tasks(
        r["iv_task"], row_of, r["iv_state"], r["iv_cpu"], r["iv_start"], r["iv_end"],
        int(lo), int(hi), NSTATES, m.ncpus, width, RUNNING)
    return m.pids[cand].astype(np.int64), labels, selected, by_state, by_cpu, n


def _timeline_selected(trace, m, *, pids, comm, top, start, end, cpus, lo, hi, width):
    """The timeline's rows and pixels from the selected tasks' intervals, clipped and filtered
    as the restrictions say: (pids, labels, selected, states, cpu columns, intervals)."""
    pids_shown, labels, selected, c = _timeline_rows(trace, pids=pids, comm=comm, top=top,
                                                     start=start, end=end, cpus=cpus)
    nrows = len(pids_shown)
    # the row of each interval (rows are in display order, not sorted by pid)
    row, a, b, st = c["row"], c["start"], c["end"], c["state"]
    acc = _accumulate(row, st.astype(np.int64), a, b, lo, hi, nrows, NSTATES, width)
    states = _dominant(acc).astype(np.int8)
    # the CPU strip: time running per used CPU (model CPU indices, sorted like the numbers)
    run = st == RUNNING
    used_i, cpu_idx = _group.dense(c["cpu"][run])
    used = np.where(used_i >= 0, m.cpus[np.clip(used_i, 0, max(m.ncpus - 1, 0))] if m.ncpus else -1,
                    -1) if len(used_i) else np.zeros(0, np.int64)
    acc_cpu = _accumulate(row[run], cpu_idx, a[run], b[run], lo, hi, nrows, max(len(used), 1),
                          width)
    dom = _dominant(acc_cpu)
    cpu_cols = np.where(dom >= 0, used[np.clip(dom, 0, max(len(used) - 1, 0))] if len(used) else -1,
                        -1).astype(np.int32)
    return pids_shown, labels, selected, states, cpu_cols, len(row)


def _accumulate(row, cls, a, b, lo, hi, nrows, ncls, width):
    """Time of intervals [a, b) per (row, class, pixel column): float (nrows, ncls, width) in
    units of one column's duration.  A column is [lo + j*w, lo + (j+1)*w) with w = (hi-lo)/width;
    whole columns an interval spans go through a difference array, its partial end columns
    directly, so the cost is one pass over the intervals whatever their lengths."""
    i8 = lambda x: np.ascontiguousarray(x, np.int64)  # noqa: E731
    return _ftsched.pixel_accumulate(i8(row), i8(cls), i8(a), i8(b), int(lo), int(hi),
                                     int(nrows), int(ncls), int(width))


def _dominant(acc):
    """Per (row, column): the class with the most time, -1 where there is none."""
    best = acc.argmax(axis=1).astype(np.int32)
    best[acc.max(axis=1) <= 1e-12] = -1
    return best


def timeline(trace, *, pids=None, comm=None, top=20, start=None, end=None, cpus=None,
             width_px=None):
    """A Gantt chart of tasks: per row, each pixel column shows the state the task spent most
    of that column's time in (Running, Runnable, Sleeping, Blocked, ...), and a thin strip under
    it the CPU it ran on most in that column (colour per CPU), so migrations show as colour
    changes.  Tasks: see :func:`timeline_tasks`.

    ``data``: ``pids``, ``labels`` (rows, top to bottom), ``column_edges`` (float64 trace
    times of the width + 1 column edges), ``states`` (int8 rows x columns: state codes of
    ``sched``, -1 where the task does not exist), ``cpus`` (int32: CPU number, -1 where it did
    not run), ``image`` (the RGBA array drawn), ``intervals`` (how many were accumulated).
    """
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = sched.model(trace, intervals=sched.IV)  # one walk: the chart reads task intervals
    lo, hi = _range(trace, start, end)
    left, right = 0.17, 0.80
    if width_px is None:
        width_px = int(round(WIDTH_IN * DPI * (right - left)))
    width = max(int(width_px), 1)
    whole = None
    if start is None and end is None and cpus is None:
        whole = _timeline_whole(trace, m, pids=pids, comm=comm, top=top, lo=lo, hi=hi,
                                width=width)
    if whole is not None:
        pids_shown, labels, selected, acc, acc_cpu, n_iv = whole
        states = _dominant(acc).astype(np.int8)
        dom = _dominant(acc_cpu)
        cpu_cols = np.where(dom >= 0, m.cpus[np.clip(dom, 0, max(m.ncpus - 1, 0))] if m.ncpus else -1,
                            -1).astype(np.int32)
    else:
        pids_shown, labels, selected, states, cpu_cols, n_iv = _timeline_selected(
            trace, m, pids=pids, comm=comm, top=top, start=start, end=end, cpus=cpus, lo=lo,
            hi=hi, width=width)
    nrows = len(pids_shown)
    notes = _caveats(trace)
    if top and selected > nrows:
        notes.append(f"showing the {nrows} busiest of {selected} selected tasks (top={top})")
    if not nrows:
        notes.append("no task selected: no task that the filters match has a state in the window")
    image = _timeline_image(states, cpu_cols)

    h = 2.2 + max(nrows, 2) * 0.32
    fig = _figure(h)
    bottom, top_ = _margins(h, notes)
    ax = fig.add_axes((left, bottom, right - left, top_ - bottom))
    tx = _TimeAxis(trace, lo, hi)
    if nrows:
        ax.imshow(image, aspect="auto", interpolation="nearest",
                  extent=(tx(lo), tx(hi), nrows, 0))
        ax.set_yticks(np.arange(nrows) + 0.3)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(nrows, 0)
    else:
        ax.set_yticks([])
        _nothing(ax, "no task selected")
    tx.apply(ax)
    ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.patches import Patch
    present = sorted(set(np.unique(states).tolist()) - {-1})
    h = [Patch(facecolor=STATE_STYLE[s][1], edgecolor="#888888", label=STATE_STYLE[s][0])
         for s in present]
    if h:
        leg = ax.legend(handles=h, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                        title="state (most of each pixel)", title_fontsize=8, frameon=False)
        ax.add_artist(leg)
    cpus_used = sorted(set(np.unique(cpu_cols).tolist()) - {-1})
    if cpus_used:
        col = _cpu_colors(cpus_used)
        shown = cpus_used[:16]
        h = [Patch(facecolor=col[c], label=f"CPU {c}") for c in shown]
        ax.legend(handles=h, loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=8,
                  title="strip: CPU run on" + ("" if len(shown) == len(cpus_used)
                                                else f" ({len(shown)} of {len(cpus_used)})"),
                  title_fontsize=8, frameon=False, ncol=1 if len(shown) <= 8 else 2)
    _title(fig, "Task timeline", trace, notes,
           f"{nrows} tasks; each pixel column is {_fmt_dur(round((hi - lo) / width), tx.ticks)}")
    edges = lo + (hi - lo) * np.arange(width + 1, dtype=np.float64) / width
    return Plot("timeline", fig, {"pids": pids_shown, "labels": labels, "column_edges": edges,
                                  "states": states, "cpus": cpu_cols, "image": image,
                                  "intervals": n_iv}, notes)


#: rows of one task in the timeline image: state band, CPU strip, gap
_BAND, _STRIP, _GAP = 3, 1, 1


def _rgba(color):
    from matplotlib.colors import to_rgba
    return np.round(np.array(to_rgba(color)) * 255).astype(np.uint8)


def _timeline_image(states, cpu_cols):
    """RGBA image: per task _BAND rows of state colour, _STRIP rows of CPU colour, _GAP blank."""
    nrows, width = states.shape
    per = _BAND + _STRIP + _GAP
    img = np.zeros((nrows * per, width, 4), np.uint8)      # transparent: no data
    lut = np.zeros((NSTATES + 1, 4), np.uint8)
    for s, (_, c) in STATE_STYLE.items():
        lut[s] = _rgba(c)
    band = lut[np.where(states >= 0, states, NSTATES)]
    used = sorted(set(np.unique(cpu_cols).tolist()) - {-1})
    clut = np.zeros((len(used) + 1, 4), np.uint8)
    for i, (c, rgba) in enumerate(_cpu_colors(used).items()):
        clut[i] = _rgba(rgba)
    ci = np.searchsorted(np.asarray(used, np.int64), cpu_cols) if used else np.zeros_like(cpu_cols)
    strip = clut[np.where(cpu_cols >= 0, ci, len(used))]
    for k in range(_BAND):
        img[k::per] = band
    for k in range(_STRIP):
        img[_BAND + k::per] = strip
    return img


# -- latency --------------------------------------------------------------------------------------

def latency_bins(v, nbins=60):
    """Log-spaced histogram edges over the positive samples, snapped to the samples' resolution
    (the gcd of the values: 1000 ns for a µs clock) so that no bin falls between two values a
    trace can show; each value k*res sits inside (k - 1/2, k + 1/2)*res."""
    pos = v[v > 0]
    if not len(pos):
        return np.array([1.0, 10.0])
    res = int(np.gcd.reduce(pos.astype(np.int64)))
    lo, hi = int(pos.min()) // res, int(pos.max()) // res
    k = np.unique(np.round(np.geomspace(lo, hi + 1, nbins + 1)).astype(np.int64))
    k = np.unique(np.r_[lo, k[(k > lo) & (k <= hi)], hi + 1])
    return (k - 0.5) * res


def cdf_points(s, most=4096):
    """(x, fraction of samples <= x) of sorted samples, at their distinct values (at most
    ``most`` of them, taken at evenly spaced ranks): exact at every point drawn, and the
    curve of millions of samples stays a few thousand points."""
    u = np.unique(s)
    if len(u) > most:
        u = np.unique(s[np.linspace(0, len(s) - 1, most).astype(np.int64)])
    return u, np.searchsorted(s, u, side="right") / max(len(s), 1)


def task_group(comm):
    """The group of a comm in the latency chart: its numbers replaced by N, so the vCPU threads
    'CPU 0/KVM', 'CPU 1/KVM' form 'CPU N/KVM' and per-CPU kworkers 'kworker/N:N' (architecture
    names such as the x86 of 'qemu-system-x86' stay)."""
    return _NUMBER.sub(lambda mt: "N" if mt.group().isdigit() else mt.group(), comm)


_NUMBER = re.compile(r"x86_64|x86|i386|aarch64|arm64|s390x|ppc64le|ppc64|riscv64|\d+")


def latency(trace, *, source="wakeup", group="comm", top=8, start=None, end=None, cpus=None,
            pids=None, comm=None, nbins=60):
    """Wakeup latency (D4) per task group: a histogram (log-spaced bins, log axes) and the CDF.

    ``group``: "comm" (numbers in the comm replaced by N: :func:`task_group`), "task" (per
    pid), "process" (per tgid) or "all".  The ``top`` groups with most samples are drawn, the
    others pooled as "other"; the CDF also shows all samples together.  ``data``: ``groups``
    (names, as drawn), ``samples`` (latency arrays per group, same order), ``bin_edges``
    (trace units), ``counts`` (per group, the histogram drawn).
    """
    if group not in ("comm", "task", "process", "all"):
        raise ValueError("group must be 'comm', 'task', 'process' or 'all'")
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = sched.model(trace)
    lat = sched.wakeup_latencies(trace, source=source, start=start, end=end, cpus=cpus,
                                 pids=pids, comm=comm)
    v = lat["latency_ns"]
    ti = m.task_index(lat["pid"])          # every sample's task is in the model
    # the group of each task, then of each sample through its task (no string per sample)
    comms, tpids = m.comm.tolist(), m.pids.tolist()
    if group == "comm":
        tkey = [task_group(c) for c in comms]
    elif group == "task":
        tkey = [f"{c} ({p})" for c, p in zip(comms, tpids)]
    elif group == "process":
        tkey = [f"tgid {g if g >= 0 else p}" for g, p in zip(m.tgid.tolist(), tpids)]
    else:
        tkey = ["all tasks"] * m.ntasks
    uk, gid = np.unique(np.array(tkey + [""], dtype=str), return_inverse=True)
    inv = gid[ti] if len(v) else np.zeros(0, np.int64)
    cnt = np.bincount(inv, minlength=len(uk))
    order = sorted((i for i in range(len(uk)) if cnt[i]), key=lambda i: (-cnt[i], str(uk[i])))
    shown = order[:top] if top else order
    groups = [str(uk[i]) for i in shown]
    samples = [np.sort(v[inv == i]) for i in shown]
    rest = order[len(shown):]
    if len(rest) == 1:
        shown, rest = order, []
        groups.append(str(uk[order[-1]]))
        samples.append(np.sort(v[inv == order[-1]]))
    if rest:
        groups.append(f"other ({len(rest)} groups)")
        samples.append(np.sort(v[np.isin(inv, rest)]))
    ticks = trace.time_unit != "ns"
    div, unit = (1.0, "ticks") if ticks else (1e3, "µs")
    edges = latency_bins(v, nbins)
    # zero latencies (switch-in at the wakeup's time stamp) go into the first bin
    counts = [np.histogram(np.maximum(s, edges[0]), bins=edges)[0] for s in samples]
    notes = _caveats(trace)
    zeros = int((v == 0).sum())
    if zeros:
        notes.append(f"{zeros} samples of latency 0 are counted in the first bin")
    fig = _figure(5.0)
    bottom, top = _margins(5.0, notes)
    ax_h = fig.add_axes((0.06, bottom, 0.34, top - bottom))
    ax_c = fig.add_axes((0.46, bottom, 0.24, top - bottom))
    if len(v):
        from matplotlib import colormaps
        cmap = colormaps["tab10"]
        x = edges / div
        palette = [cmap(i) for i in range(10) if i != 7]      # grey is for "other"
        for i, (g, s, c) in enumerate(zip(groups, samples, counts)):
            color = "#7f7f7f" if g.startswith("other (") else palette[i % len(palette)]
            st = sched.latency_stats(s)
            lab = f"{g}\n  n={len(s)}, p50 {_fmt_dur(st['p50_ns'], ticks)}, " \
                  f"p99 {_fmt_dur(st['p99_ns'], ticks)}, max {_fmt_dur(st['max_ns'], ticks)}"
            ax_h.stairs(c, x, color=color, linewidth=1.3)
            cx, cy = cdf_points(s)
            ax_c.step(np.r_[x[0], np.maximum(cx, edges[0]) / div], np.r_[0.0, cy], where="post",
                      color=color, linewidth=1.3, label=lab)
        cx, cy = cdf_points(np.sort(v))
        ax_c.step(np.r_[x[0], np.maximum(cx, edges[0]) / div], np.r_[0.0, cy], where="post",
                  color="black", linestyle="--", linewidth=1, label="all samples")
        _log_axes(ax_h, ax_c)
        ax_h.set_ylim(bottom=0.8)
        ax_c.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=7, frameon=False,
                    title=f"group by {group} (nearest-rank percentiles)", title_fontsize=7)
    else:
        _nothing(ax_h, "no wakeup latency samples in the selection")
    _label_distribution(ax_h, ax_c, f"wakeup latency ({unit})", "samples", "")
    _title(fig, "Wakeup latency", trace, notes,
           f"sched_{source} to switch-in (D4), {len(v)} samples, grouped by {group}")
    return Plot("latency", fig, {"groups": groups, "samples": samples, "bin_edges": edges,
                                 "counts": counts}, notes)


# -- switches / wakeups ---------------------------------------------------------------------------

def _rates(trace, what, ts, cpu, pid, comm_id, *, top, bins, bin_ns, start, end, cpus, pids,
           comm, ylabel, title, extra):
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    lo, hi, bin_ns, nb, edges = _time_bins(trace, start, end, bins, bin_ns)
    ok = None if comm is None else sched.comm_match(trace, comm).ids
    k = _group.line_mask(ts, cpu, lo, hi, cpus) & (pid > 0) & \
        _group.task_mask(pid, comm_id, pids, ok)
    ts, pid, comm_id = ts[k], pid[k], comm_id[k]
    col = np.minimum((ts - lo) // bin_ns, nb - 1)
    upid, inv = _group.dense(pid)
    tot = np.bincount(inv, minlength=len(upid))
    order = np.lexsort((upid, -tot))
    shown = order[:top] if top else order
    # the name of a pid: its comm at its latest line here (the later line on equal times)
    last = np.full(len(upid), -1, np.int64)
    if len(ts) and (np.diff(ts) >= 0).all():
        at = np.full(len(upid), -1, np.int64)
        np.maximum.at(at, inv, np.arange(len(ts)))
        last[:] = comm_id[at]
    elif len(ts):
        o = np.lexsort((ts, inv))
        ends = np.r_[np.flatnonzero(np.diff(inv[o])), len(o) - 1]
        last[inv[o][ends]] = comm_id[o][ends]
    names = [f"{trace.comms[last[i]] if last[i] >= 0 else '?'} ({upid[i]})" for i in shown.tolist()]
    slot = np.full(len(upid), len(shown), np.int64)
    slot[shown] = np.arange(len(shown))
    per = np.bincount(slot[inv] * nb + col, minlength=(len(shown) + 1) * nb) \
        .reshape(len(shown) + 1, nb).astype(np.int64)
    ticks = trace.time_unit != "ns"
    per_unit = 1e6 if ticks else 1e9          # rates per s, or per million ticks
    secs = bin_ns / per_unit
    rates = per / secs
    notes = [c for c in _caveats_light(trace)]
    fig = _figure(5.0)
    bottom, top = _margins(5.0, notes)
    ax = fig.add_axes((0.07, bottom, 0.66, top - bottom))
    tx = _TimeAxis(trace, lo, hi)
    x = tx(edges)
    if len(ts):
        from matplotlib import colormaps
        cmap = colormaps["tab10"]
        colors = [cmap(i % 10) for i in range(len(shown))]
        labels = list(names)
        ys = list(rates[:len(shown)])
        if per[len(shown)].any():
            ys.append(rates[len(shown)])
            colors.append("#bbbbbb")
            labels.append(f"other tasks ({len(upid) - len(shown)})")
        xs = np.repeat(x, 2)[1:-1]             # steps: each bin's value over its whole width
        ax.stackplot(xs, *[np.repeat(y, 2) for y in ys], colors=colors, labels=labels,
                     linewidth=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  title=f"top {len(shown)} tasks by count", title_fontsize=8)
    else:
        _nothing(ax, f"no {what} in the selection")
    ax.set_ylabel(ylabel + (" per million ticks" if ticks else " per second"))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    tx.apply(ax)
    _title(fig, title, trace, notes,
           f"{len(ts)} lines; {extra}; bins of {_fmt_dur(bin_ns, ticks)}")
    return edges, per, names, fig, notes


def _caveats_light(trace):
    """Caveats without the scheduling model: lost events only."""
    if len(trace.lost):
        return [f"{int(trace.lost['count'].sum())} events were lost ({len(trace.lost)} LOST "
                "markers): the rates are lower bounds"]
    return []


def switches(trace, *, top=8, bins=200, bin_ns=None, start=None, end=None, cpus=None,
             pids=None, comm=None):
    """Context switches over time: switch-ins (sched_switch lines per next task, the idle task
    left out) per second, the ``top`` tasks stacked and the rest pooled.  ``data``: ``edges``,
    ``counts`` (tasks shown + 1 "other" row, x bins), ``labels``."""
    trace = _machines.scoped(trace)    # one machine, as the scheduling analysis (M2)
    sw = trace.events.get("sched_switch")
    if sw is None:
        raise ValueError(f"{trace.source}: no sched_switch events: the switches chart needs "
                         "sched:sched_switch")
    edges, per, names, fig, notes = _rates(
        trace, "context switches", sw["ts"], sw["cpu"], sw["next_pid"], sw["next_comm"],
        top=top, bins=bins, bin_ns=bin_ns, start=start, end=end, cpus=cpus, pids=pids,
        comm=comm, ylabel="switch-ins", title="Context switches",
        extra="switch-ins per task (next_pid of sched_switch)")
    return Plot("switches", fig, {"edges": edges, "counts": per, "labels": names}, notes)


def wakeups(trace, *, source="waking", top=8, bins=200, bin_ns=None, start=None, end=None,
            cpus=None, pids=None, comm=None):
    """Wakeups over time per woken task: sched_waking lines (``source="waking"``, the
    default, as ``ftfast stats --wakeup-stats``; sched_wakeup when the trace has no
    sched_waking) or sched_wakeup lines, the ``top`` tasks stacked.  ``data`` as
    :func:`switches`, and ``event``: the event counted."""
    trace = _machines.scoped(trace)    # one machine, as the scheduling analysis (M2)
    if source not in ("waking", "wakeup"):
        raise ValueError("source must be 'waking' or 'wakeup'")
    ev = "sched_" + source
    if ev == "sched_waking" and not trace.count(ev) and trace.count("sched_wakeup"):
        ev = "sched_wakeup"
    a = trace.events.get(ev)
    if a is None:
        raise ValueError(f"{trace.source}: no {ev} events: the wakeups chart needs "
                         "sched:sched_waking or sched:sched_wakeup")
    edges, per, names, fig, notes = _rates(
        trace, "wakeups", a["ts"], a["cpu"], a["task_pid"], a["task_comm"], top=top, bins=bins,
        bin_ns=bin_ns, start=start, end=end, cpus=cpus, pids=pids, comm=comm,
        ylabel="wakeups", title="Wakeups", extra=f"{ev} lines per woken task")
    return Plot("wakeups", fig, {"edges": edges, "counts": per, "labels": names, "event": ev},
                notes)


# -- kvm-exits ------------------------------------------------------------------------------------

def kvm_exits(trace, *, top=8, bins=200, bin_ns=None, start=None, end=None, cpus=None,
              pids=None, comm=None, nbins=60):
    """VM exits of the vCPU threads (``ftrace_fast.kvm``, K1 and K6): above, exits per second
    over time by reason, the ``top`` reasons by count stacked and the rest pooled; below, the
    handling time of each reason (kvm_exit to the thread's next kvm_entry without a switch-out,
    K6) as a histogram (log-spaced bins, log axes) and a CDF.

    An exit counts where its kvm_exit line is (time, CPU); ``pids``/``comm`` choose vCPU
    threads (``comm`` is searched in every name the thread had).  ``data``: ``edges`` (int64
    bin edges), ``counts`` (reasons shown + 1 "other" row, x bins), ``reasons`` (names drawn,
    same order; "other (k reasons)" last when some are pooled), ``handling`` (per reason drawn:
    the sorted handling times of its handled exits), ``bin_edges`` (handling histogram edges,
    trace units), ``hist`` (per reason, the histogram drawn), ``exits`` / ``handled`` /
    ``switched_out`` (per reason drawn: how many).
    """
    trace = _machines.scoped(trace)    # one machine, as the KVM analysis (M2)
    from . import kvm
    if not trace.count("kvm_exit"):
        raise ValueError(f"{trace.source}: no kvm_exit events: the kvm-exits chart needs "
                         "kvm:kvm_exit (and kvm:kvm_entry for handling times)")
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    lo, hi, bin_ns, nb, edges = _time_bins(trace, start, end, bins, bin_ns)
    x = kvm.exits(trace)
    k = _exit_mask(trace, x, lo, hi, cpus, pids, comm)
    ts, handled, handling, swo = x.x_ts[k], x.x_handled[k], x.x_handling[k], x.x_switched_out[k]
    col = np.minimum((ts - lo) // bin_ns, nb - 1)
    per, reasons, groups = _exits_by_reason(trace, x.x_reason[k], col, nb, top)
    hv = handling[handled]
    hedges = latency_bins(hv, nbins)
    samples = [np.sort(handling[g & handled]) for g in groups]
    data = {"edges": edges, "counts": per, "reasons": reasons, "handling": samples,
            "bin_edges": hedges,
            "hist": [np.histogram(np.maximum(s, hedges[0]), bins=hedges)[0] for s in samples],
            "exits": [int(g.sum()) for g in groups],
            "handled": [int((g & handled).sum()) for g in groups],
            "switched_out": [int((g & swo).sum()) for g in groups]}
    notes = _caveats_light(trace) + _exit_notes(hv, handled, swo)
    fig = _draw_exits(trace, data, lo, hi, bin_ns, notes, pooled=len(per) - 1 < len(reasons),
                      timed=len(hv) > 0, nthreads=len(np.unique(x.x_pid[k])))
    return Plot("kvm-exits", fig, data, notes)


def _time_bins(trace, start, end, bins, bin_ns):
    """(lo, hi, bin width, number of bins, edges) of a chart over time drawn from event lines:
    ``bin_ns``, or a round width giving about ``bins`` bins."""
    lo, hi = _span_range(trace, start, end)
    if bin_ns is None:
        bin_ns = nice_bin(hi - lo, bins)
    nb = sched.bin_count(hi - lo, bin_ns, limit=1_000_000)   # a chart: no more than 10**6 bins
    return lo, hi, bin_ns, nb, lo + bin_ns * np.arange(nb + 1, dtype=np.int64)


def _exit_mask(trace, x, lo, hi, cpus, pids, comm):
    """The exits in [lo, hi] on ``cpus`` of the vCPU threads chosen by ``pids`` and ``comm``."""
    from . import kvm
    k = (x.x_ts >= lo) & (x.x_ts <= hi)
    if cpus is not None:
        k &= np.isin(x.x_cpu, np.asarray(list(cpus)))
    if pids is not None:
        k &= np.isin(x.x_pid, np.asarray(list(pids)))
    if comm is not None:
        cm = sched.comm_match(trace, comm)
        names = kvm.topology(trace).names
        ok = [p for p in np.unique(x.x_pid).tolist() if any(cm.name(n) for n in names.get(p, [""]))]
        k &= np.isin(x.x_pid, np.asarray(ok, np.int64))
    return k


def _exits_by_reason(trace, reason, col, nb, top):
    """Exit counts per (reason drawn, bin): the ``top`` reasons by count, then one row pooling
    the rest; returns (counts, reason names, a mask of the exits of each name)."""
    ur, inv, tot = (np.unique(reason, return_inverse=True, return_counts=True) if len(reason)
                    else (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)))
    inv = inv.reshape(-1)
    names = [trace.symbols[r] if r >= 0 else "?" for r in ur.tolist()]
    order = sorted(range(len(ur)), key=lambda i: (-tot[i], names[i]))
    shown = order[:top] if top else order
    if len(order) - len(shown) == 1:           # one pooled reason: show it by name instead
        shown = order
    slot = np.full(len(ur), len(shown), np.int64)
    slot[shown] = np.arange(len(shown))
    per = np.bincount(slot[inv] * nb + col, minlength=(len(shown) + 1) * nb) \
        .reshape(len(shown) + 1, nb).astype(np.int64)
    reasons = [names[i] for i in shown]
    groups = [slot[inv] == j for j in range(len(shown))]
    rest = len(ur) - len(shown)
    if rest:
        reasons.append(f"other ({rest} reasons)")
        groups.append(slot[inv] == len(shown))
    return per, reasons, groups


def _exit_notes(hv, handled, swo):
    """Notes on the exits without a handling time, and on those handled within the clock's
    resolution."""
    notes = []
    zeros = int((hv == 0).sum())
    if zeros:
        notes.append(f"{zeros} exits handled within the clock's resolution (0) are counted in the "
                     "first bin")
    untimed = len(handled) - int(handled.sum())
    if untimed:
        so = int(swo.sum())
        notes.append(f"{untimed} of {len(handled)} exits have no handling time: {so} were switched "
                     "out before re-entry" + (f", {untimed - so} unpaired or broken (K6)"
                                              if untimed > so else " (K6)"))
    return notes


def _draw_exits(trace, data, lo, hi, bin_ns, notes, *, pooled, timed, nthreads):
    """The kvm-exits figure of ``data``: the stacked exit rates above, the handling time's
    histogram and CDF per reason below."""
    ticks = trace.time_unit != "ns"
    reasons, nlines = data["reasons"], int(sum(data["exits"]))
    nshown = len(reasons) - pooled
    h = 8.0
    fig = _figure(h)
    bottom, top_ = _margins(h, notes)
    mid = bottom + (top_ - bottom) * 0.47
    top_ -= 0.25 / h                           # room for the axes' own title
    ax = fig.add_axes((0.07, mid + 0.09, 0.66, top_ - mid - 0.09))
    ax_h = fig.add_axes((0.07, bottom, 0.29, mid - bottom))
    ax_c = fig.add_axes((0.42, bottom, 0.27, mid - bottom))
    tx = _TimeAxis(trace, lo, hi)
    div, hunit = (1.0, "ticks") if ticks else (1e3, "µs")
    if nlines:
        from matplotlib import colormaps
        cmap = colormaps["tab10"]
        palette = [cmap(i) for i in range(10) if i != 7]
        colors = [palette[i % len(palette)] for i in range(nshown)]
        if pooled:
            colors.append("#bbbbbb")
        rates = data["counts"] / (bin_ns / (1e6 if ticks else 1e9))
        ys = [rates[j] for j in range(len(reasons))]
        xs = np.repeat(tx(data["edges"]), 2)[1:-1]
        ax.stackplot(xs, *[np.repeat(y, 2) for y in ys], colors=colors, labels=reasons,
                     linewidth=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  title=f"top {nshown} reasons by count", title_fontsize=8)
        hedges = data["bin_edges"]
        hx = hedges / div
        for name, s, c, color, n, nh in zip(reasons, data["handling"], data["hist"], colors,
                                            data["exits"], data["handled"]):
            if not len(s):
                continue
            st = sched.latency_stats(s)
            lab = f"{name}: {n} exits ({nh} timed)\n  p50 {_fmt_dur(st['p50_ns'], ticks)}, " \
                  f"p99 {_fmt_dur(st['p99_ns'], ticks)}, max {_fmt_dur(st['max_ns'], ticks)}"
            ax_h.stairs(c, hx, color=color, linewidth=1.3)
            cx, cy = cdf_points(s)
            ax_c.step(np.r_[hx[0], np.maximum(cx, hedges[0]) / div], np.r_[0.0, cy],
                      where="post", color=color, linewidth=1.3, label=lab)
        if timed:
            _log_axes(ax_h, ax_c)
            ax_h.set_ylim(bottom=0.8)
            ax_c.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=7, frameon=False,
                        title="handling time (nearest-rank percentiles)", title_fontsize=7)
        else:
            _nothing(ax_h, "no exit with a handling time (no kvm_entry after it)")
    else:
        _nothing(ax, "no kvm_exit in the selection")
        _nothing(ax_h, "no kvm_exit in the selection")
    ax.set_ylabel("exits" + (" per million ticks" if ticks else " per second"))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    tx.apply(ax)
    ax.set_title("exit rate by reason (stacked)", fontsize=9, y=1.0)
    _label_distribution(ax_h, ax_c, f"handling time ({hunit})", "exits", "handling time: ",
                        counted="timed exits")
    _title(fig, "VM exits", trace, notes,
           f"{nlines} kvm_exit lines of {nthreads} vCPU threads; bins of "
           f"{_fmt_dur(bin_ns, ticks)}; handling = kvm_exit to the next kvm_entry (K6)")
    return fig


#: kind name -> function
KINDS = {"cpu-util": cpu_util, "timeline": timeline, "latency": latency, "switches": switches,
         "wakeups": wakeups, "kvm-exits": kvm_exits}
#: the events each kind draws from (a trace needs one of them)
NEEDS = {"cpu-util": ("sched_switch",), "timeline": ("sched_switch",),
         "latency": ("sched_switch",), "switches": ("sched_switch",),
         "wakeups": ("sched_waking", "sched_wakeup"), "kvm-exits": ("kvm_exit",)}
#: the charts scripts/ftrace_visualize.py writes (and ``kvm-exits`` when the trace has kvm_exit:
#: :func:`standard`)
STANDARD = ("cpu-util", "timeline", "latency", "switches", "wakeups")


def standard(trace):
    """The standard charts of this trace: ``STANDARD``, and ``kvm-exits`` when it has
    kvm_exit lines."""
    return STANDARD + (("kvm-exits",) if trace.count("kvm_exit") else ())


def plot(trace, kind, path=None, **kw):
    """Draw one kind of chart (``KINDS``) and save it to ``path`` when given; returns the Plot.
    The figure is closed-free (no pyplot): it goes away with the Plot."""
    fn = KINDS.get(kind)
    if fn is None:
        raise ValueError(f"unknown plot kind {kind!r}: one of {', '.join(KINDS)}")
    if path is not None:
        output_format(path)
    p = fn(trace, **kw)
    if path is not None:
        p.save(path)
    return p


# -- host + guest timeline -------------------------------------------------------------------------

#: the host states of a vCPU thread (guest.G3) in the host+guest timeline: label, colour
HOST_STYLE = {
    1: ("vCPU in guest mode", "#74c476"),
    4: ("host handling an exit", "#fd8d3c"),
    2: ("steal: vCPU runnable in the host", "#d62728"),
    3: ("vCPU halted in the host", "#9ecae1"),
    0: ("host: unknown", "#fdd0a2"),
}


def _column_dominant(edges, a, b, code, ncodes):
    """Per pixel column [edges[i], edges[i+1]), the code covering most of it (-1: none)."""
    from .guest import _pieces
    width = len(edges) - 1
    lo = np.concatenate([[np.iinfo(np.int64).min // 2], edges[:-1].astype(np.int64)])
    hi = np.concatenate([edges[:1].astype(np.int64), edges[1:].astype(np.int64)])
    iv, col, ns = _pieces(lo, hi, np.arange(-1, width), a, b)
    k = col >= 0
    acc = np.bincount(col[k] * ncodes + code[iv[k]], ns[k], minlength=width * ncodes)
    acc = acc.reshape(width, ncodes)
    return np.where(acc.max(axis=1) > 0, acc.argmax(axis=1), -1)


def guest_timeline(trace, *, guest=None, pids=None, comm=None, top=4, start=None, end=None,
                   width_px=None):
    """The host+guest timeline: for every guest CPU, its busiest guest tasks' rows (the guest's
    task states) right above the row of its vCPU thread in the host (guest.G3: in guest mode,
    handling an exit, steal, halted, unknown), on one time axis.

    ``data``: ``labels`` (rows, top to bottom), ``kinds`` ("guest" or "host" per row),
    ``column_edges``, ``states`` (int8 rows x columns: sched state codes on guest rows, G3
    codes with every exit as 4 on host rows, -1 where nothing covers the column)."""
    from . import guest as _guest
    c = _guest.correlate(trace, guest=guest) if guest is not None else None
    if c is None:
        corr = _guest.correlate(trace)
        if not corr:
            raise ValueError(f"{trace.source}: no guest machine with sched_switch events")
        c = next(iter(corr.values()))
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    gm = c.gm
    lo = min(c.states.window[0], gm.w0)
    hi = max(c.states.window[1], gm.w1)
    lo, hi = (lo if start is None else max(lo, start)), (hi if end is None else min(hi, end))
    hi = max(hi, lo + 1)
    left, right = 0.17, 0.80
    width = max(int(width_px or round(WIDTH_IN * DPI * (right - left))), 1)
    edges = lo + (hi - lo) * np.arange(width + 1, dtype=np.float64) / width
    edges = np.round(edges).astype(np.int64)
    ts = c.task_split(pids=pids, comm=comm)
    labels, kinds, rows = [], [], []
    for r in c.mapping:
        cpu, hp = int(r["guest_cpu"]), int(r["host_pid"])
        mine = ts[ts["cpu"] == cpu]
        mine = mine[np.argsort(-mine["run_ns"], kind="stable")][:top or None]
        for t in mine:
            iv = sched.task_intervals(c.guest, pids=[int(t["pid"])])
            rows.append(_column_dominant(edges, iv["start_ns"], iv["end_ns"],
                                         iv["state"].astype(np.int64), NSTATES))
            labels.append(f"{t['comm']} ({int(t['pid'])}) CPU {cpu}")
            kinds.append("guest")
        if hp > 0:
            slo, shi, code = c.states.segments(hp)
            rows.append(_column_dominant(edges, np.maximum(slo, lo - 1), np.minimum(shi, hi + 1),
                                         np.minimum(code, 4), 5))
            labels.append(f"host pid {hp}: vCPU {int(r['vcpu'])}")
            kinds.append("host")
    states = np.array(rows, np.int8).reshape(len(rows), width)
    per = _BAND + _GAP
    img = np.zeros((len(rows) * per, width, 4), np.uint8)
    glut = np.zeros((NSTATES + 1, 4), np.uint8)
    for s, (_, col) in STATE_STYLE.items():
        glut[s] = _rgba(col)
    hlut = np.zeros((6, 4), np.uint8)
    for s, (_, col) in HOST_STYLE.items():
        hlut[s] = _rgba(col)
    for i, (k, st) in enumerate(zip(kinds, states)):
        lut, none = (glut, NSTATES) if k == "guest" else (hlut, 5)
        band = lut[np.where(st >= 0, st, none)]
        for j in range(_BAND):
            img[i * per + j] = band
    nrows = len(rows)
    notes = []
    amb = [int(r["guest_cpu"]) for r in c.mapping if r["ambiguous"]]
    if amb:
        notes.append(f"the vCPU of guest CPU {', '.join(map(str, amb))} is ambiguous (G2)")
    h = 2.2 + max(nrows, 2) * 0.32
    fig = _figure(h)
    bottom, top_ = _margins(h, notes)
    ax = fig.add_axes((left, bottom, right - left, top_ - bottom))
    tx = _TimeAxis(c.guest, lo, hi)
    if nrows:
        ax.imshow(img, aspect="auto", interpolation="nearest", extent=(tx(lo), tx(hi), nrows, 0))
        ax.set_yticks(np.arange(nrows) + 0.4)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(nrows, 0)
    else:
        _nothing(ax, "no guest task selected")
    tx.apply(ax)
    ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.patches import Patch
    gs = sorted(set(np.unique(states[np.array(kinds) == "guest"]).tolist()) - {-1}) if nrows else []
    hs = sorted(set(np.unique(states[np.array(kinds) == "host"]).tolist()) - {-1}) if nrows else []
    hd = [Patch(facecolor=STATE_STYLE[s][1], edgecolor="#888888", label="guest: " + STATE_STYLE[s][0])
          for s in gs] + [Patch(facecolor=HOST_STYLE[s][1], edgecolor="#888888", label=HOST_STYLE[s][0])
                          for s in hs]
    if hd:
        ax.legend(handles=hd, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title="state (most of each pixel)", title_fontsize=8, frameon=False)
    _title(fig, f"Guest {c.guest_name} over host {c.host_name}", c.guest, notes,
           "each guest CPU's tasks above its vCPU thread's host row")
    return Plot("guest-timeline", fig, {"labels": labels, "kinds": kinds, "column_edges": edges,
                                        "states": states, "image": img}, notes)
