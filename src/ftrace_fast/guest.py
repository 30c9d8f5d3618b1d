"""Host and guest on one time line: what the host did to each guest task.

A host trace (its vCPU threads enter and leave the guest, are preempted, halt) and the trace
of a guest (its tasks run on its CPUs, which are those vCPUs) recorded together (trace-cmd
``record -A``, or two files on one clock) answer a question neither answers alone: when a
guest task was slow, was it the guest's own scheduler, or the host?  Built on the scheduling
analysis (``sched``, D1-D10) of each machine and the KVM topology (``kvm``, K1-K9) of the host.

Definitions (the tests cite them by number)
-------------------------------------------
G1. Roles.  The machines of a load (``machines``, M1) are kept apart.  The host is the machine
    with vCPU threads (K1: kvm_entry/kvm_exit lines or ``CPU n/KVM`` names); every other
    machine is a guest.  Several candidate hosts: the caller names one (``host=``).  Host and
    guest must share a time base (trace-cmd applies the guest's TimeShift in a multi-file
    report; two text files are taken as they are): integer clocks (ticks) are refused.
G2. vCPU mapping.  Guest CPU n runs on the host vCPU thread whose vCPU index (K1) is n.  When
    several threads have index n (several VMs, K2), the one whose guest mode (G3) covers the
    most of guest CPU n's event lines is taken (a guest writes events only while its vCPU is in
    guest mode); the mapping is ``ambiguous`` when no thread has index n, or when the runner-up
    covers at least 90% as many lines as the chosen one.  ``covered_pct`` is the share of CPU
    n's lines inside the host's window that fall in the thread's guest mode (near 100 on a
    consistent pair: a check of the time base).  ``vcpu_map={cpu: pid}`` overrides it.
G3. Host state of a vCPU thread at instant t: its D1 state in the host (sched model); when
    RUNNING, refined by its last kvm_entry or kvm_exit line at or before t (line order on equal
    times): after a kvm_entry ``guest`` (guest mode), after a kvm_exit with reason r
    ``exit:r`` (the host handles the exit, including while it was switched out and back in
    before the next kvm_entry's time), except a HLT exit (K7), after which it is ``halted``:
    the guest idles by its own choice, polled or asleep; RUNNING before any kvm line of the
    thread is ``unknown``.  RUNNABLE is ``steal`` (the host preempted the vCPU or it waits for a host
    CPU), SLEEP_S / SLEEP_D / SLEEP_OTHER is ``halted`` (asleep in the host: a halted vCPU
    not yet woken), UNKNOWN / DEAD / not existing is ``unknown``.  Without host sched_switch
    lines the thread is taken as RUNNING through the host's window, so steal shows as the
    exit being handled.  Outside the host's window (D1 of the host)
    every instant is ``unknown``.
G4. Split of a guest running slice (a RUNNING interval of D1/D9 in the guest, on guest CPU n):
    its overlap with each host state of vCPU(n) (G2, G3): guest_ns + exit_ns + steal_ns +
    halted_ns + unknown_ns = its run time, exactly; exit_ns is also split by reason.  A CPU
    with no mapped thread is all unknown.  guest_pct etc. are shares of the run time.
G5. Per guest task and guest CPU: the sums of G4 over its slices on that CPU (``task_split``);
    restrictions (start/end, pids/comm) are those of D10 for the guest's slices.
G6. Guest wakeup latency (D4, from sched_wakeup or sched_waking, on the CPU the task was
    switched in on): each sample [wakeup, switch-in) is split by vCPU(n)'s host state the same
    way: guest_side_ns (guest mode: the guest's own scheduling delay) and host_side_ns =
    host_wait_ns (steal: the vCPU waited for a host CPU) + host_halted_ns (the vCPU was asleep
    in the host, not yet woken) + host_exit_ns (handling exits); unknown_ns apart.  The parts
    add up to the sample.
G7. Finding ``guest_host_loss``: a guest task on a vCPU whose lost time (``lost_ns`` = steal +
    exit time; halted time is the guest's own idling) is at least
    ``GUEST_LOSS_PCT`` (10%) of its run time there and ``GUEST_LOSS_MS`` (1 ms) in all.
"""

