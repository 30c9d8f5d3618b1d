# Line kinds: included by _ftparse.pyx (one compilation unit).
# Classify each line (event, stack frame, header, LOST marker, function_graph) and dispatch it.

cdef inline void count_ts(PState *P, int64_t ts, int kind) noexcept nogil:
    P.n_ts[kind] += 1
    if kind == TS_INTEGER and ts > P.max_int_ts:
        P.max_int_ts = ts

cdef inline bint filter_cpu_time(PState *P, int64_t cpu, int64_t ts) noexcept nogil:
    if P.cpu_ok != NULL and not (0 <= cpu < P.ncpu_ok and P.cpu_ok[cpu]):
        return False
    if P.has_t_start and ts < P.t_start:
        return False
    if P.has_t_end and ts > P.t_end:
        return False
    return True

cdef bint payload_wanted(PState *P, int layout, char *rec, bint need_pid,
                         bint need_comm) noexcept nogil:
    """The pid / comm filters a line's own task did not satisfy, tried on the tasks a sched
    event names in its payload: each filter is met when any task of the line meets it."""
    cdef int32_t o_pid1 = -1, o_pid2 = -1, o_c1 = -1, o_c2 = -1
    if layout == L_SCHED_SWITCH:
        o_pid1 = OFF[O_SW_PREV_PID]; o_pid2 = OFF[O_SW_NEXT_PID]
        o_c1 = OFF[O_SW_PREV_COMM]; o_c2 = OFF[O_SW_NEXT_COMM]
    elif layout == L_SCHED_WAKE:
        o_pid1 = OFF[O_WK_PID]; o_c1 = OFF[O_WK_COMM]
    elif layout == L_MIGRATE:
        o_pid1 = OFF[O_MG_PID]; o_c1 = OFF[O_MG_COMM]
    elif layout == L_FORK:
        o_pid1 = OFF[O_FK_PID]; o_pid2 = OFF[O_FK_CPID]
        o_c1 = OFF[O_FK_COMM]; o_c2 = OFF[O_FK_CCOMM]
    elif layout == L_PROC_TASK:
        o_pid1 = OFF[O_PT_PID]; o_c1 = OFF[O_PT_COMM]
    elif layout == L_EXEC:
        o_pid1 = OFF[O_EX_PID]
    elif layout == L_STAT_RUNTIME:
        o_pid1 = OFF[O_SR_PID]; o_c1 = OFF[O_SR_COMM]
    elif layout == L_STAT_DELAY:
        o_pid1 = OFF[O_SD_PID]; o_c1 = OFF[O_SD_COMM]
    else:
        return False
    if need_pid:
        if not ((o_pid1 >= 0 and pid_wanted(P, (<int32_t*>(rec + o_pid1))[0]))
                or (o_pid2 >= 0 and pid_wanted(P, (<int32_t*>(rec + o_pid2))[0]))):
            return False
    if need_comm:
        if not ((o_c1 >= 0 and comm_wanted(P, (<int32_t*>(rec + o_c1))[0]))
                or (o_c2 >= 0 and comm_wanted(P, (<int32_t*>(rec + o_c2))[0]))):
            return False
    return True

