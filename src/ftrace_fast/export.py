"""A trace's scheduling as Chrome trace-event JSON, for ui.perfetto.dev and chrome://tracing.

The file (the "JSON Object Format" of the Trace Event Format) holds:

* a process "CPUs" (pid ``CPU_PID``) with one thread track per CPU (tid ``CPU_PID + 1 +
  cpu``): complete slices (``ph: X``) of the task current on it (named by its comm, pid in
  ``args``), of the idle task ("idle") and of the time lost events make unknown (D5, D6);
  and per CPU a counter ``CPU n utilization`` (``ph: C``, ``args.pct``): busy % per bin from
  ``sched.cpu_utilization``;
* per selected task a track (pid = its tgid, or its own pid without a tgid column; tid = pid)
  with a slice per state interval ("Running", "Runnable", "Sleeping (S)", "Blocked (D)", ...;
  the CPU in ``args``) from ``sched.task_intervals``;
* per selected vCPU thread (a task with kvm_entry lines) a track "<comm> guest" (tid
  ``GUEST_TID + pid``) with a slice "guest" from each kvm_entry to the next kvm_exit of the same
  thread (the exit reason in ``args``).  A thread whose first line is a kvm_exit was in the
  guest since the window start, one whose last is a kvm_entry stays in it to the window end
  (D3's rule for the first and last lines); an entry followed by another entry (events lost
  between them) gives no slice;
* flow arrows (``ph: s`` / ``ph: f``, ``cat: wakeup``) from each sched_wakeup of a selected
  task, on the CPU track of the wakeup line, to the switch-in it caused (D4), on the CPU track
  of the switch-in.

Synthetic ids start at 2**22, Linux's largest pid_max, so they never meet a real pid.  Times
are µs with three decimals: exact for ns clocks; a tick of an integer clock is shown as a ns.

The size guard: at most ``max_events`` events (metadata aside).  Past it the file keeps the
beginning of the window, every event up to the time where the limit is reached, and
``otherData.truncated_at`` says where it stopped.
"""

from __future__ import annotations

import json

import numpy as np

from . import machines as _machines
from . import _group, sched
from ._output import atomic_output
from ._threads import beside as _beside
from .plot import STATE_STYLE, nice_bin, timeline_tasks
from .trace import _time_arg

PID_MAX = 1 << 22
GUEST_TID = PID_MAX
CPU_PID = 2 * PID_MAX
MAX_EVENTS = 1_000_000

#: slice names of the task states (the short form of the timeline's legend)
STATE_NAMES = {s: label.split(" (waiting")[0].split(", uninterruptible")[0]
               for s, (label, _) in STATE_STYLE.items()}


def _us(ns):
    """int64 ns -> exact µs text with three decimals (list of str)."""
    ns = np.asarray(ns, np.int64)
    q, r = np.divmod(np.abs(ns), 1000)
    sign = np.where(ns < 0, "-", "")
    return [f"{s}{a}.{b:03d}" for s, a, b in zip(sign.tolist(), q.tolist(), r.tolist())]


def _jstr(names):
    """JSON string literals of a list of str (escaped once per distinct name)."""
    cache = {}
    out = []
    for n in names:
        v = cache.get(n)
        if v is None:
            v = cache[n] = json.dumps(n, ensure_ascii=False)
        out.append(v)
    return out


class _Events:
    """Event columns gathered per kind and formatted only when written, after the size guard,
    a block of rows at a time (the text of a million events is never all in memory)."""

    BLOCK = 1 << 16

    def __init__(self):
        self.parts = []   # (kind, sort time ns array, formatter(row indices) -> list of str)
        self.written = {}

    def add(self, kind, ts, fmt):
        self.parts.append((kind, np.asarray(ts, np.int64), fmt))

    def count(self):
        return sum(len(ts) for _, ts, _ in self.parts)

    def cut(self, limit):
        """The time T before which at most ``limit`` events fall (None: all fit)."""
        if self.count() <= limit:
            return None
        allts = np.concatenate([ts for _, ts, _ in self.parts])
        return int(np.partition(allts, limit)[limit])   # the first event that does not fit

    def lines(self, before):
        for kind, ts, fmt in self.parts:
            idx = np.arange(len(ts)) if before is None else np.flatnonzero(ts < before)
            self.written[kind] = self.written.get(kind, 0) + len(idx)
            for i in range(0, len(idx), self.BLOCK):
                yield from fmt(idx[i:i + self.BLOCK])


