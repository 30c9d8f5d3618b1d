# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The sequential part of the scheduling analysis: the per-task state machine and the per-CPU
current task, walked once over the time-ordered scheduler events.

The definitions it implements are written once, in ftrace_fast/sched.py's docstring.

The events are read in place from the trace's per-event record arrays (:class:`Stream`), so
no column of the stream is ever copied: the order is the file's, from a table of the array of
each line (each array is in file order), or, when the time goes back in the file, a sorted
list of (array, record) pairs.
The kernel adds up, as it goes, what the unrestricted summaries need (time per task and state,
slices, switch counts, CPU busy / idle / unknown time) and emits the wakeup-latency samples;
with ``full`` (TABLES bits) it also emits the task intervals, the CPU occupancy intervals and
the switches, which restricted queries (start / end / cpus) and the interval tables are
computed from with NumPy.  Every mode adds the same numbers in the same order, so the sums
equal the sums of the emitted intervals.
"""

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport malloc, calloc, free, realloc
from libc.string cimport memcpy

import numpy as np

cdef extern from *:
    """
    #define PREFETCH_AHEAD 8
    """
    void __builtin_prefetch(const void *addr) noexcept nogil
    int PREFETCH_AHEAD

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


# the tables a walk emits besides its sums and latency samples (sched.py: IV, CO, SW)
cdef enum:
    TABLE_IV = 1             # task intervals
    TABLE_CO = 2             # CPU occupancy intervals
    TABLE_SW = 4             # switch-ins and switch-outs
    TABLE_ALL = 7

TABLES = dict(iv=TABLE_IV, co=TABLE_CO, sw=TABLE_SW, all=TABLE_ALL)


cdef struct Out:
    int full                 # the tables emitted (TABLE_* bits); 0: sums and latency samples
    int32_t ntasks
    int32_t ncpus
    # per task: the comm of its latest line (ties: the later source, see Stream.analyze),
    # the tgid of the last line showing one, the lines of counted events naming it
    int32_t *comm_id
    int64_t *comm_ts
    int64_t *comm_rank
    int32_t *tgid
    int64_t *tgid_rank
    int64_t *ev_n            # [count slot * ntasks + task]
    int64_t *switches        # sched_switch lines per CPU
    # sums over everything emitted (the unrestricted summaries)
    int64_t *task_ns         # [task * 8 + state]
    int64_t *slices          # RUNNING intervals per task
    int64_t *max_slice       # longest of them
    int64_t *max_d           # longest BLOCKED_D interval per task (-1: none) ...
    int64_t *max_d_at        # ... and its start (the first of equal lengths)
    int64_t *si_n            # switch-ins per task
    int64_t *si_inf_n        # of which inferred
    int64_t *so_n            # [task * 5 + switch-out class]
    int64_t *cpu_ns          # [cpu * 3 + (0 busy, 1 idle, 2 unknown)]
    int64_t *cpu_wait        # RUNNABLE time of the tasks waiting for each CPU
    # task intervals (of the tasks iv_sel marks; NULL: of every task)
    const uint8_t *iv_sel
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
    o.task_ns[task * 8 + st] += b - a
    if st == S_RUNNABLE and cpu >= 0:
        o.cpu_wait[cpu] += b - a
    if st == S_RUNNING:
        o.slices[task] += 1
        if b - a > o.max_slice[task]:
            o.max_slice[task] = b - a
    elif st == S_SLEEP_D and b - a > o.max_d[task]:
        o.max_d[task] = b - a
        o.max_d_at[task] = a
    if not (o.full & TABLE_IV) or (o.iv_sel != NULL and not o.iv_sel[task]):
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
    o.cpu_ns[c * 3 + (0 if k.occ >= 0 else (1 if k.occ == T_IDLE else 2))] += ts - k.since
    if not (o.full & TABLE_CO):
        k.occ = occ
        k.since = ts
        return
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
    o.si_n[i] += 1
    o.si_inf_n[i] += inferred
    if o.full & TABLE_SW:
        if o.n_si >= o.cap_si:
            o.overflow = 1
            return
        o.si_task[o.n_si] = i
        o.si_ts[o.n_si] = t.since
        o.si_cpu[o.n_si] = cpu
        o.si_inferred[o.n_si] = inferred
        o.n_si += 1
    if t.pend_wakeup >= 0:
        if o.n_wl >= o.cap_wl:
            o.overflow = 1
            return
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



# -- reading the events in place ----------------------------------------------------------------

cdef struct Seg:
    # one event's record array; offsets of its fields in a record, -1 when it has none
    const char *base
    int64_t n
    int64_t isz
    int8_t kind
    int64_t o_ts, o_line, o_cpu, o_pid, o_tgid, o_comm
    int64_t o_a, o_acomm     # the task it acts on: prev (switch), task or child
    int64_t o_b, o_bcomm     # next (switch)
    int64_t o_st, o_tc       # prev_state; target_cpu or dest_cpu
    int64_t o_oc             # orig_cpu (migrate)
    int8_t count_slot        # row of Out.ev_n counting the lines naming ``a``, -1 none

cdef struct Cursor:
    # the stream's order: the lines one by one (slot[line - first line]: 1 + the array of the
    # line, 0 none), or (slot NULL) the sequence seq_seg / seq_idx
    const int16_t *slot
    const int16_t *seq_seg
    const int32_t *seq_idx
    int64_t n
    int64_t j
    int64_t *pos             # by line: per array (the LOST markers last) its next record

cdef struct IdMap:
    # id -> dense index: lut[clip(id, -1, hi) + 1], or (lut NULL) a binary search in ids
    const int32_t *lut
    int64_t hi
    const int32_t *ids
    int64_t n
    int32_t zero             # code of id 0 when searching and 0 is not in ids

#: the order of Stream's field offsets
FIELDS = ("ts", "line", "cpu", "pid", "tgid", "comm", "a", "acomm", "b", "bcomm", "st", "tc", "oc")

cdef inline int64_t rd64(const char *p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v

cdef inline int32_t rd32(const char *p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v

cdef inline int32_t map_id(const IdMap *m, int64_t x) noexcept nogil:
    cdef int64_t lo = 0, hi, mid
    if m.lut != NULL:
        if x < -1:
            x = -1
        elif x > m.hi:
            x = m.hi
        return m.lut[x + 1]
    hi = m.n
    while lo < hi:
        mid = (lo + hi) >> 1
        if m.ids[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    if lo < m.n and m.ids[lo] == x:
        return <int32_t>lo
    return m.zero if x == 0 else -1

cdef inline int32_t opt32(const char *rec, int64_t off, int32_t absent) noexcept nogil:
    return rd32(rec + off) if off >= 0 else absent


cdef int idmap_init(IdMap *m, ids) except -1:
    """Fill m from a _group.Ids (which keeps the arrays alive)."""
    cdef const int32_t[::1] lut
    cdef const int32_t[::1] vals = ids.values
    m.hi = ids.hi
    m.zero = ids.zero
    m.n = vals.shape[0]
    m.ids = &vals[0] if m.n else NULL
    if ids.lut is not None:
        lut = ids.lut
        m.lut = &lut[0]
    else:
        m.lut = NULL
    return 0


cdef inline int cur_next(Cursor *cur, const Seg *S, int nseg, int64_t *idx) noexcept nogil:
    """The array of the stream's next entry (nseg: a LOST marker), its index in idx; -1 at the
    end.  By line, each array's time-stamped records come in its own order."""
    cdef int s
    cdef int16_t v
    cdef int64_t i
    cdef const Seg *g
    if cur.slot == NULL:
        if cur.j >= cur.n:
            return -1
        idx[0] = cur.seq_idx[cur.j]
        cur.j += 1
        return cur.seq_seg[cur.j - 1]
    while cur.j < cur.n:
        v = cur.slot[cur.j]
        cur.j += 1
        if v == 0:
            continue
        s = v - 1
        i = cur.pos[s]
        if s < nseg:
            g = &S[s]
            while rd64(g.base + i * g.isz + g.o_ts) < 0:
                i += 1
            # the records are read where they lie, one array after another as the lines
            # interleave: fetch this array's record a few ahead before it is needed
            __builtin_prefetch(g.base + (i + PREFETCH_AHEAD) * g.isz)
        idx[0] = i
        cur.pos[s] = i + 1
        return s
    return -1

cdef inline void comm_seen(Out *o, int32_t task, int32_t comm, int64_t t, int64_t rank) noexcept nogil:
    if comm >= 0 and (t > o.comm_ts[task] or (t == o.comm_ts[task] and rank > o.comm_rank[task])):
        o.comm_ts[task] = t
        o.comm_rank[task] = rank
        o.comm_id[task] = comm

