"""A host and a guest trace of the same run, with the exact truth of the host/guest split.

The guest has ``nvcpu`` CPUs; guest CPU v runs on the host thread ``CPU v/KVM``, pinned to
host CPU v, which it shares with a host task ``noise/v``.  Each guest CPU runs two guest tasks
(bursts, timer sleeps) and its idle task.  The vCPU alternates guest-mode spans with what the
host does to it: exits of a reason handled in the host, exits followed by a preemption of the
thread by ``noise/v`` (steal) and its return, and, when the guest idles, HLT exits that are
polled or slept in the host (the thread switched out, woken later, maybe waiting behind
``noise/v``).  Guest lines are written only while their vCPU is in guest mode (a guest runs
only then); a guest task on CPU v >= 1 may be woken from guest CPU 0 while CPU v's vCPU sleeps
in the host, so its wakeup latency holds host halt time.

Both traces share one time base (ns, 9-digit fractions); the host trace starts at T0 with a
switch-in of every vCPU thread (unknown until its first kvm line, G3), the guest 50 µs before
(unknown: outside the host's window), and the guest ends 40 µs after the host (unknown again).

The truth is recorded as the run is made (what each vCPU *did*, span by span), not read back
from the lines, and follows ``ftrace_fast.guest`` G3-G6.

Usage::

    sim = simguest.simulate(seed=1)
    sim.merged_text()                 # `trace-cmd report -i trace.dat -i trace-guest.dat` form
    sim.host_text(), sim.guest_text() # the two files
    sim.truth_split(pid, cpu)         # {"guest": ns, "steal": ns, ..., "exit:REASON": ns}
"""

from __future__ import annotations

import bisect
import random

REASONS = ("EPT_MISCONFIG", "EPT_VIOLATION", "MSR_WRITE", "IO_INSTRUCTION", "APIC_WRITE")
UNKNOWN, GUEST, STEAL, HALTED = "unknown", "guest", "steal", "halted"
T0 = 5_000_000_000_000      # 5000 s: the host's first line
QEMU = 4000


