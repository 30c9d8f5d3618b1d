# Payload decoders: included by _ftparse.pyx (one compilation unit).
# Each returns 0, or -1 after set_err(); `p` is the first payload byte, `e` the line end without trailing blanks.

cdef inline const char *kv(const char *p, const char *e, const char *key) noexcept nogil:
    """Value start of `key` (given with its '=' and a leading space, e.g. b" pid=") found at
    p without the space or anywhere after p with it; NULL if absent."""
    cdef const char *q = starts(p, e, key + 1)
    if q != NULL:
        return q
    q = find(p, e, key, strlen(key))
    if q == NULL:
        return NULL
    return q + strlen(key)

cdef inline int kv_int(PState *P, const char **cur, const char *e, const char *key,
                       int64_t *out, bint required) noexcept nogil:
    """Integer value (decimal or 0x hex) of key, searched from cur[0], which moves past the
    value when found (fields come in the format's order).  1 found, 0 absent, -1 error."""
    cdef const char *p = cur[0]
    cdef const char *v = kv(p, e, key)
    cdef const char *q
    if v == NULL:
        if required:
            set_err(P, E_FIELD, skip_ws(p, e), key + 1)
            return -1
        return 0
    if v < e and v[0] == c'0' and v + 1 < e and (v[1] == c'x' or v[1] == c'X'):
        q = parse_hex(v, e, <uint64_t*>out)
    else:
        q = parse_i64(v, e, out)
    if q == NULL:
        set_err(P, E_FIELD, v, key + 1)
        return -1
    cur[0] = q
    return 1

cdef inline int kv_ranged(PState *P, const char **cur, const char *e, const char *key,
                          int64_t *out, bint required, int64_t lo, int64_t hi) noexcept nogil:
    """kv_int() for a column narrower than int64: a value outside [lo, hi] is an error
    (E_RANGE), never a wrapped value."""
    cdef const char *before = cur[0]
    cdef int r = kv_int(P, cur, e, key, out, required)
    if r > 0 and not (lo <= out[0] <= hi):
        cur[0] = before
        set_err(P, E_RANGE, kv(before, e, key), key + 1)
        return -1
    return r

cdef inline int kv_i32(PState *P, const char **cur, const char *e, const char *key,
                       int64_t *out, bint required) noexcept nogil:
    return kv_ranged(P, cur, e, key, out, required, I32_MIN, I32_MAX)

cdef inline int kv_i8(PState *P, const char **cur, const char *e, const char *key,
                      int64_t *out, bint required) noexcept nogil:
    return kv_ranged(P, cur, e, key, out, required, -128, 127)

cdef inline int kv_set_i64(PState *P, const char **cur, const char *e, const char *key,
                           char *rec, int32_t o, bint required) noexcept nogil:
    """kv_int(), storing the value at rec + o when found; 1 found, 0 absent, -1 error."""
    cdef int64_t v
    cdef int r = kv_int(P, cur, e, key, &v, required)
    if r > 0:
        set_i64(rec, o, v)
    return r

cdef inline int kv_set_i32(PState *P, const char **cur, const char *e, const char *key,
                           char *rec, int32_t o, bint required) noexcept nogil:
    """kv_set_i64() for an int32 column."""
    cdef int64_t v
    cdef int r = kv_i32(P, cur, e, key, &v, required)
    if r > 0:
        set_i32(rec, o, v)
    return r

cdef inline int kv_set_i8(PState *P, const char **cur, const char *e, const char *key,
                          char *rec, int32_t o, bint required) noexcept nogil:
    """kv_set_i64() for an int8 column."""
    cdef int64_t v
    cdef int r = kv_i8(P, cur, e, key, &v, required)
    if r > 0:
        set_i8(rec, o, v)
    return r

cdef inline int kv_comm(PState *P, const char *p, const char *e, const char *key, const char *next_key,
                 char *rec, int32_t o, const char **after) noexcept nogil:
    """A comm value (may hold spaces) that ends where next_key begins."""
    cdef const char *v = kv(p, e, key)
    cdef const char *k
    cdef int32_t c
    if v == NULL:
        set_err(P, E_FIELD, p, key + 1)
        return -1
    k = find(v, e, next_key, strlen(next_key))
    if k == NULL:
        # the comm's end is unknown: point after its first word
        set_err(P, E_FIELD, skip_ws(tok_end(v, e), e), next_key + 1)
        return -1
    c = comm_id(P, v, <size_t>(k - v))
    if c < 0:
        return -1
    set_i32(rec, o, c)
    after[0] = k
    return 0

