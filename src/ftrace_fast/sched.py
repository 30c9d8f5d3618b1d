"""Scheduling analysis: exact run / wait / sleep / blocked time per task, CPU utilization,
wakeup latency, switches and migrations.

Definitions (the tests cite them by number)
-------------------------------------------
D1. The window W runs from the first to the last timestamp of an event line (headers, LOST
    markers and malformed lines do not count; function_graph lines without a time stamp do not
    either).  Every task is, at each instant of W, in exactly one state: RUNNING, RUNNABLE,
    SLEEP_S, SLEEP_D (blocked, uninterruptible: the I/O wait), SLEEP_OTHER (any other letter:
    I, T, t, P, K, W, ... or unknown), DEAD or UNKNOWN — or it does not exist yet.
D2. sched_switch: prev leaves RUNNING for the state its prev_state names (R or R+: RUNNABLE;
    X or Z: DEAD; S: SLEEP_S; D, with or without other letters: SLEEP_D; any other letter:
    SLEEP_OTHER); next becomes RUNNING.  sched_wakeup moves a sleeping task to RUNNABLE (a
    wakeup of a running or runnable task is counted but changes nothing); sched_wakeup_new
    makes a new task RUNNABLE.  sched_waking changes no state: the waking-to-wakeup gap is
    still sleep.  sched_migrate_task moves a RUNNABLE task's wait to its dest_cpu.
D3. Before a task's first line: RUNNING since the window start if that line shows it as the
    line's own task or as sched_switch prev; RUNNABLE if the line switches it in (waiting on
    that CPU) or migrates it (waiting on its orig_cpu); SLEEP_OTHER (letter unknown) if the
    line wakes it (sched_waking or sched_wakeup); not existing if the line is its sched_process_fork (as the child) or its sched_wakeup_new —
    and it stays not existing from a fork until its first wakeup or other line.  After its last
    line a task keeps its state to the end of W.
D4. Wait = time RUNNABLE.  Wakeup latency = from a sched_wakeup of a sleeping task to its next
    switch-in; samples whose switch-in is not in the file are dropped.  Measured from
    sched_waking, it starts at the sched_waking of the task that preceded that wakeup in the
    same sleep (no sample when there was none).  Percentiles are nearest-rank:
    sorted[ceil(p/100*n) - 1].
D5. The idle task (pid 0, `<idle>` / `swapper/N`) is no task of the per-task tables.  A CPU's
    current task is the task in its lines' prefix, changed by its sched_switch lines; busy =
    time a real task is current, idle = time the idle task is, unknown = the rest, and
    busy + idle + unknown = |W| for every CPU.  Before its first line a CPU runs that line's
    prefix task since the window start (idle if pid 0; busy if the task had not been seen
    before; unknown otherwise, up to that line).
D6. Lost events (`CPU:N [LOST M EVENTS]`): on CPU N the span from its last line before the
    marker to its next line is unknown for the CPU, and the task current on it at the gap start,
    and every task RUNNABLE on it (waiting for it) then or made so during the gap (woken or
    migrated onto it), is UNKNOWN from there until its next
    line anywhere, where it takes the state that line shows (D3's roles, from that line on).
    None of it counts as run or wait.  The gap starts at the CPU's last line before the
    marker (trace_pipe prints the marker only when it reads that CPU's next event).  A task
    woken (sched_wakeup or sched_wakeup_new) or migrated onto that CPU inside the gap is
    UNKNOWN too; a sched_switch that switches out an UNKNOWN task ends its unknown span with
    no run time and no inferred switch-in (D7 does not apply); a wakeup-latency sample still
    runs from its sched_wakeup to the next switch-in (D4).
D7. Missing switch out of the idle task (real kernels sometimes omit one): when a CPU's
    sched_switch has a prev that is not the task last switched in on that CPU, the switch-in
    of prev is inferred at prev's most recent sched_wakeup with target_cpu on that CPU if it
    came after the CPU's last switch, else at the CPU's previous line.  The task that was
    current there becomes UNKNOWN at that instant (unless it is the idle task).  Switch-in
    counts include inferred ones; `inferred_switch_ins` says how many per task.
D8. Integer clocks (`counter`, `x86-tsc`) are kept in ticks: every `_ns` figure is then in
    ticks (`unit()` says which).
D9. Run slice = one RUNNING interval (switch-in to switch-out, clipped at W); mean slice =
    run time / number of slices.  Preemptions = switch-outs with prev_state R or R+.
    Wakeups = sched_wakeup lines naming the task; migrations = sched_migrate_task lines.
D10. Restrictions: start/end clip intervals to [start, end] and keep events with start <= ts
    <= end; cpus keeps RUNNING / RUNNABLE time and events on those CPUs (sleep time belongs
    to no CPU and is dropped); pids / comm keep the rows of those tasks.
D11. Line counts (switch_counts, wakeup_counts, migration_counts) count event lines per task
    as the line's payload prints it: the pair (comm, pid), so a thread renamed during the
    trace has one row per name.  A sched_switch counts one switch-in for its next task and
    one switch-out for its prev task: voluntary when prev_state is not R or R+ (any sleep,
    exit or parked state), involuntary (preempted) when it is; switches_out_D counts the
    switch-outs whose prev_state has D.  A row is shown when it has a switch-in or out.
    Restrictions keep lines, not tasks: start/end and cpus by the line's time and CPU; pids by
    the pid the line names for that count; comm by the comm it prints there (a line printing
    no comm never matches).  No scheduling model is needed: a trace of these events alone
    will do.
D12. The threads of a process (tgid_pids): every pid that a line's record-tgid column shows
    with one of the tgids, and the tgids themselves (a main thread has pid == tgid).
"""

from __future__ import annotations

import re

import numpy as np

from . import _ftsched, _group
# the shared helpers under the names this module's code (and export.perfetto) calls them by
from ._group import Ids as _Ids, clip as _clip, sum_by as _sum_by, unique as _unique_ints
from ._group import window_mask as _in_window
from . import machines as _machines
from .events import STATE_BITS, STATE_UNKNOWN_LETTER
from .trace import _time_arg, derived

RUNNING, RUNNABLE, SLEEP_S, SLEEP_D, SLEEP_OTHER, DEAD, UNKNOWN = range(7)
STATE_NAMES = ("running", "runnable", "sleep_S", "blocked_D", "sleep_other", "dead", "unknown")
IDLE = -2

_K = _ftsched.KINDS
#: the tables of a model (SchedModel.tables): task intervals, CPU occupancy, switches
IV, CO, SW = (_ftsched.TABLES[k] for k in ("iv", "co", "sw"))
ALL = IV | CO | SW
_EVENT_KIND = {
    "sched_switch": _K["switch"], "sched_wakeup": _K["wakeup"],
    "sched_wakeup_new": _K["wakeup_new"], "sched_waking": _K["waking"],
    "sched_migrate_task": _K["migrate"], "sched_process_fork": _K["fork"],
    "sched_process_exit": _K["exit"],
}
# lines that repeat another line's prefix or carry no time: not part of the stream
_SKIP = ("stack_frame", "funcgraph_entry", "funcgraph_exit")

#: the events each analysis needs (load(events=...) can use this)
REQUIRED_EVENTS = ("sched_switch",)
USED_EVENTS = ("sched_switch", "sched_wakeup", "sched_wakeup_new", "sched_waking",
               "sched_migrate_task", "sched_process_fork", "sched_process_exit",
               "irq_handler_entry", "irq_handler_exit", "softirq_entry", "softirq_exit")


