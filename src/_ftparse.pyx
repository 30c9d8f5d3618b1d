# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Byte-level tokenizer for ftrace text: bytes in, typed record columns out.

One line of the kernel's ``trace`` file, with every optional column present::

       CPU 0/KVM-2024    (   2011) [001] d.h2.  1154.513760: sched_switch: prev_comm=...
       \_______/ \__/     \______/  \_/ \___/  \_________/  \__________/  \______...
         comm     pid       tgid    cpu flags   timestamp    event name    payload

The line prefix is anchored on structure, not on the comm: a comm may hold spaces, dashes,
digits, colons and slashes (``CPU 0/KVM``, ``kworker/u16:2-123``), so the anchor is the first
``-<digits>`` that is followed by blanks and then by ``(tgid)``, ``[cpu]``, or the latency
format's ``<cpu><flags>`` token.  Every other kind of line (headers, LOST markers, stack frames,
function_graph output, trace-cmd's file prefixes and noise) is classified before or after that
attempt; whatever fits nothing is recorded as an error with its line number, never dropped.

The hot loop runs without the GIL; the GIL is taken only when a new comm must be checked
against a ``comm`` filter regex (once per distinct comm).
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset, strlen
from libc.stdlib cimport malloc, calloc, realloc, free
from cpython.buffer cimport PyBuffer_FillInfo

import numpy as np

# ---------------------------------------------------------------------------------------------
# C structures

cdef struct Grow:
    # A growable byte buffer: data[0:size] is used, data[size:cap] is reserved.
    char *data
    size_t size
    size_t cap

cdef struct CacheEnt:
    # one entry of an intern table's front cache: a string of at most 24 bytes as 3 words
    uint64_t w0
    uint64_t w1
    uint64_t w2
    int32_t n
    int32_t id

cdef struct Intern:
    # An intern table: id -> bytes (chars[offs[id]:offs[id]+lens[id]]), open-addressed by hash,
    # with a direct-mapped front cache for the short strings (comms, event names) of the lines.
    Grow chars
    Grow offs      # int64 per id
    Grow lens      # int32 per id
    Grow hashes    # uint64 per id
    int32_t *slots # id + 1, 0 = empty
    size_t nslots
    int32_t count
    CacheEnt *cache  # CACHE_SIZE entries, id -1 = empty

cdef struct EvType:
    int32_t layout
    int32_t rec_size
    int8_t wanted
    int64_t count
    Grow recs

cdef struct LostRec:
    int64_t line
    int64_t ts
    int64_t count
    int32_t cpu
    int32_t pad

cdef struct ErrRec:
    int64_t line
    int64_t offset
    int32_t code
    int32_t col
    int32_t excerpt_len
    int32_t event       # event-name id, -1 when the error came before the name
    int32_t cause       # for E_TRUNCATED: the error the unterminated last line had (else 0)
    int64_t nbytes      # the line's length, line end excluded
    const char *what    # static string: the key or item that was expected
    char excerpt[200]

from ftrace_fast import events as _ev

# ---------------------------------------------------------------------------------------------
# error codes (messages are built in Python, only when shown)

cdef enum:
    E_PREFIX = 1        # no 'comm-pid [cpu]' prefix
    E_TIMESTAMP = 2     # bad or missing timestamp
    E_NO_EVENT = 3      # nothing after the timestamp
    E_FIELD = 4         # a known event's payload lacks an expected item
    E_ORPHAN_FRAME = 5  # stack frame line with no event line before it
    E_FUNCGRAPH = 6     # function_graph line that does not parse
    E_TRUNCATED = 7     # the input's last line has no newline and does not parse
    E_TS_RANGE = 8      # timestamp does not fit int64 nanoseconds
    E_FLAGS = 9         # irq-info flags column longer than 8 characters
    E_RANGE = 10        # an integer that does not fit its column (int32, int8) or its meaning
    E_LONG = 11         # a line longer than the line limit (skipped unread past its excerpt)
    NCODES = 12

ERROR_CODES = {
    E_PREFIX: "no_prefix", E_TIMESTAMP: "bad_timestamp", E_NO_EVENT: "no_event",
    E_FIELD: "bad_field", E_ORPHAN_FRAME: "orphan_stack_frame", E_FUNCGRAPH: "bad_funcgraph",
    E_TRUNCATED: "truncated_last_line", E_TS_RANGE: "timestamp_range", E_FLAGS: "bad_flags",
    E_RANGE: "out_of_range", E_LONG: "line_too_long",
}

#: default line limit (bytes, line end excluded): a longer line is malformed and never held whole
DEFAULT_MAX_LINE = 1 << 20

cdef enum:
    MAX_ERRORS = 500
    FG_MAXDEPTH = 128
    MAX_CPU = 1 << 20

# timestamp kinds
cdef enum:
    TS_DECIMAL = 1
    TS_INTEGER = 2
    TS_US = 3

# layouts (their order is events.LAYOUTS'; checked at import)
cdef enum:
    L_GENERIC = 0
    L_SCHED_SWITCH
    L_SCHED_WAKE
    L_MIGRATE
    L_FORK
    L_PROC_TASK
    L_EXEC
    L_STAT_RUNTIME
    L_STAT_DELAY
    L_KVM_ENTRY
    L_KVM_EXIT
    L_KVM_WAKEUP
    L_IRQ_ENTRY
    L_IRQ_EXIT
    L_SOFTIRQ
    L_BLOCK
    L_TEXT
    L_FUNCGRAPH
    L_STACK_FRAME
    NLAYOUTS

_LAYOUT_ORDER = ("generic", "sched_switch", "sched_wake", "sched_migrate_task",
                 "sched_process_fork", "sched_process_task", "sched_process_exec",
                 "sched_stat_runtime", "sched_stat_delay", "kvm_entry", "kvm_exit",
                 "kvm_vcpu_wakeup", "irq_handler_entry", "irq_handler_exit", "softirq",
                 "block_rq", "text", "funcgraph", "stack_frame")
if tuple(_ev.LAYOUTS) != _LAYOUT_ORDER:
    raise ImportError("ftrace_fast.events.LAYOUTS does not match the parser's layout table; "
                      "rebuild the extension (pip install .)")

# field offsets, looked up by name from events.py at start-up
cdef enum:
    O_PAYLOAD_OFF = 0
    O_PAYLOAD_LEN
    O_SW_PREV_COMM
    O_SW_PREV_PID
    O_SW_PREV_PRIO
    O_SW_PREV_STATE
    O_SW_NEXT_COMM
    O_SW_NEXT_PID
    O_SW_NEXT_PRIO
    O_WK_COMM
    O_WK_PID
    O_WK_PRIO
    O_WK_TARGET
    O_WK_SUCCESS
    O_MG_COMM
    O_MG_PID
    O_MG_PRIO
    O_MG_ORIG
    O_MG_DEST
    O_FK_COMM
    O_FK_PID
    O_FK_CCOMM
    O_FK_CPID
    O_PT_COMM
    O_PT_PID
    O_PT_PRIO
    O_EX_FILE
    O_EX_PID
    O_EX_OLDPID
    O_SR_COMM
    O_SR_PID
    O_SR_RUNTIME
    O_SR_VRUNTIME
    O_SD_COMM
    O_SD_PID
    O_SD_DELAY
    O_KE_VCPU
    O_KE_RIP
    O_KX_VCPU
    O_KX_REASON
    O_KX_RIP
    O_KX_INFO1
    O_KX_INFO2
    O_KX_INTR
    O_KX_ERR
    O_KW_NS
    O_KW_WAITED
    O_KW_VALID
    O_IE_IRQ
    O_IE_NAME
    O_IX_IRQ
    O_IX_RET
    O_SI_VEC
    O_SI_ACTION
    O_BK_MAJOR
    O_BK_MINOR
    O_BK_RWBS
    O_BK_BYTES
    O_BK_SECTOR
    O_BK_NR
    O_BK_ERROR
    O_BK_COMM
    O_TX_OFF
    O_TX_LEN
    O_FG_DEPTH
    O_FG_FUNC
    O_FG_DUR
    O_SF_FUNC
    O_SF_ADDR
    NOFFS