cdef int parse_payload(PState *P, int layout, char *rec, const char *p, const char *e,
                       int32_t et, int64_t cpu) noexcept nogil:
    cdef int r
    if layout == L_SCHED_SWITCH:
        r = fast_sched_switch(P, rec, p, e)
        if r != 0:
            return 0 if r > 0 else -1
        return pl_sched_switch(P, rec, p, e)
    if layout == L_SCHED_WAKE:
        r = fast_sched_wake(P, rec, p, e)
        if r != 0:
            return 0 if r > 0 else -1
        return pl_sched_wake(P, rec, p, e)
    if layout == L_KVM_ENTRY or layout == L_KVM_EXIT:
        if p == e:
            return 0  # trace-cmd prints `kvm_entry:` alone when its plugin lacks the fields
        r = fast_kvm(P, rec, p, e, layout)
        if r != 0:
            return 0 if r > 0 else -1
        return pl_kvm(P, rec, p, e, layout)
    if layout == L_GENERIC:
        return put_text(P, rec, OFF[O_PAYLOAD_OFF], OFF[O_PAYLOAD_LEN], p, e)
    if layout == L_IRQ_ENTRY or layout == L_IRQ_EXIT:
        return pl_irq(P, rec, p, e, layout)
    if layout == L_SOFTIRQ:
        return pl_softirq(P, rec, p, e)
    if layout == L_MIGRATE:
        return pl_migrate(P, rec, p, e)
    if layout == L_KVM_WAKEUP:
        return pl_kvm_wakeup(P, rec, p, e)
    if layout == L_TEXT:
        return put_text(P, rec, OFF[O_TX_OFF], OFF[O_TX_LEN], p, e)
    if layout == L_STAT_RUNTIME:
        return pl_stat_runtime(P, rec, p, e)
    if layout == L_STAT_DELAY:
        return pl_stat_delay(P, rec, p, e)
    if layout == L_FORK:
        return pl_fork(P, rec, p, e)
    if layout == L_PROC_TASK:
        return pl_proc_task(P, rec, p, e)
    if layout == L_EXEC:
        return pl_exec(P, rec, p, e)
    if layout == L_BLOCK:
        return pl_block(P, rec, p, e, et)
    if layout == L_FUNCGRAPH:
        return pl_funcgraph(P, rec, p, e, cpu)
    return 0

cdef inline void write_common(char *rec, int64_t ts, int64_t line, int64_t cpu, int64_t pid,
                              int64_t tgid, int32_t comm, uint64_t flagw) noexcept nogil:
    (<int64_t*>(rec + C_TS))[0] = ts
    (<int64_t*>(rec + C_LINE))[0] = line
    (<int32_t*>(rec + C_CPU))[0] = <int32_t>cpu
    (<int32_t*>(rec + C_PID))[0] = <int32_t>pid
    (<int32_t*>(rec + C_TGID))[0] = <int32_t>tgid
    (<int32_t*>(rec + C_COMM))[0] = comm
    memcpy(rec + C_FLAGS, &flagw, 8)

cdef inline void note_event(PState *P, Prefix *x, int32_t comm, int kept) noexcept nogil:
    """Remember a parsed event line: the stack frames after it take its task, CPU and time."""
    count_ts(P, x.ts, x.ts_kind)
    if x.latency:
        P.n_latency += 1
    if x.tgid != -1 or x.has_tgid:
        P.n_tgid += 1
    if x.flags_len:
        P.n_flags += 1
        if <int64_t>x.flags_len > P.flags_width_max:
            P.flags_width_max = x.flags_len
    else:
        P.n_noflags += 1
    P.has_last = 1
    P.last_kept = kept
    P.last_ts = x.ts
    P.last_any_ts = x.ts
    P.last_cpu = <int32_t>x.cpu
    P.last_pid = <int32_t>x.pid
    P.last_tgid = <int32_t>x.tgid
    P.last_comm = comm
    P.last_flagw = x.flagw