cdef inline void line_attrs(Out *o, const Seg *g, const char *rec, int64_t s, int64_t i,
                            int64_t t, int32_t m, int32_t a_, int32_t b_, int32_t c) noexcept nogil:
    """What a line says about its tasks besides their states.  Ranks order the sources by
    array, then role (own task, a, b), then record, whatever order the lines come in."""
    cdef int32_t x
    if m >= 0:
        comm_seen(o, m, rd32(rec + g.o_comm), t, (s << 48) | i)
        x = rd32(rec + g.o_tgid)
        if x >= 0 and ((s << 48) | i) > o.tgid_rank[m]:
            o.tgid[m] = x
            o.tgid_rank[m] = (s << 48) | i
    if a_ >= 0:
        if g.o_acomm >= 0:
            comm_seen(o, a_, rd32(rec + g.o_acomm), t, (s << 48) | (1LL << 44) | i)
        if g.count_slot >= 0:
            o.ev_n[g.count_slot * o.ntasks + a_] += 1
    if b_ >= 0 and g.o_bcomm >= 0:
        comm_seen(o, b_, rd32(rec + g.o_bcomm), t, (s << 48) | (2LL << 44) | i)
    if g.kind == K_SWITCH and 0 <= c < o.ncpus:
        o.switches[c] += 1


cdef int run_kernel(Cursor *cur, const Seg *S, int32_t nseg, const int32_t *lost_cpu,
                    const IdMap *tmap, const IdMap *cmap,
                    int32_t ntasks, int32_t ncpus, int64_t w0, int64_t w1,
                    Task *T, Cpu *C, Out *o) noexcept nogil:
    """Walk the stream; 1 (by line only) as soon as the time goes back: the caller then sorts
    the stream by time and walks it again from the start."""
    cdef int64_t i, t, t_inf, prev_t = -(1LL << 62)
    cdef int32_t c, m, p, q, occ, s_, a_, b_, tc_, oc_
    cdef int8_t s, was, kind
    cdef bint by_line = cur.slot != NULL
    cdef Task *tp
    cdef const Seg *g
    cdef const char *rec
    while True:
        s_ = cur_next(cur, S, nseg, &i)
        if s_ < 0:
            break
        if s_ == nseg:
            c = map_id(cmap, lost_cpu[i])
            if by_line:
                # a marker takes the time of its CPU's last line before it (D6): trace_pipe
                # prints it only when it reads that CPU's next event, after other CPUs' lines
                t = C[c].prev_line if (0 <= c < ncpus and C[c].prev_line >= 0) else w0
                if t < prev_t:
                    return 1
                prev_t = t
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
        g = &S[s_]
        rec = g.base + i * g.isz
        t = rd64(rec + g.o_ts)
        if by_line:
            if t < prev_t:
                return 1
            prev_t = t
        c = map_id(cmap, rd32(rec + g.o_cpu))
        m = map_id(tmap, rd32(rec + g.o_pid))
        kind = g.kind
        a_ = map_id(tmap, opt32(rec, g.o_a, -1))
        b_ = map_id(tmap, opt32(rec, g.o_b, -1))
        line_attrs(o, g, rec, s_, i, t, m, a_, b_, c)
        if c < 0 or c >= ncpus:
            continue
        # the line's own task: running on c now
        was = T[m].state if m >= 0 else S_RUNNING
        if m >= 0:
            first_sight(o, T, m, S_RUNNING, w0, c)
            # back from UNKNOWN (D6): running from this line on -- unless the line switches it
            # out, which then ends the unknown span itself
            if T[m].state == S_UNKNOWN and not (kind == K_SWITCH and a_ == m):
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
        if kind == K_SWITCH:
            p = a_
            q = b_
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
                s = state_of(opt32(rec, g.o_st, -1))
                set_state(o, T, p, s, t, c if s == S_RUNNABLE else -1)
                o.so_n[p * 5 + out_class(s)] += 1
                if not (o.full & TABLE_SW):
                    pass
                elif o.n_so < o.cap_so:
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
        elif kind == K_WAKEUP or kind == K_WAKING:
            p = a_
            if p >= 0:
                first_sight(o, T, p, S_SLEEP_OTHER, w0, -1)
                tp = &T[p]
                if kind == K_WAKING:
                    tp.last_waking_ts = t
                else:
                    tc_ = map_id(cmap, opt32(rec, g.o_tc, -1))
                    if sleeping(tp.state) or tp.state == S_UNKNOWN or tp.state == S_NONE:
                        if tp.state == S_NONE:
                            tp.state = S_RUNNABLE
                            tp.since = t
                            tp.cpu = tc_
                        elif gap_target(C, ncpus, tc_):
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
                            set_state(o, T, p, S_RUNNABLE, t, tc_)
                    tp.last_wakeup_ts = t
                    tp.last_wakeup_cpu = tc_
        elif kind == K_WAKEUP_NEW:
            p = a_
            if p >= 0:
                tc_ = map_id(cmap, opt32(rec, g.o_tc, -1))
                tp = &T[p]
                s = S_UNKNOWN if gap_target(C, ncpus, tc_) else S_RUNNABLE
                if tp.state == S_UNSEEN or tp.state == S_NONE:
                    tp.state = s
                    tp.since = t
                    tp.cpu = tc_ if s == S_RUNNABLE else -1
                elif sleeping(tp.state) or tp.state == S_UNKNOWN:
                    set_state(o, T, p, s, t, tc_ if s == S_RUNNABLE else -1)
                tp.last_wakeup_ts = t
                tp.last_wakeup_cpu = tc_
        elif kind == K_MIGRATE:
            p = a_
            if p >= 0:
                tc_ = map_id(cmap, opt32(rec, g.o_tc, -1))
                if T[p].state == S_UNSEEN:
                    # runnable since the window start (D3), waiting on orig_cpu until now
                    oc_ = map_id(cmap, opt32(rec, g.o_oc, -1))
                    first_sight(o, T, p, S_RUNNABLE, w0, oc_ if oc_ >= 0 else tc_)
                tp = &T[p]
                if tp.state == S_UNKNOWN and not gap_target(C, ncpus, tc_):
                    # a migrate line shows it runnable (D3's role): back from UNKNOWN (D6)
                    set_state(o, T, p, S_RUNNABLE, t, tc_)
                elif tp.state == S_RUNNABLE and tp.cpu != tc_:
                    if gap_target(C, ncpus, tc_):
                        set_state(o, T, p, S_UNKNOWN, t, -1)
                    else:
                        set_state(o, T, p, S_RUNNABLE, t, tc_)
        elif kind == K_FORK:
            p = a_
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
    return 0


cdef struct I64Buf:
    # a growing int64 array (the kernels' outputs of unknown length)
    int64_t *p
    int64_t n
    int64_t cap


cdef int buf_push(I64Buf *b, int64_t v) noexcept nogil:
    """Append v; -1 when memory runs out."""
    cdef int64_t *grown
    if b.n == b.cap:
        grown = <int64_t*>realloc(b.p, max(2 * b.cap, 1024) * sizeof(int64_t))
        if grown == NULL:
            return -1
        b.p = grown
        b.cap = max(2 * b.cap, 1024)
    b.p[b.n] = v
    b.n += 1
    return 0


cdef object buf_array(I64Buf *b):
    """A NumPy copy of the buffer's values."""
    out = np.empty(b.n, np.int64)
    cdef int64_t[::1] v = out
    if b.n:
        memcpy(&v[0], b.p, b.n * sizeof(int64_t))
    return out


