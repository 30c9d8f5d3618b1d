# function_graph: included by _ftparse.pyx (one compilation unit).
# The function_graph tracer's own lines and trace-cmd's funcgraph events, with per-CPU stacks.

cdef const char *fg_duration(const char *p, const char *e, int64_t *dur) noexcept nogil:
    """The function_graph duration column up to and including its '|':
    `[marker] 12.345 us |` or blanks then `|`.  Returns the byte after '|', or NULL."""
    cdef int64_t ip = 0, frac = 0
    cdef int nd = 0
    dur[0] = -1
    p = skip_ws(p, e)
    if p < e and is_delay_mark(p[0]):
        p = skip_ws(p + 1, e)
    if p < e and is_digit(p[0]):
        while p < e and is_digit(p[0]):
            ip = ip * 10 + (p[0] - c'0')
            p += 1
            if ip > 1000000000000LL:
                return NULL
        if p < e and p[0] == c'.':
            p += 1
            while p < e and is_digit(p[0]):
                if nd < 3:
                    frac = frac * 10 + (p[0] - c'0')
                    nd += 1
                p += 1
        while nd < 3:
            frac *= 10
            nd += 1
        p = skip_ws(p, e)
        if starts(p, e, b"us") == NULL:
            return NULL
        p = skip_ws(p + 2, e)
        dur[0] = ip * 1000 + frac
    if p >= e or p[0] != c'|':
        return NULL
    return p + 1

cdef int32_t *fg_cpu_slot(PState *P, int64_t cpu) noexcept nogil:
    """Function stack of one CPU (FG_MAXDEPTH ids), growing the per-CPU tables on demand.
    A stack is allocated on its CPU's first line, so a huge CPU number costs no stacks."""
    cdef size_t need, old, i
    cdef int32_t **stacks
    cdef int32_t *st
    if P.later_part:
        P.needs_before = 1
    # CPUs 0..MAX_CPU, as in line prefixes and LOST markers
    if cpu < 0 or cpu > MAX_CPU:
        return NULL
    need = <size_t>(cpu + 1)
    old = P.fg_pid.size // 4
    if need > old:
        if (g_reserve(&P.fg_pid, (need - old) * 4) < 0 or g_reserve(&P.fg_comm, (need - old) * 4) < 0
                or g_reserve(&P.fg_ts, (need - old) * 8) < 0
                or g_reserve(&P.fg_stack, (need - old) * sizeof(int32_t*)) < 0):
            P.oom = 1
            return NULL
        for i in range(old, need):
            (<int32_t*>P.fg_pid.data)[i] = -1
            (<int32_t*>P.fg_comm.data)[i] = -1
            (<int64_t*>P.fg_ts.data)[i] = -1
        memset(P.fg_stack.data + old * sizeof(int32_t*), 0, (need - old) * sizeof(int32_t*))
        P.fg_pid.size = need * 4
        P.fg_comm.size = need * 4
        P.fg_ts.size = need * 8
        P.fg_stack.size = need * sizeof(int32_t*)
    stacks = <int32_t**>P.fg_stack.data
    st = stacks[cpu]
    if st == NULL:
        st = <int32_t*>malloc(FG_MAXDEPTH * sizeof(int32_t))
        if st == NULL:
            P.oom = 1
            return NULL
        memset(st, 0xff, FG_MAXDEPTH * sizeof(int32_t))
        stacks[cpu] = st
    return st

