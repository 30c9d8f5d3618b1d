"""KVM/QEMU diagnostics: topology, vCPU scheduling, noisy neighbours, exits, I/O and ranked
findings, built on the scheduling analysis (``ftrace_fast.sched``, definitions D1-D10).

Definitions (the tests cite them by number)
-------------------------------------------
K1. Topology.  A vCPU thread is a task with kvm_entry or kvm_exit lines of its own, or one
    that had a comm ``CPU <n>/KVM``.  Its vCPU index is the most frequent ``vcpu`` field of its
    kvm_entry lines, else of its kvm_exit lines (the old layout, printed by trace-cmd's kvm
    plugin, has none), else the ``<n>`` of its name, else -1.  Other QEMU threads: iothreads
    (comm ``IO <name>``), vhost workers (``vhost-<qemu pid>``), the main thread
    (``qemu-system-*`` / ``qemu-kvm``) and any other thread of a VM's process (``worker``...),
    by the name a thread has at its last line (and the names its kvm lines show).
K2. VMs.  A VM is a process: the tgid of its vCPU threads when the trace has a TGID column.
    Without one, vCPU threads are taken in pid order and a new VM starts at a thread whose
    vCPU index is not above the previous thread's (QEMU creates vCPU threads in index order):
    the VM's id is then the pid of its first vCPU thread and ``tgid_known`` is false.  A vhost
    worker belongs to the VM whose process it names; iothreads, workers and main threads
    without a known tgid are assigned only when the trace holds one VM.
K3. vCPU scheduling = the per-task figures of D1-D10 for vCPU threads: run (RUNNING), wait
    (RUNNABLE: the steal time the guest feels), sleep (S: mostly the halted guest), blocked
    (D), other sleep, unknown.  steal_pct = wait / (run + wait).
K4. Noisy neighbours.  While a vCPU thread is RUNNABLE on CPU c, the task current on c
    (D5) took that time from it: stolen time is summed by (vCPU thread, current task), the
    idle task (pid 0) and unknown CPU time (pid -1) included, so each vCPU's neighbours' times
    add up to its wait.  A wait on no known CPU (a wakeup that names none) is unknown time
    (pid -1) on CPU -1.  A neighbour that is a vCPU thread of the same VM is "stacked" there.
K5. Placement: run time of each vCPU thread per physical CPU.  Overcommit: the number of
    vCPU threads RUNNING or RUNNABLE at each instant, as exact time per count; overcommitted
    time is when it exceeds the number of CPUs of the trace.
K6. Exits, per vCPU thread, over its kvm_entry, kvm_exit and sched_switch lines in time order:
    guest time = sum of kvm_entry to the thread's next line among those being a kvm_exit
    (complete pairs); the span from W's start to a thread's first kvm_exit (when nothing of it
    came before) and from its last kvm_entry to W's end are partial guest time, reported
    apart (``guest_edge_ns``).  Handling time of an exit = kvm_exit to the thread's next such
    line being a kvm_entry (the thread was not switched out in between); an exit followed by
    a switch-out of its thread before any entry is counted apart (``switched_out``) by
    reason, an exit followed by another exit or nothing is unpaired.  An exit re-entered on
    another CPU was switched out too (a thread changes CPUs only while switched out; traces
    without sched_switch show only that).  A pair whose CPU has unknown time (D6) between its
    two lines, or an entry followed by an exit on another CPU, is broken: not timed.  Reasons
    are reported exactly as printed (``-R`` output prints numbers).
K7. Halts: an exit whose reason is HLT (``HLT`` on VMX, ``hlt`` on SVM); its halt duration runs
    to the thread's next kvm_entry, slept when the thread was switched out in between, polled
    otherwise.  kvm_vcpu_wakeup lines are counted by outcome: ``wait`` (the vCPU slept) or
    ``poll`` (halt polling succeeded), with the times they print.
K8. I/O: the per-task figures of QEMU iothreads, vhost workers and other non-vCPU QEMU
    threads, with the longest blocked (D) stretch; block requests: each block_rq_issue is paired
    with the next block_rq_complete of the same device and sector; latency = complete - issue,
    per device (major, minor).
K9. Rates are per second of W (``None`` with integer clocks, whose ticks are not time).
K10. A VM's summary (vm_summary) totals over the vCPU threads selected (pids, comm): run,
    wait, guest, handling and stacked time (null when one of them lacks the figure: a trace
    without sched_switch or without kvm_exit); its exits per reason count every exit of its
    threads; its noisy neighbours are its vCPUs' neighbours (K4) summed per task, its own vCPU
    threads left out (that is stacking), the ten that stole most; its runnable vCPUs are the
    overcommit (K5) of its own vCPU threads.
"""

from __future__ import annotations

import functools
import re
import threading

import numpy as np

from . import _ftsched, _group, _threads, sched
from ._fmt import duration as format_duration
from ._group import dense as _dense, group as _group_rows
from . import machines as _machines
from . import trace as _trace_mod
from .options import Thresholds  # noqa: F401  (public here: kvm.Thresholds)
from .sched import RUNNABLE, RUNNING, SLEEP_D, latency_stats

#: events the analysis reads (sched ones for the scheduling parts)
USED_EVENTS = sched.USED_EVENTS + ("kvm_entry", "kvm_exit", "kvm_vcpu_wakeup",
                                   "block_rq_issue", "block_rq_complete")

_VCPU_NAME = re.compile(r"^CPU (\d+)/KVM$")
_VHOST_NAME = re.compile(r"^vhost-(\d+)$")
_MAIN_NAME = re.compile(r"^(qemu-system-|qemu-kvm|qemu:)")
_IO_NAME = re.compile(r"^IO ")
_QEMU_HELPER = re.compile(r"^(worker|call_rcu|vnc_worker|SPICE Worker|live_migration|"
                          r"multifdsend_|multifdrecv_|pool-qemu|qemu-|iou-)")

_QEMU_ANY = re.compile("|".join(r.pattern for r in (_VCPU_NAME, _VHOST_NAME, _MAIN_NAME, _IO_NAME,
                                                    _QEMU_HELPER)))

ROLE_VCPU, ROLE_IO, ROLE_VHOST, ROLE_MAIN, ROLE_OTHER = "vcpu", "iothread", "vhost", "main", "thread"

_E, _X, _S, _I = 0, 1, 2, 3  # kvm_entry, kvm_exit, switch-out, switch-in


def _pair_counts(a, b):
    """(a, b, count) for each distinct pair of two int32 columns."""
    (ua, ub), inv = _group_rows(a, b)
    c = np.bincount(inv, minlength=len(ua))
    return list(zip(ua.tolist(), ub.tolist(), c.tolist()))


def _unique_pairs(a, b):
    return [(x, y) for x, y, _ in _pair_counts(a, b)]


def _is_hlt(reason):
    return reason in ("HLT", "hlt")


# ---------------------------------------------------------------------------------------------
# topology (K1, K2)

def _kvm_line_names(trace):
    """What the kvm lines say of their own tasks: ([(pid, comm id)], [(pid, tgid)], votes),
    votes {pid: {event: {vcpu field: lines}}} for K1.  (Read before the scheduling walk, whose
    tables would otherwise be held beside these groupings.)"""
    pairs, tgids, votes = [], [], {}
    for nm in ("kvm_entry", "kvm_exit"):
        a = trace.events.get(nm)
        if a is None or not len(a):
            continue
        pairs += [(p, cid) for p, cid in _unique_pairs(a["pid"], a["comm"]) if p > 0 and cid >= 0]
        for p, v, n in _pair_counts(a["pid"], a["vcpu"]):
            if p > 0:
                votes.setdefault(p, {}).setdefault(nm, {})[v] = n
        tg = a["tgid"]
        if tg.max(initial=-1) >= 0:
            k = tg >= 0
            tgids.append(set(zip(a["pid"][k].tolist(), tg[k].tolist())))
    return pairs, tgids, votes


def _add_kvm_line_names(trace, names, tgid, lines):
    """Add _kvm_line_names' names and tgids to ``names`` / ``tgid`` (the model's come
    first); returns the votes."""
    pairs, tgids, votes = lines
    for p, cid in pairs:
        names.setdefault(p, set()).add(trace.comms[cid])
    for s in tgids:
        for p, g in s:
            tgid.setdefault(p, g)
    return votes


def _vcpu_indices(names, votes):
    """{pid: vCPU index} of the vCPU threads (K1): the most frequent vcpu field of its
    kvm_entry lines, else of its kvm_exit lines, else the n of its ``CPU n/KVM`` name, else -1."""
    out = {}
    for p, ns in names.items():
        idx = None
        for n in ns:
            mm = _VCPU_NAME.match(n)
            if mm:
                idx = int(mm.group(1))
        if p not in votes and idx is None:
            continue
        v = -1
        for nm in ("kvm_entry", "kvm_exit"):
            vs = {k: n for k, n in votes.get(p, {}).get(nm, {}).items() if k >= 0}
            if vs:
                v = max(vs.items(), key=lambda kv: (kv[1], -kv[0]))[0]
                break
        out[p] = idx if v < 0 and idx is not None else v
    return out


def _vms(threads, tgid):
    """The VMs of the vCPU threads (K2): {vm: {"vm", "tgid_known", "vcpus", "threads"}}."""
    vcpu_pids = sorted(threads)
    vm_of = {p: tgid[p] for p in vcpu_pids if p in tgid}
    # no tgid: QEMU creates vCPU threads in index order, so an index not above the last starts a VM
    cur, prev_v = None, None
    for p in vcpu_pids:
        if p in tgid:
            continue
        v = threads[p][1]
        if cur is None or v < 0 or prev_v is None or v <= prev_v:
            cur = p
        vm_of[p] = cur
        prev_v = v
    vms = {}
    for p in vcpu_pids:
        d = vms.setdefault(vm_of[p], {"vm": vm_of[p], "tgid_known": p in tgid, "vcpus": [],
                                      "threads": []})
        d["vcpus"].append(p)
    return vms


