"""A scheduler simulator that writes ftrace text together with its exact scheduling truth.

A discrete-event simulation with an integer clock runs a small host: 2-4 CPUs with an idle task
each (``<idle>-0`` / ``swapper/N``), a QEMU process (main thread, ``CPU n/KVM`` vCPU threads,
``IO iothread1``, ``worker`` threads it forks and that exit), per-CPU kworkers, a CPU hog and a
few daemons.  Tasks run bursts (vCPUs with kvm_exit/kvm_entry lines), sleep in S, D or another
state (kworkers: I), are woken (``sched_waking``, then ``sched_wakeup`` on the waker's or the
target's CPU a little later), wait runnable, get preempted (``R+``), migrated while runnable,
forked (``sched_process_fork`` + ``sched_wakeup_new``) and exit (``sched_process_exit``, then
``X``/``Z`` at their last switch).  Every line carries the prefix of the task then current on its
CPU.

The truth follows the definitions D1-D10 of ``ftrace_fast.sched`` (its module docstring): the
simulation's own states change only at lines, tasks start in the states the "before the first
line" rules give (tasks asleep at the start are "other sleep": the letter is unknown), so
without damage the simulated timeline *is* the defined one.  Two kinds of damage are then
applied to a finished simulation, each only where its defined effect is unambiguous, and the
truth is edited accordingly:

* missing switch out of idle (``missing_idle``, D7): a ``swapper/N ==> X`` line is dropped; X's
  switch-in is inferred at its latest ``sched_wakeup`` (or ``sched_wakeup_new``) with
  ``target_cpu=N`` after N's last switch, else at N's line before X's switch-out;
* lost events (``lost``, D6): some of a CPU's lines are dropped and ``CPU:N [LOST k EVENTS]``
  (trace-cmd: ``CPU:N [k EVENTS DROPPED]``) is written before its next line.  Type "run" (the
  default): a task runs through the gap, which ends at its switch-out: CPU and task are UNKNOWN
  from the gap start to that switch, and so is every task waiting on that CPU at the gap start
  or made runnable on it (woken, forked, migrated) before the gap ends, until its next line
  (which then shows its state: a switch-in, or a migrate away).  Type "idle" (``lost_kinds``,
  off by default: D6 and D7 collide there): the CPU is idle at the gap start and the gap
  swallows ``swapper ==> U``; the truth then infers U's switch-in as D7 says.

Points the definitions leave open, as this truth settles them: a run slice is a RUNNING
interval that meets the closed window, so one reduced to an instant by the window's edge (a
switch-out on the first line, a switch-in on the last) or an inferred switch-in at its
switch-out's instant counts, with length 0; a wakeup latency sample runs to the task's next
switch-in in the file even when the task turns UNKNOWN meanwhile (``LAT_ACROSS_UNKNOWN``).
``emulate=`` (diagnosis only) makes the truth copy known deviations of the analysis instead.

Times: the simulation clock counts the trace's own units (microseconds for 6-decimal
timestamps, ns for 9 decimals, ticks for integer clocks); the truth is in the unit ``load()``
reports (ns, or ticks), i.e. clock * ``Sim.scale``.

Usage::

    import simsched
    sim = simsched.simulate(seed=1, variant="kernel5", ncpu=3, lost=True, missing_idle=True)
    sim.data                 # bytes of the trace
    sim.truth.window         # (start, end)
    sim.truth.tasks[pid]     # TaskTruth: durations, counts, intervals, latencies
    sim.truth.cpus[cpu]      # CpuTruth: busy/idle/unknown, busy intervals
    sim.lines_of(pid)        # the text lines naming a task (for failure reports)

``python tests/simsched.py SEED VARIANT`` prints a trace and its truth.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tracegen  # noqa: E402

# task states of the truth (tests map them to sched.RUNNING ...)
RUNNING, RUNNABLE, SLEEP_S, SLEEP_D, SLEEP_OTHER, DEAD, UNKNOWN = (
    "RUNNING", "RUNNABLE", "SLEEP_S", "SLEEP_D", "SLEEP_OTHER", "DEAD", "UNKNOWN")
STATES = (RUNNING, RUNNABLE, SLEEP_S, SLEEP_D, SLEEP_OTHER, DEAD, UNKNOWN)
# CPU occupancy kinds
BUSY, IDLE, CPU_UNKNOWN = "busy", "idle", "unknown"

OTHER_SLEEP_LETTERS = ("I", "T", "t", "P")
LAT_ACROSS_UNKNOWN = "keep"  # see Sim.lat_across_unknown

#: the output formats: name -> tracegen.Format keyword arguments
VARIANTS = {
    "kernel5": dict(flags=5, pidw=7),
    "kernel4": dict(flags=4, pidw=5),
    "kernel4_tgid": dict(flags=4, pidw=5, tgid=5),
    "kernel5_tgid": dict(flags=5, pidw=7, tgid=7),
    "kernel_noflags": dict(flags=0, pidw=7),
    "trace_pipe": dict(flags=5, pidw=7, header=False),
    "tracecmd": dict(family="tracecmd", dialect="compact", flags=0, pidw=5),
    "kernel_ns": dict(flags=5, pidw=7, clock="ns9"),
    "kernel_counter": dict(flags=5, pidw=7, clock="int", int_big=False),
    "kernel_tsc": dict(flags=4, pidw=5, clock="int", int_big=True),
}

SCHED_NAMES = {"sched_switch", "sched_waking", "sched_wakeup", "sched_wakeup_new",
               "sched_migrate_task", "sched_process_fork", "sched_process_exit"}


def state_of_letter(letter: str) -> str:
    """prev_state text -> truth state (R/R+ runnable, X/Z dead, S, D, any other: other sleep)."""
    if letter in ("R", "R+"):
        return RUNNABLE
    if letter in ("X", "Z"):
        return DEAD
    if letter == "S":
        return SLEEP_S
    if letter == "D":
        return SLEEP_D
    return SLEEP_OTHER


@dataclasses.dataclass
class Line:
    ts: int  # simulation clock
    cpu: int
    pid: int  # the line's own task (0: idle)
    comm: str
    tgid: int
    name: str
    f: dict  # semantic fields
    seq: int  # emission order
    kept: bool = True
    idx: int = -1  # position among the event lines of the output (0-based)
    lineno: int = 0  # 1-based line number in the text
    text: str = ""
    sample: bool = False  # sched_wakeup of a non-running task (a latency sample starts)

    def pids(self):
        """pids named by the line (its own task too), 0 excluded."""
        s = {self.pid}
        f = self.f
        for k in ("prev", "next", "task", "child"):
            if k in f:
                s.add(f[k])
        s.discard(0)
        return s

    def role(self, pid):
        """how the line names a task: 'prefix', 'prev', 'next', 'woken', 'waking', 'migrate',
        'child' (the strongest first) or None."""
        f = self.f
        if self.name == "sched_switch":
            if f["prev"] == pid:
                return "prev"
            if f["next"] == pid:
                return "next"
        if self.name == "sched_process_fork" and f["child"] == pid:
            return "child"
        if self.name == "sched_wakeup_new" and f["task"] == pid:
            return "new"
        if self.name in ("sched_wakeup", "sched_waking") and f["task"] == pid:
            return "woken" if self.name == "sched_wakeup" else "waking"
        if self.name == "sched_migrate_task" and f["task"] == pid:
            return "migrate"
        if self.pid == pid:
            return "prefix"
        return None


class Task:
    def __init__(self, pid, tgid, comm, kind, prio=120):
        self.pid, self.tgid, self.comm, self.kind, self.prio = pid, tgid, comm, kind, prio
        self.final_comm = None  # a forked child renames itself after its first switch-in
        self.state = None  # RUNNING, RUNNABLE, a sleep letter, DEAD, None (not existing)
        self.cpu = 0
        self.token = 0  # bumped whenever the task goes to sleep: stale wake timers are ignored
        self.trans = []  # [(t, state, cpu)] actual timeline
        self.seen = False  # has a line named it yet
        self.dying = False
        self.initial = None  # RUNNING / RUNNABLE / SLEEP_OTHER / 'fork'

    def set(self, t, state, cpu):
        self.state = state
        self.cpu = cpu
        ts = state if state in (RUNNING, RUNNABLE, DEAD) else state_of_letter(state)
        self.trans.append((t, ts, cpu))

    @property
    def sleeping(self):
        return self.state not in (RUNNING, RUNNABLE, DEAD, None)


class Cpu:
    def __init__(self, n):
        self.n = n
        self.cur = None  # Task or None (idle)
        self.rq = []
        self.epoch = 0
        self.occ = []  # [(t, pid)]


@dataclasses.dataclass
class TaskTruth:
    pid: int
    tgid: int
    comm: str
    intervals: list  # [(start, end, state, cpu)] in W, sorted, no zero-length
    exist_ns: int = 0
    run_ns: int = 0
    wait_ns: int = 0
    sleep_ns: int = 0
    blocked_ns: int = 0
    other_sleep_ns: int = 0
    unknown_ns: int = 0
    dead_ns: int = 0
    switches_in: int = 0
    inferred_switch_ins: int = 0
    preemptions: int = 0
    switches_out_S: int = 0
    switches_out_D: int = 0
    switches_out_other: int = 0
    switches_out_dead: int = 0
    wakeups: int = 0
    wakings: int = 0
    migrations: int = 0
    wakeup_ts: list = dataclasses.field(default_factory=list)
    migrate_ts: list = dataclasses.field(default_factory=list)
    slices: list = dataclasses.field(default_factory=list)
    lat: list = dataclasses.field(default_factory=list)  # [(wakeup ts, latency)]
    lat_waking: list = dataclasses.field(default_factory=list)  # [(waking ts, latency)]
    tgid_known: bool = False  # the task appears as a line's own task in a tgid-column format


@dataclasses.dataclass
class CpuTruth:
    cpu: int
    busy_ns: int
    idle_ns: int
    unknown_ns: int
    switches: int  # sched_switch lines on the CPU
    intervals: list  # [(start, end, kind, pid)] in W


@dataclasses.dataclass
class Truth:
    window: tuple
    tasks: dict
    cpus: dict
    unit: str  # "ns" or "ticks"


def percentile(sorted_vals, p):
    """nearest rank: sorted[ceil(p/100*n)-1] (p an int percentage)."""
    n = len(sorted_vals)
    k = -(-p * n // 100)
    return sorted_vals[max(k, 1) - 1]


# ---------------------------------------------------------------------------------------------
# interval painting


def paint(ivs, a, b, *val):
    """overwrite [a, b) of a sorted list of (start, end, *val) intervals with val."""
    if b <= a:
        return ivs
    out = []
    for iv in ivs:
        s, e = iv[0], iv[1]
        if e <= a or s >= b:
            out.append(iv)
            continue
        if s < a:
            out.append((s, a) + tuple(iv[2:]))
        if e > b:
            out.append((b, e) + tuple(iv[2:]))
    out.append((a, b) + tuple(val))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def clip(ivs, a, b):
    out = []
    for iv in ivs:
        s, e = max(iv[0], a), min(iv[1], b)
        if e > s:
            out.append((s, e) + tuple(iv[2:]))
    return out


def merge(ivs):
    """join adjacent intervals with equal values."""
    out = []
    for iv in ivs:
        if out and out[-1][1] == iv[0] and out[-1][2:] == iv[2:]:
            out[-1] = (out[-1][0], iv[1]) + tuple(iv[2:])
        else:
            out.append(iv)
    return out


# ---------------------------------------------------------------------------------------------
# the simulation


class Sim:
    #: noise() writes bare kvm_exit/kvm_entry lines on a running vCPU (simkvm writes real ones)
    random_kvm_lines = True

    def __init__(self, seed=0, variant="kernel5", ncpu=None, duration=None, lost=False,
                 missing_idle=False, forks=True, preempt=True, hog=None, n_vcpu=None,
                 redundant_wakeups=True, remote_wakeups=True, malformed=False,
                 lost_kinds=("run",), emulate=()):
        self.seed = seed
        #: diagnosis only (never in the tests): make the truth reproduce a known deviation of
        #: the analysis, to see whether it explains every difference: "phantom_slice" (a
        #: 0-length slice at the switch-out ending a LOST gap), "lat_gap_wakeup" (no latency
        #: sample for a wakeup onto a CPU inside its LOST gap), "migrate_keeps_unknown" (a
        #: migrate line does not end a waiting task's UNKNOWN), "new_not_unknown" (a task
        #: made runnable on a CPU by sched_wakeup_new inside its LOST gap stays RUNNABLE)
        self.emulate = set(emulate)
        self.phantoms = []
        self.gap_wakeups = set()
        #: a wakeup latency sample whose task turns UNKNOWN (D6) before its switch-in: "keep"
        #: (D4 as written: from the wakeup to the next switch-in in the file) or "drop"
        self.lat_across_unknown = LAT_ACROSS_UNKNOWN
        self.rng = rng = random.Random(seed)
        self.variant = variant
        kw = dict(VARIANTS[variant])
        self.F = tracegen.Format(variant=variant, **kw)
        self.ncpu = ncpu or rng.randint(2, 4)
        if self.F.clock == "ns9":
            self.dscale, self.scale = 1000, 1
            self.t0 = rng.randint(10**9, 10**13)
        elif self.F.clock == "int":
            self.dscale, self.scale = 1, 1
            self.t0 = rng.randint(10**12, 10**14) if self.F.int_big else rng.randint(0, 10**6)
        else:
            self.dscale, self.scale = 1, 1000
            self.t0 = rng.randint(10**6, 10**10)
        self.unit = "ticks" if self.F.clock == "int" else "ns"
        self.duration = (duration or rng.randint(15000, 40000)) * self.dscale
        self.opts = dict(lost=lost, missing_idle=missing_idle, forks=forks, preempt=preempt,
                         redundant_wakeups=redundant_wakeups, remote_wakeups=remote_wakeups,
                         malformed=malformed, lost_kinds=lost_kinds)
        self.hog = rng.random() < 0.6 if hog is None else hog
        self.n_vcpu = n_vcpu if n_vcpu is not None else rng.randint(1, self.ncpu + 1)
        self.heap = []
        self.seq = 0
        self.now = self.t0
        self.lines = []
        self.tasks = {}
        self.cpus = [Cpu(c) for c in range(self.ncpu)]
        self.inferred = []  # [(pid, cpu, ts, anchor Line, ts of the switch-out)]
        self.cpu_unknown = []  # [(cpu, a, b)]
        self.task_unknown = []  # [(pid, a, b)]
        self.task_paint = []  # [(pid, a, b, state, cpu)] applied in order
        self.cpu_paint = []  # [(cpu, a, b, kind, pid)]
        self.markers = []  # [(before Line, cpu, count)]
        self.artifacts = []  # descriptions
        self.next_pid = 0
        self._build()
        self._run()
        self._order()
        if missing_idle:
            self._missing_idle()
        if lost:
            self._lost()
        self._render()
        self._self_check()
        self.truth = self._truth()

    # -- helpers --------------------------------------------------------------------------
    def d(self, lo, hi):
        """a duration in clock units drawn from [lo, hi] base units."""
        return self.rng.randint(lo * self.dscale, hi * self.dscale)

    def at(self, t, fn, *args):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, args))

    def new_pid(self):
        self.next_pid += self.rng.randint(1, 40)
        return self.next_pid

    def add_task(self, comm, kind, tgid=None, prio=120):
        pid = self.new_pid()
        t = Task(pid, pid if tgid is None else tgid, comm, kind, prio)
        self.tasks[pid] = t
        return t

    def emit(self, cpu, name, **f):
        c = self.cpus[cpu]
        cur = c.cur
        if cur is None:
            pid, comm, tgid = 0, "<idle>", -1
        else:
            pid, comm, tgid = cur.pid, cur.comm, cur.tgid
        self.seq += 1
        ln = Line(ts=self.now, cpu=cpu, pid=pid, comm=comm, tgid=tgid, name=name, f=f, seq=self.seq)
        self.lines.append(ln)
        for p in ln.pids():
            self.tasks[p].seen = True
        return ln

    # -- set-up ---------------------------------------------------------------------------
    def _build(self):
        rng = self.rng
        self.next_pid = rng.randint(300, 50000)
        qemu = self.add_task("qemu-system-x86", "qemu")
        tg = qemu.pid
        self.qemu = qemu
        vcpus = [self.add_task("CPU %d/KVM" % i, "vcpu", tg) for i in range(self.n_vcpu)]
        io = self.add_task("IO iothread1", "io", tg)
        workers = [self.add_task("worker", "worker", tg) for _ in range(rng.randint(0, 2))]
        kworkers = [self.add_task("kworker/%d:%d" % (c, rng.randint(0, 2)), "kworker")
                    for c in range(self.ncpu)]
        extra = [self.add_task(n, "daemon") for n in rng.sample(
            ["rcu_preempt", "sshd", "ksoftirqd/0", "systemd-journal", "gnome-shell"], rng.randint(1, 3))]
        sleeper = self.add_task("call_rcu", "sleeper", tg)  # never woken: never in the trace
        hogs = [self.add_task("stress-ng-cpu", "hog")] if self.hog else []
        for t in [qemu, *vcpus, io, *workers, *kworkers, *extra, sleeper, *hogs]:
            t.initial = None
        t0 = self.t0
        candidates = vcpus + hogs + workers + [io] + extra
        rng.shuffle(candidates)
        for c in self.cpus:
            if candidates and rng.random() < 0.75:
                t = candidates.pop()
                c.cur = t
                t.set(t0, RUNNING, c.n)
                t.initial = RUNNING
                self.at(t0 + self.d(1, 400), self.burst_end, c.n, c.epoch)
            c.occ.append((t0, c.cur.pid if c.cur else 0))
        # some runnable tasks queued behind running ones
        busy = [c for c in self.cpus if c.cur is not None]
        for t in list(candidates):
            if busy and rng.random() < 0.4:
                c = rng.choice(busy)
                c.rq.append(t)
                t.set(t0, RUNNABLE, c.n)
                t.initial = RUNNABLE
                candidates.remove(t)
        for t in self.tasks.values():
            if t.initial is None:
                t.set(t0, "?", rng.randrange(self.ncpu))  # asleep, letter unknown -> other
                t.initial = SLEEP_OTHER
                if t.kind != "sleeper":
                    t.token += 1
                    self.at(t0 + self.d(1, 3000), self.wake_timer, t.pid, t.token)
        for c in self.cpus:
            self.at(t0 + self.d(0, 150), self.noise, c.n)
        self.at(t0 + self.d(50, 600), self.balance)
        if self.opts["redundant_wakeups"]:
            self.at(t0 + self.d(100, 1500), self.redundant_wakeup)

    def _run(self):
        end = self.t0 + self.duration
        while self.heap:
            t, _, fn, args = heapq.heappop(self.heap)
            if t > end:
                break
            assert t >= self.now
            self.now = t
            fn(*args)

    # -- behaviours -----------------------------------------------------------------------
    def later(self, lo, hi, same_cpu):
        """a delay for a follow-up: >= 1 unit when it happens on another CPU (so that no two
        causally related lines of different CPUs share a timestamp)."""
        dl = self.d(lo, hi)
        return dl if same_cpu else max(dl, 1)

    def switch(self, cpu, prev_state, nxt):
        c = self.cpus[cpu]
        prev = c.cur
        f = dict(prev=prev.pid if prev else 0, prev_comm=prev.comm if prev else "swapper/%d" % cpu,
                 prev_prio=prev.prio if prev else 120, prev_state=prev_state,
                 next=nxt.pid if nxt else 0, next_comm=nxt.comm if nxt else "swapper/%d" % cpu,
                 next_prio=nxt.prio if nxt else 120)
        self.emit(cpu, "sched_switch", **f)
        t = self.now
        if prev is not None:
            if prev_state in ("R", "R+"):
                prev.set(t, RUNNABLE, cpu)
                c.rq.append(prev)
            elif prev_state in ("X", "Z"):
                prev.set(t, DEAD, cpu)
            else:
                prev.set(t, prev_state, cpu)
        c.cur = nxt
        c.epoch += 1
        c.occ.append((t, nxt.pid if nxt else 0))
        if nxt is not None:
            nxt.set(t, RUNNING, cpu)
            if nxt.final_comm:
                nxt.comm, nxt.final_comm = nxt.final_comm, None
            self.at(t + self.burst_len(nxt), self.burst_end, cpu, c.epoch)

    def burst_len(self, t):
        k = t.kind
        if k == "vcpu":
            return self.d(10, 800)
        if k == "hog":
            return self.d(200, 2500)
        if k in ("io", "kworker"):
            return self.d(2, 80)
        if k == "worker":
            return self.d(10, 400)
        return self.d(2, 60)

    def sleep_choice(self, t):
        """(letter, duration or None for 'never woken')"""
        rng = self.rng
        k = t.kind
        if k == "vcpu":
            return "S", self.d(20, 3000)
        if k == "io":
            return (rng.choice("SD"), self.d(30, 1500))
        if k == "worker":
            return (rng.choice("SDD"), self.d(50, 1500))
        if k == "kworker":
            return "I", self.d(100, 3000)
        if k == "qemu":
            return "S", self.d(300, 4000)
        if rng.random() < 0.15:
            return rng.choice(OTHER_SLEEP_LETTERS), self.d(100, 3000)
        return rng.choice("SSD"), self.d(50, 3000)

    def burst_end(self, cpu, epoch):
        c = self.cpus[cpu]
        if c.epoch != epoch or c.cur is None:
            return
        t = c.cur
        rng = self.rng
        if t.dying:
            return
        if t.kind == "hog":
            if c.rq:
                self.switch(cpu, rng.choice(("R", "R+")), c.rq.pop(0))
            else:
                self.at(self.now + self.burst_len(t), self.burst_end, cpu, epoch)
            return
        if t.kind == "worker" and self.opts["forks"] and rng.random() < 0.12:
            # exit: sched_process_exit, then the last switch (X or Z) a little later
            t.dying = True
            self.emit(cpu, "sched_process_exit", task=t.pid, task_comm=t.comm, prio=t.prio)
            self.at(self.now + self.d(1, 5), self.die, cpu, epoch)
            return
        if t.kind in ("qemu", "worker") and self.opts["forks"] and rng.random() < 0.25 \
                and sum(1 for x in self.tasks.values() if x.kind == "worker" and x.state != DEAD) < 5:
            self.fork(cpu, t)
        if t.kind in ("vcpu", "worker", "io") and rng.random() < 0.25:
            # keep running (another burst); preempted by a waiting task sometimes
            if c.rq and rng.random() < 0.5:
                self.switch(cpu, "R+", c.rq.pop(0))
            else:
                self.at(self.now + self.burst_len(t), self.burst_end, cpu, epoch)
            return
        letter, dur = self.sleep_choice(t)
        self.switch(cpu, letter, c.rq.pop(0) if c.rq else None)
        t.token += 1
        if dur is not None:
            self.at(self.now + dur, self.wake_timer, t.pid, t.token)

    def die(self, cpu, epoch):
        c = self.cpus[cpu]
        assert c.epoch == epoch and c.cur is not None and c.cur.dying
        self.switch(cpu, self.rng.choice("XXZ"), c.rq.pop(0) if c.rq else None)

    def fork(self, cpu, parent):
        rng = self.rng
        child = self.add_task(parent.comm, "worker", parent.tgid)
        child.final_comm = "worker" if rng.random() < 0.8 else "worker-%d" % rng.randint(0, 9)
        child.initial = "fork"
        target = rng.randrange(self.ncpu)
        self.emit(cpu, "sched_process_fork", task=parent.pid, task_comm=parent.comm,
                  child=child.pid, child_comm=child.comm)
        self.emit(cpu, "sched_wakeup_new", task=child.pid, task_comm=child.comm, prio=child.prio,
                  target_cpu=target)
        child.set(self.now, RUNNABLE, target)
        self.enqueue(child, target, cpu)

    def enqueue(self, t, target, from_cpu):
        """t became runnable on target by a line on from_cpu: run it there soon."""
        tc = self.cpus[target]
        tc.rq.append(t)
        same = target == from_cpu
        if tc.cur is None:
            self.at(self.now + self.later(0, 20, same), self.resched, target)
        elif self.opts["preempt"] and tc.cur.kind != "hog" and self.rng.random() < 0.35:
            self.at(self.now + self.later(0, 30, same), self.preempt, target, tc.epoch)
        elif tc.cur.kind == "hog" and self.rng.random() < 0.8:
            self.at(self.now + self.later(0, 30, same), self.preempt, target, tc.epoch)

    def resched(self, cpu):
        c = self.cpus[cpu]
        if c.cur is None and c.rq:
            self.switch(cpu, "R", c.rq.pop(0))

    def preempt(self, cpu, epoch):
        c = self.cpus[cpu]
        if c.epoch != epoch or c.cur is None or c.cur.dying or not c.rq:
            return
        self.switch(cpu, "R+" if self.rng.random() < 0.8 else "R", c.rq.pop(0))

    def wake_timer(self, pid, token):
        t = self.tasks[pid]
        if t.token != token or not t.sleeping:
            return
        rng = self.rng
        waker = rng.randrange(self.ncpu)
        prev_cpu = t.cpu
        if rng.random() < 0.7:
            target = prev_cpu
        else:
            idle = [c.n for c in self.cpus if c.cur is None and not c.rq]
            target = rng.choice(idle) if idle else rng.randrange(self.ncpu)
        self.emit(waker, "sched_waking", task=pid, task_comm=t.comm, prio=t.prio, target_cpu=target)
        remote = self.opts["remote_wakeups"] and target != waker and rng.random() < 0.35
        on = target if remote else waker
        self.at(self.now + self.later(0, 4, on == waker), self.wakeup, pid, token, target, on)

    def wakeup(self, pid, token, target, on):
        t = self.tasks[pid]
        if t.token != token or not t.sleeping:  # cannot happen: only one timer per sleep
            raise AssertionError("stale wakeup")
        ln = self.emit(on, "sched_wakeup", task=pid, task_comm=t.comm, prio=t.prio, target_cpu=target)
        ln.sample = True
        prev_cpu = t.cpu
        t.set(self.now, RUNNABLE, target)
        if target != prev_cpu:  # moved: migrate line, while runnable (after the wakeup)
            self.emit(on, "sched_migrate_task", task=pid, task_comm=t.comm, prio=t.prio,
                      orig_cpu=prev_cpu, dest_cpu=target)
        self.enqueue(t, target, on)

    def redundant_wakeup(self):
        """a wakeup of a running task (counted, changes nothing)."""
        rng = self.rng
        running = [c.cur for c in self.cpus if c.cur is not None and c.cur.seen and not c.cur.dying]
        if running and self.ncpu > 1:
            t = rng.choice(running)
            waker = rng.choice([c for c in range(self.ncpu) if c != t.cpu])
            self.emit(waker, "sched_waking", task=t.pid, task_comm=t.comm, prio=t.prio, target_cpu=t.cpu)
            self.at(self.now + self.d(0, 3), self.redundant_wakeup2, t.pid, waker)
        self.at(self.now + self.d(200, 3000), self.redundant_wakeup)

    def redundant_wakeup2(self, pid, waker):
        t = self.tasks[pid]
        if t.state == RUNNING:
            self.emit(waker, "sched_wakeup", task=pid, task_comm=t.comm, prio=t.prio, target_cpu=t.cpu)
        # else: the task went to sleep or was preempted meanwhile: the waking stays alone

    def balance(self):
        """move a runnable task from a busy CPU's queue to an idle CPU (line on the idle one),
        or between two busy CPUs."""
        rng = self.rng
        idle = [c for c in self.cpus if c.cur is None and not c.rq]
        loaded = [c for c in self.cpus if c.rq]
        if loaded:
            src = rng.choice(loaded)
            if idle:
                dst = rng.choice(idle)
            else:
                others = [c for c in self.cpus if c is not src]
                dst = rng.choice(others) if others and rng.random() < 0.3 else None
            if dst is not None:
                t = src.rq.pop(rng.randrange(len(src.rq)))
                self.emit(dst.n, "sched_migrate_task", task=t.pid, task_comm=t.comm, prio=t.prio,
                          orig_cpu=src.n, dest_cpu=dst.n)
                t.set(self.now, RUNNABLE, dst.n)
                self.enqueue(t, dst.n, dst.n)
        self.at(self.now + self.d(50, 800), self.balance)

    def noise(self, cpu, again=True):
        rng = self.rng
        c = self.cpus[cpu]
        cur = c.cur
        if cur is not None and cur.kind == "vcpu" and self.random_kvm_lines:
            self.emit(cpu, "kvm_exit")
            if rng.random() < 0.8:
                self.emit(cpu, "kvm_entry")
        elif cur is None:
            self.emit(cpu, rng.choice(("irq_handler_entry", "softirq_entry", "cpu_idle")))
        else:
            self.emit(cpu, rng.choice(("irq_handler_entry", "irq_handler_exit", "softirq_entry",
                                       "softirq_exit", "kvm_pio", "sched_stat_runtime")))
        if again:
            self.at(self.now + self.d(5, 250), self.noise, cpu)

    # -- output order ---------------------------------------------------------------------
    def _order(self):
        """global order: by time; at equal times lines of different CPUs are interleaved at
        random unless they name a common task (then emission order is kept)."""
        rng = self.rng
        lines = self.lines
        out = []
        i = 0
        while i < len(lines):
            j = i
            while j < len(lines) and lines[j].ts == lines[i].ts:
                j += 1
            group = lines[i:j]
            if len(group) > 1:
                pids = [g.pids() for g in group]
                pending = list(range(len(group)))
                while pending:
                    ok = []
                    for k in pending:
                        blocked = False
                        for m in pending:
                            if m >= k:
                                break
                            if group[m].cpu == group[k].cpu or (pids[m] & pids[k]):
                                blocked = True
                                break
                        if not blocked:
                            ok.append(k)
                    k = rng.choice(ok)
                    pending.remove(k)
                    out.append(group[k])
            else:
                out.append(group[0])
            i = j
        self.lines = out
        for n, ln in enumerate(out):
            ln.idx = n
        self.by_cpu = {c: [ln for ln in out if ln.cpu == c] for c in range(self.ncpu)}
        for c, ls in self.by_cpu.items():
            for k, ln in enumerate(ls):
                ln.cpos = k
        self.by_pid = {}
        for ln in out:
            for p in ln.pids():
                self.by_pid.setdefault(p, []).append(ln)
        self.reserved_cpu = {c: [] for c in range(self.ncpu)}  # [(idx a, idx b)]
        self.reserved_pid = {}

    def _free(self, cpu, a, b, pids):
        for (x, y) in self.reserved_cpu[cpu]:
            if not (b < x or a > y):
                return False
        for p in pids:
            for (x, y) in self.reserved_pid.get(p, ()):
                if not (b < x or a > y):
                    return False
        return True

    def _reserve(self, cpu, a, b, pids):
        self.reserved_cpu[cpu].append((a, b))
        for p in pids:
            self.reserved_pid.setdefault(p, []).append((a, b))

    def _kept_on(self, cpu):
        return [ln for ln in self.by_cpu[cpu] if ln.kept]

    def _runnable_since(self, pid, before):
        """the task's state just before line idx `before`, from its kept lines: the Line that
        made it runnable (sched_wakeup from sleep, wakeup_new, R/R+ switch-out), None when it
        is runnable since the start, or "no" when it is not runnable then."""
        r = None if self.tasks[pid].initial == RUNNABLE else "no"
        for ln in self.by_pid.get(pid, ()):
            if ln.idx >= before:
                break
            if not ln.kept:
                continue
            ro = ln.role(pid)
            if ro == "new" or (ro == "woken" and ln.sample):
                r = ln
            elif ro == "prev":
                r = ln if ln.f["prev_state"] in ("R", "R+") else "no"
            elif ro in ("next", "child"):
                r = "no"
        return r

    def _only_migrations(self, pid, a, b):
        """no kept line names pid strictly between idx a and b, except sched_migrate_task."""
        for ln in self.by_pid.get(pid, ()):
            if a < ln.idx < b and ln.kept and ln.name != "sched_migrate_task":
                return False
        return True

    def _infer_point(self, pid, cpu, z, L, o, gap_start=None):
        """(ts, anchor line, branch) of the switch-in of pid inferred at its switch-out o on
        cpu, where the switch L putting it there is dropped and z is the cpu's last switch
        before; None where the definitions would leave the result open."""
        r = self._runnable_since(pid, L.idx)
        if r == "no":
            return None
        if not self._only_migrations(pid, r.idx if r is not None else -1, L.idx):
            return None
        w = None
        for ln in self.by_pid.get(pid, ()):
            if ln.idx >= o.idx:
                break
            # sched_wakeup_new carries target_cpu too: it counts as the task's wakeup here
            if ln.kept and ln.name in ("sched_wakeup", "sched_wakeup_new") and ln.f["task"] == pid \
                    and ln.f["target_cpu"] == cpu:
                w = ln
        if w is not None and w.idx > z.idx:
            if w.ts == z.ts or w is not r:
                return None  # 'after the last switch' would hang on a tie / ran elsewhere since
            if gap_start is not None and w.idx <= gap_start.idx:
                return None  # would be running on the cpu when its LOST gap starts
            return w.ts, w, "wakeup"
        p = [ln for ln in self._kept_on(cpu) if ln.idx < o.idx][-1]
        if r is not None and r.idx >= p.idx:
            return None
        return p.ts, p, "prevline"

    # -- damage: missing switch out of idle -----------------------------------------------
    def _missing_idle(self):
        rng = self.rng
        cands = [ln for ln in self.lines if ln.name == "sched_switch" and ln.f["prev"] == 0
                 and ln.f["next"] != 0]
        rng.shuffle(cands)
        want = rng.randint(1, 4)
        done = 0
        for L in cands:
            if done >= want:
                break
            x, cpu = L.f["next"], L.cpu
            on = self.by_cpu[cpu]
            before = [ln for ln in on[:L.cpos] if ln.kept]
            sw_before = [ln for ln in before if ln.name == "sched_switch"]
            if not sw_before:
                continue
            z = sw_before[-1]
            after = on[L.cpos + 1:]
            o = next((ln for ln in after if ln.name == "sched_switch"), None)
            if o is None or not o.kept or o.f["prev"] != x:
                continue
            if not all(ln.kept for ln in on[z.cpos:o.cpos + 1] if ln is not L):
                continue
            xs = self.by_pid[x]
            if not any(ln.idx < L.idx and ln.kept for ln in xs):
                continue  # L would be x's first line
            # x named elsewhere while it runs: not allowed (redundant wakeups)
            if any(L.idx < ln.idx < o.idx and ln.cpu != cpu for ln in xs):
                continue
            if any(L.idx < ln.idx < o.idx and ln.role(x) != "prefix" for ln in xs):
                continue
            if not self._free(cpu, z.idx, o.idx, [x]):
                continue
            L.kept = False
            ip = self._infer_point(x, cpu, z, L, o)
            if ip is None:
                L.kept = True
                continue
            i, anchor, branch = ip
            self._reserve(cpu, z.idx, o.idx, [x])
            self.inferred.append((x, cpu, i, anchor, o.ts))
            s = L.ts
            self.task_paint.append((x, i, o.ts, RUNNING, cpu))
            if i > s:
                self.task_paint.append((x, s, i, RUNNABLE, cpu))
                self.cpu_paint.append((cpu, s, i, IDLE, 0))
            self.cpu_paint.append((cpu, i, o.ts, BUSY, x))
            self.artifacts.append("missing idle switch-out: cpu %d %s->%d at %d dropped; inferred "
                                  "at %d (%s)" % (cpu, "swapper", x, L.ts, i, branch))
            done += 1

    # -- damage: lost events --------------------------------------------------------------
    def _lost(self):
        rng = self.rng
        want = rng.randint(1, 4)
        done = 0
        tries = 0
        kinds = list(self.opts["lost_kinds"])
        while done < want and tries < 200:
            tries += 1
            kind = rng.choice(kinds)
            if kind == "run":
                ok = self._lost_run()
            else:
                ok = self._lost_idle()
            done += ok

    def _lost_run(self):
        rng = self.rng
        cpu = rng.randrange(self.ncpu)
        on = self.by_cpu[cpu]
        sw = [ln for ln in on if ln.name == "sched_switch" and ln.kept and ln.f["next"] != 0]
        if not sw:
            return False
        s = rng.choice(sw)
        x = s.f["next"]
        o = next((ln for ln in on[s.cpos + 1:] if ln.name == "sched_switch"), None)
        if o is None or not o.kept or o.f["prev"] != x:
            return False
        mid = on[s.cpos + 1:o.cpos]
        if any(not ln.kept for ln in mid):
            return False
        # a0: a noise line after the switch-in; everything after it up to o must be noise
        tail = 0
        while tail < len(mid) and mid[len(mid) - 1 - tail].name not in SCHED_NAMES:
            tail += 1
        noise = mid[len(mid) - tail:]
        if len(noise) < 2:
            return False
        k = rng.randrange(0, len(noise) - 1)
        a0 = noise[k]
        if a0.ts == s.ts:
            return False
        dropped = noise[k + 1:]
        if any(a0.idx < ln.idx < o.idx for ln in self.by_pid[x]
               if ln.cpu != cpu):
            return False
        waiting = self._waiting(cpu, a0, o)
        if waiting is None:
            return False
        if not self._free(cpu, s.idx, o.idx, [x] + [w[0] for w in waiting]):
            return False
        self._reserve(cpu, s.idx, o.idx, [x] + [w[0] for w in waiting])
        for ln in dropped:
            ln.kept = False
        self.markers.append((o, cpu, len(dropped)))
        self.cpu_paint.append((cpu, a0.ts, o.ts, CPU_UNKNOWN, -1))
        self.task_paint.append((x, a0.ts, o.ts, UNKNOWN, cpu))
        for (p, u, nl) in waiting:
            self.task_paint.append((p, u, nl.ts if nl is not None else self.now + 1, UNKNOWN, cpu))
        self.phantoms.append((x, o.ts))
        self.gap_wakeups |= getattr(self, "_gap_wakeups_pending", set())
        self.artifacts.append("lost(run): cpu %d pid %d unknown %d..%d, %d lines dropped; waiting "
                              "tasks unknown: %s" % (cpu, x, a0.ts, o.ts, len(dropped),
                                                    [(p, u, nl.ts if nl else None) for p, u, nl in waiting]))
        return True

    def _waiting(self, cpu, a0, o):
        """D6: the tasks RUNNABLE on cpu at the gap start a0 or made so (woken or migrated onto
        it) before the gap's end o: [(pid, unknown from, next line or None)], each UNKNOWN
        until its next line.  None when one of them makes the outcome depend on an open
        point (its next line does not show a state on its own, or it has no line yet)."""
        out = []
        self._gap_wakeups_pending = set()
        for p, t in self.tasks.items():
            st = None
            for (tt, s, c) in t.trans:
                if tt > a0.ts:
                    break
                st = (s, c)
            start = None
            if st is not None and st[0] == RUNNABLE and st[1] == cpu:
                r = self._runnable_since(p, a0.idx + 1)
                if not isinstance(r, Line):
                    # runnable on cpu without a line saying so (since the start), or the
                    # trans/line views disagree at a tie: leave such gaps alone
                    return None
                start = a0
            later = [ln for ln in self.by_pid.get(p, ()) if ln.kept and a0.idx < ln.idx]
            if start is None:
                for ln in later:
                    if ln.idx >= o.idx:
                        break
                    ro = ln.role(p)
                    if ro == "new" and "new_not_unknown" in self.emulate:
                        continue
                    if (ro in ("woken", "new") and ln.f["target_cpu"] == cpu and (ro == "new" or ln.sample)) \
                            or (ro == "migrate" and ln.f["dest_cpu"] == cpu):
                        start = ln
                        break
                if start is None:
                    continue
            if start is not a0 and start.name == "sched_wakeup":
                self._gap_wakeups_pending.add(start.idx)
            nl = next((ln for ln in later if ln.idx > start.idx), None)
            if "migrate_keeps_unknown" in self.emulate:
                nl = next((ln for ln in later if ln.idx > start.idx and ln.name != "sched_migrate_task"), None)
            if nl is not None and nl.ts == start.ts:
                return None  # zero-length UNKNOWN: not worth an open question
            if nl is not None:
                ro = nl.role(p)
                if ro == "next":
                    pass
                elif ro == "migrate" and not (nl.idx < o.idx and nl.f["dest_cpu"] == cpu):
                    pass
                else:
                    return None
            out.append((p, start.ts, nl))
        return out

    def _lost_idle(self):
        rng = self.rng
        cpu = rng.randrange(self.ncpu)
        on = self.by_cpu[cpu]
        cands = [ln for ln in on if ln.name == "sched_switch" and ln.kept and ln.f["prev"] == 0
                 and ln.f["next"] != 0]
        if not cands:
            return False
        L = rng.choice(cands)
        u = L.f["next"]
        before = on[:L.cpos]
        sw_before = [ln for ln in before if ln.name == "sched_switch"]
        if not sw_before or not sw_before[-1].kept:
            return False
        z = sw_before[-1]
        o = next((ln for ln in on[L.cpos + 1:] if ln.name == "sched_switch"), None)
        if o is None or not o.kept or o.f["prev"] != u:
            return False
        if any(not ln.kept for ln in on[z.cpos:o.cpos + 1]):
            return False
        mid_after = on[L.cpos + 1:o.cpos]
        if any(ln.name in SCHED_NAMES for ln in mid_after):
            return False
        # a0: any line in [z, L) after which only noise precedes L
        idle_part = on[z.cpos:L.cpos]
        j = len(idle_part)
        while j > 1 and idle_part[j - 1].name not in SCHED_NAMES:
            j -= 1
        a0 = idle_part[rng.randrange(j - 1, len(idle_part))]
        us = self.by_pid[u]
        if not any(ln.idx < L.idx and ln.kept for ln in us):
            return False
        if any(L.idx < ln.idx < o.idx and ln.cpu != cpu for ln in us):
            return False
        if not self._free(cpu, z.idx, o.idx, [u]):
            return False
        dropped = [ln for ln in on[a0.cpos + 1:o.cpos]]
        for ln in dropped:
            ln.kept = False
        ip = self._infer_point(u, cpu, z, L, o, gap_start=a0)
        if ip is not None:
            i, anchor, branch = ip
        if ip is None or i > L.ts:
            for ln in dropped:
                ln.kept = True
            return False
        self._reserve(cpu, z.idx, o.idx, [u])
        self.inferred.append((u, cpu, i, anchor, o.ts))
        self.markers.append((o, cpu, len(dropped)))
        self.task_paint.append((u, i, o.ts, RUNNING, cpu))
        self.cpu_paint.append((cpu, a0.ts, o.ts, CPU_UNKNOWN, -1))
        self.artifacts.append("lost(idle): cpu %d unknown %d..%d, %d lines dropped incl. swapper->%d;"
                              " inferred at %d (%s)" % (cpu, a0.ts, o.ts, len(dropped), u, i, branch))
        return True

    # -- text -----------------------------------------------------------------------------
    def _payload(self, ln):
        F = self.F
        f = ln.f
        compact = F.dialect == "compact"
        n = ln.name
        if n == "sched_switch":
            if compact:
                return "%s:%d [%d] %s ==> %s:%d [%d]" % (
                    f["prev_comm"], f["prev"], f["prev_prio"], f["prev_state"], f["next_comm"],
                    f["next"], f["next_prio"])
            return ("prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s ==> next_comm=%s "
                    "next_pid=%d next_prio=%d" % (f["prev_comm"], f["prev"], f["prev_prio"],
                                                  f["prev_state"], f["next_comm"], f["next"],
                                                  f["next_prio"]))
        if n in ("sched_waking", "sched_wakeup", "sched_wakeup_new"):
            if compact and n != "sched_waking":
                return "%s:%d [%d] CPU:%03d" % (f["task_comm"], f["task"], f["prio"], f["target_cpu"])
            return "comm=%s pid=%d prio=%d target_cpu=%03d" % (f["task_comm"], f["task"], f["prio"],
                                                               f["target_cpu"])
        if n == "sched_migrate_task":
            return "comm=%s pid=%d prio=%d orig_cpu=%d dest_cpu=%d" % (
                f["task_comm"], f["task"], f["prio"], f["orig_cpu"], f["dest_cpu"])
        if n == "sched_process_fork":
            return "comm=%s pid=%d child_comm=%s child_pid=%d" % (
                f["task_comm"], f["task"], f["child_comm"], f["child"])
        if n == "sched_process_exit":
            return "comm=%s pid=%d prio=%d" % (f["task_comm"], f["task"], f["prio"])
        if n == "cpu_idle":
            return "state=%d cpu_id=%d" % (self.rng.choice((1, 2, 4294967295)), ln.cpu)
        if n == "sched_stat_runtime":
            return "comm=%s pid=%d runtime=%d [ns]" % (ln.comm, ln.pid, self.rng.randint(1, 10**6))
        if n == "kvm_pio":
            return "pio_write at 0xc010 size 2 count 1 val 0x%x" % self.rng.randint(0, 255)
        return tracegen._payload(self.rng, n, F, self.ncpu)[0]

    def _render(self):
        F = self.F
        rng = self.rng
        out = []
        if F.family == "tracecmd":
            out.append("cpus=%d" % self.ncpu)
        elif F.header:
            out.extend(tracegen.kernel_header(F, len(self.lines), self.ncpu))
        before = {id(o): (cpu, k) for (o, cpu, k) in self.markers}
        kept = [ln for ln in self.lines if ln.kept]
        for n, ln in enumerate(kept):
            if id(ln) in before:
                cpu, k = before[id(ln)]
                out.append(("CPU:%d [%d EVENTS DROPPED]" if F.family == "tracecmd"
                            else "CPU:%d [LOST %d EVENTS]") % (cpu, k))
            ev = tracegen.ExpectedEvent(name=ln.name, line=0, ts=0, cpu=ln.cpu, pid=ln.pid,
                                        tgid=ln.tgid if F.tgid else -1, comm=ln.comm,
                                        flags=tracegen.gen_flags(rng, F.flags).encode(), fields={})
            ln.text = tracegen.render_line(rng, F, ev, ln.ts, self._payload(ln), ln.comm)
            out.append(ln.text)
            ln.lineno = len(out)
        if self.opts["malformed"]:
            out.insert(len(out) - rng.randint(0, min(3, len(kept))),
                       "this line is not an ftrace line")
        self.text_lines = out
        self.kept = kept

    @property
    def text(self):
        return "\n".join(self.text_lines) + "\n"

    @property
    def data(self):
        return self.text.encode()

    def write(self, path):
        with open(path, "wb") as fh:
            fh.write(self.data)

    def lines_of(self, pid=None, cpu=None, around=None, limit=60):
        """text lines naming a task (or of a CPU), for failure reports; around=(a, b) limits
        them to a time span (truth units)."""
        res = []
        for ln in self.kept:
            if pid is not None and pid not in ln.pids():
                continue
            if cpu is not None and ln.cpu != cpu:
                continue
            if around is not None:
                a, b = around
                if not (a <= ln.ts * self.scale <= b):
                    continue
            res.append("%6d: %s" % (ln.lineno, ln.text))
        if len(res) > limit:
            res = res[:limit // 2] + ["   ..."] + res[-limit // 2:]
        return "\n".join(res)

    # -- checks of the construction ---------------------------------------------------------
    def _self_check(self):
        kept = self.kept
        first = {}
        for ln in kept:
            for p in ln.pids():
                if p not in first:
                    first[p] = ln
        for p, ln in first.items():
            t = self.tasks[p]
            ro = ln.role(p)
            want = {RUNNING: ("prefix", "prev"), RUNNABLE: ("next", "migrate"),
                    SLEEP_OTHER: ("woken", "waking"), "fork": ("child",)}[t.initial]
            if ro not in want:
                raise AssertionError("simsched: pid %d starts %s but its first line is a %s: %s"
                                     % (p, t.initial, ro, ln))
        seen = set()
        cfirst = {}
        for ln in kept:
            if ln.cpu not in cfirst:
                cfirst[ln.cpu] = (ln, set(seen))
            seen |= ln.pids()
        for c, (ln, seen_before) in cfirst.items():
            occ0 = self.cpus[c].occ[0][1]
            if ln.pid != occ0 or (occ0 and occ0 in seen_before):
                raise AssertionError("simsched: cpu %d occupant %d at start but first line %s" % (c, occ0, ln))
        last = {}
        for ln in kept:
            if ln.ts < last.get(ln.cpu, ln.ts):
                raise AssertionError("cpu lines out of order")
            last[ln.cpu] = ln.ts

    # -- truth ----------------------------------------------------------------------------
    def _truth(self):
        kept = self.kept
        sc = self.scale
        ws, we = kept[0].ts, kept[-1].ts
        for ln in kept:
            ws, we = min(ws, ln.ts), max(we, ln.ts)
        end_sim = max(we, self.now) + 1
        named = {}
        for ln in kept:
            for p in ln.pids():
                named.setdefault(p, []).append(ln)
        tasks = {}
        for pid, lns in named.items():
            t = self.tasks[pid]
            ivs = []
            tr = t.trans
            for k, (a, st, cpu) in enumerate(tr):
                b = tr[k + 1][0] if k + 1 < len(tr) else end_sim
                if b > a:
                    ivs.append((a, b, st, cpu))
            for (p, a, b, st, cpu) in self.task_paint:
                if p == pid:
                    ivs = paint(ivs, a, b, st, cpu)
            # run slices: the RUNNING intervals that meet the closed window, clipped (a task
            # switched out at its first instant or in at its last one has a 0-length slice)
            slices = [(min(b, we) - max(a, ws)) * sc for (a, b, st, cpu) in merge(ivs)
                      if st == RUNNING and a <= we and b >= ws]
            # an inferred switch-in at the very instant of the switch-out: a 0-length slice
            slices += [0 for (p, cpu, i, anchor, o_ts) in self.inferred if p == pid and i == o_ts]
            if "phantom_slice" in self.emulate:
                slices += [0 for (p, o_ts) in self.phantoms if p == pid]
            ivs = merge(clip(ivs, ws, we))
            ivs = [(a * sc, b * sc, st, cpu) for (a, b, st, cpu) in ivs]
            last = lns[-1]  # the comm of the last line naming the task
            ro = last.role(pid)
            comm = {"prev": last.f.get("prev_comm"), "next": last.f.get("next_comm"),
                    "child": last.f.get("child_comm"), "prefix": last.comm}.get(ro, last.f.get("task_comm"))
            tt = TaskTruth(pid=pid, tgid=t.tgid, comm=comm, intervals=ivs, slices=slices)
            tt.tgid_known = bool(self.F.tgid) and any(ln.pid == pid for ln in lns)
            dur = {}
            for (a, b, st, cpu) in ivs:
                dur[st] = dur.get(st, 0) + b - a
            tt.run_ns, tt.wait_ns = dur.get(RUNNING, 0), dur.get(RUNNABLE, 0)
            tt.sleep_ns, tt.blocked_ns = dur.get(SLEEP_S, 0), dur.get(SLEEP_D, 0)
            tt.other_sleep_ns, tt.unknown_ns = dur.get(SLEEP_OTHER, 0), dur.get(UNKNOWN, 0)
            tt.dead_ns = dur.get(DEAD, 0)
            tt.exist_ns = sum(v for k, v in dur.items() if k != DEAD)
            switch_ins = []  # (key idx, ts)
            for ln in lns:
                ro = ln.role(pid)
                if ln.name == "sched_switch":
                    if ro == "next":
                        tt.switches_in += 1
                        switch_ins.append((ln.idx, ln.ts))
                    elif ro == "prev":
                        s = ln.f["prev_state"]
                        st = state_of_letter(s)
                        if st == RUNNABLE:
                            tt.preemptions += 1
                        elif st == SLEEP_S:
                            tt.switches_out_S += 1
                        elif st == SLEEP_D:
                            tt.switches_out_D += 1
                        elif st == DEAD:
                            tt.switches_out_dead += 1
                        else:
                            tt.switches_out_other += 1
                elif ln.name == "sched_wakeup" and ro == "woken":
                    tt.wakeups += 1
                    tt.wakeup_ts.append(ln.ts * sc)
                elif ln.name == "sched_waking" and ro == "waking":
                    tt.wakings += 1
                elif ln.name == "sched_migrate_task" and ro == "migrate":
                    tt.migrations += 1
                    tt.migrate_ts.append(ln.ts * sc)
            for (p, cpu, i, anchor, o_ts) in self.inferred:
                if p == pid:
                    tt.switches_in += 1
                    tt.inferred_switch_ins += 1
                    switch_ins.append((anchor.idx, i))
            switch_ins.sort()
            wakings = [ln for ln in lns if ln.name == "sched_waking" and ln.f["task"] == pid]
            unknown = [(a, b) for (p, a, b, st, cpu) in self.task_paint if p == pid and st == UNKNOWN]
            for ln in lns:
                if ln.name == "sched_wakeup" and ln.f["task"] == pid and ln.sample:
                    nxt = next(((k, ts) for (k, ts) in switch_ins if k >= ln.idx), None)
                    if nxt is None:
                        continue
                    if "lat_gap_wakeup" in self.emulate and ln.idx in self.gap_wakeups:
                        continue
                    if self.lat_across_unknown == "drop" and any(a < nxt[1] and b > ln.ts for (a, b) in unknown):
                        # UNKNOWN (D6) before the switch-in: the real switch-in may be among
                        # the lost lines; "drop" treats it as not in the file
                        continue
                    tt.lat.append((ln.ts * sc, (nxt[1] - ln.ts) * sc))
                    wk = [w for w in wakings if w.idx < ln.idx]
                    if wk:
                        tt.lat_waking.append((wk[-1].ts * sc, (nxt[1] - wk[-1].ts) * sc))
            tasks[pid] = tt
        cpus = {}
        for c in self.cpus:
            lns = [ln for ln in kept if ln.cpu == c.n]
            if not lns:
                continue
            ivs = []
            for k, (a, pid) in enumerate(c.occ):
                b = c.occ[k + 1][0] if k + 1 < len(c.occ) else end_sim
                if b > a:
                    ivs.append((a, b, BUSY if pid else IDLE, pid))
            for (cpu, a, b, kind, pid) in self.cpu_paint:
                if cpu == c.n:
                    ivs = paint(ivs, a, b, kind, pid)
            ivs = clip(ivs, ws, we)
            ivs = [(a * sc, b * sc, kind, pid) for (a, b, kind, pid) in ivs]
            tot = {BUSY: 0, IDLE: 0, CPU_UNKNOWN: 0}
            for (a, b, kind, pid) in ivs:
                tot[kind] += b - a
            cpus[c.n] = CpuTruth(cpu=c.n, busy_ns=tot[BUSY], idle_ns=tot[IDLE],
                                 unknown_ns=tot[CPU_UNKNOWN],
                                 switches=sum(1 for ln in lns if ln.name == "sched_switch"),
                                 intervals=ivs)
        truth = Truth(window=(ws * sc, we * sc), tasks=tasks, cpus=cpus, unit=self.unit)
        self._check_truth(truth)
        return truth

    def _check_truth(self, truth):
        """the two views agree: outside its unknown spans a CPU is busy with pid exactly when
        that task is RUNNING on it; a task's intervals tile its life to the window's end."""
        ws, we = truth.window
        for pid, tt in truth.tasks.items():
            ivs = tt.intervals
            if not ivs:  # forked at the window's last instant
                assert self.tasks[pid].initial == "fork", pid
                continue
            for x, y in zip(ivs, ivs[1:]):
                assert x[1] == y[0], ("gap/overlap", pid, x, y)
            assert not ivs or ivs[-1][1] == we, (pid, ivs[-1])
            assert ivs[0][0] == ws or self.tasks[pid].initial == "fork", (pid, ivs[0])
        for cpu, ct in truth.cpus.items():
            unknown = [(a, b) for (a, b, k, p) in ct.intervals if k == CPU_UNKNOWN]
            busy = set()
            for (a, b, k, p) in ct.intervals:
                if k == BUSY:
                    busy.add((a, b, p))
            run = []
            for pid, tt in truth.tasks.items():
                for (a, b, st, c) in tt.intervals:
                    if st == RUNNING and c == cpu:
                        run.append((a, b, pid))

            def cut(ivs):
                out = []
                for (a, b, p) in ivs:
                    pieces = [(a, b)]
                    for (ua, ub) in unknown:
                        nxt = []
                        for (x, y) in pieces:
                            if y <= ua or x >= ub:
                                nxt.append((x, y))
                            else:
                                if x < ua:
                                    nxt.append((x, ua))
                                if y > ub:
                                    nxt.append((ub, y))
                        pieces = nxt
                    out += [(x, y, p) for (x, y) in pieces if y > x]
                return sorted(merge(sorted(out, key=lambda v: (v[2], v[0]))), key=lambda v: v[0])

            b1, b2 = cut(busy), cut(run)
            assert b1 == b2, ("cpu %d busy vs running" % cpu, [x for x in b1 if x not in b2][:3],
                              [x for x in b2 if x not in b1][:3])


def simulate(seed=0, variant="kernel5", **kw) -> Sim:
    return Sim(seed=seed, variant=variant, **kw)


# ---------------------------------------------------------------------------------------------
# truth queries used by the tests


def lat_stats(samples):
    """count, mean, p50, p90, p99, max, ts of the max (set of candidates) of [(ts, lat)]."""
    if not samples:
        return dict(lat_count=0)
    vals = sorted(v for _, v in samples)
    mx = vals[-1]
    return dict(lat_count=len(vals), lat_mean_ns=sum(vals) / len(vals),
                lat_p50_ns=percentile(vals, 50), lat_p90_ns=percentile(vals, 90),
                lat_p99_ns=percentile(vals, 99), lat_max_ns=mx,
                lat_max_ts={ts for ts, v in samples if v == mx})


def clipped_durations(tt: TaskTruth, a, b):
    dur = {s: 0 for s in STATES}
    for (s, e, st, cpu) in clip(tt.intervals, a, b):
        dur[st] += e - s
    return dur


def cpu_clipped(ct: CpuTruth, a, b):
    tot = {BUSY: 0, IDLE: 0, CPU_UNKNOWN: 0}
    for (s, e, kind, pid) in clip(ct.intervals, a, b):
        tot[kind] += e - s
    return tot


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    variant = sys.argv[2] if len(sys.argv) > 2 else "kernel5"
    sim = simulate(seed, variant, lost=True, missing_idle=True)
    sys.stdout.write(sim.text)
    print("--- window", sim.truth.window, sim.truth.unit)
    for a in sim.artifacts:
        print("---", a)
    for pid, tt in sorted(sim.truth.tasks.items()):
        d = {k: v for k, v in dataclasses.asdict(tt).items() if k not in ("intervals", "slices", "lat", "lat_waking")}
        print(d)
    for c, ct in sorted(sim.truth.cpus.items()):
        print(c, ct.busy_ns, ct.idle_ns, ct.unknown_ns, ct.switches)