cdef int parse_event_line(PState *P, const char *p, const char *e) noexcept nogil:
    """0: an event (kept or filtered); -1: not an event line (P.err_* says why)."""
    cdef Prefix x
    cdef const char *n0
    cdef const char *n1
    cdef const char *pl
    cdef int32_t et, comm, layout
    cdef char *rec
    cdef char namebuf[160]
    cdef size_t nn
    cdef uint64_t w0 = 0, w1 = 0
    cdef NameHead *head
    cdef bint keep_line, line_pid, line_comm
    P.err_event = -1
    if parse_prefix(P, p, e, &x) < 0:
        return -1
    n0 = skip_ws(x.rest, e)
    if n0 >= e:
        set_err(P, E_NO_EVENT, n0, b"event name after the timestamp")
        return -1
    # the event name: a token ending in ':' and a blank.  Lines without one come from tracers
    # that print their own shape: the function tracer (`func <-parent`), stack traces, and the
    # syscall events' `sys_x(args)` / `sys_x -> ret`.
    pl = NULL
    et = -1
    head = NULL
    if e - n0 >= 16:
        # a short name is known by the line's 16 bytes from it, looked up at once (the search
        # for its end and the hash of its bytes wait on one another)
        w0 = load64(n0)
        w1 = load64(n0 + 8)
        head = &P.name_head[((w0 * 0x9E3779B97F4A7C15ULL) ^ (w1 * 0xC2B2AE3D27D4EB4FULL)) >> 58]
        if head.n and head.w0 == w0 and head.w1 == w1:
            et = head.id
            pl = skip_ws(n0 + head.n + 1, e)
    n1 = name_end(n0, e) if et < 0 else n0
    if et >= 0:
        pass
    elif n1 < e and n1[0] == c':' and n1 > n0 and (n1 + 1 == e or is_ws(n1[1])):
        et = event_type(P, n0, <size_t>(n1 - n0))
        pl = skip_ws(n1 + 1, e)
        if head != NULL and et >= 0 and n1 - n0 <= 14:
            # the name, ':' and a blank all lie within the 16 bytes
            head.w0 = w0
            head.w1 = w1
            head.n = <int32_t>(n1 - n0)
            head.id = et
    elif starts(n0, e, b"<stack trace") != NULL:
        et = P.et_kstack
        pl = n0
    elif starts(n0, e, b"<user stack trace") != NULL:
        et = P.et_ustack
        pl = n0
    elif n1 - n0 > 4 and memcmp(n0, b"sys_", 4) == 0 and n1 < e and n1[0] == c'(' and n1 - n0 < 140:
        memcpy(namebuf, b"sys_enter_", 10)
        nn = <size_t>(n1 - n0 - 4)
        memcpy(namebuf + 10, n0 + 4, nn)
        et = event_type(P, namebuf, 10 + nn)
        pl = n1
    elif (n1 - n0 > 4 and memcmp(n0, b"sys_", 4) == 0 and n1 - n0 < 140
          and starts(n1, e, b" -> ") != NULL):
        memcpy(namebuf, b"sys_exit_", 9)
        nn = <size_t>(n1 - n0 - 4)
        memcpy(namebuf + 9, n0 + 4, nn)
        et = event_type(P, namebuf, 9 + nn)
        pl = n1 + 4
    else:
        et = P.et_function
        pl = n0
    if et < 0:
        return -1  # out of memory
    P.err_event = et
    if not P.types[et].wanted or not filter_cpu_time(P, x.cpu, x.ts):
        # not kept: its comm is not even interned (the stack frames after it are not kept)
        note_event(P, &x, -1, 0)
        P.filtered += 1
        return 0
    comm = comm_id(P, x.comm, x.comm_len)
    if comm < 0:
        return -1
    P.line_comm = comm
    P.line_comm_p = x.comm
    P.line_comm_n = x.comm_len
    layout = P.types[et].layout
    line_pid = P.pid_ok == NULL or pid_wanted(P, x.pid)
    line_comm = not P.has_comm_filter or comm_wanted(P, comm)
    keep_line = line_pid and line_comm
    if not keep_line and (layout < L_SCHED_SWITCH or layout > L_STAT_DELAY):
        note_event(P, &x, comm, 0)
        P.filtered += 1
        return 0
    rec = new_record(P, et)
    if rec == NULL:
        return -1
    write_common(rec, x.ts, P.lines, x.cpu, x.pid, x.tgid, comm, x.flagw)
    e = rtrim(pl, e)
    if parse_payload(P, layout, rec, pl, e, et, x.cpu) < 0:
        drop_record(P, et)
        return -1
    if not keep_line and not payload_wanted(P, layout, rec, not line_pid, not line_comm):
        drop_record(P, et)
        note_event(P, &x, comm, 0)
        P.filtered += 1
        return 0
    commit_record(P, et)
    note_event(P, &x, comm, 1)
    return 0