def _columns(name):
    """The column of each of _ftsched.FIELDS in the event's records (None: it has none)."""
    role = ("child_" if name == "sched_process_fork" else "prev_" if name == "sched_switch"
            else "task_" if name in _ACTS else None)
    sw = name == "sched_switch"
    tc = "dest_cpu" if name == "sched_migrate_task" else "target_cpu" if name in _ACTS else None
    return {"ts": "ts", "line": "line", "cpu": "cpu", "pid": "pid", "tgid": "tgid",
            "comm": "comm", "a": role and role + "pid", "acomm": role and role + "comm",
            "b": "next_pid" if sw else None, "bcomm": "next_comm" if sw else None,
            "st": "prev_state" if sw else None, "tc": tc,
            "oc": "orig_cpu" if name == "sched_migrate_task" else None}


def _offsets(name, a):
    """Byte offsets of the fields the stream reads, in _ftsched.FIELDS order (-1: absent)."""
    f = a.dtype.fields
    cols = _columns(name)
    out = []
    for field in _ftsched.FIELDS:
        col = cols[field]
        if col is None or col not in f:
            out.append(-1)
            continue
        want = np.dtype("i8" if field in ("ts", "line") else "i4")
        if f[col][0] != want:
            raise TypeError(f"{name}.{col}: expected {want}, got {f[col][0]}")
        out.append(f[col][1])
    return np.array(out, np.int64)


# the events counted per task (wakeups, wakings, migrations), in Stream's count slots
_COUNTED = ("sched_wakeup", "sched_waking", "sched_migrate_task")
# the events whose task_pid / child_pid is the task they act on
_ACTS = ("sched_wakeup", "sched_waking", "sched_wakeup_new", "sched_migrate_task",
         "sched_process_exit", "sched_process_fork")
# pids and CPU numbers up to these are collected in byte maps (larger ones: np.unique)
_PID_MARK = 1 << 22
_CPU_MARK = 1 << 16