_OFFSET_NAMES = (
    ("generic", "payload_off"), ("generic", "payload_len"),
    ("sched_switch", "prev_comm"), ("sched_switch", "prev_pid"), ("sched_switch", "prev_prio"),
    ("sched_switch", "prev_state"), ("sched_switch", "next_comm"), ("sched_switch", "next_pid"),
    ("sched_switch", "next_prio"),
    ("sched_wake", "task_comm"), ("sched_wake", "task_pid"), ("sched_wake", "prio"),
    ("sched_wake", "target_cpu"), ("sched_wake", "success"),
    ("sched_migrate_task", "task_comm"), ("sched_migrate_task", "task_pid"),
    ("sched_migrate_task", "prio"), ("sched_migrate_task", "orig_cpu"),
    ("sched_migrate_task", "dest_cpu"),
    ("sched_process_fork", "task_comm"), ("sched_process_fork", "task_pid"),
    ("sched_process_fork", "child_comm"), ("sched_process_fork", "child_pid"),
    ("sched_process_task", "task_comm"), ("sched_process_task", "task_pid"),
    ("sched_process_task", "prio"),
    ("sched_process_exec", "filename"), ("sched_process_exec", "task_pid"),
    ("sched_process_exec", "old_pid"),
    ("sched_stat_runtime", "task_comm"), ("sched_stat_runtime", "task_pid"),
    ("sched_stat_runtime", "runtime"), ("sched_stat_runtime", "vruntime"),
    ("sched_stat_delay", "task_comm"), ("sched_stat_delay", "task_pid"),
    ("sched_stat_delay", "delay"),
    ("kvm_entry", "vcpu"), ("kvm_entry", "rip"),
    ("kvm_exit", "vcpu"), ("kvm_exit", "reason"), ("kvm_exit", "rip"), ("kvm_exit", "info1"),
    ("kvm_exit", "info2"), ("kvm_exit", "intr_info"), ("kvm_exit", "error_code"),
    ("kvm_vcpu_wakeup", "ns"), ("kvm_vcpu_wakeup", "waited"), ("kvm_vcpu_wakeup", "valid"),
    ("irq_handler_entry", "irq"), ("irq_handler_entry", "name"),
    ("irq_handler_exit", "irq"), ("irq_handler_exit", "ret"),
    ("softirq", "vec"), ("softirq", "action"),
    ("block_rq", "dev_major"), ("block_rq", "dev_minor"), ("block_rq", "rwbs"),
    ("block_rq", "bytes"), ("block_rq", "sector"), ("block_rq", "nr_sector"),
    ("block_rq", "error"), ("block_rq", "rq_comm"),
    ("text", "text_off"), ("text", "text_len"),
    ("funcgraph", "depth"), ("funcgraph", "func"), ("funcgraph", "duration_ns"),
    ("stack_frame", "func"), ("stack_frame", "addr"),
)

cdef int32_t OFF[NOFFS]

cdef enum:
    C_TS = 0
    C_LINE = 8
    C_CPU = 16
    C_PID = 20
    C_TGID = 24
    C_COMM = 28
    C_FLAGS = 32

def _init_offsets():
    cdef int i
    if len(_OFFSET_NAMES) != NOFFS:
        raise ImportError("offset table size mismatch")
    for i, (layout, name) in enumerate(_OFFSET_NAMES):
        cols = {c[0]: c[2] for c in _ev.layout_columns(layout)}
        OFF[i] = cols[name]
    cols = {c[0]: c[2] for c in _ev.layout_columns("generic")}
    if (cols["ts"], cols["line"], cols["cpu"], cols["pid"], cols["tgid"], cols["comm"],
            cols["flags"]) != (C_TS, C_LINE, C_CPU, C_PID, C_TGID, C_COMM, C_FLAGS):
        raise ImportError("common column layout mismatch")

_init_offsets()

# task-state letters -> bits (events.STATE_BITS), indexed by byte
cdef int32_t STATE_OF[256]
cdef int32_t ST_PREEMPTED = _ev.STATE_PREEMPTED
cdef int32_t ST_NUMERIC = _ev.STATE_NUMERIC
cdef int32_t ST_UNKNOWN = _ev.STATE_UNKNOWN_LETTER

def _init_states():
    cdef int i
    for i in range(256):
        STATE_OF[i] = -1
    for ch, bit in _ev.STATE_BITS.items():
        STATE_OF[ord(ch)] = bit
    STATE_OF[ord("R")] = 0

_init_states()

# columns that hold ids or arena offsets, which Parser.absorb() rebases: per layout, the byte
# offsets of its comm-id columns (the common `comm` first), sym-id columns and text offsets
cdef enum:
    MAX_FIX = 8
cdef int32_t FIX_COMM[NLAYOUTS][MAX_FIX]
cdef int32_t FIX_SYM[NLAYOUTS][MAX_FIX]
cdef int32_t FIX_TEXT[NLAYOUTS][MAX_FIX]
cdef int32_t NFIX_COMM[NLAYOUTS]
cdef int32_t NFIX_SYM[NLAYOUTS]
cdef int32_t NFIX_TEXT[NLAYOUTS]

def _init_fixups():
    cdef int i
    if len(_ev.LAYOUTS) != NLAYOUTS:
        raise ImportError("layout table size mismatch")
    for i, name in enumerate(_ev.LAYOUTS):
        kinds = _ev.field_kinds(name)
        offs = {c[0]: c[2] for c in _ev.layout_columns(name)}
        comm = [offs["comm"]] + [offs[f] for f, k in kinds.items() if k == "comm"]
        sym = [offs[f] for f, k in kinds.items() if k == "sym"]
        text = [offs[f + "_off"] for f, k in kinds.items() if k == "text"]
        if max(len(comm), len(sym), len(text)) > MAX_FIX:
            raise ImportError("too many id columns in layout " + name)
        NFIX_COMM[i], NFIX_SYM[i], NFIX_TEXT[i] = len(comm), len(sym), len(text)
        for j, o in enumerate(comm):
            FIX_COMM[i][j] = o
        for j, o in enumerate(sym):
            FIX_SYM[i][j] = o
        for j, o in enumerate(text):
            FIX_TEXT[i][j] = o

_init_fixups()

# ---------------------------------------------------------------------------------------------
# small helpers