def _meta(pid, tid, what, name):
    return (f'{{"ph":"M","name":"{what}","ts":0,"pid":{pid},"tid":{tid},'
            f'"args":{{"name":{json.dumps(name, ensure_ascii=False)}}}}}')


def _sort_meta(pid, tid, what, index):
    return f'{{"ph":"M","name":"{what}","ts":0,"pid":{pid},"tid":{tid},"args":{{"sort_index":{index}}}}}'


def _slices(ts, dur, pid, tid, names, args, cat):
    """A formatter of X events; args is a list of JSON object texts (or None)."""
    def fmt(idx):
        t, d = _us(ts[idx]), _us(dur[idx])
        p, i = pid[idx].tolist(), tid[idx].tolist()
        n = [names[j] for j in idx.tolist()]
        a = [args[j] for j in idx.tolist()] if args is not None else None
        return [f'{{"ph":"X","cat":"{cat}","name":{n[j]},"ts":{t[j]},"dur":{d[j]},"pid":{p[j]},'
                f'"tid":{i[j]}' + (f',"args":{a[j]}' if a is not None else "") + "}"
                for j in range(len(idx))]
    return fmt


def perfetto(trace, path_or_file, *, pids=None, comm=None, top=20, start=None, end=None,
             cpus=None, max_events=MAX_EVENTS, util_bins=500):
    """Write the Chrome trace-event JSON of a trace (see the module docstring).

    Tasks as :func:`ftrace_fast.plot.timeline_tasks` selects them (``top=0``: every selected
    task); ``cpus`` keeps those CPUs' tracks and the tasks' time on them; ``start``/``end`` clip
    every slice.  Returns a summary dict: events written per kind, ``truncated_at`` (or None).
    """
    trace = _machines.scoped(trace)    # one machine, as every analysis (machines.M2)
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    if max_events is not None and max_events < 1:
        raise ValueError("max_events must be at least 1")
    m = sched.model(trace, intervals=True)  # one walk: the export reads the intervals
    lo, hi = sched.window(trace)
    lo = lo if start is None else max(lo, start)
    hi = hi if end is None else min(hi, end)
    hi = max(hi, lo)
    ev = _Events()
    meta = [_meta(CPU_PID, CPU_PID, "process_name", "CPUs"),
            _sort_meta(CPU_PID, CPU_PID, "process_sort_index", -1)]
    cpu_sel = _cpu_tracks(ev, meta, m, start, end, cpus)
    if m.ncpus and cpu_sel.any():
        _utilization_counters(ev, trace, m, cpu_sel, lo, hi, start, end, util_bins)
    sel_pids, labels = _task_tracks(ev, meta, trace, m, pids=pids, comm=comm, top=top, start=start,
                                    end=end, cpus=cpus)
    _guest_tracks(ev, meta, trace, m, sel_pids, labels, lo, hi, start, end)
    _wakeup_flows(ev, trace, sel_pids, start, end, cpus)

    cut = ev.cut(max_events) if max_events is not None else None
    other = {"source": str(trace.source), "generator": "ftrace_fast.export.perfetto",
             "time_unit": "ns" if trace.time_unit == "ns" else "ticks (shown as ns)",
             "window_ns": [int(lo), int(hi)], "truncated_at": cut,
             "caveats": sched.caveats(trace)}
    written = _write(path_or_file, meta, ev.lines(cut), other)
    kinds = {k: ev.written.get(k, 0) for k in ("cpu_slices", "task_slices", "guest_slices",
                                               "counters", "flows")}
    return {"events": written, "metadata": len(meta), "truncated_at": cut,
            "would_have": ev.count(), **kinds}