from __future__ import annotations

import numpy as np

from . import _group, kvm, sched

UNKNOWN, GUEST, STEAL, HALTED, EXIT = 0, 1, 2, 3, 4
STATE_NAMES = ("unknown", "guest", "steal", "halted")
_BIG = np.iinfo(np.int64).max // 2

#: G7's thresholds: a share of a guest task's run time on one vCPU, and a least time
GUEST_LOSS_PCT = 10.0
GUEST_LOSS_MS = 1.0

#: the events the correlation reads on each machine
USED_EVENTS = kvm.USED_EVENTS


def _has_vcpus(t):
    ev = t.events
    if ev.get("kvm_entry") is not None and len(ev["kvm_entry"]) or \
            ev.get("kvm_exit") is not None and len(ev["kvm_exit"]):
        return True
    return any(kvm._VCPU_NAME.match(c) for c in t.comms) and len(kvm.topology(t).vcpu_pids) > 0


def roles(trace, host=None):
    """(host name, [guest names]) of a load of several machines (G1)."""
    ms = trace.machines
    if host is not None:
        if host not in ms:
            raise ValueError(f"no machine {host!r} (machines: {', '.join(ms)})")
        return host, [n for n in ms if n != host]
    hosts = [n for n, t in ms.items() if _has_vcpus(t)]
    if not hosts:
        raise ValueError(f"{trace.source}: no machine has vCPU threads (kvm_entry/kvm_exit lines or "
                         "'CPU n/KVM' threads): no host to correlate with")
    if len(hosts) > 1:
        raise ValueError(f"{trace.source}: several machines have vCPU threads ({', '.join(hosts)}): "
                         "name the host (guest.correlate(trace, host=NAME))")
    return hosts[0], [n for n in ms if n != hosts[0]]


class HostStates:
    """G3 for the vCPU threads of a host: one partition of the time line per thread."""

    def __init__(self, host):
        self.trace = host
        self.has_sched = "sched_switch" in host.events and len(host.events["sched_switch"]) > 0
        if self.has_sched:
            self.window = sched.window(host)
        else:
            self.window = host.span or (0, 0)
        self.reasons = list(host.symbols) + ["?"]
        self._segs = {}
        # each vCPU thread's kvm lines, in (ts, line) order, once
        ts, line, pid, code = [], [], [], []
        for name in ("kvm_entry", "kvm_exit"):
            a = host.events.get(name)
            if a is None or not len(a):
                continue
            k = a["ts"] >= 0
            ts.append(a["ts"][k])
            line.append(a["line"][k])
            pid.append(a["pid"][k].astype(np.int64))
            if name == "kvm_entry":
                code.append(np.full(int(k.sum()), GUEST, np.int64))
            else:
                r = a["reason"][k].astype(np.int64)
                hlt = np.isin(r, [i for i, s in enumerate(host.symbols) if kvm._is_hlt(s)])
                code.append(np.where(hlt, HALTED, EXIT + np.where(r >= 0, r, len(host.symbols))))
        if ts:
            ts, line, pid, code = (np.concatenate(x) for x in (ts, line, pid, code))
            o = np.lexsort((line, ts, pid))
            self._kts, self._kpid, self._kcode = ts[o], pid[o], code[o]
        else:
            self._kts = self._kpid = self._kcode = np.zeros(0, np.int64)

    def reason_name(self, code):
        return self.reasons[int(code) - EXIT]

    def segments(self, pid):
        """(lo, hi, code): thread ``pid``'s states as a partition of the whole time line."""
        pid = int(pid)
        got = self._segs.get(pid)
        if got is not None:
            return got
        w0, w1 = self.window
        a, b = np.searchsorted(self._kpid, [pid, pid + 1])
        kts, kcode = self._kts[a:b], self._kcode[a:b]
        if self.has_sched:
            iv = sched.task_intervals(self.trace, pids=[pid])
            iv = iv[iv["end_ns"] > iv["start_ns"]]
            iv = iv[np.argsort(iv["start_ns"], kind="stable")]
            st = iv["state"].astype(np.int64)
            sv = np.select([st == sched.RUNNING, st == sched.RUNNABLE,
                            np.isin(st, (sched.SLEEP_S, sched.SLEEP_D, sched.SLEEP_OTHER))],
                           [-1, STEAL, HALTED], UNKNOWN)
            # a gap between two intervals (the thread did not exist) is unknown: the ends
            # first, so that a start at the same time wins
            sb = np.concatenate([iv["end_ns"], iv["start_ns"]])
            sv = np.concatenate([np.full(len(iv), UNKNOWN, np.int64), sv])
            o = np.argsort(sb, kind="stable")
            sb, sv = sb[o], sv[o]
        else:
            sb = np.array([w0], np.int64)
            sv = np.array([-1], np.int64)
        bounds = np.unique(np.concatenate([sb, kts, [w0, w1]]))
        i = np.searchsorted(sb, bounds, side="right") - 1
        s = np.where(i >= 0, sv[np.maximum(i, 0)], UNKNOWN)
        j = np.searchsorted(kts, bounds, side="right") - 1
        k = np.where(j >= 0, kcode[np.maximum(j, 0)] if len(kcode) else UNKNOWN, UNKNOWN)
        code = np.where(s == -1, k, s)
        code[(bounds < w0) | (bounds >= w1)] = UNKNOWN
        lo = np.concatenate([[-_BIG], bounds])
        code = np.concatenate([[UNKNOWN], code])
        keep = np.r_[True, code[1:] != code[:-1]]
        lo, code = lo[keep], code[keep]
        hi = np.r_[lo[1:], _BIG]
        got = self._segs[pid] = (lo, hi, code)
        return got

    def code_at(self, pid, ts):
        lo, _, code = self.segments(pid)
        return code[np.searchsorted(lo, ts, side="right") - 1]