cdef inline int g_reserve(Grow *g, size_t extra) noexcept nogil:
    """Make room for `extra` more bytes; -1 when memory runs out.  Growth doubles, so the
    amortised cost is linear; glibc moves large blocks with mremap, without a copy.  The
    first block is small: an input may hold 10**5 event names seen once each."""
    cdef size_t need = g.size + extra
    cdef size_t ncap
    cdef char *nd
    if need <= g.cap:
        return 0
    if need < g.size:
        return -1
    ncap = g.cap * 2 if g.cap else 128
    while ncap < need:
        if ncap > (<size_t>-1) // 4:
            return -1
        ncap *= 2
    nd = <char*>realloc(g.data, ncap)
    if nd == NULL:
        return -1
    g.data = nd
    g.cap = ncap
    return 0

cdef inline void g_free(Grow *g) noexcept nogil:
    free(g.data)
    g.data = NULL
    g.size = 0
    g.cap = 0

cdef inline bint is_ws(char c) noexcept nogil:
    return c == c' ' or c == c'\t'

cdef inline bint is_digit(char c) noexcept nogil:
    return c'0' <= c <= c'9'

cdef inline int hexval(char c) noexcept nogil:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1

cdef inline const char *skip_ws(const char *p, const char *e) noexcept nogil:
    while p < e and is_ws(p[0]):
        p += 1
    return p

cdef inline const char *tok_end(const char *p, const char *e) noexcept nogil:
    while p < e and not is_ws(p[0]):
        p += 1
    return p

cdef inline const char *rtrim(const char *p, const char *e) noexcept nogil:
    while e > p and is_ws(e[-1]):
        e -= 1
    return e

cdef inline bint eqn(const char *a, const char *b, size_t n) noexcept nogil:
    """a[:n] == b[:n] for the short keys of payloads (an inline loop beats a memcmp call)."""
    cdef size_t i
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True

cdef inline const char *find(const char *p, const char *e, const char *needle,
                             size_t nl) noexcept nogil:
    """First occurrence of needle in [p, e), or NULL."""
    cdef const char *q
    cdef char c0 = needle[0]
    while <size_t>(e - p) >= nl:
        q = <const char*>memchr(p, c0, <size_t>(e - p) - nl + 1)
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

cdef enum:
    I32_MIN = -2147483648
    I32_MAX = 2147483647

cdef inline bint fits_i32(int64_t v) noexcept nogil:
    return I32_MIN <= v <= I32_MAX

cdef inline bint fits_i8(int64_t v) noexcept nogil:
    return -128 <= v <= 127

cdef inline const char *parse_i64(const char *p, const char *e, int64_t *out) noexcept nogil:
    """Decimal integer with an optional sign; NULL when there is no digit or it overflows."""
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef const char *s
    if p < e and (p[0] == c'-' or p[0] == c'+'):
        neg = p[0] == c'-'
        p += 1
    s = p
    # 18 digits cannot overflow: check only past them
    while p < e and is_digit(p[0]) and p - s < 18:
        v = v * 10 + <uint64_t>(p[0] - c'0')
        p += 1
    while p < e and is_digit(p[0]):
        if v > 922337203685477580ULL:
            return NULL
        v = v * 10 + <uint64_t>(p[0] - c'0')
        p += 1
    if p == s or v > 9223372036854775807ULL:
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

# ---------------------------------------------------------------------------------------------
# intern tables

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

cdef enum:
    CACHE_SIZE = 1024
    # the parser reads up to this many bytes past a string it interns (see Parser.feed)
    PAD = 32

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

# ---------------------------------------------------------------------------------------------
# the parser state

cdef struct PState:
    # filters
    int has_t_start
    int has_t_end
    int64_t t_start
    int64_t t_end
    uint8_t *cpu_ok
    int64_t ncpu_ok
    uint8_t *pid_ok
    int64_t npid_ok
    int has_comm_filter
    int all_events
    int strict
    void *owner            # the Parser object, borrowed, for the comm-filter callback
    # tables
    Intern comms
    Intern syms
    Intern names
    EvType *types
    int32_t ntypes
    int32_t types_cap
    char *tmpl[NLAYOUTS]
    int32_t rec_size[NLAYOUTS]
    Grow comm_ok           # uint8 per comm id (comm filter verdicts)
    Grow text
    Grow lost
    Grow errs
    int64_t err_count[NCODES]
    # counters
    int64_t lines
    int64_t events
    int64_t headers
    int64_t filtered
    int64_t malformed
    int64_t offset         # byte offset of the current line in the (decompressed) input
    # the last event line, for stack frames that follow it
    int has_last
    int last_kept
    int64_t last_ts
    int32_t last_cpu
    int32_t last_pid
    int32_t last_tgid
    int32_t last_comm
    uint64_t last_flagw
    int64_t last_any_ts
    # function_graph: per CPU current task and function stack
    Grow fg_pid
    Grow fg_comm
    Grow fg_stack
    # clock
    int64_t n_ts[4]
    int64_t max_int_ts
    int oom
    int stop
    int final_piece
    int multifile          # trace-cmd multi-file report: lines carry a `file.dat: ` prefix
    # the machine of a multi-file report's lines: its file-name prefixes interned, and a run
    # (first line, prefix id) each time the prefix changes; a line without one keeps the last
    Intern machines
    Grow machine_runs
    int32_t cur_machine    # id + 1 of the last prefix (0: none yet)
    # what the input looked like (for `ftfast info`)
    int64_t n_tracecmd_hdr
    int64_t n_latency
    int64_t n_tgid
    int64_t n_flags
    int64_t n_noflags
    int64_t flags_width_max
    int64_t n_funcgraph
    int64_t n_dmesg
    int64_t n_prefixed
    # optional per-line classification (for `ftfast filter`): one LK_* byte per line
    int mark_lines
    Grow line_kinds
    # optional copy of the text of the header and kept event lines (for `ftfast filter`)
    int keep_text
    Grow kept_text
    # count events without keeping their records: each record (and payload text) is built
    # in the same place, so a payload is still checked and its tasks still filter the line
    int no_records
    # a later part of the input parsed on its own (in another thread): a line that reads state
    # the lines before the part would have left (the event a stack frame belongs to, the time
    # of a LOST marker, function_graph's per-CPU stacks) sets needs_before, and
    # Parser.absorb() then refuses the part, which is parsed again in sequence
    int later_part
    int needs_before
    # event-name ids fixed at start-up
    int32_t et_function
    int32_t et_kstack
    int32_t et_ustack
    int32_t et_frame
    int32_t et_fg_entry
    int32_t et_fg_exit
    int32_t et_block_complete
    # error being built
    int err_code
    const char *err_pos
    const char *err_what
    int32_t err_event
    # (the fields below came later: kept after the hot ones, whose layout they do not move)
    Grow fg_ts             # function_graph: per CPU, the time of its last line with one
    # lines longer than this many bytes (line end excluded) are malformed (E_LONG), unparsed
    int64_t max_line
    int truncated_last     # the input's last line had no newline and was malformed
    int64_t long_nbytes    # while recording a line skipped unread: its length (else -1)

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
    memcpy(rec, P.tmpl[t.layout], <size_t>t.rec_size)
    t.recs.size += <size_t>t.rec_size
    return rec

cdef inline void drop_record(PState *P, int32_t et) noexcept nogil:
    P.types[et].recs.size -= <size_t>P.types[et].rec_size

cdef inline void commit_record(PState *P, int32_t et) noexcept nogil:
    P.types[et].count += 1
    P.events += 1

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