cdef const char *parse_state(const char *p, const char *e, int32_t *out) noexcept nogil:
    """A prev_state: letters joined by '|' with an optional '+', or a number."""
    cdef int32_t bits = 0, b
    cdef uint64_t v
    cdef const char *q
    if p < e and is_digit(p[0]):
        q = parse_num_auto(p, e, &v)
        if q == NULL:
            return NULL
        bits = <int32_t>(v & 0xff) | ST_NUMERIC
        if v & ~(<uint64_t>0xff):
            bits |= ST_PREEMPTED
        out[0] = bits
        return q
    q = p
    while q < e and not is_ws(q[0]):
        if q[0] == c'|':
            pass
        elif q[0] == c'+':
            bits |= ST_PREEMPTED
        else:
            b = STATE_OF[<uint8_t>q[0]]
            bits |= ST_UNKNOWN if b < 0 else b
        q += 1
    if q == p:
        return NULL
    out[0] = bits
    return q

cdef const char *comm_pid_prio(const char *p, const char *e, const char **ce, int64_t *pid,
                               int64_t *prio) noexcept nogil:
    """trace-cmd's compact `comm:pid [prio]`: the first ':' followed by digits, ' [', digits
    and ']' ends the comm (which may itself hold colons and spaces)."""
    cdef const char *q = p
    cdef const char *c
    cdef const char *r
    while True:
        c = <const char*>memchr(q, c':', <size_t>(e - q)) if q < e else NULL
        if c == NULL:
            return NULL
        r = parse_i64(c + 1, e, pid)
        if r != NULL and is_digit(c[1]) and e - r >= 2 and r[0] == c' ' and r[1] == c'[':
            r = parse_i64(r + 2, e, prio)
            if r != NULL and r < e and r[0] == c']':
                ce[0] = c
                return r + 1
        q = c + 1

# Fast paths: the kernel's own layouts, matched key after key at fixed places.  Each returns
# 1 when the line had that exact shape, 0 when it did not (the tolerant parser then runs on
# it from scratch, so a partial match leaves nothing behind), -1 when memory ran out.

cdef inline const char *value_end(const char *q, const char *e) noexcept nogil:
    """q if a value ended there cleanly (end of line, blank or comma), else NULL: the fast
    paths then leave the line to the tolerant parsers."""
    if q == NULL or (q < e and not is_ws(q[0]) and q[0] != c','):
        return NULL
    return q

cdef const char *parse_i32(const char *p, const char *e, int64_t *out) noexcept nogil:
    """parse_i64() for an int32 column: NULL also when the value does not fit."""
    cdef const char *q = parse_i64(p, e, out)
    if q != NULL and not fits_i32(out[0]):
        return NULL
    return q

cdef inline const char *fast_int(const char *p, const char *e, int64_t *out) noexcept nogil:
    """An integer that fits int32 (the fast paths' columns are int32 or narrower); NULL
    otherwise, and the tolerant parser then says why.  Small, to be inlined."""
    return value_end(parse_i32(p, e, out), e)

cdef inline bint same_short(const char *a, const char *b, size_t n) noexcept nogil:
    """a[:n] == b[:n] for n <= 16, two words each (both lie in the parse buffer, which has
    PAD readable bytes past every line)."""
    if n > 16:
        return False
    return ((load64(a) ^ load64(b)) & word_mask(<Py_ssize_t>n)) == 0 and \
        ((load64(a + 8) ^ load64(b + 8)) & word_mask(<Py_ssize_t>n - 8)) == 0

cdef inline int fast_comm_pid(PState *P, const char *v, const char *e, const char *next_key,
                              size_t nl, char *rec, int32_t o_comm, int32_t o_pid,
                              const char **after, bint may_be_line_comm=False) noexcept nogil:
    """A comm value from v up to next_key (a comm may hold blanks), then the pid after that
    key; 1 matched (after = the byte past the pid), 0 not this shape, -1 out of memory.
    may_be_line_comm: the value is most often the line's own comm (a switch's prev_comm),
    whose id is taken without a lookup when the bytes are the same."""
    cdef const char *k = find(v, e, next_key, nl)
    cdef const char *q
    cdef int64_t pid
    cdef int32_t c
    if k == NULL:
        return 0
    q = fast_int(k + nl, e, &pid)
    if q == NULL:
        return 0
    if (may_be_line_comm and <size_t>(k - v) == P.line_comm_n
            and same_short(v, P.line_comm_p, P.line_comm_n)):
        c = P.line_comm
    else:
        c = comm_id(P, v, <size_t>(k - v))
    if c < 0:
        return -1
    set_i32(rec, o_comm, c)
    set_i32(rec, o_pid, pid)
    after[0] = q
    return 1