class Topology:
    """The QEMU processes and threads of a trace (K1, K2)."""

    def __init__(self, trace):
        self.trace = trace
        lines = _kvm_line_names(trace)
        # the KVM figures read the CPU occupancy and the intervals of the vCPU threads: one
        # walk, without them when no thread can be a vCPU (then there is no VM, K1)
        tables = sched.IV | sched.CO if _may_have_vcpus(trace) else 0
        self._model = sched.model(trace, intervals=tables, iv_select=_vcpu_candidates) \
            if _has_sched(trace) else None
        self._last_comms = {}
        names, self.tgid = self._model_names(trace, self._model)
        votes = _add_kvm_line_names(trace, names, self.tgid, lines)
        self.names = {p: sorted(s) for p, s in names.items()}
        threads = {p: [ROLE_VCPU, v] for p, v in _vcpu_indices(self.names, votes).items()}
        self.vms = _vms(threads, self.tgid)
        self._add_helper_threads(threads)
        self.threads = threads
        self.vm_of = {p: vm for vm, d in self.vms.items() for p in d["vcpus"] + d["threads"]}

    @staticmethod
    def _model_names(trace, m):
        """({pid: the QEMU-like names of its lines}, {pid: tgid}) from the scheduling model."""
        names, tgid = {}, {}
        if m is None:
            return names, tgid
        # QEMU's names only: a new thread carries its creator's name until it renames itself
        ok = np.fromiter((_QEMU_ANY.search(c) is not None for c in trace.comms), bool,
                         len(trace.comms))
        cid = m.comm_id
        k = (cid >= 0) & (cid < len(ok))
        k[k] = ok[cid[k]]
        for p, c in zip(m.pids[k].tolist(), cid[k].tolist()):
            names.setdefault(p, set()).add(trace.comms[c])
        has = m.tgid >= 0
        tgid.update(zip(m.pids[has].tolist(), m.tgid[has].tolist()))
        return names, tgid

    def _add_helper_threads(self, threads):
        """The other QEMU threads (K1, K2): vhost workers by the process they name, iothreads,
        main and other threads by their tgid, or by their names when the trace holds one VM."""
        tgid = self.tgid
        single = next(iter(self.vms)) if len(self.vms) == 1 else None
        cands = set(self.names) | {p for p, g in tgid.items() if g in self.vms}
        for p in sorted(cands):
            if p in threads:
                continue
            ns = self.names.get(p) or [self._last_comm(p)]
            g = tgid.get(p)
            owner = next((int(mm.group(1)) for mm in map(_VHOST_NAME.match, ns) if mm), None)
            vm = role = None
            if owner is not None:
                role = ROLE_VHOST
                vm = owner if owner in self.vms else single
            elif g is not None and g in self.vms:
                vm = g
                role = ROLE_IO if any(_IO_NAME.match(n) for n in ns) else \
                    ROLE_MAIN if p == g else ROLE_OTHER
            elif g is None and single is not None:
                # no TGID column: QEMU's thread names tell
                vm = single
                if any(_IO_NAME.match(n) for n in ns):
                    role = ROLE_IO
                elif all(_MAIN_NAME.match(n) for n in ns):
                    role = ROLE_MAIN
                elif any(_MAIN_NAME.match(n) or _QEMU_HELPER.match(n) for n in ns):
                    role = ROLE_OTHER
            if vm is not None and role is not None:
                threads[p] = [role, -1]
                self.vms[vm]["threads"].append(p)

    def _last_comm(self, pid):
        # asked for again and again by the tables (hundreds of times a trace), one NumPy
        # search each: remembered per pid
        got = self._last_comms.get(pid)
        if got is None:
            m = self._model
            i = m.task_index([pid])[0] if m is not None else -1
            got = self._last_comms[pid] = m.comm[i] if i >= 0 else ""
        return got

    @property
    def vcpu_pids(self):
        return np.array(sorted(p for p, (r, _) in self.threads.items() if r == ROLE_VCPU), np.int64)

    def comm(self, pid):
        """A name to show: ``CPU n/KVM`` if it had one, else its comm at its last line."""
        ns = self.names.get(int(pid), [])
        for n in ns:
            if _VCPU_NAME.match(n):
                return n
        return self._last_comm(int(pid)) or (ns[-1] if ns else "")

    def table(self):
        """One row per QEMU thread: (pid, tgid, vm, role, vcpu, comm), sorted by vm, role, pid."""
        rows = []
        for p, (role, v) in self.threads.items():
            rows.append((p, self.tgid.get(p, -1), self.vm_of.get(p, -1), role, v, self.comm(p)))
        order = {ROLE_VCPU: 0, ROLE_MAIN: 1, ROLE_IO: 2, ROLE_VHOST: 3, ROLE_OTHER: 4}
        rows.sort(key=lambda r: (r[2], order[r[3]], r[4], r[0]))
        return np.array(rows, dtype=[("pid", "i4"), ("tgid", "i4"), ("vm", "i4"), ("role", "O"),
                                     ("vcpu", "i4"), ("comm", "O")])


def topology(trace) -> Topology:
    """The QEMU topology of a trace (K1, K2), computed once and kept with the trace."""
    trace = _machines.scoped(trace)      # several machines: one of them (machines.M2)
    return trace.derived("kvm.topology", (), lambda: Topology(trace),
                         dump=_topology_state, restore=_topology_from)


def _topology_state(top):
    """A Topology as plain data for the cache entry: its tables, without the trace."""
    return {k: v for k, v in vars(top).items() if k not in ("trace", "_model", "_last_comms")}


def _topology_from(trace, state):
    top = Topology.__new__(Topology)
    top.__dict__.update(state)
    top.trace = trace
    has_sched = "sched_switch" in trace.events and len(trace.events["sched_switch"])
    top._model = sched.model(trace, intervals=sched.IV | sched.CO,
                             iv_select=_vcpu_candidates) if has_sched else None
    top._last_comms = {}
    return top


#: a function's result kept with the (scoped) trace per restriction (trace.derived): diagnose
#: and the CLI ask for the same figures several times
_derived = functools.partial(_trace_mod.derived, scope=_machines.scoped)


def _runnable_per_cpu(trace, start, end):
    """CPU number -> time tasks spent RUNNABLE waiting for it (D2), in [start, end]."""
    m = sched.model(trace)
    if start is None and end is None:      # added up by the walk
        return dict(zip(m.cpus.tolist(), m.sums["cpu_wait_ns"].tolist()))
    r = m.tables(sched.IV)
    k = (r["iv_state"] == RUNNABLE) & (r["iv_cpu"] >= 0)
    _, _, d = _group.clip(start, end, r["iv_start"][k], r["iv_end"][k])
    w = _group.sum_by(r["iv_cpu"][k], d, m.ncpus)
    return dict(zip(m.cpus.tolist(), w.tolist()))


def _vcpu_candidates(m):
    """The tasks of model ``m`` that can be vCPU threads (K1), a bool each: those of kvm_entry
    and kvm_exit lines, and those ever named ``CPU n/KVM`` (a superset of the vCPU threads
    _vcpu_indices finds: the model keeps the intervals of these tasks only)."""
    sel = np.zeros(m.ntasks, bool)
    for nm in ("kvm_entry", "kvm_exit"):
        a = m.trace.events.get(nm)
        if a is not None and len(a):
            ti = m.task_index(np.unique(a["pid"]))
            sel[ti[ti >= 0]] = True
    comms = m.trace.comms
    ok = np.fromiter((_VCPU_NAME.match(c) is not None for c in comms), bool, len(comms))
    if ok.any():
        pid, cid = m.name_pairs
        k = (cid >= 0) & (cid < len(ok))
        k[k] = ok[cid[k]]
        ti = m.task_index(pid[k])
        sel[ti[ti >= 0]] = True
    return sel


def _may_have_vcpus(trace):
    """Whether a thread of the trace can be a vCPU (K1): one with kvm_entry or kvm_exit lines,
    or a comm ``CPU n/KVM``."""
    if any(len(trace.events.get(nm, ())) for nm in ("kvm_entry", "kvm_exit")):
        return True
    return any("/KVM" in c and _VCPU_NAME.match(c) for c in trace.comms)


def _has_sched(trace):
    sw = trace.events.get("sched_switch")
    return sw is not None and len(sw) > 0


def _window(trace):
    trace = _machines.scoped(trace)
    if _has_sched(trace):
        return sched.window(trace)
    s = trace.span
    return (s[0], s[1]) if s is not None else (0, 0)


def _seconds(trace, ns):
    return ns / 1e9 if trace.time_unit == "ns" else None


# ---------------------------------------------------------------------------------------------
# exits (K6, K7)

