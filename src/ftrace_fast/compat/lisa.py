"""LISA's ``Trace`` API on ftrace_fast: change ``from lisa.trace import Trace`` into
``from ftrace_fast.compat.lisa import Trace``.

``Trace(path, events=..., normalize_time=False)``: ``df_event(name)`` (index ``Time`` in seconds,
``__comm``, ``__pid``, ``__cpu``, then the fields by the kernel's names, in LISA's dtypes: comms
as categories, pids uint32, prio int16, prev_state uint16, other integers int64), ``start``, ``end``,
``time_range``, ``window``, ``cpus_count``, ``get_task_ids()``, ``get_task_id()``,
``get_task_pid_names()``, and ``trace.ana.tasks`` / ``trace.ana.latency`` / ``trace.ana.cpus``
with the most used analyses.

The analyses are ftrace_fast's (``ftrace_fast.sched``, definitions D1-D10 in its docstring),
exact to the nanosecond, laid out as LISA lays them out.  Where the definitions differ from
LISA's:

- ``df_tasks_states``: one row per state interval of every task over the whole trace window;
  ``curr_state`` / ``next_state`` are LISA's TaskState values: 0x2000 (A, running), 0 (R,
  runnable), 1 (S), 2 (D), 0x10 (X, dead), -1 (U, unknown: before a task's first line when
  that line does not tell, or across lost events) and 0x1000 for any other sleep letter (I, T,
  t, P, ...: the letter is in ``df_event("sched_switch")``); ``stringify=True`` adds the
  letters (``O`` for the other sleeps).  ``cpu`` is the CPU a task runs or waits on,
  ``target_cpu`` the CPU a runnable task waits on.  LISA starts each task at its first
  event and reads every prev_state of a text trace through its raw value; here a task's state
  before its first line is inferred (D3), a wakeup of a running task changes nothing, and a
  missing switch-out of the idle task is inferred (D7).  ``delta`` is the interval's length
  (the last interval ends at the trace end, not NaN).
- ``df_tasks_runtime``: run time within the trace window, per pid (LISA sums per (pid, comm)).
- ``df_latency_wakeup``: from a sched_wakeup of a sleeping task to its next switch-in; samples
  whose switch-in is not in the trace are dropped (D4).  LISA also measures from wakeups of
  tasks already runnable.
- ``df_latency_wakeup``'s ``cpu`` and ``target_cpu`` are both the CPU the task was switched in
  on.
- ``df_latency_preemption``: from a switch-out with prev_state R / R+ to the next switch-in.
- ``prev_state`` in ``df_event("sched_switch")`` is the kernel's report bits as an int (S=1,
  D=2, T=4, t=8, X=16, Z=32, P=64, I=128, R=0; a preempted R+ adds 0x100); LISA's text path reads
  the letters through a table that is off for kernels >= 4.14.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import WORD_VALUES, _kv, require_pandas

pd = require_pandas("ftrace_fast.compat.lisa")

from .. import events as _ev  # noqa: E402
from .. import sched as _sched  # noqa: E402
from ..trace import load as _load  # noqa: E402

TaskID = namedtuple("TaskID", ["pid", "comm"])


#: LISA's dtypes of the fields it declares (the rest are int64, comms are categories)
LISA_DTYPES = {"sched_switch": {"prev_pid": "uint32", "next_pid": "uint32", "prev_prio": "int16",
                                "next_prio": "int16", "prev_state": "uint16"}}


class MissingTraceEventError(KeyError):
    """An event the trace does not hold (LISA raises its own MissingTraceEventError)."""

#: ftrace_fast.sched state codes (RUNNING, RUNNABLE, SLEEP_S, SLEEP_D, SLEEP_OTHER, DEAD,
#: UNKNOWN) -> LISA's TaskState values and letters; "another sleep" (I, T, t, P, ... whose
#: letter the interval table does not keep) is TASK_STATE_MAX
STATE_VALUES = np.array([0x2000, 0x0, 0x1, 0x2, 0x1000, 0x10, -1], dtype=np.int64)
STATE_CHARS = np.array(["A", "R", "S", "D", "O", "X", "U"], dtype=object)


def _code_dtype(n):
    """The smallest signed integer type of the codes of n categories (pandas' own choice)."""
    return np.int8 if n < 127 else np.int16 if n < 32767 else np.int32


#: the preempted bit of the parser's state moved to 0x100 by one right shift
_PREEMPT_SHIFT = _ev.STATE_PREEMPTED.bit_length() - 9
assert _ev.STATE_PREEMPTED == 0x100 << _PREEMPT_SHIFT


def _state_ints(col):
    """prev_state's report bits (low byte), 0x100 added for a preempted R+; int64."""
    bits = col.astype(np.int64)
    preempted = bits & _ev.STATE_PREEMPTED
    preempted >>= _PREEMPT_SHIFT
    bits &= 0xFF
    bits |= preempted
    return bits


class Trace:
    """One ftrace text log read by ftrace_fast, with LISA's accessors."""

    def __init__(self, trace_path, events=None, normalize_time=False, **_ignored):
        if isinstance(events, str):
            events = [events]
        self.trace_path = trace_path
        # as in LISA, events= names what the script will use: only those (and the events the
        # scheduling analyses read) are parsed into records
        wanted = sorted(set(events) | set(_sched.USED_EVENTS)) if events else None
        self._trace = _load(trace_path, events=wanted, warn=False)
        self.available_events = set(self._trace.events)
        self.normalize_time = normalize_time
        span = self._trace.span
        lo, hi = span if span else (0, 0)
        self._t0 = lo if normalize_time else 0
        self.start = (lo - self._t0) / 1e9
        self.end = (hi - self._t0) / 1e9
        self.ana = _Analyses(self)

    # -- accessors ------------------------------------------------------------------------------
    @property
    def time_range(self):
        return self.end - self.start

    @property
    def window(self):
        return (self.start, self.end)

    @property
    def cpus_count(self):
        cpus = self._trace.cpus()
        return (max(cpus) + 1) if cpus else 0

    def _seconds(self, ts):
        if not self._t0:
            return ts / 1e9
        return (np.asarray(ts, np.int64) - self._t0) / 1e9

    def df_event(self, event):
        """The rows of one event: index Time (s), __cpu, __pid, __comm, then its fields."""
        t = self._trace
        a = t.events.get(event)
        if a is None:
            raise MissingTraceEventError(f"{self.trace_path}: no {event!r} events were read "
                                         f"(available: {', '.join(sorted(self.available_events))})")
        layout = t.layout(event)
        cols = {"__comm": self._comm_column(a["comm"]), "__pid": a["pid"].astype(np.uint32),
                "__cpu": a["cpu"].astype(np.uint32)}
        dtypes = LISA_DTYPES.get(event, {})
        if layout == "generic":
            # key=value words split with NumPy; a key missing from a line is NaN / None
            buf, starts = _kv.gather(t.text_arena, a["payload_off"], a["payload_len"])
            names, kv, _bare = _kv.split(buf, starts, starts)
            cols.update({k: _kv.column_values(kv[k], len(a)) for k in names if k not in cols})
        else:
            kinds = _ev.field_kinds(layout)
            kernel = _ev.kernel_names(layout)
            for field, kind in kinds.items():
                name = kernel.get(field, field)
                if layout == "text":
                    name = "buf"  # LISA's name for the text of a marker / printk line
                if (kind in ("i1", "i4", "i8", "comm", "sym") and len(a) and a[field][0] == -1
                        and (a[field] == -1).all()):
                    continue  # a field the kernel did not print (sched_wakeup's success)
                if kind == "comm":
                    cols[name] = self._comm_column(a[field])
                elif kind == "sym":
                    cols[name] = t.symbol_names(a[field])
                elif kind == "state":
                    cols[name] = _state_ints(a[field])
                elif kind == "text":
                    cols[name] = np.array(t.text(event, field), dtype=object)
                elif (layout, field) in WORD_VALUES and ((a[field] == 0) | (a[field] == 1)).all():
                    cols[name] = np.array(WORD_VALUES[layout, field], dtype=object)[a[field]]
                elif kind != "u8":
                    # one cast, straight to LISA's dtype where it has one
                    cols[name] = a[field].astype(dtypes.get(name, np.int64))
                else:
                    cols[name] = a[field]
                if name in dtypes:
                    cols[name] = cols[name].astype(dtypes[name], copy=False)
        df = pd.DataFrame({k: (v if isinstance(v, pd.Categorical) else
                               pd.Series(v, dtype=object if v.dtype == object else v.dtype,
                                         copy=False))
                           for k, v in cols.items()}, copy=False)
        df.index = pd.Index(self._seconds(a["ts"]), name="Time", copy=False)
        return df

    def _comm_column(self, ids):
        """A comm id column as LISA's category column (no str object per row)."""
        comms = self._trace.comms
        n = len(comms)
        ids = _kv.index_array(ids)
        # the comms this column uses, sorted as astype("category") sorts them; a scatter and a
        # lookup table instead of a sort of the rows (-1, no comm, reads the last entry)
        mark = np.zeros(n + 1, bool)
        mark[ids] = True
        names = sorted((comms[i], i) for i in np.flatnonzero(mark[:n]).tolist())
        code_of = np.full(n + 1, -1, _code_dtype(len(names)))
        code_of[[i for _, i in names]] = np.arange(len(names))
        return pd.Categorical.from_codes(code_of[ids],
                                         categories=pd.Index([c for c, _ in names], dtype=object),
                                         validate=False)

    def get_task_ids(self):
        """Every (pid, comm) a task had, pid order."""
        names = _sched.model(self._trace).names
        return [TaskID(pid, comm) for pid in sorted(names) for comm in names[pid]]

    def get_task_pid_names(self, pid):
        return list(_sched.model(self._trace).names.get(int(pid), []))

    def get_task_id(self, task):
        """TaskID of a pid, a comm or a TaskID (a comm held by several tasks is an error)."""
        ids = self.get_task_ids()
        if isinstance(task, TaskID):
            return task
        if isinstance(task, (int, np.integer)):
            got = [i for i in ids if i.pid == task]
        else:
            got = [i for i in ids if i.comm == task]
        if not got:
            raise ValueError(f"no task {task!r} in {self.trace_path}")
        if len({i.pid for i in got}) > 1:
            raise ValueError(f"{task!r} names several tasks: {sorted({i.pid for i in got})}")
        return got[-1]

    def _pid(self, task):
        return self.get_task_id(task).pid


class _Analyses:
    def __init__(self, trace):
        self.tasks = TasksAnalysis(trace)
        self.latency = LatencyAnalysis(trace)
        self.cpus = CpusAnalysis(trace)


class TasksAnalysis:
    def __init__(self, trace):
        self._t = trace

    def df_tasks_states(self, stringify=False):
        """Every task's state intervals: index Time (start, s), cpu (the CPU it runs or waits
        on, -1 asleep), target_cpu (the CPU a runnable task waits on, else -1), pid, comm,
        curr_state, next_state (LISA's TaskState values), delta (s)."""
        tr = self._t
        iv = _sched.task_intervals(tr._trace)
        order = np.lexsort((iv["start_ns"], iv["pid"]))
        iv = iv[order]
        same_next = np.zeros(len(iv), bool)
        same_next[:-1] = iv["pid"][1:] == iv["pid"][:-1]
        code = iv["state"].astype(np.int64)
        nxt_code = np.full(len(iv), -1, np.int64)
        nxt_code[:-1] = code[1:]
        has_next = same_next
        names = _sched.model(tr._trace).names
        pids_u, inv = np.unique(iv["pid"], return_inverse=True)
        comm = np.array([(names.get(int(p)) or [""])[-1] for p in pids_u.tolist()],
                        dtype=object)[inv.ravel()]
        cpu = iv["cpu"].astype(np.int64)
        cols = {"cpu": cpu,
                "target_cpu": np.where(code == _sched.RUNNABLE, cpu, -1),
                "pid": iv["pid"].astype(np.int64),
                "comm": pd.Series(comm, dtype=object),
                "curr_state": STATE_VALUES[code],
                "next_state": pd.array(np.where(has_next, STATE_VALUES[nxt_code], 0),
                                       dtype="Int64"),
                "delta": (iv["end_ns"] - iv["start_ns"]) / 1e9}
        cols["next_state"][~has_next] = pd.NA
        if stringify:
            cols["curr_state_str"] = pd.Series(STATE_CHARS[code], dtype=object)
            cols["next_state_str"] = pd.Series(np.where(has_next, STATE_CHARS[nxt_code], None),
                                               dtype=object)
        df = pd.DataFrame({k: (v.to_numpy() if isinstance(v, pd.Series) else v)
                           for k, v in cols.items()})
        df.index = pd.Index(tr._seconds(iv["start_ns"]), name="Time")
        return df.sort_index(kind="stable")

    def df_task_states(self, task, stringify=False):
        pid = self._t._pid(task)
        df = self.df_tasks_states(stringify=stringify)
        return df[df["pid"] == pid].drop(columns=["pid", "comm"])

    def df_tasks_runtime(self):
        """Run time (s) of every task: index pid, columns comm, runtime."""
        tr = self._t
        # the walk's per-task sums: no interval table needed
        rows = _sched.task_summary(tr._trace)
        names = _sched.model(tr._trace).names
        comm = [(names.get(int(p)) or [""])[-1] for p in rows["pid"].tolist()]
        return pd.DataFrame({"comm": pd.Series(comm, dtype=object),
                             "runtime": rows["run_ns"] / 1e9},
                            index=pd.Index(rows["pid"].astype(np.int64), name="pid"))

    def df_task_total_residency(self, task):
        """Run time (s) of one task per CPU: index cpu, column runtime (every CPU listed)."""
        tr = self._t
        pid = tr._pid(task)
        iv = _sched.task_intervals(tr._trace, pids=[pid])
        run = iv["state"] == _sched.RUNNING
        n = tr.cpus_count
        ns = np.bincount(iv["cpu"][run], weights=(iv["end_ns"] - iv["start_ns"])[run],
                         minlength=n)
        return pd.DataFrame({"runtime": ns / 1e9}, index=pd.Index(np.arange(len(ns)), name="cpu"))


class LatencyAnalysis:
    def __init__(self, trace):
        self._t = trace

    def df_latency_wakeup(self, task):
        """index Time (the sched_wakeup, s), wakeup_latency (s) to the next switch-in."""
        tr = self._t
        w = _sched.wakeup_latencies(tr._trace, pids=[tr._pid(task)])
        cpu = w["cpu"].astype(np.int64)
        return pd.DataFrame({"wakeup_latency": w["latency_ns"] / 1e9, "cpu": cpu,
                             "target_cpu": cpu},
                            index=pd.Index(tr._seconds(w["ts"]), name="Time"))

    def df_latency_preemption(self, task):
        """index Time (the preempting switch, s), preempt_latency (s): runnable time from a
        switch-out with prev_state R / R+ to the next switch-in."""
        tr = self._t
        iv = _sched.task_intervals(tr._trace, pids=[tr._pid(task)])
        iv = iv[np.argsort(iv["start_ns"], kind="stable")]
        prev_run = np.zeros(len(iv), bool)
        prev_run[1:] = iv["state"][:-1] == _sched.RUNNING
        nxt_run = np.zeros(len(iv), bool)
        nxt_run[:-1] = iv["state"][1:] == _sched.RUNNING
        k = (iv["state"] == _sched.RUNNABLE) & prev_run & nxt_run
        return pd.DataFrame({"preempt_latency": (iv["end_ns"] - iv["start_ns"])[k] / 1e9,
                             "cpu": iv["cpu"][k].astype(np.int64)},
                            index=pd.Index(tr._seconds(iv["start_ns"][k]), name="Time"))


class CpusAnalysis:
    def __init__(self, trace):
        self._t = trace

    def df_context_switches(self):
        """sched_switch lines per CPU: index cpu, column context_switch_cnt."""
        tr = self._t
        sw = tr._trace.events.get("sched_switch")
        n = tr.cpus_count
        cnt = np.bincount(sw["cpu"][sw["cpu"] >= 0], minlength=n) if sw is not None \
            else np.zeros(n, np.int64)
        return pd.DataFrame({"context_switch_cnt": cnt.astype(np.int64)},
                            index=pd.Index(np.arange(len(cnt)), name="cpu"))