def _cpu_tracks(ev, meta, m, start, end, cpus):
    """A track per CPU with a slice per occupant (D5, D6); returns the mask of CPUs kept."""
    r = m.r
    comms = _jstr(m.comm.tolist())
    cpu_sel = np.ones(m.ncpus, bool) if cpus is None else np.isin(m.cpus, np.asarray(list(cpus)))
    a, b, _ = sched._clip(start, end, r["co_start"], r["co_end"])
    k = (b > a) & cpu_sel[r["co_cpu"]] if m.ncpus else np.zeros(len(a), bool)
    occ = r["co_occ"][k]
    cpu_num = m.cpus[r["co_cpu"][k]] if m.ncpus else np.zeros(0, np.int64)
    idle_name, unk_name = json.dumps("idle"), json.dumps("unknown (lost events)")
    names = [comms[o] if o >= 0 else (idle_name if o == sched.IDLE else unk_name)
             for o in occ.tolist()]
    occ_pid = m.pids[np.maximum(occ, 0)] if m.ntasks else np.zeros(len(occ), np.int64)
    args = [f'{{"pid":{p}}}' if o >= 0 else "{}" for o, p in zip(occ.tolist(), occ_pid.tolist())]
    tid = CPU_PID + 1 + cpu_num.astype(np.int64)
    ev.add("cpu_slices", a[k], _slices(a[k], (b - a)[k], np.full(len(tid), CPU_PID), tid, names,
                                       args, "cpu"))
    for c in m.cpus[cpu_sel].tolist():
        meta.append(_meta(CPU_PID, CPU_PID + 1 + c, "thread_name", f"CPU {c}"))
        meta.append(_sort_meta(CPU_PID, CPU_PID + 1 + c, "thread_sort_index", c))
    return cpu_sel


def _utilization_counters(ev, trace, m, cpu_sel, lo, hi, start, end, util_bins):
    """A counter per kept CPU: its busy % per bin of about (hi - lo) / util_bins."""
    bin_ns = nice_bin(hi - lo, util_bins)
    edges, busy = sched.cpu_utilization(trace, bin_ns, start=start, end=end)
    length = np.diff(edges).astype(np.float64)
    pct = np.where(length > 0, 100.0 * busy / np.maximum(length, 1), 0.0)[cpu_sel]
    nums = m.cpus[cpu_sel]
    nb = pct.shape[1]
    # each bin's value at its start, and the last one held to the window's end
    ts_c = np.tile(np.r_[edges[:-1], edges[-1]], len(nums))
    val = np.concatenate([np.r_[row, row[-1:]] for row in pct])
    cnum = np.repeat(nums, nb + 1)

    def fmt_c(idx):
        t = _us(ts_c[idx])
        v, c = val[idx].tolist(), cnum[idx].tolist()
        return [f'{{"ph":"C","name":"CPU {c[j]} utilization","ts":{t[j]},"pid":{CPU_PID},'
                f'"tid":{CPU_PID},"args":{{"pct":{v[j]:.2f}}}}}' for j in range(len(idx))]
    ev.add("counters", ts_c, fmt_c)


def _process_of(m):
    """pid -> the track process of a task: its tgid, or itself without one."""
    tg = dict(zip(m.pids.tolist(), m.tgid.tolist()))
    return lambda p: tg[p] if tg.get(p, -1) >= 0 else p


def _task_tracks(ev, meta, trace, m, *, pids, comm, top, start, end, cpus):
    """A track per selected task with a slice per state interval, grouped by process; returns
    (the selected pids, their labels)."""
    sel_pids, labels, _, iv = timeline_tasks(trace, pids=pids, comm=comm, top=top, start=start,
                                             end=end, cpus=cpus)
    iv = iv[iv["end_ns"] > iv["start_ns"]]
    proc = np.where(iv["tgid"] >= 0, iv["tgid"], iv["pid"]).astype(np.int64)
    state_json = {s: json.dumps(n) for s, n in STATE_NAMES.items()}
    names = [state_json[s] for s in iv["state"].tolist()]
    args = [f'{{"cpu":{c}}}' if c >= 0 else "{}" for c in iv["cpu"].tolist()]
    ev.add("task_slices", iv["start_ns"], _slices(iv["start_ns"], iv["end_ns"] - iv["start_ns"], proc,
                                   iv["pid"].astype(np.int64), names, args, "state"))
    process = _process_of(m)
    seen_proc = set()
    for i, p in enumerate(sel_pids.tolist()):
        pr = process(p)
        if pr not in seen_proc:
            seen_proc.add(pr)
            pname = m.comm[m.task_index([pr])[0]] if m.task_index([pr])[0] >= 0 else f"process {pr}"
            meta.append(_meta(pr, pr, "process_name", f"{pname} ({pr})"))
        meta.append(_meta(pr, p, "thread_name", labels[i]))
        meta.append(_sort_meta(pr, p, "thread_sort_index", 2 * i))
    return sel_pids, labels