class Sim:
    def __init__(self, seed=0, nvcpu=2, duration_ns=30_000_000):
        self.rng = random.Random(seed)
        self.nvcpu = nvcpu
        self.g0 = T0 - 50_000
        self.t1 = T0 + duration_ns
        self.g1 = self.t1 + 40_000
        self.host = []      # (ts, seq, cpu, pid, comm, event, payload)
        self.guest = []
        self.seq = 0
        self.segs = {v: [] for v in range(nvcpu)}      # v -> [(lo, hi, category, reason)]
        self.runs = []      # guest running slices: (pid, cpu, lo, hi)
        self.lat = []       # guest wakeup samples: (pid, wakeup ts, switch-in ts, cpu)
        self.guest_spans = {v: [] for v in range(nvcpu)}
        self.cur_hist = {v: [] for v in range(nvcpu)}  # (from ts, pid) of guest CPU v
        self.comm = {0: "<idle>"}
        self.tasks = {}
        self.woken_remotely = None
        self.remote_wakeups = 0
        for v in range(nvcpu):
            for k in range(2):
                pid = 100 + 10 * v + k
                self.comm[pid] = f"app{v}.{k}"
                self.tasks[pid] = {"cpu": v, "state": "sleep", "wake_at": None, "woke_ts": None,
                                   "burst_end": None, "remote": v >= 1 and k == 1}
        for v in range(nvcpu):
            self._run_vcpu(v)

    # -- lines ------------------------------------------------------------------------------
    def _h(self, ts, cpu, pid, event, payload):
        self.seq += 1
        comm = f"CPU {cpu}/KVM" if pid == QEMU + 1 + cpu else f"noise/{cpu}" if pid == 5000 + cpu \
            else "<idle>"
        self.host.append((ts, self.seq, cpu, pid, comm, event, payload))

    def _g(self, ts, cpu, pid, event, payload):
        self.seq += 1
        self.guest.append((ts, self.seq, cpu, pid, self.comm[pid], event, payload))

    @staticmethod
    def _switch(pc, pp, state, nc, np_):
        return (f"prev_comm={pc} prev_pid={pp} prev_prio=120 prev_state={state} ==> "
                f"next_comm={nc} next_pid={np_} next_prio=120")

    def _seg(self, v, lo, hi, cat, reason=""):
        if hi > lo:
            self.segs[v].append((lo, hi, cat, reason))

    # -- one vCPU ---------------------------------------------------------------------------
    def _run_vcpu(self, v):
        rng = self.rng
        h, noise = QEMU + 1 + v, 5000 + v
        hc = f"CPU {v}/KVM"
        mine = [p for p, t in self.tasks.items() if t["cpu"] == v]
        # the guest: its first task runs from g0 (the guest's first line on every CPU)
        cur = mine[0]
        self._g(self.g0, v, 0, "sched_switch", self._switch("swapper/%d" % v, 0, "R", self.comm[cur], cur))
        self.cur_hist[v].append((self.g0, cur))
        self.tasks[cur].update(state="run", burst_end=self.g0 + rng.randint(100_000, 900_000))
        run_from = self.g0
        other = mine[1]
        self.tasks[other].update(state="sleep", wake_at=T0 + rng.randint(50_000, 400_000))
        # the host: the vCPU thread switched in at T0, enters the guest a little later
        self._h(T0, v, 0, "sched_switch", self._switch("swapper/%d" % v, 0, "R", hc, h))
        t = T0 + rng.randint(500, 3000)
        self._seg(v, T0, t, UNKNOWN)
        rip = 0xffffffff81000000 + v * 0x1000

        def entry(ts):
            self._h(ts, v, h, "kvm_entry", f"vcpu {v}, rip 0x{rip:x}")

        def exit_(ts, reason):
            self._h(ts, v, h, "kvm_exit", f"vcpu {v} reason {reason} rip 0x{rip:x} info1 0x0000000000000000 "
                    "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000")

        entry(t)
        runnable = []     # guest tasks woken and waiting on this CPU
        while True:
            span = rng.randint(20_000, 200_000)
            end = min(t + span, self.t1)
            self._seg(v, t, end, GUEST)
            self.guest_spans[v].append((t, end))
            # guest actions at one or two instants inside the span
            n_act = 2 if end - t > 10_000 else 0
            for a in sorted(rng.sample(range(t + 1000, end - 1000), n_act)) if n_act else []:
                cur, run_from = self._guest_act(v, a, cur, run_from, runnable)
            if end >= self.t1:
                break
            t = end
            idle = cur == 0 and not runnable
            late = t > self.t1 - 300_000      # the last spans: short exits only
            if idle and not late:
                t = self._halt(v, t, h, hc, noise, entry, exit_)
                if self.woken_remotely is not None:
                    runnable.append(self.woken_remotely)
                    self.woken_remotely = None
            elif rng.random() < 0.35 and not late:
                # exit + preemption by the host task: steal
                exit_(t, "EXTERNAL_INTERRUPT")
                d1 = t + rng.randint(1_000, 5_000)
                self._seg(v, t, d1, "exit", "EXTERNAL_INTERRUPT")
                self._h(d1, v, h, "sched_switch", self._switch(hc, h, "R", f"noise/{v}", noise))
                back = d1 + rng.randint(5_000, 120_000)
                self._seg(v, d1, back, STEAL)
                self._h(back, v, noise, "sched_switch", self._switch(f"noise/{v}", noise, "S", hc, h))
                t = back + rng.randint(500, 4_000)
                self._seg(v, back, t, "exit", "EXTERNAL_INTERRUPT")
                entry(t)
            else:
                reason = rng.choice(REASONS)
                exit_(t, reason)
                e = t + rng.randint(300, 30_000)
                self._seg(v, t, e, "exit", reason)
                t = e
                entry(t)
        # the end of the host's lines (in guest mode) and of the guest's: t1 and g1 on every CPU
        self._h(self.t1, v, h, "hrtimer_expire_entry", "hrtimer=0x1 function=tick")
        self._g(self.g1, v, cur, "hrtimer_expire_entry", "hrtimer=0x1 function=tick")
        if cur:
            self.runs.append((cur, v, run_from, self.g1))

    def _guest_act(self, v, a, cur, run_from, runnable):
        rng = self.rng
        tasks = self.tasks
        due = [p for p, tk in tasks.items() if tk["cpu"] == v and tk["state"] == "sleep"
               and tk["wake_at"] is not None and tk["wake_at"] <= a]
        if due:
            p = due[0]
            self._g(a, v, cur, "sched_wakeup", f"comm={self.comm[p]} pid={p} prio=120 target_cpu={v:03d}")
            tasks[p].update(state="runnable", woke_ts=a, wake_at=None)
            runnable.append(p)
            return cur, run_from
        if cur and tasks[cur]["burst_end"] <= a:
            nxt = runnable.pop(0) if runnable else 0
            self._switch_guest(v, a, cur, "S", nxt)
            self.runs.append((cur, v, run_from, a))
            tk = tasks[cur]
            tk.update(state="sleep", burst_end=None)
            if tk["remote"]:
                tk["wake_at"] = None        # woken from guest CPU 0 (see _halt)
            else:
                tk["wake_at"] = a + rng.randint(50_000, 600_000)
            return self._start(v, a, nxt), a
        if cur == 0 and runnable:
            nxt = runnable.pop(0)
            self._switch_guest(v, a, 0, "R", nxt)
            return self._start(v, a, nxt), a
        return cur, run_from

    def _switch_guest(self, v, a, prev, state, nxt):
        pc = self.comm[prev] if prev else f"swapper/{v}"
        nc = self.comm[nxt] if nxt else f"swapper/{v}"
        self._g(a, v, prev, "sched_switch", self._switch(pc, prev, state if prev else "R", nc, nxt))
        self.cur_hist[v].append((a, nxt))

    def _start(self, v, a, nxt):
        if nxt:
            tk = self.tasks[nxt]
            self.lat.append((nxt, tk["woke_ts"], a, v))
            tk.update(state="run", burst_end=a + self.rng.randint(50_000, 700_000), woke_ts=None)
        return nxt

    def _guest_cur_at(self, v, ts):
        hist = self.cur_hist[v]
        i = bisect.bisect_right([x for x, _ in hist], ts) - 1
        return hist[i][1] if i >= 0 else 0

    def _halt(self, v, t, h, hc, noise, entry, exit_):
        """The guest idles: a HLT exit, polled or slept until the next guest timer (or a
        wakeup from guest CPU 0); returns the time of the kvm_entry."""
        rng = self.rng
        exit_(t, "HLT")
        sleepers = [p for p, tk in self.tasks.items() if tk["cpu"] == v and tk["state"] == "sleep"]
        timers = [self.tasks[p]["wake_at"] for p in sleepers if self.tasks[p]["wake_at"] is not None]
        wake = min(timers) if timers else t + 400_000
        remote = [p for p in sleepers if self.tasks[p]["remote"] and self.tasks[p]["wake_at"] is None]
        if rng.random() < 0.25 and wake - t < 60_000:
            e = max(wake, t + 1_000)
            self._seg(v, t, e, HALTED)   # polled: re-entered without sleeping
            entry(e)
            return e
        d1 = t + rng.randint(1_000, 4_000)
        self._seg(v, t, d1, HALTED)
        noisy = rng.random() < 0.5
        nxt_c, nxt = (f"noise/{v}", noise) if noisy else (f"swapper/{v}", 0)
        self._h(d1, v, h, "sched_switch", self._switch(hc, h, "S", nxt_c, nxt))
        tw = max(wake, d1 + 2_000)
        if remote and v >= 1:
            # woken from guest CPU 0 by a line written in one of its guest-mode spans
            for lo, hi in self.guest_spans[0]:
                mid = lo + (hi - lo) // 2
                if mid > d1 + 2_000 and hi - lo > 4_000:
                    if mid < tw:
                        p = remote[0]
                        waker = self._guest_cur_at(0, mid)
                        self._g(mid, 0, waker, "sched_wakeup",
                                f"comm={self.comm[p]} pid={p} prio=120 target_cpu={v:03d}")
                        self.tasks[p].update(state="runnable", woke_ts=mid, wake_at=None)
                        self.remote_wakeups += 1
                        self.woken_remotely = p
                        tw = mid + rng.randint(1_000, 5_000)
                    break
        self._seg(v, d1, tw, HALTED)
        self._h(tw, v, nxt, "sched_wakeup", f"comm={hc} pid={h} prio=120 target_cpu={v:03d}")
        if noisy:
            back = tw + rng.randint(2_000, 80_000)
            self._seg(v, tw, back, STEAL)
            self._h(back, v, noise, "sched_switch", self._switch(f"noise/{v}", noise, "S", hc, h))
        else:
            back = tw + rng.randint(500, 3_000)
            self._seg(v, tw, back, STEAL)
            self._h(back, v, 0, "sched_switch", self._switch(f"swapper/{v}", 0, "R", hc, h))
        e = back + rng.randint(500, 3_000)
        self._seg(v, back, e, HALTED)
        entry(e)
        return e

    # -- output -----------------------------------------------------------------------------
    @staticmethod
    def _line(r):
        ts, _, cpu, pid, comm, ev, pl = r
        return f"{comm:>16}-{pid:<5} [{cpu:03d}] {ts // 10**9}.{ts % 10**9:09d}: {ev + ':':<20} {pl}"

    def host_text(self):
        rows = sorted(self.host)
        return f"cpus={self.nvcpu}\n" + "".join(self._line(r) + "\n" for r in rows)

    def guest_text(self):
        rows = sorted(self.guest)
        return f"cpus={self.nvcpu}\n" + "".join(self._line(r) + "\n" for r in rows)

    def merged_text(self, host_name="trace.dat", guest_name="trace-guest.dat"):
        w = max(len(host_name), len(guest_name))
        rows = sorted([(r[0], 0, r) for r in self.host] + [(r[0], 1, r) for r in self.guest],
                      key=lambda x: (x[0], x[1], x[2][1]))
        out = [f"{host_name:>{w}}: cpus={self.nvcpu}\n", f"{guest_name:>{w}}: cpus={self.nvcpu}\n"]
        for _, m, r in rows:
            out.append(f"{(host_name, guest_name)[m]:>{w}}: {self._line(r)}\n")
        return "".join(out)

    # -- truth ------------------------------------------------------------------------------
    def state_split(self, v, lo, hi):
        """{category or "exit:REASON": ns} of vCPU v's states over [lo, hi) (G3)."""
        out = {}
        covered = 0
        for a, b, cat, reason in self.segs[v]:
            x, y = max(a, lo), min(b, hi)
            if y > x:
                key = f"exit:{reason}" if cat == "exit" else cat
                out[key] = out.get(key, 0) + (y - x)
                covered += y - x
        if hi - lo - covered:
            out[UNKNOWN] = out.get(UNKNOWN, 0) + (hi - lo - covered)
        return out

    def truth_slices(self):
        """[(pid, cpu, lo, hi, split)] of every guest running slice (G4)."""
        return [(p, v, lo, hi, self.state_split(v, lo, hi)) for p, v, lo, hi in self.runs if hi > lo]

    def truth_latency(self):
        """[(pid, cpu, wakeup ts, latency, split)] of every guest wakeup sample (G6)."""
        return [(p, v, w, s - w, self.state_split(v, w, s)) for p, w, s, v in self.lat]


def simulate(seed=0, **kw):
    return Sim(seed=seed, **kw)