cdef inline const char *fast_int_at(const char *q, const char *e, char *rec,
                                    int32_t o) noexcept nogil:
    """An integer at q stored at offset o; the byte after it, or NULL (also for a NULL q:
    the key before it was not there).  Callers find the key with starts() on a literal,
    which folds into a few compares where a key passed in would cost strlen and memcmp."""
    cdef int64_t v
    if q == NULL:
        return NULL
    q = fast_int(q, e, &v)
    if q != NULL:
        set_i32(rec, o, v)
    return q

cdef int fast_sched_switch(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q = starts(p, e, b"prev_comm=")
    cdef const char *r
    cdef int32_t st
    cdef int k
    if q == NULL:
        return 0
    k = fast_comm_pid(P, q, e, b" prev_pid=", 10, rec, OFF[O_SW_PREV_COMM],
                      OFF[O_SW_PREV_PID], &q, True)
    if k <= 0:
        return k
    q = fast_int_at(starts(q, e, b" prev_prio="), e, rec, OFF[O_SW_PREV_PRIO])
    if q == NULL:
        return 0
    q = starts(q, e, b" prev_state=")
    if q == NULL:
        return 0
    q = parse_state(q, e, &st)
    if q == NULL:
        return 0
    set_i32(rec, OFF[O_SW_PREV_STATE], st)
    r = starts(q, e, b" ==> next_comm=")
    if r == NULL:
        r = starts(q, e, b" next_comm=")
        if r == NULL:
            return 0
    k = fast_comm_pid(P, r, e, b" next_pid=", 10, rec, OFF[O_SW_NEXT_COMM],
                      OFF[O_SW_NEXT_PID], &q)
    if k <= 0:
        return k
    return fast_int_at(starts(q, e, b" next_prio="), e, rec, OFF[O_SW_NEXT_PRIO]) != NULL

cdef int fast_sched_wake(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q = starts(p, e, b"comm=")
    cdef const char *r
    cdef int64_t v
    cdef int k
    if q == NULL:
        return 0
    k = fast_comm_pid(P, q, e, b" pid=", 5, rec, OFF[O_WK_COMM], OFF[O_WK_PID], &q)
    if k <= 0:
        return k
    q = fast_int_at(starts(q, e, b" prio="), e, rec, OFF[O_WK_PRIO])
    if q == NULL:
        return 0
    r = starts(q, e, b" success=")
    if r != NULL:
        q = fast_int(r, e, &v)
        if q == NULL or unlikely(not fits_i8(v)):
            return 0
        set_i8(rec, OFF[O_WK_SUCCESS], v)
    return fast_int_at(starts(q, e, b" target_cpu="), e, rec, OFF[O_WK_TARGET]) != NULL

cdef inline const char *fast_hex_at(const char *q, const char *e, char *rec, int32_t o,
                                    bint signed64) noexcept nogil:
    """The hex digits at q (after a key ending in "0x", found as in fast_int_at) stored at
    offset o; the byte after them, or NULL."""
    cdef uint64_t u
    if q == NULL:
        return NULL
    # the digits follow the key's "0x" without another prefix
    if e - q >= 2 and q[0] == c'0' and (q[1] == c'x' or q[1] == c'X'):
        return NULL
    q = value_end(parse_hex(q, e, &u), e)
    if q == NULL:
        return NULL
    if signed64:
        set_i64(rec, o, <int64_t>u)
    else:
        set_u64(rec, o, u)
    return q

cdef int fast_kvm(PState *P, char *rec, const char *p, const char *e, int layout) noexcept nogil:
    """Kernel 5.x/6.x: `vcpu N reason R rip 0x.. info1 0x.. info2 0x.. intr_info 0x..
    error_code 0x..` and `vcpu N, rip 0x..`."""
    cdef const char *q = starts(p, e, b"vcpu ")
    cdef const char *r
    cdef int64_t v
    cdef int32_t s
    if q == NULL:
        return 0
    q = fast_int(q, e, &v)
    if q == NULL:
        return 0
    if layout == L_KVM_ENTRY:
        set_i32(rec, OFF[O_KE_VCPU], v)
        r = starts(q, e, b", rip 0x")
        if r == NULL:
            r = starts(q, e, b" rip 0x")
            if r == NULL:
                return 0
        return fast_hex_at(r, e, rec, OFF[O_KE_RIP], False) != NULL
    set_i32(rec, OFF[O_KX_VCPU], v)
    q = starts(q, e, b" reason ")
    if q == NULL:
        return 0
    r = tok_end(q, e)
    if r > q and r[-1] == c',':
        r -= 1
    if r == q:
        return 0
    s = sym_id(P, q, <size_t>(r - q))
    if s < 0:
        return -1
    set_i32(rec, OFF[O_KX_REASON], s)
    q = fast_hex_at(starts(r, e, b" rip 0x"), e, rec, OFF[O_KX_RIP], False)
    if q == NULL:
        return 0
    q = fast_hex_at(starts(q, e, b" info1 0x"), e, rec, OFF[O_KX_INFO1], False)
    if q == NULL:
        return 0
    q = fast_hex_at(starts(q, e, b" info2 0x"), e, rec, OFF[O_KX_INFO2], False)
    if q == NULL:
        return 0
    q = fast_hex_at(starts(q, e, b" intr_info 0x"), e, rec, OFF[O_KX_INTR], True)
    if q == NULL:
        return 0
    q = fast_hex_at(starts(q, e, b" error_code 0x"), e, rec, OFF[O_KX_ERR], True)
    return q != NULL

cdef int pl_sched_switch(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef const char *ce
    cdef const char *arrow
    cdef int64_t v, prio
    cdef int32_t st, c
    if starts(p, e, b"prev_comm=") != NULL:
        if kv_comm(P, p, e, b" prev_comm=", b" prev_pid=", rec, OFF[O_SW_PREV_COMM], &q) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" prev_pid=", rec, OFF[O_SW_PREV_PID], True) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" prev_prio=", rec, OFF[O_SW_PREV_PRIO], True) < 0:
            return -1
        q = kv(q, e, b" prev_state=")
        if q == NULL or parse_state(q, e, &st) == NULL:
            set_err(P, E_FIELD, q if q != NULL else p, b"prev_state=")
            return -1
        set_i32(rec, OFF[O_SW_PREV_STATE], st)
        if kv_comm(P, q, e, b" next_comm=", b" next_pid=", rec, OFF[O_SW_NEXT_COMM], &q) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" next_pid=", rec, OFF[O_SW_NEXT_PID], True) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" next_prio=", rec, OFF[O_SW_NEXT_PRIO], True) < 0:
            return -1
        return 0
    # trace-cmd's sched plugin: `prev:pid [prio] S ==> next:pid [prio]`
    arrow = find(p, e, b" ==> ", 5)
    if arrow == NULL:
        set_err(P, E_FIELD, p, b"prev_comm=")
        return -1
    q = comm_pid_prio(p, arrow, &ce, &v, &prio)
    if q == NULL:
        set_err(P, E_FIELD, p, b"prev:pid [prio]")
        return -1
    if not fits_i32(v) or not fits_i32(prio):
        set_err(P, E_RANGE, ce + 1, b"prev pid [prio]")
        return -1
    c = comm_id(P, p, <size_t>(ce - p))
    if c < 0:
        return -1
    set_i32(rec, OFF[O_SW_PREV_COMM], c)
    set_i32(rec, OFF[O_SW_PREV_PID], v)
    set_i32(rec, OFF[O_SW_PREV_PRIO], prio)
    q = skip_ws(q, arrow)
    if parse_state(q, arrow, &st) == NULL:
        set_err(P, E_FIELD, q, b"prev state")
        return -1
    set_i32(rec, OFF[O_SW_PREV_STATE], st)
    p = arrow + 5
    q = comm_pid_prio(p, e, &ce, &v, &prio)
    if q == NULL:
        set_err(P, E_FIELD, p, b"next:pid [prio]")
        return -1
    if not fits_i32(v) or not fits_i32(prio):
        set_err(P, E_RANGE, ce + 1, b"next pid [prio]")
        return -1
    c = comm_id(P, p, <size_t>(ce - p))
    if c < 0:
        return -1
    set_i32(rec, OFF[O_SW_NEXT_COMM], c)
    set_i32(rec, OFF[O_SW_NEXT_PID], v)
    set_i32(rec, OFF[O_SW_NEXT_PRIO], prio)
    return 0

