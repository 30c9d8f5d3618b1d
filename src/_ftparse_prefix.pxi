# The line prefix: included by _ftparse.pyx (one compilation unit).
# `comm-pid [(tgid)] [cpu] [flags] ts:` anchored on structure, see the example in _ftparse.pyx.

cdef uint64_t FRAC_SCALE[10]

def _init_frac_scale():
    cdef int i
    FRAC_SCALE[9] = 1
    for i in range(8, -1, -1):
        FRAC_SCALE[i] = FRAC_SCALE[i + 1] * 10

_init_frac_scale()

cdef inline const char *parse_secs(const char *p, const char *e, int64_t *ts, int *err,
                                   const char **what) noexcept nogil:
    """`SSS.FFFFFF` (1 to 9 decimals) into ns, exactly.  NULL if it is not one: err 0 when
    [p, e) holds no `digits.` (the caller may try another clock), else E_TIMESTAMP or
    E_TS_RANGE with what names the item."""
    cdef uint64_t sec = 0, frac = 0
    cdef int nd
    cdef const char *s = p
    err[0] = 0
    nd = digits8(p, e, &sec)
    p += nd
    if nd == 8:
        while p < e and is_digit(p[0]):
            if sec > 1844674407370955160ULL:
                err[0] = E_TS_RANGE
                what[0] = b"timestamp"
                return NULL
            sec = sec * 10 + <uint64_t>(p[0] - c'0')
            p += 1
    if p == s or p >= e or p[0] != c'.':
        return NULL
    p += 1
    nd = digits8(p, e, &frac)
    p += nd
    if nd == 8 and p < e and is_digit(p[0]):
        frac = frac * 10 + <uint64_t>(p[0] - c'0')
        nd = 9
        p += 1
        if p < e and is_digit(p[0]):
            err[0] = E_TIMESTAMP
            what[0] = b"at most 9 decimals"
            return NULL
    if nd == 0:
        err[0] = E_TIMESTAMP
        what[0] = b"timestamp"
        return NULL
    if sec > 9223372035ULL:
        err[0] = E_TS_RANGE
        what[0] = b"timestamp"
        return NULL
    ts[0] = <int64_t>(sec * 1000000000ULL + frac * FRAC_SCALE[nd])
    return p

cdef inline const char *parse_ts(PState *P, const char *p, const char *e, int64_t *ts,
                                 int *kind) noexcept nogil:
    """`SSS.FFFFFF` (parse_secs), an integer clock `NNNN`, or the latency format's `NNNus`
    (with its optional delay mark), then optional blanks and ':'.  Returns the byte after ':'
    or NULL (with P.err_code set)."""
    cdef uint64_t sec = 0
    cdef const char *s = p
    cdef const char *what
    cdef int err
    p = parse_secs(s, e, ts, &err, &what)
    if p != NULL:
        kind[0] = TS_DECIMAL
    elif err:
        set_err(P, err, s, what)
        return NULL
    else:
        # not decimal: the digits (parse_secs found them within uint64) and what follows
        p = s
        while p < e and is_digit(p[0]):
            sec = sec * 10 + <uint64_t>(p[0] - c'0')
            p += 1
        if p == s:
            set_err(P, E_TIMESTAMP, s, b"timestamp")
            return NULL
        if e - p >= 2 and p[0] == c'u' and p[1] == c's':
            p += 2
            if p < e and is_delay_mark(p[0]):
                p += 1
            if sec > 9223372036854775ULL:
                set_err(P, E_TS_RANGE, s, b"timestamp")
                return NULL
            ts[0] = <int64_t>(sec * 1000)
            kind[0] = TS_US
        else:
            if sec > 9223372036854775807ULL:
                set_err(P, E_TS_RANGE, s, b"timestamp")
                return NULL
            ts[0] = <int64_t>sec
            kind[0] = TS_INTEGER
    p = skip_ws(p, e)
    if p >= e or p[0] != c':':
        set_err(P, E_TIMESTAMP, p, b"':' after the timestamp")
        return NULL
    return p + 1

cdef inline bint all_digits(const char *p, const char *e) noexcept nogil:
    if p >= e:
        return False
    while p < e:
        if not is_digit(p[0]):
            return False
        p += 1
    return True

cdef inline bint is_flag_char(char c) noexcept nogil:
    return (c'a' <= c <= c'z') or (c'A' <= c <= c'Z') or (c'0' <= c <= c'9') or c == c'.'

