# Intern tables: included by _ftparse.pyx (one compilation unit).
# Strings (comms, symbols, event names) become small ints, found by hash with a word cache in front.

cdef int intern_rehash(Intern *t, size_t nslots) noexcept nogil:
    cdef int32_t *slots = <int32_t*>calloc(nslots, sizeof(int32_t))
    cdef uint64_t *hs = <uint64_t*>t.hashes.data
    cdef size_t mask = nslots - 1, j
    cdef int32_t i
    if slots == NULL:
        return -1
    for i in range(t.count):
        j = hs[i] & mask
        while slots[j] != 0:
            j = (j + 1) & mask
        slots[j] = i + 1
    free(t.slots)
    t.slots = slots
    t.nslots = nslots
    return 0

cdef int32_t intern(Intern *t, const char *p, size_t n, bint *is_new) noexcept nogil:
    """Id of bytes [p, p+n), adding them when new; -1 when memory runs out."""
    cdef uint64_t h = hash_bytes(p, n)
    cdef size_t mask, j
    cdef int32_t s, id_
    cdef int64_t *offs
    cdef int32_t *lens
    cdef uint64_t *hs
    is_new[0] = False
    if t.nslots == 0 or <size_t>(t.count + 1) * 2 > t.nslots:
        if intern_rehash(t, t.nslots * 2 if t.nslots else 256) < 0:
            return -1
    mask = t.nslots - 1
    j = h & mask
    offs = <int64_t*>t.offs.data
    lens = <int32_t*>t.lens.data
    hs = <uint64_t*>t.hashes.data
    while True:
        s = t.slots[j]
        if s == 0:
            break
        id_ = s - 1
        if hs[id_] == h and <size_t>lens[id_] == n and memcmp(t.chars.data + offs[id_], p, n) == 0:
            return id_
        j = (j + 1) & mask
    if (g_reserve(&t.chars, n + 1) < 0 or g_reserve(&t.offs, 8) < 0
            or g_reserve(&t.lens, 4) < 0 or g_reserve(&t.hashes, 8) < 0):
        return -1
    id_ = t.count
    (<int64_t*>t.offs.data)[id_] = <int64_t>t.chars.size
    (<int32_t*>t.lens.data)[id_] = <int32_t>n
    (<uint64_t*>t.hashes.data)[id_] = h
    t.offs.size += 8
    t.lens.size += 4
    t.hashes.size += 8
    if n:
        memcpy(t.chars.data + t.chars.size, p, n)
    t.chars.size += n
    t.count += 1
    t.slots[j] = id_ + 1
    is_new[0] = True
    return id_

cdef inline int32_t intern_fast(Intern *t, const char *p, size_t n, bint *is_new) noexcept nogil:
    """intern() for bytes inside a parse buffer, which has PAD readable bytes past any line:
    strings of up to 24 bytes are looked up as three masked words in a direct-mapped cache
    before the hash table."""
    cdef uint64_t w0, w1, w2, h
    cdef CacheEnt *c
    cdef int32_t id_
    if n > 24 or t.cache == NULL:
        return intern(t, p, n, is_new)
    w0 = load64(p) & word_mask(<Py_ssize_t>n)
    w1 = load64(p + 8) & word_mask(<Py_ssize_t>n - 8)
    w2 = load64(p + 16) & word_mask(<Py_ssize_t>n - 16)
    h = (w0 * 0x9E3779B97F4A7C15ULL) ^ (w1 * 0xC2B2AE3D27D4EB4FULL) ^ (w2 * 0x165667B19E3779F9ULL) ^ n
    c = &t.cache[(h ^ (h >> 31)) & (CACHE_SIZE - 1)]
    if c.id >= 0 and c.w0 == w0 and c.w1 == w1 and c.w2 == w2 and c.n == <int32_t>n:
        is_new[0] = False
        return c.id
    id_ = intern(t, p, n, is_new)
    if id_ >= 0:
        c.w0 = w0
        c.w1 = w1
        c.w2 = w2
        c.n = <int32_t>n
        c.id = id_
    return id_

cdef int intern_init(Intern *t) noexcept nogil:
    cdef int i
    t.cache = <CacheEnt*>malloc(CACHE_SIZE * sizeof(CacheEnt))
    if t.cache == NULL:
        return -1
    for i in range(CACHE_SIZE):
        t.cache[i].id = -1
    return 0

cdef void intern_free(Intern *t) noexcept nogil:
    g_free(&t.chars)
    g_free(&t.offs)
    g_free(&t.lens)
    g_free(&t.hashes)
    free(t.slots)
    free(t.cache)
    t.cache = NULL
    t.slots = NULL
    t.nslots = 0
    t.count = 0

cdef list intern_strings(Intern *t):
    cdef list out = []
    cdef int32_t i
    cdef int64_t *offs = <int64_t*>t.offs.data
    cdef int32_t *lens = <int32_t*>t.lens.data
    for i in range(t.count):
        out.append(t.chars.data[offs[i]:offs[i] + lens[i]].decode("utf-8", "backslashreplace"))
    return out