# ---------------------------------------------------------------------------------------------
# payload parsers: each returns 0, or -1 after set_err().  `p` is the first payload byte,
# `e` the end of the line with trailing blanks removed.

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
    otherwise, and the tolerant parser then says why.  (The check lives in parse_i32, out of
    line: this one stays small enough to be inlined into the fast paths.)"""
    return value_end(parse_i32(p, e, out), e)

cdef inline int fast_comm_pid(PState *P, const char *v, const char *e, const char *next_key,
                              size_t nl, char *rec, int32_t o_comm, int32_t o_pid,
                              const char **after) noexcept nogil:
    """A comm value from v up to next_key (a comm may hold blanks), then the pid after that
    key; 1 matched (after = the byte past the pid), 0 not this shape, -1 out of memory."""
    cdef const char *k = find(v, e, next_key, nl)
    cdef const char *q
    cdef int64_t pid
    cdef int32_t c
    if k == NULL:
        return 0
    q = fast_int(k + nl, e, &pid)
    if q == NULL:
        return 0
    c = comm_id(P, v, <size_t>(k - v))
    if c < 0:
        return -1
    set_i32(rec, o_comm, c)
    set_i32(rec, o_pid, pid)
    after[0] = q
    return 1

cdef inline const char *fast_key_int(const char *q, const char *e, const char *key, char *rec,
                                     int32_t o) noexcept nogil:
    """`key` right at q, then an integer stored at offset o; the byte after it, or NULL."""
    cdef int64_t v
    q = starts(q, e, key)
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
                      OFF[O_SW_PREV_PID], &q)
    if k <= 0:
        return k
    q = fast_key_int(q, e, b" prev_prio=", rec, OFF[O_SW_PREV_PRIO])
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
    return fast_key_int(q, e, b" next_prio=", rec, OFF[O_SW_NEXT_PRIO]) != NULL

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
    q = fast_key_int(q, e, b" prio=", rec, OFF[O_WK_PRIO])
    if q == NULL:
        return 0
    r = starts(q, e, b" success=")
    if r != NULL:
        q = fast_int(r, e, &v)
        if q == NULL or unlikely(not fits_i8(v)):
            return 0
        set_i8(rec, OFF[O_WK_SUCCESS], v)
    return fast_key_int(q, e, b" target_cpu=", rec, OFF[O_WK_TARGET]) != NULL

cdef inline const char *fast_hex(const char *q, const char *e, const char *key, char *rec,
                                 int32_t o, bint signed64) noexcept nogil:
    cdef uint64_t u
    q = starts(q, e, key)
    if q == NULL:
        return NULL
    # the key ends in "0x": the digits follow, without another prefix
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
        return fast_hex(r - 2, e, b"0x", rec, OFF[O_KE_RIP], False) != NULL
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
    q = fast_hex(r, e, b" rip 0x", rec, OFF[O_KX_RIP], False)
    if q == NULL:
        return 0
    q = fast_hex(q, e, b" info1 0x", rec, OFF[O_KX_INFO1], False)
    if q == NULL:
        return 0
    q = fast_hex(q, e, b" info2 0x", rec, OFF[O_KX_INFO2], False)
    if q == NULL:
        return 0
    q = fast_hex(q, e, b" intr_info 0x", rec, OFF[O_KX_INTR], True)
    if q == NULL:
        return 0
    q = fast_hex(q, e, b" error_code 0x", rec, OFF[O_KX_ERR], True)
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
        if kv_i32(P, &q, e, b" prev_pid=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_SW_PREV_PID], v)
        if kv_i32(P, &q, e, b" prev_prio=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_SW_PREV_PRIO], v)
        q = kv(q, e, b" prev_state=")
        if q == NULL or parse_state(q, e, &st) == NULL:
            set_err(P, E_FIELD, q if q != NULL else p, b"prev_state=")
            return -1
        set_i32(rec, OFF[O_SW_PREV_STATE], st)
        if kv_comm(P, q, e, b" next_comm=", b" next_pid=", rec, OFF[O_SW_NEXT_COMM], &q) < 0:
            return -1
        if kv_i32(P, &q, e, b" next_pid=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_SW_NEXT_PID], v)
        if kv_i32(P, &q, e, b" next_prio=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_SW_NEXT_PRIO], v)
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
    cdef int r
    if starts(p, e, b"comm=") != NULL:
        if kv_comm(P, p, e, b" comm=", b" pid=", rec, OFF[O_WK_COMM], &q) < 0:
            return -1
        if kv_i32(P, &q, e, b" pid=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_WK_PID], v)
        if kv_i32(P, &q, e, b" prio=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_WK_PRIO], v)
        r = kv_i8(P, &q, e, b" success=", &v, False)
        if r < 0:
            return -1
        if r:
            set_i8(rec, OFF[O_WK_SUCCESS], v)
        r = kv_i32(P, &q, e, b" target_cpu=", &v, False)
        if r < 0:
            return -1
        if r:
            set_i32(rec, OFF[O_WK_TARGET], v)
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
    r = kv_i8(P, &q, e, b" success=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i8(rec, OFF[O_WK_SUCCESS], v)
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
    cdef int64_t v
    if kv_comm(P, p, e, b" comm=", b" pid=", rec, o_comm, after) < 0:
        return -1
    if kv_i32(P, after, e, b" pid=", &v, True) < 0:
        return -1
    set_i32(rec, o_pid, v)
    return 0

cdef int pl_migrate(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    cdef int r
    if pl_task_pid(P, rec, p, e, OFF[O_MG_COMM], OFF[O_MG_PID], &q) < 0:
        return -1
    r = kv_i32(P, &q, e, b" prio=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i32(rec, OFF[O_MG_PRIO], v)
    if kv_i32(P, &q, e, b" orig_cpu=", &v, True) < 0:
        return -1
    set_i32(rec, OFF[O_MG_ORIG], v)
    if kv_i32(P, &q, e, b" dest_cpu=", &v, True) < 0:
        return -1
    set_i32(rec, OFF[O_MG_DEST], v)
    return 0

cdef int pl_fork(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    if starts(p, e, b"parent_comm=") != NULL:
        # `trace-cmd report -R` prints the fields by their format names
        if kv_comm(P, p, e, b" parent_comm=", b" parent_pid=", rec, OFF[O_FK_COMM], &q) < 0:
            return -1
        if kv_i32(P, &q, e, b" parent_pid=", &v, True) < 0:
            return -1
        set_i32(rec, OFF[O_FK_PID], v)
    elif pl_task_pid(P, rec, p, e, OFF[O_FK_COMM], OFF[O_FK_PID], &q) < 0:
        return -1
    if kv_comm(P, q, e, b" child_comm=", b" child_pid=", rec, OFF[O_FK_CCOMM], &q) < 0:
        return -1
    if kv_i32(P, &q, e, b" child_pid=", &v, True) < 0:
        return -1
    set_i32(rec, OFF[O_FK_CPID], v)
    return 0

cdef int pl_proc_task(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    cdef int r
    if pl_task_pid(P, rec, p, e, OFF[O_PT_COMM], OFF[O_PT_PID], &q) < 0:
        return -1
    r = kv_i32(P, &q, e, b" prio=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i32(rec, OFF[O_PT_PRIO], v)
    return 0

cdef int pl_exec(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *v = kv(p, e, b" filename=")
    cdef const char *k
    cdef int64_t n
    cdef int32_t s
    cdef int r
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
    if kv_i32(P, &k, e, b" pid=", &n, True) < 0:
        return -1
    set_i32(rec, OFF[O_EX_PID], n)
    r = kv_i32(P, &k, e, b" old_pid=", &n, False)
    if r < 0:
        return -1
    if r:
        set_i32(rec, OFF[O_EX_OLDPID], n)
    return 0

cdef int pl_stat_runtime(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    cdef int r
    if pl_task_pid(P, rec, p, e, OFF[O_SR_COMM], OFF[O_SR_PID], &q) < 0:
        return -1
    if kv_int(P, &q, e, b" runtime=", &v, True) < 0:
        return -1
    set_i64(rec, OFF[O_SR_RUNTIME], v)
    r = kv_int(P, &q, e, b" vruntime=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i64(rec, OFF[O_SR_VRUNTIME], v)
    return 0

cdef int pl_stat_delay(PState *P, char *rec, const char *p, const char *e) noexcept nogil:
    cdef const char *q
    cdef int64_t v
    if pl_task_pid(P, rec, p, e, OFF[O_SD_COMM], OFF[O_SD_PID], &q) < 0:
        return -1
    if kv_int(P, &q, e, b" delay=", &v, True) < 0:
        return -1
    set_i64(rec, OFF[O_SD_DELAY], v)
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
    cdef int r
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
    if kv_int(P, &p, e, b" ns=", &v, True) < 0:
        return -1
    set_i64(rec, OFF[O_KW_NS], v)
    r = kv_i8(P, &p, e, b" waited=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i8(rec, OFF[O_KW_WAITED], v)
    r = kv_i8(P, &p, e, b" valid=", &v, False)
    if r < 0:
        return -1
    if r:
        set_i8(rec, OFF[O_KW_VALID], v)
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
    cdef int64_t i
    cdef int32_t s
    if kv_i32(P, &p, e, b" vec=", &i, True) < 0:
        return -1
    set_i32(rec, OFF[O_SI_VEC], i)
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
    cdef int r
    if kv(p, e, b" dev=") != NULL and kv(p, e, b" sector=") != NULL:
        vs = kv(p, e, b" dev=")
        if kv_int(P, &p, e, b" dev=", <int64_t*>&dev, True) < 0:
            return -1
        if (dev >> 20) > <uint64_t>I32_MAX:
            set_err(P, E_RANGE, vs, b"dev=")
            return -1
        set_i32(rec, OFF[O_BK_MAJOR], <int64_t>(dev >> 20))
        set_i32(rec, OFF[O_BK_MINOR], <int64_t>(dev & 0xfffff))
        if kv_int(P, &p, e, b" sector=", &v, True) < 0:
            return -1
        set_i64(rec, OFF[O_BK_SECTOR], v)
        # a bad value of these optional keys is ignored; one out of range is not
        r = kv_i32(P, &p, e, b" nr_sector=", &v, False)
        if r > 0:
            set_i32(rec, OFF[O_BK_NR], v)
        elif r < 0 and P.err_code == E_RANGE:
            return -1
        if kv_int(P, &p, e, b" bytes=", &v, False) > 0:
            set_i64(rec, OFF[O_BK_BYTES], v)
        r = kv_i32(P, &p, e, b" error=", &v, False)
        if r > 0:
            set_i32(rec, OFF[O_BK_ERROR], v)
        elif r < 0 and P.err_code == E_RANGE:
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

cdef const char *fg_duration(const char *p, const char *e, int64_t *dur) noexcept nogil:
    """The function_graph duration column up to and including its '|':
    `[marker] 12.345 us |` or blanks then `|`.  Returns the byte after '|', or NULL."""
    cdef int64_t ip = 0, frac = 0
    cdef int nd = 0
    dur[0] = -1
    p = skip_ws(p, e)
    if p < e and (p[0] == c'+' or p[0] == c'!' or p[0] == c'#' or p[0] == c'*'
                  or p[0] == c'@' or p[0] == c'$'):
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
    A stack is allocated on its CPU's first line: a line naming CPU 1048576 costs 16 bytes per
    CPU below it, not the 512 MB of every CPU's stack."""
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
    cdef int64_t d, dur
    cdef int32_t s
    cdef bint is_exit
    cdef int r
    v = kv(p, e, b" func=")
    if v != NULL:
        ve = tok_end(v, e)
        s = sym_id(P, v, <size_t>(ve - v))
        if s < 0:
            return -1
        set_i32(rec, OFF[O_FG_FUNC], s)
        r = kv_i32(P, &p, e, b" depth=", &d, False)
        if r > 0:
            set_i32(rec, OFF[O_FG_DEPTH], d)
        elif r < 0 and P.err_code == E_RANGE:
            return -1
        return 0
    v = fg_duration(p, e, &dur)
    if v == NULL:
        set_err(P, E_FUNCGRAPH, p, b"duration |")
        return -1
    return fg_body(P, rec, v, e, cpu, dur, &is_exit, 2)