class SchedModel:
    """The result of one walk over a trace's scheduler events (cached on the Trace).

    The walk adds up what the unrestricted summaries need (``sums``); the tables that
    restricted queries and task_intervals need (``r``: task intervals IV, CPU occupancy CO,
    switches SW) come from another walk made the first time one asks for them, unless the
    model was built with them (``tables``).  Results per restriction are cached (``_rows``), so
    latency_table after task_summary does not repeat the work.

    ``iv_select(model)``, when the model is built with IV, names the tasks (a bool each) whose
    intervals its callers read: the IV table then holds those tasks' rows only (``_iv_sel``;
    IV stays out of ``_have``, which names the tables of every task)."""

    def __init__(self, trace, tables=0, iv_select=None):
        self.trace = trace
        self.unit = trace.time_unit
        self._r = None
        self._have = 0
        self._full = tables
        self._iv_sel = None
        self._rows = {}
        self._names = None
        self._events = {}
        self._build(trace, iv_select)

    def _open_stream(self, trace):
        # the stream: one entry per event line (any event: every line shows its CPU's current
        # task), read in place from the event arrays in (ts, line) order
        segs = [(name, np.ascontiguousarray(a)) for name, a in trace.events.items()
                if name not in _SKIP and len(a)]
        self._segs = segs
        self._stream = _ftsched.Stream([(a, _EVENT_KIND.get(name, _K["other"]),
                                         _offsets(name, a),
                                         _COUNTED.index(name) if name in _COUNTED else -1)
                                        for name, a in segs])
        return self._stream

    def _build(self, trace, iv_select=None):
        stream = self._open_stream(trace)
        segs = self._segs
        lost = trace.lost
        # (aligned: a field of a one-row packed array is contiguous but not aligned)
        lost_line = np.require(lost["line"], np.int64, ["C", "A"])
        self._lost_cpu = lost_cpu = np.require(lost["cpu"], np.int32, ["C", "A"])
        pid_mark = np.zeros(_PID_MARK, np.uint8)
        cpu_mark = np.zeros(_CPU_MARK, np.uint8)
        # the file order: the array of each line in a table indexed by line number, when the
        # lines are dense enough (each array is in file order; scan() checks it)
        ends = [(int(a["line"][0]), int(a["line"][-1])) for _, a in segs]
        ends += [(int(lost_line[0]), int(lost_line[-1]))] if len(lost_line) else []
        line_lo = min((x for x, _ in ends), default=0)
        span = max((y for _, y in ends), default=-1) - line_lo + 1
        n = sum(len(a) for _, a in segs) + len(lost_line)
        # (2 bytes a line: past 16 lines an entry, e.g. a load of a few events, sorting is
        # cheaper)
        slot = np.zeros(span if 0 < span <= 16 * n + 65536 else 0, np.int16)
        nev, ts_lo, ts_hi, pid_hi, pid_big, cpu_hi, cpu_big, in_order, unstamped = \
            stream.scan(pid_mark, cpu_mark, slot, line_lo, lost_line)
        self.w0, self.w1 = (ts_lo, ts_hi) if nev else (0, 0)
        # tasks: every pid > 0 named anywhere; cpus: every CPU of a line or a LOST marker
        if pid_big:
            p = self._gather(("pid", "a", "b"))[0]
            self.pids = _unique_ints(p[p > 0])
        else:
            self.pids = np.flatnonzero(pid_mark[:pid_hi + 1]).astype(np.int32)
        lc = lost_cpu[lost_cpu >= 0]
        if cpu_big or (len(lc) and int(lc.max()) >= _CPU_MARK):
            c = np.concatenate([self._gather(("cpu",))[0], lc])
            self.cpus = np.unique(c[c >= 0])
        else:
            cpu_mark[lc] = 1
            hi = max(cpu_hi, int(lc.max(initial=-1)))
            self.cpus = np.flatnonzero(cpu_mark[:hi + 1]).astype(np.int32)
        del pid_mark, cpu_mark
        self.ntasks = len(self.pids)
        self.ncpus = len(self.cpus)
        self._tids = _Ids(self.pids, IDLE)
        self._cids = _Ids(self.cpus)
        # time order: the file order, as long as the time never goes back; else (unsorted
        # files, and LOST markers, which take their CPU's last time, D6) sorted by (ts, line)
        # and walked again
        self._order = slot
        sel = None
        if self._full & IV and iv_select is not None:
            sel = np.asarray(iv_select(self), bool)
        sums = self._walk(self._full, sel) if in_order else None
        if sums is None:
            seq_seg, seq_idx = self._line_order_sorted(lost_line)
            o = np.argsort(stream.times(seq_seg, seq_idx, lost_cpu, self._cids, self.w0,
                                        self.ncpus), kind="stable")
            self._order = (seq_seg[o], seq_idx[o])
            sums = self._walk(self._full, sel)
        if self._full:
            self._r = sums      # a walk with tables adds up the same sums
            self._have = self._full if sel is None else self._full & ~IV
            self._iv_sel = sel
        self.sums = sums
        self.comm_id = sums["comm_id"]
        self.tgid = sums["tgid"]
        self._counts = dict(zip(_COUNTED, sums["counts"]))
        self._switches = sums["switches"]
        if unstamped.any():
            self._add_unstamped(unstamped)
        comms = np.asarray(list(trace.comms) + [""], dtype=object)
        self.comm = comms[np.where(self.comm_id >= 0, self.comm_id, len(trace.comms))]

    def _stored(self):
        """What restores this model without a walk (ftrace_fast.cache): figures and arrays."""
        st = {"w0": int(self.w0), "w1": int(self.w1), "have": int(self._have),
              "full": int(self._full), "pids": self.pids, "cpus": self.cpus,
              "switches": self._switches, "r_is_sums": self._r is self.sums}
        if self._iv_sel is not None:
            st["iv_sel"] = self._iv_sel.view(np.uint8)
        if isinstance(self._order, tuple):
            st["order_seg"], st["order_idx"] = self._order
        else:
            st["order_slot"] = self._order
        for k, v in self._counts.items():
            st["count." + k] = v
        for k, v in self.sums.items():
            st["sums." + k] = v
        if self._r is not None and self._r is not self.sums:
            for k, v in self._r.items():
                st["r." + k] = v
        return st

    @classmethod
    def _restore(cls, trace, st):
        """The model _stored() describes, for this trace (its event arrays are read again in
        place: the stream needs no walk to open)."""
        m = cls.__new__(cls)
        m.trace = trace
        m.unit = trace.time_unit
        m._rows, m._names, m._events = {}, None, {}
        m._open_stream(trace)
        m._lost_cpu = np.require(trace.lost["cpu"], np.int32, ["C", "A"])
        m.w0, m.w1 = int(st["w0"]), int(st["w1"])
        m.pids, m.cpus = st["pids"], st["cpus"]
        m.ntasks, m.ncpus = len(m.pids), len(m.cpus)
        m._tids, m._cids = _Ids(m.pids, IDLE), _Ids(m.cpus)
        m._order = (st["order_seg"], st["order_idx"]) if "order_seg" in st else st["order_slot"]
        # the cache's columns widen on first read (st.part): a table never read is not copied
        m.sums = st.part("sums.")
        m._full, m._have = int(st["full"]), int(st["have"])
        m._r = m.sums if st["r_is_sums"] else (st.part("r.") or None)
        m._iv_sel = st["iv_sel"].astype(bool) if "iv_sel" in st else None
        m.comm_id, m.tgid = m.sums["comm_id"], m.sums["tgid"]
        m._counts = {k: st["count." + k] for k in _COUNTED}
        m._switches = st["switches"]
        comms = np.asarray(list(trace.comms) + [""], dtype=object)
        m.comm = comms[np.where(m.comm_id >= 0, m.comm_id, len(trace.comms))]
        return m

    def _add_unstamped(self, unstamped):
        """Lines without a time stamp are no part of the stream, but their wakeups,
        migrations and switches count."""
        for (name, a), n in zip(self._segs, unstamped.tolist()):
            if not n or (name not in _COUNTED and name != "sched_switch"):
                continue
            a = a[a["ts"] < 0]
            if name == "sched_switch":
                c = self._cids(a["cpu"][a["cpu"] >= 0])
                self._switches = self._switches + np.bincount(c[c >= 0], minlength=self.ncpus)
            else:
                t = self._tids(a["task_pid"][a["task_pid"] > 0])
                self._counts[name] = self._counts[name] + np.bincount(t[t >= 0],
                                                                      minlength=self.ntasks)

    def _walk(self, full, iv_sel=None):
        return self._stream.analyze(self._order, self._lost_cpu, self._tids, self._cids,
                                    self.ntasks, self.ncpus, self.w0, self.w1, full,
                                    None if iv_sel is None else iv_sel.view(np.uint8))

    @property
    def r(self):
        """Every table: task intervals, CPU occupancy, switches and latency samples (a walk
        on first use)."""
        return self.tables(ALL)

    def tables(self, need, tasks=None):
        """The walk's output with at least the tables of ``need`` (IV, CO, SW bits), walking
        again for the missing ones only (a walk emits each table whatever else it emits, so
        the arrays handed out before stay valid).  ``tasks`` (a bool per task): IV needs the
        intervals of these tasks only, which a partial IV table (``_iv_sel``) may hold."""
        missing = need & ~self._have
        if missing & IV and tasks is not None and self.holds_intervals(tasks):
            missing &= ~IV
        if self._r is None or missing:
            r = self._walk(missing)
            if self._r is not None:
                # the old tables stay (handed out already), but a new IV replaces a partial one
                r.update({k: v for k, v in self._r.items()
                          if not (missing & IV and k.startswith("iv_"))})
            if missing & IV:
                self._iv_sel = None
                self._iv_by_task = None
            self._r, self._have = r, self._have | missing
        return self._r

    def holds_intervals(self, tasks):
        """Whether the IV table holds every interval of the selected tasks (a bool each)."""
        if self._have & IV:
            return True
        return self._iv_sel is not None and not (tasks & ~self._iv_sel).any()

    def drop_occupancy(self):
        """Let the CPU occupancy go (CO), to be walked again if asked for: the KVM figures
        that read it are made already."""
        if self._r is None:
            return
        for k in [k for k in self._r if k.startswith("co_")]:
            del self._r[k]
        self._have &= ~CO
        self._co_by_cpu = None
        self._cpu_intervals = None

    def co_by_cpu(self):
        """(perm, off): the CPU occupancy rows of CPU index c are perm[off[c]:off[c + 1]], in
        time order (a counting sort, kept on the model)."""
        if getattr(self, "_co_by_cpu", None) is None:
            cpu = np.ascontiguousarray(self.tables(CO)["co_cpu"], np.int32)
            self._co_by_cpu = _ftsched.by_key(cpu, self.ncpus)
        return self._co_by_cpu

    def _gather(self, fields):
        """The given stream fields ("pid", "a", "comm", ...; see _ftsched.FIELDS) of every
        time-stamped record, array by array, then field by field, as one row.  A tuple of
        fields is taken together (one row each), from the arrays that have all of them."""
        out = []
        for name, a in self._segs:
            cols = _columns(name)
            keep = a["ts"] >= 0
            for f in fields:
                fs = f if isinstance(f, tuple) else (f,)
                if all(cols[x] and cols[x] in a.dtype.fields for x in fs):
                    out.append(np.stack([a[cols[x]][keep] for x in fs]))
        if not out:
            return np.zeros((1, 0), np.int32)
        return np.concatenate(out, axis=1).astype(np.int32, copy=False)

    def _line_order_sorted(self, lost_line):
        """(seq_seg, seq_idx) of the time-stamped records and the LOST markers in line order,
        by a stable sort (lines shared by several entries: the first array first)."""
        lines, sid, idx = [], [], []
        for s, (_, a) in enumerate(self._segs):
            k = np.flatnonzero(a["ts"] >= 0)
            lines.append(a["line"][k])
            sid.append(np.full(len(k), s, np.int16))
            idx.append(k.astype(np.int32))
        lines.append(lost_line)
        sid.append(np.full(len(lost_line), len(self._segs), np.int16))
        idx.append(np.arange(len(lost_line), dtype=np.int32))
        order = np.argsort(np.concatenate(lines), kind="stable")
        return np.concatenate(sid)[order], np.concatenate(idx)[order]

    def task_events(self, name):
        """(task index, ts, cpu) of every line of the event naming a task (pid > 0)."""
        if name not in self._events:
            a = self.trace.events.get(name)
            if a is None or not len(a):
                self._events[name] = (np.zeros(0, np.int32), np.zeros(0, np.int64),
                                      np.zeros(0, np.int32))
            else:
                p = a["task_pid"]
                k = p > 0
                self._events[name] = (self._tids(p[k]), a["ts"][k], a["cpu"][k])
        return self._events[name]

    @property
    def name_pairs(self):
        """(pid, comm id) of every name each task had (exec renames a task), sorted by pid then
        comm id; computed on first use."""
        if getattr(self, "_name_pairs", None) is None:
            # one pass over the records keeps a pair only where a task's name changes
            hi = int(self.pids[-1]) if self.ntasks else 0
            pairs = np.sort(self._stream.name_pairs(hi if hi < _PID_MARK else _PID_MARK)
                            .astype(np.int64, copy=False))
            # distinct by a sort (a hash unique of a million keys is several times slower)
            pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
            self._name_pairs = (pairs >> 32, pairs & 0xffffffff)
        return self._name_pairs

    @property
    def names(self):
        """pid -> every comm the task had (exec renames a task), computed on first use."""
        if self._names is None:
            pid, cid = self.name_pairs
            self._names = {}
            comms = self.trace.comms
            for p, c in zip(pid.tolist(), cid.tolist()):
                self._names.setdefault(p, []).append(comms[c])
        return self._names

    def names_of(self, pids):
        """Every comm of each of ``pids`` (a list per pid; [] for a pid without a name),
        without building the whole pid -> names table."""
        pid, cid = self.name_pairs
        lo = np.searchsorted(pid, pids, "left").tolist()
        hi = np.searchsorted(pid, pids, "right").tolist()
        comms, cids = self.trace.comms, cid
        return [[comms[c] for c in cids[a:b].tolist()] for a, b in zip(lo, hi)]

    def task_index(self, pids):
        pids = np.asarray(pids)
        i = np.searchsorted(self.pids, pids)
        ok = (i < self.ntasks) & (self.pids[np.clip(i, 0, max(self.ntasks - 1, 0))] == pids)
        return np.where(ok, i, -1)