cdef class Stream:
    """The scheduler-relevant event arrays of a trace, read in place.

    ``specs`` is a list of (record array, kind, offsets, count slot) with offsets an int64
    array in the order of :data:`FIELDS` (-1 for a field the event has not) and count slot the
    row of ``counts`` that counts the lines naming its ``a`` task (-1: none).  Records with
    ts < 0 (lines without a time stamp) are no part of the stream.  Array ``nseg`` of a
    sequence is the LOST markers.
    """
    cdef Seg *S
    cdef readonly int nseg
    cdef list keep

    def __cinit__(self, list specs):
        cdef Py_ssize_t i, k
        cdef const int64_t[::1] off
        self.nseg = len(specs)
        if self.nseg >= 32767:
            raise ValueError("too many event types for the scheduling analysis")
        self.S = <Seg*>calloc(max(self.nseg, 1), sizeof(Seg))
        if self.S == NULL:
            raise MemoryError()
        self.keep = []
        for i, (arr, kind, offsets, slot) in enumerate(specs):
            if not arr.flags.c_contiguous:
                raise ValueError("record arrays must be contiguous")
            if len(arr) >= (1 << 31):
                raise ValueError("more than 2**31 records of one event")
            self.keep.append(arr)
            off = np.ascontiguousarray(offsets, np.int64)
            # the common columns are always read; every field must lie inside the record
            if off.shape[0] != len(FIELDS) or min(off[0], off[1], off[2], off[3], off[4], off[5]) < 0:
                raise ValueError("a record array without the common columns")
            for k in range(off.shape[0]):
                if off[k] + (8 if k < 2 else 4) > arr.dtype.itemsize:
                    raise ValueError("a field offset past the end of its record")
            self.S[i].base = <const char*><uintptr_t>arr.ctypes.data
            self.S[i].n = len(arr)
            self.S[i].isz = arr.dtype.itemsize
            self.S[i].kind = kind
            self.S[i].count_slot = slot
            self.S[i].o_ts, self.S[i].o_line, self.S[i].o_cpu = off[0], off[1], off[2]
            self.S[i].o_pid, self.S[i].o_tgid, self.S[i].o_comm = off[3], off[4], off[5]
            self.S[i].o_a, self.S[i].o_acomm, self.S[i].o_b = off[6], off[7], off[8]
            self.S[i].o_bcomm, self.S[i].o_st, self.S[i].o_tc = off[9], off[10], off[11]
            self.S[i].o_oc = off[12]

    def __dealloc__(self):
        free(self.S)

    def scan(self, uint8_t[::1] pid_mark, uint8_t[::1] cpu_mark, int16_t[::1] slot,
             int64_t line_lo, const int64_t[::1] lost_line):
        """One pass over the records with a time stamp: marks every pid > 0 they name and every
        CPU >= 0 they show (ids past a mark array's end set *_big instead), and puts 1 + its
        array in slot[line - line_lo] (nseg + 1 for the LOST markers at lost_line).  Returns
        (records, ts_lo, ts_hi, pid_hi, pid_big, cpu_hi, cpu_big, in_order, unstamped) with
        in_order true when every array's lines (and the markers') increase and each line got
        a slot of its own, and unstamped the number of records without a time stamp per
        array."""
        cdef int64_t nv = 0, ts_lo = 0, ts_hi = -1, t, ln, prev
        cdef int64_t pid_hi = 0, cpu_hi = -1, i, k
        cdef int64_t pmax = pid_mark.shape[0], cmax = cpu_mark.shape[0]
        cdef int pid_big = 0, cpu_big = 0, sorted_ = 1, s
        cdef int64_t span = slot.shape[0], pos, nl = lost_line.shape[0]
        if span == 0:
            sorted_ = 0
        cdef int32_t x
        cdef int64_t offs[3]
        cdef const Seg *g
        cdef const char *rec
        unstamped = np.zeros(max(self.nseg, 1), np.int64)
        cdef int64_t[::1] uns = unstamped
        with nogil:
            for s in range(self.nseg):
                g = &self.S[s]
                offs[0] = g.o_pid
                offs[1] = g.o_a
                offs[2] = g.o_b
                prev = -(1LL << 62)
                for i in range(g.n):
                    rec = g.base + i * g.isz
                    t = rd64(rec + g.o_ts)
                    if t < 0:
                        uns[s] += 1
                        continue
                    ln = rd64(rec + g.o_line)
                    if ln <= prev:
                        sorted_ = 0
                    prev = ln
                    pos = ln - line_lo
                    if sorted_:
                        if 0 <= pos < span and slot[pos] == 0:
                            slot[pos] = <int16_t>(s + 1)
                        else:
                            sorted_ = 0
                    if nv == 0:
                        ts_lo = ts_hi = t
                    else:
                        if t < ts_lo:
                            ts_lo = t
                        if t > ts_hi:
                            ts_hi = t
                    nv += 1
                    for k in range(3):
                        if offs[k] < 0:
                            continue
                        x = rd32(rec + offs[k])
                        if x > 0:
                            if x < pmax:
                                pid_mark[x] = 1
                                if x > pid_hi:
                                    pid_hi = x
                            else:
                                pid_big = 1
                    x = rd32(rec + g.o_cpu)
                    if x >= 0:
                        if x < cmax:
                            cpu_mark[x] = 1
                            if x > cpu_hi:
                                cpu_hi = x
                        else:
                            cpu_big = 1
            for i in range(nl):
                pos = lost_line[i] - line_lo
                if not sorted_ or (i and lost_line[i] <= lost_line[i - 1]):
                    sorted_ = 0
                elif 0 <= pos < span and slot[pos] == 0:
                    slot[pos] = <int16_t>(self.nseg + 1)
                else:
                    sorted_ = 0
        return (nv, ts_lo, ts_hi, pid_hi, bool(pid_big), cpu_hi, bool(cpu_big), bool(sorted_),
                unstamped[:self.nseg])

    def name_pairs(self, int64_t pid_hi):
        """The (pid, comm) pairs of the time-stamped records (a line's own task, ``a`` and
        ``b`` with their comms; pid > 0, comm >= 0) as int64 keys pid << 32 | comm, each pair
        at least once: a pair is left out when the pid's previous pair was the same (a task
        keeps its name for long), so the keys are few; np.unique makes them distinct.
        pid_hi: pids up to it are remembered in a table, larger ones always kept."""
        cdef int64_t i
        cdef int64_t nt = pid_hi + 1 if 0 <= pid_hi < (1 << 24) else 0
        cdef int64_t offs[3]
        cdef int64_t coffs[3]
        cdef int s, k
        cdef int32_t p, c
        cdef const Seg *g
        cdef const char *rec
        cdef I64Buf out
        cdef int full = 0
        cdef int32_t *last = <int32_t*>malloc(max(nt, 1) * sizeof(int32_t))
        out.p = NULL
        out.n = out.cap = 0
        if last == NULL:
            raise MemoryError()
        try:
            with nogil:
                for i in range(nt):
                    last[i] = -1
                for s in range(self.nseg):
                    g = &self.S[s]
                    offs[0] = g.o_pid
                    coffs[0] = g.o_comm
                    offs[1] = g.o_a
                    coffs[1] = g.o_acomm
                    offs[2] = g.o_b
                    coffs[2] = g.o_bcomm
                    for i in range(g.n):
                        rec = g.base + i * g.isz
                        if rd64(rec + g.o_ts) < 0:
                            continue
                        for k in range(3):
                            if offs[k] < 0 or coffs[k] < 0:
                                continue
                            p = rd32(rec + offs[k])
                            c = rd32(rec + coffs[k])
                            if p <= 0 or c < 0:
                                continue
                            if p < nt:
                                if last[p] == c:
                                    continue
                                last[p] = c
                            if buf_push(&out, (<int64_t>p << 32) | <int64_t>c) < 0:
                                full = 1
                                break
            if full:
                raise MemoryError()
            return buf_array(&out)
        finally:
            free(out.p)
            free(last)

    def times(self, const int16_t[::1] seq_seg, const int32_t[::1] seq_idx,
              const int32_t[::1] lost_cpu, cmap, int64_t w0, int64_t ncpus):
        """The time of each entry of a line-ordered sequence, a LOST marker's being that of its
        CPU's last line before it (D6; w0 if none)."""
        cdef IdMap cm
        idmap_init(&cm, cmap)
        cdef int64_t n = seq_seg.shape[0], j, t
        cdef int s
        cdef int32_t c
        cdef const Seg *g
        cdef const char *rec
        ts = np.empty(n, np.int64)
        cdef int64_t[::1] to = ts
        cdef int64_t *last = <int64_t*>malloc((ncpus + 1) * sizeof(int64_t))
        if last == NULL:
            raise MemoryError()
        for j in range(ncpus + 1):
            last[j] = -1
        with nogil:
            for j in range(n):
                s = seq_seg[j]
                if s == self.nseg:
                    c = map_id(&cm, lost_cpu[seq_idx[j]])
                    t = last[c] if (0 <= c < ncpus and last[c] >= 0) else w0
                else:
                    g = &self.S[s]
                    rec = g.base + seq_idx[j] * g.isz
                    t = rd64(rec + g.o_ts)
                    c = map_id(&cm, rd32(rec + g.o_cpu))
                    if 0 <= c < ncpus:
                        last[c] = t
                to[j] = t
        free(last)
        return ts

    def analyze(self, order, const int32_t[::1] lost_cpu, tmap, cmap, int ntasks, int ncpus,
                long long w0, long long w1, int full, iv_sel=None):
        """Walk the stream and return what it implies: the sums, per-task attributes and
        latency samples, and the tables of the TABLES bits in full (every task interval, CPU
        occupancy interval, switch-in and switch-out).

        order: the int16 slot array of scan() (the lines in file order; None is returned if
        the time ever goes back), or (seq_seg, seq_idx) in time order.  Per task, comm_id is
        the comm of its latest line, ties going to the later array, then to the later role
        (own task, a, b), then to the later record; tgid the last one shown (by array, then
        record); counts[slot] the stamped lines naming it as ``a``.  switches: the
        sched_switch lines per CPU.  max_d / max_d_at: each task's longest BLOCKED_D interval
        (-1: none) and the start of the first that long.  iv_sel: a uint8 per task; the task
        intervals are those of the tasks it marks (None: of every task)."""
        return _analyze(self, order, lost_cpu, tmap, cmap, ntasks, ncpus, w0, w1, full, iv_sel)


