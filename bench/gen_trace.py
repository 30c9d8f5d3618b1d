"""Deterministic generator of a synthetic KVM-host ftrace text log, for the benchmarks.

The output is the kernel's ``trace`` file format (``nop`` tracer header, 5-character irq-info
flags, ``%16s-%-7d [%03d] flags %5lu.%06lu: event: payload``) of an 8-CPU host running two QEMU
guests: vCPU threads named ``CPU n/KVM`` (a comm with a space and a slash), ``IO iothread1``,
``vhost-<pid>``, kworkers, ``<idle>``/``swapper/N`` and a few user-space daemons.

The lines come from a small scheduler simulation (per-CPU current task and run queues, wakeups
that feed the run queue of the target CPU, vCPUs pinned to CPUs that enter and leave the guest),
so the logs are self-consistent: ``prev_comm`` of a ``sched_switch`` is the task of its line,
a woken task is the ``next`` of a later switch on its target CPU, and so on.

Event mix by lines (about): 45% sched_switch, 30% sched_waking + sched_wakeup, 20% kvm_entry /
kvm_exit, the rest irq_handler_entry/exit, softirq_entry/exit, sched_migrate_task and two events
with no typed layout (``workqueue_execute_start``, ``hrtimer_expire_entry``).

The random stream does not depend on the requested size, so a smaller file is a prefix of a
larger one with the same seed (apart from the header's entry count).

Usage::

    python bench/gen_trace.py --mb 5 [--seed 1] [-o out.trace]   # prints the path and the mix
    from gen_trace import cached_trace; path = cached_trace(200)  # made once per size and seed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

#: bump when the output changes, so cached files are made anew.
GEN_VERSION = 2

NCPUS = 8
BATCH = 50_000  # simulation steps per batch (random numbers are drawn per batch)

# ----------------------------------------------------------------------------------------------
# Tasks: (comm, pid, prio, pinned cpu or None, hot)
# "hot" tasks (vCPUs, QEMU I/O threads, vhost) are woken far more often than the others.


def _tasks():
    t = []
    # guest 1: 4 vCPUs pinned on CPUs 0-3
    t.append(("qemu-system-x86", 2010, 120, None, True))
    t.append(("call_rcu", 2012, 120, None, False))
    t.append(("IO mon_iothread", 2021, 120, None, False))
    for i in range(4):
        t.append((f"CPU {i}/KVM", 2024 + i, 120, i, True))
    t.append(("IO iothread1", 2030, 120, None, True))
    t.append(("vhost-2010", 2035, 120, None, True))
    t.append(("SPICE Worker", 2040, 120, None, False))
    # guest 2: 2 vCPUs pinned on CPUs 4-5
    t.append(("qemu-system-x86", 3100, 120, None, True))
    t.append(("CPU 0/KVM", 3110, 120, 4, True))
    t.append(("CPU 1/KVM", 3111, 120, 5, True))
    t.append(("IO iothread1", 3115, 120, None, True))
    t.append(("vhost-3100", 3120, 120, None, True))
    t.append(("kvm-nx-lpage-re", 2050, 120, None, False))
    # kernel threads
    t.append(("kworker/u16:2", 211, 120, None, True))
    t.append(("kworker/u16:0", 8, 120, None, False))
    t.append(("rcu_preempt", 16, 120, None, False))
    t.append(("kcompactd0", 65, 120, None, False))
    t.append(("kswapd0", 93, 120, None, False))
    t.append(("jbd2/nvme0n1p2-", 412, 120, None, False))
    for c in range(NCPUS):
        t.append((f"kworker/{c}:1", 100 + c, 120, c, False))
        t.append((f"kworker/{c}:1H", 180 + c, 100, c, False))
        t.append((f"ksoftirqd/{c}", 20 + 6 * c, 120, c, False))
        t.append((f"migration/{c}", 19 + 6 * c, 0, c, False))
    # user space
    for comm, pid in (
        ("systemd", 1), ("systemd-journal", 512), ("sshd", 1310), ("bash", 4101),
        ("libvirtd", 1204), ("rpc-worker", 1230), ("containerd", 1122), ("python3", 4420),
        ("node_exporter", 1401), ("chronyd", 980), ("irqbalance", 1001), ("gmain", 1005),
        ("dbus-daemon", 860), ("top", 4480),
    ):
        t.append((comm, pid, 120, None, False))
    return t


TASKS = _tasks()
NT = len(TASKS)
IS_VCPU = np.array([c.startswith("CPU ") and c.endswith("/KVM") for c, *_ in TASKS])
# vCPU index printed in kvm_entry/kvm_exit
VCPU_ID = [int(c.split()[1].split("/")[0]) if IS_VCPU[i] else -1 for i, (c, *_r) in enumerate(TASKS)]
VCPU_ON = {TASKS[i][3]: i for i in range(NT) if IS_VCPU[i]}  # cpu -> pinned vCPU task

EXIT_REASONS = (
    # (reason, weight, intr_info, info1, info2)
    ("EXTERNAL_INTERRUPT", 30, "0x800000ec", 0, 0),
    ("HLT", 25, "0x00000000", 0, 0),
    ("MSR_WRITE", 15, "0x00000000", 0, 0),
    ("EPT_VIOLATION", 8, "0x00000000", 0x181, 0x7ffd3000),
    ("EPT_MISCONFIG", 6, "0x00000000", 0, 0xfebf1000),
    ("IO_INSTRUCTION", 5, "0x00000000", 0x1f70008, 0),
    ("PREEMPTION_TIMER", 6, "0x00000000", 0, 0),
    ("PAUSE_INSTRUCTION", 3, "0x00000000", 0, 0),
    ("MSR_READ", 1, "0x00000000", 0, 0),
    ("CPUID", 1, "0x00000000", 0, 0),
)
_HLT, _EXTINT, _PREEMPT_TIMER = 1, 0, 6
_EXIT_W = np.array([r[1] for r in EXIT_REASONS], float)
_EXIT_CUM = np.cumsum(_EXIT_W / _EXIT_W.sum())
GUEST_RIPS = (
    0xFFFFFFFF81C3A2B4, 0xFFFFFFFF81C3A2B6, 0xFFFFFFFF8107E4A8, 0xFFFFFFFF81078A92,
    0xFFFFFFFF810F1C33, 0x7F3A1C2E4D10, 0xFFFFFFFF81C3B0F0, 0xFFFFFFFF81671B5E,
)
IRQS = ((24, "virtio0-input.0"), (131, "nvme0q3"), (132, "nvme0q4"), (88, "eno1-TxRx-2"),
        (89, "eno1-TxRx-5"), (146, "vfio-msix[0](0000:3b:00.1)"), (16, "ahci[0000:00:17.0]"))
SOFTIRQS = ((9, "RCU"), (7, "SCHED"), (3, "NET_RX"), (1, "TIMER"), (6, "TASKLET"), (4, "BLOCK"))
WQ_FUNCS = ("vmstat_update", "psi_avgs_work", "kvm_mmu_page_fault_work", "flush_to_ldisc",
            "blk_mq_run_work_fn", "wb_workfn", "drain_local_pages_wq")
HRTIMER_FUNCS = ("tick_sched_timer", "hrtimer_wakeup", "kvm_lapic_expired_hv_timer",
                 "apic_timer_fn", "sched_rt_period_timer")

# weights of the simulation step kinds, tuned so that the line mix lands near the target (a
# wake step writes two lines, as do irq and softirq steps; some steps fall back to others)
STEP_WEIGHTS = (
    ("kvm", 0.02), ("switch", 0.8), ("wake", 0.2), ("irq", 0.007), ("softirq", 0.0094),
    ("migrate", 0.004), ("workqueue", 0.0094), ("hrtimer", 0.007),
)


def _cumulative():
    w = np.array([x[1] for x in STEP_WEIGHTS])
    return np.cumsum(w / w.sum()).tolist()


P_KVM, P_SWITCH, P_WAKE, P_IRQ, P_SOFTIRQ, P_MIGRATE, P_WQ, _ = _cumulative()
VCPU_CPUS = sorted(VCPU_ON)
P_PREEMPT = 1.0  # chance that a switch with more tasks queued preempts (prev_state=R+)
Q_TARGET = 60  # preemption gets rarer as this many tasks wait in all run queues
P_AFFINE = 0.1  # chance that a wakeup from a busy CPU pulls a task that is not pinned
P_HLT_BLOCK = 0.5  # chance that a vCPU blocks after a HLT exit
P_HOT = 0.8  # share of wakeups that go to the hot tasks (vCPUs, QEMU I/O threads, vhost)

HEADER = """# tracer: nop
#
# entries-in-buffer/entries-written: {counts}   #P:{ncpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def _header(nlines: int, size_bytes: int) -> str:
    # padded to the widest count a file of that size can hold, so the header can be rewritten
    width = 2 * len(str(size_bytes // 40)) + 1
    return HEADER.format(counts=f"{nlines}/{nlines}".ljust(width), ncpus=NCPUS)


# ----------------------------------------------------------------------------------------------


class _Sim:
    """Scheduler state; emits lines into a list."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.ts = 1154_513_760  # microseconds
        self.out = None
        self.cur = [-1 - c for c in range(NCPUS)]  # negative: the idle task of that cpu
        self.rq = [[] for _ in range(NCPUS)]
        self.in_guest = [False] * NT
        self.last_rip = [GUEST_RIPS[0]] * NT
        self.home = [t[3] if t[3] is not None else (i * 5) % NCPUS for i, t in enumerate(TASKS)]
        # sleeping tasks, hot and cold, with swap-remove
        self.sleep_hot, self.sleep_cold = [], []
        self.pos = {}
        for i, t in enumerate(TASKS):
            self._sleep(i)
        # line prefixes and payload fragments, cached
        self._pfx = {}
        self._who = [f"comm={c} pid={p} prio={pr}" for c, p, pr, *_ in TASKS]
        self._prev = [f"prev_comm={c} prev_pid={p} prev_prio={pr} prev_state=" for c, p, pr, *_ in TASKS]
        self._next = [f"next_comm={c} next_pid={p} next_prio={pr}" for c, p, pr, *_ in TASKS]
        self._idle_prev = [f"prev_comm=swapper/{c} prev_pid=0 prev_prio=120 prev_state=R" for c in range(NCPUS)]
        self._idle_next = [f"next_comm=swapper/{c} next_pid=0 next_prio=120" for c in range(NCPUS)]

    # -- task sets
    def _sleep(self, i):
        lst = self.sleep_hot if TASKS[i][4] else self.sleep_cold
        self.pos[i] = (lst, len(lst))
        lst.append(i)

    def _unsleep(self, i):
        lst, k = self.pos.pop(i)
        last = lst.pop()
        if last != i:
            lst[k] = last
            self.pos[last] = (lst, k)

    def prefix(self, task, cpu):
        key = (task, cpu)
        p = self._pfx.get(key)
        if p is None:
            if task < 0:
                comm, pid = "<idle>", 0
            else:
                comm, pid = TASKS[task][0], TASKS[task][1]
            p = f"{comm:>16}-{pid:<7} [{cpu:03d}] "
            self._pfx[key] = p
        return p

    # -- one batch of simulation steps
    def batch(self, out: list):
        rng = self.rng
        n = BATCH
        kind = rng.random(n).tolist()
        cpus = rng.integers(0, NCPUS, n).tolist()
        r1 = rng.random(n).tolist()
        r2 = rng.random(n).tolist()
        ri = rng.integers(0, 1 << 30, n).tolist()
        dts = rng.geometric(0.35, n).tolist()  # microseconds between steps, mean ~2.9
        exit_idx = np.searchsorted(_EXIT_CUM, rng.random(n)).tolist()
        self.out = out
        for k in range(n):
            self.ts += dts[k]
            u = kind[k]
            if u < P_KVM:
                self._kvm_step(cpus[k], ri[k], exit_idx[k], r1[k])
            elif u < P_SWITCH:
                self._switch_step(cpus[k], r1[k], exit_idx[k])
            elif u < P_WAKE:
                self._wake_step(cpus[k], r1[k], r2[k], ri[k])
            else:
                self._other_step(u, cpus[k], r2[k], ri[k])
        self.out = None

    def _tstr(self):
        ts = self.ts
        return f" {ts // 1000000:5d}.{ts % 1000000:06d}: "

    def _host(self, c):
        """The current task of ``c``, after a VM exit if it is a vCPU in guest mode."""
        t = self.cur[c]
        if t >= 0 and self.in_guest[t]:
            self._exit(c, t, _EXTINT)
            self.ts += 1
        return t

    def _exit(self, c, t, e):
        r = EXIT_REASONS[e]
        self.out.append(
            f"{self.prefix(t, c)}d....{self._tstr()}kvm_exit: vcpu {VCPU_ID[t]} reason {r[0]} "
            f"rip 0x{self.last_rip[t]:x} info1 0x{r[3]:016x} info2 0x{r[4]:016x} "
            f"intr_info {r[2]} error_code 0x00000000")
        self.in_guest[t] = False

    def _kvm_step(self, c, ri, e, r):
        # a vCPU that runs enters or leaves the guest; else get one of them running
        cur = self.cur
        nv = len(VCPU_CPUS)
        for j in range(nv):
            cc = VCPU_CPUS[(c + j) % nv]
            t = cur[cc]
            if t == VCPU_ON[cc]:
                break
        else:
            cc = VCPU_CPUS[c % nv]
            v = VCPU_ON[cc]
            if v in self.pos:
                self._wake(c % NCPUS, v, r, ri)
            else:
                self._switch(cc, r)
            return
        if self.in_guest[t]:
            self._exit(cc, t, e)
            if e == _HLT and r < P_HLT_BLOCK and not self.rq[cc]:
                # nothing for the guest to do: the vCPU thread blocks
                self.ts += 1
                self._switch(cc, r)
        else:
            rip = GUEST_RIPS[ri & 7]
            self.last_rip[t] = rip
            self.out.append(f"{self.prefix(t, cc)}.....{self._tstr()}kvm_entry: vcpu {VCPU_ID[t]}, rip 0x{rip:x}")
            self.in_guest[t] = True

    def _switch_step(self, c, r, e=_EXTINT):
        # the scheduler acts where tasks wait (wakeup and tick preemption); a running task blocks
        # (switch to idle) only when no run queue has a task
        cur, rq = self.cur, self.rq
        if not rq[c]:
            for j in range(1, NCPUS):
                cc = (c + j) % NCPUS
                if rq[cc]:
                    c = cc
                    break
            else:
                t = cur[c]
                if t < 0 or IS_VCPU[t]:
                    # idle, or a vCPU (which blocks only after a HLT exit): guest work instead
                    self._kvm_step(c, int(r * 1e9), e, r)
                    return
        self._switch(c, r)

    def _switch(self, c, r) -> bool:
        cur, q = self.cur, self.rq[c]
        t = cur[c]
        if q:
            nxt = q.pop(0)
        elif t >= 0:
            nxt = -1 - c
        else:
            return False
        t = self._host(c)
        if t < 0:
            prev = self._idle_prev[c]
        else:
            if q and r < P_PREEMPT * (1.0 - sum(map(len, self.rq)) / Q_TARGET):
                st = "R+"
                q.append(t)
            else:
                if IS_VCPU[t] or r < 0.75:
                    st = "S"
                elif TASKS[t][0].startswith("kworker"):
                    st = "I"
                else:
                    st = "D"
                self._sleep(t)
            prev = self._prev[t] + st
        nx = self._idle_next[c] if nxt < 0 else self._next[nxt]
        self.out.append(f"{self.prefix(t, c)}d..2.{self._tstr()}sched_switch: {prev} ==> {nx}")
        cur[c] = nxt
        return True

    def _wake_step(self, c, r1, r2, ri):
        hot, cold = self.sleep_hot, self.sleep_cold
        pool = hot if (hot and (r1 < P_HOT or not cold)) else cold
        if not pool:
            self._switch_step(c, r1)
            return
        self._wake(c, pool[ri % len(pool)], r2, ri)

    def _wake(self, c, w, r, ri):
        # waking + wakeup of sleeping task w, from the current task of c (or an irq on idle); a
        # task that is not pinned may be pulled to the waker's busy CPU (wake-affine), which
        # shows as a sched_migrate_task between the two lines
        t = self._host(c)
        self._unsleep(w)
        orig = self.home[w]
        irq = t < 0 or r < 0.2
        pf = self.prefix(t, c)
        app = self.out.append
        app(f"{pf}{'d.h3.' if irq else 'd..3.'}{self._tstr()}sched_waking: {self._who[w]} target_cpu={orig:03d}")
        self.ts += 1 + (ri & 7)
        target = orig
        if t >= 0 and orig != c and TASKS[w][3] is None and (ri >> 12) % 1000 < P_AFFINE * 1000:
            target = self.home[w] = c
            app(f"{pf}{'d.h4.' if irq else 'd..4.'}{self._tstr()}sched_migrate_task: {self._who[w]} "
                f"orig_cpu={orig} dest_cpu={c}")
            self.ts += 1
        self.rq[target].append(w)
        nf = "dNh4." if irq else ("dN.4." if target == c else "d..4.")
        app(f"{pf}{nf}{self._tstr()}sched_wakeup: {self._who[w]} target_cpu={target:03d}")

    def _other_step(self, u, c, r, ri):
        app = self.out.append
        if P_SOFTIRQ <= u < P_MIGRATE:
            # a task that is neither pinned nor running moves to another CPU
            w = ri % NT
            if TASKS[w][3] is not None or w not in self.pos:
                return
        t = self._host(c)
        pf = self.prefix(t, c)
        tstr = self._tstr()
        if u < P_IRQ:
            irq, name = IRQS[ri % len(IRQS)]
            app(f"{pf}d.h1.{tstr}irq_handler_entry: irq={irq} name={name}")
            self.ts += 1 + (ri & 3)
            app(f"{pf}d.h1.{self._tstr()}irq_handler_exit: irq={irq} "
                f"ret={'handled' if r < 0.97 else 'unhandled'}")
        elif u < P_SOFTIRQ:
            vec, name = SOFTIRQS[ri % len(SOFTIRQS)]
            fl = "..s1." if r < 0.7 else "d.s2."
            app(f"{pf}{fl}{tstr}softirq_entry: vec={vec} [action={name}]")
            self.ts += 1 + (ri & 15)
            app(f"{pf}{fl}{self._tstr()}softirq_exit: vec={vec} [action={name}]")
        elif u < P_MIGRATE:
            orig = self.home[w]
            dest = (orig + 1 + (ri >> 8) % (NCPUS - 1)) % NCPUS
            self.home[w] = dest
            app(f"{pf}d..3.{tstr}sched_migrate_task: {self._who[w]} orig_cpu={orig} dest_cpu={dest}")
        elif u < P_WQ:
            wid = (ri * 2654435761) & 0xFFFFFFFF
            app(f"{pf}....1{tstr}workqueue_execute_start: work struct 00000000{wid:08x}: "
                f"function {WQ_FUNCS[ri % len(WQ_FUNCS)]}")
        else:
            hid = (ri * 40503) & 0xFFFFFFFF
            app(f"{pf}d.h1.{tstr}hrtimer_expire_entry: hrtimer=00000000{hid:08x} "
                f"function={HRTIMER_FUNCS[ri % len(HRTIMER_FUNCS)]} now={self.ts * 1000 + (ri & 511)}")


#: the events the generator writes
EVENT_NAMES = (
    "sched_switch", "sched_waking", "sched_wakeup", "kvm_entry", "kvm_exit", "irq_handler_entry",
    "irq_handler_exit", "softirq_entry", "softirq_exit", "sched_migrate_task",
    "workqueue_execute_start", "hrtimer_expire_entry",
)


def _count_events(text: str, counts: dict):
    for name in EVENT_NAMES:
        counts[name] += text.count(f": {name}: ")


def generate(path: str, size_bytes: int, seed: int = 1) -> dict:
    """Write a log of about ``size_bytes`` (cut at a line end, never over) to ``path``.

    Returns {"bytes": file size, "lines": event lines, "header_lines": comment lines,
    "events": {event name: lines}, "seed", "version", "seconds": time taken}.
    """
    t0 = time.perf_counter()
    sim = _Sim(seed)
    nlines = 0
    counts = dict.fromkeys(EVENT_NAMES, 0)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        head = _header(0, size_bytes)
        f.write(head)
        total = len(head)
        while total < size_bytes:
            lines = []
            sim.batch(lines)
            lines.append("")
            text = "\n".join(lines)
            room = size_bytes - total
            last = len(text) > room
            if last:
                text = text[: text.rfind("\n", 0, room) + 1]
            f.write(text)
            total += len(text)
            nlines += text.count("\n")
            _count_events(text, counts)
            if last:
                break
        f.seek(0)
        f.write(_header(nlines, size_bytes))  # same length as the placeholder
    assert sum(counts.values()) == nlines, (counts, nlines)
    return {
        "bytes": os.path.getsize(path),
        "lines": nlines,
        "header_lines": head.count("\n"),
        "events": counts,
        "seed": seed,
        "version": GEN_VERSION,
        "seconds": time.perf_counter() - t0,
    }


def cache_dir() -> str:
    d = os.environ.get("FTFAST_BENCH_DIR") or os.path.join(tempfile.gettempdir(), "ftrace_fast_bench")
    os.makedirs(d, exist_ok=True)
    return d


def cached_trace(mb: float, seed: int = 1) -> str:
    """Path of a generated log of ``mb`` MB (10**6 bytes), made once per size, seed and version.

    Beside it, ``<path>.json`` holds what :func:`generate` returned (see :func:`trace_info`).
    """
    size = int(mb * 1_000_000)
    path = os.path.join(cache_dir(), f"kvm_host_{size}B_seed{seed}_v{GEN_VERSION}.trace")
    if not (os.path.exists(path) and os.path.exists(path + ".json")):
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            info = generate(tmp, size, seed)
            with open(tmp + ".json", "w") as f:
                json.dump(info, f, indent=1)
            os.replace(tmp, path)
            os.replace(tmp + ".json", path + ".json")
        finally:
            for p in (tmp, tmp + ".json"):
                if os.path.exists(p):
                    os.unlink(p)
    return path


def trace_info(path: str) -> dict:
    """What :func:`generate` returned for a file made by :func:`cached_trace`."""
    with open(path + ".json") as f:
        return json.load(f)


def four_flag_copy(src: str, dst: str) -> str:
    """Copy ``src`` with 4-character irq-info flags (the pre-5.x ``d..2`` layout), for parsers that
    know no other; the migrate-disable column is dropped.  Returns ``dst``."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for line in fi:
            if line.startswith(b"#"):
                fo.write(line)
            else:
                # "%16s-%-7d [%03d] " is 31 characters; the flags are 31..35
                fo.write(line[:35] + line[36:])
    return dst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=5.0, help="size in MB (10**6 bytes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", help="output file (default: the benchmark cache)")
    ap.add_argument("--mix", action="store_true", help="print the event mix of the file")
    a = ap.parse_args(argv)
    if a.output:
        info = generate(a.output, int(a.mb * 1_000_000), a.seed)
        print(f"{a.output}: {info['lines']} lines, {info['bytes']} bytes in {info['seconds']:.2f} s")
    else:
        path = cached_trace(a.mb, a.seed)
        info = trace_info(path)
        print(path)
    if a.mix:
        n = info["lines"]
        for name, k in sorted(info["events"].items(), key=lambda kv: -kv[1]):
            print(f"{name:26s} {k:10d} {100 * k / n:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