cdef int parse_stack_frame(PState *P, const char *p, const char *e) noexcept nogil:
    """` => func (ffffffff81000000)`, `=> <00007f12>`: one frame of the stack trace printed by
    the event line before it, whose task, CPU and time it takes."""
    cdef const char *q = skip_ws(p + 2, e)
    cdef const char *fe
    cdef const char *lp
    cdef uint64_t addr = 0
    cdef char *rec
    cdef int32_t s
    e = rtrim(q, e)
    if not P.has_last:
        if P.later_part:
            P.needs_before = 1
        set_err(P, E_ORPHAN_FRAME, p, b"an event line before the stack frame")
        return -1
    if not P.last_kept or not P.types[P.et_frame].wanted:
        P.filtered += 1
        return 0
    fe = e
    if e > q and e[-1] == c')':
        lp = e - 1
        while lp > q and lp[0] != c'(':
            lp -= 1
        if lp > q and lp[0] == c'(' and parse_hex(lp + 1, e - 1, &addr) == e - 1:
            fe = rtrim(q, lp)
        else:
            addr = 0
    elif e - q > 2 and q[0] == c'<' and e[-1] == c'>':
        if parse_hex(q + 1, e - 1, &addr) != e - 1:
            addr = 0
    rec = new_record(P, P.et_frame)
    if rec == NULL:
        return -1
    write_common(rec, P.last_ts, P.lines, P.last_cpu, P.last_pid, P.last_tgid, P.last_comm,
                 P.last_flagw)
    s = sym_id(P, q, <size_t>(fe - q))
    if s < 0:
        drop_record(P, P.et_frame)
        return -1
    set_i32(rec, OFF[O_SF_FUNC], s)
    set_u64(rec, OFF[O_SF_ADDR], addr)
    commit_record(P, P.et_frame)
    return 0

cdef bint is_header_line(PState *P, const char *p, const char *e) noexcept nogil:
    """Lines that carry no event: trace-cmd's `cpus=N`, `version = N`, `CPU N is empty`,
    ftrace_dump's banner and dashes, libtraceevent's `NNN: ARG TYPE NOT FIELD BUT N` noise."""
    cdef const char *q
    cdef int64_t v
    cdef char c = p[0]
    if c == c'c':
        return starts(p, e, b"cpus=") != NULL
    if c == c'v':
        return starts(p, e, b"version = ") != NULL
    if c == c'D':
        return starts(p, e, b"Dumping ftrace buffer") != NULL
    if c == c'-':
        q = p
        while q < e and q[0] == c'-':
            q += 1
        return rtrim(q, e) == q
    if c == c'C':
        q = starts(p, e, b"CPU ")
        if q != NULL:
            q = parse_i64(q, e, &v)
            return q != NULL and starts(q, e, b" is empty") != NULL
        return False
    if is_digit(c):
        q = p
        while q < e and is_digit(q[0]):
            q += 1
        return starts(q, e, b": ARG TYPE NOT FIELD BUT") != NULL
    return False

cdef int parse_lost(PState *P, const char *p, const char *e) noexcept nogil:
    """`CPU:N [LOST M EVENTS]` (kernel) or `CPU:N [M EVENTS DROPPED]` (trace-cmd).
    1: not such a line (or a CPU out of [0, MAX_CPU]); 0: recorded; -1: a negative count."""
    cdef const char *q = starts(p, e, b"CPU:")
    cdef const char *cnt
    cdef int64_t cpu, n
    cdef LostRec *r
    if q == NULL:
        return 1
    q = parse_i64(q, e, &cpu)
    if q == NULL or cpu < 0 or cpu > MAX_CPU:
        return 1
    q = skip_ws(q, e)
    if starts(q, e, b"[LOST ") != NULL:
        cnt = q + 6
        q = parse_i64(cnt, e, &n)
        if q == NULL or starts(q, e, b" EVENTS]") == NULL:
            return 1
    elif q < e and q[0] == c'[':
        cnt = q + 1
        q = parse_i64(cnt, e, &n)
        if q == NULL or starts(q, e, b" EVENTS DROPPED]") == NULL:
            return 1
    else:
        return 1
    if n < 0:
        # a marker, but no count of lost events
        P.err_event = -1
        set_err(P, E_RANGE, cnt, b"LOST count")
        return -1
    if g_reserve(&P.lost, sizeof(LostRec)) < 0:
        P.oom = 1
        return 0
    r = <LostRec*>(P.lost.data + P.lost.size)
    P.lost.size += sizeof(LostRec)
    if P.later_part and not P.has_last:
        P.needs_before = 1
    r.line = P.lines
    r.ts = P.last_any_ts
    r.count = n
    r.cpu = <int32_t>cpu
    r.pad = 0
    P.headers += 1
    return 0