cdef inline const char *kernel_time(const char *t, const char *e, Prefix *x) noexcept nogil:
    """The kernel's time stamp `%5lu.%06lu:` at t (after its padding blanks): the byte after
    the ':', with ts and its kind; NULL for any other form, which parse_ts reads (the same
    value where both apply: up to 8 digits of seconds and exactly 6 decimals here)."""
    cdef uint64_t w, sec, frac
    cdef int n
    cdef const char *q
    w = load64(t) ^ 0x2020202020202020ULL
    if w == 0:
        return NULL
    q = t + (ctz64(w) >> 3)
    n = digits8(q, e, &sec)
    if n == 0 or e - q < n + 8:
        return NULL
    q += n
    # `.dddddd:`: the dot, 6 digits and the colon at fixed places
    w = load64(q)
    if (w & 0xFF000000000000FFULL) != 0x3A0000000000002EULL:
        return NULL
    frac = ((w >> 8) & 0xFFFFFFFFFFFFULL) ^ 0x303030303030ULL
    if ((frac + 0x767676767676ULL) | frac) & 0x808080808080ULL:
        return NULL
    # exactly 6 digits: digits8's sum with the shift fixed (digits8 here cost 2-3% a line)
    frac <<= 16
    frac = (frac * 10 + (frac >> 8)) & 0x00FF00FF00FF00FFULL
    frac = (frac * 100 + (frac >> 16)) & 0x0000FFFF0000FFFFULL
    frac = (frac * 10000 + (frac >> 32)) & 0xFFFFFFFFULL
    x.ts = <int64_t>(sec * 1000000000ULL + frac * 1000ULL)
    x.ts_kind = TS_DECIMAL
    return q + 8

cdef inline bint kernel_columns(const char *d, const char *e, Prefix *x) noexcept nogil:
    """The columns after the comm's dash d in the fixed layout of the kernel and of trace-cmd
    report, `-%-Nd [%03d] [flags] %5lu.%06lu:` (the pid padded with blanks, a 3-digit CPU,
    flags of 1 to 7 characters or none), read at the places the padding gives: a few loads
    that do not wait on one another, where the general search steps from token to token.
    True with pid, cpu, flags, time stamp and rest set; False for any other layout, which
    the general search then reads (the same fields wherever both apply)."""
    cdef uint64_t v, w, cpu, m
    cdef const char *b
    cdef const char *t
    cdef const char *flags = NULL
    cdef int n, nf = 0
    if e - d < 16:
        return False
    n = digits8(d + 1, e, &v)
    if n == 0 or n > 7:
        return False
    # the pid's padding, then `[ddd] `: at d + 9 in the kernel's layout (padded to 7), which
    # needs no search for the bracket
    if d[9] == c'[' and not (load64(d + 1) ^ 0x2020202020202020ULL) >> (8 * n):
        b = d + 9
    else:
        if d[1 + n] != c' ':
            return False
        w = load64(d + 1 + n) ^ 0x2020202020202020ULL
        if w == 0:
            return False
        b = d + 1 + n + (ctz64(w) >> 3)
        if e - b < 8:
            return False
    if b[0] != c'[' or b[4] != c']' or b[5] != c' ' or digits8(b + 1, e, &cpu) != 3:
        return False
    t = b + 6
    if not is_digit(t[0]):
        # the flags up to the first blank (none when the time's padding starts at once)
        w = load64(t)
        m = zbytes(w ^ 0x2020202020202020ULL) | zbytes(w ^ 0x0909090909090909ULL)
        if (m & 0xFFFFFFFFFFFFULL) == 0x800000000000ULL and t[5] == c' ':
            nf = 5      # the kernel's: the time's place known before the search
        elif m == 0:
            return False
        else:
            nf = ctz64(m) >> 3
        if t + nf >= e:
            return False
        flags = t if nf else NULL
        t += nf + 1
    t = kernel_time(t, e, x)
    if t == NULL:
        return False
    x.rest = t
    x.pid = <int64_t>v
    x.tgid = -1             # an earlier dash may have read a tgid column before it failed
    x.has_tgid = False
    x.cpu = <int64_t>cpu
    x.flags = flags
    x.flags_len = <size_t>nf
    x.flagw = load64(flags) & word_mask(<Py_ssize_t>nf) if nf else 0
    x.latency = False
    return True

