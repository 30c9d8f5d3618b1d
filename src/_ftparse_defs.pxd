# The tokenizer's C records, enums and parser state, declared once for the files that
# _ftparse.pyx cimports and includes.  What must agree with events.py is checked at import (_ftparse_tables.pxi).

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

cdef struct Grow:
    # A growable byte buffer: data[0:size] is used, data[size:cap] is reserved.
    char *data
    size_t size
    size_t cap
    int mapped     # data is an anonymous mapping (a large buffer), not malloc'ed

cdef struct CacheEnt:
    # one entry of an intern table's front cache: a string of at most 24 bytes as 3 words
    uint64_t w0
    uint64_t w1
    uint64_t w2
    int32_t n
    int32_t id

cdef struct NameHead:
    # an event name known by the 16 bytes that start it on a line (the name, ': ' and what
    # follows when it is short): n is its length (0: empty entry), id its event type
    uint64_t w0
    uint64_t w1
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

cdef enum:
    MAX_ERRORS = 500
    FG_MAXDEPTH = 128
    MAX_CPU = 1 << 20
    SPAN_WORDS = 64
    SPAN_CPUS = 4096       # SPAN_WORDS * 64

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

# common columns: byte offsets in every record
cdef enum:
    C_TS = 0
    C_LINE = 8
    C_CPU = 16
    C_PID = 20
    C_TGID = 24
    C_COMM = 28
    C_FLAGS = 32

cdef enum:
    I32_MIN = -2147483648
    I32_MAX = 2147483647

cdef enum:
    CACHE_SIZE = 1024
    # the parser reads up to this many bytes past a string it interns (see Parser.feed)
    PAD = 32

# per-layout id columns that Parser.absorb() rebases (_ftparse_tables.pxi)
cdef enum:
    MAX_FIX = 8

# what a line was (Parser(mark_lines=True))
cdef enum:
    LK_EVENT = 0
    LK_HEADER = 1
    LK_FILTERED = 2
    LK_MALFORMED = 3

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
    NameHead name_head[64]
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
    # the comm of the line being parsed (its prefix's), which a sched_switch's prev_comm
    # repeats: id, bytes and length
    int32_t line_comm
    const char *line_comm_p
    size_t line_comm_n
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
    # the kept records' time span (ts >= 0; rec_ts_hi -1: none) and CPUs (a bit per CPU
    # below SPAN_CPUS; cpu_wide: one at or above it), for Trace.span / cpus() without a pass
    int64_t rec_ts_lo
    int64_t rec_ts_hi
    uint64_t cpu_bits[SPAN_WORDS]
    int cpu_wide
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
    # colder fields, after the hot ones
    Grow fg_ts             # function_graph: per CPU, the time of its last line with one
    # lines longer than this many bytes (line end excluded) are malformed (E_LONG), unparsed
    int64_t max_line
    int truncated_last     # the input's last line had no newline and was malformed
    int64_t long_nbytes    # while recording a line skipped unread: its length (else -1)
