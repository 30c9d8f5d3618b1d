# Byte helpers: included by _ftparse.pyx (one compilation unit).
# Small `noexcept nogil` scanners and number parsers over [p, e) ranges.

cdef extern from *:
    """
    #include <sys/mman.h>
    #include <unistd.h>
    /* mapping d (dcap long) made ncap long where it is, when the pages after it are free; a
       buffer joined by ft_map_splice spans several kernel mappings, which mremap cannot
       resize (EFAULT) */
    static int ft_map_extend(char *d, size_t dcap, size_t ncap) {
    #ifdef MAP_FIXED_NOREPLACE
        void *q = mmap(d + dcap, ncap - dcap, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (q == (void *)(d + dcap))
            return 1;
        if (q != MAP_FAILED)     /* a kernel before 4.17 took the address as a hint */
            munmap(q, ncap - dcap);
    #endif
        return 0;
    }

    /* Transparent huge pages for a buffer: its first touch faults once per 2 MB, not per
       4 KB.  Kept where NumPy's advice is turned off (ftrace_fast._entry.numpy_huge_pages):
       without it the parse took longer there (bench/README.md). */
    static void ft_advise_huge(void *p, size_t n) {
    #ifdef MADV_HUGEPAGE
        madvise(p, n, MADV_HUGEPAGE);
    #endif
    }

    /* Mappings handed back while a load streams its kept text out (ftfast filter), lent to
       the next buffer that needs one: the pages are touched already, where a fresh mapping
       pays the kernel's zeroing of every page (a fifth of the filter's CPU at 1 GB). */
    #include <pthread.h>
    #define FT_POOL_MAX 8
    static struct { char *p; size_t cap; } ft_pool[FT_POOL_MAX];
    static int ft_pool_n, ft_pool_on;   /* on: the loads that lend, running now */
    static long ft_pool_lent;           /* mappings lent since the process started */
    static pthread_mutex_t ft_pool_mu = PTHREAD_MUTEX_INITIALIZER;

    /* 1: kept for reuse; 0: the pool is off or full, the caller unmaps */
    static int ft_pool_put(char *p, size_t cap) {
        int kept = 0;
        pthread_mutex_lock(&ft_pool_mu);
        if (ft_pool_on && ft_pool_n < FT_POOL_MAX) {
            ft_pool[ft_pool_n].p = p;
            ft_pool[ft_pool_n].cap = cap;
            ft_pool_n++;
            kept = 1;
        }
        pthread_mutex_unlock(&ft_pool_mu);
        return kept;
    }

    /* the smallest pooled mapping of at least need bytes (its length in *cap), or NULL */
    static char *ft_pool_get(size_t need, size_t *cap) {
        int i, best = -1;
        char *p = NULL;
        pthread_mutex_lock(&ft_pool_mu);
        for (i = 0; i < ft_pool_n; i++)
            if (ft_pool[i].cap >= need && (best < 0 || ft_pool[i].cap < ft_pool[best].cap))
                best = i;
        if (best >= 0) {
            p = ft_pool[best].p;
            *cap = ft_pool[best].cap;
            ft_pool[best] = ft_pool[--ft_pool_n];
            ft_pool_lent++;
        }
        pthread_mutex_unlock(&ft_pool_mu);
        return p;
    }

    /* on: one more load lends mappings; off: one fewer, and when none is left the pooled
       mappings are unmapped and no more are kept */
    static void ft_pool_switch(int on) {
        pthread_mutex_lock(&ft_pool_mu);
        ft_pool_on += on ? 1 : (ft_pool_on > 0 ? -1 : 0);
        if (!ft_pool_on) {
            while (ft_pool_n > 0) {
                ft_pool_n--;
                munmap(ft_pool[ft_pool_n].p, ft_pool[ft_pool_n].cap);
            }
        }
        pthread_mutex_unlock(&ft_pool_mu);
    }

    /* A large buffer lives in its own mapping: it grows by mremap (never a copy, where a heap
       realloc below glibc's mmap threshold copies), with the huge-page advice above.  A first
       mapping is a lent one when the pool has one (its length in *ncapp, at least asked). */
    static char *ft_map_grow(char *old, size_t oldcap, size_t used, int mapped, size_t *ncapp) {
        size_t ncap = *ncapp;
        void *p;
        if (mapped) {
            p = mremap(old, oldcap, ncap, MREMAP_MAYMOVE);
            if (p == MAP_FAILED && ft_map_extend(old, oldcap, ncap))
                p = old;
            if (p == MAP_FAILED) {
                /* several mappings with no room after them: moved by a copy */
                p = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p != MAP_FAILED) {
                    memcpy(p, old, used);
                    munmap(old, oldcap);
                }
            }
        } else {
            p = ft_pool_get(ncap, ncapp);
            if (p == NULL)
                p = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p != MAP_FAILED) {
                if (used)
                    memcpy(p, old, used);
                free(old);
            }
        }
        if (p == MAP_FAILED)
            return NULL;
        ft_advise_huge(p, *ncapp);
        return (char *)p;
    }
    static void ft_unmap(char *p, size_t n) { munmap(p, n); }

    /* The bytes of mapping *dp (dsize used of *dcapp) followed by those of mapping *sp (ssize
       of *scapp), without copying the latter's pages (they are touched already; fresh pages
       cost their zeroing): d's full pages stay, s's mapping moves in right behind them
       (mremap), and s's bytes shift within s's own pages by the r bytes of d's last, partial
       page, which go in front of them.  0: joined into *dp (*dcapp its length), s consumed;
       -1: out of memory, nothing joined (either mapping may have moved or grown: the four
       pointers say where each is). */
    static int ft_map_splice(char **dp, size_t *dcapp, size_t dsize, char **sp, size_t *scapp,
                             size_t ssize) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t r = dsize % page, full = dsize - r, need = ssize + r, end;
        char *j, *s, *t;
        if (*scapp < need) {
            size_t grown = (need + page - 1) / page * page;
            t = mremap(*sp, *scapp, grown, MREMAP_MAYMOVE);
            if (t == MAP_FAILED)
                return -1;
            *sp = t;
            *scapp = grown;
        }
        s = *sp;
        end = full + *scapp;
        if (end > *dcapp) {
            /* twice the room, as a doubling leaves it: the parts still to come move in
               without a resize, which a joined buffer (several mappings) cannot have */
            size_t room = 2 * end;
            if (ft_map_extend(*dp, *dcapp, room)) {
                *dcapp = room;
            } else if (ft_map_extend(*dp, *dcapp, end)) {
                *dcapp = end;
            } else {
                /* moved to where there is room (end >= dsize: d's partial page comes along) */
                t = mremap(*dp, *dcapp, room, MREMAP_MAYMOVE);
                if (t == MAP_FAILED)
                    return -1;
                *dp = t;
                *dcapp = room;
            }
        }
        j = *dp;
        memmove(s + r, s, ssize);
        memcpy(s, j + full, r);
        t = mremap(s, *scapp, *scapp, MREMAP_MAYMOVE | MREMAP_FIXED, j + full);
        if (t == MAP_FAILED) {
            /* s stays where it was: its bytes are copied instead */
            memcpy(j + full, s, need);
            munmap(s, *scapp);
        }
        ft_advise_huge(j, *dcapp);
        return 0;
    }
    """
    char *map_grow "ft_map_grow"(char *old, size_t oldcap, size_t used, int mapped,
                                 size_t *ncap) noexcept nogil
    void unmap "ft_unmap"(char *p, size_t n) noexcept nogil
    int pool_put "ft_pool_put"(char *p, size_t cap) noexcept nogil
    void pool_switch "ft_pool_switch"(int on) noexcept nogil
    long pool_lent "ft_pool_lent"
    int pool_n "ft_pool_n"
    int map_splice "ft_map_splice"(char **dp, size_t *dcapp, size_t dsize, char **sp,
                                   size_t *scapp, size_t ssize) noexcept nogil

