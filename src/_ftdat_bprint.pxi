# trace_printk (bprint) messages: the format string saved in the file's printk section, applied
# to the binary arguments the kernel packed into the record (vbin_printf), as trace-cmd
# report prints them.  Included by _ftdat.pyx.
#
# A format is compiled in Python (tracedat._bprint_program) into rows of 5 int64:
#   (BP_LIT, blob offset, length, 0, 0)               literal text
#   (BP_INT, size, signed, spec offset, stars)        integer read from the args, printed with
#                                                     the C spec in the blob ("%-5lld"); stars
#                                                     0-2 '*' ints before it, 4: a %c (int)
#   (BP_STR, 0, precision or -1, spec offset, 0)      NUL-terminated string in the args
#   (BP_SYM, size, with offset, 0, 0)                 code address -> kallsyms name
#   (BP_STAR, 0, 0, 0, 0)                             a '*' width / precision: an int arg
# An integer argument is aligned to its size, at most 4, from the start of the args
# (libtraceevent reads 8-byte ones 4-byte aligned, and that is what the report prints); a
# string takes its bytes and its NUL.

from libc.stdio cimport snprintf
from libc.string cimport memchr

cdef enum:
    BP_LIT = 0
    BP_INT = 1
    BP_STR = 2
    BP_SYM = 3
    BP_STAR = 4


cdef inline uint64_t bp_read(const uint8_t *p, int n, int big) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    if big:
        for i in range(n):
            v = (v << 8) | p[i]
    else:
        for i in range(n - 1, -1, -1):
            v = (v << 8) | p[i]
    return v


cdef Py_ssize_t bp_symbol(uint64_t addr, const uint64_t *saddr, Py_ssize_t nsym) noexcept nogil:
    """Index of the last symbol at or below addr, -1 when none."""
    cdef Py_ssize_t lo = 0, hi = nsym, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if saddr[mid] <= addr:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def format_bprint(const uint8_t[::1] buf, const int64_t[::1] offs, const int32_t[::1] lens,
                  const int32_t[::1] fmt_of, const int64_t[:, ::1] prog,
                  const int64_t[::1] prog_start, const int64_t[::1] prog_len,
                  const uint8_t[::1] blob, const uint64_t[::1] sym_addr,
                  const int64_t[::1] sym_off, const uint8_t[::1] sym_names,
                  int big, int64_t capacity):
    """Messages of bprint records: record i's args are buf[offs[i] : offs[i] + lens[i]],
    formatted by program fmt_of[i] (-1: no saved format, empty message).  Returns (bytes,
    offsets, lengths); capacity bounds the total output (computed by the caller)."""
    cdef Py_ssize_t n = offs.shape[0], nbuf = buf.shape[0], nsym = sym_addr.shape[0]
    out_a = np.empty(max(capacity, 1), np.uint8)
    o_off = np.zeros(n, np.int64)
    o_len = np.zeros(n, np.int32)
    cdef uint8_t[::1] out = out_a
    cdef int64_t[::1] ooff = o_off
    cdef int32_t[::1] olen = o_len
    cdef Py_ssize_t i, k, pos = 0, room, start, end, a, s, j, slen
    cdef int64_t op, nstar
    cdef int64_t stars[2]
    cdef uint64_t u
    cdef int64_t v
    cdef int size, w
    cdef const char *spec
    cdef char *dst
    cdef const uint8_t *args
    cdef const uint8_t *nul
    with nogil:
        for i in range(n):
            ooff[i] = pos
            if fmt_of[i] < 0:
                continue
            start = offs[i]
            end = start + lens[i]
            if start < 0 or end > nbuf or end < start:
                continue
            args = &buf[0] + start
            a = 0
            nstar = 0
            for k in range(prog_start[fmt_of[i]], prog_start[fmt_of[i]] + prog_len[fmt_of[i]]):
                op = prog[k, 0]
                room = capacity - pos
                if room <= 1:
                    break
                dst = <char*>&out[0] + pos
                if op == BP_LIT:
                    slen = prog[k, 2]
                    if slen > room:
                        slen = room
                    memcpy(dst, &blob[0] + prog[k, 1], slen)
                    pos += slen
                elif op == BP_STAR or op == BP_INT or op == BP_SYM:
                    size = 4 if op == BP_STAR else <int>prog[k, 1]
                    w = size if size < 4 else 4
                    a = (a + w - 1) & ~(<Py_ssize_t>(w - 1))
                    if a + size > end - start:
                        break
                    u = bp_read(args + a, size, big)
                    a += size
                    if op == BP_STAR:
                        if nstar < 2:
                            stars[nstar] = <int32_t>u
                            nstar += 1
                        continue
                    if op == BP_SYM:
                        j = bp_symbol(u, &sym_addr[0], nsym) if nsym else -1
                        if j < 0:
                            w = snprintf(dst, room, "0x%llx", <unsigned long long>u)
                        elif prog[k, 2] and u != sym_addr[j]:
                            w = snprintf(dst, room, "%s+0x%llx", <const char*>&sym_names[0] + sym_off[j],
                                         <unsigned long long>(u - sym_addr[j]))
                        else:
                            w = snprintf(dst, room, "%s", <const char*>&sym_names[0] + sym_off[j])
                    else:
                        spec = <const char*>&blob[0] + prog[k, 3]
                        if prog[k, 2] and size < 8:
                            # sign-extend a signed value narrower than 8 bytes
                            v = <int64_t>(u << (64 - 8 * size)) >> (64 - 8 * size)
                        else:
                            v = <int64_t>u
                        if prog[k, 4] == 4:
                            w = snprintf(dst, room, spec, <int>v)
                        elif prog[k, 4] == 0:
                            w = snprintf(dst, room, spec, v)
                        elif prog[k, 4] == 1:
                            w = snprintf(dst, room, spec, <int>stars[0], v)
                        else:
                            w = snprintf(dst, room, spec, <int>stars[0], <int>stars[1], v)
                        nstar = 0
                    if w > 0:
                        pos += w if w < room else room - 1
                else:  # BP_STR
                    nul = <const uint8_t*>memchr(args + a, 0, (end - start) - a) if a < end - start else NULL
                    slen = (nul - (args + a)) if nul != NULL else max((end - start) - a, 0)
                    if prog[k, 2] >= 0 and slen > prog[k, 2]:
                        slen = prog[k, 2]
                    spec = <const char*>&blob[0] + prog[k, 3]
                    w = snprintf(dst, room, spec, <int>slen, <const char*>(args + a))
                    if w > 0:
                        pos += w if w < room else room - 1
                    a += (nul - (args + a)) + 1 if nul != NULL else (end - start) - a
            olen[i] = <int32_t>(pos - ooff[i])
    return out_a[:pos], o_off, o_len
