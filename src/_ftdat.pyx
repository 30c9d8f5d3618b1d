# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ring-buffer pages of a trace.dat CPU stream -> record tables, and the time merge of the CPU
streams in ``trace-cmd report``'s order.  Bytes in, arrays out; no Python in the loops.

A page (layout from the file's header_page format; libtraceevent kbuffer-parse.c):

    u64 timestamp | long commit (bits 0-26: bytes of data, bit 31: events were lost before
    this page, bit 30: their count is stored as a long after the data) | data ...

and each record of the data starts with a 32-bit word: type_len (5 bits) and time_delta (27
bits), low bits first in a little-endian file, high bits first in a big-endian one:

    type_len 1..28  a record of type_len * 4 payload bytes
    type_len 0      a record whose payload length + 4 is the next 32-bit word
    29 padding      skipped by the length word that follows (delta 0: the rest of the page)
    30 time extend  delta += next word << 27
    31 time stamp   an absolute time: next word << 27 | delta, top 5 bits kept from the page

Every read is checked against the page: a record that runs past its page's data, a commit
larger than the page, a length word that does not fit, make the page "damaged": its records
are dropped and one lost-events marker (count unknown: 0) takes its place.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t, int8_t
from libc.stdlib cimport malloc, calloc, free, realloc
from libc.string cimport memcmp, memcpy, memset
import sys as _sys

cdef bint HOST_LITTLE = _sys.byteorder == "little"
import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef uint64_t COMMIT_MASK = (1 << 27) - 1
cdef uint64_t MISSING_EVENTS = (<uint64_t>1) << 31
cdef uint64_t MISSING_STORED = (<uint64_t>1) << 30
cdef uint64_t TS_MSB = (<uint64_t>0xf8) << 56

# kind of a marker row (a record's kind is its event type id, >= 0)
cdef enum:
    C_LOST = -1
    C_DAMAGED = -2
KIND_LOST = C_LOST
KIND_DAMAGED = C_DAMAGED

cdef struct Layout:
    int page_size
    int ts_off
    int commit_off
    int commit_size
    int data_off
    int big
    int type_off
    int type_size
    int min_payload


cdef inline uint64_t rd(const uint8_t *p, int n, int big) noexcept nogil:
    cdef uint64_t v = 0
    cdef uint32_t w32
    cdef uint16_t w16
    cdef int i
    # little-endian file on a little-endian host: one unaligned load
    if not big and HOST_LITTLE:
        if n == 4:
            memcpy(&w32, p, 4)
            return w32
        if n == 8:
            memcpy(&v, p, 8)
            return v
        if n == 2:
            memcpy(&w16, p, 2)
            return w16
        if n == 1:
            return p[0]
    if big:
        for i in range(n):
            v = (v << 8) | p[i]
    else:
        for i in range(n - 1, -1, -1):
            v = (v << 8) | p[i]
    return v


cdef enum:
    SINK_ARRAYS = 0      # ts/off/length/kind arrays (counted only when they are NULL)
    SINK_ROWS = 1        # time and kind per row, growing (RowWalker)
    SINK_DECODE = 2      # each record decoded at its place (Decoder)


cdef struct DecodeState


cdef struct Sink:
    int mode
    int64_t n            # rows written (or counted when the arrays are NULL)
    int64_t cap          # rows the arrays hold: a damaged page's rows are written, then
                         # dropped, so they may pass the final count for a moment
    uint64_t *ts
    int64_t *off         # payload offset in the stream; the lost count for markers
    int32_t *length
    int32_t *kind
    int64_t damaged
    int64_t *lost        # SINK_ROWS: the lost count of each marker
    int64_t nlost, caplost
    int failed
    DecodeState *dec     # SINK_DECODE
    const uint8_t *base  # SINK_DECODE: the bytes the offsets count from


cdef inline void put(Sink *s, uint64_t ts, int64_t off, int32_t length, int32_t kind) noexcept nogil:
    if s.mode == SINK_ROWS:
        put_row(s, ts, off, kind)
        return
    if s.mode == SINK_DECODE:
        decode_row(s.dec, s.base + off if kind >= 0 else NULL, length, kind)
        return
    if s.ts != NULL and s.n < s.cap:
        s.ts[s.n] = ts
        s.off[s.n] = off
        s.length[s.n] = length
        s.kind[s.n] = kind
    s.n += 1


cdef inline int page_damaged(Sink *s, int64_t start_n, int64_t start_lost, uint64_t ts) noexcept nogil:
    """Drop the rows of a page and put one KIND_DAMAGED marker in their place; returns 1."""
    s.n = start_n
    s.nlost = start_lost
    put(s, ts, 0, 0, C_DAMAGED)
    s.damaged += 1
    return 1


cdef int walk_page(const uint8_t *page, int64_t page_pos, Layout *L, Sink *s) noexcept nogil:
    """Rows of one page into s; 0 when the page is whole, else 1 (and nothing written for it
    but a KIND_DAMAGED marker)."""
    cdef uint64_t ts = rd(page + L.ts_off, 8, L.big)
    cdef uint64_t commit = rd(page + L.commit_off, L.commit_size, L.big)
    cdef int64_t size = <int64_t>(commit & COMMIT_MASK)
    cdef const uint8_t *data = page + L.data_off
    cdef int64_t cap = L.page_size - L.data_off
    cdef int64_t pos = 0, start_n = s.n, start_lost = s.nlost, length, lost = 0
    cdef uint32_t word, type_len, delta
    cdef uint64_t extend
    cdef int first = 1
    if size > cap:
        return page_damaged(s, start_n, start_lost, ts)
    if commit & MISSING_EVENTS:
        if commit & MISSING_STORED:
            if size + L.commit_size > cap:
                return page_damaged(s, start_n, start_lost, ts)
            lost = <int64_t>rd(data + size, L.commit_size, L.big)
        else:
            lost = 0
        put(s, ts, lost, 0, C_LOST)
    while pos < size:
        if pos + 4 > size:
            return page_damaged(s, start_n, start_lost, ts)
        word = <uint32_t>rd(data + pos, 4, L.big)
        if L.big:
            type_len = word >> 27
            delta = word & COMMIT_MASK
        else:
            type_len = word & 31
            delta = word >> 5
        if type_len == 0 or type_len >= 29:
            if pos + 8 > size:
                return page_damaged(s, start_n, start_lost, ts)
            extend = rd(data + pos + 4, 4, L.big)
        if type_len == 29:          # padding
            if delta == 0:
                break               # the rest of the page
            length = <int64_t>extend
            ts += delta
            if pos + 4 + length > size:
                # a discarded record as the last of a page may claim more: stop there
                break
            pos += 4 + length
            continue
        if type_len == 30:          # time extend
            ts += (extend << 27) + delta
            pos += 8
            continue
        if type_len == 31:          # absolute time stamp
            ts = ((extend << 27) + delta) | (ts & TS_MSB)
            pos += 8
            continue
        ts += delta
        if type_len == 0:
            length = (<int64_t>extend) - 4
            length = (length + 3) & ~3
            pos += 8
        else:
            length = type_len * 4
            pos += 4
        if length < L.min_payload or pos + length > size:
            return page_damaged(s, start_n, start_lost, ts)
        put(s, ts, page_pos + L.data_off + pos, <int32_t>length,
            <int32_t>rd(data + pos + L.type_off, L.type_size, L.big))
        pos += length
    return 0


cdef void walk(const uint8_t *buf, int64_t nbytes, Layout *L, Sink *s) noexcept nogil:
    cdef int64_t p = 0
    while p + L.page_size <= nbytes:
        walk_page(buf + p, p, L, s)
        p += L.page_size
    if p < nbytes:
        # a partial last page: its records cannot be trusted
        put(s, 0, 0, 0, C_DAMAGED)
        s.damaged += 1


def walk_cpu(const uint8_t[::1] buf, int page_size, int ts_off, int commit_off, int commit_size,
             int data_off, bint big, int type_off, int type_size, int min_payload):
    """Rows of one CPU's pages: dict of ts (uint64, raw clock), off (int64: payload offset in
    buf; for lost markers the lost count), length (int32), kind (int32: event type id, or
    KIND_LOST / C_DAMAGED), damaged (pages)."""
    cdef Layout L
    cdef Sink s
    cdef int64_t nbytes = buf.shape[0]
    cdef const uint8_t *p = &buf[0] if nbytes else NULL
    L.page_size, L.ts_off, L.commit_off, L.commit_size = page_size, ts_off, commit_off, commit_size
    L.data_off, L.big, L.type_off, L.type_size = data_off, big, type_off, type_size
    L.min_payload = min_payload
    if data_off + 4 > page_size or commit_size not in (4, 8) or type_size not in (1, 2, 4):
        raise ValueError("bad page layout")
    memset(&s, 0, sizeof(Sink))
    s.n = 0
    s.ts = NULL
    s.damaged = 0
    if nbytes:
        with nogil:
            walk(p, nbytes, &L, &s)
    n = s.n
    ts = np.empty(n, np.uint64)
    off = np.empty(n, np.int64)
    length = np.empty(n, np.int32)
    kind = np.empty(n, np.int32)
    cdef uint64_t[::1] ts_v = ts
    cdef int64_t[::1] off_v = off
    cdef int32_t[::1] len_v = length
    cdef int32_t[::1] kind_v = kind
    if n:
        s.n = 0
        s.cap = n
        s.damaged = 0
        s.ts = &ts_v[0]
        s.off = &off_v[0]
        s.length = &len_v[0]
        s.kind = &kind_v[0]
        with nogil:
            walk(p, nbytes, &L, &s)
    return {"ts": ts, "off": off, "length": length, "kind": kind, "damaged": s.damaged}


def merge_order(const int64_t[::1] ts, const int64_t[::1] starts):
    """Positions, in trace-cmd report's order, of rows held as CPU streams one after another
    (stream k = ts[starts[k]:starts[k+1]]): report takes the head with the smallest time, the
    first stream on a tie, whether or not a stream is sorted.  Returns rank (int64 per row)."""
    cdef Py_ssize_t k = starts.shape[0] - 1, i, best, pos
    cdef Py_ssize_t n = ts.shape[0]
    rank = np.empty(n, np.int64)
    cdef int64_t[::1] rank_v = rank
    if k <= 0 or n == 0:
        return rank
    cdef Py_ssize_t *head = <Py_ssize_t*>malloc(k * sizeof(Py_ssize_t))
    if head == NULL:
        raise MemoryError()
    cdef int64_t bts
    try:
        with nogil:
            for i in range(k):
                head[i] = starts[i]
            for pos in range(n):
                best = -1
                bts = 0
                for i in range(k):
                    if head[i] < starts[i + 1] and (best < 0 or ts[head[i]] < bts):
                        best = i
                        bts = ts[head[i]]
                rank_v[head[best]] = pos
                head[best] += 1
    finally:
        free(head)
    return rank


def gather(const uint8_t[::1] buf, const int64_t[::1] offs, const int32_t[::1] lens,
           Py_ssize_t start, Py_ssize_t width):
    """(n, width) uint8: bytes [off + start, off + start + width) of each record, zero where
    they lie past the record's length (lens) or the buffer."""
    cdef Py_ssize_t n = offs.shape[0], i, k, avail
    cdef Py_ssize_t nbuf = buf.shape[0]
    out = np.zeros((n, width), np.uint8)
    if n == 0 or width == 0:
        return out
    cdef uint8_t[:, ::1] o = out
    cdef int64_t a
    with nogil:
        for i in range(n):
            avail = lens[i] - start
            if avail > width:
                avail = width
            a = offs[i] + start
            if a < 0 or avail <= 0:
                continue
            if a + avail > nbuf:
                avail = nbuf - a
            for k in range(avail):
                o[i, k] = buf[a + k]
    return out


cdef inline Py_ssize_t str_len(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] == 0:
            return i
    return n


cdef inline uint64_t hash_bytes(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline const uint8_t *fixed_str(const uint8_t *buf, Py_ssize_t nbuf, int64_t off,
                                     int32_t rlen, Py_ssize_t start, Py_ssize_t size,
                                     Py_ssize_t *ln_out) noexcept nogil:
    """The NUL-terminated string of a char[size] field at `start` of a record at `off` of
    length `rlen`, clipped to the record and the buffer (NULL and 0 when absent)."""
    cdef int64_t a = off + start
    cdef Py_ssize_t ln = rlen - start
    if ln > size:
        ln = size
    if a < 0 or ln < 0:
        ln = 0
    if ln > 0 and a + ln > nbuf:
        ln = nbuf - a if nbuf > a else 0
    if ln <= 0:
        ln_out[0] = 0
        return NULL
    ln_out[0] = str_len(buf + a, ln)
    return buf + a


def intern_fixed(const uint8_t[::1] buf, const int64_t[::1] offs, const int32_t[::1] lens,
                 Py_ssize_t start, Py_ssize_t size):
    """Distinct NUL-terminated strings of a char[size] field at `start` of each record: returns
    (ids int32 per record, first int64: the row where each id first appears).  Bytes past a
    record's length or the buffer count as absent (an empty string)."""
    cdef Py_ssize_t n = offs.shape[0], i, cap = 1024, mask, slot, ln, ln2, nbuf = buf.shape[0]
    cdef Py_ssize_t distinct = 0, j
    cdef bint failed = False
    # rows past a record or the buffer come out empty, so the base is never read when nbuf == 0
    cdef const uint8_t *base = &buf[0] if nbuf > 0 else NULL
    ids = np.empty(n, np.int32)
    cdef int32_t[::1] ids_v = ids
    cdef int64_t *table = <int64_t*>malloc(cap * sizeof(int64_t))   # row of each slot, -1 free
    cdef int64_t *firsts = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef int64_t *newt
    cdef const uint8_t *p
    cdef const uint8_t *q
    cdef uint64_t h
    if table == NULL or firsts == NULL:
        free(table)
        free(firsts)
        raise MemoryError()
    try:
        with nogil:
            for i in range(cap):
                table[i] = -1
            for i in range(n):
                p = fixed_str(base, nbuf, offs[i], lens[i], start, size, &ln)
                h = hash_bytes(p, ln)
                mask = cap - 1
                slot = <Py_ssize_t>(h & mask)
                while True:
                    j = table[slot]
                    if j < 0:
                        break
                    # compare with the row that owns the slot
                    q = fixed_str(base, nbuf, offs[firsts[ids_v[j]]], lens[firsts[ids_v[j]]],
                                  start, size, &ln2)
                    if ln2 == ln and (ln == 0 or memcmp(p, q, ln) == 0):
                        break
                    slot = (slot + 1) & mask
                if j >= 0:
                    ids_v[i] = ids_v[j]
                    continue
                ids_v[i] = <int32_t>distinct
                firsts[distinct] = i
                table[slot] = i
                distinct += 1
                if distinct * 2 > cap:
                    # grow: rehash the first row of every id
                    newt = <int64_t*>malloc(cap * 2 * sizeof(int64_t))
                    if newt == NULL:
                        failed = True
                        break
                    cap *= 2
                    mask = cap - 1
                    for j in range(cap):
                        newt[j] = -1
                    for j in range(distinct):
                        q = fixed_str(base, nbuf, offs[firsts[j]], lens[firsts[j]], start,
                                      size, &ln2)
                        slot = <Py_ssize_t>(hash_bytes(q, ln2) & mask)
                        while newt[slot] >= 0:
                            slot = (slot + 1) & mask
                        newt[slot] = firsts[j]
                    free(table)
                    table = newt
                    newt = <int64_t*>realloc(firsts, cap * sizeof(int64_t))
                    if newt == NULL:
                        failed = True
                        break
                    firsts = newt
        if failed:
            raise MemoryError()
        first = np.empty(distinct, np.int64)
        for i in range(distinct):
            first[i] = firsts[i]
    finally:
        free(table)
        free(firsts)
    return ids, first


def fill_numbers(const uint8_t[::1] buf, const int64_t[::1] offs, const int32_t[::1] lens,
                 out_arr, const int64_t[:, ::1] specs, bint big):
    """Copy integer fields of each record into a structured array in one pass.  specs rows:
    (offset in the record, size 1/2/4/8, signed, byte offset in the output record, output
    size 1/4/8).  A field past its record's length is written as -1."""
    cdef Py_ssize_t n = offs.shape[0], i, k, nspec = specs.shape[0], nbuf = buf.shape[0]
    cdef Py_ssize_t item = out_arr.dtype.itemsize
    cdef uint8_t[::1] out = out_arr.view(np.uint8).reshape(-1) if n else np.zeros(1, np.uint8)
    cdef int64_t so, ssz, sg, do_, dsz, a
    cdef uint64_t u
    cdef int64_t v
    cdef uint8_t *dst
    if n == 0:
        return
    for k in range(nspec):
        if specs[k, 1] not in (1, 2, 4, 8) or specs[k, 4] not in (1, 4, 8) or \
                specs[k, 3] < 0 or specs[k, 3] + specs[k, 4] > item:
            raise ValueError("bad field spec")
    with nogil:
        for i in range(n):
            for k in range(nspec):
                so = specs[k, 0]
                ssz = specs[k, 1]
                sg = specs[k, 2]
                do_ = specs[k, 3]
                dsz = specs[k, 4]
                a = offs[i] + so
                if so + ssz > lens[i] or a < 0 or a + ssz > nbuf:
                    v = -1
                else:
                    u = rd(&buf[a], <int>ssz, big)
                    if sg and ssz < 8 and (u >> (8 * ssz - 1)) & 1:
                        u |= (~(<uint64_t>0)) << (8 * ssz)
                    v = <int64_t>u
                dst = &out[i * item + do_]
                if dsz == 8:
                    (<int64_t*>dst)[0] = v
                elif dsz == 4:
                    (<int32_t*>dst)[0] = <int32_t>v
                else:
                    dst[0] = <uint8_t>v


include "_ftdat_decode.pxi"

include "_ftdat_bprint.pxi"