def _pieces(lo, hi, code, a, b):
    """Overlaps of intervals [a, b) with the partition (lo, hi, code): (interval index,
    code, ns) per overlapping piece (G4)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    i0 = np.searchsorted(hi, a, side="right")
    i1 = np.searchsorted(lo, b, side="left")
    n = np.maximum(i1 - i0, 0)
    n[b <= a] = 0
    tot = int(n.sum())
    iv = np.repeat(np.arange(len(a)), n)
    si = np.repeat(i0, n) + (np.arange(tot) - np.repeat(np.cumsum(n) - n, n))
    ns = np.minimum(b[iv], hi[si]) - np.maximum(a[iv], lo[si])
    return iv, code[si], ns


_SPLIT = [("guest_ns", "i8"), ("exit_ns", "i8"), ("steal_ns", "i8"), ("halted_ns", "i8"),
          ("unknown_ns", "i8")]


class Correlation:
    """The correlation of one guest with its host (G1-G6)."""

    def __init__(self, host, guest, *, host_name="host", guest_name="guest", vcpu_map=None):
        for t in (host, guest):
            if t.time_unit != "ns":
                raise ValueError(f"{t.source} ({t.machine}): clock '{t.clock}' counts ticks: host and "
                                 "guest times cannot be compared (G1)")
        self.host, self.guest = host, guest
        self.host_name, self.guest_name = host_name, guest_name
        self.states = HostStates(host)
        self.top = kvm.topology(host)
        self.gm = sched.model(guest)
        self.mapping = self._mapping(vcpu_map)
        self._cpu_pid = {int(r["guest_cpu"]): int(r["host_pid"]) for r in self.mapping
                         if r["host_pid"] > 0}

    # -- G2 -------------------------------------------------------------------------------
    def _guest_lines(self, cpu):
        ts = [a["ts"][(a["cpu"] == cpu) & (a["ts"] >= 0)] for n, a in self.guest.events.items()
              if n != "stack_frame" and len(a)]
        return np.concatenate(ts) if ts else np.zeros(0, np.int64)

    def _coverage(self, pid, ts):
        """(lines in guest mode, lines inside the host's window) of guest line times ``ts``."""
        w0, w1 = self.states.window
        ts = ts[(ts >= w0) & (ts < w1)]
        return int((self.states.code_at(pid, ts) == GUEST).sum()), len(ts)

    def _mapping(self, vcpu_map):
        top = self.top
        cpus = [int(c) for c in self.gm.cpus]
        by_index = {}
        for p, (role, v) in top.threads.items():
            if role == kvm.ROLE_VCPU:
                by_index.setdefault(v, []).append(p)
        rows = []
        for c in cpus:
            ts = self._guest_lines(c)
            if vcpu_map and c in vcpu_map:
                cands, how = [int(vcpu_map[c])], "given"
            else:
                cands, how = sorted(by_index.get(c, [])), "vcpu index"
            scored = sorted(((self._coverage(p, ts), p) for p in cands),
                            key=lambda x: (-x[0][0], x[1]))
            if not scored:
                rows.append((c, -1, -1, "", how, True, 0.0, 0))
                continue
            (hit, inside), p = scored[0]
            ambiguous = how != "given" and len(scored) > 1 and scored[1][0][0] >= 0.9 * hit
            if len(scored) > 1 and how != "given":
                how = "vcpu index, most guest lines in guest mode"
            rows.append((c, p, top.threads.get(p, [None, -1])[1], top.comm(p), how, ambiguous,
                         100.0 * hit / inside if inside else 0.0, len(scored)))
        return np.array(rows, dtype=[("guest_cpu", "i4"), ("host_pid", "i8"), ("vcpu", "i4"),
                                     ("host_comm", "O"), ("how", "O"), ("ambiguous", "?"),
                                     ("covered_pct", "f8"), ("candidates", "i4")])

    # -- G4 / G5 --------------------------------------------------------------------------
    def _split(self, cpu_idx, a, b):
        """Per-row G4 sums and the exit time by (row, reason code) of intervals [a, b) on
        guest CPU indices cpu_idx."""
        n = len(a)
        out = {k: np.zeros(n, np.int64) for k, _ in _SPLIT}
        rows_x, codes_x, ns_x = [], [], []
        cpus = self.gm.cpus
        for ci in np.unique(cpu_idx).tolist():
            rows = np.flatnonzero(cpu_idx == ci)
            pid = self._cpu_pid.get(int(cpus[ci])) if ci >= 0 else None
            if pid is None:
                out["unknown_ns"][rows] += b[rows] - a[rows]
                continue
            lo, hi, code = self.states.segments(pid)
            iv, c, ns = _pieces(lo, hi, code, a[rows], b[rows])
            r = rows[iv]
            for key, m in (("guest_ns", c == GUEST), ("steal_ns", c == STEAL),
                           ("halted_ns", c == HALTED), ("unknown_ns", c == UNKNOWN),
                           ("exit_ns", c >= EXIT)):
                out[key] += _group.sum_by(r[m], ns[m], n)
            m = c >= EXIT
            rows_x.append(r[m])
            codes_x.append(c[m])
            ns_x.append(ns[m])
        if rows_x:
            rx, cx, nx = (np.concatenate(x) for x in (rows_x, codes_x, ns_x))
        else:
            rx = cx = nx = np.zeros(0, np.int64)
        return out, (rx, cx, nx)

    def _run_slices(self, start=None, end=None, pids=None, comm=None):
        m = self.gm
        c = sched.interval_columns(m, start=sched._time_arg(start, "start"),
                                   end=sched._time_arg(end, "end"), pids=pids, comm=comm)
        k = (c["state"] == sched.RUNNING) & (c["cpu"] >= 0)
        return c["task"][k], c["cpu"][k], c["start"][k], c["end"][k]

    def slice_split(self, **kw):
        """One row per guest running slice (G4): pid, comm, cpu, start_ns, end_ns, run_ns
        and its split, in time order."""
        task, ci, a, b = self._run_slices(**kw)
        o = np.lexsort((task, a))
        task, ci, a, b = task[o], ci[o], a[o], b[o]
        s, _ = self._split(ci, a, b)
        out = np.zeros(len(a), [("pid", "i4"), ("comm", "O"), ("cpu", "i4"), ("start_ns", "i8"),
                                ("end_ns", "i8"), ("run_ns", "i8")] + _SPLIT)
        out["pid"] = self.gm.pids[task]
        out["comm"] = self.gm.comm[task]
        out["cpu"] = self.gm.cpus[ci]
        out["start_ns"], out["end_ns"], out["run_ns"] = a, b, b - a
        for k in s:
            out[k] = s[k]
        return out

    def task_split(self, **kw):
        """One row per (guest task, guest CPU) (G5): pid, comm, cpu, host_pid, slices,
        run_ns, the G4 sums, their shares of run_ns (``*_pct``) and the exit reason with the
        most time (``top_exit``, ``top_exit_ns``); by lost (steal + exit) time, most first."""
        task, ci, a, b = self._run_slices(**kw)
        s, (rx, cx, nx) = self._split(ci, a, b)
        key = task.astype(np.int64) * (len(self.gm.cpus) + 1) + ci
        u, g = _group.dense(key)
        ng = len(u)
        cols = {k: _group.sum_by(g, v, ng) for k, v in s.items()}
        run = _group.sum_by(g, b - a, ng)
        slices = np.bincount(g, minlength=ng)
        # the reason with the most exit time per group
        top_code = np.full(ng, -1, np.int64)
        top_ns = np.zeros(ng, np.int64)
        if len(rx):
            gk = g[rx] * (len(self.states.reasons) + EXIT) + cx
            uk, inv = _group.dense(gk)
            tot = _group.sum_by(inv, nx, len(uk))
            grp, code = uk // (len(self.states.reasons) + EXIT), uk % (len(self.states.reasons) + EXIT)
            o = np.lexsort((code, -tot, grp))
            first = np.r_[True, grp[o][1:] != grp[o][:-1]]
            top_code[grp[o][first]] = code[o][first]
            top_ns[grp[o][first]] = tot[o][first]
        tk, ck = u // (len(self.gm.cpus) + 1), u % (len(self.gm.cpus) + 1)
        out = np.zeros(ng, [("pid", "i4"), ("comm", "O"), ("cpu", "i4"), ("host_pid", "i8"),
                            ("slices", "i8"), ("run_ns", "i8")] + _SPLIT +
                       [("guest_pct", "f8"), ("exit_pct", "f8"), ("steal_pct", "f8"),
                        ("halted_pct", "f8"), ("unknown_pct", "f8"), ("lost_ns", "i8"),
                        ("lost_pct", "f8"), ("top_exit", "O"), ("top_exit_ns", "i8")])
        out["pid"] = self.gm.pids[tk]
        out["comm"] = self.gm.comm[tk]
        out["cpu"] = self.gm.cpus[ck]
        out["host_pid"] = [self._cpu_pid.get(int(c), -1) for c in out["cpu"].tolist()]
        out["slices"], out["run_ns"] = slices, run
        den = np.maximum(run, 1)
        for k in cols:
            out[k] = cols[k]
            out[k.replace("_ns", "_pct")] = 100.0 * cols[k] / den
        out["lost_ns"] = cols["steal_ns"] + cols["exit_ns"]
        out["lost_pct"] = 100.0 * out["lost_ns"] / den
        out["top_exit"] = [self.states.reason_name(c) if c >= EXIT else "" for c in top_code.tolist()]
        out["top_exit_ns"] = top_ns
        return out[np.lexsort((out["cpu"], out["pid"], -out["lost_ns"]))]

    def exit_split(self, **kw):
        """Exit time under guest tasks by (pid, cpu, reason): count of pieces is not a count
        of exits (an exit can span two slices), so only the time is given."""
        task, ci, a, b = self._run_slices(**kw)
        _, (rx, cx, nx) = self._split(ci, a, b)
        nc = len(self.states.reasons) + EXIT
        key = (task[rx].astype(np.int64) * (len(self.gm.cpus) + 1) + ci[rx]) * nc + cx
        u, inv = _group.dense(key)
        tot = _group.sum_by(inv, nx, len(u))
        code, tc = u % nc, u // nc
        tk, ck = tc // (len(self.gm.cpus) + 1), tc % (len(self.gm.cpus) + 1)
        out = np.zeros(len(u), [("pid", "i4"), ("comm", "O"), ("cpu", "i4"), ("reason", "O"),
                                ("exit_ns", "i8")])
        out["pid"], out["comm"], out["cpu"] = self.gm.pids[tk], self.gm.comm[tk], self.gm.cpus[ck]
        out["reason"] = [self.states.reason_name(c) for c in code.tolist()]
        out["exit_ns"] = tot
        return out[np.lexsort((out["reason"].astype(str), out["cpu"], out["pid"], -out["exit_ns"]))]

    # -- G6 -------------------------------------------------------------------------------
    def latency_split(self, source="wakeup", **kw):
        """Every guest wakeup-latency sample (D4) with its G6 split: pid, comm, ts, cpu,
        latency_ns, guest_side_ns, host_side_ns, host_wait_ns, host_halted_ns, host_exit_ns,
        unknown_ns."""
        lat = sched.wakeup_latencies(self.guest, source=source, **kw)
        ci = self.gm._cids(lat["cpu"])
        s, _ = self._split(np.asarray(ci), lat["ts"], lat["switch_ts"])
        out = np.zeros(len(lat), [("pid", "i4"), ("comm", "O"), ("ts", "i8"), ("cpu", "i4"),
                                  ("latency_ns", "i8"), ("guest_side_ns", "i8"),
                                  ("host_side_ns", "i8"), ("host_wait_ns", "i8"),
                                  ("host_halted_ns", "i8"), ("host_exit_ns", "i8"),
                                  ("unknown_ns", "i8")])
        out["pid"], out["ts"], out["cpu"], out["latency_ns"] = lat["pid"], lat["ts"], lat["cpu"], \
            lat["latency_ns"]
        ti = self.gm.task_index(lat["pid"])
        out["comm"] = self.gm.comm[ti] if len(ti) else []
        out["guest_side_ns"] = s["guest_ns"]
        out["host_wait_ns"] = s["steal_ns"]
        out["host_halted_ns"] = s["halted_ns"]
        out["host_exit_ns"] = s["exit_ns"]
        out["host_side_ns"] = s["steal_ns"] + s["halted_ns"] + s["exit_ns"]
        out["unknown_ns"] = s["unknown_ns"]
        return out

    def latency_summary(self, source="wakeup", **kw):
        """Per guest task: samples, latency sums and their G6 split, and p99 of the samples
        with its host share; by host_side_ns, most first."""
        ls = self.latency_split(source, **kw)
        u, g = _group.dense(ls["pid"])
        out = np.zeros(len(u), [("pid", "i4"), ("comm", "O"), ("samples", "i8"),
                                ("latency_ns", "i8"), ("guest_side_ns", "i8"),
                                ("host_side_ns", "i8"), ("host_wait_ns", "i8"),
                                ("host_halted_ns", "i8"), ("host_exit_ns", "i8"),
                                ("unknown_ns", "i8"), ("host_side_pct", "f8"),
                                ("max_ns", "i8"), ("max_host_side_ns", "i8")])
        out["pid"] = u
        ti = self.gm.task_index(u)
        out["comm"] = self.gm.comm[ti] if len(u) else []
        out["samples"] = np.bincount(g, minlength=len(u))
        for k in ("latency_ns", "guest_side_ns", "host_side_ns", "host_wait_ns", "host_halted_ns",
                  "host_exit_ns", "unknown_ns"):
            out[k] = _group.sum_by(g, ls[k], len(u))
        out["host_side_pct"] = 100.0 * out["host_side_ns"] / np.maximum(out["latency_ns"], 1)
        if len(ls):
            o = np.lexsort((ls["ts"], -ls["latency_ns"], g))
            first = np.r_[True, g[o][1:] != g[o][:-1]]
            out["max_ns"][g[o][first]] = ls["latency_ns"][o][first]
            out["max_host_side_ns"][g[o][first]] = ls["host_side_ns"][o][first]
        return out[np.lexsort((out["pid"], -out["host_side_ns"]))]


def correlate(trace, *, host=None, guest=None, vcpu_map=None):
    """{guest name: Correlation} of a load of several machines (G1), or one Correlation when
    ``guest`` is named."""
    if not hasattr(trace, "machines") or len(trace.machines) < 2:
        raise ValueError(f"{getattr(trace, 'source', trace)}: one machine: the host/guest correlation "
                         "needs a host and a guest trace (a multi-file trace-cmd report, or "
                         "load([host, guest]))")
    h, guests = roles(trace, host)
    ms = trace.machines
    if guest is not None:
        if guest not in ms or guest == h:
            raise ValueError(f"no guest machine {guest!r} (guests: {', '.join(guests)})")
        guests = [guest]
    out = {}
    for g in guests:
        gt = ms[g]
        if "sched_switch" not in gt.events:
            continue
        out[g] = _cached(trace, h, g, vcpu_map)
    if guest is not None:
        if guest not in out:
            raise ValueError(f"{guest}: no sched_switch events in the guest: nothing to split")
        return out[guest]
    return out


def _cached(trace, h, g, vcpu_map):
    key = (h, g, tuple(sorted((vcpu_map or {}).items())))
    ms = trace.machines
    return trace.derived("guest.correlation", key, lambda: Correlation(
        ms[h], ms[g], host_name=h, guest_name=g, vcpu_map=vcpu_map))


def findings(trace, *, min_pct=GUEST_LOSS_PCT, min_ms=GUEST_LOSS_MS, start=None, end=None):
    """G7: {kind, severity, score, subject, evidence, explanation} dicts, like kvm.diagnose."""
    found = []
    try:
        corr = correlate(trace)
    except ValueError:
        return found
    for gname, c in corr.items():
        ts = c.task_split(start=start, end=end)
        for r in ts:
            lost, run = int(r["lost_ns"]), int(r["run_ns"])
            pct = float(r["lost_pct"])
            if run <= 0 or lost < min_ms * 1e6 or pct < min_pct:
                continue
            sev = kvm._sev(pct, min_pct, 2 * min_pct, 4 * min_pct)
            top = f" (mostly {r['top_exit']})" if r["top_exit"] else ""
            v = int(c.mapping["vcpu"][c.mapping["guest_cpu"] == r["cpu"]][0]) \
                if (c.mapping["guest_cpu"] == r["cpu"]).any() else int(r["cpu"])
            found.append({
                "kind": "guest_host_loss", "severity": sev, "score": round(pct / min_pct, 4),
                "subject": {"machine": gname, "pid": int(r["pid"]), "comm": r["comm"],
                            "cpu": int(r["cpu"]), "vcpu": v, "host": c.host_name,
                            "host_pid": int(r["host_pid"])},
                "evidence": {k: (int(r[k]) if k.endswith("_ns") else round(float(r[k]), 1))
                             for k in ("run_ns", "guest_ns", "exit_ns", "steal_ns", "halted_ns",
                                       "unknown_ns", "lost_ns", "lost_pct", "top_exit_ns")}
                | {"top_exit": r["top_exit"]},
                "explanation": f"guest task {r['comm']} (pid {int(r['pid'])}, {gname}) on vCPU {v} lost "
                               f"{lost / 1e6:.3f} ms ({pct:.1f}%) of its running time to the host: "
                               f"{int(r['steal_ns']) / 1e6:.3f} ms to host steal, "
                               f"{int(r['exit_ns']) / 1e6:.3f} ms to exits{top}"})
    return found