class Exits:
    """The exits of every vCPU thread, paired as K6 says (computed once per trace)."""

    def __init__(self, trace, vcpu_pids):
        # no scheduling model is needed here unless the trace lost events (K6's broken pairs),
        # so that diagnose can build this while the model is built (see prepare())
        self.trace = trace
        self._window = None
        self.symbols = trace.symbols
        self.unit = trace.time_unit
        self.vcpu_pids = np.asarray(vcpu_pids, np.int64)
        # paired on the first read of a pair column: figures the cache entry stored need none
        self._paired_lock = threading.Lock()
        self._pairs_done = False

    def __getattr__(self, name):
        # only attributes not set yet land here: the pair columns (x_*, g_*, _lead, _trail)
        d = self.__dict__
        if name.startswith("__") or d.get("_pairs_done", True) or \
                d.get("_pairing") == threading.get_ident():
            raise AttributeError(name)
        with self._paired_lock:
            if not self._pairs_done:
                d["_pairing"] = threading.get_ident()
                try:
                    self._pair_all()
                finally:
                    d["_pairing"] = None
                self._pairs_done = True
        return object.__getattribute__(self, name)

    def _pair_all(self):
        trace = self.trace
        r = self._paired(trace, self.vcpu_pids) if not len(trace.lost) else None
        if r is None:
            self._pair_sorted(trace, self.vcpu_pids)
        else:
            self._lead, self._trail = r.pop("lead"), r.pop("trail")
            for k, v in r.items():
                setattr(self, k, v)
            self.x_broken = np.zeros(len(self.x_pid), bool)
        self.x_is_hlt = np.isin(self.x_reason, [i for i, s in enumerate(trace.symbols) if _is_hlt(s)])

    @staticmethod
    def _paired(trace, vcpu_pids):
        """The one-pass pairing (_ftsched.pair_exits) of a trace that lost no events; None
        when a thread's time goes back in the file."""
        ev = trace.events

        def cols(name, *fields):
            a = ev.get(name)
            dts = {"ts": np.int64, "line": np.int64}
            if a is None or not len(a):
                return [np.zeros(0, dts.get(f, np.int32)) for f in fields]
            return [a[f].astype(dts.get(f, np.int32), copy=False) for f in fields]
        return _ftsched.pair_exits(*cols("kvm_entry", "pid", "ts", "line", "cpu"),
                                   *cols("kvm_exit", "pid", "ts", "line", "cpu", "reason"),
                                   *cols("sched_switch", "prev_pid", "next_pid", "ts", "line", "cpu"),
                                   _group.Ids(vcpu_pids))

    def _pair_sorted(self, trace, vcpu_pids):
        """K6 and K7 by sorting each thread's records (any trace)."""
        ev = trace.events
        parts = []
        en, ex = ev.get("kvm_entry"), ev.get("kvm_exit")
        pidset = np.asarray(vcpu_pids, np.int64)

        lut = np.zeros(int(pidset.max()) + 2 if len(pidset) else 1, bool)
        lut[pidset] = True

        def add(a, code, pidf, reason=None):
            if a is None or not len(a):
                return
            p = a[pidf]
            k = lut[np.clip(p, 0, len(lut) - 1)] & (a["ts"] >= 0)
            if k.all():
                k = slice(None)         # kvm lines: their own task is a vCPU thread (K1)
            elif not k.any():
                return
            m_ = len(p) if isinstance(k, slice) else int(k.sum())
            parts.append((p[k].astype(np.int64), a["ts"][k], a["line"][k], a["cpu"][k],
                          np.full(m_, code, np.int8),
                          a[reason][k].astype(np.int32) if reason else np.full(m_, -1, np.int32)))
        add(en, _E, "pid")
        add(ex, _X, "pid", "reason")
        sw = ev.get("sched_switch")
        add(sw, _S, "prev_pid")
        add(sw, _I, "next_pid")
        cat = [np.concatenate(x) if parts else np.zeros(0, d)
               for x, d in zip(zip(*parts) if parts else [[]] * 6,
                               (np.int64, np.int64, np.int64, np.int32, np.int8, np.int32))]
        pid, ts, line, cpu, code, reason = cat
        o = self._order(pid, ts, line)
        pid, ts, line, cpu, code, reason = (x[o] for x in (pid, ts, line, cpu, code, reason))
        n = len(pid)
        nxt_same = np.r_[pid[1:] == pid[:-1], False] if n else np.zeros(0, bool)
        prv_same = np.r_[False, pid[1:] == pid[:-1]] if n else np.zeros(0, bool)
        ncode = np.r_[code[1:], -1] if n else code
        nts = np.r_[ts[1:], 0] if n else ts
        ncpu = np.r_[cpu[1:], -1] if n else cpu
        moved = cpu != ncpu
        broken = self._broken(trace, ts, nts, cpu, ncpu) if n else np.zeros(0, bool)
        is_x = code == _X
        is_e = code == _E
        # guest: E followed by X of the same thread
        g = is_e & nxt_same & (ncode == _X) & ~broken
        self.g_pid = pid[g].astype(np.int32)    # as _ftsched.pair_exits gives them
        self.g_start = ts[g]
        self.g_end = nts[g]
        # partial guest spans at W's edges (K6), kept apart: W is read only when they are summed
        lead = is_x & ~prv_same
        trail = is_e & ~nxt_same
        self._lead = (pid[lead], ts[lead], cpu[lead])
        self._trail = (pid[trail], ts[trail], cpu[trail])
        self.g_cpu = cpu[g]
        # exits
        self.x_pid = pid[is_x].astype(np.int32)
        self.x_ts = ts[is_x]
        self.x_cpu = cpu[is_x]
        self.x_reason = reason[is_x]
        nc = ncode[is_x]
        ns_ = nxt_same[is_x]
        br = broken[is_x]
        mv = moved[is_x]
        handled = ns_ & (nc == _E) & ~br & ~mv
        self.x_handled = handled
        self.x_handling = np.where(handled, nts[is_x] - ts[is_x], -1)
        self.x_switched_out = ns_ & ((nc == _S) | ((nc == _E) & mv))
        self.x_broken = ns_ & (nc == _E) & br & ~mv
        # halts (K7): to the next entry, whatever came between
        e_idx = np.flatnonzero(is_e)
        xi = np.flatnonzero(is_x)
        j = np.searchsorted(e_idx, xi)  # the first entry after each exit in the sorted stream
        jj = np.minimum(j, max(len(e_idx) - 1, 0))
        has = (j < len(e_idx)) & (pid[e_idx[jj]] == pid[xi]) if len(e_idx) else np.zeros(len(xi), bool)
        self.x_next_entry = np.where(has, ts[e_idx[jj]] if len(e_idx) else 0, -1)
        # a switch-out between the exit and that entry
        s_idx = np.flatnonzero(code == _S)
        k = np.searchsorted(s_idx, xi)
        kk = np.minimum(k, max(len(s_idx) - 1, 0))
        so_next = np.where((k < len(s_idx)) & (pid[s_idx[kk]] == pid[xi]) if len(s_idx) else False,
                           s_idx[kk] if len(s_idx) else 0, -1)
        self.x_slept = has & (so_next >= 0) & (so_next < np.where(has, e_idx[jj] if len(e_idx) else 0, -1))
        if len(e_idx):
            self.x_slept |= has & (cpu[e_idx[jj]] != cpu[xi])   # re-entered elsewhere (K6)

    @staticmethod
    def _order(pid, ts, line):
        """The order by (pid, ts, line): one sort of (thread, line) keys when the lines are in
        time order (the usual file), else a lexsort."""
        if not len(pid):
            return np.zeros(0, np.int64)
        up, ip = _dense(pid)
        lo, hi = int(line.min()), int(line.max())
        if (hi - lo + 1) * len(up) < (1 << 62):
            o = np.argsort(ip.astype(np.int64) * (hi - lo + 1) + (line - lo), kind="stable")
            t = ts[o]
            same = ip[o][1:] == ip[o][:-1]
            if not (same & (t[1:] < t[:-1])).any():
                return o
        return np.lexsort((line, ts, pid))

    @staticmethod
    def _pi(pid, vcpu_pids):
        return np.searchsorted(np.asarray(vcpu_pids, np.int64), pid)

    @staticmethod
    def _broken(trace, ts, nts, cpu, ncpu):
        """Pairs across CPUs, or across unknown time of their CPU (D6)."""
        br = cpu != ncpu
        if not _has_sched(trace) or not len(trace.lost):
            return br
        ci = sched.cpu_intervals(trace)
        unk = ci[ci["pid"] == -1]
        for c in np.unique(unk["cpu"]).tolist():
            u = unk[unk["cpu"] == c]
            k = (cpu == c) & ~br
            if not k.any():
                continue
            a, b = ts[k], nts[k]
            # some unknown interval [s, e) with s < b and e > a
            j = np.searchsorted(u["end_ns"], a, side="right")
            hit = (j < len(u)) & (u["start_ns"][np.minimum(j, len(u) - 1)] < b)
            br[np.flatnonzero(k)[hit]] = True
        return br

    @property
    def window(self):
        if self._window is None:
            self._window = _window(self.trace)
        return self._window

    def _edges(self):
        w0, w1 = self.window
        (lp, lt, lc), (tp, tt, tc) = self._lead, self._trail
        return (np.r_[lp, tp], np.r_[np.full(len(lp), w0, np.int64), tt],
                np.r_[lt, np.full(len(tp), w1, np.int64)], np.r_[lc, tc])


    def _spans(self, pid, a, b, cpu, start, end, cpus):
        """Per vCPU thread: the sum of spans [a, b) clipped to [start, end], on ``cpus``, and
        the number of spans that meet [start, end]."""
        meet = _group.window_mask(b, start, None) & _group.window_mask(a, None, end)
        a, b, d = _group.clip(start, end, a, b)
        k = np.ones(len(d), bool) if cpus is None else np.isin(cpu, np.asarray(list(cpus)))
        return _group.sum_by(self._pi(pid[k], self.vcpu_pids), d[k], len(self.vcpu_pids)), \
            np.bincount(self._pi(pid[k & meet], self.vcpu_pids), minlength=len(self.vcpu_pids))

    def _cached(self, name, start, end, cpus, fn):
        """A figure of every thread per restriction, a derived table of the trace."""
        key = (_trace_mod.restriction_key("start", start), _trace_mod.restriction_key("end", end),
               _cpu_key(cpus))
        return self.trace.derived("kvm.exits." + name, key, fn)

    def per_vcpu(self, start=None, end=None, cpus=None, pids=None):
        """Per vCPU thread (in vcpu_pids order, or in the order of ``pids``, zeros for a thread
        without kvm lines): guest, handling, counts (K6, K7).  Exits count where their
        kvm_exit line is (time, CPU); guest spans are clipped to [start, end].  Computed once
        per restriction: callers must not modify the arrays."""
        if pids is not None:
            mine = self._cached("per_vcpu", start, end, cpus,
                                lambda: self.per_vcpu(start, end, cpus))
            pids = np.asarray(pids, np.int64)
            i = np.minimum(np.searchsorted(self.vcpu_pids, pids), max(len(self.vcpu_pids) - 1, 0))
            ok = (self.vcpu_pids[i] == pids) if len(self.vcpu_pids) else np.zeros(len(pids), bool)
            return {k: np.where(ok, v[i] if len(v) else 0, 0) for k, v in mine.items()}
        n = len(self.vcpu_pids)
        guest, spans = self._spans(self.g_pid, self.g_start, self.g_end, self.g_cpu, start, end, cpus)
        edge, _ = self._spans(*self._edges(), start, end, cpus)
        k = _group.line_mask(self.x_ts, self.x_cpu, start, end, cpus)
        xi = self._pi(self.x_pid, self.vcpu_pids)
        cnt = lambda m: np.bincount(xi[k & m], minlength=n)  # noqa: E731
        h = k & self.x_handled
        hl = k & self.x_is_hlt
        halt_has = hl & (self.x_next_entry >= 0)
        return {"guest_ns": guest, "guest_spans": spans, "guest_edge_ns": edge,
                "handling_ns": _group.sum_by(xi[h], self.x_handling[h], n),
                "exits": cnt(True), "exits_handled": cnt(self.x_handled),
                "exits_switched_out": cnt(self.x_switched_out), "exits_broken": cnt(self.x_broken),
                "halts": cnt(self.x_is_hlt),
                "halt_ns": _group.sum_by(xi[halt_has], (self.x_next_entry - self.x_ts)[halt_has], n),
                "halts_slept": cnt(halt_has & self.x_slept),
                "halts_polled": cnt(halt_has & ~self.x_slept)}

    def by_reason(self, group=None, start=None, end=None, cpus=None):
        """Exit figures per (group, reason): group maps each exit's pid to a key (a vCPU pid,
        a VM id, or one key for all; None: per thread, computed once per restriction, rows
        the caller must not modify).  Returns rows sorted by group then count."""
        if group is None:
            return self._cached("by_reason", start, end, cpus,
                                lambda: self.by_reason(lambda p: p, start, end, cpus))
        x_pid, x_reason, x_so = self.x_pid, self.x_reason, self.x_switched_out
        x_h, x_hd = self.x_handled, self.x_handling
        if not _restricted(start, end, cpus):
            if not len(x_pid):
                return []
        else:
            k = _group.line_mask(self.x_ts, self.x_cpu, start, end, cpus)
            if not k.any():
                return []
            x_pid, x_reason, x_so, x_h, x_hd = (a[k] for a in (x_pid, x_reason, x_so, x_h, x_hd))
        uk, comb = _dense(np.asarray(group(x_pid)))
        ur, rinv = _dense(x_reason)
        comb = comb.astype(np.int64, copy=False)
        comb *= len(ur)
        comb += rinv
        del rinv
        uc, cinv = _dense(comb)
        del comb
        cnt = np.bincount(cinv)
        swo = np.bincount(cinv, weights=x_so, minlength=len(uc)).astype(np.int64)
        cinv, x_hd = cinv[x_h], x_hd[x_h]
        tot = _group.sum_by(cinv, x_hd, len(uc))
        pc = sched._percentiles(cinv, x_hd, len(uc), argmax=False)
        del cinv, x_hd
        lo = self.window[0] if start is None else max(self.window[0], start)
        hi = self.window[1] if end is None else min(self.window[1], end)
        dur = hi - lo
        rows = []
        for i, c in enumerate(uc.tolist()):
            gk, rk = divmod(c, len(ur))
            n_h = int(pc["count"][i])
            rows.append({
                "group": uk[gk].item() if hasattr(uk[gk], "item") else uk[gk],
                "reason": self.symbols[int(ur[rk])] if ur[rk] >= 0 else "?",
                "count": int(cnt[i]),
                "rate_per_s": (int(cnt[i]) / (dur / 1e9)) if self.unit == "ns" and dur > 0 else None,
                "handled": n_h, "total_ns": int(tot[i]),
                "mean_ns": float(pc["mean"][i]) if n_h else None,
                "p50_ns": int(pc[50][i]) if n_h else None,
                "p99_ns": int(pc[99][i]) if n_h else None,
                "max_ns": int(pc["max"][i]) if n_h else None,
                "switched_out": int(swo[i]),
            })
        rows.sort(key=lambda r: (r["group"], -r["count"], r["reason"]))
        return rows