def model(trace, intervals=False, iv_select=None) -> SchedModel:
    """The scheduling model of a trace, computed once and cached on it.  ``intervals``: the
    tables the caller will read (True: all; or IV | CO | SW bits: task intervals for
    task_intervals, CPU occupancy for cpu_intervals and cpu_utilization, switches for
    restricted summaries), so that one walk does it all instead of a walk for the sums and
    another on first use.  ``iv_select``: see SchedModel (the tasks whose intervals the
    caller will read, when the model is built here)."""
    scope = _machines.scoped(trace)
    if scope is not trace:
        # several machines: one of them, never their mix (machines.M2)
        return model(scope, intervals, iv_select)

    def build():
        if "sched_switch" not in trace.events:
            raise ValueError(f"{trace.source}: no sched_switch events: the scheduling analysis "
                             "needs sched:sched_switch (and sched_wakeup/sched_waking for latency)")
        return SchedModel(trace, tables=ALL if intervals is True else int(intervals or 0),
                          iv_select=iv_select)
    # the cache entry stores the model itself (its tables as they are at exit)
    return trace.derived("sched.model", (), build)


def window(trace):
    """(start, end) of the window W (D1)."""
    m = model(trace)
    return m.w0, m.w1


def unit(trace):
    """'ns', or 'ticks' for integer clocks (D8)."""
    return trace.time_unit


def _cpu_filter(m, cpus):
    """Dense CPU indices of the given CPU numbers (None: no restriction)."""
    if cpus is None:
        return None
    want = np.asarray(list(cpus))
    return np.flatnonzero(np.isin(m.cpus, want))


def _percentiles(groups, values, n, ps=(50, 90, 99), argmax=True):
    """Nearest-rank percentiles, count, mean, max and (unless not ``argmax``) argmax of values
    grouped by task."""
    out = {"count": np.zeros(n, np.int64), "mean": np.full(n, np.nan), "max": np.full(n, -1, np.int64),
           "argmax": np.full(n, -1, np.int64)}
    for p in ps:
        out[p] = np.full(n, -1, np.int64)
    if not len(values):
        return out
    groups = np.asarray(groups)
    values = np.asarray(values, np.int64)
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    if n * span < 2**62:
        # one sort of (group, value) packed into an int64 is cheaper than a lexsort; the
        # largest sample's index is then the last one equal to its group's max
        # (in place: at 1 GB each int64 column of the exits is 10 MB more at the peak)
        key = groups.astype(np.int64)
        key *= span
        key += values
        key -= lo
        key.sort()
        g = key // span
        v = np.remainder(key, span, out=key)
        v += lo
        o = None
    else:
        o = np.lexsort((values, groups))
        g, v = groups[o], values[o]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.r_[starts, len(g)])
    keys = g[starts]
    out["count"][keys] = counts
    out["mean"][keys] = np.add.reduceat(v.astype(np.float64), starts) / counts
    out["max"][keys] = v[starts + counts - 1]
    if argmax and o is not None:
        out["argmax"][keys] = o[starts + counts - 1]
    elif argmax:
        hit = np.flatnonzero(values == out["max"][groups])
        np.maximum.at(out["argmax"], groups[hit], hit)
    for p in ps:
        rank = (p * counts + 99) // 100  # ceil(p/100 * n)
        out[p][keys] = v[starts + np.maximum(rank, 1) - 1]
    return out


def _at_argmax(pc, ts):
    """The time stamp of each group's largest sample (-1 for groups without samples)."""
    if not len(ts):
        return np.full(len(pc["argmax"]), -1, np.int64)
    return np.where(pc["argmax"] >= 0, ts[np.clip(pc["argmax"], 0, len(ts) - 1)], -1)


_STATE_ROWS = ((RUNNING, "run_ns"), (RUNNABLE, "wait_ns"), (SLEEP_S, "sleep_ns"),
               (SLEEP_D, "blocked_ns"), (SLEEP_OTHER, "other_sleep_ns"), (DEAD, "dead_ns"),
               (UNKNOWN, "unknown_ns"))
_OUT_ROWS = ((0, "preemptions"), (1, "switches_out_S"), (2, "switches_out_D"),
             (3, "switches_out_other"), (4, "switches_out_dead"))


def _task_rows(m, start=None, end=None, cpus=None):
    """Per-task sums over the model, as a dict of arrays indexed by task (cached on the model
    per restriction: callers must not modify them)."""
    ci = _cpu_filter(m, cpus)
    key = (start, end, None if ci is None else tuple(ci.tolist()))
    rows = m._rows.get(key)
    if rows is None:
        rows = m._rows[key] = _sums_rows(m) if key == (None, None, None) else \
            _restricted_rows(m, start, end, ci)
        _latency_rows(m, rows, start, end, ci)
    return rows


def _sums_rows(m):
    """The unrestricted rows, from the sums the walk added up."""
    sm = m.sums
    rows = {name: sm["task_ns"][:, s].copy() for s, name in _STATE_ROWS}
    rows["slices"] = sm["slices"]
    rows["max_slice_ns"] = sm["max_slice"]
    rows["switches_in"] = sm["switches_in"]
    rows["inferred_switch_ins"] = sm["inferred"]
    for cls, name in _OUT_ROWS:
        rows[name] = sm["switches_out"][:, cls].copy()
    for key, ev in (("wakeups", "sched_wakeup"), ("wakings", "sched_waking"),
                    ("migrations", "sched_migrate_task")):
        rows[key] = m._counts[ev]
    _mean_slice(rows)
    return rows


def _mean_slice(rows):
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["mean_slice_ns"] = np.where(rows["slices"] > 0, rows["run_ns"] / np.maximum(rows["slices"], 1), 0.0)


def _restricted_rows(m, start, end, ci):
    """The rows under start / end / cpus restrictions, from the intervals and switches."""
    r = m.r
    n = m.ntasks
    a, b, d = _clip(start, end, r["iv_start"], r["iv_end"])
    task, state = r["iv_task"], r["iv_state"]
    keep = np.ones(len(d), bool)
    if ci is not None:
        keep = np.isin(r["iv_cpu"], ci) & ((state == RUNNING) | (state == RUNNABLE))
    rows = {}
    by_state = _sum_by((task.astype(np.int64) * 8 + state)[keep], d[keep], n * 8).reshape(n, 8) \
        if n else np.zeros((0, 8), np.int64)
    for s, name in _STATE_ROWS:
        rows[name] = by_state[:, s].copy()
    # slices: running intervals that overlap the window
    kr = keep & (state == RUNNING)
    if start is not None or end is not None:
        kr &= (b > a) | ((r["iv_start"] == r["iv_end"]) & _in_window(r["iv_start"], start, end))
    rows["slices"] = np.bincount(task[kr], minlength=n).astype(np.int64)
    mx = np.full(n, 0, np.int64)
    if kr.any():
        np.maximum.at(mx, task[kr], d[kr])
    rows["max_slice_ns"] = mx
    _mean_slice(rows)
    # switch-ins and -outs
    k = _in_window(r["si_ts"], start, end)
    if ci is not None:
        k &= np.isin(r["si_cpu"], ci)
    rows["switches_in"] = np.bincount(r["si_task"][k], minlength=n).astype(np.int64)
    rows["inferred_switch_ins"] = np.bincount(r["si_task"][k & (r["si_inferred"] == 1)],
                                              minlength=n).astype(np.int64)
    k = _in_window(r["so_ts"], start, end)
    for cls, name in _OUT_ROWS:
        rows[name] = np.bincount(r["so_task"][k & (r["so_class"] == cls)], minlength=n).astype(np.int64)
    for key, ev in (("wakeups", "sched_wakeup"), ("wakings", "sched_waking"),
                    ("migrations", "sched_migrate_task")):
        ti, ts, cpu = m.task_events(ev)
        k = _in_window(ts, start, end)
        if ci is not None:
            k &= np.isin(np.searchsorted(m.cpus, cpu), ci) & np.isin(cpu, m.cpus)
        rows[key] = np.bincount(ti[k], minlength=n).astype(np.int64)
    return rows