# ---------------------------------------------------------------------------------------------
# line prefix

cdef const char *parse_secs(const char *p, const char *e, int64_t *ts) noexcept nogil:
    """`SSS.FFFFFF` (1 to 9 decimals) into ns, exactly; NULL if it is not one."""
    cdef uint64_t sec = 0, frac = 0
    cdef int nd = 0
    cdef const char *s = p
    while p < e and is_digit(p[0]):
        sec = sec * 10 + <uint64_t>(p[0] - c'0')
        p += 1
        if sec > 9223372035ULL:
            return NULL
    if p == s or p >= e or p[0] != c'.':
        return NULL
    p += 1
    while p < e and is_digit(p[0]):
        if nd == 9:
            return NULL
        frac = frac * 10 + <uint64_t>(p[0] - c'0')
        nd += 1
        p += 1
    if nd == 0:
        return NULL
    while nd < 9:
        frac *= 10
        nd += 1
    ts[0] = <int64_t>(sec * 1000000000ULL + frac)
    return p

cdef inline const char *parse_ts(PState *P, const char *p, const char *e, int64_t *ts,
                                 int *kind) noexcept nogil:
    """`SSS.FFFFFF` (1-9 decimals, exact), an integer clock `NNNN`, or the latency format's
    `NNNus` (with its optional delay mark), then optional blanks and ':'.  Returns the byte
    after ':' or NULL (with P.err_code set)."""
    cdef uint64_t sec = 0, frac = 0
    cdef int nd = 0
    cdef const char *s = p
    while p < e and is_digit(p[0]):
        if sec > 1844674407370955160ULL:
            set_err(P, E_TS_RANGE, s, b"timestamp")
            return NULL
        sec = sec * 10 + <uint64_t>(p[0] - c'0')
        p += 1
    if p == s:
        set_err(P, E_TIMESTAMP, s, b"timestamp")
        return NULL
    if p < e and p[0] == c'.':
        p += 1
        while p < e and is_digit(p[0]):
            if nd == 9:
                set_err(P, E_TIMESTAMP, s, b"at most 9 decimals")
                return NULL
            frac = frac * 10 + <uint64_t>(p[0] - c'0')
            nd += 1
            p += 1
        if nd == 0:
            set_err(P, E_TIMESTAMP, s, b"timestamp")
            return NULL
        while nd < 9:
            frac *= 10
            nd += 1
        if sec > 9223372035ULL:
            set_err(P, E_TS_RANGE, s, b"timestamp")
            return NULL
        ts[0] = <int64_t>(sec * 1000000000ULL + frac)
        kind[0] = TS_DECIMAL
    elif e - p >= 2 and p[0] == c'u' and p[1] == c's':
        p += 2
        if p < e and (p[0] == c'!' or p[0] == c'+' or p[0] == c'#' or p[0] == c'*'
                      or p[0] == c'@' or p[0] == c'$'):
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