def _cpu_key(cpus):
    return None if cpus is None else tuple(sorted(int(c) for c in cpus))


def _kvm_line_pids(trace):
    """The threads with kvm_entry / kvm_exit lines of their own (K1's first kind of vCPU)."""
    ps = [a["pid"] for n in ("kvm_entry", "kvm_exit") for a in [trace.events.get(n)]
          if a is not None and len(a)]
    if not ps:
        return np.zeros(0, np.int64)
    u, _ = _dense(np.concatenate(ps).astype(np.int64))
    return u[u > 0]


def exits(trace) -> Exits:
    """The paired exits of every thread with kvm lines (K6), computed once and kept with the
    trace.  Threads named ``CPU n/KVM`` without kvm lines have none (per_vcpu(pids=) gives
    them zeros)."""
    trace = _machines.scoped(trace)
    return trace.derived("kvm.exits", (), lambda: Exits(trace, _kvm_line_pids(trace)))


def prepare(trace, restricted=False):
    """Build what the KVM figures read: the scheduling model with its intervals and the exit
    pairs, the two at once on two threads (the model's walk and NumPy's sorts run without
    the GIL) when the trace has both and lost no events (broken pairs read the model).
    ``restricted``: the figures to come are restricted (start, end or cpus), which reads
    every table of the model: built by the same walk."""
    trace = _machines.scoped(trace)

    def build():
        if restricted and _has_sched(trace):
            sched.model(trace, intervals=sched.ALL)
        return topology(trace)
    # the pairing pays on its own thread only beside the model's walk
    if trace.derived_ready("sched.model") or not _has_sched(trace) or \
            "kvm_exit" not in trace.events or len(trace.lost):
        return _stolen_first(trace, build(), restricted)
    join = _background(lambda: exits(trace).x_pid)      # the first read pairs them
    try:
        top = build()
    finally:
        join()
    return _stolen_first(trace, top, restricted)


def _stolen_first(trace, top, restricted):
    """Unrestricted figures from the walk the topology made: K4's stolen time is summed now
    and the CPU occupancy, which nothing else of them reads, let go (68 MB at 1 GB)."""
    if restricted or top._model is None or top._model._iv_sel is None or \
            not len(top.vcpu_pids):
        return top
    neighbours(trace)
    if len(trace.lost) and "kvm_exit" in trace.events:
        exits(trace).x_pid      # K6's pairs across a gap read the occupancy (Exits._broken)
    top._model.drop_occupancy()
    return top


def _restricted(start, end, cpus):
    return start is not None or end is not None or cpus is not None


def _background(*fns):
    """Run fns in order on another thread; returns a join() that waits for them and re-raises
    their exception in the caller's thread.  The figures are memoised per trace, so work done
    there is found, not repeated, by the caller once joined."""
    return _threads.beside(lambda: [fn() for fn in fns], "ftrace_fast-kvm")


# ---------------------------------------------------------------------------------------------
# vCPU scheduling (K3, K4, K5)

@_derived("kvm.intervals", "pids", "start", "end", "cpus")
def _intervals(trace, pids, start=None, end=None, cpus=None):
    """sched.interval_columns of the tasks of ``pids`` (task and CPU as model indices)."""
    if not _has_sched(trace) or not len(pids):
        return None
    return sched.interval_columns(sched.model(trace), pids=pids, start=start, end=end, cpus=cpus)


def _vcpu_intervals(trace, pids, start=None, end=None, cpus=None):
    """_intervals of ``pids``; when they are some of the vCPU threads, the rows of theirs
    among the columns of every vCPU thread (kept once), a copy that is not kept."""
    c, rows = _vcpu_rows(trace, pids, start, end, cpus)
    return c if c is None or rows is None else {f: v[rows] for f, v in c.items()}


def _vcpu_rows(trace, pids, start=None, end=None, cpus=None):
    """(columns, rows): _intervals of every vCPU thread (kept once) and a mask of the rows of
    ``pids`` when they are some of the vCPU threads; else (_intervals of ``pids``, None)."""
    vcpus = topology(trace).vcpu_pids
    if not len(pids) or not len(vcpus) or len(pids) == len(vcpus) or \
            not np.isin(pids, vcpus).all():
        return _intervals(trace, pids, start, end, cpus), None
    c = _intervals(trace, vcpus, start, end, cpus)
    if c is None:
        return None, None
    m = sched.model(trace)
    ti = m.task_index(pids)
    mine = np.zeros(m.ntasks, bool)
    mine[ti[ti >= 0]] = True
    return c, mine[c["task"]]


def _restriction(start, end):
    return sched._time_arg(start, "start"), sched._time_arg(end, "end")


@_derived("kvm.neighbours", "pids", "start", "end", "cpus")
def neighbours(trace, pids=None, *, start=None, end=None, cpus=None):
    """Stolen time (K4): rows (pid, neighbour_pid, cpu, stolen_ns), pid a vCPU thread (or any
    task of ``pids``), neighbour the task current on the CPU it waited for (0 idle, -1
    unknown), summed per CPU."""
    dt = [("pid", "i4"), ("neighbour_pid", "i4"), ("cpu", "i4"), ("stolen_ns", "i8")]
    start, end = _restriction(start, end)
    top = topology(trace)
    pids = top.vcpu_pids if pids is None else np.asarray(pids, np.int64)
    c = _vcpu_intervals(trace, pids, start, end, cpus)
    if c is None:
        return np.zeros(0, dt)
    m = sched.model(trace)
    r = m.tables(sched.CO)
    # keys sort as (pid, neighbour pid, CPU): occupant rank 0 unknown, 1 idle, 2 + task index
    perm, off = m.co_by_cpu()
    uk, d = _ftsched.stolen_keys(c["task"], c["state"], c["start"], c["end"],
                                 c["cpu"].astype(np.int32, copy=False), RUNNABLE, r["co_start"],
                                 r["co_end"], r["co_occ"], perm, off, m.ntasks)
    nocc = m.ntasks + 2
    gc = uk % max(m.ncpus, 1)
    rest = uk // max(m.ncpus, 1)
    gr, gt = rest % nocc, rest // nocc
    out = np.zeros(len(uk), dt)
    out["pid"] = m.pids[gt]
    out["neighbour_pid"] = np.where(gr >= 2, m.pids[np.maximum(gr - 2, 0)], gr - 1)
    out["cpu"] = m.cpus[gc]
    out["stolen_ns"] = d
    # a wait on no known CPU is unknown time (-1) on CPU -1, so the rows add up to the wait (K4)
    nc = (c["state"] == RUNNABLE) & (c["cpu"] < 0) & (c["end"] > c["start"])
    if nc.any():
        ut, tinv = _dense(c["task"][nc])
        extra = np.zeros(len(ut), dt)
        extra["pid"], extra["neighbour_pid"], extra["cpu"] = m.pids[ut], -1, -1
        extra["stolen_ns"] = _group.sum_by(tinv, (c["end"] - c["start"])[nc], len(ut))
        out = np.concatenate([out, extra])
        out = out[np.lexsort((out["cpu"], out["neighbour_pid"], out["pid"]))]
    return out