def _guest_tracks(ev, meta, trace, m, sel_pids, labels, lo, hi, start, end):
    """A "<task> guest" track under each selected vCPU thread, a slice per guest-mode span."""
    g = _guest_slices(trace, sel_pids, lo, hi, start, end)
    if g is None:
        return
    process = _process_of(m)
    gs, ge, gpid, greason = g
    gproc = np.array([process(p) for p in gpid.tolist()], np.int64)
    gname = [json.dumps("guest")] * len(gs)
    gargs = [f'{{"exit_reason":{json.dumps(x)}}}' if x is not None else '{"exit_reason":null}'
             for x in greason]
    ev.add("guest_slices", gs, _slices(gs, ge - gs, gproc, GUEST_TID + gpid.astype(np.int64),
                                       gname, gargs, "kvm"))
    order = {p: i for i, p in enumerate(sel_pids.tolist())}
    for p in np.unique(gpid).tolist():
        pr = process(p)
        meta.append(_meta(pr, GUEST_TID + p, "thread_name", f"{labels[order[p]]} guest"))
        meta.append(_sort_meta(pr, GUEST_TID + p, "thread_sort_index", 2 * order[p] + 1))


def _wakeup_flows(ev, trace, sel_pids, start, end, cpus):
    """Flow arrows from each sched_wakeup of a selected task to the switch-in it caused (D4)."""
    lat = sched.wakeup_latencies(trace, start=start, end=end, cpus=cpus, pids=sel_pids)
    wcpu = _wakeup_cpu(trace, lat)
    keep = wcpu >= 0
    if cpus is not None:
        keep &= np.isin(wcpu, np.asarray(list(cpus)))
    lat, wcpu = lat[keep], wcpu[keep]
    if end is not None:
        keep = lat["switch_ts"] <= end
        lat, wcpu = lat[keep], wcpu[keep]
    if not len(lat):
        return
    fid = np.arange(1, len(lat) + 1)
    fs = _flow_fmt("s", lat["ts"], CPU_PID + 1 + wcpu.astype(np.int64), fid, lat["pid"])
    ff = _flow_fmt("f", lat["switch_ts"], CPU_PID + 1 + lat["cpu"].astype(np.int64), fid,
                   lat["pid"])
    # both ends sort by the switch-in time: a flow is kept whole or not at all
    ev.add("flows", lat["switch_ts"], fs)
    ev.add("flow_ends", lat["switch_ts"], ff)


def _flow_fmt(ph, ts, tid, fid, pid):
    def fmt(idx):
        t = _us(ts[idx])
        i, f, p = tid[idx].tolist(), fid[idx].tolist(), pid[idx].tolist()
        # the end binds to the slice starting at it (the switched-in task's); "next" could skip it
        bp = ',"bp":"e"' if ph == "f" else ""
        return [f'{{"ph":"{ph}","cat":"wakeup","name":"wakeup {p[j]}","id":{f[j]},"ts":{t[j]},'
                f'"pid":{CPU_PID},"tid":{i[j]}{bp}}}' for j in range(len(idx))]
    return fmt