cdef struct Prefix:
    const char *comm
    size_t comm_len
    int64_t pid
    int64_t tgid
    int64_t cpu
    const char *flags
    size_t flags_len
    int64_t ts
    int ts_kind
    const char *rest      # after the timestamp's ':'
    uint64_t flagw        # the flags as one little-endian word, zero-padded
    bint latency
    bint has_tgid

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
        d = <const char*>memchr(q, c'-', <size_t>(e - q)) if q < e else NULL
        if d == NULL or d == p:
            if d == p and d != NULL:
                q = d + 1
                continue
            set_err(P, E_PREFIX, p, b"'comm-pid [cpu]'")
            return -1
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

# ---------------------------------------------------------------------------------------------
# line kinds

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
    n1 = n0
    while n1 < e and n1[0] != c':' and not is_ws(n1[0]) and n1[0] != c'(':
        n1 += 1
    pl = NULL
    et = -1
    if n1 < e and n1[0] == c':' and n1 > n0 and (n1 + 1 == e or is_ws(n1[1])):
        et = event_type(P, n0, <size_t>(n1 - n0))
        pl = skip_ws(n1 + 1, e)
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
    # optional absolute time `7238523.638008 |` (funcgraph-abstime)
    t = q
    while t < e and is_digit(t[0]):
        t += 1
    if t > q and t < e and t[0] == c'.':
        d = parse_secs(q, e, &ts)
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
    if bar != NULL and not (is_digit(q[0]) or q[0] == c'+' or q[0] == c'!' or q[0] == c'#' or q[0] == c'*'
            or q[0] == c'@' or q[0] == c'$' or q[0] == c'|'):
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

cdef enum:
    LK_EVENT = 0
    LK_HEADER = 1
    LK_FILTERED = 2
    LK_MALFORMED = 3

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

# ---------------------------------------------------------------------------------------------
# Python side

cdef class OwnedBuffer:
    """Memory malloc'ed by the parser, handed to NumPy without a copy and freed with it."""
    cdef char *data
    cdef Py_ssize_t size

    def __dealloc__(self):
        free(self.data)
        self.data = NULL

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.size, 1, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

cdef object take_grow(Grow *g, object dtype=np.uint8):
    """A NumPy array of dtype (uint8 by default) owning the bytes of g (shrunk to fit); g is
    left empty."""
    cdef OwnedBuffer b = OwnedBuffer.__new__(OwnedBuffer)
    cdef char *d
    if g.size == 0:
        g_free(g)
        return np.zeros(0, dtype)
    d = <char*>realloc(g.data, g.size)
    b.data = d if d != NULL else g.data
    b.size = <Py_ssize_t>g.size
    g.data = NULL
    g.size = 0
    g.cap = 0
    return np.frombuffer(b, dtype)


_TEMPLATES = []

def _templates():
    """The empty record of each layout (absent values -1), built once: a load may make
    several parsers, one per part of its input."""
    if not _TEMPLATES:
        for name in _ev.LAYOUTS:
            tmpl = np.zeros(1, _ev.dtype_for(name))
            for col, kind in _ev.field_kinds(name).items():
                if kind in ("i1", "i4", "i8", "comm", "sym", "state"):
                    tmpl[col] = -1
            _TEMPLATES.append(tmpl.tobytes())
    return _TEMPLATES