cdef _analyze(Stream st, order, const int32_t[::1] lost_cpu, tmap, cmap, int ntasks, int ncpus,
              long long w0, long long w1, int full, iv_sel):
    cdef IdMap tm, cm
    idmap_init(&tm, tmap)
    idmap_init(&cm, cmap)
    cdef Cursor cur
    cdef const int16_t[::1] slot
    cdef const int16_t[::1] seq_seg
    cdef const int32_t[::1] seq_idx
    cdef int64_t n_lost = lost_cpu.shape[0], n = n_lost, k
    cdef int status
    cdef Task *T
    cdef Cpu *C
    cdef Out o
    cdef int32_t i
    cur.slot = NULL
    cur.seq_seg = NULL
    cur.seq_idx = NULL
    cur.pos = NULL
    cur.j = 0
    cur.n = 0
    if isinstance(order, tuple):
        seq_seg, seq_idx = order
        n = cur.n = seq_seg.shape[0]
        if n:
            cur.seq_seg = &seq_seg[0]
            cur.seq_idx = &seq_idx[0]
    else:
        slot = order
        cur.n = slot.shape[0]
        if cur.n:
            cur.slot = &slot[0]
        for k in range(st.nseg):
            n += st.S[k].n
    # upper bounds: a line ends at most 4 intervals (prev, next, an inferred pair) and changes
    # at most 3 CPU occupants; a LOST marker may end the state of every task
    cdef int64_t cap_iv = 4 * n + ntasks * (n_lost + 1) + 8 if full & TABLE_IV else 1
    cdef int64_t cap_co = 3 * n + 2 * ncpus + 8 if full & TABLE_CO else 1
    cdef int64_t cap_x = 2 * n + 1 if full & TABLE_SW else 1
    cdef int64_t cap_so = n + 1 if full & TABLE_SW else 1
    r = {
        "iv_task": np.empty(cap_iv, np.int32), "iv_state": np.empty(cap_iv, np.int8),
        "iv_start": np.empty(cap_iv, np.int64), "iv_end": np.empty(cap_iv, np.int64),
        "iv_cpu": np.empty(cap_iv, np.int32),
        "co_cpu": np.empty(cap_co, np.int32), "co_occ": np.empty(cap_co, np.int32),
        "co_start": np.empty(cap_co, np.int64), "co_end": np.empty(cap_co, np.int64),
        "si_task": np.empty(cap_x, np.int32), "si_ts": np.empty(cap_x, np.int64),
        "si_cpu": np.empty(cap_x, np.int32), "si_inferred": np.empty(cap_x, np.int8),
        "so_task": np.empty(cap_so, np.int32), "so_ts": np.empty(cap_so, np.int64),
        "so_class": np.empty(cap_so, np.int8),
        "wl_task": np.empty(2 * n + 1, np.int32), "wl_wakeup": np.empty(2 * n + 1, np.int64),
        "wl_waking": np.empty(2 * n + 1, np.int64), "wl_switch": np.empty(2 * n + 1, np.int64),
        "wl_cpu": np.empty(2 * n + 1, np.int32),
    }
    nt1 = max(ntasks, 1)
    sums = {
        "comm_id": np.full(nt1, -1, np.int32), "comm_ts": np.full(nt1, -(1 << 62), np.int64),
        "comm_rank": np.full(nt1, -1, np.int64), "tgid": np.full(nt1, -1, np.int32),
        "tgid_rank": np.full(nt1, -1, np.int64), "counts": np.zeros((3, nt1), np.int64),
        "switches": np.zeros(max(ncpus, 1), np.int64),
        "task_ns": np.zeros((max(ntasks, 1), 8), np.int64),
        "slices": np.zeros(max(ntasks, 1), np.int64),
        "max_slice": np.zeros(max(ntasks, 1), np.int64),
        "max_d": np.full(max(ntasks, 1), -1, np.int64),
        "max_d_at": np.full(max(ntasks, 1), -1, np.int64),
        "switches_in": np.zeros(max(ntasks, 1), np.int64),
        "inferred": np.zeros(max(ntasks, 1), np.int64),
        "switches_out": np.zeros((max(ntasks, 1), 5), np.int64),
        "cpu_ns": np.zeros((max(ncpus, 1), 3), np.int64),
        "cpu_wait_ns": np.zeros(max(ncpus, 1), np.int64),
    }
    cdef int64_t[:, ::1] task_ns = sums["task_ns"]
    cdef int64_t[::1] slices = sums["slices"]
    cdef int64_t[::1] max_slice = sums["max_slice"]
    cdef int64_t[::1] max_d = sums["max_d"]
    cdef int64_t[::1] max_d_at = sums["max_d_at"]
    cdef const uint8_t[::1] sel
    cdef int64_t[::1] si_n = sums["switches_in"]
    cdef int64_t[::1] si_inf_n = sums["inferred"]
    cdef int64_t[:, ::1] so_n = sums["switches_out"]
    cdef int64_t[:, ::1] cpu_ns = sums["cpu_ns"]
    cdef int64_t[::1] cpu_wait = sums["cpu_wait_ns"]
    cdef int32_t[::1] comm_id = sums["comm_id"]
    cdef int64_t[::1] comm_ts = sums["comm_ts"]
    cdef int64_t[::1] comm_rank = sums["comm_rank"]
    cdef int32_t[::1] tgid = sums["tgid"]
    cdef int64_t[::1] tgid_rank = sums["tgid_rank"]
    cdef int64_t[:, ::1] ev_n = sums["counts"]
    cdef int64_t[::1] switches = sums["switches"]
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
    o.full = full
    o.ntasks = ntasks
    o.ncpus = ncpus
    o.comm_id = &comm_id[0]; o.comm_ts = &comm_ts[0]; o.comm_rank = &comm_rank[0]
    o.tgid = &tgid[0]; o.tgid_rank = &tgid_rank[0]; o.ev_n = &ev_n[0, 0]
    o.switches = &switches[0]
    o.task_ns = &task_ns[0, 0]; o.slices = &slices[0]; o.max_slice = &max_slice[0]
    o.max_d = &max_d[0]; o.max_d_at = &max_d_at[0]
    o.iv_sel = NULL
    if iv_sel is not None:
        sel = iv_sel
        if sel.shape[0] != ntasks:
            raise ValueError("iv_sel: one entry per task")
        if ntasks:
            o.iv_sel = &sel[0]
    o.si_n = &si_n[0]; o.si_inf_n = &si_inf_n[0]; o.so_n = &so_n[0, 0]; o.cpu_ns = &cpu_ns[0, 0]
    o.cpu_wait = &cpu_wait[0]
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
    o.cap_si = cap_x
    o.cap_so = cap_so
    o.cap_wl = 2 * n + 1
    o.overflow = 0
    T = <Task*>malloc(max(ntasks, 1) * sizeof(Task))
    C = <Cpu*>malloc(max(ncpus, 1) * sizeof(Cpu))
    cur.pos = <int64_t*>calloc(st.nseg + 1, sizeof(int64_t))
    if T == NULL or C == NULL or cur.pos == NULL:
        free(T)
        free(C)
        free(cur.pos)
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
    cdef const int32_t *lc = &lost_cpu[0] if n_lost else NULL
    try:
        with nogil:
            status = run_kernel(&cur, st.S, st.nseg, lc, &tm, &cm, ntasks, ncpus, w0, w1,
                                T, C, &o)
    finally:
        free(T)
        free(C)
        free(cur.pos)
    if status:
        return None
    if o.overflow:
        raise RuntimeError("ftrace_fast._ftsched: an output table overflowed its bound "
                           "(a bug: please report it with the trace)")
    # views of the used part: the pages past it were never touched, so they cost no memory
    out = {name: v[:ntasks] for name, v in sums.items()
           if name not in ("cpu_ns", "cpu_wait_ns", "switches", "counts", "comm_ts", "comm_rank",
                           "tgid_rank")}
    out["cpu_ns"] = sums["cpu_ns"][:ncpus]
    out["cpu_wait_ns"] = sums["cpu_wait_ns"][:ncpus]
    out["switches"] = sums["switches"][:ncpus]
    out["counts"] = sums["counts"][:, :ntasks]
    for key, cnt, bit in (("iv", o.n_iv, TABLE_IV), ("co", o.n_co, TABLE_CO),
                          ("si", o.n_si, TABLE_SW), ("so", o.n_so, TABLE_SW), ("wl", o.n_wl, 0)):
        if bit and not (full & bit):
            continue
        for name in list(r):
            if name.startswith(key + "_"):
                out[name] = r[name][:cnt]
    return out