cdef int pl_sched_wake(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef const char *ce
    cdef int64_t v, prio
    cdef int32_t c
    if starts(p, e, b"comm=") != NULL:
        if kv_comm(P, p, e, b" comm=", b" pid=", rec, OFF[O_WK_COMM], &q) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" pid=", rec, OFF[O_WK_PID], True) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" prio=", rec, OFF[O_WK_PRIO], True) < 0:
            return -1
        if kv_set_i8(P, &q, e, b" success=", rec, OFF[O_WK_SUCCESS], False) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" target_cpu=", rec, OFF[O_WK_TARGET], False) < 0:
            return -1
        return 0
    # trace-cmd's sched plugin: `comm:pid [prio] [success=1] CPU:005`
    q = comm_pid_prio(p, e, &ce, &v, &prio)
    if q == NULL:
        set_err(P, E_FIELD, p, b"comm=")
        return -1
    if not fits_i32(v) or not fits_i32(prio):
        set_err(P, E_RANGE, ce + 1, b"pid [prio]")
        return -1
    c = comm_id(P, p, <size_t>(ce - p))
    if c < 0:
        return -1
    set_i32(rec, OFF[O_WK_COMM], c)
    set_i32(rec, OFF[O_WK_PID], v)
    set_i32(rec, OFF[O_WK_PRIO], prio)
    if kv_set_i8(P, &q, e, b" success=", rec, OFF[O_WK_SUCCESS], False) < 0:
        return -1
    ce = find(q, e, b" CPU:", 5)
    if ce != NULL:
        if parse_i64(ce + 5, e, &v) == NULL:
            set_err(P, E_FIELD, ce + 5, b"CPU:")
            return -1
        if not fits_i32(v):
            set_err(P, E_RANGE, ce + 5, b"CPU:")
            return -1
        set_i32(rec, OFF[O_WK_TARGET], v)
    return 0

