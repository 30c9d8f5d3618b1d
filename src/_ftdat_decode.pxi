# Included by _ftdat.pyx: the streaming decode of a CPU's pages straight into the final record
# arrays.  Three steps, each without the GIL:
#
#   1. RowWalker.feed (per CPU, chunk by chunk as it is decompressed): each row's raw time and
#      event type id (markers: KIND_LOST / KIND_DAMAGED), lost counts, rows per type id.
#   2. merge_place (once): the k-way merge by time in report's order gives every row its line;
#      ts, line and cpu are written at the row's final place in its event's array, and the
#      row's type id is replaced by that place.
#   3. Decoder.feed (per CPU, the chunks decompressed again): every record's fields decoded
#      through the ops lowered from the file's formats, written once at their place.

from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK)
from cython.view cimport array as cvarray

cdef enum:
    N_TYPE_COUNTS = 65536


cdef inline int grow_rows(Sink *s) noexcept nogil:
    """Double the capacity of a RowWalker's rows; 1 when out of memory."""
    cdef int64_t cap = s.cap * 2 if s.cap else 65536
    cdef uint64_t *ts = <uint64_t*>realloc(s.ts, cap * sizeof(uint64_t))
    if ts == NULL:
        return 1
    s.ts = ts
    cdef int32_t *kind = <int32_t*>realloc(s.kind, cap * sizeof(int32_t))
    if kind == NULL:
        return 1
    s.kind = kind
    s.cap = cap
    return 0


cdef inline void put_row(Sink *s, uint64_t ts, int64_t off, int32_t kind) noexcept nogil:
    """Mode SINK_ROWS: keep the time and type id (a marker's lost count aside)."""
    cdef int64_t *lost
    if s.failed:
        return
    if s.n >= s.cap and grow_rows(s):
        s.failed = 1
        return
    s.ts[s.n] = ts
    s.kind[s.n] = kind
    if kind == C_LOST or kind == C_DAMAGED:
        if s.nlost >= s.caplost:
            lost = <int64_t*>realloc(s.lost, (s.caplost * 2 + 64) * sizeof(int64_t))
            if lost == NULL:
                s.failed = 1
                return
            s.lost = lost
            s.caplost = s.caplost * 2 + 64
        s.lost[s.nlost] = off if kind == C_LOST else 0
        s.nlost += 1
    s.n += 1


# -- strings interned once, shared by the CPU threads ------------------------------------------

cdef struct Strings:
    PyThread_type_lock lock
    char **strs          # each string malloc'd on its own: pointers stay valid as the table grows
    int32_t *lens
    int64_t n, cap
    int32_t *slots       # open addressing: id, -1 free
    int64_t nslots