def _write(dst, meta, lines, other):
    n = 0

    def body(f):
        nonlocal n
        f.write('{"traceEvents":[\n')
        first = True
        for block in (meta, lines):
            for s in block:
                if not first:
                    f.write(",\n")
                f.write(s)
                first = False
                n += 1
        f.write('\n],\n"displayTimeUnit":"ns",\n"otherData":')
        f.write(json.dumps(other))
        f.write("}\n")

    if hasattr(dst, "write"):
        body(dst)
    else:
        # written beside the target and renamed on success: an interrupted export leaves no bad JSON
        with atomic_output(dst, "w") as f:
            body(f)
    return n - len(meta)


def _wakeup_cpu(trace, lat):
    """The CPU of the sched_wakeup line of each latency sample (-1 when not found): an as-of
    join on (pid, ts): the latest sched_wakeup of the pid at or before the sample's time."""
    w = trace.events.get("sched_wakeup")
    out = np.full(len(lat), -1, np.int64)
    if w is None or not len(w) or not len(lat):
        return out
    nw = len(w)
    pid = np.r_[w["task_pid"].astype(np.int64), lat["pid"].astype(np.int64)]
    ts = np.r_[w["ts"], lat["ts"]]
    is_q = np.r_[np.zeros(nw, bool), np.ones(len(lat), bool)]
    o = np.lexsort((is_q, ts, pid))           # a query after the events of its (pid, ts)
    pos = np.where(~is_q[o], np.arange(len(o)), -1)
    last = np.maximum.accumulate(pos)         # the latest event at or before each position
    qo = np.flatnonzero(is_q[o])
    src = last[qo]
    ok = src >= 0
    ok[ok] = pid[o[src[ok]]] == pid[o[qo[ok]]]
    qi = o[qo] - nw
    out[qi[ok]] = w["cpu"][o[src[ok]]]
    return out


def _guest_slices(trace, sel_pids, lo, hi, start, end):
    """(start, end, pid, exit reason) of guest-mode spans of the selected threads, clipped to
    [lo, hi]; None without kvm_entry/kvm_exit lines."""
    en, ex = trace.events.get("kvm_entry"), trace.events.get("kvm_exit")
    if en is None and ex is None:
        return None
    parts = []
    for a, kind in ((en, 0), (ex, 1)):
        if a is None or not len(a):
            continue
        k = np.isin(a["pid"], sel_pids) & (a["ts"] >= 0)
        reason = a["reason"][k] if kind == 1 else np.full(int(k.sum()), -1, np.int32)
        parts.append((a["ts"][k], a["line"][k], a["pid"][k].astype(np.int64),
                      np.full(int(k.sum()), kind, np.int8), reason.astype(np.int64)))
    if not parts:
        return None
    ts, line, pid, kind, reason = (np.concatenate(x) for x in zip(*parts))
    if not len(ts):
        return None
    o = np.lexsort((line, ts, pid))
    ts, pid, kind, reason = ts[o], pid[o], kind[o], reason[o]
    same = np.r_[pid[1:] == pid[:-1], False]
    pair = (kind == 0) & np.r_[kind[1:] == 1, False] & same
    s, e, p, rs = ts[pair], ts[1:][pair[:-1]], pid[pair], reason[1:][pair[:-1]]
    first = np.r_[True, pid[1:] != pid[:-1]]
    last = np.r_[pid[1:] != pid[:-1], True]
    # in the guest since the window start / to the window end (D3)
    w0, w1 = sched.window(trace)
    fx = first & (kind == 1)
    le = last & (kind == 0)
    s = np.r_[s, np.full(int(fx.sum()), w0), ts[le]]
    e = np.r_[e, ts[fx], np.full(int(le.sum()), w1)]
    p = np.r_[p, pid[fx], pid[le]]
    rs = np.r_[rs, reason[fx], np.full(int(le.sum()), -1)]
    s, e = np.maximum(s, lo), np.minimum(e, hi)
    k = e > s
    syms = trace.symbols
    names = [syms[x] if 0 <= x < len(syms) else None for x in rs[k].tolist()]
    o = np.lexsort((s[k], p[k]))
    return s[k][o], e[k][o], p[k][o], [names[i] for i in o.tolist()]


