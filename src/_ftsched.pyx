# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The sequential part of the scheduling analysis: the per-task state machine and the per-CPU
current task, walked once over the time-ordered scheduler events.

The definitions it implements are written once, in ftrace_fast/sched.py's docstring.  The
kernel emits intervals and events (switch-ins, switch-outs, wakeup-latency samples); every sum,
count and percentile is then computed with NumPy from those arrays.
"""

from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport malloc, free

import numpy as np

# event kinds (sched.py builds the stream)
cdef enum:
    K_OTHER = 0
    K_SWITCH = 1
    K_WAKEUP = 2
    K_WAKEUP_NEW = 3
    K_WAKING = 4
    K_MIGRATE = 5
    K_FORK = 6
    K_EXIT = 7
    K_LOST = 8

# task states (sched.py exports the same numbers)
cdef enum:
    S_RUNNING = 0
    S_RUNNABLE = 1
    S_SLEEP_S = 2
    S_SLEEP_D = 3
    S_SLEEP_OTHER = 4
    S_DEAD = 5
    S_UNKNOWN = 6
    S_UNSEEN = 7     # not referenced yet
    S_NONE = 8       # does not exist yet (forked, not yet woken)

# switch-out classes
cdef enum:
    O_PREEMPT = 0
    O_S = 1
    O_D = 2
    O_OTHER = 3
    O_DEAD = 4

# task ids in the stream
cdef enum:
    T_IDLE = -2      # pid 0
    T_NONE = -1      # no task (pid -1 or field absent)
    OCC_UNKNOWN = -1

KINDS = dict(other=K_OTHER, switch=K_SWITCH, wakeup=K_WAKEUP, wakeup_new=K_WAKEUP_NEW,
             waking=K_WAKING, migrate=K_MIGRATE, fork=K_FORK, exit=K_EXIT, lost=K_LOST)

# letters of events.STATE_BITS plus STATE_UNKNOWN_LETTER (an unknown letter is a sleep)
cdef int32_t BIT_S = 0x1, BIT_D = 0x2, BIT_X = 0x10, BIT_Z = 0x20, LETTERS = 0xffff | 0x40000


cdef struct Task:
    int8_t state
    int32_t cpu
    int64_t since
    int64_t last_wakeup_ts
    int32_t last_wakeup_cpu
    int64_t last_waking_ts
    int64_t pend_wakeup      # ts of the wakeup that made it runnable, -1 none
    int64_t pend_waking      # ts of the waking before that wakeup, -1 none

cdef struct Cpu:
    int32_t occ              # task id, T_IDLE, or OCC_UNKNOWN
    int64_t since
    int64_t last_switch
    int64_t prev_line        # ts of the CPU's previous line, -1 none
    int8_t seen
    int8_t in_gap


cdef struct Out:
    # task intervals
    int32_t *iv_task
    int8_t *iv_state
    int64_t *iv_start
    int64_t *iv_end
    int32_t *iv_cpu
    int64_t n_iv
    # cpu occupancy intervals
    int32_t *co_cpu
    int32_t *co_occ
    int64_t *co_start
    int64_t *co_end
    int64_t n_co
    # switch-ins
    int32_t *si_task
    int64_t *si_ts
    int32_t *si_cpu
    int8_t *si_inferred
    int64_t n_si
    # switch-outs
    int32_t *so_task
    int64_t *so_ts
    int8_t *so_class
    int64_t n_so
    # wakeup latency samples
    int32_t *wl_task
    int64_t *wl_wakeup
    int64_t *wl_waking
    int64_t *wl_switch
    int32_t *wl_cpu
    int64_t n_wl
    # capacities of the arrays above; an emit past one sets overflow instead of writing
    int64_t cap_iv
    int64_t cap_co
    int64_t cap_si
    int64_t cap_so
    int64_t cap_wl
    int overflow


cdef inline void emit_iv(Out *o, int32_t task, int8_t st, int64_t a, int64_t b, int32_t cpu) noexcept nogil:
    if st >= S_UNSEEN:
        return
    if o.n_iv >= o.cap_iv:
        o.overflow = 1
        return
    o.iv_task[o.n_iv] = task
    o.iv_state[o.n_iv] = st
    o.iv_start[o.n_iv] = a
    o.iv_end[o.n_iv] = b
    o.iv_cpu[o.n_iv] = cpu
    o.n_iv += 1

cdef inline void set_state(Out *o, Task *T, int32_t i, int8_t st, int64_t ts, int32_t cpu) noexcept nogil:
    """End task i's current state at ts and start st there."""
    cdef Task *t = &T[i]
    if ts < t.since:
        ts = t.since
    emit_iv(o, i, t.state, t.since, ts, t.cpu)
    t.state = st
    t.since = ts
    t.cpu = cpu