cdef const char *dmesg_prefix(const char *p, const char *e) noexcept nogil:
    """After a printk time stamp `[  123.456789] ` (ftrace_dump_on_oops), or NULL."""
    cdef const char *q = skip_ws(p + 1, e)
    cdef const char *s = q
    while q < e and is_digit(q[0]):
        q += 1
    if q == s or q >= e or q[0] != c'.':
        return NULL
    q += 1
    s = q
    while q < e and is_digit(q[0]):
        q += 1
    if q == s or q >= e or q[0] != c']':
        return NULL
    return q + 1

cdef int classify(PState *P, const char *s, const char *p, const char *e) noexcept nogil:
    """Which kind of line [p, e) is, handled: 0; malformed: -1 (P.err_* say why)."""
    cdef char c
    cdef int r, code
    cdef const char *pos
    cdef const char *what
    cdef int32_t event
    if p >= e:
        P.headers += 1
        return 0
    c = p[0]
    if c == c'#':
        # comments and headers (`# tracer: nop`, `##### CPU N buffer started ####`) -- but a
        # comm may begin with '#' too: right-aligned after blanks, or in column 0 when the
        # latency format cuts it to 8 characters
        if parse_event_line(P, p, e) == 0:
            return 0
        if P.oom:
            return -1
        P.headers += 1
        return 0
    if c == c'=' and p + 1 < e and p[1] == c'>':
        return parse_stack_frame(P, p, e)
    if c == c'C':
        r = parse_lost(P, p, e)
        if r <= 0:
            return r
    if is_header_line(P, p, e):
        if c == c'c' or c == c'v':
            P.n_tracecmd_hdr += 1
        P.headers += 1
        return 0
    if parse_event_line(P, p, e) == 0:
        return 0
    if P.oom or not is_digit(c):
        return -1
    # function_graph output (` 3)   0.245 us |  f();`); tried second, since a comm may also
    # start with digits and ')'
    code = P.err_code
    pos = P.err_pos
    what = P.err_what
    event = P.err_event
    r = parse_funcgraph_line(P, p, e)
    if r <= 0:
        return r
    set_err(P, code, pos, what)
    P.err_event = event
    return -1

cdef void note_machine(PState *P, const char *p, const char *e) noexcept nogil:
    """A line prefixed with the file name [p, e): a new run when it is not the last one."""
    cdef int32_t id_
    cdef bint is_new
    cdef int64_t *run
    cdef int32_t c = P.cur_machine - 1
    if (c >= 0 and (<int32_t*>P.machines.lens.data)[c] == e - p and
            memcmp(P.machines.chars.data + (<int64_t*>P.machines.offs.data)[c], p, <size_t>(e - p)) == 0):
        return
    id_ = intern(&P.machines, p, <size_t>(e - p), &is_new)
    if id_ < 0 or g_reserve(&P.machine_runs, 16) < 0:
        P.oom = 1
        return
    run = <int64_t*>(P.machine_runs.data + P.machine_runs.size)
    run[0] = P.lines
    run[1] = id_
    P.machine_runs.size += 16
    P.cur_machine = id_ + 1
LINE_KINDS = {"event": LK_EVENT, "header": LK_HEADER, "filtered": LK_FILTERED,
              "malformed": LK_MALFORMED}

