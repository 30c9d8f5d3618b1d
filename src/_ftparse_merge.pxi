# The merge of parts: included by _ftparse.pyx (one compilation unit).
# Parser.absorb(): a later part parsed on its own is appended as if read in sequence.

cdef int intern_lut(Intern *dst, Intern *src, int32_t *lut, Grow *verdicts,
                    Grow *src_verdicts) noexcept nogil:
    """lut[id in src] = id in dst, adding src's strings dst lacks in src's order (the order
    a sequential parse would have met them in); their comm-filter verdicts go along."""
    cdef int32_t i
    cdef bint is_new
    cdef int64_t *offs = <int64_t*>src.offs.data
    cdef int32_t *lens = <int32_t*>src.lens.data
    for i in range(src.count):
        lut[i] = intern(dst, src.chars.data + offs[i], <size_t>lens[i], &is_new)
        if lut[i] < 0:
            return -1
        if is_new and verdicts != NULL:
            if g_reserve(verdicts, 1) < 0:
                return -1
            verdicts.data[verdicts.size] = src_verdicts.data[i] if <size_t>i < src_verdicts.size else 0
            verdicts.size += 1
    return 0

#: appends done by map_splice, for the tests (a count per process)
cdef size_t g_merge_spliced = 0

def spliced_merges():
    """How many buffers Parser.absorb() has joined by moving pages rather than copying."""
    return g_merge_spliced

cdef inline void remap_i32(char *rec, int32_t o, int32_t *lut) noexcept nogil:
    cdef int32_t *v = <int32_t*>(rec + o)
    if v[0] >= 0:
        v[0] = lut[v[0]]

cdef int append_grow(Grow *dst, Grow *src) noexcept nogil:
    """dst += src; src is emptied (its buffer taken over when dst is empty, its pages moved in
    behind dst's when both are mappings)."""
    global g_merge_spliced
    if dst.size == 0:
        g_free(dst)
        dst[0] = src[0]
        src.data = NULL
        src.size = 0
        src.cap = 0
        src.mapped = 0
        return 0
    if dst.mapped and src.mapped and src.size:
        if map_splice(&dst.data, &dst.cap, dst.size, &src.data, &src.cap, src.size) == 0:
            dst.size += src.size
            src.data = NULL
            src.size = 0
            src.cap = 0
            src.mapped = 0
            g_merge_spliced += 1
            return 0
    if src.size:
        if g_reserve(dst, src.size) < 0:
            return -1
        memcpy(dst.data + dst.size, src.data, src.size)
        dst.size += src.size
    g_free(src)
    return 0

cdef int absorb_records(PState *P, PState *Q, int32_t *lut_type, int32_t *lut_comm,
                        int32_t *lut_sym) noexcept nogil:
    """Q's records appended to P's, with line numbers, ids and text offsets rebased."""
    cdef int32_t j, k, layout
    cdef size_t base, rs, r
    cdef EvType *t
    cdef char *rec
    for j in range(Q.ntypes):
        if Q.types[j].count == 0:
            continue
        t = &P.types[lut_type[j]]
        if P.no_records:
            t.count += Q.types[j].count
            continue
        layout = t.layout
        rs = <size_t>t.rec_size
        base = t.recs.size
        if append_grow(&t.recs, &Q.types[j].recs) < 0:
            return -1
        t.count += Q.types[j].count
        r = base
        while r < t.recs.size:
            rec = t.recs.data + r
            (<int64_t*>(rec + C_LINE))[0] += P.lines
            for k in range(NFIX_COMM[layout]):
                remap_i32(rec, FIX_COMM[layout][k], lut_comm)
            for k in range(NFIX_SYM[layout]):
                remap_i32(rec, FIX_SYM[layout][k], lut_sym)
            for k in range(NFIX_TEXT[layout]):
                (<int64_t*>(rec + FIX_TEXT[layout][k]))[0] += <int64_t>P.text.size
            r += rs
    return 0

cdef int absorb_tables(PState *P, PState *Q, int32_t *lut_type) noexcept nogil:
    """Q's LOST markers, error records and line kinds after P's, and its counters added."""
    cdef size_t i, nq, room
    cdef LostRec *lr
    cdef ErrRec *er
    cdef int c
    for i in range(Q.lost.size // sizeof(LostRec)):
        (<LostRec*>Q.lost.data)[i].line += P.lines
    if append_grow(&P.lost, &Q.lost) < 0:
        return -1
    # the first MAX_ERRORS records of the whole input, as one parser would have kept
    nq = Q.errs.size // sizeof(ErrRec)
    room = MAX_ERRORS - P.errs.size // sizeof(ErrRec) if P.errs.size // sizeof(ErrRec) < MAX_ERRORS else 0
    if nq > room:
        nq = room
    for i in range(nq):
        er = <ErrRec*>Q.errs.data + i
        er.line += P.lines
        er.offset += P.offset
        if er.event >= 0:
            er.event = lut_type[er.event]
    Q.errs.size = nq * sizeof(ErrRec)
    if append_grow(&P.errs, &Q.errs) < 0:
        return -1
    for c in range(NCODES):
        P.err_count[c] += Q.err_count[c]
    P.truncated_last |= Q.truncated_last
    if append_grow(&P.line_kinds, &Q.line_kinds) < 0:
        return -1
    P.lines += Q.lines
    P.events += Q.events
    P.headers += Q.headers
    P.filtered += Q.filtered
    P.malformed += Q.malformed
    P.offset += Q.offset
    for c in range(4):
        P.n_ts[c] += Q.n_ts[c]
    if Q.max_int_ts > P.max_int_ts:
        P.max_int_ts = Q.max_int_ts
    P.n_tracecmd_hdr += Q.n_tracecmd_hdr
    P.n_latency += Q.n_latency
    P.n_tgid += Q.n_tgid
    P.n_flags += Q.n_flags
    P.n_noflags += Q.n_noflags
    if Q.flags_width_max > P.flags_width_max:
        P.flags_width_max = Q.flags_width_max
    P.n_funcgraph += Q.n_funcgraph
    P.n_dmesg += Q.n_dmesg
    P.n_prefixed += Q.n_prefixed
    if Q.rec_ts_lo < P.rec_ts_lo:
        P.rec_ts_lo = Q.rec_ts_lo
    if Q.rec_ts_hi > P.rec_ts_hi:
        P.rec_ts_hi = Q.rec_ts_hi
    for c in range(SPAN_WORDS):
        P.cpu_bits[c] |= Q.cpu_bits[c]
    P.cpu_wide |= Q.cpu_wide
    P.multifile = Q.multifile
    P.stop = Q.stop
    return 0
