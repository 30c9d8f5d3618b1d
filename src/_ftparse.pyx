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

One compilation unit, read in files by concern: ``_ftparse_defs.pxd`` (records, enums, the
parser state), then the included ``_ftparse_tables.pxi`` (tables lowered from events.py),
``_bytes`` (scanners, numbers), ``_intern``, ``_records`` (errors, ids, record growth),
``_prefix`` (the line prefix and time stamp), ``_payload`` (the event decoders),
``_funcgraph``, ``_lines`` (line kinds and the block loop) and ``_merge`` (Parser.absorb);
this file keeps the Python side.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t, INT64_MAX
from libc.string cimport memchr, memcmp, memcpy, memset, strlen
from libc.stdlib cimport malloc, calloc, realloc, free
from cpython.buffer cimport PyBuffer_FillInfo

import numpy as np

from _ftparse_defs cimport *
from ftrace_fast import events as _ev

ERROR_CODES = {
    E_PREFIX: "no_prefix", E_TIMESTAMP: "bad_timestamp", E_NO_EVENT: "no_event",
    E_FIELD: "bad_field", E_ORPHAN_FRAME: "orphan_stack_frame", E_FUNCGRAPH: "bad_funcgraph",
    E_TRUNCATED: "truncated_last_line", E_TS_RANGE: "timestamp_range", E_FLAGS: "bad_flags",
    E_RANGE: "out_of_range", E_LONG: "line_too_long",
}

#: default line limit (bytes, line end excluded): a longer line is malformed and never held whole
DEFAULT_MAX_LINE = 1 << 20

include "_ftparse_tables.pxi"
include "_ftparse_bytes.pxi"
include "_ftparse_intern.pxi"
include "_ftparse_records.pxi"
include "_ftparse_prefix.pxi"
include "_ftparse_payload.pxi"
include "_ftparse_funcgraph.pxi"
include "_ftparse_lines.pxi"
include "_ftparse_merge.pxi"

# ---------------------------------------------------------------------------------------------
# Python side

cdef class OwnedBuffer:
    """Memory malloc'ed by the parser, handed to NumPy without a copy and freed with it."""
    cdef char *data
    cdef Py_ssize_t size
    cdef size_t mapped_len  # a mapping's length to unmap (0: malloc'ed)

    def __dealloc__(self):
        if self.mapped_len:
            if not pool_put(self.data, self.mapped_len):
                unmap(self.data, self.mapped_len)
        else:
            free(self.data)
        self.data = NULL

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.size, 1, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

def lend_freed_buffers(bint on):
    """on: the large buffers of arrays freed from now on are kept and lent to the parsers'
    next buffers (whose pages are then touched already); off: this load is done, and when no
    other lends, the kept ones are released.  For a load that hands its kept text out piece
    by piece (ftfast filter)."""
    pool_switch(1 if on else 0)


def lent_buffers():
    """(buffers lent since the process started, buffers kept now): for tests."""
    return pool_lent, pool_n


cdef object take_grow(Grow *g, object dtype=np.uint8):
    """A NumPy array of dtype (uint8 by default) owning the bytes of g (shrunk to fit); g is
    left empty."""
    cdef OwnedBuffer b = OwnedBuffer.__new__(OwnedBuffer)
    cdef char *d
    if g.size == 0:
        g_free(g)
        return np.zeros(0, dtype)
    if g.mapped:
        # a mapping is handed over whole: its pages past size were never touched
        b.data = g.data
        b.mapped_len = g.cap
    else:
        d = <char*>realloc(g.data, g.size)
        b.data = d if d != NULL else g.data
    b.size = <Py_ssize_t>g.size
    g.mapped = 0
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
        P.rec_ts_lo = INT64_MAX
        P.rec_ts_hi = -1
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
            if len(b) % 8:
                raise RuntimeError("record size of layout %d is not a multiple of 8" % i)
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
    def events(self):
        """Events kept so far."""
        return self.P.events

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
        # one dtype object per layout, shared by its events (an input may name many events)
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
            # None where the records were not kept or a CPU is past the bitmap: computed then
            "span": None if P.no_records else
                    ((P.rec_ts_lo, P.rec_ts_hi) if P.rec_ts_hi >= 0 else ()),
            "cpus": None if P.no_records or P.cpu_wide else
                    [c for c in range(SPAN_CPUS) if P.cpu_bits[c >> 6] >> (c & 63) & 1],
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
