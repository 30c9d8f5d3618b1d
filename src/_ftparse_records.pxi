# Parser state: included by _ftparse.pyx (one compilation unit).
# Error records, interned ids and the growth of per-event record arrays.

cdef inline void set_err(PState *P, int code, const char *pos, const char *what) noexcept nogil:
    P.err_code = code
    P.err_pos = pos
    P.err_what = what

cdef void record_error(PState *P, const char *s, const char *e) noexcept nogil:
    cdef ErrRec *r
    cdef size_t n
    cdef int code = P.err_code
    cdef int cause = 0
    if P.final_piece:
        # an unterminated last line that does not parse was most likely cut short; the error
        # it had is kept as the cause, for the message
        P.truncated_last = 1
        if code != E_TRUNCATED:
            cause = code
            code = E_TRUNCATED
    P.malformed += 1
    P.err_count[code] += 1
    if P.strict:
        P.stop = 1
    if P.errs.size // sizeof(ErrRec) >= MAX_ERRORS:
        return
    if g_reserve(&P.errs, sizeof(ErrRec)) < 0:
        P.oom = 1
        return
    r = <ErrRec*>(P.errs.data + P.errs.size)
    P.errs.size += sizeof(ErrRec)
    r.line = P.lines
    r.offset = P.offset
    r.code = code
    r.cause = cause
    r.nbytes = <int64_t>(e - s) if P.long_nbytes < 0 else P.long_nbytes
    r.col = <int32_t>(P.err_pos - s) if (P.err_pos != NULL and s <= P.err_pos <= e) else -1
    r.what = P.err_what
    r.event = P.err_event
    n = <size_t>(e - s)
    if n > sizeof(r.excerpt):
        n = sizeof(r.excerpt)
    memcpy(r.excerpt, s, n)
    r.excerpt_len = <int32_t>n

cdef int32_t comm_id(PState *P, const char *p, size_t n) noexcept nogil:
    cdef bint is_new
    cdef int32_t id_ = intern_fast(&P.comms, p, n, &is_new)
    if id_ < 0:
        P.oom = 1
        return -1
    if is_new and P.has_comm_filter:
        if g_reserve(&P.comm_ok, 1) < 0:
            P.oom = 1
            return -1
        P.comm_ok.data[P.comm_ok.size] = comm_verdict(P.owner, id_)
        P.comm_ok.size += 1
    return id_

cdef uint8_t comm_verdict(void *owner, int32_t id_) noexcept nogil:
    with gil:
        return (<Parser>owner)._comm_matches(id_)

cdef inline int32_t sym_id(PState *P, const char *p, size_t n) noexcept nogil:
    cdef bint is_new
    cdef int32_t id_ = intern_fast(&P.syms, p, n, &is_new)
    if id_ < 0:
        P.oom = 1
    return id_

cdef int32_t event_type(PState *P, const char *p, size_t n) noexcept nogil:
    """Id of an event name, registering an unknown name with the generic layout."""
    cdef bint is_new
    cdef int32_t id_ = intern_fast(&P.names, p, n, &is_new)
    cdef EvType *nt
    cdef int32_t ncap
    if id_ < 0:
        P.oom = 1
        return -1
    if id_ >= P.ntypes:
        if P.ntypes == P.types_cap:
            ncap = P.types_cap * 2 if P.types_cap else 64
            nt = <EvType*>realloc(P.types, ncap * sizeof(EvType))
            if nt == NULL:
                P.oom = 1
                return -1
            P.types = nt
            P.types_cap = ncap
        memset(&P.types[id_], 0, sizeof(EvType))
        P.types[id_].layout = L_GENERIC
        P.types[id_].rec_size = P.rec_size[L_GENERIC]
        P.types[id_].wanted = P.all_events
        P.ntypes = id_ + 1
    return id_

cdef inline char *new_record(PState *P, int32_t et) noexcept nogil:
    cdef EvType *t = &P.types[et]
    cdef char *rec
    if P.no_records:
        t.recs.size = 0
        P.text.size = 0
    if g_reserve(&t.recs, <size_t>t.rec_size) < 0:
        P.oom = 1
        return NULL
    rec = t.recs.data + t.recs.size
    copy_words(rec, P.tmpl[t.layout], <size_t>t.rec_size)
    t.recs.size += <size_t>t.rec_size
    return rec

cdef inline void drop_record(PState *P, int32_t et) noexcept nogil:
    P.types[et].recs.size -= <size_t>P.types[et].rec_size

cdef inline void commit_record(PState *P, int32_t et) noexcept nogil:
    cdef EvType *t = &P.types[et]
    cdef const char *rec = t.recs.data + t.recs.size - <size_t>t.rec_size
    cdef int64_t ts = (<int64_t*>(rec + C_TS))[0]
    cdef int32_t cpu = (<int32_t*>(rec + C_CPU))[0]
    t.count += 1
    P.events += 1
    if ts >= 0:
        if ts < P.rec_ts_lo:
            P.rec_ts_lo = ts
        if ts > P.rec_ts_hi:
            P.rec_ts_hi = ts
    if cpu >= 0:
        if cpu < SPAN_CPUS:
            P.cpu_bits[cpu >> 6] |= (<uint64_t>1) << (cpu & 63)
        else:
            P.cpu_wide = 1

cdef inline int put_text(PState *P, char *rec, int32_t off_o, int32_t len_o,
                         const char *p, const char *e) noexcept nogil:
    cdef size_t n = <size_t>(e - p)
    if g_reserve(&P.text, n) < 0:
        P.oom = 1
        return -1
    if n:
        memcpy(P.text.data + P.text.size, p, n)
    (<int64_t*>(rec + off_o))[0] = <int64_t>P.text.size
    (<int32_t*>(rec + len_o))[0] = <int32_t>n
    P.text.size += n
    return 0

cdef inline void set_i32(char *rec, int32_t o, int64_t v) noexcept nogil:
    (<int32_t*>(rec + o))[0] = <int32_t>v

cdef inline void set_i64(char *rec, int32_t o, int64_t v) noexcept nogil:
    (<int64_t*>(rec + o))[0] = v

cdef inline void set_u64(char *rec, int32_t o, uint64_t v) noexcept nogil:
    (<uint64_t*>(rec + o))[0] = v

cdef inline void set_i8(char *rec, int32_t o, int64_t v) noexcept nogil:
    (<int8_t*>(rec + o))[0] = <int8_t>v

cdef inline bint pid_wanted(PState *P, int64_t pid) noexcept nogil:
    return 0 <= pid < P.npid_ok and P.pid_ok[pid] != 0

cdef inline bint comm_wanted(PState *P, int32_t c) noexcept nogil:
    return 0 <= c and <size_t>c < P.comm_ok.size and P.comm_ok.data[c] != 0