# -- tables: Parquet, CSV and Arrow ------------------------------------------------------------
#
# One table per event name (the record columns by their names in events.py; comm and symbol
# ids as dictionary-encoded strings, prev_state as its letters, text fields as strings, ts as
# int64 in the trace's unit with the clock in the metadata), the analysis tables (tasks, cpus,
# latency; on KVM hosts vcpus, exits, neighbours, findings) and meta.json.

PARQUET_HINT = "pip install 'ftrace_fast[parquet]'"


def _pyarrow(fmt=None):
    """pyarrow, with the writer of fmt ("parquet" or "csv") imported (each costs imports)."""
    try:
        import pyarrow
        if fmt == "csv":
            import pyarrow.csv  # noqa: F401
        elif fmt == "parquet":
            import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError(f"Parquet, CSV and Arrow tables need pyarrow: {PARQUET_HINT}") from None
    return pyarrow


# Arrow arrays are built from their buffers: pa.array() imports pandas on its first call
# (pyarrow's pandas shim asks whether the argument is a pandas object), whatever it is given

def _validity(pa, null):
    """The validity bitmap of a bool mask of nulls, or None when there is none."""
    if null is None or not null.any():
        return None, 0
    return pa.py_buffer(np.packbits(~null, bitorder="little")), int(null.sum())


def _numbers(pa, a, null=None):
    """A numeric or bool NumPy column as an Arrow array (no copy of a contiguous one)."""
    a = np.ascontiguousarray(a)
    valid, nulls = _validity(pa, null)
    if a.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), len(a), [valid, pa.py_buffer(
            np.packbits(a, bitorder="little"))], null_count=nulls)
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), len(a),
                                 [valid, pa.py_buffer(a)], null_count=nulls)


def _strings(pa, values):
    """A list of str (None: null) as an Arrow string column."""
    data = [b"" if v is None else v.encode("utf-8") for v in values]
    ends = np.cumsum([len(b) for b in data], dtype=np.int64)
    big = len(ends) and ends[-1] >= 2**31
    offsets = np.concatenate([[0], ends]).astype(np.int64 if big else np.int32)
    valid, nulls = _validity(pa, np.array([v is None for v in values], bool))
    return pa.Array.from_buffers(pa.large_string() if big else pa.string(), len(data),
                                 [valid, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))],
                                 null_count=nulls)


def _py_column(pa, values):
    """A column of Python values as pyarrow.array() would type it: null, bool, int64, double
    or string (anything else through pyarrow.array)."""
    present = [v for v in values if v is not None]
    null = np.array([v is None for v in values], bool)
    kinds = {type(v) for v in present}
    if not present:
        return pa.nulls(len(values))
    if kinds == {bool}:
        return _numbers(pa, np.array([bool(v) for v in values], bool), null)
    if kinds <= {int, float} and all(-(2**63) <= v < 2**63 for v in present if type(v) is int):
        dt = np.int64 if kinds == {int} else np.float64
        return _numbers(pa, np.array([0 if v is None else v for v in values], dt), null)
    if kinds == {str}:
        return _strings(pa, values)
    return pa.array(values)


def _dictionary(pa, ids, table):
    """int32 ids into a list of str (-1: null) as a dictionary-encoded string column."""
    ids = np.ascontiguousarray(ids, np.int32)
    bad = (ids < 0) | (ids >= len(table))
    return pa.DictionaryArray.from_arrays(_numbers(pa, np.where(bad, 0, ids).astype(np.int32),
                                                   bad),
                                          _strings(pa, list(table) or [""]))


def _coded(pa, values, names):
    """A column of few distinct values as a dictionary of their names(distinct values):
    sorted distinct values and a binary search (np.unique's inverse sorts every row)."""
    values = np.ascontiguousarray(values)
    u = np.unique(values)
    return _dictionary(pa, np.searchsorted(u, values).astype(np.int32), names(u))