cdef inline void set_occ(Out *o, Cpu *C, int32_t c, int32_t occ, int64_t ts) noexcept nogil:
    cdef Cpu *k = &C[c]
    if ts < k.since:
        ts = k.since
    if o.n_co >= o.cap_co:
        o.overflow = 1
        k.occ = occ
        k.since = ts
        return
    o.co_cpu[o.n_co] = c
    o.co_occ[o.n_co] = k.occ
    o.co_start[o.n_co] = k.since
    o.co_end[o.n_co] = ts
    o.n_co += 1
    k.occ = occ
    k.since = ts

cdef inline void first_sight(Out *o, Task *T, int32_t i, int8_t st, int64_t w0, int32_t cpu) noexcept nogil:
    """The state a task had since the window start, from the role of its first line."""
    if T[i].state == S_UNSEEN:
        T[i].state = st
        T[i].since = w0
        T[i].cpu = cpu

cdef inline void switch_in(Out *o, Task *T, int32_t i, int64_t ts, int32_t cpu, int8_t inferred) noexcept nogil:
    cdef Task *t = &T[i]
    set_state(o, T, i, S_RUNNING, ts, cpu)
    if o.n_si >= o.cap_si or o.n_wl >= o.cap_wl:
        o.overflow = 1
        return
    o.si_task[o.n_si] = i
    o.si_ts[o.n_si] = t.since
    o.si_cpu[o.n_si] = cpu
    o.si_inferred[o.n_si] = inferred
    o.n_si += 1
    if t.pend_wakeup >= 0:
        o.wl_task[o.n_wl] = i
        o.wl_wakeup[o.n_wl] = t.pend_wakeup
        o.wl_waking[o.n_wl] = t.pend_waking
        o.wl_switch[o.n_wl] = t.since
        o.wl_cpu[o.n_wl] = cpu
        o.n_wl += 1
        t.pend_wakeup = -1
        t.pend_waking = -1

cdef inline int8_t state_of(int32_t bits) noexcept nogil:
    cdef int32_t letters = bits & LETTERS
    if letters == 0:
        return S_RUNNABLE
    if letters & (BIT_X | BIT_Z):
        return S_DEAD
    if letters & BIT_D:
        return S_SLEEP_D
    if letters == BIT_S:
        return S_SLEEP_S
    if letters & BIT_S:
        return S_SLEEP_S
    return S_SLEEP_OTHER

cdef inline int8_t out_class(int8_t st) noexcept nogil:
    if st == S_RUNNABLE:
        return O_PREEMPT
    if st == S_SLEEP_S:
        return O_S
    if st == S_SLEEP_D:
        return O_D
    if st == S_DEAD:
        return O_DEAD
    return O_OTHER

cdef inline bint gap_target(Cpu *C, int32_t ncpus, int32_t c) noexcept nogil:
    """A task made runnable on a CPU inside a lost-events gap may have run there: unknown."""
    return 0 <= c < ncpus and C[c].in_gap != 0

cdef inline bint sleeping(int8_t st) noexcept nogil:
    return st == S_SLEEP_S or st == S_SLEEP_D or st == S_SLEEP_OTHER