cdef inline uint64_t fnv(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef int32_t strings_add(Strings *t, const uint8_t *p, int32_t ln, const char **stored) noexcept nogil:
    """Id of bytes p[:ln] in t (added when new); the caller holds t.lock.  -1: out of memory."""
    cdef uint64_t h = fnv(p, ln)
    cdef int64_t mask = t.nslots - 1, slot = <int64_t>(h & <uint64_t>mask), i, k
    cdef int32_t id_
    cdef int32_t *ns
    cdef char *copy
    cdef char **strs
    cdef int32_t *lens
    while True:
        id_ = t.slots[slot]
        if id_ < 0:
            break
        if t.lens[id_] == ln and (ln == 0 or memcmp(t.strs[id_], p, ln) == 0):
            stored[0] = t.strs[id_]
            return id_
        slot = (slot + 1) & mask
    if t.n >= t.cap:
        strs = <char**>realloc(t.strs, (t.cap * 2 + 16) * sizeof(char*))
        if strs == NULL:
            return -1
        t.strs = strs
        lens = <int32_t*>realloc(t.lens, (t.cap * 2 + 16) * sizeof(int32_t))
        if lens == NULL:
            return -1
        t.lens = lens
        t.cap = t.cap * 2 + 16
    copy = <char*>malloc(ln + 1)
    if copy == NULL:
        return -1
    if ln:
        memcpy(copy, p, ln)
    copy[ln] = 0
    id_ = <int32_t>t.n
    t.strs[id_] = copy
    t.lens[id_] = ln
    t.n += 1
    t.slots[slot] = id_
    if t.n * 2 > t.nslots:
        ns = <int32_t*>malloc(t.nslots * 2 * sizeof(int32_t))
        if ns == NULL:
            return -1
        mask = t.nslots * 2 - 1
        for i in range(t.nslots * 2):
            ns[i] = -1
        for k in range(t.n):
            slot = <int64_t>(fnv(<const uint8_t*>t.strs[k], t.lens[k]) & <uint64_t>mask)
            while ns[slot] >= 0:
                slot = (slot + 1) & mask
            ns[slot] = <int32_t>k
        free(t.slots)
        t.slots = ns
        t.nslots *= 2
    stored[0] = copy
    return id_


cdef class StringTable:
    """Strings interned to ids by the decode threads (comms, symbols); seeded with a list."""
    cdef Strings t

    def __cinit__(self, names=()):
        self.t.lock = PyThread_allocate_lock()
        self.t.slots = <int32_t*>malloc(64 * sizeof(int32_t))
        if self.t.lock == NULL or self.t.slots == NULL:
            raise MemoryError()
        self.t.nslots = 64
        for i in range(64):
            self.t.slots[i] = -1
        cdef const char *stored
        cdef bytes b
        for s in names:
            b = s.encode("utf-8", "surrogateescape")
            if strings_add(&self.t, <const uint8_t*><char*>b, <int32_t>len(b), &stored) < 0:
                raise MemoryError()

    def __dealloc__(self):
        cdef int64_t i
        for i in range(self.t.n):
            free(self.t.strs[i])
        free(self.t.strs)
        free(self.t.lens)
        free(self.t.slots)
        if self.t.lock != NULL:
            PyThread_free_lock(self.t.lock)

    def __len__(self):
        return self.t.n

    def names(self):
        """The strings in id order (undecodable bytes replaced, as the NumPy path does)."""
        return [(<bytes>self.t.strs[i][:self.t.lens[i]]).decode("utf-8", "replace")
                for i in range(self.t.n)]


cdef struct Cache:
    # a thread's own view of a Strings table: most lookups never take the lock
    Strings *g
    uint64_t *h
    const char **p
    int32_t *ln
    int32_t *id
    int64_t cap, n


cdef int cache_init(Cache *c, Strings *g) noexcept nogil:
    cdef int64_t i
    c.g = g
    c.cap = 256
    c.n = 0
    c.h = <uint64_t*>malloc(c.cap * sizeof(uint64_t))
    c.p = <const char**>malloc(c.cap * sizeof(char*))
    c.ln = <int32_t*>malloc(c.cap * sizeof(int32_t))
    c.id = <int32_t*>malloc(c.cap * sizeof(int32_t))
    if c.h == NULL or c.p == NULL or c.ln == NULL or c.id == NULL:
        return 1
    for i in range(c.cap):
        c.id[i] = -1
    return 0


cdef void cache_free(Cache *c) noexcept nogil:
    free(c.h)
    free(c.p)
    free(c.ln)
    free(c.id)
    c.h = NULL
    c.p = NULL
    c.ln = NULL
    c.id = NULL


cdef int32_t cache_get(Cache *c, const uint8_t *p, int32_t ln) noexcept nogil:
    """Global id of bytes p[:ln]; -1 when out of memory."""
    cdef uint64_t h = fnv(p, ln)
    cdef int64_t mask = c.cap - 1, slot = <int64_t>(h & <uint64_t>mask), i, s2, ncap
    cdef int32_t gid
    cdef const char *stored = NULL
    cdef uint64_t *nh
    cdef const char **np_
    cdef int32_t *nln
    cdef int32_t *nid
    while c.id[slot] >= 0:
        if c.h[slot] == h and c.ln[slot] == ln and (ln == 0 or memcmp(c.p[slot], p, ln) == 0):
            return c.id[slot]
        slot = (slot + 1) & mask
    PyThread_acquire_lock(c.g.lock, WAIT_LOCK)
    gid = strings_add(c.g, p, ln, &stored)
    PyThread_release_lock(c.g.lock)
    if gid < 0:
        return -1
    c.h[slot] = h
    c.p[slot] = stored
    c.ln[slot] = ln
    c.id[slot] = gid
    c.n += 1
    if c.n * 2 > c.cap:
        ncap = c.cap * 2
        nh = <uint64_t*>malloc(ncap * sizeof(uint64_t))
        np_ = <const char**>malloc(ncap * sizeof(char*))
        nln = <int32_t*>malloc(ncap * sizeof(int32_t))
        nid = <int32_t*>malloc(ncap * sizeof(int32_t))
        if nh == NULL or np_ == NULL or nln == NULL or nid == NULL:
            free(nh)
            free(np_)
            free(nln)
            free(nid)
            return gid      # the cache stays as it was: still correct, only fuller
        for i in range(ncap):
            nid[i] = -1
        for i in range(c.cap):
            if c.id[i] >= 0:
                s2 = <int64_t>(c.h[i] & <uint64_t>(ncap - 1))
                while nid[s2] >= 0:
                    s2 = (s2 + 1) & (ncap - 1)
                nh[s2], np_[s2], nln[s2], nid[s2] = c.h[i], c.p[i], c.ln[i], c.id[i]
        cache_free(c)
        c.h, c.p, c.ln, c.id, c.cap = nh, np_, nln, nid, ncap
    return gid


# -- pass 1: rows of a CPU ------------------------------------------------------------------

cdef class RowWalker:
    """Pass 1 over one CPU's pages, fed chunk by chunk (whole pages): each row's raw time and
    type id, the lost count of each marker, rows per type id."""
    cdef Layout L
    cdef Sink s
    cdef int64_t *counts      # rows per type id < N_TYPE_COUNTS
    cdef int64_t big_ids      # rows of larger type ids
    cdef int64_t page_no      # pages walked so far
    cdef list bad_pages       # numbers of the damaged ones (the Decoder skips them unread)
    cdef bint done

    def __cinit__(self, int page_size, int ts_off, int commit_off, int commit_size, int data_off,
                  bint big, int type_off, int type_size, int min_payload):
        if data_off + 4 > page_size or commit_size not in (4, 8) or type_size not in (1, 2, 4):
            raise ValueError("bad page layout")
        self.L.page_size, self.L.ts_off, self.L.commit_off = page_size, ts_off, commit_off
        self.L.commit_size, self.L.data_off, self.L.big = commit_size, data_off, big
        self.L.type_off, self.L.type_size, self.L.min_payload = type_off, type_size, min_payload
        memset(&self.s, 0, sizeof(Sink))
        self.s.mode = SINK_ROWS
        self.counts = <int64_t*>calloc(N_TYPE_COUNTS, sizeof(int64_t))
        if self.counts == NULL:
            raise MemoryError()
        self.bad_pages = []

    def __dealloc__(self):
        free(self.s.ts)
        free(self.s.kind)
        free(self.s.lost)
        free(self.counts)

    def feed(self, const uint8_t[::1] data):
        """Walk the whole pages of data (len a multiple of the page size)."""
        cdef int64_t nbytes = data.shape[0], p = 0, start, k, damaged = self.s.damaged
        cdef int32_t kd
        if nbytes % self.L.page_size:
            raise ValueError("feed takes whole pages")
        if nbytes == 0:
            return
        cdef const uint8_t *buf = &data[0]
        with nogil:
            while p < nbytes and not self.s.failed:
                start = self.s.n
                if walk_page(buf + p, p, &self.L, &self.s):
                    with gil:
                        self.bad_pages.append(self.page_no)
                for k in range(start, self.s.n if not self.s.failed else start):
                    kd = self.s.kind[k]
                    if kd >= N_TYPE_COUNTS:
                        self.big_ids += 1
                    elif kd >= 0:
                        self.counts[kd] += 1
                p += self.L.page_size
                self.page_no += 1
        if self.s.failed:
            raise MemoryError()

    def partial_page(self):
        """The stream ended inside a page: its records cannot be trusted (one marker)."""
        put_row(&self.s, 0, 0, C_DAMAGED)
        self.s.damaged += 1
        if self.s.failed:
            raise MemoryError()

    def result(self):
        """(ts uint64, kind int32, lost int64 per marker, counts int64[65536], rows of larger
        type ids, damaged pages, their numbers as int64).  The arrays own the walker's
        memory: call once."""
        if self.done:
            raise ValueError("result() was taken")
        self.done = True
        ts = _owned(<char*>self.s.ts, self.s.n, 8, "Q")
        self.s.ts = NULL
        kind = _owned(<char*>self.s.kind, self.s.n, 4, "i")
        self.s.kind = NULL
        lost = _owned(<char*>self.s.lost, self.s.nlost, 8, "q")
        self.s.lost = NULL
        counts = _owned(<char*>self.counts, N_TYPE_COUNTS, 8, "q")
        self.counts = NULL
        return ts, kind, lost, counts, self.big_ids, self.s.damaged, \
            np.array(self.bad_pages, np.int64)


cdef object _owned(char *p, int64_t n, int item, str fmt):
    """A NumPy array over malloc'd memory, freed with it (an empty one frees p at once)."""
    cdef cvarray a
    if n <= 0 or p == NULL:
        free(p)
        return np.zeros(0, {"Q": np.uint64, "i": np.int32, "q": np.int64, "B": np.uint8}[fmt])
    p = <char*>realloc(p, n * item) or p     # give back what growth reserved
    a = cvarray(shape=(n,), itemsize=item, format=fmt, mode="c", allocate_buffer=False)
    a.data = p
    a.callback_free_data = free
    return np.asarray(a)


# -- step 2: the merge ----------------------------------------------------------------------

def merge_place(list ts_list, list kind_list, list lost_list, const int32_t[::1] cpu_ids,
                const uint8_t[::1] enabled, const int32_t[::1] out_of_type,
                const int64_t[:, ::1] outs, int64_t[::1] out_count,
                int32_t[::1] lost_cpu, int64_t[::1] lost_line, int64_t[::1] lost_count,
                int64_t[::1] lost_ts):
    """Merge the CPU streams by time in trace-cmd report's order (the smallest head, the first
    stream on a tie) and write each row's ts, line (1-based merged position) and cpu once,
    at its final place in its output (the row's other bytes zeroed); the row's kind is replaced by that place (-1: no
    output).  outs rows: (data address, itemsize, ts offset, line offset, cpu offset);
    out_of_type[type id] = output index or -1; enabled[k]: stream k's events are kept.
    Markers fill the lost_* arrays in line order.  Returns the markers written."""
    cdef Py_ssize_t k = len(ts_list), i, best, pos, nt = out_of_type.shape[0]
    cdef Py_ssize_t total = 0, nl = 0, nouts = outs.shape[0]
    cdef int64_t bts, place, o, line
    cdef int32_t kd
    cdef char *dst
    if len(kind_list) != k or len(lost_list) != k or cpu_ids.shape[0] != k or enabled.shape[0] != k:
        raise ValueError("one ts, kind, lost, cpu and flag per stream")
    if outs.shape[1] != 6 or out_count.shape[0] != nouts:
        raise ValueError("bad output table")
    for i in range(nt):
        if out_of_type[i] >= nouts:
            raise ValueError("bad output index")
    cdef int64_t **ts = <int64_t**>calloc(k + 1, sizeof(int64_t*))
    cdef int32_t **kind = <int32_t**>calloc(k + 1, sizeof(int32_t*))
    cdef int64_t **lost = <int64_t**>calloc(k + 1, sizeof(int64_t*))
    cdef int64_t *n = <int64_t*>calloc(k + 1, sizeof(int64_t))
    cdef int64_t *nlost = <int64_t*>calloc(k + 1, sizeof(int64_t))
    cdef int64_t *head = <int64_t*>calloc(k + 1, sizeof(int64_t))
    cdef int64_t *mark = <int64_t*>calloc(k + 1, sizeof(int64_t))
    cdef int64_t[::1] tv
    cdef int32_t[::1] kv
    cdef int64_t[::1] lv
    cdef int64_t nmark = lost_cpu.shape[0]
    try:
        if not (ts and kind and lost and n and nlost and head and mark):
            raise MemoryError()
        for i in range(k):
            tv = ts_list[i]
            kv = kind_list[i]
            lv = lost_list[i]
            if tv.shape[0] != kv.shape[0]:
                raise ValueError("ts and kind differ in length")
            n[i] = tv.shape[0]
            nlost[i] = lv.shape[0]
            ts[i] = &tv[0] if n[i] else NULL
            kind[i] = &kv[0] if n[i] else NULL
            lost[i] = &lv[0] if nlost[i] else NULL
            total += n[i]
        with nogil:
            for pos in range(total):
                best = -1
                bts = 0
                for i in range(k):
                    if head[i] < n[i] and (best < 0 or ts[i][head[i]] < bts):
                        best = i
                        bts = ts[i][head[i]]
                kd = kind[best][head[best]]
                if kd < 0:
                    if mark[best] < nlost[best] and nl < nmark:
                        lost_cpu[nl] = cpu_ids[best]
                        lost_line[nl] = pos + 1
                        lost_count[nl] = lost[best][mark[best]]
                        lost_ts[nl] = bts
                        nl += 1
                    mark[best] += 1
                    kind[best][head[best]] = -1
                elif enabled[best] and kd < nt and out_of_type[kd] >= 0 and \
                        out_count[out_of_type[kd]] < outs[out_of_type[kd], 5]:
                    o = out_of_type[kd]
                    place = out_count[o]
                    out_count[o] += 1
                    dst = <char*><Py_ssize_t>outs[o, 0] + place * outs[o, 1]
                    # outputs come from np.empty (no zeroed pages to fault in): the merge
                    # touches each row first
                    memset(dst, 0, outs[o, 1])
                    # rows of a packed dtype (itemsize 20) are not 8-byte aligned
                    line = pos + 1
                    memcpy(dst + outs[o, 2], &bts, 8)
                    memcpy(dst + outs[o, 3], &line, 8)
                    memcpy(dst + outs[o, 4], &cpu_ids[best], 4)
                    kind[best][head[best]] = <int32_t>place
                else:
                    kind[best][head[best]] = -1
                head[best] += 1
    finally:
        free(ts)
        free(kind)
        free(lost)
        free(n)
        free(nlost)
        free(head)
        free(mark)
    return nl


# -- step 3: fields of each record at its place ---------------------------------------------

# op codes of a decode plan (tracedat._ops lowers each event's format to them)
cdef enum:
    OP_INT = 1        # integer field -> (v >> shr) & mask (mask 0: none); absent: the const
    OP_CONST = 2      # the const
    OP_PIDCOMM = 3    # comm id of the pid field through the saved cmdlines
    OP_FLAGS = 4      # 8 flag characters of (flags, preempt count) through a 64 K table
    OP_STR_FIXED = 5  # char[size] -> string id (table 0: comms, 1: symbols)
    OP_STR_DYN = 6    # __data_loc / __rel_loc string -> string id
    OP_STATE = 7      # prev_state -> STATE_* bits through the print format's letters
    OP_SYMBOLIC = 8   # number -> symbol id through __print_symbolic tables
    MODE_DECODE = 1
    MODE_FALLBACK = 2
    NCOL = 14
    STATE_PREEMPTED_BIT = 0x10000
    STATE_NUMERIC_BIT = 0x20000

OPS = {"int": OP_INT, "const": OP_CONST, "pidcomm": OP_PIDCOMM, "flags": OP_FLAGS,
       "str_fixed": OP_STR_FIXED, "str_dyn": OP_STR_DYN, "state": OP_STATE,
       "symbolic": OP_SYMBOLIC}
MODES = {"decode": MODE_DECODE, "fallback": MODE_FALLBACK}
#: columns of an op row
OP_COLUMNS = ("code", "src_off", "src_size", "sign", "dst_off", "dst_size", "const", "shr",
              "mask", "table", "aux_off", "aux_size", "aux_sign", "extra")


cdef enum:
    FAST_SLOTS = 1024     # direct-mapped caches of a Decoder (fixed strings, states)


cdef struct FastStr:
    # the raw bytes of a char[<= 16] field (zero-padded) and their string id
    uint64_t k0, k1
    int32_t id


cdef struct FastState:
    int64_t op, v
    int32_t bits


cdef struct DecodeState:
    FastStr fast[2][FAST_SLOTS]
    FastState states[FAST_SLOTS]
    int big
    int64_t j, nplaces
    const int32_t *places
    int64_t ntypes
    const int32_t *type_of        # type id -> type entry, -1: none
    const int64_t *types          # (mode, output, first op, ops) per entry
    int64_t nentries
    const int64_t *ops            # NCOL per op
    int64_t nops
    const int64_t *extra          # state / symbolic tables
    int64_t nextra
    const uint8_t *blob           # names of the symbolic tables and the cmdlines
    int64_t nblob
    char **out_base
    const int64_t *out_item
    const int64_t *out_rows
    int64_t nouts
    const uint8_t *flag_text      # 65536 x 8
    const int64_t *pid_name       # (blob offset, length) per pid; length -1: not saved
    int64_t npid
    int32_t *pid_id               # this thread's comm id per pid, -1: not yet
    int32_t idle_id, unknown_id
    Cache caches[2]
    # fallback records: payload bytes, then (entry, place, offset, length) per record
    uint8_t *arena
    int64_t narena, caparena
    int64_t *fb
    int64_t nfb, capfb
    int failed, bad


cdef inline int64_t read_int(const uint8_t *rec, int32_t ln, int64_t off, int64_t size,
                             int64_t sign, int big, int64_t absent) noexcept nogil:
    cdef uint64_t u
    if off < 0 or size <= 0 or off + size > ln:
        return absent
    u = rd(rec + off, <int>size, big)
    if sign and size < 8 and (u >> (8 * size - 1)) & 1:
        u |= (~(<uint64_t>0)) << (8 * size)
    return <int64_t>u


cdef inline void store(char *dst, int64_t size, int64_t v) noexcept nogil:
    cdef int32_t v32
    if size == 8:
        memcpy(dst, &v, 8)
    elif size == 4:
        v32 = <int32_t>v
        memcpy(dst, &v32, 4)
    elif size == 1:
        (<int8_t*>dst)[0] = <int8_t>v


cdef int32_t string_id(DecodeState *d, int64_t table, const uint8_t *p, Py_ssize_t ln) noexcept nogil:
    cdef int32_t id_ = cache_get(&d.caches[table & 1], p, <int32_t>ln)
    if id_ < 0:
        d.failed = 1
    return id_


cdef int32_t pid_comm(DecodeState *d, int64_t pid) noexcept nogil:
    cdef int64_t o, ln
    if pid == 0:
        if d.idle_id < 0:
            d.idle_id = string_id(d, 0, <const uint8_t*>b"<idle>", 6)
        return d.idle_id
    if 0 < pid < d.npid and d.pid_name[2 * pid + 1] >= 0:
        if d.pid_id[pid] < 0:
            o, ln = d.pid_name[2 * pid], d.pid_name[2 * pid + 1]
            if o < 0 or o + ln > d.nblob:
                return -1
            d.pid_id[pid] = string_id(d, 0, d.blob + o, ln)
        return d.pid_id[pid]
    if d.unknown_id < 0:
        d.unknown_id = string_id(d, 0, <const uint8_t*>b"<...>", 5)
    return d.unknown_id


cdef int32_t decimal_id(DecodeState *d, int64_t v) noexcept nogil:
    """Symbol id of a number's decimal text (a value its table does not name)."""
    cdef uint8_t buf[24]
    cdef int i = 24
    cdef uint64_t u = <uint64_t>(-v) if v < 0 else <uint64_t>v
    while True:
        i -= 1
        buf[i] = <uint8_t>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        buf[i] = 45
    return string_id(d, 1, buf + i, 24 - i)


cdef int32_t symbolic(DecodeState *d, const int64_t *op, const uint8_t *rec, int32_t ln) noexcept nogil:
    # extra[x]: ntab, keymask, then per table: nkeys, (key, name offset, name length) sorted
    cdef int64_t x = op[13], ntab, which = 0, t, nk, lo, hi, mid, key, o, nl
    cdef int64_t v = read_int(rec, ln, op[1], op[2], op[3], d.big, op[6])
    if x < 0 or x + 2 > d.nextra:
        return -1
    ntab = d.extra[x]
    if op[11] > 0 and ntab > 1:
        which = 0 if read_int(rec, ln, op[10], op[11], op[12], d.big, 0) == 1 else 1
    key = v & d.extra[x + 1] if d.extra[x + 1] else v
    x += 2
    for t in range(ntab):
        if x >= d.nextra:
            return -1
        nk = d.extra[x]
        if nk < 0 or x + 1 + 3 * nk > d.nextra:
            return -1
        if t == which:
            lo, hi = 0, nk
            while lo < hi:
                mid = (lo + hi) // 2
                if d.extra[x + 1 + 3 * mid] < key:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < nk and d.extra[x + 1 + 3 * lo] == key:
                o, nl = d.extra[x + 2 + 3 * lo], d.extra[x + 3 + 3 * lo]
                if o < 0 or nl < 0 or o + nl > d.nblob:
                    return -1
                return string_id(d, 1, d.blob + o, nl)
            break
        x += 1 + 3 * nk
    return decimal_id(d, key)


cdef int32_t state_bits(DecodeState *d, const int64_t *op, const uint8_t *rec, int32_t ln) noexcept nogil:
    # extra[x]: has table, mask, plus, npairs, (bit, letter bits) per pair
    cdef int64_t x = op[13], v = read_int(rec, ln, op[1], op[2], op[3], d.big, op[6])
    cdef int64_t mask, plus, np_, k
    cdef int64_t bits = 0
    if x < 0 or x + 4 > d.nextra:
        return -1
    if not d.extra[x]:
        return <int32_t>((v & 0xff) | STATE_NUMERIC_BIT | (STATE_PREEMPTED_BIT if v & ~0xff else 0))
    mask, plus, np_ = d.extra[x + 1], d.extra[x + 2], d.extra[x + 3]
    if np_ < 0 or x + 4 + 2 * np_ > d.nextra:
        return -1
    for k in range(np_):
        if v & mask & d.extra[x + 4 + 2 * k]:
            bits |= d.extra[x + 5 + 2 * k]
    if plus and v & plus:
        bits |= STATE_PREEMPTED_BIT
    return <int32_t>bits


cdef void dyn_bounds(const uint8_t *rec, int32_t ln, const int64_t *op, int big,
                     int64_t *start, int64_t *n) noexcept nogil:
    cdef int64_t loc = <uint32_t>read_int(rec, ln, op[1], op[2], 0, big, 0)
    cdef int64_t s = loc & 0xffff, k = loc >> 16, i
    if op[12]:          # __rel_loc: from the end of the field
        s += op[1] + op[2]
    if s < 0 or s + k > ln:
        k = 0
        s = 0
    # up to the first NUL or newline
    for i in range(k):
        if rec[s + i] == 0 or rec[s + i] == 10:
            k = i
            break
    start[0], n[0] = s, k


cdef inline int32_t fixed_id(DecodeState *d, int table, const uint8_t *p, int64_t size) noexcept nogil:
    """String id of a char[size <= 16] field lying inside its record: the raw bytes are the
    key of a direct-mapped cache (equal bytes, equal string), else hashed and interned."""
    cdef uint64_t k[2]
    cdef FastStr *e
    cdef int32_t id_
    if size == 16:
        memcpy(k, p, 16)
    else:
        k[0] = 0
        k[1] = 0
        memcpy(k, p, size)
    e = &d.fast[table][((k[0] * 0x9E3779B97F4A7C15ULL) ^ (k[1] * 0xC2B2AE3D27D4EB4FULL)) >> 54]
    if e.id >= 0 and e.k0 == k[0] and e.k1 == k[1]:
        return e.id
    id_ = string_id(d, table, p, str_len(p, size))
    if id_ >= 0:
        e.k0, e.k1, e.id = k[0], k[1], id_
    return id_


cdef int keep_fallback(DecodeState *d, int64_t entry, int64_t place, const uint8_t *rec,
                       int32_t ln) noexcept nogil:
    cdef uint8_t *a
    cdef int64_t *f
    cdef int64_t cap
    if d.narena + ln > d.caparena:
        cap = d.caparena * 2 + ln + 4096
        a = <uint8_t*>realloc(d.arena, cap)
        if a == NULL:
            return 1
        d.arena, d.caparena = a, cap
    if d.nfb + 4 > d.capfb:
        cap = d.capfb * 2 + 1024
        f = <int64_t*>realloc(d.fb, cap * sizeof(int64_t))
        if f == NULL:
            return 1
        d.fb, d.capfb = f, cap
    if ln:
        memcpy(d.arena + d.narena, rec, ln)
    d.fb[d.nfb], d.fb[d.nfb + 1], d.fb[d.nfb + 2], d.fb[d.nfb + 3] = entry, place, d.narena, ln
    d.nfb += 4
    d.narena += ln
    return 0


cdef void decode_row(DecodeState *d, const uint8_t *rec, int32_t ln, int32_t kind) noexcept nogil:
    cdef int64_t j = d.j, place, e, o, k, first, nops, start, n, key
    cdef const int64_t *op
    cdef char *dst
    cdef const uint8_t *p
    cdef Py_ssize_t sl
    cdef FastState *fs
    d.j += 1
    if j >= d.nplaces:
        d.bad = 1
        return
    place = d.places[j]
    if kind < 0 or place < 0 or kind >= d.ntypes:
        return
    e = d.type_of[kind]
    if e < 0 or e >= d.nentries:
        return
    o = d.types[4 * e + 1]
    if o < 0 or o >= d.nouts or place >= d.out_rows[o]:
        d.bad = 1
        return
    if d.types[4 * e] == MODE_FALLBACK:
        if keep_fallback(d, e, place, rec, ln):
            d.failed = 1
        return
    if d.types[4 * e] != MODE_DECODE:
        return
    dst = d.out_base[o] + place * d.out_item[o]
    first, nops = d.types[4 * e + 2], d.types[4 * e + 3]
    if first < 0 or nops < 0 or first + nops > d.nops:
        d.bad = 1
        return
    # every op's destination lies inside the row (checked once by Decoder.__cinit__)
    for k in range(first, first + nops):
        op = d.ops + NCOL * k
        if op[0] == OP_INT:
            if op[1] >= 0 and op[2] > 0 and op[1] + op[2] <= ln:
                key = read_int(rec, ln, op[1], op[2], op[3], d.big, op[6])
                if op[7]:
                    key = key >> op[7]
                if op[8]:
                    key = key & op[8]
            else:
                key = op[6]
            store(dst + op[4], op[5], key)
        elif op[0] == OP_CONST:
            store(dst + op[4], op[5], op[6])
        elif op[0] == OP_PIDCOMM:
            store(dst + op[4], 4, pid_comm(d, read_int(rec, ln, op[1], op[2], op[3], d.big, -1)))
        elif op[0] == OP_FLAGS:
            if op[2] <= 0 or op[5] != 8:
                memset(dst + op[4], 0, op[5])
            else:
                key = ((read_int(rec, ln, op[1], op[2], 0, d.big, 0) & 0xff) << 8) | \
                      (read_int(rec, ln, op[10], op[11], 0, d.big, 0) & 0xff)
                memcpy(dst + op[4], d.flag_text + 8 * key, 8)
        elif op[0] == OP_STR_FIXED and 0 < op[2] <= 16 and op[1] >= 0 and op[1] + op[2] <= ln:
            store(dst + op[4], 4, fixed_id(d, op[9] & 1, rec + op[1], op[2]))
        elif op[0] == OP_STR_FIXED:
            start, n = op[1], ln - op[1]
            if n > op[2]:
                n = op[2]
            if start < 0 or n < 0:
                n = 0
            p = rec + start if n > 0 else rec
            sl = str_len(p, n) if n > 0 else 0
            store(dst + op[4], 4, string_id(d, op[9], p, sl))
        elif op[0] == OP_STR_DYN:
            dyn_bounds(rec, ln, op, d.big, &start, &n)
            store(dst + op[4], 4, string_id(d, op[9], rec + start, n))
        elif op[0] == OP_STATE:
            key = read_int(rec, ln, op[1], op[2], op[3], d.big, op[6])
            fs = &d.states[(<uint64_t>key * 0x9E3779B97F4A7C15ULL + <uint64_t>k) >> 54]
            if fs.op != k + 1 or fs.v != key:
                fs.op, fs.v, fs.bits = k + 1, key, state_bits(d, op, rec, ln)
            store(dst + op[4], 4, fs.bits)
        elif op[0] == OP_SYMBOLIC:
            store(dst + op[4], 4, symbolic(d, op, rec, ln))
        else:
            d.bad = 1
            return


cdef class Decoder:
    """Pass 3 over one CPU's pages (fed in the same chunks as its RowWalker): every record of a
    decoded type written at its place (places: the kind array merge_place rewrote)."""
    cdef Layout L
    cdef Sink s
    cdef DecodeState d
    cdef object keep          # the arrays the state points into
    cdef StringTable comms, symbols
    cdef const int64_t *bad   # damaged page numbers, ascending (from the RowWalker)
    cdef int64_t nbad, next_bad, page_no

    def __cinit__(self, layout, bint big, const int32_t[::1] places, const int32_t[::1] type_of,
                  const int64_t[:, ::1] types, const int64_t[:, ::1] ops,
                  const int64_t[::1] extra, const uint8_t[::1] blob, list outs,
                  const uint8_t[:, ::1] flag_text, const int64_t[:, ::1] pid_name,
                  StringTable comms, StringTable symbols, const int64_t[::1] bad_pages):
        page_size, ts_off, commit_off, commit_size, data_off, type_off, type_size, min_payload = layout
        if data_off + 4 > page_size or commit_size not in (4, 8) or type_size not in (1, 2, 4):
            raise ValueError("bad page layout")
        if types.shape[1] != 4 or ops.shape[1] != NCOL or flag_text.shape[0] != 65536 or \
                flag_text.shape[1] != 8 or (pid_name.shape[0] and pid_name.shape[1] != 2):
            raise ValueError("bad decode plan")
        self.L.page_size, self.L.ts_off, self.L.commit_off = page_size, ts_off, commit_off
        self.L.commit_size, self.L.data_off, self.L.big = commit_size, data_off, big
        self.L.type_off, self.L.type_size, self.L.min_payload = type_off, type_size, min_payload
        memset(&self.s, 0, sizeof(Sink))
        memset(&self.d, 0, sizeof(DecodeState))
        self.s.mode = SINK_DECODE
        self.s.dec = &self.d
        self.comms, self.symbols = comms, symbols
        cdef int64_t nouts = len(outs), i, k
        out_item = np.zeros(max(nouts, 1), np.int64)
        out_rows = np.zeros(max(nouts, 1), np.int64)
        cdef int64_t[::1] oi = out_item
        cdef int64_t[::1] orows = out_rows
        self.d.out_base = <char**>calloc(max(nouts, 1), sizeof(char*))
        self.d.pid_id = <int32_t*>malloc(max(pid_name.shape[0], 1) * sizeof(int32_t))
        if self.d.out_base == NULL or self.d.pid_id == NULL:
            raise MemoryError()
        for i in range(nouts):
            a = outs[i]
            if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError("outputs are writable contiguous arrays")
            self.d.out_base[i] = <char*>cnp.PyArray_DATA(a)
            oi[i] = a.dtype.itemsize
            orows[i] = len(a)
        for i in range(pid_name.shape[0]):
            self.d.pid_id[i] = -1
        for i in range(FAST_SLOTS):
            self.d.fast[0][i].id = -1
            self.d.fast[1][i].id = -1
        self.keep = (places, type_of, types, ops, extra, blob, outs, flag_text, pid_name,
                     out_item, out_rows, bad_pages)
        self.bad = &bad_pages[0] if bad_pages.shape[0] else NULL
        self.nbad = bad_pages.shape[0]
        self.d.big = big
        self.d.places = &places[0] if places.shape[0] else NULL
        self.d.nplaces = places.shape[0]
        self.d.type_of = &type_of[0] if type_of.shape[0] else NULL
        self.d.ntypes = type_of.shape[0]
        self.d.types = &types[0, 0] if types.shape[0] else NULL
        self.d.nentries = types.shape[0]
        self.d.ops = &ops[0, 0] if ops.shape[0] else NULL
        self.d.nops = ops.shape[0]
        self.d.extra = &extra[0] if extra.shape[0] else NULL
        self.d.nextra = extra.shape[0]
        self.d.blob = &blob[0] if blob.shape[0] else NULL
        self.d.nblob = blob.shape[0]
        self.d.out_item = &oi[0]
        self.d.out_rows = &orows[0]
        self.d.nouts = nouts
        self.d.flag_text = &flag_text[0, 0]
        self.d.pid_name = &pid_name[0, 0] if pid_name.shape[0] else NULL
        self.d.npid = pid_name.shape[0]
        self.d.idle_id = -1
        self.d.unknown_id = -1
        for i in range(nouts):
            if self.d.out_base[i] == NULL and orows[i]:
                raise ValueError("an output without data")
        for i in range(types.shape[0]):
            if types[i, 1] < 0 or types[i, 1] >= nouts or types[i, 2] < 0 or types[i, 3] < 0 \
                    or types[i, 2] + types[i, 3] > ops.shape[0]:
                raise ValueError("bad decode plan: type entry %d" % i)
            for k in range(types[i, 2], types[i, 2] + types[i, 3]):
                if ops[k, 4] < 0 or ops[k, 5] not in (1, 4, 8) or \
                        ops[k, 4] + ops[k, 5] > oi[types[i, 1]] or \
                        (ops[k, 0] in (OP_STR_FIXED, OP_STR_DYN, OP_STATE, OP_SYMBOLIC,
                                       OP_PIDCOMM) and ops[k, 5] != 4) or \
                        (ops[k, 0] == OP_FLAGS and ops[k, 5] != 8):
                    raise ValueError("bad decode plan: op %d" % k)
        if cache_init(&self.d.caches[0], &comms.t) or cache_init(&self.d.caches[1], &symbols.t):
            raise MemoryError()

    def __dealloc__(self):
        cache_free(&self.d.caches[0])
        cache_free(&self.d.caches[1])
        free(self.d.out_base)
        free(self.d.pid_id)
        free(self.d.arena)
        free(self.d.fb)

    def feed(self, const uint8_t[::1] data):
        """Decode the whole pages of data (the same chunks the RowWalker saw, in order)."""
        cdef int64_t nbytes = data.shape[0], p = 0
        if nbytes % self.L.page_size:
            raise ValueError("feed takes whole pages")
        if nbytes == 0:
            return
        cdef const uint8_t *buf = &data[0]
        self.s.base = buf
        with nogil:
            while p < nbytes and not self.d.failed:
                while self.next_bad < self.nbad and self.bad[self.next_bad] < self.page_no:
                    self.next_bad += 1
                if self.next_bad < self.nbad and self.bad[self.next_bad] == self.page_no:
                    # a damaged page was one marker row in pass 1: decode nothing of it
                    decode_row(&self.d, NULL, 0, C_DAMAGED)
                else:
                    walk_page(buf + p, p, &self.L, &self.s)
                p += self.L.page_size
                self.page_no += 1
        self.s.base = NULL
        if self.d.failed:
            raise MemoryError()

    def partial_page(self):
        decode_row(&self.d, NULL, 0, C_DAMAGED)

    def finish(self):
        """Raises when the rows did not match the walk's; returns the fallback records:
        (payload bytes uint8, entry int64, place int64, offset int64, length int64)."""
        if self.d.bad or self.d.j != self.d.nplaces:
            raise ValueError("the second walk of a CPU's pages gave other rows than the first")
        arena = _owned(<char*>self.d.arena, self.d.narena, 1, "B")
        self.d.arena = NULL
        fb = _owned(<char*>self.d.fb, self.d.nfb, 8, "q").reshape(-1, 4)
        self.d.fb = NULL
        return arena, fb[:, 0], fb[:, 1], fb[:, 2], fb[:, 3]