# ---------------------------------------------------------------------------------------------
# helpers of the KVM analysis (ftrace_fast/kvm.py says what they compute)

# codes of the per-thread stream of pair_exits
cdef enum:
    C_NONE = -1
    C_ENTRY = 0
    C_EXIT = 1
    C_OUT = 2      # sched_switch away from the thread
    C_IN = 3       # sched_switch to the thread


cdef struct ExitState:
    int8_t code              # of the thread's previous record, C_NONE before its first
    int64_t ts
    int32_t cpu
    int64_t last_x           # output slot of its last exit
    int64_t wpos             # next output slot of its exits
    int64_t pend             # first exit still waiting for its next entry
    int64_t last_out         # wpos at its last switch-out
    int64_t gpos             # next output slot of its guest spans


def pair_exits(const int32_t[:] en_pid, const int64_t[:] en_ts, const int64_t[:] en_line,
               const int32_t[:] en_cpu,
               const int32_t[:] ex_pid, const int64_t[:] ex_ts, const int64_t[:] ex_line,
               const int32_t[:] ex_cpu, const int32_t[:] ex_reason,
               const int32_t[:] sw_prev, const int32_t[:] sw_next, const int64_t[:] sw_ts,
               const int64_t[:] sw_line, const int32_t[:] sw_cpu, tmap):
    """K6 and K7 for a trace without lost events: each thread's kvm_entry, kvm_exit and
    switches, merged in line order, in one pass.  tmap: the vCPU threads (_group.Ids of their
    pids).  Returns None when a thread's time goes back in the file (the caller sorts
    instead); else a dict of the exit and guest-span columns, grouped by thread (in pid
    order), in time order within each."""
    cdef const int32_t[::1] vcpu_pids = tmap.values
    if not (en_pid.shape[0] == en_ts.shape[0] == en_line.shape[0] == en_cpu.shape[0]) or \
            not (ex_pid.shape[0] == ex_ts.shape[0] == ex_line.shape[0] == ex_cpu.shape[0]
                 == ex_reason.shape[0]) or \
            not (sw_prev.shape[0] == sw_next.shape[0] == sw_ts.shape[0] == sw_line.shape[0]
                 == sw_cpu.shape[0]):
        raise ValueError("pair_exits: the columns of an event differ in length")
    if vcpu_pids.shape[0] > 1 and not all(vcpu_pids[k] < vcpu_pids[k + 1]
                                          for k in range(vcpu_pids.shape[0] - 1)):
        raise ValueError("pair_exits: vcpu_pids must be sorted and distinct")
    cdef IdMap pm
    idmap_init(&pm, tmap)
    cdef int64_t nv = pm.n, i, nx = ex_pid.shape[0], total = 0
    cdef int32_t q
    cdef int status = 0
    xoff_a = np.zeros(nv + 1, np.int64)
    cdef int64_t[::1] xoff = xoff_a
    cdef ExitState *E = <ExitState*>calloc(max(nv, 1), sizeof(ExitState))
    if E == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(nx):
                if ex_ts[i] >= 0:
                    q = map_id(&pm, ex_pid[i])
                    if q >= 0:
                        xoff[q + 1] += 1
            for q in range(nv):
                xoff[q + 1] += xoff[q]
            total = xoff[nv]
        x_ts_a = np.empty(total, np.int64)
        x_cpu_a = np.empty(total, np.int32)
        x_reason_a = np.empty(total, np.int32)
        x_handled_a = np.zeros(total, np.bool_)
        x_handling_a = np.full(total, -1, np.int64)
        x_out_a = np.zeros(total, np.bool_)
        x_next_a = np.full(total, -1, np.int64)
        x_slept_a = np.zeros(total, np.bool_)
        g_start_a = np.empty(total, np.int64)
        g_end_a = np.empty(total, np.int64)
        g_cpu_a = np.empty(total, np.int32)
        lead_a = np.full((3, max(nv, 1)), -1, np.int64)
        trail_a = np.full((3, max(nv, 1)), -1, np.int64)
        status = _pair_kernel(&pm, E, en_pid, en_ts, en_line, en_cpu, ex_pid, ex_ts, ex_line,
                              ex_cpu, ex_reason, sw_prev, sw_next, sw_ts, sw_line, sw_cpu, xoff,
                              x_ts_a, x_cpu_a, x_reason_a, x_handled_a.view(np.uint8),
                              x_handling_a, x_out_a.view(np.uint8), x_next_a,
                              x_slept_a.view(np.uint8), g_start_a, g_end_a, g_cpu_a, lead_a,
                              trail_a)
        if status:
            return None
        gn = np.array([E[q].gpos - xoff[q] for q in range(nv)], np.int64)
    finally:
        free(E)
    xo = np.asarray(xoff_a)
    vp = np.asarray(vcpu_pids, np.int64)
    vp32 = vp.astype(np.int32)      # pids fit int32 (the event columns' type): 5 MB at 1 GB
    gsel = np.concatenate([np.arange(xo[q], xo[q] + gn[q]) for q in range(nv)]) if nv \
        else np.zeros(0, np.int64)
    lead = lead_a[:, :nv][:, lead_a[0, :nv] >= 0]
    trail = trail_a[:, :nv][:, trail_a[0, :nv] >= 0]
    return {
        "x_pid": np.repeat(vp32, np.diff(xo)), "x_ts": x_ts_a, "x_cpu": x_cpu_a,
        "x_reason": x_reason_a, "x_handled": x_handled_a, "x_handling": x_handling_a,
        "x_switched_out": x_out_a, "x_next_entry": x_next_a, "x_slept": x_slept_a,
        "g_pid": np.repeat(vp32, gn), "g_start": g_start_a[gsel], "g_end": g_end_a[gsel],
        "g_cpu": g_cpu_a[gsel],
        "lead": (vp[lead[0]], lead[1], lead[2].astype(np.int32)),
        "trail": (vp[trail[0]], trail[1], trail[2].astype(np.int32)),
    }