cdef void run_kernel(int64_t n, const int8_t *kind, const int64_t *ts, const int32_t *cpu,
                     const int32_t *me, const int32_t *a, const int32_t *b, const int32_t *st,
                     const int32_t *tcpu, int32_t ntasks, int32_t ncpus, int64_t w0, int64_t w1,
                     Task *T, Cpu *C, Out *o) noexcept nogil:
    cdef int64_t j, t, t_inf
    cdef int32_t c, m, p, q, k2, occ
    cdef int8_t s, was
    cdef Task *tp
    for j in range(n):
        t = ts[j]
        c = cpu[j]
        m = me[j]
        if kind[j] == K_LOST:
            # the CPU's span from its last line to its next one is unknown, and so is the task
            # that was current there
            if c < 0 or c >= ncpus:
                continue
            t_inf = C[c].prev_line if C[c].prev_line >= 0 else w0
            occ = C[c].occ
            if occ >= 0 and T[occ].state == S_RUNNING and T[occ].cpu == c:
                set_state(o, T, occ, S_UNKNOWN, t_inf, -1)
            # the tasks waiting for this CPU may have run in the gap: unknown too
            for q in range(ntasks):
                if T[q].state == S_RUNNABLE and T[q].cpu == c:
                    set_state(o, T, q, S_UNKNOWN, t_inf, -1)
            if not C[c].seen:
                C[c].seen = 1
                C[c].since = w0
                C[c].occ = OCC_UNKNOWN
            set_occ(o, C, c, OCC_UNKNOWN, t_inf)
            C[c].in_gap = 1
            continue
        if c < 0 or c >= ncpus:
            continue
        # the line's own task: running on c now
        was = T[m].state if m >= 0 else S_RUNNING
        if m >= 0:
            first_sight(o, T, m, S_RUNNING, w0, c)
            # back from UNKNOWN (D6): running from this line on -- unless the line switches it
            # out, which then ends the unknown span itself
            if T[m].state == S_UNKNOWN and not (kind[j] == K_SWITCH and a[j] == m):
                set_state(o, T, m, S_RUNNING, t, c)
        if not C[c].seen:
            C[c].seen = 1
            C[c].since = w0
            if m == T_IDLE:
                C[c].occ = T_IDLE
            elif m >= 0 and was == S_UNSEEN:
                C[c].occ = m
            else:
                C[c].occ = OCC_UNKNOWN
                if m >= 0 or m == T_IDLE:
                    set_occ(o, C, c, m, t)
        elif C[c].in_gap:
            if m >= 0 or m == T_IDLE:
                set_occ(o, C, c, m, t)
            C[c].in_gap = 0
        if kind[j] == K_SWITCH:
            p = a[j]
            q = b[j]
            if p >= 0:
                first_sight(o, T, p, S_RUNNING, w0, c)
                tp = &T[p]
                if tp.state == S_UNKNOWN:
                    # its switch-in fell in a lost-events gap (D6): no run time, no inference
                    pass
                elif C[c].occ != p or tp.state != S_RUNNING or tp.cpu != c:
                    # a switch-in of prev is missing (seen out of the idle task): infer it at
                    # prev's latest wakeup onto this CPU, else at the CPU's previous line
                    if (tp.last_wakeup_ts >= 0 and tp.last_wakeup_cpu == c
                            and tp.last_wakeup_ts >= C[c].last_switch and tp.last_wakeup_ts <= t):
                        t_inf = tp.last_wakeup_ts
                    elif C[c].prev_line >= 0:
                        t_inf = C[c].prev_line
                    else:
                        t_inf = t
                    if t_inf < tp.since:
                        t_inf = tp.since
                    if t_inf < C[c].since:
                        t_inf = C[c].since
                    occ = C[c].occ
                    if occ >= 0 and occ != p and T[occ].state == S_RUNNING and T[occ].cpu == c:
                        set_state(o, T, occ, S_UNKNOWN, t_inf, -1)
                    if tp.state == S_RUNNING and tp.cpu != c and tp.cpu >= 0 and C[tp.cpu].occ == p:
                        set_occ(o, C, tp.cpu, OCC_UNKNOWN, t_inf)
                    switch_in(o, T, p, t_inf, c, 1)
                    set_occ(o, C, c, p, t_inf)
                s = state_of(st[j])
                set_state(o, T, p, s, t, c if s == S_RUNNABLE else -1)
                if o.n_so < o.cap_so:
                    o.so_task[o.n_so] = p
                    o.so_ts[o.n_so] = t
                    o.so_class[o.n_so] = out_class(s)
                    o.n_so += 1
                else:
                    o.overflow = 1
            elif p == T_IDLE and C[c].occ >= 0:
                # the idle task leaves a CPU whose switch to it was not seen
                occ = C[c].occ
                t_inf = C[c].prev_line if C[c].prev_line >= C[c].since else C[c].since
                if T[occ].state == S_RUNNING and T[occ].cpu == c:
                    set_state(o, T, occ, S_UNKNOWN, t_inf, -1)
                set_occ(o, C, c, T_IDLE, t_inf)
            if q >= 0:
                first_sight(o, T, q, S_RUNNABLE, w0, c)
                tp = &T[q]
                if tp.state == S_RUNNING and tp.cpu != c and tp.cpu >= 0:
                    # its switch-out on another CPU was not seen
                    if C[tp.cpu].occ == q:
                        set_occ(o, C, tp.cpu, OCC_UNKNOWN, t)
                if tp.state == S_NONE:
                    tp.state = S_RUNNABLE
                    tp.since = t
                    tp.cpu = c
                switch_in(o, T, q, t, c, 0)
            set_occ(o, C, c, q if (q >= 0 or q == T_IDLE) else OCC_UNKNOWN, t)
            C[c].last_switch = t
        elif kind[j] == K_WAKEUP or kind[j] == K_WAKING:
            p = a[j]
            if p >= 0:
                first_sight(o, T, p, S_SLEEP_OTHER, w0, -1)
                tp = &T[p]
                if kind[j] == K_WAKING:
                    tp.last_waking_ts = t
                else:
                    if sleeping(tp.state) or tp.state == S_UNKNOWN or tp.state == S_NONE:
                        if tp.state == S_NONE:
                            tp.state = S_RUNNABLE
                            tp.since = t
                            tp.cpu = tcpu[j]
                        elif gap_target(C, ncpus, tcpu[j]):
                            # woken onto a CPU inside a gap: unknown, but the latency sample
                            # still runs from this wakeup to its next switch-in (D4)
                            if sleeping(tp.state):
                                tp.pend_wakeup = t
                                tp.pend_waking = tp.last_waking_ts if tp.last_waking_ts >= tp.since else -1
                            set_state(o, T, p, S_UNKNOWN, t, -1)
                        else:
                            if sleeping(tp.state):
                                tp.pend_wakeup = t
                                tp.pend_waking = tp.last_waking_ts if tp.last_waking_ts >= tp.since else -1
                            set_state(o, T, p, S_RUNNABLE, t, tcpu[j])
                    tp.last_wakeup_ts = t
                    tp.last_wakeup_cpu = tcpu[j]
        elif kind[j] == K_WAKEUP_NEW:
            p = a[j]
            if p >= 0:
                tp = &T[p]
                s = S_UNKNOWN if gap_target(C, ncpus, tcpu[j]) else S_RUNNABLE
                if tp.state == S_UNSEEN or tp.state == S_NONE:
                    tp.state = s
                    tp.since = t
                    tp.cpu = tcpu[j] if s == S_RUNNABLE else -1
                elif sleeping(tp.state) or tp.state == S_UNKNOWN:
                    set_state(o, T, p, s, t, tcpu[j] if s == S_RUNNABLE else -1)
                tp.last_wakeup_ts = t
                tp.last_wakeup_cpu = tcpu[j]
        elif kind[j] == K_MIGRATE:
            p = a[j]
            if p >= 0:
                first_sight(o, T, p, S_RUNNABLE, w0, tcpu[j])
                tp = &T[p]
                if tp.state == S_UNKNOWN and not gap_target(C, ncpus, tcpu[j]):
                    # a migrate line shows it runnable (D3's role): back from UNKNOWN (D6)
                    set_state(o, T, p, S_RUNNABLE, t, tcpu[j])
                elif tp.state == S_RUNNABLE and tp.cpu != tcpu[j]:
                    if gap_target(C, ncpus, tcpu[j]):
                        set_state(o, T, p, S_UNKNOWN, t, -1)
                    else:
                        set_state(o, T, p, S_RUNNABLE, t, tcpu[j])
        elif kind[j] == K_FORK:
            p = a[j]
            if p >= 0 and T[p].state == S_UNSEEN:
                T[p].state = S_NONE
        C[c].prev_line = t
    # to the end of the window
    for m in range(ntasks):
        if T[m].state < S_UNSEEN:
            emit_iv(o, m, T[m].state, T[m].since if T[m].since <= w1 else w1, w1, T[m].cpu)
    for c in range(ncpus):
        if C[c].seen:
            set_occ(o, C, c, C[c].occ, w1)
        else:
            C[c].since = w0
            C[c].occ = OCC_UNKNOWN
            set_occ(o, C, c, OCC_UNKNOWN, w1)