def _texts(pa, arena, offs, lens):
    """Strings arena[off:off + len] as one Arrow column, gathered without a loop per row."""
    lens = np.maximum(np.asarray(lens, np.int64), 0)
    ends = np.cumsum(lens)
    total = int(ends[-1]) if len(ends) else 0
    starts = np.asarray(offs, np.int64)
    gather = np.repeat(starts - (ends - lens), lens) + np.arange(total, dtype=np.int64)
    data = np.asarray(arena)[gather] if total else np.zeros(0, np.uint8)
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(lens),
                                           [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        return arr.cast(pa.large_string())   # checks the UTF-8
    except pa.ArrowInvalid:
        return arr                            # bytes that are no UTF-8 stay bytes


def _time_field_meta(trace):
    return {b"unit": trace.time_unit.encode(), b"clock": trace.clock.encode()}


def event_table(trace, name, mask=None):
    """One event's records as a pyarrow.Table (see the section comment), rows where mask."""
    pa = _pyarrow()
    from . import events as _ev
    a = trace.events[name]
    if mask is not None:
        a = a[mask]
    layout = trace.layout(name)
    kinds = _ev.field_kinds(layout)
    cols, fields = [], []

    def add(col, arr, meta=None):
        cols.append(arr)
        fields.append(pa.field(col, arr.type, metadata=meta))
    add("ts", _numbers(pa, a["ts"]), _time_field_meta(trace))
    for c in ("line", "cpu", "pid", "tgid"):
        add(c, _numbers(pa, a[c]))
    add("comm", _dictionary(pa, a["comm"], trace.comms))
    add("flags", _coded(pa, np.ascontiguousarray(a["flags"]).view(np.uint64),
                        lambda u: [x.decode("latin-1") for x in u.view("S8").tolist()]))
    for field, kind in kinds.items():
        # the record's own names: the kernel's (sched_waking's comm, pid) repeat the common ones
        col = field
        if kind == "comm":
            add(col, _dictionary(pa, a[field], trace.comms))
        elif kind == "sym":
            add(col, _dictionary(pa, a[field], trace.symbols))
        elif kind == "state":
            add(col, _coded(pa, a[field], lambda u: [_ev.state_string(int(x)) for x in u.tolist()]))
        elif kind == "text":
            add(col, _texts(pa, trace.text_arena, a[field + "_off"], a[field + "_len"]))
        else:
            add(col, _numbers(pa, a[field]))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=_table_meta(trace, name)))


def _table_meta(trace, name):
    from . import __version__
    return {b"ftrace_fast.table": name.encode(), b"ftrace_fast.clock": trace.clock.encode(),
            b"ftrace_fast.time_unit": trace.time_unit.encode(),
            b"ftrace_fast.version": __version__.encode()}


def _json_cell(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=lambda x: x.item() if hasattr(x, "item") else str(x))
    return v.item() if isinstance(v, np.generic) else v


def _array_table(pa, rows, trace, name):
    """A structured array (str columns: object) or a list of dicts as a pyarrow.Table."""
    if isinstance(rows, np.ndarray):
        cols = {}
        for c in rows.dtype.names:
            v = rows[c]
            cols[c] = _strings(pa, v.tolist()) if v.dtype == object else _numbers(pa, v)
        t = pa.table(cols)
    else:
        names = []
        for r in rows:
            names += [k for k in r if k not in names]
        t = pa.table({k: _py_column(pa, [_json_cell(r.get(k)) for r in rows]) for k in names}) \
            if rows else pa.table({})
    return t.replace_schema_metadata(_table_meta(trace, name))


