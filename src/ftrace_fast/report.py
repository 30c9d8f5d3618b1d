"""One self-contained HTML page about a trace: what it is, the ranked findings, the tables and
the standard charts.

The page works offline in any browser and survives being mailed or archived: the charts are
PNG images inside ``data:`` URIs, the style is one inline ``<style>`` block, and there are no
scripts, fonts, links to style sheets or any other resource outside the file.  Every string
that comes from the trace (comms, exit reasons, event names, file names, malformed lines) is
HTML-escaped: a comm may hold ``<``, ``&`` or quotes.

This module renders; it computes nothing new.  The figures come from the analyses
(``ftrace_fast.sched``, ``ftrace_fast.kvm``) in the shape of ``ftfast stats`` tables, the
findings are ``kvm.diagnose``'s and the charts ``ftrace_fast.plot``'s, so the page always says
what the command line and the API say.

    charts = report.charts(trace, comm="KVM")              # [Chart(kind, png, notes, skipped)]
    page = report.render(trace, tables=..., findings=kvm.diagnose(trace), charts=charts)

``ftfast report FILE -o report.html`` puts them together.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field

from . import __version__
from . import plot as plotmod
from ._fmt import duration as format_duration, ranges as _ranges

#: the charts a report shows, in page order (``kvm-exits`` only when the trace has kvm_exit)
CHART_KINDS = ("cpu-util", "timeline", "latency", "switches", "wakeups", "kvm-exits")
#: what each chart answers, under its picture
CHART_TEXT = {
    "cpu-util": "How busy each CPU was over time (busy = a task other than idle is current).",
    "timeline": "What each task was doing: running, runnable (waiting for a CPU: contention), "
                "sleeping or blocked in D (I/O), and on which CPU it ran.",
    "latency": "How long woken tasks waited before they ran (sched_wakeup to switch-in).",
    "switches": "Context switches per second, per task switched in.",
    "wakeups": "Wakeups per second, per woken task.",
    "kvm-exits": "VM exits per second by reason, and how long the host took to handle each "
                 "reason (kvm_exit to the next kvm_entry).",
    "guest-timeline": "Each guest CPU's busiest tasks above its vCPU thread in the host: when a "
                      "guest task runs while its vCPU is not in guest mode, the host took that "
                      "time (steal, exits).",
}
#: the charts that draw CPUs, not tasks: task filters do not apply to them
_CPU_CHARTS = ("cpu-util",)

#: report headings of the ``ftfast stats`` sections (key: section name)
SECTION_TITLES = {
    "cpus": "CPUs",
    "tasks": "Tasks by run time",
    "tasks_wait": "Tasks by wait time (runnable, waiting for a CPU)",
    "latency": "Wakeup latency per task (worst first)",
    "wakeups": "Wakeups per woken comm",
    "switches": "Context switches per task",
    "migrations": "Migrations per task",
    "kvm_vcpus": "vCPU threads (steal = wait / (run + wait))",
    "kvm_exits": "VM exits per VM and reason (handling: kvm_exit to the next kvm_entry without "
                 "a switch-out)",
    "kvm_neighbours": "Noisy neighbours: who ran on the CPU a vCPU waited for",
    "kvm_io_threads": "QEMU I/O and other threads",
    "kvm_block": "Block requests, issue to complete",
}
SEVERITY_COLOURS = {"high": "#c62828", "medium": "#ef6c00", "low": "#f9a825", "info": "#757575"}


@dataclass
class Chart:
    """One chart of the page: its kind, the PNG (None when skipped), the notes under it, and
    why it was skipped."""
    kind: str
    png: bytes | None = None
    notes: list = field(default_factory=list)
    skipped: str | None = None


def charts(trace, *, kinds=CHART_KINDS, start=None, end=None, cpus=None, pids=None, comm=None,
           top=None):
    """Draw the report's charts as PNG.  A chart whose events the trace lacks is not drawn: its
    ``skipped`` says which events to record.  ``pids``/``comm`` choose the tasks of the task
    charts (cpu-util shows CPUs); ``top`` the rows / groups / stacked tasks shown (the charts'
    own defaults when None)."""
    out = []
    for kind in kinds:
        need = plotmod.NEEDS[kind]
        if not any(trace.count(e) for e in need):
            if kind == "kvm-exits":
                continue       # not a KVM host: nothing to say
            out.append(Chart(kind, skipped=f"the trace has no {' or '.join(need)} events"))
            continue
        kw = dict(start=start, end=end, cpus=cpus)
        if kind not in _CPU_CHARTS:
            kw.update(pids=pids, comm=comm)
            if top is not None:
                kw["top"] = top
        p = plotmod.plot(trace, kind, **kw)
        out.append(Chart(kind, p.to_bytes("png"), list(p.notes)))
        p.figure.clear()       # the figure's memory goes now, not with the next collection
    return out


def guest_chart(trace, *, start=None, end=None):
    """The host+guest timeline (plot.guest_timeline) of a trace of several machines, or None
    when it has no host and guest to correlate."""
    try:
        p = plotmod.guest_timeline(trace, start=start, end=end)
    except ValueError:
        return None
    c = Chart("guest-timeline", p.to_bytes("png"), list(p.notes))
    p.figure.clear()
    return c


# -- cells ---------------------------------------------------------------------------------------

def _e(s):
    return html.escape(str(s), quote=True)


def _label(col, unit):
    """Column heading: the name, with the unit the cells show."""
    if col.endswith("_ns"):
        return col[:-3] + (" (ms)" if unit == "ns" else " (ticks)")
    if col.endswith("_pct"):
        return col[:-4] + " (%)"
    if col.endswith("_ts") or col.endswith("_at"):
        # a time stamp as the trace prints it, not a duration
        return col[:-3] + (" at (s)" if unit == "ns" else " at (ticks)")
    return col


def _cell(col, v, unit):
    """(text, exact value for the tooltip or None, numeric)."""
    if v is None or (isinstance(v, float) and v != v):
        return "–", None, True
    if isinstance(v, bool):
        return ("yes" if v else "no"), None, False
    if isinstance(v, (int, float)):
        if col.endswith("_ns"):
            if unit == "ns":
                return f"{v / 1e6:,.3f}", f"{v:,} ns" if isinstance(v, int) else f"{v:,.1f} ns", True
            return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}", None, True
        if col.endswith("_ts") or col.endswith("_at"):
            return (f"{v / 1e9:.6f}" if unit == "ns" else str(v)), None, True
        if isinstance(v, float):
            return f"{v:,.1f}", None, True
        return f"{v:,}" if col not in ("pid", "tgid", "cpu", "vm", "vcpu", "vcpu_pid",
                                        "main_cpu", "idle_cpu") else str(v), None, True
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v), None, False
    return str(v), None, False


def _table(columns, rows, unit):
    out = ['<div class="scroll"><table><thead><tr>']
    cells = [[_cell(c, r.get(c), unit) for c in columns] for r in rows]
    numeric = [all(cells[i][j][2] for i in range(len(rows))) for j in range(len(columns))]
    for c, n in zip(columns, numeric):
        out.append(f'<th class="{"num" if n else "txt"}">{_e(_label(c, unit))}</th>')
    out.append("</tr></thead><tbody>")
    for row in cells:
        out.append("<tr>")
        for (text, exact, _), n in zip(row, numeric):
            t = f' title="{_e(exact)}"' if exact else ""
            out.append(f'<td class="{"num" if n else "txt"}"{t}>{_e(text)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if not rows:
        out.append('<p class="note">(none)</p>')
    return "".join(out)




# -- sections ------------------------------------------------------------------------------------

def _info(trace, max_errors):
    unit = trace.time_unit
    span = trace.span
    cpus = trace.cpus()
    s = trace.stats
    rows = [("file", str(trace.source) + (f" ({trace.compression})" if trace.compression else "")),
            ("format", trace.format_description()),
            ("clock", f"{trace.clock} (times in {'seconds' if unit == 'ns' else 'ticks'})"),
            ("CPUs", f"{len(cpus)} ({_ranges(cpus)})")]
    if span:
        f = (lambda v: f"{v / 1e9:.6f} s") if unit == "ns" else (lambda v: f"{v} ticks")
        rows.append(("span", f"{f(span[0])} .. {f(span[1])} ({format_duration(span[1] - span[0], unit)})"))
    rows.append(("lines", f"{s.lines:,}: {s.events:,} events, {s.headers:,} header/comment, "
                          f"{s.filtered:,} filtered, {s.malformed:,} malformed"))
    if len(trace.lost):
        rows.append(("lost", f"{int(trace.lost['count'].sum()):,} events in {len(trace.lost)} "
                             "marker(s): " + ", ".join(f"CPU {int(r['cpu'])} at line {int(r['line'])} "
                                                       f"({int(r['count'])})" for r in trace.lost[:5])
                     + (", ..." if len(trace.lost) > 5 else "")))
    else:
        rows.append(("lost", "none"))
    out = ['<table class="info"><tbody>']
    for k, v in rows:
        out.append(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
    out.append("</tbody></table>")
    ev = sorted(((k, len(v)) for k, v in trace.events.items()), key=lambda kv: (-kv[1], kv[0]))
    out.append("<h3>Events per name</h3>")
    out.append(_table(["count", "event"], [{"count": n, "event": k} for k, n in ev], unit))
    if trace.errors:
        shown = trace.errors[:max_errors]
        out.append(f"<h3>Malformed lines (first {len(shown)} of {s.malformed:,})</h3><ul class=\"mono\">")
        out.extend(f"<li>{_e(e.message)}</li>" for e in shown)
        out.append("</ul>")
    return "".join(out)


def _evidence(ev, unit):
    """A finding's evidence: scalars as a list of key = value, lists of records as small tables."""
    scal = [(k, v) for k, v in ev.items() if not isinstance(v, (list, dict))]
    out = []
    if scal:
        out.append('<ul class="evidence">')
        for k, v in scal:
            text, exact, _ = _cell(k, v, unit)
            lab = _label(k, unit)
            t = f' title="{_e(exact)}"' if exact else ""
            out.append(f"<li><span class=\"k\">{_e(lab)}</span> = <span{t}>{_e(text)}</span></li>")
        out.append("</ul>")
    for k, v in ev.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = [c for c in v[0] if not isinstance(v[0][c], (list, dict))]
            out.append(f'<div class="sub">{_e(k)}</div>' + _table(cols, v, unit))
        elif isinstance(v, list) and v:
            out.append(f'<div class="sub">{_e(k)}: {_e(", ".join(str(x) for x in v))}</div>')
        elif isinstance(v, dict) and v:
            out.append(f'<div class="sub">{_e(k)}: '
                       + _e(", ".join(f"{a}={b}" for a, b in v.items())) + "</div>")
    return "".join(out)