cdef int fg_body(PState *P, char *rec, const char *p, const char *e, int64_t cpu,
                 int64_t dur, bint *is_exit, int indent) noexcept nogil:
    """The part after the duration column's '|': indentation (`indent` blanks, then 2 per
    depth) and `func() {`, `func();`, `}` or `} /* func */`."""
    cdef const char *q = p
    cdef const char *ne
    cdef const char *c
    cdef int64_t depth
    cdef int32_t f = -1
    cdef int32_t *stack
    while q < e and q[0] == c' ':
        q += 1
    depth = (q - p - indent) // 2 if q - p >= indent else 0
    e = rtrim(q, e)
    if q >= e:
        set_err(P, E_FUNCGRAPH, q, b"function")
        return -1
    if depth > I32_MAX:
        set_err(P, E_RANGE, q, b"depth")
        return -1
    stack = fg_cpu_slot(P, cpu)
    if P.oom:
        return -1
    set_i32(rec, OFF[O_FG_DEPTH], depth)
    set_i64(rec, OFF[O_FG_DUR], dur)
    if q[0] == c'}':
        is_exit[0] = True
        c = find(q, e, b"/* ", 3)
        if c != NULL:
            c += 3
            ne = c
            while ne < e and not is_ws(ne[0]) and ne[0] != c'*':
                ne += 1
            f = sym_id(P, c, <size_t>(ne - c))
            if f < 0:
                return -1
        elif stack != NULL and depth < FG_MAXDEPTH:
            f = stack[depth]
        set_i32(rec, OFF[O_FG_FUNC], f)
        return 0
    is_exit[0] = False
    ne = q
    while ne < e and ne[0] != c'(' and ne[0] != c';' and ne[0] != c' ' and ne[0] != c'{':
        ne += 1
    f = sym_id(P, q, <size_t>(ne - q))
    if f < 0:
        return -1
    set_i32(rec, OFF[O_FG_FUNC], f)
    if stack != NULL and depth < FG_MAXDEPTH:
        stack[depth] = f
    return 0

cdef int pl_funcgraph(PState *P, char *rec, const char *p, const char *e,
                      int64_t cpu) noexcept nogil:
    """funcgraph_entry / funcgraph_exit event lines of trace-cmd: `func=0x.. depth=N` (-R) or
    the function_graph text after the event name."""
    cdef const char *v
    cdef const char *ve
    cdef int64_t dur
    cdef int32_t s
    cdef bint is_exit
    v = kv(p, e, b" func=")
    if v != NULL:
        ve = tok_end(v, e)
        s = sym_id(P, v, <size_t>(ve - v))
        if s < 0:
            return -1
        set_i32(rec, OFF[O_FG_FUNC], s)
        if kv_set_i32(P, &p, e, b" depth=", rec, OFF[O_FG_DEPTH], False) < 0 and P.err_code == E_RANGE:
            return -1
        return 0
    v = fg_duration(p, e, &dur)
    if v == NULL:
        set_err(P, E_FUNCGRAPH, p, b"duration |")
        return -1
    return fg_body(P, rec, v, e, cpu, dur, &is_exit, 2)