def _latency_rows(m, rows, start, end, ci):
    """Wakeup latency (from sched_wakeup), on the CPU of the switch-in."""
    r = m.sums
    n = m.ntasks
    if start is None and end is None and ci is None:
        lat = r["wl_switch"] - r["wl_wakeup"]
        pc = _percentiles(r["wl_task"], lat, n)
        wk = r["wl_wakeup"]
    else:
        k = _in_window(r["wl_wakeup"], start, end)
        if ci is not None:
            k &= np.isin(r["wl_cpu"], ci)
        lat = r["wl_switch"][k] - r["wl_wakeup"][k]
        pc = _percentiles(r["wl_task"][k], lat, n)
        wk = r["wl_wakeup"][k]
    rows["lat_count"] = pc["count"]
    rows["lat_mean_ns"] = pc["mean"]
    rows["lat_p50_ns"] = pc[50]
    rows["lat_p90_ns"] = pc[90]
    rows["lat_p99_ns"] = pc[99]
    rows["lat_max_ns"] = pc["max"]
    rows["lat_max_ts"] = _at_argmax(pc, wk)


TASK_FIELDS = (
    ("pid", "i4"), ("tgid", "i4"), ("comm", "O"), ("run_ns", "i8"), ("wait_ns", "i8"),
    ("sleep_ns", "i8"), ("blocked_ns", "i8"), ("other_sleep_ns", "i8"), ("unknown_ns", "i8"),
    ("dead_ns", "i8"), ("switches_in", "i8"), ("inferred_switch_ins", "i8"),
    ("preemptions", "i8"), ("switches_out_S", "i8"), ("switches_out_D", "i8"),
    ("switches_out_other", "i8"), ("switches_out_dead", "i8"), ("wakeups", "i8"),
    ("wakings", "i8"), ("migrations", "i8"), ("slices", "i8"), ("max_slice_ns", "i8"),
    ("mean_slice_ns", "f8"), ("lat_count", "i8"), ("lat_mean_ns", "f8"), ("lat_p50_ns", "i8"),
    ("lat_p90_ns", "i8"), ("lat_p99_ns", "i8"), ("lat_max_ns", "i8"), ("lat_max_ts", "i8"),
)


class CommMatch:
    """A --comm regex evaluated once per distinct comm of a trace (:func:`comm_match`).

    ``ids``: one bool per comm id (``trace.comms``); ``empty``: whether it finds the empty
    name (a task the trace never names)."""

    def __init__(self, trace, rx):
        self.trace, self.rx = trace, rx
        self.ids = np.fromiter((rx.search(c) is not None for c in trace.comms), bool,
                               len(trace.comms))
        self.empty = rx.search("") is not None
        self._other = {}

    def of_ids(self, cid):
        """A bool per comm id of an array (-1 or unknown ids: the empty name)."""
        cid = np.asarray(cid)
        known = (cid >= 0) & (cid < len(self.ids))
        out = np.full(len(cid), self.empty, bool)
        out[known] = self.ids[cid[known]]
        return out

    def name(self, name):
        """Whether the regex finds ``name`` (a comm string)."""
        if not name:
            return self.empty
        i = self.trace.comm_id(name)
        if i >= 0:
            return bool(self.ids[i])
        if name not in self._other:
            self._other[name] = self.rx.search(name) is not None
        return self._other[name]


def comm_match(trace, comm):
    """The :class:`CommMatch` of ``comm`` (a regex string or compiled pattern) on ``trace``,
    computed once per trace and pattern and shared by every table, chart and finding."""
    rx = re.compile(comm) if isinstance(comm, str) else comm
    return trace.derived("sched.comm_match", (rx.pattern, int(rx.flags)),
                         lambda: CommMatch(trace, rx))


def _select(m, pids=None, comm=None):
    sel = np.ones(m.ntasks, bool)
    if pids is not None:
        sel &= np.isin(m.pids, np.asarray(list(pids), np.int64))
    if comm is not None:
        cm = comm_match(m.trace, comm)
        pid, cid = m.name_pairs
        # a task is selected when the regex finds any name it had; a task never named is
        # the empty name
        hit = np.zeros(m.ntasks, bool)
        named = np.zeros(m.ntasks, bool)
        ti = m.task_index(pid)
        ok = ti >= 0
        named[ti[ok]] = True
        hit[ti[ok & cm.of_ids(cid)]] = True
        if cm.empty:
            hit |= ~named
        sel &= hit
    return sel