def analysis_tables(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """{name: pyarrow.Table} of the analyses: tasks, cpus, latency, and on a KVM host vcpus,
    exits, neighbours and findings (the figures of ``ftfast stats`` and ``diagnose``)."""
    pa = _pyarrow()
    out = {}
    rk = dict(start=start, end=end, cpus=cpus)
    from . import kvm
    if trace.count("sched_switch"):
        # one walk builds every table the analyses below read, not one walk per table (the
        # restricted summaries read them all)
        sched.model(trace, intervals=sched.ALL if kvm._restricted(**rk) else sched.IV | sched.CO)
        out["tasks"] = sched.task_summary(trace, pids=pids, comm=comm, **rk)
        out["cpus"] = sched.cpu_summary(trace, **rk)
        out["latency"] = sched.latency_table(trace, pids=pids, comm=comm, **rk)
    if len(kvm.topology(trace).vcpu_pids):
        kvm.prepare(trace)
        out["vcpus"] = kvm.vcpu_summary(trace, **rk)
        if trace.count("kvm_exit"):
            out["exits"] = [dict(r, vcpu_pid=r["group"]) for r in kvm.exits(trace).by_reason(None, **rk)]
            for r in out["exits"]:
                r.pop("group", None)
        if trace.count("sched_switch"):
            out["neighbours"] = kvm.neighbours(trace, **rk)
        found = kvm.diagnose(trace, **rk)
        if pids is not None or comm is not None:
            found = [f for f in found if f["subject"].get("pid") is None
                     or ((pids is None or f["subject"]["pid"] in pids)
                         and (comm is None or comm.search(f["subject"].get("comm", ""))))]
        out["findings"] = found
    return {k: _array_table(pa, v, trace, k) for k, v in out.items()}


def _event_mask(a, start, end, cpus):
    k = _group.line_mask(a["ts"], a["cpu"], start, end, cpus)
    return None if k.all() else k


def write_tables(trace, out_dir, fmt="parquet", *, start=None, end=None, cpus=None, pids=None,
                 comm=None):
    """Write every event table, the analysis tables and meta.json into out_dir (Parquet or
    CSV), through a temporary directory beside it renamed on success (an existing out_dir is
    replaced only then).  Returns meta.json's content."""
    pa = _pyarrow(fmt)
    import os
    import shutil
    import tempfile
    from . import __version__
    import re
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    comm = re.compile(comm) if isinstance(comm, str) else comm
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be 'parquet' or 'csv', not {fmt!r}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.part", dir=parent)
    try:
        def put(name, table):
            path = os.path.join(tmp, f"{name}.{fmt}")
            if fmt == "parquet":
                # dictionaries and statistics only where read (coded columns; ts, what time ranges prune on)
                coded = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
                pa.parquet.write_table(table, path, use_dictionary=coded,
                                       write_statistics=[c for c in ("ts",)
                                                         if c in table.column_names])
            else:
                # CSV has no dictionary type: the strings are written out
                table = table.cast(pa.schema([pa.field(f.name, f.type.value_type
                                                       if pa.types.is_dictionary(f.type)
                                                       else f.type) for f in table.schema]))
                pa.csv.write_csv(table, path)
            return table.num_rows
        # the analysis (model walk, NumPy) beside the event tables' conversion and writes
        analysis = _beside(lambda: analysis_tables(trace, start=start, end=end, cpus=cpus,
                                                   pids=pids, comm=comm), "ftrace_fast-export")
        counts = {}
        try:
            for name in trace.events:
                a = trace.events[name]
                mask = _event_mask(a, start, end, cpus)
                counts[name] = put(_file_name(name), event_table(trace, name, mask))
        except BaseException:
            try:                                 # not left running; the first error is the one
                analysis()
            except BaseException:
                pass
            raise
        tables = analysis()
        rows = {name: put(name, t) for name, t in tables.items()}
        span = trace.span
        meta = {"input": trace.source, "format": trace.format_description(),
                "clock": trace.clock, "time_unit": trace.time_unit,
                "span": None if span is None else {"start": span[0], "end": span[1]},
                "events": counts, "tables": rows,
                "lines": trace.stats.lines, "malformed": trace.stats.malformed,
                "lost_markers": int(len(trace.lost)),
                "filters": {"start": start, "end": end, "cpus": cpus, "pids": pids,
                            "comm": None if comm is None else comm.pattern},
                "file_format": fmt, "ftrace_fast_version": __version__}
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, default=lambda x: x.item() if hasattr(x, "item") else str(x))
        if os.path.isdir(out_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old", dir=parent)
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
        tmp = None
        return meta
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _file_name(event):
    """The file name of an event's table: its name, made safe (and never an analysis
    table's name)."""
    import re
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", event).lstrip(".") or "_"
    return f"event_{safe}" if safe in _ANALYSIS_NAMES or safe != event else safe


# event names that would take an analysis table's file name
_ANALYSIS_NAMES = ("tasks", "cpus", "latency", "vcpus", "exits", "neighbours", "findings", "meta")