cdef int parse_funcgraph_line(PState *P, const char *p, const char *e) noexcept nogil:
    """function_graph output: `[ABSTIME |] CPU) [comm-pid |] [DURATION] | body`.
    1: not such a line; 0: handled (event, header or filtered); -1: malformed."""
    cdef const char *q = p
    cdef const char *t
    cdef const char *bar
    cdef const char *d
    cdef int64_t cpu, ts = -1, dur, v
    cdef int64_t pid = -1
    cdef const char *paren
    cdef int indent
    cdef int32_t comm = -1, et, s
    cdef int32_t *st
    cdef char *rec
    cdef bint is_exit = False
    cdef const char *cs
    cdef size_t cl = 0
    cdef bint has_proc = False
    cdef int64_t ctx_ts
    cdef int err
    cdef const char *what
    # optional absolute time `7238523.638008 |` (funcgraph-abstime)
    t = q
    while t < e and is_digit(t[0]):
        t += 1
    if t > q and t < e and t[0] == c'.':
        d = parse_secs(q, e, &ts, &err, &what)
        if d == NULL:
            return 1
        d = skip_ws(d, e)
        if d >= e or d[0] != c'|':
            return 1
        q = skip_ws(d + 1, e)
    t = q
    while t < e and is_digit(t[0]):
        t += 1
    if t == q or t >= e or t[0] != c')':
        return 1
    if parse_i64(q, t, &cpu) == NULL:
        return 1
    paren = t + 1
    q = skip_ws(t + 1, e)
    if q >= e:
        P.headers += 1
        return 0
    st = fg_cpu_slot(P, cpu)
    if P.oom:
        return -1
    if st == NULL:
        return 1  # a CPU number out of range: not function_graph output
    # context switch separator ` 3)    bash-431    =>    <idle>-0   `
    d = find(q, e, b"=>", 2)
    bar = <const char*>memchr(q, c'|', <size_t>(e - q))
    if d != NULL and (bar == NULL or d < bar) and q[0] != c'=':
        t = rtrim(d, e)
        cs = skip_ws(d + 2, e)
        t = rtrim(cs, e)
        # right side `comm-pid`
        d = t
        while d > cs and d[-1] != c'-':
            d -= 1
        if d > cs and parse_i64(d, t, &v) == t:
            if not fits_i32(v):
                set_err(P, E_RANGE, d, b"pid")
                return -1
            (<int32_t*>P.fg_pid.data)[cpu] = <int32_t>v
            s = comm_id(P, cs, <size_t>(d - 1 - cs))
            if s < 0:
                return -1
            (<int32_t*>P.fg_comm.data)[cpu] = s
        P.headers += 1
        return 0
    if bar == NULL:
        # funcgraph-duration off (`-D`): the body follows `N)`, indented 1 blank + 2 per depth
        q = paren
        dur = -1
        indent = 1
    else:
        indent = 2
    # irq markers `==========> |` / `<========== |`
    if q[0] == c'=' or q[0] == c'<':
        P.headers += 1
        return 0
    # optional `comm-pid |` (funcgraph-proc)
    if bar != NULL and not (is_digit(q[0]) or is_delay_mark(q[0]) or q[0] == c'|'):
        t = rtrim(q, bar)
        d = t
        while d > q and d[-1] != c'-':
            d -= 1
        if d > q and parse_i64(d, t, &v) == t:
            if not fits_i32(v):
                set_err(P, E_RANGE, d, b"pid")
                return -1
            pid = v
            cs = q
            cl = <size_t>(d - 1 - q)
            has_proc = True
            q = bar + 1
        else:
            set_err(P, E_FUNCGRAPH, q, b"duration or comm-pid")
            return -1
    if bar != NULL:
        q = fg_duration(q, e, &dur)
        if q == NULL:
            set_err(P, E_FUNCGRAPH, p, b"duration |")
            return -1
    if has_proc:
        comm = comm_id(P, cs, cl)
        if comm < 0:
            return -1
        # the line's task is its CPU's from now on, as after a context-switch line
        (<int32_t*>P.fg_pid.data)[cpu] = <int32_t>pid
        (<int32_t*>P.fg_comm.data)[cpu] = comm
    else:
        pid = (<int32_t*>P.fg_pid.data)[cpu]
        comm = (<int32_t*>P.fg_comm.data)[cpu]
    if ts >= 0:
        (<int64_t*>P.fg_ts.data)[cpu] = ts
    # entry or exit: look at the body before choosing the event type
    t = q
    while t < e and t[0] == c' ':
        t += 1
    et = P.et_fg_exit if (t < e and t[0] == c'}') else P.et_fg_entry
    if ts >= 0:
        count_ts(P, ts, TS_DECIMAL)
    # A line without a time or task column is selected by its CPU's context: the time of the
    # last line of that CPU with one, the task of its last context switch or comm-pid column.
    # Where the CPU has no such line yet the filter cannot place the line, and keeps it.
    ctx_ts = (<int64_t*>P.fg_ts.data)[cpu]
    if (not P.types[et].wanted
            or (P.cpu_ok != NULL and not (cpu < P.ncpu_ok and P.cpu_ok[cpu]))
            or (ctx_ts >= 0 and not filter_cpu_time(P, cpu, ctx_ts))
            or (P.pid_ok != NULL and pid >= 0 and not pid_wanted(P, pid))
            or (P.has_comm_filter and comm >= 0 and not comm_wanted(P, comm))):
        # keep the function stack right even for lines not kept
        if et == P.et_fg_entry and st != NULL:
            rec = new_record(P, et)
            if rec == NULL:
                return -1
            fg_body(P, rec, q, e, cpu, dur, &is_exit, indent)
            drop_record(P, et)
        P.filtered += 1
        return 0
    rec = new_record(P, et)
    if rec == NULL:
        return -1
    write_common(rec, ts, P.lines, cpu, pid, -1, comm, 0)
    if fg_body(P, rec, q, e, cpu, dur, &is_exit, indent) < 0:
        drop_record(P, et)
        return -1
    commit_record(P, et)
    P.n_funcgraph += 1
    return 0