cdef int pl_task_pid(PState *P, char *rec, const char *p, const char *e, int32_t o_comm,
                     int32_t o_pid, const char **after) noexcept nogil:
    """The `comm=X pid=N` that starts most sched payloads."""
    if kv_comm(P, p, e, b" comm=", b" pid=", rec, o_comm, after) < 0:
        return -1
    if kv_set_i32(P, after, e, b" pid=", rec, o_pid, True) < 0:
        return -1
    return 0

cdef int pl_migrate(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    if pl_task_pid(P, rec, p, e, OFF[O_MG_COMM], OFF[O_MG_PID], &q) < 0:
        return -1
    if kv_set_i32(P, &q, e, b" prio=", rec, OFF[O_MG_PRIO], False) < 0:
        return -1
    if kv_set_i32(P, &q, e, b" orig_cpu=", rec, OFF[O_MG_ORIG], True) < 0:
        return -1
    if kv_set_i32(P, &q, e, b" dest_cpu=", rec, OFF[O_MG_DEST], True) < 0:
        return -1
    return 0

cdef int pl_fork(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    if starts(p, e, b"parent_comm=") != NULL:
        # `trace-cmd report -R` prints the fields by their format names
        if kv_comm(P, p, e, b" parent_comm=", b" parent_pid=", rec, OFF[O_FK_COMM], &q) < 0:
            return -1
        if kv_set_i32(P, &q, e, b" parent_pid=", rec, OFF[O_FK_PID], True) < 0:
            return -1
    elif pl_task_pid(P, rec, p, e, OFF[O_FK_COMM], OFF[O_FK_PID], &q) < 0:
        return -1
    if kv_comm(P, q, e, b" child_comm=", b" child_pid=", rec, OFF[O_FK_CCOMM], &q) < 0:
        return -1
    if kv_set_i32(P, &q, e, b" child_pid=", rec, OFF[O_FK_CPID], True) < 0:
        return -1
    return 0

cdef int pl_proc_task(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    if pl_task_pid(P, rec, p, e, OFF[O_PT_COMM], OFF[O_PT_PID], &q) < 0:
        return -1
    if kv_set_i32(P, &q, e, b" prio=", rec, OFF[O_PT_PRIO], False) < 0:
        return -1
    return 0

cdef int pl_exec(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *v = kv(p, e, b" filename=")
    cdef const char *k
    cdef int32_t s
    if v == NULL:
        set_err(P, E_FIELD, p, b"filename=")
        return -1
    k = find(v, e, b" pid=", 5)
    if k == NULL:
        set_err(P, E_FIELD, v, b"pid=")
        return -1
    s = sym_id(P, v, <size_t>(k - v))
    if s < 0:
        return -1
    set_i32(rec, OFF[O_EX_FILE], s)
    if kv_set_i32(P, &k, e, b" pid=", rec, OFF[O_EX_PID], True) < 0:
        return -1
    if kv_set_i32(P, &k, e, b" old_pid=", rec, OFF[O_EX_OLDPID], False) < 0:
        return -1
    return 0

cdef int pl_stat_runtime(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    if pl_task_pid(P, rec, p, e, OFF[O_SR_COMM], OFF[O_SR_PID], &q) < 0:
        return -1
    if kv_set_i64(P, &q, e, b" runtime=", rec, OFF[O_SR_RUNTIME], True) < 0:
        return -1
    if kv_set_i64(P, &q, e, b" vruntime=", rec, OFF[O_SR_VRUNTIME], False) < 0:
        return -1
    return 0

cdef int pl_stat_delay(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    if pl_task_pid(P, rec, p, e, OFF[O_SD_COMM], OFF[O_SD_PID], &q) < 0:
        return -1
    if kv_set_i64(P, &q, e, b" delay=", rec, OFF[O_SD_DELAY], True) < 0:
        return -1
    return 0

cdef inline const char *word_value(const char *w, const char *we, const char *e,
                                   const char **ve) noexcept nogil:
    """For kvm's `key value` and `key=value` words: the value after word [w, we)."""
    cdef const char *v
    v = <const char*>memchr(w, c'=', <size_t>(we - w))
    if v != NULL:
        ve[0] = we
        return v + 1
    v = skip_ws(we, e)
    ve[0] = tok_end(v, e)
    return v

cdef inline bint word_is(const char *w, const char *we, const char *s) noexcept nogil:
    """Word [w, we) (up to an '=' if any) equals s."""
    cdef const char *eq = <const char*>memchr(w, c'=', <size_t>(we - w))
    cdef size_t n = strlen(s)
    if eq != NULL:
        we = eq
    return <size_t>(we - w) == n and memcmp(w, s, n) == 0

cdef int pl_kvm(PState *P, char *rec, const char *p, const char *e, int layout) noexcept nogil:
    """kvm_entry / kvm_exit in the kernel's words (`vcpu 0 reason HLT rip 0x.. info1 0x..`),
    trace-cmd's kvm plugin (`reason HLT rip 0x.. [sym+off] info 0 0`) and raw key=value."""
    cdef const char *w = p
    cdef const char *we
    cdef const char *v
    cdef const char *ve
    cdef uint64_t u
    cdef int64_t i
    cdef bint has_reason = False
    cdef int32_t s
    while True:
        w = skip_ws(w, e)
        if w >= e:
            break
        we = tok_end(w, e)
        if we[-1] == c',':
            we -= 1
        if word_is(w, we, b"vcpu") or word_is(w, we, b"vcpu_id"):
            v = word_value(w, we, e, &ve)
            if parse_i64(v, ve, &i) == NULL:
                set_err(P, E_FIELD, v, b"vcpu")
                return -1
            if not fits_i32(i):
                set_err(P, E_RANGE, v, b"vcpu")
                return -1
            set_i32(rec, OFF[O_KE_VCPU] if layout == L_KVM_ENTRY else OFF[O_KX_VCPU], i)
        elif word_is(w, we, b"rip") or word_is(w, we, b"guest_rip"):
            v = word_value(w, we, e, &ve)
            if ve > v and ve[-1] == c',':
                ve -= 1
            if parse_hex(v, ve, &u) == NULL:
                set_err(P, E_FIELD, v, b"rip")
                return -1
            set_u64(rec, OFF[O_KE_RIP] if layout == L_KVM_ENTRY else OFF[O_KX_RIP], u)
        elif layout == L_KVM_EXIT and (word_is(w, we, b"reason") or word_is(w, we, b"exit_reason")):
            v = word_value(w, we, e, &ve)
            if ve > v and ve[-1] == c',':
                ve -= 1
            if ve == v:
                set_err(P, E_FIELD, v, b"reason")
                return -1
            s = sym_id(P, v, <size_t>(ve - v))
            if s < 0:
                return -1
            set_i32(rec, OFF[O_KX_REASON], s)
            has_reason = True
        elif layout == L_KVM_EXIT and word_is(w, we, b"info"):
            # trace-cmd's plugin and older kernels: `info A B`, bare hex
            v = skip_ws(we, e)
            ve = tok_end(v, e)
            if parse_hex(v, ve, &u) == NULL:
                set_err(P, E_FIELD, v, b"info")
                return -1
            set_u64(rec, OFF[O_KX_INFO1], u)
            v = skip_ws(ve, e)
            ve = tok_end(v, e)
            if parse_hex(v, ve, &u) == NULL:
                set_err(P, E_FIELD, v, b"info")
                return -1
            set_u64(rec, OFF[O_KX_INFO2], u)
        elif layout == L_KVM_EXIT and (word_is(w, we, b"info1") or word_is(w, we, b"info2")):
            v = word_value(w, we, e, &ve)
            if parse_hex(v, ve, &u) == NULL:
                set_err(P, E_FIELD, v, b"info1")
                return -1
            set_u64(rec, OFF[O_KX_INFO1] if w[4] == c'1' else OFF[O_KX_INFO2], u)
        elif layout == L_KVM_EXIT and (word_is(w, we, b"intr_info") or word_is(w, we, b"error_code")):
            v = word_value(w, we, e, &ve)
            if parse_hex(v, ve, &u) == NULL:
                set_err(P, E_FIELD, v, b"intr_info")
                return -1
            set_i64(rec, OFF[O_KX_INTR] if w[1] == c'n' else OFF[O_KX_ERR], <int64_t>u)
        else:
            # unknown word (isa=1, a resolved guest symbol, ...): skip it alone
            ve = tok_end(w, e)
        w = ve
    if layout == L_KVM_EXIT and not has_reason:
        set_err(P, E_FIELD, p, b"reason")
        return -1
    return 0

cdef int pl_kvm_wakeup(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    # kernel: `wait time 3279293 ns, polling valid` (or `poll time ...`; older: no polling)
    q = starts(p, e, b"wait time ")
    if q != NULL:
        set_i8(rec, OFF[O_KW_WAITED], 1)
    else:
        q = starts(p, e, b"poll time ")
        if q != NULL:
            set_i8(rec, OFF[O_KW_WAITED], 0)
    if q != NULL:
        q = parse_i64(q, e, &v)
        if q == NULL:
            set_err(P, E_FIELD, p, b"time N ns")
            return -1
        set_i64(rec, OFF[O_KW_NS], v)
        if find(q, e, b"polling valid", 13) != NULL:
            set_i8(rec, OFF[O_KW_VALID], 1)
        elif find(q, e, b"polling invalid", 15) != NULL:
            set_i8(rec, OFF[O_KW_VALID], 0)
        return 0
    # raw: ns=N waited=1 valid=1
    if kv_set_i64(P, &p, e, b" ns=", rec, OFF[O_KW_NS], True) < 0:
        return -1
    if kv_set_i8(P, &p, e, b" waited=", rec, OFF[O_KW_WAITED], False) < 0:
        return -1
    if kv_set_i8(P, &p, e, b" valid=", rec, OFF[O_KW_VALID], False) < 0:
        return -1
    return 0

cdef int pl_irq(PState *P, char *rec, const char *p, const char *e, int layout) noexcept nogil:
    cdef const char *v
    cdef int64_t i
    cdef int32_t s
    if kv_i32(P, &p, e, b" irq=", &i, True) < 0:
        return -1
    if layout == L_IRQ_ENTRY:
        set_i32(rec, OFF[O_IE_IRQ], i)
        v = kv(p, e, b" name=")
        if v != NULL:
            s = sym_id(P, v, <size_t>(e - v))
            if s < 0:
                return -1
            set_i32(rec, OFF[O_IE_NAME], s)
        return 0
    set_i32(rec, OFF[O_IX_IRQ], i)
    v = kv(p, e, b" ret=")
    if v != NULL:
        if starts(v, e, b"handled") != NULL:
            set_i32(rec, OFF[O_IX_RET], 1)
        elif starts(v, e, b"unhandled") != NULL:
            set_i32(rec, OFF[O_IX_RET], 0)
        elif parse_i64(v, e, &i) != NULL:
            if not fits_i32(i):
                set_err(P, E_RANGE, v, b"ret=")
                return -1
            set_i32(rec, OFF[O_IX_RET], i)
        else:
            set_err(P, E_FIELD, v, b"ret=")
            return -1
    return 0

cdef int pl_softirq(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *v
    cdef const char *ve
    cdef int32_t s
    if kv_set_i32(P, &p, e, b" vec=", rec, OFF[O_SI_VEC], True) < 0:
        return -1
    v = find(p, e, b"[action=", 8)
    if v != NULL:
        v += 8
        ve = <const char*>memchr(v, c']', <size_t>(e - v))
        if ve == NULL:
            ve = e
        s = sym_id(P, v, <size_t>(ve - v))
        if s < 0:
            return -1
        set_i32(rec, OFF[O_SI_ACTION], s)
    return 0

cdef int pl_block(PState *P, char *rec, const char *p, const char *e, int32_t et) noexcept nogil:
    """block_rq_issue/insert `M,m RWBS BYTES (CMD) SECTOR + NR [IOPRIO] [COMM]`, complete
    `M,m RWBS (CMD) SECTOR + NR [IOPRIO] [ERROR]`; raw (-R) key=value is accepted too."""
    cdef const char *q
    cdef const char *te
    cdef const char *lb
    cdef const char *vs
    cdef int64_t v
    cdef int32_t s
    cdef uint64_t dev
    if kv(p, e, b" dev=") != NULL and kv(p, e, b" sector=") != NULL:
        vs = kv(p, e, b" dev=")
        if kv_int(P, &p, e, b" dev=", <int64_t*>&dev, True) < 0:
            return -1
        if (dev >> 20) > <uint64_t>I32_MAX:
            set_err(P, E_RANGE, vs, b"dev=")
            return -1
        set_i32(rec, OFF[O_BK_MAJOR], <int64_t>(dev >> 20))
        set_i32(rec, OFF[O_BK_MINOR], <int64_t>(dev & 0xfffff))
        if kv_set_i64(P, &p, e, b" sector=", rec, OFF[O_BK_SECTOR], True) < 0:
            return -1
        # a bad value of these optional keys is ignored; one out of range is not
        if kv_set_i32(P, &p, e, b" nr_sector=", rec, OFF[O_BK_NR], False) < 0 and P.err_code == E_RANGE:
            return -1
        kv_set_i64(P, &p, e, b" bytes=", rec, OFF[O_BK_BYTES], False)
        if kv_set_i32(P, &p, e, b" error=", rec, OFF[O_BK_ERROR], False) < 0 and P.err_code == E_RANGE:
            return -1
        q = kv(p, e, b" rwbs=")
        if q != NULL:
            te = tok_end(q, e)
            s = sym_id(P, q, <size_t>(te - q))
            if s < 0:
                return -1
            set_i32(rec, OFF[O_BK_RWBS], s)
        q = kv(p, e, b" comm=")
        if q != NULL:
            te = find(q, e, b" cmd=", 5)
            s = comm_id(P, q, <size_t>((te if te != NULL else e) - q))
            if s < 0:
                return -1
            set_i32(rec, OFF[O_BK_COMM], s)
        return 0
    q = parse_i64(p, e, &v)
    if q == NULL or q >= e or q[0] != c',':
        set_err(P, E_FIELD, p, b"major,minor")
        return -1
    if not fits_i32(v):
        set_err(P, E_RANGE, p, b"major")
        return -1
    set_i32(rec, OFF[O_BK_MAJOR], v)
    vs = q + 1
    q = parse_i64(vs, e, &v)
    if q == NULL:
        set_err(P, E_FIELD, p, b"major,minor")
        return -1
    if not fits_i32(v):
        set_err(P, E_RANGE, vs, b"minor")
        return -1
    set_i32(rec, OFF[O_BK_MINOR], v)
    q = skip_ws(q, e)
    te = tok_end(q, e)
    s = sym_id(P, q, <size_t>(te - q))
    if s < 0:
        return -1
    set_i32(rec, OFF[O_BK_RWBS], s)
    q = skip_ws(te, e)
    if q < e and is_digit(q[0]):
        q = parse_i64(q, e, &v)
        if q == NULL:
            set_err(P, E_FIELD, q, b"bytes")
            return -1
        set_i64(rec, OFF[O_BK_BYTES], v)
        q = skip_ws(q, e)
    if q >= e or q[0] != c'(':
        set_err(P, E_FIELD, q, b"(cmd)")
        return -1
    q = <const char*>memchr(q, c')', <size_t>(e - q))
    if q == NULL:
        set_err(P, E_FIELD, p, b"(cmd)")
        return -1
    q = skip_ws(q + 1, e)
    # the kernel prints the sector as unsigned; (u64)-1 (no sector, e.g. a flush) becomes -1
    q = parse_num_auto(q, e, &dev)
    if q == NULL:
        set_err(P, E_FIELD, p, b"sector")
        return -1
    set_i64(rec, OFF[O_BK_SECTOR], <int64_t>dev)
    q = skip_ws(q, e)
    if q < e and q[0] == c'+':
        vs = skip_ws(q + 1, e)
        q = parse_i64(vs, e, &v)
        if q == NULL:
            set_err(P, E_FIELD, p, b"nr_sector")
            return -1
        if not fits_i32(v):
            set_err(P, E_RANGE, vs, b"nr_sector")
            return -1
        set_i32(rec, OFF[O_BK_NR], v)
    # the last [..] is the comm (issue/insert) or the error (complete)
    lb = NULL
    te = q
    while True:
        te = <const char*>memchr(te, c'[', <size_t>(e - te)) if te < e else NULL
        if te == NULL:
            break
        lb = te
        te += 1
    if lb != NULL and e[-1] == c']':
        if et == P.et_block_complete and parse_i64(lb + 1, e - 1, &v) == e - 1:
            if not fits_i32(v):
                set_err(P, E_RANGE, lb + 1, b"error")
                return -1
            set_i32(rec, OFF[O_BK_ERROR], v)
        else:
            s = comm_id(P, lb + 1, <size_t>(e - 1 - (lb + 1)))
            if s < 0:
                return -1
            set_i32(rec, OFF[O_BK_COMM], s)
    return 0