cdef int _pair_kernel(const IdMap *pm, ExitState *E,
                      const int32_t[:] en_pid, const int64_t[:] en_ts, const int64_t[:] en_line,
                      const int32_t[:] en_cpu,
                      const int32_t[:] ex_pid, const int64_t[:] ex_ts, const int64_t[:] ex_line,
                      const int32_t[:] ex_cpu, const int32_t[:] ex_reason,
                      const int32_t[:] sw_prev, const int32_t[:] sw_next, const int64_t[:] sw_ts,
                      const int64_t[:] sw_line, const int32_t[:] sw_cpu,
                      const int64_t[::1] xoff,
                      int64_t[::1] x_ts, int32_t[::1] x_cpu, int32_t[::1] x_reason,
                      uint8_t[::1] x_handled, int64_t[::1] x_handling, uint8_t[::1] x_out,
                      int64_t[::1] x_next, uint8_t[::1] x_slept,
                      int64_t[::1] g_start, int64_t[::1] g_end, int32_t[::1] g_cpu,
                      int64_t[:, ::1] lead, int64_t[:, ::1] trail) except -1:
    cdef int64_t nv = pm.n, ne = en_pid.shape[0], nx = ex_pid.shape[0], ns = sw_prev.shape[0]
    cdef int64_t ie = 0, ix = 0, isw = 0, le, lx, ls, ts, j
    cdef int64_t BIG = 1LL << 62
    cdef int src
    cdef int32_t q, cpu, reason
    cdef int8_t code, role
    cdef ExitState *e
    with nogil:
        for q in range(nv):
            E[q].code = C_NONE
            E[q].wpos = E[q].pend = E[q].last_out = E[q].gpos = xoff[q]
            E[q].last_x = -1
        # each array in line order (the parser writes them so), else the caller sorts
        for j in range(1, ne):
            if en_line[j] < en_line[j - 1]:
                return 1
        for j in range(1, nx):
            if ex_line[j] < ex_line[j - 1]:
                return 1
        for j in range(1, ns):
            if sw_line[j] < sw_line[j - 1]:
                return 1
        while ie < ne or ix < nx or isw < ns:
            # the next line; on equal lines entries, then exits, then switches, as the
            # sorting path orders them
            le = en_line[ie] if ie < ne else BIG
            lx = ex_line[ix] if ix < nx else BIG
            ls = sw_line[isw] if isw < ns else BIG
            src = 2
            if ie < ne and (ix >= nx or le <= lx) and (isw >= ns or le <= ls):
                src = 0
            elif ix < nx and (isw >= ns or lx <= ls):
                src = 1
            for role in range(2):
                # one record, or the two roles of a sched_switch line (out first)
                q = -1
                reason = -1
                if src == 0:
                    if role:
                        ie += 1
                        break
                    ts = en_ts[ie]
                    cpu = en_cpu[ie]
                    code = C_ENTRY
                    q = map_id(pm, en_pid[ie])
                elif src == 1:
                    if role:
                        ix += 1
                        break
                    ts = ex_ts[ix]
                    cpu = ex_cpu[ix]
                    reason = ex_reason[ix]
                    code = C_EXIT
                    q = map_id(pm, ex_pid[ix])
                else:
                    ts = sw_ts[isw]
                    cpu = sw_cpu[isw]
                    if role == 0:
                        code = C_OUT
                        q = map_id(pm, sw_prev[isw])
                    else:
                        code = C_IN
                        q = map_id(pm, sw_next[isw])
                if q < 0 or ts < 0:
                    if role == 1:
                        isw += 1
                    continue
                e = &E[q]
                if e.code != C_NONE and ts < e.ts:
                    return 1
                if e.code == C_EXIT:
                    # the previous record was an exit: this is what followed it
                    j = e.last_x
                    if code == C_ENTRY and cpu == e.cpu:
                        x_handled[j] = 1
                        x_handling[j] = ts - e.ts
                    elif code == C_OUT or (code == C_ENTRY and cpu != e.cpu):
                        x_out[j] = 1
                elif e.code == C_ENTRY and code == C_EXIT and cpu == e.cpu:
                    g_start[e.gpos] = e.ts
                    g_end[e.gpos] = ts
                    g_cpu[e.gpos] = e.cpu
                    e.gpos += 1
                if e.code == C_NONE and code == C_EXIT:
                    lead[0, q] = q
                    lead[1, q] = ts
                    lead[2, q] = cpu
                if code == C_EXIT:
                    j = e.wpos
                    x_ts[j] = ts
                    x_cpu[j] = cpu
                    x_reason[j] = reason
                    e.last_x = j
                    e.wpos += 1
                elif code == C_ENTRY:
                    for j in range(e.pend, e.wpos):
                        x_next[j] = ts
                        x_slept[j] = e.last_out > j or x_cpu[j] != cpu
                    e.pend = e.wpos
                elif code == C_OUT:
                    e.last_out = e.wpos
                e.code = code
                e.ts = ts
                e.cpu = cpu
                if role == 1:
                    isw += 1
        for q in range(nv):
            if E[q].code == C_ENTRY:
                trail[0, q] = q
                trail[1, q] = E[q].ts
                trail[2, q] = E[q].cpu
    return 0


ctypedef fused perm_t:
    # row numbers: int32 where they fit (the CPU occupancy's index by CPU was 22 MB at 1 GB)
    int32_t
    int64_t


cdef void fill_perm(const int32_t[::1] key, int32_t n, perm_t[::1] perm, int64_t *pos) noexcept nogil:
    cdef int64_t i
    cdef int32_t v
    for i in range(key.shape[0]):
        v = key[i]
        if 0 <= v < n:
            perm[pos[v]] = <perm_t>i
            pos[v] += 1


def by_key(const int32_t[::1] key, int32_t n):
    """A stable counting sort of key values in [0, n): (perm, off), the rows of value v being
    perm[off[v]:off[v + 1]], in their original order (perm int32 when the rows' numbers fit,
    else int64).  Values outside [0, n) are left out."""
    cdef int64_t m = key.shape[0], i
    cdef int32_t v
    off_a = np.zeros(n + 1, np.int64)
    cdef int64_t[::1] off = off_a
    with nogil:
        for i in range(m):
            v = key[i]
            if 0 <= v < n:
                off[v + 1] += 1
        for v in range(n):
            off[v + 1] += off[v]
    narrow = m <= 2147483647
    perm_a = np.empty(off[n], np.int32 if narrow else np.int64)
    cdef int32_t[::1] p32
    cdef int64_t[::1] p64
    cdef int64_t *pos = <int64_t*>malloc(max(n, 1) * sizeof(int64_t))
    if pos == NULL:
        raise MemoryError()
    for v in range(n):
        pos[v] = off[v]
    if narrow:
        p32 = perm_a
        with nogil:
            fill_perm(key, n, p32, pos)
    else:
        p64 = perm_a
        with nogil:
            fill_perm(key, n, p64, pos)
    free(pos)
    return perm_a, off_a


cdef struct KeySums:
    # int64 key -> int64 sum, open addressing (keys >= 0; -1 marks a free slot)
    int64_t *key
    int64_t *sum
    int64_t cap              # a power of two
    int64_t n


cdef inline int64_t ks_slot(const KeySums *h, int64_t k) noexcept nogil:
    cdef uint64_t i = <uint64_t>k * 0x9E3779B97F4A7C15ULL
    cdef uint64_t mask = <uint64_t>h.cap - 1
    i = (i ^ (i >> 29)) & mask
    while h.key[i] != -1 and h.key[i] != k:
        i = (i + 1) & mask
    return <int64_t>i


cdef int ks_init(KeySums *h, int64_t cap) noexcept nogil:
    cdef int64_t i
    h.cap = cap
    h.n = 0
    h.key = <int64_t*>malloc(cap * sizeof(int64_t))
    h.sum = <int64_t*>malloc(cap * sizeof(int64_t))
    if h.key == NULL or h.sum == NULL:
        return -1
    for i in range(cap):
        h.key[i] = -1
    return 0


cdef void ks_free(KeySums *h) noexcept nogil:
    free(h.key)
    free(h.sum)
    h.key = h.sum = NULL


cdef int ks_add(KeySums *h, int64_t k, int64_t d) noexcept nogil:
    """sum[k] += d; -1 when memory runs out."""
    cdef KeySums g
    cdef int64_t i, j
    if 2 * (h.n + 1) > h.cap:
        if ks_init(&g, 2 * h.cap) < 0:
            ks_free(&g)
            return -1
        for i in range(h.cap):
            if h.key[i] != -1:
                j = ks_slot(&g, h.key[i])
                g.key[j] = h.key[i]
                g.sum[j] = h.sum[i]
        g.n = h.n
        ks_free(h)
        h[0] = g
    i = ks_slot(h, k)
    if h.key[i] == -1:
        h.key[i] = k
        h.sum[i] = 0
        h.n += 1
    h.sum[i] += d
    return 0


