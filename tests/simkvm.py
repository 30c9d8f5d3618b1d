"""The scheduler simulator of ``simsched`` with KVM: vCPU threads that enter and leave the guest.

A vCPU thread switched in enters the guest (``kvm_entry``) a little later, leaves it
(``kvm_exit`` with a reason) after a guest span, is handled in the host for a while and
re-enters; a vCPU that goes to sleep leaves the guest with HLT first, one that is preempted with
an external interrupt, and an exit may be followed by a preemption before its re-entry.  Some
HLT exits are polled (``kvm_vcpu_wakeup: poll time``) and re-entered without sleeping; a vCPU
that slept in HLT prints ``kvm_vcpu_wakeup: wait time`` before re-entering.  The iothread
issues block requests before blocking in D, completed later on any CPU; a ``vhost-<qemu pid>``
worker sleeps and runs like an I/O thread.

The truth of the KVM figures is recorded while the simulation runs (what the vCPU *did*: guest
spans, exits with their reasons, when they were re-entered or preempted), not read back from
the lines, and follows the definitions K1-K9 of ``ftrace_fast.kvm``; the scheduling truth is
``simsched``'s (D1-D10).  Lost events are not simulated here (their effect on exit pairs is
K6's "broken" rule, tested apart); a missing switch out of idle (D7) is.

Usage::

    sim = simkvm.simulate(seed=3, variant="kernel5_tgid")
    sim.kvm.vcpus[pid]        # VcpuTruth
    sim.kvm.neighbours        # {(vcpu pid, neighbour pid): stolen}
"""

from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simsched  # noqa: E402
from simsched import RUNNABLE, RUNNING, SLEEP_D, percentile  # noqa: E402

VMX_REASONS = ("EPT_VIOLATION", "EPT_MISCONFIG", "MSR_WRITE", "IO_INSTRUCTION", "APIC_WRITE",
               "PREEMPTION_TIMER", "CPUID")
SVM_REASONS = ("npf", "msr", "io", "vintr", "cpuid", "pause")


@dataclasses.dataclass
class VcpuTruth:
    pid: int
    vcpu: int
    guest: int = 0          # complete entry -> exit spans
    guest_spans: int = 0
    guest_edge: int = 0     # spans cut by the window's edges
    exits: dict = dataclasses.field(default_factory=dict)  # reason -> count
    handled: dict = dataclasses.field(default_factory=dict)  # reason -> [handling times]
    switched_out: dict = dataclasses.field(default_factory=dict)  # reason -> count
    halts: int = 0
    halt_ns: int = 0
    halts_slept: int = 0
    halts_polled: int = 0
    waits: int = 0
    wait_ns: int = 0
    polls: int = 0
    poll_ns: int = 0
    spans: list = dataclasses.field(default_factory=list)   # complete guest spans [(entry, exit)]
    exit_at: list = dataclasses.field(default_factory=list)  # every exit [(time, cpu)]

    @property
    def handling(self):
        return sum(sum(v) for v in self.handled.values())


@dataclasses.dataclass
class KvmTruth:
    vcpus: dict             # pid -> VcpuTruth
    vm_of: dict             # vCPU pid -> the VM id K2 gives
    io_threads: dict        # pid -> role
    neighbours: dict        # (vcpu pid, neighbour pid or 0 idle / -1 unknown, cpu) -> stolen
    placement: dict         # (vcpu pid, cpu) -> (run, wait)
    runnable_hist: dict     # number of RUNNING/RUNNABLE vCPUs -> time
    block: list             # [(device, issue ts, complete ts, bytes)]
    longest_d: dict         # pid -> longest SLEEP_D interval
    ncpus: int