cdef enum:
    # buffers from this size on are mappings of their own (see ft_map_grow)
    MAP_FROM = 1 << 18

cdef inline int g_reserve(Grow *g, size_t extra) noexcept nogil:
    """Make room for `extra` more bytes; -1 when memory runs out."""
    if g.size + extra <= g.cap and g.size + extra >= g.size:
        return 0
    return g_grow(g, extra)

cdef int g_grow(Grow *g, size_t extra) noexcept nogil:
    """g_reserve()'s growth, out of line.  Doubling keeps appends linear; the first block is
    small since many event names are seen only once."""
    cdef size_t need = g.size + extra
    cdef size_t ncap
    cdef char *nd
    if need < g.size:
        return -1
    ncap = g.cap * 2 if g.cap else 128
    while ncap < need:
        if ncap > (<size_t>-1) // 4:
            return -1
        ncap *= 2
    if ncap >= MAP_FROM:
        nd = map_grow(g.data, g.cap, g.size, g.mapped, &ncap)
        if nd == NULL:
            return -1
        g.mapped = 1
    else:
        nd = <char*>realloc(g.data, ncap)
        if nd == NULL:
            return -1
    g.data = nd
    g.cap = ncap
    return 0

cdef inline void g_free(Grow *g) noexcept nogil:
    if g.mapped:
        unmap(g.data, g.cap)
    else:
        free(g.data)
    g.mapped = 0
    g.data = NULL
    g.size = 0
    g.cap = 0