def stolen_keys(const int32_t[:] task, const int8_t[:] state, const int64_t[:] a,
                const int64_t[:] b, const int32_t[:] cpu, int8_t runnable,
                const int64_t[::1] s, const int64_t[::1] e, const int32_t[::1] occ,
                const perm_t[::1] perm, const int64_t[::1] off, int64_t ntasks):
    """K4's join: every ``runnable`` interval [a, b) of a task waiting for CPU index cpu meets
    the occupancy intervals [s, e) of that CPU (rows perm[off[c]:off[c + 1]], in time order),
    and each overlap of positive length adds its length to key = (task * (ntasks + 2) +
    rank) * ncpus + cpu, rank 0 for unknown time (occ -1), 1 for idle (occ -2), 2 + the
    occupant's task index.  Returns (keys, sums), keys ascending: summed as they are found,
    since the overlaps outnumber the keys by far (they were 60 MB at 1 GB)."""
    cdef int64_t n = a.shape[0], ng = off.shape[0] - 1, ns = s.shape[0], npm = perm.shape[0]
    cdef int64_t i, j, lo, g_end, x, y, nocc = ntasks + 2, rank
    cdef int32_t c, o
    cdef int full = 0
    cdef KeySums h
    cdef int64_t[::1] kv, sv
    cdef int64_t *hint
    if b.shape[0] != n or task.shape[0] != n or state.shape[0] != n or cpu.shape[0] != n or \
            e.shape[0] != ns or occ.shape[0] != ns or ng < 0:
        raise ValueError("stolen_keys: columns of different lengths")
    with nogil:
        for i in range(ng):
            if off[i] < 0 or off[i] > off[i + 1] or off[i + 1] > npm:
                break
        else:
            i = -1
        for j in range(npm):
            if perm[j] < 0 or perm[j] >= ns:
                break
        else:
            j = -1
    if i >= 0 or j >= 0:
        raise ValueError("stolen_keys: off / perm do not index the intervals")
    # every key is below ntasks * (ntasks + 2) * ncpus: checked in Python integers, as the
    # other group keys are, so that it cannot wrap in int64
    if ntasks < 0 or <object>ntasks * (<object>ntasks + 2) * max(<object>ng, 1) > (1 << 63) - 1:
        raise OverflowError(f"stolen_keys: {ntasks} tasks x {ng} CPUs do not fit an int64 key")
    h.key = h.sum = NULL
    # where the previous wait on each CPU started: the next one is usually near it
    hint = <int64_t*>malloc(max(ng, 1) * sizeof(int64_t))
    try:
        if ks_init(&h, 1024) < 0 or hint == NULL:
            raise MemoryError()
        with nogil:
            for c in range(ng):
                hint[c] = off[c]
            for i in range(n):
                c = cpu[i]
                if state[i] != runnable or c < 0 or c >= ng or b[i] <= a[i] or \
                        task[i] < 0 or task[i] >= ntasks:
                    continue
                g_end = off[c + 1]
                lo = first_end_after(e, perm, off[c], g_end, hint[c], a[i])
                hint[c] = lo
                while lo < g_end:
                    j = perm[lo]
                    if s[j] >= b[i]:
                        break
                    x = s[j] if s[j] > a[i] else a[i]
                    y = e[j] if e[j] < b[i] else b[i]
                    if y > x:
                        o = occ[j]
                        rank = o + 2 if o >= 0 else (1 if o == T_IDLE else 0)
                        if ks_add(&h, (task[i] * nocc + rank) * ng + c, y - x) < 0:
                            full = 1
                            break
                    lo += 1
                if full:
                    break
        if full:
            raise MemoryError()
        keys = np.empty(h.n, np.int64)
        sums = np.empty(h.n, np.int64)
        kv = keys
        sv = sums
        j = 0
        with nogil:
            for i in range(h.cap):
                if h.key[i] != -1:
                    kv[j] = h.key[i]
                    sv[j] = h.sum[i]
                    j += 1
        order = np.argsort(keys)
        return keys[order], sums[order]
    finally:
        ks_free(&h)
        free(hint)


cdef inline int64_t first_end_after(const int64_t[::1] e, const perm_t[::1] perm, int64_t g0,
                                    int64_t g1, int64_t h, int64_t t) noexcept nogil:
    """The first position p in [g0, g1) with e[perm[p]] > t (e non-decreasing there), by a
    galloping search from position h."""
    cdef int64_t lo, hi, step = 1, mid
    if h >= g1:
        h = g1 - 1
    if h < g0 or e[perm[h]] > t:
        # answer at or before h: gallop back
        hi = h if h >= g0 else g0
        lo = hi
        while lo > g0:
            lo = hi - step if hi - step > g0 else g0
            if e[perm[lo]] <= t:
                lo += 1
                break
            hi = lo
            step <<= 1
    else:
        # answer after h: gallop forward
        lo = h + 1
        hi = lo
        while hi < g1:
            hi = lo + step if lo + step < g1 else g1
            if hi < g1 and e[perm[hi]] <= t:
                lo = hi + 1
                step <<= 1
            else:
                break
    while lo < hi:
        mid = (lo + hi) >> 1
        if e[perm[mid]] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


#: the most (task, CPU) cells place_sums adds up in (3 int64 arrays of them)
PLACE_MAX_CELLS = 1 << 24