def _findings(findings, unit):
    real = [f for f in findings if f["kind"] != "caveat"]
    if not real:
        return '<p class="ok">No finding past the thresholds.</p>'
    out = ['<ol class="findings">']
    for f in real:
        sev = f["severity"]
        col = SEVERITY_COLOURS.get(sev, "#757575")
        out.append(f'<li class="finding" style="border-left-color:{col}">'
                   f'<span class="badge" style="background:{col}">{_e(sev)}</span> '
                   f'<span class="kind">{_e(f["kind"])}</span>'
                   f'<p>{_e(f["explanation"])}</p>{_evidence(f["evidence"], unit)}</li>')
    out.append("</ol>")
    return "".join(out)


def _chart(c, shown):
    """A figure with its caption and the notes not already among the page's caveats (the
    image carries all of them)."""
    title = c.kind
    out = [f'<figure id="chart-{_e(c.kind)}"><figcaption><b>{_e(title)}</b>: '
           f'{_e(CHART_TEXT.get(c.kind, ""))}</figcaption>']
    if c.png is None:
        out.append(f'<p class="note">Not drawn: {_e(c.skipped)}.</p>')
    else:
        b64 = base64.b64encode(c.png).decode("ascii")
        out.append(f'<img src="data:image/png;base64,{b64}" alt="{_e(title)} chart">')
    for n in c.notes:
        if n in shown:
            continue
        out.append(f'<p class="note">note: {_e(n)}</p>')
    out.append("</figure>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;
max-width:1260px;padding:1em 1.5em;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin-bottom:.3em}
nav a{margin-right:1em}
table{border-collapse:collapse;font-size:.85em;margin:.3em 0 1em}
th,td{border:1px solid #ddd;padding:.2em .5em;vertical-align:top}
thead th{background:#f3f3f3;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.txt,th.txt{text-align:left}
td{white-space:nowrap}
table.info th{text-align:left;background:#f7f7f7}
.scroll{overflow-x:auto}
.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
.note{color:#555;font-size:.88em;margin:.2em 0}
.ok{color:#2e7d32}
ol.findings{padding-left:1.6em}
li.finding{border-left:6px solid #999;padding:.2em .8em;margin:.6em 0;background:#fafafa}
li.finding p{margin:.3em 0}
.badge{color:#fff;border-radius:3px;padding:0 .45em;font-size:.8em;text-transform:uppercase}
.kind{font-weight:600}
ul.evidence{margin:.2em 0;padding-left:1.2em;font-size:.85em;columns:2}
ul.evidence .k{color:#555}
.sub{font-size:.85em;color:#444;margin-top:.3em}
figure{margin:1em 0 2em}figcaption{margin-bottom:.4em}
img{max-width:100%;height:auto;border:1px solid #eee}
@media print{nav{display:none}figure,li.finding{break-inside:avoid}thead th{position:static}}
"""


def render(trace, *, tables=(), findings=(), charts=(), caveats=(), filters=None, top=20,
           latency=None, max_errors=10, title=None):
    """The page as a string.

    ``tables``: [(section, title, columns, rows)] as ``ftfast stats`` builds them (rows are
    dicts; ``*_ns`` columns are shown in ms, exact ns in the cell's tooltip); the report
    headings are ``SECTION_TITLES``.  ``top``: rows shown per table (0: all).  ``findings``:
    ``kvm.diagnose``'s list (caveat findings join the caveats).  ``charts``: :class:`Chart`
    list.  ``caveats``: sentences.  ``filters``: {name: value} of the selection, shown when
    any is set.  ``latency``: the global wakeup-latency figures ({count, p50_ns, ...}).
    """
    unit = trace.time_unit
    src = os.path.basename(str(trace.source)) if trace.source else "trace"
    title = title or f"ftrace report: {src}"
    notes = list(dict.fromkeys(list(caveats) + [f["explanation"] for f in findings
                                                if f["kind"] == "caveat"]))
    has_sched = trace.count("sched_switch") > 0
    kvm_tables = [t for t in tables if t[0].startswith("kvm_")]
    guest_tables = [t for t in tables if t[0].startswith("guest_")]
    sched_tables = [t for t in tables if not t[0].startswith(("kvm_", "guest_"))]
    nav = [("info", "Trace"), ("findings", "Findings"), ("scheduling", "Scheduling")]
    if kvm_tables:
        nav.append(("kvm", "KVM"))
    if guest_tables:
        nav.append(("guest", "Host and guest"))
    nav.append(("charts", "Charts"))
    w = []
    w.append(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>")
    w.append(f"<h1>{_e(title)}</h1>")
    w.append(f'<p class="note">Written by ftrace_fast {_e(__version__)}. Times in tables are in '
             f'{"milliseconds (hover a cell for the exact nanoseconds)" if unit == "ns" else "ticks of the trace clock"}.</p>')
    w.append("<nav>" + "".join(f'<a href="#{a}">{_e(b)}</a>' for a, b in nav) + "</nav>")
    if filters and any(v is not None for v in filters.values()):
        w.append('<p class="note">Selection: ' + _e("; ".join(
            f"{k}={v}" for k, v in filters.items() if v is not None))
            + " (the analysis reads every task's lines; the selection chooses rows and clips "
              "times)</p>")
    if notes:
        w.append('<div class="caveats"><h3>Caveats</h3><ul>'
                 + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>")
    w.append('<h2 id="info">Trace</h2>')
    w.append(_info(trace, max_errors))
    w.append('<h2 id="findings">Findings</h2>')
    w.append('<p class="note">Ranked, most severe first (<code>ftfast diagnose</code>); the '
             "thresholds are options of that command.</p>")
    w.append(_findings(findings, unit))
    w.append('<h2 id="scheduling">Scheduling</h2>')
    if not has_sched:
        w.append('<p class="note">The trace has no sched_switch events: the CPU, task and '
                 "latency tables and the charts drawn from them are omitted (record "
                 "sched:sched_switch and sched:sched_wakeup).</p>")
    cut = (lambda rows: rows[:top]) if top else (lambda rows: rows)
    for section, t_title, cols, rows in sched_tables:
        w.append(_section(section, t_title, cols, rows, cut, unit))
        if section.partition("@")[0] == "tasks":
            # the second question about tasks: who waited for a CPU the longest
            by_wait = rows.sorted_by("wait_ns", ["pid"]) if hasattr(rows, "sorted_by") else \
                sorted(rows, key=lambda r: (-(r.get("wait_ns") or 0), r.get("pid", 0)))
            w.append(_section("tasks_wait" + section[5:], t_title, cols, by_wait, cut, unit))
        if section == "latency" and latency:
            w.append(_latency_summary(latency, unit))
    if not sched_tables:
        w.append('<p class="note">No scheduling table for this trace.</p>')
    if kvm_tables:
        w.append('<h2 id="kvm">KVM</h2>')
        for section, t_title, cols, rows in kvm_tables:
            w.append(_section(section, t_title, cols, rows, cut, unit))
    if guest_tables:
        w.append('<h2 id="guest">Host and guest</h2>')
        w.append('<p class="note">Each guest task\'s running time and wakeup latency split by what '
                 "its vCPU thread was doing in the host at that instant (definitions G1-G7 of "
                 "<code>ftrace_fast.guest</code>): in guest mode, handling an exit, steal "
                 "(runnable in the host), halted, unknown.</p>")
        for section, t_title, cols, rows in guest_tables:
            w.append(_section(section, t_title, cols, rows, cut, unit))
    w.append('<h2 id="charts">Charts</h2>')
    w.append('<p class="note">Time axes count from the trace\'s first event, given in each '
             "axis label.</p>")
    for c in charts:
        w.append(_chart(c, set(notes)))
    w.append("</body></html>\n")
    return "".join(w)


def _latency_summary(g, unit):
    """The line under the latency table: every sample of the selection together."""
    parts = [f"count {g['count']}"] + [f"{k[:-3]} {format_duration(g[k], unit)}" for k in
                                       ("mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns")
                                       if g.get(k) is not None]
    return (f'<p class="note">All samples ({_e(g.get("source", ""))}): '
            f'{_e(", ".join(parts))}</p>')


def _section(section, t_title, cols, rows, cut, unit):
    # `section@machine`: a table of one machine of a host+guest trace
    base, _, machine = section.partition("@")
    head = SECTION_TITLES.get(base, t_title) + (f" ({machine})" if machine else "")
    if base.startswith("guest_"):
        head = t_title
    shown = cut(rows)
    more = f" (top {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
    return f'<h3 id="t-{_e(section)}">{_e(head)}{_e(more)}</h3>' + _table(cols, shown, unit)