cdef int parse_prefix(PState *P, const char *p, const char *e, Prefix *x) noexcept nogil:
    """`comm-pid [(tgid)] [cpu] [flags] ts:` or the latency format `comm-pid cpuFLAGS ts:`."""
    cdef const char *q = p
    cdef const char *d
    cdef const char *y
    cdef const char *z
    cdef const char *t
    cdef const char *te
    cdef int64_t pid, v
    cdef bint latency
    x.tgid = -1
    x.has_tgid = False
    x.flags = NULL
    x.flags_len = 0
    while True:
        d = find_byte(q, e, c'-')
        if d == NULL or d == p:
            if d == p and d != NULL:
                q = d + 1
                continue
            set_err(P, E_PREFIX, p, b"'comm-pid [cpu]'")
            return -1
        # the first dash that anchors: in the common layouts its columns are read at once
        if kernel_columns(d, e, x):
            x.comm = p
            x.comm_len = <size_t>(d - p)
            return 0
        y = parse_i64(d + 1, e, &pid)
        q = d + 1
        # a pid past int32 is no anchor (the pid column is int32): the dash is the comm's
        if y == NULL or not is_digit(d[1]) or y >= e or not is_ws(y[0]) or pid > I32_MAX:
            continue
        z = skip_ws(y, e)
        if z >= e:
            continue
        x.tgid = -1
        x.has_tgid = False
        if z[0] == c'(':
            # record-tgid column: `(  1234)` or `(-----)`
            t = skip_ws(z + 1, e)
            if t < e and t[0] == c'-':
                while t < e and t[0] == c'-':
                    t += 1
                v = -1
            else:
                t = parse_i64(t, e, &v)
                if t == NULL or not (0 <= v <= I32_MAX):
                    continue
            t = skip_ws(t, e)
            if t >= e or t[0] != c')':
                continue
            z = skip_ws(t + 1, e)
            if z >= e or z[0] != c'[':
                continue
            x.tgid = v
            x.has_tgid = True
        if z[0] == c'[':
            t = parse_i64(z + 1, e, &v)
            # CPUs 0..MAX_CPU, as in LOST markers and function_graph lines
            if t == NULL or not is_digit(z[1]) or t >= e or t[0] != c']' or v > MAX_CPU:
                continue
            x.cpu = v
            t += 1
            latency = False
            break
        if is_digit(z[0]):
            # latency format: CPU number glued to the flags (`5d..2.`)
            t = z
            v = 0
            while t < e and is_digit(t[0]):
                v = v * 10 + (t[0] - c'0')
                t += 1
                if v > MAX_CPU:
                    break
            if v > MAX_CPU:
                continue
            te = t
            while te < e and is_flag_char(te[0]):
                te += 1
            if t == te or (te < e and not is_ws(te[0]) and te[0] != c':'):
                continue
            if te < e and te[0] == c':':
                # the timestamp runs straight into the flags (raw TSC in `trace-cmd report -l`):
                # the flags are 5 characters wide there
                if te - t < 6:
                    continue
                te = t + 5
            elif te - t > 8:
                continue
            x.cpu = v
            x.flags = t
            x.flags_len = <size_t>(te - t)
            t = te
            latency = True
            break
        # not a prefix anchor: the dash belongs to the comm
    x.comm = p
    x.comm_len = <size_t>(d - p)
    x.pid = pid
    t = skip_ws(t, e)
    if not latency and t < e and not is_digit(t[0]):
        # the irq-info flags column
        te = tok_end(t, e)
        if te - t > 8 and te[-1] == c':' and all_digits(t + 5, te - 1):
            # trace-cmd >= 3.2 prints the flags and then a raw TSC time stamp `%12d:` that
            # overflows into them (`d..1.303280081944169:`): the flags are 5 characters there
            te = t + 5
            x.flags = t
            x.flags_len = 5
            t = te
        else:
            if te - t > 8:
                set_err(P, E_FLAGS, t, b"irq-info flags (at most 8 characters)")
                return -1
            x.flags = t
            x.flags_len = <size_t>(te - t)
            t = skip_ws(te, e)
    elif not latency and t < e:
        # a token of flag characters that starts with a digit is not a timestamp
        te = t
        while te < e and (is_digit(te[0]) or te[0] == c'.'):
            te += 1
        if te < e and not is_ws(te[0]) and te[0] != c':' and te[0] != c'u':
            te = tok_end(t, e)
            if te - t > 8:
                set_err(P, E_FLAGS, t, b"irq-info flags (at most 8 characters)")
                return -1
            x.flags = t
            x.flags_len = <size_t>(te - t)
            t = skip_ws(te, e)
    x.rest = parse_ts(P, t, e, &x.ts, &x.ts_kind)
    if x.rest == NULL:
        return -1
    x.latency = latency
    # the line buffer has PAD readable bytes past every line (see Parser.feed)
    x.flagw = load64(x.flags) & word_mask(<Py_ssize_t>x.flags_len) if x.flags_len else 0
    return 0