VCPU_FIELDS = (
    ("pid", "i4"), ("tgid", "i4"), ("vm", "i4"), ("vcpu", "i4"), ("comm", "O"),
    ("run_ns", "i8"), ("wait_ns", "i8"), ("sleep_ns", "i8"), ("blocked_ns", "i8"),
    ("other_sleep_ns", "i8"), ("unknown_ns", "i8"), ("steal_pct", "f8"),
    ("switches_in", "i8"), ("inferred_switch_ins", "i8"), ("preemptions", "i8"),
    ("wakeups", "i8"), ("migrations", "i8"),
    ("lat_count", "i8"), ("lat_mean_ns", "f8"), ("lat_p50_ns", "i8"), ("lat_p90_ns", "i8"),
    ("lat_p99_ns", "i8"), ("lat_max_ns", "i8"), ("lat_max_ts", "i8"),
    ("stacked_ns", "i8"), ("cpus_used", "i4"), ("main_cpu", "i4"),
    ("guest_ns", "i8"), ("guest_spans", "i8"), ("guest_edge_ns", "i8"), ("guest_pct", "f8"),
    ("handling_ns", "i8"),
    ("exits", "i8"), ("exits_handled", "i8"), ("exits_switched_out", "i8"),
    ("exits_broken", "i8"), ("halts", "i8"), ("halt_ns", "i8"), ("halts_slept", "i8"),
    ("halts_polled", "i8"), ("wakeup_waits", "i8"), ("wakeup_wait_ns", "i8"),
    ("wakeup_polls", "i8"), ("wakeup_poll_ns", "i8"),
)


@_derived("kvm.vcpu_summary", "start", "end", "cpus")
def vcpu_summary(trace, *, start=None, end=None, cpus=None):
    """One row per vCPU thread (K3-K7), sorted by VM, vCPU index, pid.  Scheduling columns
    are -1 (NaN for floats) when the trace has no sched_switch.  start / end / cpus restrict
    as D10 says; exits count by their kvm_exit line's time and CPU."""
    start, end = _restriction(start, end)
    rk = dict(start=start, end=end, cpus=cpus)
    top = topology(trace)
    pids = top.vcpu_pids
    n = len(pids)
    out = np.zeros(n, dtype=list(VCPU_FIELDS))
    for name, dt in VCPU_FIELDS:
        out[name] = np.nan if dt == "f8" else (-1 if dt != "O" else "")
    out["pid"] = pids
    out["tgid"] = [top.tgid.get(int(p), -1) for p in pids.tolist()]
    out["vm"] = [top.vm_of.get(int(p), -1) for p in pids.tolist()]
    out["vcpu"] = [top.threads[int(p)][1] for p in pids.tolist()]
    out["comm"] = [top.comm(p) for p in pids.tolist()]
    if n and _has_sched(trace):
        s = sched.task_summary(trace, pids=pids, **rk)
        i = np.searchsorted(s["pid"], pids)
        i = np.minimum(i, max(len(s) - 1, 0))
        ok = (s["pid"][i] == pids) if len(s) else np.zeros(n, bool)
        for name in ("run_ns", "wait_ns", "sleep_ns", "blocked_ns", "other_sleep_ns", "unknown_ns",
                     "switches_in", "inferred_switch_ins", "preemptions", "wakeups", "migrations",
                     "lat_count", "lat_mean_ns", "lat_p50_ns", "lat_p90_ns", "lat_p99_ns",
                     "lat_max_ns", "lat_max_ts"):
            out[name] = np.where(ok, s[name][i], out[name])
        rw = out["run_ns"] + out["wait_ns"]
        out["steal_pct"] = np.where(ok & (rw > 0), 100.0 * out["wait_ns"] / np.maximum(rw, 1),
                                    np.where(ok, 0.0, np.nan))
        nb = neighbours(trace, **rk)
        same = np.array([top.vm_of.get(int(a), -1) == top.vm_of.get(int(b), -2)
                         and top.threads[int(b)][0] == ROLE_VCPU
                         for a, b in zip(nb["pid"].tolist(), nb["neighbour_pid"].tolist())], bool)
        out["stacked_ns"] = np.where(ok, _group.sum_by(np.searchsorted(pids, nb["pid"][same]),
                                                       nb["stolen_ns"][same], n), -1)
        pl = placement(trace, **rk)  # the same pids: cached for the callers
        for j, p in enumerate(pids.tolist()):
            r = pl[pl["pid"] == p]
            r = r[r["run_ns"] > 0]
            out["cpus_used"][j] = len(r)
            out["main_cpu"][j] = r["cpu"][np.argmax(r["run_ns"])] if len(r) else -1
    if n and ("kvm_entry" in trace.events or "kvm_exit" in trace.events):
        x = exits(trace).per_vcpu(**rk, pids=pids)
        for name, v in x.items():
            out[name] = v
        run = out["run_ns"]
        out["guest_pct"] = np.where(run > 0, 100.0 * out["guest_ns"] / np.maximum(run, 1), np.nan)
    wk = trace.events.get("kvm_vcpu_wakeup")
    if n and wk is not None and len(wk):
        k = np.isin(wk["pid"], pids) & _group.line_mask(wk["ts"], wk["cpu"], start, end, cpus)
        pi = np.searchsorted(pids, wk["pid"][k])
        waited = wk["waited"][k] == 1
        out["wakeup_waits"] = np.bincount(pi[waited], minlength=n)
        out["wakeup_polls"] = np.bincount(pi[~waited], minlength=n)
        out["wakeup_wait_ns"] = _group.sum_by(pi[waited], wk["ns"][k][waited], n)
        out["wakeup_poll_ns"] = _group.sum_by(pi[~waited], wk["ns"][k][~waited], n)
    if n:
        o = np.lexsort((out["pid"], out["vcpu"], out["vm"]))
        out = out[o]
    return out


@_derived("kvm.placement", "pids", "start", "end", "cpus")
def placement(trace, pids=None, *, start=None, end=None, cpus=None):
    """Run and wait time of each vCPU thread (or of ``pids``) per physical CPU (K5): rows
    (pid, cpu, run_ns, wait_ns)."""
    dt = [("pid", "i4"), ("cpu", "i4"), ("run_ns", "i8"), ("wait_ns", "i8")]
    start, end = _restriction(start, end)
    pids = topology(trace).vcpu_pids if pids is None else np.asarray(pids, np.int64)
    c = _vcpu_intervals(trace, pids, start, end, cpus)
    if c is None:
        return np.zeros(0, dt)
    m = sched.model(trace)
    cols = (np.asarray(c["task"], np.int32), np.asarray(c["state"], np.int8),
            np.asarray(c["start"], np.int64), np.asarray(c["end"], np.int64),
            np.asarray(c["cpu"], np.int32))
    got = _ftsched.place_sums(*cols, m.ntasks, m.ncpus, RUNNING, RUNNABLE)
    if got is None:     # too many vCPU threads times CPUs for one table of sums
        got = _place_by_sort(*cols, m.ncpus)
    task, cpu, run, wait = got
    out = np.zeros(len(task), dt)
    out["pid"], out["cpu"] = m.pids[task], m.cpus[cpu]
    out["run_ns"], out["wait_ns"] = run, wait
    return out