class KvmSim(simsched.Sim):
    random_kvm_lines = False   # the vCPUs' kvm lines are the guest entries and exits below

    def __init__(self, seed=0, variant="kernel5", exit_layout=None, svm=None, debug_threads=None,
                 **kw):
        import random
        r = random.Random(seed * 7919 + 17)
        self.svm = r.random() < 0.3 if svm is None else svm
        self.debug_threads = r.random() < 0.8 if debug_threads is None else debug_threads
        self._exit_layout = exit_layout
        self.klog = {}          # pid -> VcpuTruth-in-progress (sim clock)
        self.blocks = []        # [(dev, sector, issue t, complete t or None, bytes)]
        self.next_sector = r.randint(1, 1 << 30)
        kw.setdefault("lost", False)
        assert not kw["lost"], "simkvm does not simulate lost events"
        super().__init__(seed=seed, variant=variant, **kw)
        self.kvm = self._kvm_truth()

    # -- set-up ---------------------------------------------------------------------------
    def add_task(self, comm, kind, tgid=None, prio=120):
        if kind == "vcpu" and not self.debug_threads:
            t = super().add_task("qemu-system-x86", kind, tgid, prio)  # QEMU without debug-threads
        else:
            t = super().add_task(comm, kind, tgid, prio)
        if kind == "vcpu":
            t.vcpu = int(comm.split()[1].split("/")[0])
            t.guest = False
            t.guest_start = None
            t.exit_open = None      # [t, reason, switched out]
        return t

    def _build(self):
        rng = self.rng
        if self._exit_layout is None:
            self.exit_layout = "old" if self.F.dialect == "compact" or rng.random() < 0.3 else "vcpu"
        else:
            self.exit_layout = self._exit_layout
        super()._build()
        t0 = self.t0
        vh = self.add_task("vhost-%d" % self.qemu.pid, "io")
        vh.set(t0, "?", rng.randrange(self.ncpu))
        vh.initial = simsched.SLEEP_OTHER
        vh.token += 1
        self.at(t0 + self.d(1, 3000), self.wake_timer, vh.pid, vh.token)
        self.vhost = vh
        for c in self.cpus:
            t = c.cur
            if t is not None and t.kind == "vcpu":
                # in the guest since before the trace began
                t.guest = True
                t.guest_start = None
                self.at(t0 + self.d(1, 150), self.guest_exit, c.n, c.epoch)

    def log(self, t):
        v = self.klog.get(t.pid)
        if v is None:
            v = self.klog[t.pid] = VcpuTruth(pid=t.pid, vcpu=t.vcpu)
        return v

    # -- behaviours -----------------------------------------------------------------------
    def _exit(self, cpu, t, reason):
        """t leaves the guest now with this reason."""
        self.emit(cpu, "kvm_exit", vcpu=t.vcpu, reason=reason, rip=self.rng.getrandbits(48))
        v = self.log(t)
        v.exits[reason] = v.exits.get(reason, 0) + 1
        v.exit_at.append((self.now, cpu))
        if t.guest_start is None:
            v.lead_exit = self.now  # in the guest since before the trace: a leading edge span
        else:
            v.guest += self.now - t.guest_start
            v.guest_spans += 1
            v.spans.append((t.guest_start, self.now))
        t.guest = False
        t.guest_start = None
        t.exit_open = [self.now, reason, False]

    def switch(self, cpu, prev_state, nxt):
        c = self.cpus[cpu]
        prev = c.cur
        if prev is not None and prev.kind == "vcpu":
            if prev.guest:
                if prev_state == "S":
                    reason = "hlt" if self.svm else "HLT"
                else:
                    reason = "intr" if self.svm else "EXTERNAL_INTERRUPT"
                self._exit(cpu, prev, reason)
            if prev.exit_open is not None and not prev.exit_open[2]:
                prev.exit_open[2] = True
                v = self.log(prev)
                r = prev.exit_open[1]
                v.switched_out[r] = v.switched_out.get(r, 0) + 1
        if prev is not None and prev.kind == "io" and prev_state == "D" and prev is not self.vhost:
            self.issue_block(cpu, prev)
        super().switch(cpu, prev_state, nxt)
        if nxt is not None and nxt.kind == "vcpu":
            self.at(self.now + self.d(0, 3), self.guest_entry, cpu, c.epoch)

    def guest_entry(self, cpu, epoch):
        c = self.cpus[cpu]
        t = c.cur
        if c.epoch != epoch or t is None or t.kind != "vcpu" or t.guest:
            return
        v = self.log(t)
        eo = t.exit_open
        if eo is not None:
            if eo[1] in ("HLT", "hlt"):
                v.halts += 1
                v.halt_ns += self.now - eo[0]
                ns = (self.now - eo[0]) * self.scale + self.rng.randint(0, 999)
                if eo[2]:
                    v.halts_slept += 1
                    v.waits += 1
                    v.wait_ns += ns
                    self.emit(cpu, "kvm_vcpu_wakeup", waited=1, ns=ns)
                else:
                    v.halts_polled += 1
                    v.polls += 1
                    v.poll_ns += ns
                    self.emit(cpu, "kvm_vcpu_wakeup", waited=0, ns=ns)
            if not eo[2]:
                v.handled.setdefault(eo[1], []).append(self.now - eo[0])
            t.exit_open = None
        self.emit(cpu, "kvm_entry", vcpu=t.vcpu, rip=self.rng.getrandbits(48))
        t.guest = True
        t.guest_start = self.now
        self.at(self.now + self.d(0, 120), self.guest_exit, cpu, epoch)

    def guest_exit(self, cpu, epoch):
        c = self.cpus[cpu]
        t = c.cur
        if c.epoch != epoch or t is None or t.kind != "vcpu" or not t.guest:
            return
        rng = self.rng
        if rng.random() < 0.08:
            reason = "hlt" if self.svm else "HLT"     # polled halt: back in without sleeping
            hl = self.d(1, 20)
        else:
            reason = rng.choice(SVM_REASONS if self.svm else VMX_REASONS)
            hl = self.d(0, 60) if reason not in ("IO_INSTRUCTION", "io", "EPT_MISCONFIG") else self.d(5, 200)
        self._exit(cpu, t, reason)
        self.at(self.now + hl, self.guest_entry, cpu, epoch)

    def issue_block(self, cpu, t):
        rng = self.rng
        dev = rng.choice(((254, 0), (254, 16), (8, 0)))
        sector = self.next_sector
        self.next_sector += rng.randint(8, 4096)
        nbytes = rng.choice((4096, 8192, 65536, 131072))
        self.emit(cpu, "block_rq_issue", dev=dev, sector=sector, nbytes=nbytes, rq_comm=t.comm)
        rec = [dev, sector, self.now, None, nbytes]
        self.blocks.append(rec)
        self.at(self.now + self.d(10, 2000), self.complete_block, rec)

    def complete_block(self, rec):
        cpu = self.rng.randrange(self.ncpu)
        self.emit(cpu, "block_rq_complete", dev=rec[0], sector=rec[1], nbytes=rec[4])
        rec[3] = self.now

    # -- output ---------------------------------------------------------------------------
    def _payload(self, ln):
        f = ln.f
        n = ln.name
        compact = self.F.dialect == "compact"
        if n == "kvm_entry" and f:
            if compact:
                return " vcpu %d rip 0x%x" % (f["vcpu"], f["rip"])
            return "vcpu %d, rip 0x%x" % (f["vcpu"], f["rip"])
        if n == "kvm_exit" and f:
            if self.exit_layout == "old":
                return "reason %s rip 0x%x info %x %x" % (f["reason"], f["rip"], 0, 0)
            return ("vcpu %d reason %s rip 0x%x info1 0x%016x info2 0x%016x intr_info 0x%08x "
                    "error_code 0x%08x" % (f["vcpu"], f["reason"], f["rip"], 0, 0, 0, 0))
        if n == "kvm_vcpu_wakeup" and f:
            return "%s time %d ns, polling valid" % ("wait" if f["waited"] else "poll", f["ns"])
        if n.startswith("block_rq_") and f:
            ma, mi = f["dev"]
            if n == "block_rq_issue":
                return "%d,%d WS %d () %d + %d [%s]" % (ma, mi, f["nbytes"], f["sector"],
                                                       f["nbytes"] // 512, f["rq_comm"])
            return "%d,%d WS () %d + %d [0]" % (ma, mi, f["sector"], f["nbytes"] // 512)
        return super()._payload(ln)

    # -- truth ----------------------------------------------------------------------------
    def _kvm_truth(self):
        tr = self.truth
        sc = self.scale
        ws, we = tr.window
        vcpus = {}
        for pid, v in self.klog.items():
            t = self.tasks[pid]
            out = VcpuTruth(pid=pid, vcpu=v.vcpu)
            out.guest = v.guest * sc
            out.guest_spans = v.guest_spans
            lead = getattr(v, "lead_exit", None)
            out.guest_edge = (lead * sc - ws) if lead is not None else 0
            if t.guest and t.guest_start is not None:
                out.guest_edge += we - t.guest_start * sc
            out.exits = dict(v.exits)
            out.handled = {r: [x * sc for x in xs] for r, xs in v.handled.items()}
            out.switched_out = dict(v.switched_out)
            out.halts = v.halts  # HLT exits re-entered
            out.halt_ns = v.halt_ns * sc
            out.halts_slept, out.halts_polled = v.halts_slept, v.halts_polled
            out.waits, out.wait_ns, out.polls, out.poll_ns = v.waits, v.wait_ns, v.polls, v.poll_ns
            out.spans = [(a * sc, b * sc) for a, b in v.spans]
            out.exit_at = [(x * sc, c) for x, c in v.exit_at]
            vcpus[pid] = out
        # K6/K7: an HLT exit not re-entered within the trace still counts as a halt (no time)
        for pid, out in vcpus.items():
            t = self.tasks[pid]
            if t.exit_open is not None and t.exit_open[1] in ("HLT", "hlt"):
                out.halts += 1
        vc = [p for p in self.tasks if self.tasks[p].kind == "vcpu"]
        if self.debug_threads:
            ident = [p for p in vc if p in tr.tasks]
        else:
            ident = [p for p in vc if p in vcpus]
        for p in ident:
            vcpus.setdefault(p, VcpuTruth(pid=p, vcpu=self.tasks[p].vcpu))
        # K2: the tgid where the trace shows it (the task's own lines in a TGID format), else
        # the pid of the first vCPU thread of those without one (one VM: indices rise with pids)
        known = [p for p in ident if tr.tasks[p].tgid_known]
        unknown = [p for p in ident if p not in known]
        vm_of = {p: self.qemu.pid for p in known}
        vm_of.update({p: min(unknown) for p in unknown})
        vms = set(vm_of.values())
        io = {}
        if ident:
            for p, t in self.tasks.items():
                if p not in tr.tasks or p in ident:
                    continue
                tk = tr.tasks[p].tgid_known
                if t is self.vhost:
                    role = "vhost"
                elif t.tgid != self.qemu.pid:
                    continue
                elif tk and t.tgid not in vms:
                    continue
                elif not tk and len(vms) != 1:
                    continue
                elif t.kind == "io":
                    role = "iothread"
                elif t.kind == "qemu":
                    role = "main"
                elif t.kind == "vcpu":   # a vCPU without kvm lines, named like the main thread
                    role = "thread" if tk else "main"
                else:
                    role = "thread"
                io[p] = role
        # neighbours (K4) from the scheduling truth's intervals
        nb = {}
        for p in ident:
            for (a, b, st, cpu) in tr.tasks[p].intervals:
                if st != RUNNABLE or b <= a:
                    continue
                for (x, y, kind, q) in tr.cpus[cpu].intervals:
                    lo, hi = max(a, x), min(b, y)
                    if hi > lo:
                        who = -1 if kind == simsched.CPU_UNKNOWN else (q if kind == simsched.BUSY else 0)
                        nb[(p, who, cpu)] = nb.get((p, who, cpu), 0) + hi - lo
        place = {}
        for p in ident:
            for (a, b, st, cpu) in tr.tasks[p].intervals:
                if st in (RUNNING, RUNNABLE):
                    r, w = place.get((p, cpu), (0, 0))
                    place[(p, cpu)] = (r + (b - a), w) if st == RUNNING else (r, w + (b - a))
        # runnable vCPUs over time (K5): a sweep over change points
        pts = {ws, we}
        for p in ident:
            for (a, b, st, cpu) in tr.tasks[p].intervals:
                pts.update((a, b))
        pts = sorted(pts)
        hist = {}
        for a, b in zip(pts, pts[1:]):
            mid_count = 0
            for p in ident:
                for (x, y, st, cpu) in tr.tasks[p].intervals:
                    if x <= a and b <= y and st in (RUNNING, RUNNABLE):
                        mid_count += 1
                        break
            hist[mid_count] = hist.get(mid_count, 0) + b - a
        block = [("%d,%d" % dev, i * sc, c * sc if c is not None else None, nb_)
                 for (dev, sec, i, c, nb_) in self.blocks]
        longest = {}
        for p in io:
            ds = [b - a for (a, b, st, cpu) in tr.tasks[p].intervals if st == SLEEP_D]
            longest[p] = max(ds) if ds else 0
        return KvmTruth(vcpus=vcpus, vm_of=vm_of, io_threads=io, neighbours=nb, placement=place,
                        runnable_hist={k: v for k, v in hist.items() if v}, block=block,
                        longest_d=longest, ncpus=self.ncpu)


def simulate(seed=0, variant="kernel5", **kw) -> KvmSim:
    return KvmSim(seed=seed, variant=variant, **kw)


def exit_stats(xs):
    """count, total, mean, p50, p99, max of handling times (nearest rank)."""
    s = sorted(xs)
    if not s:
        return dict(handled=0, total_ns=0, mean_ns=None, p50_ns=None, p99_ns=None, max_ns=None)
    return dict(handled=len(s), total_ns=sum(s), mean_ns=sum(s) / len(s), p50_ns=percentile(s, 50),
                p99_ns=percentile(s, 99), max_ns=s[-1])