@derived("sched.task_summary", "start", "end", "cpus", "pids", "comm", scope=_machines.scoped)
def task_summary(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """One row per task (pid != 0): times by state, switches, preemptions, wakeups,
    migrations, run slices and wakeup latency (D1-D10).  A structured array sorted by pid."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = model(trace)
    rows = _task_rows(m, start, end, cpus)
    sel = _select(m, pids, comm)
    out = np.zeros(int(sel.sum()), dtype=list(TASK_FIELDS))
    out["pid"] = m.pids[sel]
    out["tgid"] = m.tgid[sel]
    out["comm"] = m.comm[sel]
    for name, _ in TASK_FIELDS[3:]:
        out[name] = rows[name][sel]
    return out


def _task_rows_of(m, sel):
    """Indices of the interval rows of the selected tasks (a bool per task), in the order the
    analysis produced them: by one gather over every row for the first queries, then from a
    by-task permutation kept on the model, so that repeated queries for a few tasks cost
    what their rows cost, not a pass over every interval."""
    ti = np.flatnonzero(sel)
    if not len(ti):
        return np.zeros(0, np.int64)
    if getattr(m, "_iv_by_task", None) is None:
        task = m.tables(IV, sel)["iv_task"]
        if len(ti) * 64 >= m.ntasks or getattr(m, "_iv_queries", 0) < 2:
            # a first query or a large share of the tasks: one gather, no sort
            m._iv_queries = getattr(m, "_iv_queries", 0) + 1
            return np.flatnonzero(sel[task])
        perm = np.argsort(task, kind="stable").astype(np.int64)   # radix sort of int32
        m._iv_by_task = (perm, np.r_[0, np.cumsum(np.bincount(task, minlength=m.ntasks))])
    perm, off = m._iv_by_task
    n = off[ti + 1] - off[ti]
    idx = np.repeat(off[ti], n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    return np.sort(perm[idx])


def task_intervals(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """The state of every task through W: (pid, tgid, state, start_ns, end_ns, cpu), in the
    order the analysis produced them (by task, then time, is ``np.sort(order=...)`` away).
    ``cpu`` is the CPU a task runs or waits on, -1 while it sleeps."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = model(trace)
    c = interval_columns(m, start=start, end=end, cpus=cpus, pids=pids, comm=comm)
    t, cpu = c["task"], c["cpu"]
    out = np.zeros(len(t), dtype=[("pid", "i4"), ("tgid", "i4"), ("state", "i1"),
                                  ("start_ns", "i8"), ("end_ns", "i8"), ("cpu", "i4")])
    out["pid"] = m.pids[t]
    out["tgid"] = m.tgid[t]
    out["state"] = c["state"]
    out["start_ns"] = c["start"]
    out["end_ns"] = c["end"]
    out["cpu"] = np.where(cpu >= 0, m.cpus[np.clip(cpu, 0, max(m.ncpus - 1, 0))] if m.ncpus else -1, -1)
    return out


def interval_columns(m, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """task_intervals as columns of indices: {"task": index into m.pids, "state", "start",
    "end", "cpu": index into m.cpus or -1}, for the analyses that group by task and CPU."""
    sel = None if pids is None and comm is None else _select(m, pids, comm)
    r = m.tables(IV, sel)
    rows = None
    if sel is not None and (m._iv_sel is None or (m._iv_sel & ~sel).any()):
        # (a partial table of the selected tasks only is read whole, not copied)
        rows = _task_rows_of(m, sel)
    iv = {f: (r[f] if rows is None else r[f][rows])
          for f in ("iv_start", "iv_end", "iv_task", "iv_state", "iv_cpu")}
    a, b = iv["iv_start"], iv["iv_end"]
    if start is not None or end is not None:
        a, b, _ = _clip(start, end, a, b)
    k = None
    if start is not None or end is not None:
        k = (b > a) | ((iv["iv_start"] == iv["iv_end"]) & _in_window(iv["iv_start"], start, end))
    ci = _cpu_filter(m, cpus)
    if ci is not None:
        kc = np.isin(iv["iv_cpu"], ci)
        k = kc if k is None else k & kc
    if k is None:
        return {"task": iv["iv_task"], "state": iv["iv_state"], "start": a, "end": b,
                "cpu": iv["iv_cpu"]}
    return {"task": iv["iv_task"][k], "state": iv["iv_state"][k], "start": a[k], "end": b[k],
            "cpu": iv["iv_cpu"][k]}


def wakeup_latencies(trace, *, source="wakeup", start=None, end=None, cpus=None, pids=None,
                     comm=None):
    """Every wakeup-latency sample (D4): (pid, ts, latency_ns, switch_ts, cpu) with ts the
    sched_wakeup (source="wakeup") or the sched_waking before it (source="waking") and cpu
    the CPU it was switched in on (the one ``cpus`` selects)."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    if source not in ("wakeup", "waking"):
        raise ValueError("source must be 'wakeup' or 'waking'")
    m = model(trace)
    r = m.sums
    t0 = r["wl_wakeup"] if source == "wakeup" else r["wl_waking"]
    k = (t0 >= 0) & _in_window(t0, start, end)
    ci = _cpu_filter(m, cpus)
    if ci is not None:
        k &= np.isin(r["wl_cpu"], ci)
    if pids is not None or comm is not None:
        k &= _select(m, pids, comm)[r["wl_task"]]
    out = np.zeros(int(k.sum()), dtype=[("pid", "i4"), ("ts", "i8"), ("latency_ns", "i8"),
                                        ("switch_ts", "i8"), ("cpu", "i4")])
    out["cpu"] = m.cpus[r["wl_cpu"][k]] if m.ncpus else -1
    out["pid"] = m.pids[r["wl_task"][k]]
    out["ts"] = t0[k]
    out["switch_ts"] = r["wl_switch"][k]
    out["latency_ns"] = r["wl_switch"][k] - t0[k]
    return out


def latency_stats(values):
    """{count, mean_ns, p50_ns, p90_ns, p99_ns, max_ns} of latency samples (nearest rank)."""
    v = np.sort(np.asarray(values, np.int64))
    n = len(v)
    if n == 0:
        return {"count": 0, "mean_ns": None, "p50_ns": None, "p90_ns": None, "p99_ns": None,
                "max_ns": None}
    rank = lambda p: int(v[max((p * n + 99) // 100, 1) - 1])  # noqa: E731
    return {"count": n, "mean_ns": float(v.mean()), "p50_ns": rank(50), "p90_ns": rank(90),
            "p99_ns": rank(99), "max_ns": int(v[-1])}


def latency_table(trace, *, source="wakeup", sort="max", start=None, end=None, cpus=None,
                  pids=None, comm=None, summary=None):
    """Per task, like `perf sched latency`: runtime, switches, delays (count, mean, max and
    when the max happened), sorted by "max", "mean", "runtime", "switches" or "count".
    ``summary``: the task_summary of the same arguments when the caller has it (it costs a
    pass over every task)."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    if summary is None:
        summary = task_summary(trace, start=start, end=end, cpus=cpus, pids=pids, comm=comm)
    s = summary.copy() if source == "waking" else summary      # the summary is shared
    if source == "waking":
        lat = wakeup_latencies(trace, source="waking", start=start, end=end, cpus=cpus,
                               pids=pids, comm=comm)
        ti = np.searchsorted(s["pid"], lat["pid"])
        pc = _percentiles(ti, lat["latency_ns"], len(s))
        s["lat_count"] = pc["count"]
        s["lat_mean_ns"] = pc["mean"]
        s["lat_max_ns"] = pc["max"]
        s["lat_p50_ns"], s["lat_p90_ns"], s["lat_p99_ns"] = pc[50], pc[90], pc[99]
        s["lat_max_ts"] = _at_argmax(pc, lat["ts"])
    return s[latency_order(s, sort)]


#: latency_table's sort keys -> the task_summary column
LATENCY_SORT = {"max": "lat_max_ns", "mean": "lat_mean_ns", "runtime": "run_ns",
                "switches": "switches_in", "count": "lat_count"}


def latency_order(summary, sort="max"):
    """The row order of latency_table over a task summary: the ``sort`` column descending
    (no samples last), then pid (a caller that reads a few columns of many tasks orders them
    without copying every column)."""
    if sort not in LATENCY_SORT:
        raise ValueError(f"sort must be one of {sorted(LATENCY_SORT)}")
    col = summary[LATENCY_SORT[sort]].astype(np.float64)
    return np.lexsort((summary["pid"], -np.nan_to_num(col, nan=-1.0)))


def _group_sums(trace, summary, key, start=None, end=None, cpus=None, **_):
    """Sum a task summary by a key array; latency pooled from the samples of its tasks, under
    the same restrictions as the summary."""
    uk, inv = np.unique(key, return_inverse=True)
    out = {"key": uk}
    for name in ("run_ns", "wait_ns", "sleep_ns", "blocked_ns", "other_sleep_ns", "unknown_ns",
                 "switches_in", "inferred_switch_ins", "preemptions", "wakeups", "migrations"):
        out[name] = _sum_by(inv, summary[name], len(uk))
    out["tasks"] = np.bincount(inv, minlength=len(uk))
    lat = wakeup_latencies(trace, start=start, end=end, cpus=cpus, pids=summary["pid"])
    li = inv[np.searchsorted(summary["pid"], lat["pid"])] if len(lat) else np.zeros(0, np.int64)
    pc = _percentiles(li, lat["latency_ns"], len(uk))
    out["lat_count"], out["lat_mean_ns"], out["lat_max_ns"] = pc["count"], pc["mean"], pc["max"]
    out["lat_p50_ns"], out["lat_p90_ns"], out["lat_p99_ns"] = pc[50], pc[90], pc[99]
    return out


def process_summary(trace, **kw):
    """task_summary summed per process (tgid; tasks without a tgid column count as their own
    process)."""
    s = task_summary(trace, **kw)
    key = np.where(s["tgid"] >= 0, s["tgid"], s["pid"])
    return _group_sums(trace, s, key, **kw)


def group_summary(trace, pattern, **kw):
    """task_summary summed over the tasks whose comm matches a regex (e.g. r"CPU \\d+/KVM")."""
    s = task_summary(trace, comm=pattern, **kw)
    return _group_sums(trace, s, np.zeros(len(s), np.int64), **kw)


#: the prev_state bits of any letter but R (the low 16 bits hold events.STATE_BITS), as the
#: scheduling kernel reads them
_STATE_LETTERS = 0xffff | STATE_UNKNOWN_LETTER
SWITCH_FIELDS = (("comm_id", "i4"), ("comm", "O"), ("pid", "i4"), ("switches_in", "i8"),
                 ("voluntary", "i8"), ("involuntary", "i8"), ("switches_out_D", "i8"))
LINE_COUNT_FIELDS = (("comm_id", "i4"), ("comm", "O"), ("pid", "i4"), ("count", "i8"))


def _line_rows(a, start, end, cpus):
    """Lines of an event array kept by D11's time and CPU restrictions."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    return _group.line_mask(a["ts"], a["cpu"], start, end, cpus)


def _line_tasks(trace, pids, comm):
    """A function (pid column, comm id column) -> the lines D11's pids / comm keep."""
    ok = None if comm is None else comm_match(trace, comm).ids
    return lambda pid, cid: _group.task_mask(pid, cid, pids, ok)


def _counts_table(trace, cid, pid, n, fields=LINE_COUNT_FIELDS):
    """A table of ``fields`` with the (comm id, comm, pid) columns and the first count ``n``."""
    out = np.zeros(len(n), dtype=list(fields))
    out["comm_id"], out["comm"], out["pid"], out[fields[3][0]] = cid, trace.comm_names(cid), pid, n
    return out


def _task_line_counts(trace, name, start, end, cpus, pids, comm):
    a = trace.events.get(name)
    if a is None or not len(a):
        return _counts_table(trace, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    k = _line_rows(a, start, end, cpus) & _line_tasks(trace, pids, comm)(
        a["task_pid"], a["task_comm"])
    idx, cid, pid = _group.pair_index(a["task_comm"][k], a["task_pid"][k])
    return _counts_table(trace, cid, pid, np.bincount(idx, minlength=len(cid)))


@derived("sched.wakeup_counts", "source", "start", "end", "cpus", "pids", "comm", scope=_machines.scoped)
def wakeup_counts(trace, *, source="wakeup", start=None, end=None, cpus=None, pids=None,
                  comm=None):
    """sched_wakeup (``source="waking"``: sched_waking) lines per woken task as printed
    (D11): a structured array of (comm_id, comm, pid, count), sorted by comm id then pid."""
    if source not in ("wakeup", "waking"):
        raise ValueError("source must be 'wakeup' or 'waking'")
    return _task_line_counts(trace, "sched_" + source, start, end, cpus, pids, comm)


@derived("sched.migration_counts", "start", "end", "cpus", "pids", "comm", scope=_machines.scoped)
def migration_counts(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """sched_migrate_task lines per migrated task as printed (D11): a structured array of
    (comm_id, comm, pid, count), sorted by comm id then pid."""
    return _task_line_counts(trace, "sched_migrate_task", start, end, cpus, pids, comm)


@derived("sched.switch_counts", "start", "end", "cpus", "pids", "comm", scope=_machines.scoped)
def switch_counts(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """sched_switch lines per task as printed (D11): a structured array of (comm_id, comm,
    pid, switches_in, voluntary, involuntary, switches_out_D), one row per (comm, pid) with a
    switch in or out, sorted by comm id then pid."""
    a = trace.events.get("sched_switch")
    if a is None or not len(a):
        return _counts_table(trace, np.zeros(0, np.int32), np.zeros(0, np.int32),
                             np.zeros(0), SWITCH_FIELDS)
    lines = _line_rows(a, start, end, cpus)
    task = _line_tasks(trace, pids, comm)
    prev = lines & task(a["prev_pid"], a["prev_comm"])
    nxt_kept = lines & task(a["next_pid"], a["next_comm"])
    got = _switch_cells(a, prev, nxt_kept)
    cols, rows_of = got if got is not None else _switch_pairs(a, prev, nxt_kept)
    shown = np.flatnonzero(cols["switches_in"] + cols["voluntary"] + cols["involuntary"])
    out = _counts_table(trace, *rows_of(shown), cols["switches_in"][shown], SWITCH_FIELDS)
    for f in ("voluntary", "involuntary", "switches_out_D"):
        out[f] = cols[f][shown]
    return out


def _kept(k, x):
    # without a restriction every line counts: no mask to apply
    return x if k.all() else x[k]


def _switch_cells(a, prev, nxt_kept):
    """switch_counts' (columns, cell -> (comm ids, pids)), counted in one pass of _ftsched
    into a (comm id, pid rank) table when it is small: no index of the pairs, no copy of the
    columns.  None when the ids do not allow it (negative, or too many cells for the lines)."""
    def keep(k):
        return np.zeros(0, np.uint8) if k.all() else k.view(np.uint8)
    got = _ftsched.switch_cells(a["next_comm"], a["next_pid"], a["prev_comm"], a["prev_pid"],
                                a["prev_state"], keep(nxt_kept), keep(prev), _STATE_LETTERS,
                                STATE_BITS["D"], _PID_MARK, 4 * len(a) + 65536)
    if got is None:
        return None
    ub, width, sw_in, vol, inv, sw_d = got
    cols = {"switches_in": sw_in, "voluntary": vol, "involuntary": inv, "switches_out_D": sw_d}
    return cols, lambda cell: (cell // width, ub[cell % width])


def _switch_pairs(a, prev, nxt_kept):
    """switch_counts' (columns, row -> (comm ids, pids)) through an index of every (comm id,
    pid) pair, for any ids."""
    n = len(a)
    st = a["prev_state"]
    # any letter but R: R and R+ carry no letter bit, a numeric 0 neither
    voluntary = (st & _STATE_LETTERS) != 0
    out_d = prev & ((st & STATE_BITS["D"]) != 0)
    # one index over next and prev together: a task has one row whichever side names it
    idx, pair_comm, pair_pid = _group.pair_index(np.concatenate([a["next_comm"], a["prev_comm"]]),
                                                 np.concatenate([a["next_pid"], a["prev_pid"]]))
    npairs = len(pair_comm)
    nxt, prv = idx[:n], idx[n:]
    out = np.bincount(_kept(prev, prv * 2 + voluntary), minlength=2 * npairs).reshape(npairs, 2)
    cols = {"switches_in": np.bincount(_kept(nxt_kept, nxt), minlength=npairs),
            "voluntary": out[:, 1],
            "involuntary": out[:, 0],
            "switches_out_D": np.bincount(prv[out_d], minlength=npairs)}
    return cols, lambda i: (pair_comm[i], pair_pid[i])


def tgid_pids(trace, tgids):
    """The threads of the processes ``tgids`` (D12): a sorted list of pids.  ValueError when
    no line has a record-tgid column."""
    want = np.asarray(list(tgids), np.int64)
    found = [want]
    seen_tgid = False
    for a in trace.events.values():
        if not len(a):
            continue
        has = a["tgid"] >= 0
        if not has.any():
            continue
        seen_tgid = True
        found.append(a["pid"][has & np.isin(a["tgid"], want)].astype(np.int64))
    if not seen_tgid:
        raise ValueError(f"{trace.source}: the trace has no record-tgid column")
    u = np.unique(np.concatenate(found))
    return u[u >= 0].tolist()


def _pair_time(entries, exits):
    """Per CPU, the time between each entry and the exit that follows it (irq / softirq)."""
    if entries is None or exits is None or not len(entries) or not len(exits):
        return {}
    ts = np.concatenate([entries["ts"], exits["ts"]])
    cpu = np.concatenate([entries["cpu"], exits["cpu"]])
    line = np.concatenate([entries["line"], exits["line"]])
    is_entry = np.r_[np.ones(len(entries), bool), np.zeros(len(exits), bool)]
    o = np.lexsort((line, ts, cpu))
    ts, cpu, is_entry = ts[o], cpu[o], is_entry[o]
    pair = (~is_entry[1:]) & is_entry[:-1] & (cpu[1:] == cpu[:-1])
    d = (ts[1:] - ts[:-1])[pair]
    c = cpu[1:][pair]
    u, inv = np.unique(c, return_inverse=True)
    sums = np.zeros(len(u), np.int64)
    np.add.at(sums, inv, d)
    return dict(zip(u.tolist(), sums.tolist()))


CPU_FIELDS = (("cpu", "i4"), ("busy_ns", "i8"), ("idle_ns", "i8"), ("unknown_ns", "i8"),
              ("utilization_pct", "f8"), ("switches", "i8"), ("irq_ns", "i8"),
              ("softirq_ns", "i8"))


@derived("sched.cpu_summary", "start", "end", "cpus", scope=_machines.scoped)
def cpu_summary(trace, *, start=None, end=None, cpus=None):
    """Per CPU: busy, idle and unknown time (D5, D6), utilization % (busy / (busy + idle +
    unknown)), sched_switch count, and time in hard and soft irq handlers when those events are
    present (-1 otherwise)."""
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = model(trace)
    if start is None and end is None:
        busy, idle, unk = (m.sums["cpu_ns"][:, i].copy() for i in range(3))
        swc = m._switches
    else:
        r = m.tables(CO)
        a, b, d = _clip(start, end, r["co_start"], r["co_end"])
        occ, cpu = r["co_occ"], r["co_cpu"]
        busy = _sum_by(cpu[occ >= 0], d[occ >= 0], m.ncpus)
        idle = _sum_by(cpu[occ == IDLE], d[occ == IDLE], m.ncpus)
        unk = _sum_by(cpu[occ == -1], d[occ == -1], m.ncpus)
        sw = m.trace.events["sched_switch"]
        k = _in_window(sw["ts"], start, end)
        swc = np.bincount(np.searchsorted(m.cpus, sw["cpu"][k & (sw["cpu"] >= 0)]), minlength=m.ncpus)
    ev = m.trace.events
    tw = lambda x: None if x is None else x[_in_window(x["ts"], start, end)]  # noqa: E731
    irq = _pair_time(tw(ev.get("irq_handler_entry")), tw(ev.get("irq_handler_exit")))
    sirq = _pair_time(tw(ev.get("softirq_entry")), tw(ev.get("softirq_exit")))
    out = np.zeros(m.ncpus, dtype=list(CPU_FIELDS))
    out["cpu"] = m.cpus
    out["busy_ns"], out["idle_ns"], out["unknown_ns"] = busy, idle, unk
    tot = busy + idle + unk
    out["utilization_pct"] = np.where(tot > 0, 100.0 * busy / np.maximum(tot, 1), 0.0)
    out["switches"] = swc[:m.ncpus]
    has_irq = "irq_handler_entry" in ev and "irq_handler_exit" in ev
    has_sirq = "softirq_entry" in ev and "softirq_exit" in ev
    out["irq_ns"] = [irq.get(c, 0) if has_irq else -1 for c in m.cpus.tolist()]
    out["softirq_ns"] = [sirq.get(c, 0) if has_sirq else -1 for c in m.cpus.tolist()]
    if cpus is not None:
        out = out[np.isin(out["cpu"], np.asarray(list(cpus)))]
    return out


#: the most cells (bins x rows) a binned series may have: 400 MB of int64
MAX_BIN_CELLS = 50_000_000


def bin_count(span, bin_ns, rows=1, limit=MAX_BIN_CELLS):
    """How many bins of ``bin_ns`` cover ``span``; a ValueError (not an allocation of many GB)
    when that times ``rows`` exceeds ``limit``."""
    bin_ns = int(bin_ns)
    if bin_ns <= 0:
        raise ValueError("bin width must be positive")
    nb = max(1, -(-int(span) // bin_ns))
    if nb * max(int(rows), 1) > limit:
        raise ValueError(f"a bin width of {bin_ns} gives {nb:,} bins over {int(span)}: choose a "
                         "wider bin")
    return nb


def cpu_utilization(trace, bin_ns, *, start=None, end=None):
    """Busy time per CPU per time bin, exact (time-weighted from the intervals, not sampled).

    Returns (edges, busy): edges int64 (nbins + 1), bins [edges[i], edges[i+1]) from the window
    start (or ``start``); busy[cpu_index, bin] in ns (ticks), cpu_index following
    cpu_summary's rows.  The last bin may be shorter.
    """
    start, end = _time_arg(start, "start"), _time_arg(end, "end")
    m = model(trace)
    bin_ns = int(bin_ns)
    if bin_ns <= 0:
        raise ValueError("bin width must be positive")
    lo = m.w0 if start is None else max(int(start), m.w0)
    hi = m.w1 if end is None else min(int(end), m.w1)
    if hi < lo:
        hi = lo
    nb = bin_count(hi - lo, bin_ns, rows=m.ncpus)
    edges = lo + bin_ns * np.arange(nb + 1, dtype=np.int64)
    edges[-1] = min(edges[-1], hi) if hi > lo else lo + bin_ns
    r = m.tables(CO)
    busy = np.zeros((m.ncpus, nb), np.int64)
    perm, off = m.co_by_cpu()
    for c in range(m.ncpus):
        rows = perm[off[c]:off[c + 1]]
        rows = rows[r["co_occ"][rows] >= 0]
        # each CPU's rows are in time order (the walk writes them so)
        s, e = r["co_start"][rows], r["co_end"][rows]
        # cumulative busy time at each edge: full intervals before it plus the open one
        cum = np.r_[0, np.cumsum(e - s)]
        def busy_until(t):
            j = np.searchsorted(e, t, side="right")          # intervals ended by t
            full = cum[j]
            part = np.where(j < len(s), np.clip(t - s[np.minimum(j, max(len(s) - 1, 0))], 0, None)
                            if len(s) else 0, 0)
            return full + part
        bt = busy_until(edges)
        busy[c] = np.diff(bt)
    return edges, busy


def cpu_intervals(trace):
    """Who was current on each CPU through W (D5, D6): (cpu, pid, start_ns, end_ns) with pid 0
    for the idle task and -1 for unknown time, sorted by CPU then time."""
    m = model(trace)
    if getattr(m, "_cpu_intervals", None) is not None:
        return m._cpu_intervals
    r = m.tables(CO)
    occ = r["co_occ"]
    out = np.zeros(len(occ), dtype=[("cpu", "i4"), ("pid", "i4"), ("start_ns", "i8"),
                                    ("end_ns", "i8")])
    out["cpu"] = m.cpus[r["co_cpu"]] if m.ncpus else -1
    known = occ >= 0
    out["pid"] = np.where(known, m.pids[np.clip(occ, 0, max(m.ntasks - 1, 0))] if m.ntasks else -1,
                          np.where(occ == IDLE, 0, -1))
    out["start_ns"] = r["co_start"]
    out["end_ns"] = r["co_end"]
    # the kernel writes each CPU's intervals in time order: grouped by CPU, stably
    m._cpu_intervals = out[m.co_by_cpu()[0]]
    return m._cpu_intervals


def caveats(trace):
    """What a reader of the figures must know, as sentences: lost events (D6), inferred
    switch-ins (D7), tick units (D8)."""
    m = model(trace)
    out = []
    if m.trace is not trace:
        out.append(_machines.scope_note(trace, m.trace))
    trace = m.trace
    if len(trace.lost):
        per_cpu = {}
        for r in trace.lost:
            per_cpu[int(r["cpu"])] = per_cpu.get(int(r["cpu"]), 0) + int(r["count"])
        unk = int(m.sums["cpu_ns"][:, 2].sum())
        out.append(f"{sum(per_cpu.values())} events were lost ("
                   + ", ".join(f"CPU {c}: {n}" for c, n in sorted(per_cpu.items()))
                   + f"); {unk} {m.unit} of CPU time around the gaps are counted as unknown, "
                   "never as run or wait, so per-task times are lower bounds")
    n_inf = int(m.sums["inferred"].sum())
    if n_inf:
        out.append(f"{n_inf} switch-ins were not in the trace (a switch out of the idle task "
                   "missing) and were inferred at the task's wakeup; they are counted")
    if m.unit != "ns":
        out.append(f"the trace clock is '{trace.clock}': every time is in ticks, not ns")
    return out