cdef class Parser:
    """Streaming parser: feed() it line-aligned blocks, then finish() for the columns."""
    cdef PState *P
    cdef object comm_regex
    cdef dict _verdicts
    cdef list _kept_pieces  # kept text taken over from absorbed parts, in input order
    cdef object _callback_error  # an exception the comm regex raised, re-raised by feed()

    def __cinit__(self):
        self.P = <PState*>calloc(1, sizeof(PState))
        if self.P == NULL:
            raise MemoryError()

    def __init__(self, events=None, cpus=None, pids=None, comm=None, start=None, end=None,
                 strict=False, mark_lines=False, keep_text=False, records=True,
                 later_part=False, comm_verdicts=None, max_line=DEFAULT_MAX_LINE):
        """keep_text: keep a copy of the header and kept event lines, line ends included
        (finish()'s "kept_text": uint8 arrays in input order, one per merged part, whose
        concatenation is the text), e.g. to write a filtered copy of the input.
        records=False: count the events, keep no records (finish()'s "events" is empty).
        later_part: this parser reads a part of the input that does not start at its
        beginning, to be merged into the parser of the part before it with absorb().
        comm_verdicts: a dict (comm -> bool) shared by the parsers of one input, so the comm
        regex runs once per distinct comm across them.
        max_line: a line longer than this many bytes (its line end excluded) is malformed
        (``line_too_long``) and not parsed."""
        cdef PState *P = self.P
        cdef int i
        cdef bint is_new
        cdef bytes b
        P.owner = <void*>self
        max_line = int(max_line)
        if max_line < 1:
            raise ValueError("max_line must be at least 1 byte")
        P.max_line = min(max_line, (1 << 62))
        P.long_nbytes = -1
        if intern_init(&P.comms) < 0 or intern_init(&P.syms) < 0 or intern_init(&P.names) < 0:
            raise MemoryError()
        P.strict = 1 if strict else 0
        P.mark_lines = 1 if mark_lines else 0
        P.later_part = 1 if later_part else 0
        P.keep_text = 1 if keep_text else 0
        self._kept_pieces = []
        P.no_records = 0 if records else 1
        self._verdicts = comm_verdicts if comm_verdicts is not None else {}
        P.all_events = 1 if events is None else 0
        for i, b in enumerate(_templates()):
            P.rec_size[i] = len(b)
            P.tmpl[i] = <char*>malloc(len(b))
            if P.tmpl[i] == NULL:
                raise MemoryError()
            memcpy(P.tmpl[i], <char*>b, len(b))
        # known events first, so their ids are fixed
        for name, layout in _ev.EVENT_LAYOUT.items():
            self._add_type(name, _ev.LAYOUT_IDS[layout])
        for name in ("function", "kernel_stack", "user_stack"):
            self._add_type(name, L_GENERIC)
        P.et_function = self._type_id("function")
        P.et_kstack = self._type_id("kernel_stack")
        P.et_ustack = self._type_id("user_stack")
        P.et_frame = self._type_id("stack_frame")
        P.et_fg_entry = self._type_id("funcgraph_entry")
        P.et_fg_exit = self._type_id("funcgraph_exit")
        P.et_block_complete = self._type_id("block_rq_complete")
        if events is not None:
            for name in events:
                nb = (name.encode() if isinstance(name, str) else bytes(name)) + bytes(PAD)
                i = event_type(P, nb, len(nb) - PAD)
                P.types[i].wanted = 1
        if cpus is not None:
            cpus = [int(c) for c in cpus]
            if any(c < 0 or c > MAX_CPU for c in cpus):
                raise ValueError("cpu numbers must be in [0, %d]" % MAX_CPU)
            P.ncpu_ok = (max(cpus) + 1) if cpus else 0
            P.cpu_ok = <uint8_t*>calloc(P.ncpu_ok + 1, 1)
            if P.cpu_ok == NULL:
                raise MemoryError("out of memory for the CPU filter table")
            for c in cpus:
                P.cpu_ok[c] = 1
        if pids is not None:
            pids = [int(x) for x in pids]
            if any(x < 0 or x > (1 << 30) for x in pids):
                raise ValueError("pids must be in [0, 2**30]")
            P.npid_ok = (max(pids) + 1) if pids else 0
            P.pid_ok = <uint8_t*>calloc(P.npid_ok + 1, 1)
            if P.pid_ok == NULL:
                raise MemoryError("out of memory for the pid filter table")
            for x in pids:
                P.pid_ok[x] = 1
        if comm is not None:
            self.comm_regex = comm
            P.has_comm_filter = 1
        # a bound every time stamp meets (they are never negative) is no bound: `--start 0`
        # must keep the lines whose time is only known from their context
        if start is not None and start > 0:
            P.has_t_start = 1
            P.t_start = start
        if end is not None and end < 9223372036854775807:
            P.has_t_end = 1
            P.t_end = end

    cdef int _add_type(self, str name, int layout) except -1:
        cdef bytes nb = name.encode() + bytes(PAD)
        cdef int32_t i = event_type(self.P, nb, len(nb) - PAD)
        if i < 0:
            raise MemoryError()
        self.P.types[i].layout = layout
        self.P.types[i].rec_size = self.P.rec_size[layout]
        return i

    cdef int32_t _type_id(self, str name):
        cdef bytes nb = name.encode() + bytes(PAD)
        return event_type(self.P, nb, len(nb) - PAD)

    cdef uint8_t _comm_matches(self, int32_t id_):
        cdef int64_t *offs = <int64_t*>self.P.comms.offs.data
        cdef int32_t *lens = <int32_t*>self.P.comms.lens.data
        s = self.P.comms.chars.data[offs[id_]:offs[id_] + lens[id_]].decode("utf-8", "backslashreplace")
        v = self._verdicts.get(s)
        if v is None:
            try:
                v = self.comm_regex.search(s) is not None
            except BaseException as exc:
                # raised again by feed() once out of the nogil loop, which stops at this line
                if self._callback_error is None:
                    self._callback_error = exc
                self.P.stop = 1
                return 0
            self._verdicts[s] = v
        return 1 if v else 0

    def __dealloc__(self):
        cdef int i
        cdef PState *P = self.P
        if P == NULL:
            return
        for i in range(P.ntypes):
            g_free(&P.types[i].recs)
        free(P.types)
        for i in range(NLAYOUTS):
            free(P.tmpl[i])
        intern_free(&P.comms)
        intern_free(&P.syms)
        intern_free(&P.names)
        intern_free(&P.machines)
        g_free(&P.machine_runs)
        g_free(&P.comm_ok)
        g_free(&P.text)
        g_free(&P.lost)
        g_free(&P.errs)
        g_free(&P.fg_pid)
        g_free(&P.fg_comm)
        g_free(&P.fg_ts)
        for i in range(<int>(P.fg_stack.size // sizeof(int32_t*))):
            free((<int32_t**>P.fg_stack.data)[i])
        g_free(&P.fg_stack)
        g_free(&P.line_kinds)
        g_free(&P.kept_text)
        free(P.cpu_ok)
        free(P.pid_ok)
        free(P)
        self.P = NULL

    def feed(self, const unsigned char[::1] buf, Py_ssize_t n, bint final=False):
        """Parse buf[:n], which must end at a line end unless final (the input's last piece).
        Returns False when parsing stopped early (strict mode hit an error).  The buffer
        should have PAD (32) spare bytes past n, or it is copied into one that has."""
        cdef PState *P = self.P
        if n < 0 or n > buf.shape[0]:
            raise ValueError("n out of range")
        if n == 0:
            return not P.stop
        if buf.shape[0] < n + PAD:
            # the tokenizer may read up to PAD bytes past a line (word loads of short strings)
            padded = bytearray(n + PAD)
            padded[:n] = buf[:n]
            buf = padded
        P.final_piece = 0
        with nogil:
            if final and buf[n - 1] != c'\n':
                # everything but the unterminated last line, then that line alone
                parse_last(P, <const char*>&buf[0], <size_t>n)
            else:
                parse_block(P, <const char*>&buf[0], <size_t>n)
        self._raise_pending()
        return not P.stop

    cdef int _raise_pending(self) except -1:
        exc = self._callback_error
        if exc is not None:
            self._callback_error = None
            raise exc
        if self.P.oom:
            raise MemoryError(f"out of memory while parsing (at line {self.P.lines})")
        return 0

    def long_line(self, const unsigned char[::1] head, int64_t nbytes, bint final=False):
        """Count a line of nbytes (over max_line; final: the input's last, unterminated) whose
        first bytes are head (at least 200, or the whole line) as malformed, unparsed: the
        reader skipped the rest of it without holding it.  Returns False as feed() does."""
        cdef PState *P = self.P
        cdef bytes padded
        if nbytes <= P.max_line:
            raise ValueError("long_line: the line is not over max_line")
        padded = bytes(head[:200]) + bytes(PAD)
        P.lines += 1
        P.final_piece = 1 if final else 0
        skip_long_line(P, <const char*>padded, nbytes)
        P.final_piece = 0
        P.offset += nbytes + (0 if final else 1)
        self._raise_pending()
        return not P.stop

    def absorb(self, Parser other):
        """Merge into this parser what `other` (made with later_part=True and the same
        filters) parsed from the text right after this one's, as if this parser had read it
        too: line numbers, byte offsets, comm / symbol / event-name ids and text offsets are
        rebased, and the tables keep the order of first appearance.  `other` is emptied.

        Returns False, changing nothing, when the result could differ from one parser reading
        both parts: a line of `other` needed state from before its part (see needs_before),
        either part has file-name prefixes (trace-cmd's multi-file mode: the machine runs
        follow the lines in order), or this parser has stopped (strict mode)."""
        cdef PState *P = self.P
        cdef PState *Q = other.P
        cdef int32_t *lut_comm = NULL
        cdef int32_t *lut_sym = NULL
        cdef int32_t *lut_type = NULL
        cdef char *name = NULL
        cdef int32_t j, i
        cdef int rc = 0
        cdef int64_t *offs
        cdef int32_t *lens
        cdef bint is_new
        if (not Q.later_part or Q.needs_before or P.multifile or P.n_prefixed or Q.n_prefixed
                or P.stop or P.oom or Q.oom):
            return False
        if (P.strict != Q.strict or P.mark_lines != Q.mark_lines or P.keep_text != Q.keep_text
                or P.max_line != Q.max_line
                or P.no_records != Q.no_records
                or P.has_comm_filter != Q.has_comm_filter or P.all_events != Q.all_events):
            raise ValueError("absorb: the parsers were made with different options")
        if P.keep_text:
            # the kept text stays in pieces: a copy would only be written out again
            self._kept_pieces = self._take_kept() + other._take_kept()
        lut_comm = <int32_t*>malloc((Q.comms.count + 1) * sizeof(int32_t))
        lut_sym = <int32_t*>malloc((Q.syms.count + 1) * sizeof(int32_t))
        lut_type = <int32_t*>malloc((Q.ntypes + 1) * sizeof(int32_t))
        # event_type() reads PAD bytes past a name, as in a parse buffer
        name = <char*>calloc(Q.names.chars.size + PAD, 1)
        try:
            if lut_comm == NULL or lut_sym == NULL or lut_type == NULL or name == NULL:
                raise MemoryError()
            with nogil:
                # event names in Q's order of first appearance; a name new to P takes Q's
                # layout and wanted flag (both come from the same options)
                offs = <int64_t*>Q.names.offs.data
                lens = <int32_t*>Q.names.lens.data
                for j in range(Q.ntypes):
                    memcpy(name, Q.names.chars.data + offs[j], <size_t>lens[j])
                    memset(name + lens[j], 0, PAD)
                    i = event_type(P, name, <size_t>lens[j])
                    if i < 0:
                        rc = -1
                        break
                    lut_type[j] = i
                    P.types[i].layout = Q.types[j].layout
                    P.types[i].rec_size = Q.types[j].rec_size
                    P.types[i].wanted = Q.types[j].wanted
                if rc == 0:
                    rc = intern_lut(&P.comms, &Q.comms, lut_comm,
                                    &P.comm_ok if P.has_comm_filter else NULL, &Q.comm_ok)
                if rc == 0:
                    rc = intern_lut(&P.syms, &Q.syms, lut_sym, NULL, NULL)
                if rc == 0:
                    rc = absorb_records(P, Q, lut_type, lut_comm, lut_sym)
                if rc == 0:
                    rc = append_grow(&P.text, &Q.text)
                if rc == 0:
                    if Q.has_last:
                        P.has_last = 1
                        P.last_kept = Q.last_kept
                        P.last_ts = Q.last_ts
                        P.last_any_ts = Q.last_any_ts
                        P.last_cpu = Q.last_cpu
                        P.last_pid = Q.last_pid
                        P.last_tgid = Q.last_tgid
                        P.last_comm = lut_comm[Q.last_comm] if Q.last_comm >= 0 else Q.last_comm
                        P.last_flagw = Q.last_flagw
                    rc = absorb_tables(P, Q, lut_type)
            if rc < 0:
                P.oom = 1
                raise MemoryError("out of memory while merging parsed parts")
        finally:
            free(lut_comm)
            free(lut_sym)
            free(lut_type)
            free(name)
        return True

    def _take_kept(self):
        pieces = self._kept_pieces + [take_grow(&self.P.kept_text)]
        self._kept_pieces = []
        return [x for x in pieces if len(x)]

    @property
    def stopped(self):
        """Strict mode met a malformed line: the rest of the input is not to be parsed."""
        return bool(self.P.stop)

    @property
    def lines(self):
        return self.P.lines

    @property
    def offset(self):
        return self.P.offset

    def first_error(self):
        """The first error record (strict mode), as a dict, or None."""
        errs = self._errors()
        return errs[0] if errs else None

    def _errors(self):
        cdef PState *P = self.P
        cdef ErrRec *r
        cdef size_t i, n = P.errs.size // sizeof(ErrRec)
        names = None
        out = []
        for i in range(n):
            r = <ErrRec*>(P.errs.data + i * sizeof(ErrRec))
            if names is None:
                names = intern_strings(&P.names)
            out.append({
                "line": r.line, "offset": r.offset, "code": ERROR_CODES.get(r.code, "?"),
                "col": r.col,
                "what": r.what.decode() if r.what != NULL else "",
                "event": names[r.event] if r.event >= 0 else None,
                "cause": ERROR_CODES.get(r.cause) if r.cause else None,
                "nbytes": r.nbytes,
                "raw": r.excerpt[:r.excerpt_len],
                "text": r.excerpt[:r.excerpt_len].decode("utf-8", "backslashreplace"),
                "truncated_text": r.excerpt_len == sizeof(r.excerpt),
            })
        return out

    def finish(self):
        """Hand over everything parsed: a dict of NumPy arrays and Python lists.  The parser
        is empty afterwards."""
        cdef PState *P = self.P
        cdef int32_t i
        cdef EvType *t
        names = intern_strings(&P.names)
        layout_names = list(_ev.LAYOUTS)
        # one dtype object per layout, shared by its events (a structured dtype is ~1 KB, and
        # an input may name 10**5 events)
        dtypes = [None] * NLAYOUTS
        arrays = {}
        for i in range(P.ntypes):
            t = &P.types[i]
            if t.count == 0 or P.no_records:
                g_free(&t.recs)
                continue
            if dtypes[t.layout] is None:
                dtypes[t.layout] = _ev.dtype_for(layout_names[t.layout])
            arrays[names[i]] = take_grow(&t.recs, dtypes[t.layout])
        if P.no_records:
            g_free(&P.text)
        lost_dtype = np.dtype([("line", "i8"), ("ts", "i8"), ("count", "i8"), ("cpu", "i4"),
                               ("pad", "i4")])
        lost = take_grow(&P.lost).view(lost_dtype)
        clock_counts = {"decimal": P.n_ts[TS_DECIMAL], "integer": P.n_ts[TS_INTEGER],
                        "us": P.n_ts[TS_US]}
        return {
            "events": arrays,
            "comms": intern_strings(&P.comms),
            "symbols": intern_strings(&P.syms),
            "text": take_grow(&P.text),
            "lost": lost,
            "errors": self._errors(),
            "error_counts": {ERROR_CODES[c]: P.err_count[c] for c in range(1, NCODES)
                             if P.err_count[c]},
            "machines": intern_strings(&P.machines),
            "machine_runs": take_grow(&P.machine_runs).view(np.int64).reshape(-1, 2),
            "line_kinds": take_grow(&P.line_kinds) if P.mark_lines else None,
            "kept_text": self._take_kept() if P.keep_text else None,
            "lines": P.lines, "events_count": P.events, "headers": P.headers,
            "filtered": P.filtered, "malformed": P.malformed,
            "truncated_last_line": bool(P.truncated_last), "max_line": P.max_line,
            "clock_counts": clock_counts, "max_int_ts": P.max_int_ts,
            "event_layouts": {names[i]: layout_names[P.types[i].layout] for i in range(P.ntypes)},
            "format": {"tracecmd_headers": P.n_tracecmd_hdr, "latency_lines": P.n_latency,
                       "tgid_lines": P.n_tgid, "flags_lines": P.n_flags,
                       "noflags_lines": P.n_noflags, "flags_width": P.flags_width_max,
                       "funcgraph_lines": P.n_funcgraph, "dmesg_lines": P.n_dmesg,
                       "prefixed_lines": P.n_prefixed},
        }


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

cdef inline void remap_i32(char *rec, int32_t o, int32_t *lut) noexcept nogil:
    cdef int32_t *v = <int32_t*>(rec + o)
    if v[0] >= 0:
        v[0] = lut[v[0]]

cdef int append_grow(Grow *dst, Grow *src) noexcept nogil:
    """dst += src; src is emptied (its buffer taken over when dst is empty)."""
    if dst.size == 0:
        g_free(dst)
        dst[0] = src[0]
        src.data = NULL
        src.size = 0
        src.cap = 0
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
    P.multifile = Q.multifile
    P.stop = Q.stop
    return 0

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