def _place_by_sort(task, st, start, end, cpu, ncpus):
    """_ftsched.place_sums by a sort of the (task, CPU) keys, for any number of them."""
    k = ((st == RUNNING) | (st == RUNNABLE)) & (cpu >= 0)
    nc = max(ncpus, 1)
    uk, inv = _dense(task[k].astype(np.int64) * nc + cpu[k])
    d = (end - start)[k]
    run = st[k] == RUNNING
    return ((uk // nc).astype(np.int32), (uk % nc).astype(np.int32),
            _group.sum_by(inv[run], d[run], len(uk)), _group.sum_by(inv[~run], d[~run], len(uk)))


@_derived("kvm.overcommit", "pids", "bin_ns", "start", "end")
def overcommit(trace, pids=None, bin_ns=None, *, start=None, end=None):
    """The number of vCPU threads (or tasks of ``pids``) RUNNING or RUNNABLE at each instant
    (K5): {"ncpus", "time_by_count": {k: ns}, "mean", "max", "overcommit_ns"} and, with
    ``bin_ns``, "series": (edges, mean count per bin)."""
    start, end = _restriction(start, end)
    top = topology(trace)
    pids = top.vcpu_pids if pids is None else np.asarray(pids, np.int64)
    # the rows of a VM's threads by a mask over every vCPU thread's, not a copy of them
    c, rows = _vcpu_rows(trace, pids, start, end, None)
    ncpus = len(sched.model(trace).cpus) if _has_sched(trace) else len(trace.cpus())
    if c is None:
        return None
    # zero-length intervals change nothing; ends sort before starts at equal times
    st = c["state"]
    k = ((st == RUNNING) | (st == RUNNABLE)) & (c["end"] > c["start"])
    if rows is not None:
        k &= rows
    a, b = c["start"][k], c["end"][k]
    w0, w1 = sched.window(trace)
    w0 = w0 if start is None else min(max(w0, start), w1)
    w1 = w1 if end is None else max(min(w1, end), w0)
    # starts and ends sorted apart (stable: the rows come nearly in time order), then one merged sweep
    # (in place: a and b are copies already; the series below sorts them again)
    a.sort(kind="stable")
    b.sort(kind="stable")
    hist, most = _ftsched.count_sweep(a, b, int(w0), int(w1))
    dur = max(w1 - w0, 0)
    res = {"ncpus": ncpus, "vcpus": len(pids),
           "time_by_count": {k: int(v) for k, v in enumerate(hist.tolist()) if v},
           "mean": float((np.arange(len(hist)) * hist).sum() / dur) if dur else 0.0,
           "max": int(most),
           "overcommit_ns": int(hist[ncpus + 1:].sum())}
    if bin_ns:
        t = np.r_[a, b, w0, w1]
        dlt = np.r_[np.ones(len(a), np.int64), -np.ones(len(a), np.int64), 0, 0]
        # one sort of (time, start after end) keys: ends before starts at equal times
        o = np.argsort((t - t.min()) * 2 + (dlt > 0), kind="stable")
        t, dlt = t[o], dlt[o]
        c = np.cumsum(dlt)[:-1]
        seg = np.diff(t)
        nb = sched.bin_count(dur, bin_ns, limit=10_000_000)
        edges = w0 + int(bin_ns) * np.arange(nb + 1, dtype=np.int64)
        edges[-1] = min(edges[-1], w1) if w1 > w0 else w0 + int(bin_ns)
        # integral of the count up to each edge
        cum = np.r_[0, np.cumsum(c * seg)]
        j = np.clip(np.searchsorted(t, edges, side="right") - 1, 0, len(t) - 1)
        count_at = np.where(j < len(c), c[np.minimum(j, len(c) - 1)], 0)
        area = cum[np.minimum(j, len(cum) - 1)] + count_at * (edges - t[j])
        res["series"] = (edges, np.diff(area) / np.maximum(np.diff(edges), 1))
    return res


@_derived("kvm.io_summary", "start", "end", "cpus")
def io_summary(trace, *, start=None, end=None, cpus=None):
    """I/O (K8): {"threads": rows of QEMU non-vCPU threads, "devices": rows per block device}."""
    start, end = _restriction(start, end)
    top = topology(trace)
    res = {"threads": [], "devices": block_latency(trace, start=start, end=end)}
    io = sorted(p for p, (r, _) in top.threads.items() if r != ROLE_VCPU)
    if not io or not _has_sched(trace):
        return res
    s = sched.task_summary(trace, pids=io, start=start, end=end, cpus=cpus)
    longest = _longest_blocked(trace, s["pid"], start, end)
    for row, (long_ns, long_at) in zip(s, longest):
        p = int(row["pid"])
        res["threads"].append({
            "pid": p, "tgid": int(row["tgid"]), "vm": top.vm_of.get(p, -1), "role": top.threads[p][0],
            "comm": row["comm"], "run_ns": int(row["run_ns"]), "wait_ns": int(row["wait_ns"]),
            "sleep_ns": int(row["sleep_ns"]), "blocked_ns": int(row["blocked_ns"]),
            "blocked_count": int(row["switches_out_D"]), "wakeups": int(row["wakeups"]),
            "longest_blocked_ns": long_ns, "longest_blocked_at": long_at,
        })
    return res


def _longest_blocked(trace, pids, start, end):
    """(length, start or None) of the longest BLOCKED_D interval of each of ``pids`` (the
    first of equal ones; (0, None) without one), within [start, end]."""
    m = sched.model(trace)
    if start is None and end is None:       # kept by the walk
        ti = m.task_index(pids)
        return [(0, None) if d < 0 else (d, a) for d, a in
                zip(m.sums["max_d"][ti].tolist(), m.sums["max_d_at"][ti].tolist())]
    iv = sched.task_intervals(trace, pids=pids, start=start, end=end)
    d = iv[iv["state"] == SLEEP_D]
    out = []
    for p in pids.tolist():
        dd = d[d["pid"] == p]
        i = int(np.argmax(dd["end_ns"] - dd["start_ns"])) if len(dd) else -1
        out.append((int(dd["end_ns"][i] - dd["start_ns"][i]), int(dd["start_ns"][i]))
                   if len(dd) else (0, None))
    return out


@_derived("kvm.block_latency", "start", "end")
def block_latency(trace, *, start=None, end=None):
    """Per block device: issue-to-complete latency of paired requests (K8), for the requests
    issued in [start, end]."""
    start, end = _restriction(start, end)
    ev = trace.events
    iss, com = ev.get("block_rq_issue"), ev.get("block_rq_complete")
    if iss is None or com is None or not len(iss) or not len(com):
        return []
    dev = np.r_[iss["dev_major"].astype(np.int64) << 20 | iss["dev_minor"],
                com["dev_major"].astype(np.int64) << 20 | com["dev_minor"]]
    sec = np.r_[iss["sector"], com["sector"]]
    ts = np.r_[iss["ts"], com["ts"]]
    line = np.r_[iss["line"], com["line"]]
    is_i = np.r_[np.ones(len(iss), bool), np.zeros(len(com), bool)]
    by = np.r_[iss["bytes"], np.zeros(len(com), np.int64)]
    o = np.lexsort((line, ts, sec, dev))
    dev, sec, ts, is_i, by = dev[o], sec[o], ts[o], is_i[o], by[o]
    pair = is_i[:-1] & ~is_i[1:] & (dev[1:] == dev[:-1]) & (sec[1:] == sec[:-1])
    inw = _group.window_mask(ts, start, end)
    pair &= inw[:-1]
    lat = (ts[1:] - ts[:-1])[pair]
    pdev = dev[:-1][pair]
    rows = []
    for d in np.unique(dev).tolist():
        k = pdev == d
        st = latency_stats(lat[k])
        mine = (dev == d) & inw
        rows.append({"device": f"{d >> 20},{d & 0xfffff}", "issued": int((is_i & mine).sum()),
                     "completed": int((~is_i & mine).sum()), "paired": st["count"],
                     "bytes": int(by[is_i & mine].sum()), **{f"latency_{k2}": v for k2, v in st.items()
                                                                   if k2 != "count"}})
    return rows


# ---------------------------------------------------------------------------------------------
# a host's summary (K3-K10): what ``ftfast stats --kvm`` shows

#: vcpu_details' scheduling figures (K3), null without sched_switch
_VCPU_SCHED = ("run_ns", "wait_ns", "sleep_ns", "blocked_ns", "other_sleep_ns", "unknown_ns",
               "switches_in", "inferred_switch_ins", "preemptions", "wakeups", "migrations",
               "stacked_ns")


def _namer(trace, top):
    """pid -> the comm a neighbour is shown with: its QEMU name, else its last name in the
    scheduling model."""
    m = None
    try:
        m = sched.model(trace) if "sched_switch" in trace.events else None
    except ValueError:
        m = None

    def name(p):
        if p == 0:
            return "<idle>"
        if p == -1:
            return "<unknown>"
        c = top.comm(p)
        if not c and m is not None:
            i = m.task_index([p])[0]
            c = m.comm[i] if i >= 0 else ""
        return c
    return name


def _reason_rows(rows):
    """by_reason rows as {group: {reason: figures}}."""
    out = {}
    for r in rows:
        out.setdefault(r["group"], {})[r["reason"]] = {k: v for k, v in r.items()
                                                      if k not in ("group", "reason")}
    return out


def _has_exits(trace):
    return "kvm_exit" in trace.events and len(trace.events["kvm_exit"]) > 0


def vcpu_details(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """One dict per vCPU thread, in :func:`vcpu_summary`'s order, for the threads ``pids``
    and ``comm`` (a regex finding any name the thread had) select: its scheduling (K3, null
    without sched_switch), steal, guest and handling time, exits per reason and in total
    (K6), halts (K7, null without kvm_exit), kvm_vcpu_wakeup counts, wakeup latency, time
    per CPU (K5) and noisy neighbours (K4) by stolen time."""
    start, end = _restriction(start, end)
    rk = dict(start=start, end=end, cpus=cpus)
    top = prepare(trace, _restricted(start, end, cpus))
    vs = vcpu_summary(trace, **rk)
    keep = np.ones(len(vs), bool)
    if pids is not None:
        keep &= np.isin(vs["pid"], np.asarray(pids, np.int64))
    if comm is not None:
        cm = sched.comm_match(trace, comm)
        keep &= np.array([any(cm.name(n) for n in top.names.get(int(p), [""]))
                          for p in vs["pid"].tolist()], bool)
    vs = vs[keep]
    has_x = _has_exits(trace)
    by_vcpu = _reason_rows(exits(trace).by_reason(None, **rk)) if has_x else {}
    nb = neighbours(trace, **rk)
    pl = placement(trace, **rk)
    name = _namer(trace, top)
    rows = []
    for r in _group.records(vs):
        p = r["pid"]
        has_s = r["run_ns"] is not None and r["run_ns"] >= 0
        d = {"pid": p, "tgid": r["tgid"] if r["tgid"] >= 0 else None, "vm": r["vm"],
             "vcpu": r["vcpu"], "comm": r["comm"]}
        for k in _VCPU_SCHED:
            d[k] = r[k] if has_s else None
        d["steal_pct"] = r["steal_pct"]
        for k in ("guest_ns", "guest_edge_ns", "guest_pct", "handling_ns"):
            d[k] = r[k] if has_x else None
        d["exits"] = by_vcpu.get(p, {})
        d["exits_total"] = {k: (r["exits" + s] if has_x else None) for k, s in
                            (("count", ""), ("handled", "_handled"),
                             ("switched_out", "_switched_out"), ("broken", "_broken"))}
        d["halts"] = {"count": r["halts"], "total_ns": r["halt_ns"], "slept": r["halts_slept"],
                      "polled": r["halts_polled"]} if has_x else None
        d["kvm_vcpu_wakeup"] = {"waits": r["wakeup_waits"], "wait_ns": r["wakeup_wait_ns"],
                                "polls": r["wakeup_polls"], "poll_ns": r["wakeup_poll_ns"]} \
            if r["wakeup_waits"] >= 0 else None
        d["wakeup_latency"] = {"count": r["lat_count"], "mean_ns": r["lat_mean_ns"],
                               "p50_ns": r["lat_p50_ns"], "p90_ns": r["lat_p90_ns"],
                               "p99_ns": r["lat_p99_ns"], "max_ns": r["lat_max_ns"],
                               "max_at": r["lat_max_ts"]} if has_s and r["lat_count"] > 0 else None
        mine = pl[pl["pid"] == p]
        d["cpus"] = {str(c): {"run_ns": a, "wait_ns": b} for c, a, b in
                     zip(mine["cpu"].tolist(), mine["run_ns"].tolist(), mine["wait_ns"].tolist())}
        d["main_cpu"] = r["main_cpu"] if r["main_cpu"] >= 0 else None
        nn = nb[nb["pid"] == p]
        agg = {}
        for q, c, st in zip(nn["neighbour_pid"].tolist(), nn["cpu"].tolist(),
                            nn["stolen_ns"].tolist()):
            e = agg.setdefault(q, {"pid": q, "comm": name(q), "stolen_ns": 0, "cpus": [],
                                   "same_vm": top.vm_of.get(q, -2) == r["vm"]})
            e["stolen_ns"] += st
            e["cpus"].append(c)
        d["neighbours"] = sorted(agg.values(), key=lambda e: (-e["stolen_ns"], e["pid"]))
        rows.append(d)
    return rows


def _runnable(oc):
    return None if oc is None else {k: v for k, v in oc.items() if k != "series"}


def vm_summary(trace, *, start=None, end=None, cpus=None, pids=None, comm=None, vcpus=None):
    """One dict per VM (K10), by VM id: its vCPU and other threads, run / wait / guest /
    handling / stacked totals over the vCPU threads ``pids`` and ``comm`` select, exits per
    reason, noisy neighbours and runnable vCPUs.  ``vcpus``: the :func:`vcpu_details` of the
    same restriction, when the caller has it."""
    start, end = _restriction(start, end)
    rk = dict(start=start, end=end, cpus=cpus)
    top = prepare(trace, _restricted(start, end, cpus))
    if vcpus is None:
        vcpus = vcpu_details(trace, pids=pids, comm=comm, **rk)
    vm_exits = {}
    if _has_exits(trace):
        def vm_of(ps):
            u, inv = _dense(ps)          # a few threads: look each up once
            return np.array([top.vm_of.get(int(q), -1) for q in u.tolist()], np.int64)[inv]
        vm_exits = _reason_rows(exits(trace).by_reason(vm_of, **rk))
    vms = []
    for vm, info in sorted(top.vms.items()):
        mine = [d for d in vcpus if d["vm"] == vm]

        def tot(k):
            return sum(d[k] for d in mine) if mine and all(d[k] is not None for d in mine) \
                else None
        agg = {}
        for d in mine:
            for n in d["neighbours"]:
                if n["same_vm"] and n["pid"] in info["vcpus"]:
                    continue
                e = agg.setdefault(n["pid"], {"pid": n["pid"], "comm": n["comm"], "stolen_ns": 0,
                                              "same_vm": n["same_vm"]})
                e["stolen_ns"] += n["stolen_ns"]
        vms.append({"vm": vm, "tgid_known": info["tgid_known"], "vcpus": info["vcpus"],
                    "threads": info["threads"], "run_ns": tot("run_ns"), "wait_ns": tot("wait_ns"),
                    "guest_ns": tot("guest_ns"), "handling_ns": tot("handling_ns"),
                    "exits": vm_exits.get(vm, {}),
                    "stacked_ns": tot("stacked_ns"),
                    "neighbours": sorted(agg.values(), key=lambda e: (-e["stolen_ns"], e["pid"]))[:10],
                    "runnable_vcpus": _runnable(overcommit(trace, info["vcpus"], start=start,
                                                           end=end))})
    return vms


@_derived("kvm.host_summary", "start", "end", "cpus", "pids", "comm")
def host_summary(trace, *, start=None, end=None, cpus=None, pids=None, comm=None):
    """Everything ``ftfast stats --kvm`` shows, as its JSON holds it: {"vms": vm_summary,
    "vcpus": vcpu_details, "threads": the topology's table, "io": io_summary, "runnable_vcpus":
    the overcommit of every vCPU thread}.  ``pids`` / ``comm`` select the vCPU and I/O
    threads; start / end / cpus restrict every figure."""
    start, end = _restriction(start, end)
    rk = dict(start=start, end=end, cpus=cpus)
    top = prepare(trace, _restricted(start, end, cpus))
    # as diagnose, half of it on another thread; here also each VM's overcommit
    _warm(trace, top, start, end, cpus,
          [lambda ps=info["vcpus"]: overcommit(trace, ps, start=start, end=end)
           for info in top.vms.values()])
    vcpus = vcpu_details(trace, pids=pids, comm=comm, **rk)
    vms = vm_summary(trace, pids=pids, comm=comm, vcpus=vcpus, **rk)
    io = dict(io_summary(trace, **rk))      # a copy: io_summary's result is shared
    if pids is not None or comm is not None:
        io["threads"] = [r for r in io["threads"] if (pids is None or r["pid"] in pids) and
                         (comm is None or sched.comm_match(trace, comm).name(r["comm"]))]
    return {"vms": vms, "vcpus": vcpus, "threads": _group.records(top.table()), "io": io,
            "runnable_vcpus": _runnable(overcommit(trace, start=start, end=end))}


# ---------------------------------------------------------------------------------------------
# findings

_SEV = {"high": 3, "medium": 2, "low": 1, "info": 0}


def _sev(value, low, medium, high):
    return "high" if value >= high else "medium" if value >= medium else "low" if value >= low else None


def _subject(top, pid, vcpu_rows=None):
    pid = int(pid)
    d = {"pid": pid, "comm": top.comm(pid), "tgid": top.tgid.get(pid, -1), "vm": top.vm_of.get(pid, -1)}
    if pid in top.threads:
        d["role"] = top.threads[pid][0]
        if d["role"] == ROLE_VCPU:
            d["vcpu"] = top.threads[pid][1]
    return d


class _Figures:
    """What the rules read, for one diagnose call: the trace (one machine), its topology, the
    thresholds, the restriction and the figures several rules share (each computed once)."""

    def __init__(self, whole, trace, th, start, end, cpus):
        self.whole, self.trace, self.th = whole, trace, th
        self.start, self.end = start, end
        self.rk = dict(start=start, end=end, cpus=cpus)
        self.top = prepare(trace, _restricted(start, end, cpus))
        self.unit = trace.time_unit
        self.timed = self.unit == "ns"
        self.has_sched = _has_sched(trace)
        _warm(trace, self.top, start, end, cpus)
        self.vs = vcpu_summary(trace, **self.rk)
        w0, w1 = _window(trace)
        w0 = w0 if start is None else min(max(w0, start), w1)
        w1 = w1 if end is None else max(min(w1, end), w0)
        self.dur = max(w1 - w0, 1)
        self._stolen = {}

    def name_of(self, pid):
        """A neighbour's name: idle, unknown time, or the task's comm."""
        if pid == 0:
            return "idle"
        if pid == -1:
            return "unknown (lost events)"
        if self.top.comm(pid) or not self.has_sched:
            return self.top.comm(pid)
        m = sched.model(self.trace)
        return m.comm[m.task_index([pid])[0]]

    def subject(self, pid):
        return _subject(self.top, pid)

    def judged_vcpus(self):
        """The vCPU rows the vCPU rules judge: with scheduling figures, and (timed clocks) a
        wait of min_wait_ms at least."""
        if not (self.has_sched and len(self.vs)):
            return []
        return [r for r in self.vs if int(r["wait_ns"]) >= 0 and
                not (self.timed and int(r["wait_ns"]) < self.th.min_wait_ms * 1e6)]

    def stolen(self, pid):
        """(the neighbours rows of a vCPU thread, [(neighbour pid, stolen time)] largest first)."""
        if pid not in self._stolen:
            nb = neighbours(self.trace, **self.rk)
            mine = nb[nb["pid"] == pid]
            by = {}
            for q, s in zip(mine["neighbour_pid"].tolist(), mine["stolen_ns"].tolist()):
                by[q] = by.get(q, 0) + s
            self._stolen[pid] = mine, sorted(by.items(), key=lambda kv: -kv[1])
        return self._stolen[pid]

    def duration(self, v):
        return format_duration(v, self.unit)


def _warm(trace, top, start, end, cpus, more=()):
    """Build the vCPU figures diagnose reads: the stolen time and the exit figures on another
    thread (the join, the sorts and most of NumPy run without the GIL) while this one adds up
    the run/wait, placement and overcommit figures, then calls ``more`` (the caller's own
    memoised figures, in the time the other thread still takes).  Nothing when there are no
    vCPU threads to schedule or the figures are there already."""
    rk = dict(start=start, end=end, cpus=cpus)
    if not (_has_sched(trace) and len(top.vcpu_pids)) or vcpu_summary.ready(trace, **rk):
        return
    _intervals(trace, top.vcpu_pids, start, end, cpus)    # the interval columns all of them read
    _window(trace)
    bg = [lambda: neighbours(trace, **rk)]
    if "kvm_exit" in trace.events:
        bg += [lambda: exits(trace).per_vcpu(**rk, pids=top.vcpu_pids),
               lambda: exits(trace).by_reason(None, **rk)]
    join = _background(*bg)
    try:
        sched.task_summary(trace, pids=top.vcpu_pids, **rk)
        placement(trace, **rk)
        overcommit(trace, start=start, end=end)
        for fn in more:
            fn()
    finally:
        join()


def _rule(kind):
    """Declare a rule: a function of the _Figures yielding (severity, score, subject,
    evidence, explanation) for each finding of ``kind``."""
    def declare(fn):
        fn.kind = kind
        return fn
    return declare


@_rule("vcpu_steal")
def _vcpu_steal(fx):
    """A vCPU thread waited steal_pct of its runnable time (K3): low from steal_pct, medium
    from 10%, high from 25%; the evidence names who had its CPU (K4)."""
    th = fx.th
    for r in fx.judged_vcpus():
        p, wait, run = int(r["pid"]), int(r["wait_ns"]), int(r["run_ns"])
        pct = float(r["steal_pct"])
        sev = _sev(pct, th.steal_pct, max(th.steal_pct, 10.0), max(th.steal_pct, 25.0))
        if not sev:
            continue
        tops = fx.stolen(p)[1]
        vm = fx.top.vm_of
        evid = {"run_ns": run, "wait_ns": wait, "steal_pct": round(pct, 1),
                "preemptions": int(r["preemptions"]),
                "neighbours": [{"pid": q, "comm": fx.name_of(q), "stolen_ns": s,
                                "share_pct": round(100.0 * s / wait, 1),
                                "same_vm": vm.get(q, -2) == vm.get(p, -1)} for q, s in tops[:5]]}
        who = ", ".join(f"{fx.name_of(q)} (pid {q}) {100.0 * s / wait:.0f}%" for q, s in tops[:3])
        yield (sev, pct / th.steal_pct, fx.subject(p), evid,
               f"{r['comm']} (pid {p}) waited {pct:.1f}% of its runnable time "
               f"({fx.duration(wait)} runnable vs {fx.duration(run)} running); "
               f"its CPU went to: {who}")


@_rule("overcommit")
def _overcommit(fx):
    """More vCPU threads RUNNING or RUNNABLE than CPUs for overcommit_pct of the window (K5)."""
    if not (fx.has_sched and len(fx.vs)):
        return
    th = fx.th
    oc = overcommit(fx.trace, start=fx.start, end=fx.end)
    if not oc or oc["overcommit_ns"] <= 0:
        return
    pct = 100.0 * oc["overcommit_ns"] / fx.dur
    sev = _sev(pct, th.overcommit_pct, 2 * th.overcommit_pct, 4 * th.overcommit_pct)
    if sev:
        yield (sev, pct / th.overcommit_pct, {"vms": sorted(fx.top.vms)},
               {"ncpus": oc["ncpus"], "vcpus": oc["vcpus"], "overcommit_ns": oc["overcommit_ns"],
                "overcommit_pct": round(pct, 1), "mean_runnable_vcpus": round(oc["mean"], 3),
                "max_runnable_vcpus": oc["max"]},
               f"more vCPU threads were runnable than there are CPUs ({oc['ncpus']}) for "
               f"{pct:.1f}% of the trace (up to {oc['max']} of {oc['vcpus']} at once)")


@_rule("vcpu_stacking")
def _vcpu_stacking(fx):
    """A vCPU thread spent stack_pct of its wait behind vCPU threads of its own VM (K4)."""
    th, top = fx.th, fx.top
    for r in fx.judged_vcpus():
        p, wait, stacked = int(r["pid"]), int(r["wait_ns"]), int(r["stacked_ns"])
        if stacked <= 0 or wait <= 0:
            continue
        spct = 100.0 * stacked / wait
        sev = _sev(spct, th.stack_pct, 2 * th.stack_pct, 4 * th.stack_pct)
        if not sev:
            continue
        mine, tops = fx.stolen(p)
        sib = [(q, s) for q, s in tops if q in top.vm_of and top.vm_of[q] == top.vm_of.get(p)
               and top.threads.get(q, [None])[0] == ROLE_VCPU]
        on = sorted(set(mine["cpu"][np.isin(mine["neighbour_pid"], [q for q, _ in sib])].tolist()))
        yield (sev, spct / th.stack_pct, fx.subject(p),
               {"wait_ns": wait, "stacked_ns": stacked, "stacked_pct": round(spct, 1), "cpus": on,
                "siblings": [{"pid": q, "comm": fx.name_of(q), "vcpu": top.threads[q][1],
                              "stolen_ns": s} for q, s in sib]},
               f"{r['comm']} (pid {p}) spent {spct:.0f}% of its wait ({fx.duration(stacked)}) "
               f"behind vCPUs of its own VM on CPU {', '.join(map(str, on))}: "
               "they share a physical CPU")


@_rule("cpu_imbalance")
def _cpu_imbalance(fx):
    """A CPU busy_pct busy with runnable waiting on it while another idled idle_pct (D2)."""
    if not fx.has_sched:
        return
    th = fx.th
    cs = sched.cpu_summary(fx.trace, **fx.rk)
    tot = cs["busy_ns"] + cs["idle_ns"] + cs["unknown_ns"]
    idle_pct = np.where(tot > 0, 100.0 * cs["idle_ns"] / np.maximum(tot, 1), 0.0)
    if len(cs) < 2 or not (cs["utilization_pct"] >= th.busy_pct).any() or idle_pct.max() < th.idle_pct:
        return
    waits = _runnable_per_cpu(fx.trace, fx.start, fx.end)
    lo = int(np.argmax(idle_pct))
    idle_cpu = int(cs["cpu"][lo])
    for r in cs:
        c = int(r["cpu"])
        if not (r["utilization_pct"] >= th.busy_pct) or idle_cpu == c or waits.get(c, 0) <= 0:
            continue
        wpct = 100.0 * waits[c] / fx.dur
        yield (_sev(wpct, 1, 10, 50) or "low", wpct, {"cpu": c},
               {"utilization_pct": round(float(r["utilization_pct"]), 2), "runnable_wait_ns": waits[c],
                "idle_cpu": idle_cpu, "idle_cpu_idle_pct": round(float(idle_pct[lo]), 2)},
               f"CPU {c} was {r['utilization_pct']:.0f}% busy with {fx.duration(waits[c])} of "
               f"runnable waiting on it while CPU {idle_cpu} idled {idle_pct[lo]:.0f}% of the trace")


def _exit_rows(fx):
    """The exit figures per (vCPU thread, reason) (K6), when there are vCPUs and exits."""
    if not len(fx.vs) or "kvm_exit" not in fx.trace.events:
        return []
    return exits(fx.trace).by_reason(None, **fx.rk)


@_rule("exit_latency")
def _exit_latency(fx):
    """A non-HLT exit reason of a vCPU thread handled in exit_p99_us or more at p99, judged
    from min_exits timed exits (K6; HLT's time is the guest's idle, K7)."""
    th = fx.th
    if not fx.timed:
        return
    for row in _exit_rows(fx):
        p99 = row["p99_ns"]
        if _is_hlt(row["reason"]) or row["handled"] < th.min_exits or p99 is None or \
                not p99 >= th.exit_p99_us * 1e3:
            continue
        p = int(row["group"])
        ratio = p99 / (th.exit_p99_us * 1e3)
        yield (_sev(ratio, 1, 2, 10), ratio, fx.subject(p),
               {k: row[k] for k in ("reason", "count", "handled", "switched_out", "mean_ns", "p50_ns",
                                    "p99_ns", "max_ns", "total_ns")},
               f"{fx.top.comm(p)} (pid {p}): {row['reason']} exits take {fx.duration(p99)} at p99 "
               f"to handle (mean {fx.duration(row['mean_ns'])}, {row['handled']} timed, "
               f"{row['switched_out']} preempted before re-entry)")


@_rule("exit_rate")
def _exit_rate(fx):
    """exit_rate or more exits per second of one reason on one vCPU thread (K9)."""
    th = fx.th
    for row in _exit_rows(fx):
        rate = row["rate_per_s"]
        if rate is None or not rate >= th.exit_rate:
            continue
        p = int(row["group"])
        yield (_sev(rate / th.exit_rate, 1, 2, 5), rate / th.exit_rate, fx.subject(p),
               {k: row[k] for k in ("reason", "count", "rate_per_s", "mean_ns", "p99_ns")},
               f"{fx.top.comm(p)} (pid {p}): {row['count']} {row['reason']} exits, {rate:,.0f}/s")


@_rule("io_blocked")
def _io_blocked(fx):
    """A QEMU I/O thread (not the main thread) blocked (D) io_blocked_ms at a stretch or
    io_blocked_pct of the window in all (K8)."""
    th = fx.th
    for r in io_summary(fx.trace, **fx.rk)["threads"]:
        if r["role"] == ROLE_MAIN:
            continue
        lb = r["longest_blocked_ns"]
        bpct = 100.0 * r["blocked_ns"] / fx.dur
        if not ((fx.timed and lb >= th.io_blocked_ms * 1e6) or bpct >= th.io_blocked_pct):
            continue
        score = max(lb / (th.io_blocked_ms * 1e6) if fx.timed else 0, bpct / th.io_blocked_pct)
        yield (_sev(score, 1, 2, 10), score, fx.subject(r["pid"]),
               {k: r[k] for k in ("blocked_ns", "blocked_count", "longest_blocked_ns", "longest_blocked_at",
                                  "wakeups")} | {"blocked_pct": round(bpct, 1)},
               f"{r['comm']} (pid {r['pid']}) was blocked (D) {bpct:.1f}% of the trace, "
               f"{r['blocked_count']} times, longest {fx.duration(lb)}")


@_rule("block_latency")
def _block_latency(fx):
    """A block device whose issue-to-complete p99 is block_p99_ms or more over 5 requests (K8)."""
    th = fx.th
    if not fx.timed:
        return
    for d in io_summary(fx.trace, **fx.rk)["devices"]:
        p99 = d.get("latency_p99_ns")
        if p99 is None or d["paired"] < 5 or not p99 >= th.block_p99_ms * 1e6:
            continue
        ratio = p99 / (th.block_p99_ms * 1e6)
        yield (_sev(ratio, 1, 2, 10), ratio, {"device": d["device"]},
               {k: d[k] for k in ("issued", "completed", "paired", "latency_mean_ns", "latency_p50_ns",
                                  "latency_p99_ns", "latency_max_ns")},
               f"block device {d['device']}: issue-to-complete p99 {fx.duration(p99)} over "
               f"{d['paired']} requests")


@_rule("vcpu_wakeup_latency")
def _vcpu_wakeup_latency(fx):
    """A vCPU thread's wakeup-to-run latency p99 (D4) at wakeup_p99_us or more, over 10 wakeups."""
    th = fx.th
    if not fx.timed:
        return
    limit = th.wakeup_p99_us * 1e3
    for r in fx.judged_vcpus():
        p, lp99 = int(r["pid"]), int(r["lat_p99_ns"])
        if int(r["lat_count"]) < 10 or not lp99 >= limit:
            continue
        yield (_sev(lp99 / limit, 1, 2, 10), lp99 / limit, fx.subject(p),
               {"count": int(r["lat_count"]), "p50_ns": int(r["lat_p50_ns"]), "p99_ns": lp99,
                "max_ns": int(r["lat_max_ns"]), "max_at_ns": int(r["lat_max_ts"])},
               f"{r['comm']} (pid {p}): wakeup-to-run latency p99 {fx.duration(lp99)}, max "
               f"{fx.duration(r['lat_max_ns'])} ({int(r['lat_count'])} wakeups)")


@_rule("caveat")
def _caveats(fx):
    """What limits the figures: the scheduling caveats, missing events, a tick clock, no vCPU,
    one machine of several."""
    notes = []
    if fx.has_sched:
        notes += sched.caveats(fx.trace)
    elif len(fx.vs):
        notes.append("the trace has no sched_switch events: vCPU run/wait time, neighbours and "
                     "wakeup latency cannot be computed (record sched:sched_switch and "
                     "sched:sched_wakeup)")
    if not fx.timed and not fx.has_sched:
        notes.append(f"the trace clock is '{fx.trace.clock}': times are in ticks, so exit rates and "
                     "the time thresholds do not apply")
    if not len(fx.vs):
        notes.append("no vCPU thread found (no kvm_entry/kvm_exit lines and no 'CPU n/KVM' "
                     "thread): nothing KVM-specific to diagnose")
    if fx.trace is not fx.whole:
        notes.append(_machines.scope_note(fx.whole, fx.trace))
    for text in notes:
        yield "info", 0, {}, {}, text


#: the rules diagnose runs, in the order of their kinds among findings of equal severity: the
#: host scheduler first, then exits, I/O, and the caveats last
RULES = (_vcpu_steal, _overcommit, _vcpu_stacking, _cpu_imbalance, _exit_latency, _exit_rate,
         _io_blocked, _block_latency, _vcpu_wakeup_latency, _caveats)
KINDS = tuple(rule.kind for rule in RULES)


def diagnose(trace, thresholds: Thresholds | None = None, *, start=None, end=None, cpus=None):
    """Ranked findings: a list of dicts {kind, severity, score, subject, evidence,
    explanation}, one per finding of each rule (``RULES``), by severity, then kind (KINDS
    order), then score (how far past its threshold), the most severe first."""
    start, end = _restriction(start, end)
    fx = _Figures(trace, _machines.scoped(trace), thresholds or Thresholds(), start, end, cpus)
    found = [{"kind": rule.kind, "severity": sev, "score": round(float(score), 4),
              "subject": subject, "evidence": evidence, "explanation": text}
             for rule in RULES for sev, score, subject, evidence, text in rule(fx)]
    found.sort(key=lambda f: (-_SEV[f["severity"]], KINDS.index(f["kind"]), -f["score"]))
    return found