cdef uint8_t parse_line(PState *P, const char *s, const char *e) noexcept nogil:
    """Parse one line (without its line end); returns what it was (LK_*)."""
    cdef const char *p
    cdef const char *q
    cdef const char *t
    if e > s and e[-1] == c'\r':
        e -= 1
    p = skip_ws(s, e)
    if p < e and p[0] == c'[':
        q = dmesg_prefix(p, e)
        if q != NULL:
            p = skip_ws(q, e)
            P.n_dmesg += 1
    # trace-cmd's multi-file report prefixes every line with the input's name and ': '; its
    # `name: cpus=N` header lines turn that mode on.  A first word ending in `.dat:` is taken
    # as such a prefix anywhere (excerpts of multi-file reports often lack the header).
    t = tok_end(p, e)
    if t - p >= 2 and t[-1] == c':' and t < e:
        q = skip_ws(t, e)
        if P.multifile or (t - p > 5 and memcmp(t - 5, b".dat:", 5) == 0):
            note_machine(P, p, t - 1)
            p = q
            P.n_prefixed += 1
        elif starts(q, e, b"cpus=") != NULL:
            P.multifile = 1
            note_machine(P, p, t - 1)
            P.n_prefixed += 1
            P.n_tracecmd_hdr += 1
            P.headers += 1
            if P.mark_lines:
                mark_line(P, LK_HEADER)
            return LK_HEADER
    cdef int64_t ev0 = P.events, hd0 = P.headers, fl0 = P.filtered
    cdef uint8_t kind
    # an error names the event of its own line only (not one left by a line before it, which
    # a part parsed on its own would not have seen)
    P.err_event = -1
    if classify(P, s, p, e) < 0 and not P.oom:
        record_error(P, s, e)
    kind = (LK_EVENT if P.events != ev0 else LK_HEADER if P.headers != hd0
            else LK_FILTERED if P.filtered != fl0 else LK_MALFORMED)
    if P.mark_lines:
        mark_line(P, kind)
    return kind

cdef uint8_t skip_long_line(PState *P, const char *head, int64_t nbytes) noexcept nogil:
    """A line of nbytes (over P.max_line), of which head holds the first bytes (at least the
    excerpt's 200 or the whole line): malformed, never parsed.  Blocks that cannot hold such
    a line skip its middle unread (Parser.long_line), so memory stays bounded by the limit."""
    cdef int64_t n = nbytes if nbytes < 200 else 200
    P.err_event = -1
    set_err(P, E_LONG, NULL, b"")
    P.long_nbytes = nbytes
    record_error(P, head, head + n)
    P.long_nbytes = -1
    if P.mark_lines:
        mark_line(P, LK_MALFORMED)
    return LK_MALFORMED

cdef inline void keep_text(PState *P, uint8_t kind, const char *s, const char *e) noexcept nogil:
    """Copy a header or kept event line [s, e), its line end included."""
    if kind != LK_EVENT and kind != LK_HEADER:
        return
    if g_reserve(&P.kept_text, <size_t>(e - s)) < 0:
        P.oom = 1
        return
    memcpy(P.kept_text.data + P.kept_text.size, s, <size_t>(e - s))
    P.kept_text.size += <size_t>(e - s)

cdef inline void mark_line(PState *P, uint8_t kind) noexcept nogil:
    if g_reserve(&P.line_kinds, 1) < 0:
        P.oom = 1
        return
    P.line_kinds.data[P.line_kinds.size] = <char>kind
    P.line_kinds.size += 1

cdef void parse_block(PState *P, const char *buf, size_t n) noexcept nogil:
    cdef const char *s = buf
    cdef const char *end = buf + n
    cdef const char *nl
    cdef uint8_t kind
    while s < end:
        nl = <const char*>memchr(s, c'\n', <size_t>(end - s))
        if nl == NULL:
            nl = end
        P.lines += 1
        if unlikely(nl - s > P.max_line):
            kind = skip_long_line(P, s, nl - s)
        else:
            kind = parse_line(P, s, nl)
        if P.keep_text:
            keep_text(P, kind, s, nl + 1 if nl < end else end)
        P.offset += (nl - s) + 1
        s = nl + 1
        if P.stop or P.oom:
            return

cdef void parse_last(PState *P, const char *buf, size_t n) noexcept nogil:
    cdef const char *last = buf + n
    cdef uint8_t kind
    while last > buf and last[-1] != c'\n':
        last -= 1
    if last > buf:
        parse_block(P, buf, <size_t>(last - buf))
        if P.stop or P.oom:
            return
    P.final_piece = 1
    P.lines += 1
    if (buf + n) - last > P.max_line:
        kind = skip_long_line(P, last, (buf + n) - last)
    else:
        kind = parse_line(P, last, buf + n)
    if P.keep_text:
        keep_text(P, kind, last, buf + n)
    P.offset += (buf + n) - last
    P.final_piece = 0