def place_sums(const int32_t[:] task, const int8_t[:] state, const int64_t[:] a,
               const int64_t[:] b, const int32_t[:] cpu, int32_t ntasks, int32_t ncpus,
               int8_t running, int8_t runnable):
    """K5's placement: the time of the ``running`` and the ``runnable`` intervals [a, b) per
    (task, CPU index), of the rows with a CPU, in one pass with no copy of the rows.  Returns
    (task, cpu, run, wait) of every pair with a row, by task then CPU; None when the tasks with
    a row times ncpus pass PLACE_MAX_CELLS."""
    cdef int64_t n = a.shape[0], i, j, nv = 0
    cdef int32_t t, c
    cdef int8_t st
    if task.shape[0] != n or state.shape[0] != n or b.shape[0] != n or cpu.shape[0] != n:
        raise ValueError("place_sums: columns of different lengths")
    rank_a = np.full(max(ntasks, 1), -1, np.int64)
    cdef int64_t[::1] rank = rank_a
    with nogil:
        for i in range(n):
            st = state[i]
            if (st == running or st == runnable) and cpu[i] >= 0:
                t = task[i]
                if not (0 <= t < ntasks) or cpu[i] >= ncpus:
                    with gil:
                        raise ValueError(f"place_sums: task {t} or CPU {cpu[i]} out of range")
                rank[t] = 0
        for t in range(ntasks):
            if rank[t] == 0:
                rank[t] = nv
                nv += 1
    if nv * max(ncpus, 1) > PLACE_MAX_CELLS:
        return None
    run_a = np.zeros(nv * ncpus, np.int64)
    wait_a = np.zeros(nv * ncpus, np.int64)
    seen_a = np.zeros(nv * ncpus, np.uint8)
    cdef int64_t[::1] run = run_a
    cdef int64_t[::1] wait = wait_a
    cdef uint8_t[::1] seen = seen_a
    with nogil:
        for i in range(n):
            st = state[i]
            c = cpu[i]
            if (st == running or st == runnable) and c >= 0:
                j = rank[task[i]] * ncpus + c
                seen[j] = 1
                if st == running:
                    run[j] += b[i] - a[i]
                else:
                    wait[j] += b[i] - a[i]
    cell = np.flatnonzero(seen_a)
    tasks = np.flatnonzero(rank_a >= 0)
    return (tasks[cell // max(ncpus, 1)].astype(np.int32), (cell % max(ncpus, 1)).astype(np.int32),
            run_a[cell], wait_a[cell])


def count_sweep(const int64_t[::1] a, const int64_t[::1] b, int64_t w0, int64_t w1):
    """How long k of the intervals [a[i], b[i]) were open at once, for each k, through
    [min(w0, first), max(w1, last)]: a and b each sorted (starts and ends of the same
    intervals, a[i] < b[i] before sorting).  Returns (time per count, the largest count
    held for a positive time; 0 when none)."""
    cdef int64_t na = a.shape[0], nb = b.shape[0], i = 0, j = 0, cnt = 0, mx = 0, top = 0
    cdef int64_t cur, nxt, BIG = 0x7fffffffffffffff
    hist_a = np.zeros(na + 1, np.int64)
    cdef int64_t[::1] hist = hist_a
    with nogil:
        cur = w0
        if na and a[0] < cur:
            cur = a[0]
        if nb and b[0] < cur:
            cur = b[0]
        while True:
            while j < nb and b[j] == cur:
                cnt -= 1
                j += 1
            while i < na and a[i] == cur:
                cnt += 1
                i += 1
            if cnt > top:
                top = cnt
            nxt = BIG
            if i < na:
                nxt = a[i]
            if j < nb and b[j] < nxt:
                nxt = b[j]
            if w0 > cur and w0 < nxt:
                nxt = w0
            if w1 > cur and w1 < nxt:
                nxt = w1
            if nxt == BIG:
                break
            if cnt >= 0 and nxt > cur:
                hist[cnt] += nxt - cur
                if cnt > mx:
                    mx = cnt
            cur = nxt
    return hist_a[:top + 1], mx


cdef inline void pixel_add(double *acc, int64_t *diff, int64_t r, int64_t k,
                           int64_t ncls, int64_t a, int64_t b, int64_t lo, double span,
                           int64_t width) noexcept nogil:
    """Add the interval [a, b) to acc[r, k]: its partial end columns directly, the whole
    columns between through diff (prefix-summed by pixel_finish)."""
    cdef double fa = (<double>(a - lo)) / span * width, fb = (<double>(b - lo)) / span * width
    cdef int64_t ca, cb, cell
    fa = 0.0 if fa < 0 else (<double>width if fa > width else fa)
    fb = 0.0 if fb < 0 else (<double>width if fb > width else fb)
    ca = <int64_t>fa
    cb = <int64_t>fb
    if ca > width - 1:
        ca = width - 1
    if cb > width - 1:
        cb = width - 1
    cell = r * ncls + k
    if ca == cb:
        acc[cell * width + ca] += fb - fa
    else:
        acc[cell * width + ca] += ca + 1 - fa
        acc[cell * width + cb] += fb - cb
        diff[cell * (width + 1) + ca + 1] += 1
        diff[cell * (width + 1) + cb] -= 1


cdef void pixel_finish(double *acc, int64_t *diff, int64_t nrows, int64_t ncls,
                       int64_t width) noexcept nogil:
    cdef int64_t c, cell
    cdef double run
    for cell in range(nrows * ncls):
        run = 0
        for c in range(width):
            run += diff[cell * (width + 1) + c]
            acc[cell * width + c] += run


def _pixel_tables(int64_t nrows, int64_t ncls, int64_t width):
    return (np.zeros((max(nrows, 0), max(ncls, 0), max(width, 1)), np.float64),
            np.zeros((max(nrows, 0) * max(ncls, 0), max(width, 1) + 1), np.int64))


def pixel_accumulate(const int64_t[:] row, const int64_t[:] cls, const int64_t[:] a,
                     const int64_t[:] b, int64_t lo, int64_t hi, int64_t nrows, int64_t ncls,
                     int64_t width):
    """Time of the intervals [a, b) per (row, class, pixel column), in units of one column's
    duration: float64 (nrows, ncls, width).  Column j is [lo + j*w, lo + (j+1)*w) with
    w = (hi - lo) / width; the partial end columns of an interval are added directly and the
    whole ones between through a difference array (ftrace_fast.plot's timeline).  Rows or
    classes outside the table are left out."""
    cdef int64_t n = a.shape[0], i
    cdef double span = <double>(hi - lo if hi - lo > 1 else 1)
    out, diff_a = _pixel_tables(nrows, ncls, width)
    cdef double[:, :, ::1] acc = out
    cdef int64_t[:, ::1] diff = diff_a
    if row.shape[0] != n or cls.shape[0] != n or b.shape[0] != n:
        raise ValueError("pixel_accumulate: columns of different lengths")
    if width < 1 or nrows < 1 or ncls < 1:
        return out
    with nogil:
        for i in range(n):
            if 0 <= row[i] < nrows and 0 <= cls[i] < ncls:
                pixel_add(&acc[0, 0, 0], &diff[0, 0], row[i], cls[i], ncls, a[i], b[i], lo,
                          span, width)
        pixel_finish(&acc[0, 0, 0], &diff[0, 0], nrows, ncls, width)
    return out


def pixel_accumulate_tasks(const int32_t[:] task, const int64_t[::1] row_of,
                           const int8_t[:] state, const int32_t[:] cpu, const int64_t[:] a,
                           const int64_t[:] b, int64_t lo, int64_t hi, int64_t nstates,
                           int64_t ncpus, int64_t width, int8_t running):
    """pixel_accumulate over a model's interval table as it is, for the tasks with a row
    (row_of[task] >= 0): per (row, state, column), and per (row, CPU index, column) for the
    ``running`` intervals.  Returns (by state, by CPU, intervals read)."""
    cdef int64_t n = a.shape[0], nt = row_of.shape[0], nrows = 0, i, r, used = 0
    cdef double span = <double>(hi - lo if hi - lo > 1 else 1)
    if task.shape[0] != n or state.shape[0] != n or cpu.shape[0] != n or b.shape[0] != n:
        raise ValueError("pixel_accumulate_tasks: columns of different lengths")
    for i in range(nt):
        if row_of[i] + 1 > nrows:
            nrows = row_of[i] + 1
    by_state, diff_s_a = _pixel_tables(nrows, nstates, width)
    by_cpu, diff_c_a = _pixel_tables(nrows, ncpus, width)
    cdef double[:, :, ::1] acc_s = by_state
    cdef double[:, :, ::1] acc_c = by_cpu
    cdef int64_t[:, ::1] diff_s = diff_s_a
    cdef int64_t[:, ::1] diff_c = diff_c_a
    if width < 1 or nrows < 1:
        return by_state, by_cpu, 0
    cdef double *ps = &acc_s[0, 0, 0] if nstates > 0 else NULL
    cdef int64_t *pds = &diff_s[0, 0] if nstates > 0 else NULL
    cdef double *pc = &acc_c[0, 0, 0] if ncpus > 0 else NULL
    cdef int64_t *pdc = &diff_c[0, 0] if ncpus > 0 else NULL
    with nogil:
        for i in range(n):
            if task[i] < 0 or task[i] >= nt:
                continue
            r = row_of[task[i]]
            if r < 0:
                continue
            used += 1
            if 0 <= state[i] < nstates:
                pixel_add(ps, pds, r, state[i], nstates, a[i], b[i], lo, span, width)
            if state[i] == running and 0 <= cpu[i] < ncpus:
                pixel_add(pc, pdc, r, cpu[i], ncpus, a[i], b[i], lo, span, width)
        if ps != NULL:
            pixel_finish(ps, pds, nrows, nstates, width)
        if pc != NULL:
            pixel_finish(pc, pdc, nrows, ncpus, width)
    return by_state, by_cpu, used


def switch_cells(const int32_t[:] nc, const int32_t[:] npid, const int32_t[:] pc,
                 const int32_t[:] ppid, const int32_t[:] st, const uint8_t[:] nkeep,
                 const uint8_t[:] pkeep, int32_t letters, int32_t dbit, int32_t mark_n,
                 int64_t max_cells):
    """Context switches per (comm id, pid) of sched_switch columns, counted in a dense table
    of cells comm id * width + pid rank (cells in (comm id, pid) order): (ub, width,
    switches_in, voluntary, involuntary, switches_out_D), ub the sorted pids of either side.
    nkeep / pkeep: the lines whose next / prev side counts (empty: every line).  None when
    an id is negative, a pid is not below mark_n, or the table would pass max_cells."""
    cdef int64_t n = nc.shape[0], i, cells
    cdef int32_t cmax = 0, pmax = 0, lo = 0, width, c, p, s
    cdef bint alln = nkeep.shape[0] == 0, allp = pkeep.shape[0] == 0
    if (not alln and nkeep.shape[0] != n) or (not allp and pkeep.shape[0] != n) or \
            npid.shape[0] != n or pc.shape[0] != n or ppid.shape[0] != n or st.shape[0] != n:
        raise ValueError("switch_cells: columns of different lengths")
    mark_a = np.zeros(max(mark_n, 1), np.uint8)
    cdef uint8_t[::1] mark = mark_a
    with nogil:
        for i in range(n):
            c = nc[i] if nc[i] > pc[i] else pc[i]
            if c > cmax:
                cmax = c
            c = nc[i] if nc[i] < pc[i] else pc[i]
            p = npid[i] if npid[i] < ppid[i] else ppid[i]
            if c < lo:
                lo = c
            if p < lo:
                lo = p
            p = npid[i] if npid[i] > ppid[i] else ppid[i]
            if p > pmax:
                pmax = p
            if lo < 0 or pmax >= mark_n:
                break
            mark[npid[i]] = 1
            mark[ppid[i]] = 1
    if lo < 0 or pmax >= mark_n:
        return None
    ub_a = np.flatnonzero(mark_a[:pmax + 1]).astype(np.int32)
    width = ub_a.shape[0]
    cells = (<int64_t>cmax + 1) * width
    if n == 0 or cells > max_cells:
        return None
    lut_a = np.zeros(pmax + 1, np.int32)
    lut_a[ub_a] = np.arange(width, dtype=np.int32)
    cdef const int32_t[::1] lut = lut_a
    sw_in_a, vol_a, inv_a, d_a = (np.zeros(cells, np.int64) for _ in range(4))
    cdef int64_t[::1] sw_in = sw_in_a, vol = vol_a, inv = inv_a, dd = d_a
    cdef int64_t k
    with nogil:
        for i in range(n):
            if alln or nkeep[i]:
                sw_in[<int64_t>nc[i] * width + lut[npid[i]]] += 1
            if allp or pkeep[i]:
                k = <int64_t>pc[i] * width + lut[ppid[i]]
                s = st[i]
                if s & letters:
                    vol[k] += 1
                else:
                    inv[k] += 1
                if s & dbit:
                    dd[k] += 1
    return ub_a, width, sw_in_a, vol_a, inv_a, d_a