def analyze(kind, ts, cpu, me, a, b, st, tcpu, int ntasks, int ncpus, long long w0, long long w1):
    """Walk the stream (arrays sorted by time) and return the intervals and events it implies."""
    cdef int64_t n = len(kind)
    cdef int8_t[::1] kind_v = np.ascontiguousarray(kind, np.int8)
    cdef int64_t[::1] ts_v = np.ascontiguousarray(ts, np.int64)
    cdef int32_t[::1] cpu_v = np.ascontiguousarray(cpu, np.int32)
    cdef int32_t[::1] me_v = np.ascontiguousarray(me, np.int32)
    cdef int32_t[::1] a_v = np.ascontiguousarray(a, np.int32)
    cdef int32_t[::1] b_v = np.ascontiguousarray(b, np.int32)
    cdef int32_t[::1] st_v = np.ascontiguousarray(st, np.int32)
    cdef int32_t[::1] tc_v = np.ascontiguousarray(tcpu, np.int32)
    cdef Task *T
    cdef Cpu *C
    cdef Out o
    cdef int32_t i
    # upper bounds: a line ends at most 4 intervals (prev, next, an inferred pair) and changes
    # at most 3 CPU occupants; a LOST marker may end the state of every task
    n_lost = int(np.count_nonzero(np.asarray(kind) == K_LOST)) if n else 0
    cap_iv = 4 * n + ntasks * (n_lost + 1) + 8
    cap_co = 3 * n + 2 * ncpus + 8
    r = {
        "iv_task": np.empty(cap_iv, np.int32), "iv_state": np.empty(cap_iv, np.int8),
        "iv_start": np.empty(cap_iv, np.int64), "iv_end": np.empty(cap_iv, np.int64),
        "iv_cpu": np.empty(cap_iv, np.int32),
        "co_cpu": np.empty(cap_co, np.int32), "co_occ": np.empty(cap_co, np.int32),
        "co_start": np.empty(cap_co, np.int64), "co_end": np.empty(cap_co, np.int64),
        "si_task": np.empty(2 * n + 1, np.int32), "si_ts": np.empty(2 * n + 1, np.int64),
        "si_cpu": np.empty(2 * n + 1, np.int32), "si_inferred": np.empty(2 * n + 1, np.int8),
        "so_task": np.empty(n + 1, np.int32), "so_ts": np.empty(n + 1, np.int64),
        "so_class": np.empty(n + 1, np.int8),
        "wl_task": np.empty(2 * n + 1, np.int32), "wl_wakeup": np.empty(2 * n + 1, np.int64),
        "wl_waking": np.empty(2 * n + 1, np.int64), "wl_switch": np.empty(2 * n + 1, np.int64),
        "wl_cpu": np.empty(2 * n + 1, np.int32),
    }
    cdef int32_t[::1] iv_task = r["iv_task"]
    cdef int8_t[::1] iv_state = r["iv_state"]
    cdef int64_t[::1] iv_start = r["iv_start"]
    cdef int64_t[::1] iv_end = r["iv_end"]
    cdef int32_t[::1] iv_cpu = r["iv_cpu"]
    cdef int32_t[::1] co_cpu = r["co_cpu"]
    cdef int32_t[::1] co_occ = r["co_occ"]
    cdef int64_t[::1] co_start = r["co_start"]
    cdef int64_t[::1] co_end = r["co_end"]
    cdef int32_t[::1] si_task = r["si_task"]
    cdef int64_t[::1] si_ts = r["si_ts"]
    cdef int32_t[::1] si_cpu = r["si_cpu"]
    cdef int8_t[::1] si_inf = r["si_inferred"]
    cdef int32_t[::1] so_task = r["so_task"]
    cdef int64_t[::1] so_ts = r["so_ts"]
    cdef int8_t[::1] so_class = r["so_class"]
    cdef int32_t[::1] wl_task = r["wl_task"]
    cdef int64_t[::1] wl_wakeup = r["wl_wakeup"]
    cdef int64_t[::1] wl_waking = r["wl_waking"]
    cdef int64_t[::1] wl_switch = r["wl_switch"]
    cdef int32_t[::1] wl_cpu = r["wl_cpu"]
    o.iv_task = &iv_task[0]; o.iv_state = &iv_state[0]; o.iv_start = &iv_start[0]
    o.iv_end = &iv_end[0]; o.iv_cpu = &iv_cpu[0]; o.n_iv = 0
    o.co_cpu = &co_cpu[0]; o.co_occ = &co_occ[0]; o.co_start = &co_start[0]
    o.co_end = &co_end[0]; o.n_co = 0
    o.si_task = &si_task[0]; o.si_ts = &si_ts[0]; o.si_cpu = &si_cpu[0]
    o.si_inferred = &si_inf[0]; o.n_si = 0
    o.so_task = &so_task[0]; o.so_ts = &so_ts[0]; o.so_class = &so_class[0]; o.n_so = 0
    o.wl_task = &wl_task[0]; o.wl_wakeup = &wl_wakeup[0]; o.wl_waking = &wl_waking[0]
    o.wl_switch = &wl_switch[0]; o.wl_cpu = &wl_cpu[0]; o.n_wl = 0
    o.cap_iv = cap_iv
    o.cap_co = cap_co
    o.cap_si = 2 * n + 1
    o.cap_so = n + 1
    o.cap_wl = 2 * n + 1
    o.overflow = 0
    T = <Task*>malloc(max(ntasks, 1) * sizeof(Task))
    C = <Cpu*>malloc(max(ncpus, 1) * sizeof(Cpu))
    if T == NULL or C == NULL:
        free(T)
        free(C)
        raise MemoryError()
    for i in range(ntasks):
        T[i].state = S_UNSEEN
        T[i].cpu = -1
        T[i].since = w0
        T[i].last_wakeup_ts = -1
        T[i].last_wakeup_cpu = -1
        T[i].last_waking_ts = -1
        T[i].pend_wakeup = -1
        T[i].pend_waking = -1
    for i in range(ncpus):
        C[i].occ = OCC_UNKNOWN
        C[i].since = w0
        C[i].last_switch = -1
        C[i].prev_line = -1
        C[i].seen = 0
        C[i].in_gap = 0
    try:
        if n:
            with nogil:
                run_kernel(n, &kind_v[0], &ts_v[0], &cpu_v[0], &me_v[0], &a_v[0], &b_v[0],
                           &st_v[0], &tc_v[0], ntasks, ncpus, w0, w1, T, C, &o)
        else:
            with nogil:
                run_kernel(0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ntasks, ncpus,
                           w0, w1, T, C, &o)
    finally:
        free(T)
        free(C)
    if o.overflow:
        raise RuntimeError("ftrace_fast._ftsched: an output table overflowed its bound "
                           "(a bug: please report it with the trace)")
    # views of the used part: the pages past it were never touched, so they cost no memory
    out = {}
    for key, cnt in (("iv", o.n_iv), ("co", o.n_co), ("si", o.n_si), ("so", o.n_so),
                     ("wl", o.n_wl)):
        for name in list(r):
            if name.startswith(key + "_"):
                out[name] = r[name][:cnt]
    return out