cdef inline uint64_t load64(const char *p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w

cdef inline uint64_t word_mask(Py_ssize_t nbytes) noexcept nogil:
    if nbytes >= 8:
        return 0xffffffffffffffffULL
    if nbytes <= 0:
        return 0
    return (1ULL << (8 * nbytes)) - 1

cdef extern from *:
    """
    #define ft_ctz64(x) __builtin_ctzll(x)
    """
    int ctz64 "ft_ctz64"(uint64_t x) noexcept nogil

cdef extern from *:
    """
    /* n bytes, a multiple of 8, word by word: a record template is copied per event, and a
       libc memcpy call costs more than the few moves (gcc must not turn the loop into one) */
    static inline __attribute__((always_inline, optimize("no-tree-loop-distribute-patterns")))
    void ft_copy_words(char *dst, const char *src, size_t n) {
        uint64_t w;
        size_t i;
        for (i = 0; i < n; i += 8) {
            __builtin_memcpy(&w, src + i, 8);
            __builtin_memcpy(dst + i, &w, 8);
        }
    }
    """
    void copy_words "ft_copy_words"(char *dst, const char *src, size_t n) noexcept nogil

cdef extern from *:
    """
    /* the zero bytes of x flagged by their top bit: the lowest flag is exact (a false one
       only follows a true one, through the subtraction's borrow) */
    #define FT_ZBYTES(x) (((x) - 0x0101010101010101ULL) & ~(x) & 0x8080808080808080ULL)
    #define FT_REP(c) (0x0101010101010101ULL * (uint8_t)(c))

    /* The first of the bytes a, b, c, d in [p, e), or e: 8 bytes a step, reading up to 7
       past e (the parse buffer's PAD).  Called with constants, which fold. */
    static inline __attribute__((always_inline)) const char *
    ft_first_of(const char *p, const char *e, char a, char b, char c, char d) {
        uint64_t w, m;
        if (p >= e)
            return p;
        while (p < e) {
            __builtin_memcpy(&w, p, 8);
            m = FT_ZBYTES(w ^ FT_REP(a)) | FT_ZBYTES(w ^ FT_REP(b))
                | FT_ZBYTES(w ^ FT_REP(c)) | FT_ZBYTES(w ^ FT_REP(d));
            if (m) {
                p += __builtin_ctzll(m) >> 3;
                return p < e ? p : e;
            }
            p += 8;
        }
        return e;
    }

    /* the end of an event name: ':', '(' (syscall events) or a blank */
    #define ft_name_end(p, e) ft_first_of((p), (e), ':', '(', ' ', '\\t')
    /* the first blank */
    #define ft_tok_end(p, e) ft_first_of((p), (e), ' ', '\\t', ' ', '\\t')
    """
    const char *name_end "ft_name_end"(const char *p, const char *e) noexcept nogil
    const char *tok_end "ft_tok_end"(const char *p, const char *e) noexcept nogil
    uint64_t zbytes "FT_ZBYTES"(uint64_t x) noexcept nogil

cdef inline bint is_ws(char c) noexcept nogil:
    return c == c' ' or c == c'\t'

cdef inline bint is_digit(char c) noexcept nogil:
    return c'0' <= c <= c'9'

cdef inline bint is_delay_mark(char c) noexcept nogil:
    """ftrace's delay marks (`+ ! # * @ $`), printed before a duration or after a `us` time."""
    return c == c'+' or c == c'!' or c == c'#' or c == c'*' or c == c'@' or c == c'$'

cdef int8_t HEXVAL[256]

def _init_hexval():
    cdef int i
    for i in range(256):
        HEXVAL[i] = -1
    for i, ch in enumerate("0123456789abcdef"):
        HEXVAL[ord(ch)] = i
        HEXVAL[ord(ch.upper())] = i

_init_hexval()

cdef inline int hexval(char c) noexcept nogil:
    """0-15, or -1 for a byte that is no hex digit (one table load, no branches)."""
    return HEXVAL[<uint8_t>c]

cdef inline const char *skip_ws(const char *p, const char *e) noexcept nogil:
    """Past blanks; space runs (padded columns) go 8 bytes a step, then tabs byte by byte."""
    cdef uint64_t w
    while e - p >= 8:
        w = load64(p) ^ 0x2020202020202020ULL
        if w:
            p += ctz64(w) >> 3
            break
        p += 8
    while p < e and is_ws(p[0]):
        p += 1
    return p

cdef inline const char *rtrim(const char *p, const char *e) noexcept nogil:
    while e > p and is_ws(e[-1]):
        e -= 1
    return e

cdef inline bint eqn(const char *a, const char *b, size_t n) noexcept nogil:
    """a[:n] == b[:n], inlined: payload keys are a few bytes, shorter than a call."""
    cdef size_t i
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True

cdef extern from *:
    """
    /* The first byte c in [p, e), or NULL.  Most searches of a line end within a few bytes
       (the dash after a comm, the blank after a value): two words are tested inline, reading
       up to 7 bytes past e (the parse buffer's PAD), before a memchr call for the rest. */
    static inline __attribute__((always_inline)) const char *
    ft_find_byte(const char *p, const char *e, char c) {
        const uint64_t rep = FT_REP(c);
        uint64_t w, m;
        int i;
        for (i = 0; i < 2 && p < e; i++) {
            __builtin_memcpy(&w, p, 8);
            m = FT_ZBYTES(w ^ rep);
            if (m) {
                p += __builtin_ctzll(m) >> 3;
                return p < e ? p : NULL;
            }
            p += 8;
        }
        return p < e ? (const char *)memchr(p, c, (size_t)(e - p)) : NULL;
    }
    """
    const char *find_byte "ft_find_byte"(const char *p, const char *e, char c) noexcept nogil

cdef inline const char *find(const char *p, const char *e, const char *needle,
                             size_t nl) noexcept nogil:
    """First occurrence of needle in [p, e), or NULL."""
    cdef const char *q
    cdef char c0 = needle[0]
    while <size_t>(e - p) >= nl:
        q = find_byte(p, p + (<size_t>(e - p) - nl + 1), c0)
        if q == NULL:
            return NULL
        if eqn(q + 1, needle + 1, nl - 1):
            return q
        p = q + 1
    return NULL

cdef extern from *:
    """
    /* p + strlen(s) if [p, e) starts with s, else NULL.  Always inlined, so that for the
       string literals it is called with the length and the comparison fold into a few
       instructions. */
    static inline __attribute__((always_inline)) const char *
    ft_starts(const char *p, const char *e, const char *s) {
        size_t n = __builtin_strlen(s);
        if ((size_t)(e - p) >= n && __builtin_memcmp(p, s, n) == 0)
            return p + n;
        return NULL;
    }
    """
    const char *starts "ft_starts"(const char *p, const char *e, const char *s) noexcept nogil

cdef extern from *:
    """
    #define ft_unlikely(x) __builtin_expect(!!(x), 0)
    """
    bint unlikely "ft_unlikely"(bint x) noexcept nogil

cdef extern from *:
    """
    /* The decimal digits that start the 8 bytes at p, at most e - p of them: their count (0 to
       8) and value, found and summed a word at a time.  The parse buffer has PAD readable
       bytes past every line, so the load may pass e.  Little-endian: p[0] is the low byte. */
    static inline __attribute__((always_inline)) int
    ft_digits8(const char *p, const char *e, uint64_t *val) {
        uint64_t w, x, m;
        int n;
        __builtin_memcpy(&w, p, 8);
        x = w ^ 0x3030303030303030ULL;
        /* a byte's top bit is set unless it was '0'..'9': x >= 10 passes 0x80 when 0x76 is added
           (a carry only leaves a byte that is flagged already, into a later one) */
        m = ((x + 0x7676767676767676ULL) | x) & 0x8080808080808080ULL;
        n = m ? (int)(__builtin_ctzll(m) >> 3) : 8;
        if (e - p < n)
            n = e > p ? (int)(e - p) : 0;
        if (n == 0)
            return 0;
        x <<= 8 * (8 - n);          /* the digits to the top bytes, zeros before them */
        x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFULL;
        x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFULL;
        x = (x * 10000 + (x >> 32)) & 0xFFFFFFFFULL;
        *val = x;
        return n;
    }
    """
    int digits8 "ft_digits8"(const char *p, const char *e, uint64_t *val) noexcept nogil

cdef inline bint fits_i32(int64_t v) noexcept nogil:
    return I32_MIN <= v <= I32_MAX

cdef inline bint fits_i8(int64_t v) noexcept nogil:
    return -128 <= v <= 127

cdef inline const char *parse_i64(const char *p, const char *e, int64_t *out) noexcept nogil:
    """Decimal integer with an optional sign; NULL when there is no digit or it overflows."""
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef uint8_t d
    cdef const char *s
    cdef const char *lim
    cdef int n
    if p < e and (p[0] == c'-' or p[0] == c'+'):
        neg = p[0] == c'-'
        p += 1
    s = p
    n = digits8(p, e, &v)
    if n == 0:
        return NULL
    p += n
    if n == 8:
        # 18 digits cannot overflow: check only past them
        lim = e if e - s <= 18 else s + 18
        while p < lim:
            d = <uint8_t>(p[0] - c'0')
            if d > 9:
                break
            v = v * 10 + d
            p += 1
        while p < e and is_digit(p[0]):
            if v > 922337203685477580ULL:
                return NULL
            v = v * 10 + <uint64_t>(p[0] - c'0')
            p += 1
        if v > 9223372036854775807ULL:
            return NULL
    out[0] = -<int64_t>v if neg else <int64_t>v
    return p

cdef inline const char *parse_hex(const char *p, const char *e, uint64_t *out) noexcept nogil:
    """Hex digits with an optional 0x prefix; NULL when there is none or more than 16."""
    cdef uint64_t v = 0
    cdef const char *s
    cdef int h, n = 0
    if e - p >= 2 and p[0] == c'0' and (p[1] == c'x' or p[1] == c'X'):
        p += 2
    s = p
    while p < e:
        h = hexval(p[0])
        if h < 0:
            break
        n += 1
        if n > 16:
            return NULL
        v = (v << 4) | <uint64_t>h
        p += 1
    if p == s:
        return NULL
    out[0] = v
    return p

cdef inline const char *parse_num_auto(const char *p, const char *e, uint64_t *out) noexcept nogil:
    """0x-prefixed hex, or unsigned decimal (the full 64-bit range); NULL on overflow."""
    cdef uint64_t v = 0, d
    cdef const char *s
    if e - p >= 2 and p[0] == c'0' and (p[1] == c'x' or p[1] == c'X'):
        return parse_hex(p, e, out)
    s = p
    while p < e and is_digit(p[0]):
        d = <uint64_t>(p[0] - c'0')
        if v > (18446744073709551615ULL - d) // 10:
            return NULL
        v = v * 10 + d
        p += 1
    if p == s:
        return NULL
    out[0] = v
    return p

cdef inline uint64_t hash_bytes(const char *p, size_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef size_t i
    for i in range(n):
        h = (h ^ <uint8_t>p[i]) * 1099511628211ULL
    return h ^ (h >> 29)
