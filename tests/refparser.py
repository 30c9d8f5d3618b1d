"""A slow, plain-Python reference parser for ftrace text logs: the test oracle of the Cython
tokenizer in ``src/_ftparse.pyx``.

It implements the grammar that the Cython module's docstrings and comments describe, written
independently with ``re`` and string operations: one function per line kind and per payload
layout, no shared code with the Cython parser except the record layouts of
``ftrace_fast.events`` (data).  Everything works on bytes; comm / symbol / text strings are
decoded with ``utf-8`` + ``backslashreplace`` at the end, like ``Trace.comms``.

``refparse(path_or_bytes, **filters)`` returns::

    {"events": {name: [row, ...]},      # rows: every column of events.dtype_for(layout);
                                        # comm/sym columns as str (None when absent), text
                                        # fields as str (``payload``, ``text``), flags as bytes
     "stats": {"lines", "events", "headers", "filtered", "malformed"},
     "errors": [(line, code), ...],     # the first 500 malformed lines
     "lost": [(cpu, line, count), ...]}

Where the reference fixed a point on which the Cython code once differed from its own
docstrings, a ``NOTE:`` comment says what the rule is.
"""

from __future__ import annotations

import gzip
import re
from decimal import Decimal
from pathlib import Path

from ftrace_fast import events as EV

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_ERRORS = 500  # error records kept (the malformed count covers all)
MAX_CPU = 1 << 20


WS = b" \t"
FLAG_MARKS = b"+!#*@$"  # delay marks of the latency timestamp and function_graph durations

SCHED_LAYOUTS = ("sched_switch", "sched_wake", "sched_migrate_task", "sched_process_fork",
                 "sched_process_task", "sched_process_exec", "sched_stat_runtime",
                 "sched_stat_delay")

#: the tasks a sched payload names (pid columns, comm columns), for the pids= / comm= filters
PAYLOAD_TASKS = {
    "sched_switch": (("prev_pid", "next_pid"), ("prev_comm", "next_comm")),
    "sched_wake": (("task_pid",), ("task_comm",)),
    "sched_migrate_task": (("task_pid",), ("task_comm",)),
    "sched_process_fork": (("task_pid", "child_pid"), ("task_comm", "child_comm")),
    "sched_process_task": (("task_pid",), ("task_comm",)),
    "sched_process_exec": (("task_pid",), ()),
    "sched_stat_runtime": (("task_pid",), ("task_comm",)),
    "sched_stat_delay": (("task_pid",), ("task_comm",)),
}


class Malformed(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def bad_field():
    return Malformed("bad_field")


# ---------------------------------------------------------------------------------------------
# small helpers (positions index a bytes object; `end` bounds the scan)

def dec(b):
    return b.decode("utf-8", "backslashreplace")


def skip_ws(s, i, end=None):
    end = len(s) if end is None else end
    while i < end and s[i] in WS:
        i += 1
    return i


def tok_end(s, i, end=None):
    end = len(s) if end is None else end
    while i < end and s[i] not in WS:
        i += 1
    return i


def rtrim(s, i, end):
    while end > i and s[end - 1] in WS:
        end -= 1
    return end


def is_digit(c):
    return 48 <= c <= 57


def wrap(v, bits, signed=True):
    """v stored in a C integer of that many bits (two's complement wrap)."""
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def i32(v):
    return wrap(v, 32)


def i64(v):
    return wrap(v, 64)


def i8(v):
    return wrap(v, 8)


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def r32(v):
    """v for an int32 column: out of its range the line is malformed, never wrapped."""
    if not INT32_MIN <= v <= INT32_MAX:
        raise Malformed("out_of_range")
    return v


def r8(v):
    """v for an int8 column (success, waited, valid)."""
    if not -128 <= v <= 127:
        raise Malformed("out_of_range")
    return v


def s8(b):
    """bytes as a NumPy S8 column returns them: at most 8, trailing NULs dropped."""
    return b[:8].rstrip(b"\0")


_DEC = re.compile(rb"[+-]?[0-9]+")
_UDEC = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9a-fA-F]*")


def parse_i64(s, i, end=None):
    """Decimal integer with an optional sign: (value, end) or None (no digit, > int64)."""
    m = _DEC.match(s, i, len(s) if end is None else end)
    if not m:
        return None
    v = int(m.group())
    if abs(v) > INT64_MAX:
        return None
    return v, m.end()


def parse_hex(s, i, end=None):
    """Hex digits with an optional 0x: (value, end) or None (no digit or more than 16)."""
    end = len(s) if end is None else end
    if end - i >= 2 and s[i:i + 2] in (b"0x", b"0X"):
        i += 2
    m = _HEX.match(s, i, end)
    digits = m.group()
    if not digits or len(digits) > 16:
        return None
    return int(digits, 16), m.end()


def parse_u64(s, i, end=None):
    """0x hex, or an unsigned decimal up to 2**64-1: (value, end) or None."""
    end = len(s) if end is None else end
    if end - i >= 2 and s[i:i + 2] in (b"0x", b"0X"):
        return parse_hex(s, i, end)
    m = _UDEC.match(s, i, end)
    if not m or int(m.group()) > UINT64_MAX:
        return None
    return int(m.group()), m.end()


def int_all(b):
    """b is exactly one (signed, int64) decimal integer: its value, else None."""
    r = parse_i64(b, 0)
    if r is None or r[1] != len(b):
        return None
    return r[0]


# ---------------------------------------------------------------------------------------------
# payload helpers: `pl` is the payload, from its first byte to the end of the line with
# trailing blanks removed

def kv(pl, i, key):
    """Start of the value of key (given as b" key="): `key=` right at i, or ` key=` anywhere
    from i on.  None when absent."""
    if pl.startswith(key[1:], i):
        return i + len(key) - 1
    j = pl.find(key, i)
    return None if j < 0 else j + len(key)


def kv_int(pl, i, key, required):
    """(value, cursor) of an integer key (decimal or 0x hex, as int64) searched from i; the
    cursor moves past the value when found.  (None, i) when absent and not required."""
    v = kv(pl, i, key)
    if v is None:
        if required:
            raise bad_field()
        return None, i
    if pl.startswith((b"0x", b"0X"), v):
        r = parse_hex(pl, v)
        if r is None:
            raise bad_field()
        return i64(r[0]), r[1]
    r = parse_i64(pl, v)
    if r is None:
        raise bad_field()
    return r


def kv_int_lenient(pl, i, key):
    """kv_int for optional keys whose bad value is ignored (block raw, funcgraph raw); a value
    out of its column's range is not (the caller's r32 raises)."""
    try:
        return kv_int(pl, i, key, False)
    except Malformed:
        return None, i


def kv_comm(pl, i, key, next_key):
    """(comm bytes, position of next_key): a comm may hold spaces and ends where next_key
    begins."""
    v = kv(pl, i, key)
    if v is None:
        raise bad_field()
    k = pl.find(next_key, v)
    if k < 0:
        raise bad_field()
    return pl[v:k], k


def parse_state(s, i, end=None):
    """A prev_state at s[i:]: letters joined by '|' with an optional '+', or a number
    (decimal or 0x).  Returns the bit set or None."""
    end = len(s) if end is None else end
    if i < end and is_digit(s[i]):
        r = parse_u64(s, i, end)
        if r is None:
            return None
        v = r[0]
        # NOTE: events.py's comment on STATE_NUMERIC says it marks "a numeric prev_state whose
        # low byte is 0 but some higher bit is set"; the parser, tracegen.py and
        # test_formats.py all set it on every numeric state.  Follows the code (reported).
        bits = (v & 0xFF) | EV.STATE_NUMERIC
        if v >> 8:
            bits |= EV.STATE_PREEMPTED
        return bits
    tok = s[i:tok_end(s, i, end)]
    if not tok:
        return None
    bits = 0
    for ch in tok.decode("latin-1"):
        if ch == "|":
            continue
        if ch == "+":
            bits |= EV.STATE_PREEMPTED
        elif ch == "R":
            pass
        elif ch in EV.STATE_BITS:
            bits |= EV.STATE_BITS[ch]
        else:
            bits |= EV.STATE_UNKNOWN_LETTER
    return bits


_COMM_PID_PRIO = re.compile(rb"([0-9]+) \[([+-]?[0-9]+)\]")


def comm_pid_prio(s, start, end):
    """trace-cmd's `comm:pid [prio]` in s[start:end]: the first ':' followed by digits, ' [',
    an integer and ']' ends the comm.  (comm end, pid, prio, end) or None."""
    c = start
    while True:
        c = s.find(b":", c, end)
        if c < 0:
            return None
        m = _COMM_PID_PRIO.match(s, c + 1, end)
        if m and int(m.group(1)) <= INT64_MAX and abs(int(m.group(2))) <= INT64_MAX:
            return c, int(m.group(1)), int(m.group(2)), m.end()
        c += 1


# ---------------------------------------------------------------------------------------------
# the parser


class Prefix:
    __slots__ = ("comm", "pid", "tgid", "cpu", "flags", "ts", "rest")


class RefParser:
    def __init__(self, events=None, cpus=None, pids=None, comm=None, start=None, end=None,
                 max_line=1 << 20):
        self.max_line = max_line
        self.events_filter = None if events is None else {
            n.encode() if isinstance(n, str) else bytes(n) for n in (
                [events] if isinstance(events, str) else events)}
        self.cpus = None if cpus is None else {int(c) for c in cpus}
        self.pids = None if pids is None else {int(p) for p in pids}
        if comm is not None and not isinstance(comm, re.Pattern):
            comm = re.compile(comm)
        self.comm_re = comm
        self.t_start = _time_arg(start)
        self.t_end = _time_arg(end)
        self.records = {}      # event name (bytes) -> [row]
        self.stats = dict(lines=0, events=0, headers=0, filtered=0, malformed=0)
        self.errors = []
        self.lost = []
        self.multifile = False
        self.last = None       # the last event line: dict(kept, ts, cpu, pid, tgid, comm, flags)
        self.fg_task = {}      # cpu -> (pid, comm) from context-switch lines and comm-pid columns
        self.fg_ts = {}        # cpu -> time of its last function_graph line with one
        self.fg_stack = {}     # cpu -> {depth: function name}

    # -- filters ----------------------------------------------------------------------------
    def wanted(self, name):
        return self.events_filter is None or name in self.events_filter

    def cpu_time_ok(self, cpu, ts):
        if self.cpus is not None and cpu not in self.cpus:
            return False
        if self.t_start is not None and ts < self.t_start:
            return False
        if self.t_end is not None and ts > self.t_end:
            return False
        return True

    def pid_ok(self, pid):
        return self.pids is None or pid in self.pids

    def comm_ok(self, comm):
        if self.comm_re is None:
            return True
        if comm is None:
            return False
        return bool(self.comm_re.search(comm))   # a regex error propagates

    # -- records ----------------------------------------------------------------------------
    @staticmethod
    def blank(layout):
        r = {"ts": -1, "line": 0, "cpu": -1, "pid": -1, "tgid": -1, "comm": None, "flags": b""}
        for f in EV.LAYOUTS[layout]:
            r[f[0]] = {"u8": 0, "comm": None, "sym": None, "text": ""}.get(f[1], -1)
        return r

    def commit(self, name, rec):
        self.records.setdefault(name, []).append(rec)

    # -- driver -----------------------------------------------------------------------------
    def parse(self, data):
        pieces = data.split(b"\n")
        last_unterminated = pieces[-1] != b""
        if not last_unterminated:
            pieces.pop()
        n = len(pieces)
        for k, s in enumerate(pieces):
            lineno = k + 1
            self.stats["lines"] += 1
            try:
                if len(s) > self.max_line:
                    raise Malformed("line_too_long")   # never parsed
                kind = self.line(s, lineno)
            except Malformed as m:
                code = m.code
                if last_unterminated and k == n - 1:
                    code = "truncated_last_line"
                self.stats["malformed"] += 1
                if len(self.errors) < MAX_ERRORS:
                    self.errors.append((lineno, code))
                continue
            self.stats[{"event": "events", "header": "headers", "filtered": "filtered"}[kind]] += 1

    def result(self):
        out = {}
        for name, rows in self.records.items():
            out[dec(name)] = rows
        return {"events": out, "stats": dict(self.stats), "errors": list(self.errors),
                "lost": list(self.lost)}

    # -- line kinds, in the order parse_line tries them -------------------------------------
    def line(self, s, lineno):
        """Classify and parse one line: 'event', 'header' or 'filtered'; Malformed raised."""
        if s.endswith(b"\r"):
            s = s[:-1]
        e = len(s)
        p = skip_ws(s, 0)
        # ftrace_dump_on_oops: a printk time stamp `[  123.456789] ` before the line
        m = re.compile(rb"\[[ \t]*[0-9]+\.[0-9]+\]").match(s, p)
        if m:
            p = skip_ws(s, m.end())
        # trace-cmd multi-file report: `file.dat: ` before every line; `name: cpus=N` turns the
        # mode on (and a first word ending in `.dat:` is such a prefix anyway)
        t = tok_end(s, p)
        if t - p >= 2 and s[t - 1:t] == b":" and t < e:
            q = skip_ws(s, t)
            if self.multifile or (t - p > 5 and s[t - 5:t] == b".dat:"):
                p = q
            elif s.startswith(b"cpus=", q):
                self.multifile = True
                return "header"
        if p >= e:
            return "header"          # blank lines
        if s.startswith(b"#", p):
            # comments and headers (`# tracer: nop`, `##### CPU N buffer started ####`),
            # unless the line is an event whose comm begins with '#'
            try:
                return self.event_line(s, p, lineno)
            except Malformed:
                return "header"
        if s.startswith(b"=>", p):
            return self.stack_frame(s, p, lineno)
        if s.startswith(b"C", p) and self.lost_marker(s, p, lineno):
            return "header"             # (a negative count raised out_of_range)
        if self.is_header(s, p):
            return "header"
        try:
            return self.event_line(s, p, lineno)
        except Malformed as err:
            # function_graph output (` 3)   0.245 us |  f();`) is tried second, since a comm
            # may also start with digits and ')'; when it is not one either, the event line's
            # error stands
            if not is_digit(s[p]):
                raise
            r = self.funcgraph_line(s, p, lineno)
            if r is None:
                raise err
            return r

    # header lines ---------------------------------------------------------------------------
    _HEADERS = re.compile(rb"""
        cpus=
      | version[ ]=[ ]
      | Dumping[ ]ftrace[ ]buffer
      | -+[ \t]*\Z
      | CPU[ ](?P<cpu>[+-]?[0-9]+)[ ]is[ ]empty
      | [0-9]+:[ ]ARG[ ]TYPE[ ]NOT[ ]FIELD[ ]BUT
    """, re.X)

    def is_header(self, s, p):
        m = self._HEADERS.match(s, p)
        if not m:
            return False
        if m.group("cpu") is not None and abs(int(m.group("cpu"))) > INT64_MAX:
            return False
        return True

    # LOST markers ---------------------------------------------------------------------------
    _LOST = re.compile(rb"CPU:(?P<cpu>[+-]?[0-9]+)[ \t]*"
                       rb"(?:\[LOST (?P<n1>[+-]?[0-9]+) EVENTS\]|\[(?P<n2>[+-]?[0-9]+) EVENTS DROPPED\])")

    def lost_marker(self, s, p, lineno):
        """`CPU:N [LOST M EVENTS]` (kernel) / `CPU:N [M EVENTS DROPPED]` (trace-cmd)."""
        m = self._LOST.match(s, p)
        if not m:
            return False
        cpu = int(m.group("cpu"))
        n = int(m.group("n1") if m.group("n1") is not None else m.group("n2"))
        if abs(cpu) > INT64_MAX or not 0 <= cpu <= MAX_CPU or abs(n) > INT64_MAX:
            return False
        if n < 0:
            raise Malformed("out_of_range")   # a marker, but no count of lost events
        self.lost.append((i32(cpu), lineno, n))
        return True

    # stack frames ---------------------------------------------------------------------------
    def stack_frame(self, s, p, lineno):
        """` => func (ffffffff81000000)` / `=> <00007f12>`: one frame of the stack trace of the
        event line before it, whose task, CPU, time and flags it takes."""
        q = skip_ws(s, p + 2)
        text = s[q:rtrim(s, q, len(s))]
        if self.last is None:
            raise Malformed("orphan_stack_frame")
        if not self.last["kept"] or not self.wanted(b"stack_frame"):
            return "filtered"
        func, addr = text, 0
        if text.endswith(b")"):
            lp = text.rfind(b"(", 1, len(text) - 1)
            if lp >= 1:
                r = parse_hex(text, lp + 1, len(text) - 1)
                if r is not None and r[1] == len(text) - 1:
                    func, addr = text[:rtrim(text, 0, lp)], r[0]
                # NOTE: a parenthesised part that is not all hex (`(ffff x)`) gives no
                # address, not the value of its hex prefix.
        elif len(text) > 2 and text.startswith(b"<") and text.endswith(b">"):
            r = parse_hex(text, 1, len(text) - 1)
            if r is not None and r[1] == len(text) - 1:
                addr = r[0]
        L = self.last
        rec = self.blank("stack_frame")
        rec.update(ts=L["ts"], line=lineno, cpu=L["cpu"], pid=L["pid"], tgid=L["tgid"],
                   comm=L["comm"], flags=L["flags"], func=dec(func), addr=addr)
        self.commit(b"stack_frame", rec)
        return "event"

    # function_graph lines --------------------------------------------------------------------
    _ABSTIME = re.compile(rb"([0-9]+)\.([0-9]*)")
    _FG_CPU = re.compile(rb"([0-9]+)\)")

    def funcgraph_line(self, s, p, lineno):
        """`[ABSTIME |] CPU) [comm-pid |] [DURATION] | body`, or `CPU) body` without the
        duration column.  None when the line is not one."""
        e = len(s)
        q = p
        ts = -1
        m = self._ABSTIME.match(s, q)
        if m:
            # funcgraph-abstime `7238523.638008 |`: 1..9 decimals, seconds fitting int64 ns
            sec, frac = int(m.group(1)), m.group(2)
            if not frac or len(frac) > 9 or sec > 9223372035:
                return None
            d = skip_ws(s, m.end())
            if d >= e or s[d:d + 1] != b"|":
                return None
            ts = sec * 10**9 + int(frac.ljust(9, b"0"))
            q = skip_ws(s, d + 1)
        m = self._FG_CPU.match(s, q)
        if not m or int(m.group(1)) > INT64_MAX:
            return None
        cpu = int(m.group(1))
        paren = m.end()
        q = skip_ws(s, paren)
        if q >= e:
            return "header"
        if cpu > MAX_CPU:
            return None              # a CPU number out of range: not function_graph output
        arrow = s.find(b"=>", q)
        bar = s.find(b"|", q)
        if arrow >= 0 and (bar < 0 or arrow < bar) and s[q:q + 1] != b"=":
            # context switch ` 3)    bash-431    =>    <idle>-0   `: the right side is the
            # CPU's task from now on
            right = s[skip_ws(s, arrow + 2):rtrim(s, 0, e)]
            k = right.rfind(b"-")
            if k >= 0:
                v = _int_plus(right[k + 1:])
                if v is not None:
                    self.fg_task[cpu] = (r32(v), dec(right[:k]))
            return "header"
        if bar < 0:
            # funcgraph-duration off: the body follows `N)` (1 blank + 2 per depth)
            q, dur, indent = paren, -1, 1
        else:
            indent = 2
        if s[q:q + 1] in (b"=", b"<"):
            return "header"          # irq markers `==========> |` / `<========== |`
        proc = None
        if bar >= 0 and not (is_digit(s[q]) or s[q] in FLAG_MARKS or s[q:q + 1] == b"|"):
            # funcgraph-proc `comm-pid |`
            seg = s[q:rtrim(s, q, bar)]
            k = seg.rfind(b"-")
            v = _int_plus(seg[k + 1:]) if k >= 0 else None
            if v is None:
                raise Malformed("bad_funcgraph")
            proc = (r32(v), dec(seg[:k]))
            q = bar + 1
        if bar >= 0:
            r = self.fg_duration(s, q)
            if r is None:
                raise Malformed("bad_funcgraph")
            q, dur = r
        # NOTE: the proc column is the line's task whenever present, even with an empty
        # comm (`-42 |`).
        if proc is not None:
            self.fg_task[cpu] = proc     # the CPU's task from now on
        pid, comm = proc if proc is not None else self.fg_task.get(cpu, (-1, None))
        if ts >= 0:
            self.fg_ts[cpu] = ts
        t = q
        while t < e and s[t:t + 1] == b" ":
            t += 1
        name = b"funcgraph_exit" if s[t:t + 1] == b"}" else b"funcgraph_entry"
        # a line without a time or task column is selected by its CPU's context (the last
        # line of the CPU with one); without any, the filter cannot place it and keeps it
        ctx_ts = self.fg_ts.get(cpu, -1)
        if (not self.wanted(name)
                or (self.cpus is not None and cpu not in self.cpus)
                or (ctx_ts >= 0 and not self.cpu_time_ok(cpu, ctx_ts))
                or (pid >= 0 and not self.pid_ok(pid))
                or (comm is not None and not self.comm_ok(comm))):
            if name == b"funcgraph_entry":
                try:
                    self.fg_body(self.blank("funcgraph"), s, q, cpu, dur, indent)
                except Malformed:
                    pass
            return "filtered"
        rec = self.blank("funcgraph")
        rec.update(ts=ts, line=lineno, cpu=i32(cpu), pid=pid, tgid=-1, comm=comm, flags=b"")
        self.fg_body(rec, s, q, cpu, dur, indent)
        self.commit(name, rec)
        return "event"

    _DUR = re.compile(rb"([0-9]+)(?:\.([0-9]*))?")

    def fg_duration(self, s, i):
        """The duration column up to and including its '|': `[mark] 12.345 us |` or blanks
        then `|`.  (position after '|', duration ns or -1) or None."""
        e = len(s)
        dur = -1
        i = skip_ws(s, i)
        if i < e and s[i] in FLAG_MARKS:
            i = skip_ws(s, i + 1)
        m = self._DUR.match(s, i)
        if m:
            ip = int(m.group(1))
            if ip > 10**12:
                return None
            frac = int((m.group(2) or b"")[:3].ljust(3, b"0"))
            i = skip_ws(s, m.end())
            if not s.startswith(b"us", i):
                return None
            i = skip_ws(s, i + 2)
            dur = ip * 1000 + frac
        if i >= e or s[i:i + 1] != b"|":
            return None
        return i + 1, dur

    def fg_body(self, rec, s, i, cpu, dur, indent):
        """After the duration's '|': `indent` blanks then 2 per depth, and `func() {`,
        `func();`, `}` or `} /* func */`.  Fills depth, func, duration_ns."""
        j = i
        while j < len(s) and s[j:j + 1] == b" ":
            j += 1
        n = j - i
        depth = (n - indent) // 2 if n >= indent else 0
        e = rtrim(s, j, len(s))
        if j >= e:
            raise Malformed("bad_funcgraph")
        rec["depth"] = i32(depth)
        rec["duration_ns"] = dur
        stack = self.fg_stack.setdefault(cpu, {})
        if s[j:j + 1] == b"}":
            c = s.find(b"/* ", j, e)
            if c >= 0:
                m = re.compile(rb"[^ \t*]*").match(s, c + 3, e)
                rec["func"] = dec(m.group())
            else:
                rec["func"] = stack.get(depth)
            return
        m = re.compile(rb"[^(; {]*").match(s, j, e)
        rec["func"] = dec(m.group())
        stack[depth] = rec["func"]

    # event lines ----------------------------------------------------------------------------
    _ANCHOR = re.compile(rb"""
        (?P<pid>[0-9]+) [ \t]+
        (?:
            (?: \( [ \t]* (?: (?P<dashes>-+) | (?P<tgid>\+?[0-9]+) ) [ \t]* \) [ \t]* )?
            \[ (?P<cpu>[0-9]+) \]
          |
            (?P<lat>[0-9][A-Za-z0-9.]*)
        )
    """, re.X)

    def prefix(self, s, p):
        """`comm-pid [(tgid)] [cpu] [flags] ts:` or the latency format `comm-pid cpuFLAGS ts:`.
        The comm ends at the first `-<digits>` followed by blanks and then `(tgid) [cpu]`,
        `[cpu]` or a `<cpu><flags>` token."""
        e = len(s)
        x = Prefix()
        d = p
        while True:
            d = s.find(b"-", d + 1)
            if d < 0:
                raise Malformed("no_prefix")
            m = self._ANCHOR.match(s, d + 1)
            # a pid past int32 is no anchor (the pid column is int32)
            if not m or int(m.group("pid")) > INT32_MAX:
                continue
            if m.group("cpu") is not None:
                # NOTE: a CPU number over 2**20 is no anchor (as in the latency format)
                if int(m.group("cpu")) > MAX_CPU:
                    continue
                if m.group("tgid") is not None and int(m.group("tgid")) > INT32_MAX:
                    continue
                tgid = -1 if m.group("tgid") is None else int(m.group("tgid"))
                # NOTE: a tgid belongs to the anchor taken, never to an earlier candidate.
                x.cpu, x.tgid, x.flags = int(m.group("cpu")), tgid, b""
                t = skip_ws(s, m.end())
                if t < e and not is_digit(s[t]):
                    t = self.flags_column(s, t, x, glued_ts=True)
                elif t < e:
                    te = re.compile(rb"[0-9.]*").match(s, t).end()
                    if te < e and s[te] not in b" \t:u":
                        # a token of flag characters that starts with a digit
                        t = self.flags_column(s, t, x)
                break
            # latency format: the CPU number glued to the flags (`5d..2.`)
            # NOTE: all the leading digits are the CPU (none spill into the flags), and a
            # CPU number over 2**20 is no anchor.
            tok = m.group("lat")
            cpu_digits = re.match(rb"[0-9]+", tok).group()
            if int(cpu_digits) > MAX_CPU:
                continue
            lflags = tok[len(cpu_digits):]
            after = m.end()
            if not lflags or (after < e and s[after] not in b" \t:"):
                continue
            if after < e and s[after:after + 1] == b":":
                # the timestamp runs into the flags (raw TSC, `trace-cmd report -l`): 5 wide
                if len(lflags) < 6:
                    continue
                lflags = lflags[:5]
                after = m.start("lat") + len(cpu_digits) + 5
            elif len(lflags) > 8:
                continue
            x.cpu, x.tgid, x.flags = int(cpu_digits), -1, lflags
            t = skip_ws(s, after)
            break
        x.comm = s[p:d]
        x.pid = int(m.group("pid"))
        x.ts, x.rest = self.timestamp(s, t)
        return x

    def flags_column(self, s, t, x, glued_ts=False):
        """The irq-info flags token at t (at most 8 characters); with glued_ts, trace-cmd >=
        3.2's 5 flags overflowed by a raw TSC time stamp (`d..1.303280081944169:`)."""
        te = tok_end(s, t)
        tok = s[t:te]
        if glued_ts and len(tok) > 8 and tok.endswith(b":") and tok[5:-1].isdigit():
            x.flags = tok[:5]
            return t + 5
        if len(tok) > 8:
            raise Malformed("bad_flags")
        x.flags = tok
        return skip_ws(s, te)

    _TS_INT = re.compile(rb"[0-9]*")

    def timestamp(self, s, t):
        """`SSS.FFFFFF` (1-9 decimals, ns exactly), an integer clock `NNNN`, or the latency
        `NNNus[mark]`; then blanks and ':'.  (ts, position after ':')."""
        e = len(s)
        m = self._TS_INT.match(s, t)
        digits = m.group()
        i = m.end()
        if not digits:
            raise Malformed("bad_timestamp")
        sec = int(digits)
        if sec > UINT64_MAX - 6:
            # the integer part overflows the parser's 64-bit accumulator
            raise Malformed("timestamp_range")
        if s[i:i + 1] == b".":
            m = self._TS_INT.match(s, i + 1)
            frac = m.group()
            i = m.end()
            if len(frac) > 9 or not frac:
                raise Malformed("bad_timestamp")
            if sec > 9223372035:
                raise Malformed("timestamp_range")
            ts = sec * 10**9 + int(frac.ljust(9, b"0"))
        elif s.startswith(b"us", i):
            i += 2
            if i < e and s[i] in FLAG_MARKS:
                i += 1
            if sec > 9223372036854775:
                raise Malformed("timestamp_range")
            ts = sec * 1000
        else:
            if sec > INT64_MAX:
                raise Malformed("timestamp_range")
            ts = sec
        i = skip_ws(s, i)
        if s[i:i + 1] != b":":
            raise Malformed("bad_timestamp")
        return ts, i + 1

    _NAME = re.compile(rb"[^:( \t]*")

    def event_name(self, s, n0):
        """(event name, payload start).  `name: ` names the event; lines without one are
        `<stack trace>`, `<user stack trace>`, syscalls `sys_x(args)` / `sys_x -> ret`, and
        the function tracer's `func <-parent`."""
        e = len(s)
        n1 = self._NAME.match(s, n0).end()
        if n1 < e and s[n1:n1 + 1] == b":" and n1 > n0 and (n1 + 1 == e or s[n1 + 1] in WS):
            return s[n0:n1], skip_ws(s, n1 + 1)
        if s.startswith(b"<stack trace", n0):
            return b"kernel_stack", n0
        if s.startswith(b"<user stack trace", n0):
            return b"user_stack", n0
        word = s[n0:n1]
        if word.startswith(b"sys_") and 4 < len(word) < 140:
            if s[n1:n1 + 1] == b"(":
                return b"sys_enter_" + word[4:], n1
            if s.startswith(b" -> ", n1):
                return b"sys_exit_" + word[4:], n1 + 4
        return b"function", n0

    def event_line(self, s, p, lineno):
        x = self.prefix(s, p)
        e = len(s)
        n0 = skip_ws(s, x.rest)
        if n0 >= e:
            raise Malformed("no_event")
        name, pl_start = self.event_name(s, n0)
        comm = dec(x.comm)
        if not self.wanted(name) or not self.cpu_time_ok(x.cpu, x.ts):
            self.note(x, comm, False)
            return "filtered"
        layout = EV.EVENT_LAYOUT.get(dec(name), "generic")
        line_pid_ok = self.pid_ok(x.pid)
        line_comm_ok = self.comm_ok(comm)
        if layout not in SCHED_LAYOUTS and not (line_pid_ok and line_comm_ok):
            self.note(x, comm, False)
            return "filtered"
        rec = self.blank(layout)
        rec.update(ts=x.ts, line=lineno, cpu=i32(x.cpu), pid=i32(x.pid), tgid=i32(x.tgid),
                   comm=comm, flags=s8(x.flags))
        pl = s[pl_start:rtrim(s, pl_start, e)]
        PAYLOAD[layout](self, rec, pl, name, x.cpu)
        if layout in SCHED_LAYOUTS:
            # pids= / comm=: each filter is met by the line's task or by a task the payload
            # names.
            pid_cols, comm_cols = PAYLOAD_TASKS[layout]
            pid_ok = line_pid_ok or (self.pids is not None
                                     and any(rec[c] in self.pids for c in pid_cols))
            comm_ok = line_comm_ok or any(self.comm_ok(rec[c]) for c in comm_cols
                                          if rec[c] is not None)
            if not (pid_ok and comm_ok):
                self.note(x, comm, False)
                return "filtered"
        self.commit(name, rec)
        self.note(x, comm, True)
        return "event"

    def note(self, x, comm, kept):
        """Remember the event line: the stack frames after it take its task, CPU and time."""
        self.last = dict(kept=kept, ts=x.ts, cpu=i32(x.cpu), pid=i32(x.pid), tgid=i32(x.tgid),
                         comm=comm, flags=s8(x.flags))

    # -- payload parsers: fill rec from pl, raise Malformed ---------------------------------
    def pl_text(self, rec, pl, name, cpu):
        rec["text"] = dec(pl)

    def pl_generic(self, rec, pl, name, cpu):
        rec["payload"] = dec(pl)

    def pl_none(self, rec, pl, name, cpu):
        pass   # stack_frame named on an event line: no payload fields

    def pl_sched_switch(self, rec, pl, name, cpu):
        if pl.startswith(b"prev_comm="):
            c, q = kv_comm(pl, 0, b" prev_comm=", b" prev_pid=")
            rec["prev_comm"] = dec(c)
            v, q = kv_int(pl, q, b" prev_pid=", True)
            rec["prev_pid"] = r32(v)
            v, q = kv_int(pl, q, b" prev_prio=", True)
            rec["prev_prio"] = r32(v)
            sv = kv(pl, q, b" prev_state=")
            st = None if sv is None else parse_state(pl, sv)
            if st is None:
                raise bad_field()
            rec["prev_state"] = st
            c, q = kv_comm(pl, sv, b" next_comm=", b" next_pid=")
            rec["next_comm"] = dec(c)
            v, q = kv_int(pl, q, b" next_pid=", True)
            rec["next_pid"] = r32(v)
            v, q = kv_int(pl, q, b" next_prio=", True)
            rec["next_prio"] = r32(v)
            return
        # trace-cmd's sched plugin: `prev:pid [prio] S ==> next:pid [prio]`
        arrow = pl.find(b" ==> ")
        if arrow < 0:
            raise bad_field()
        r = comm_pid_prio(pl, 0, arrow)
        if r is None:
            raise bad_field()
        ce, pid, prio, q = r
        rec.update(prev_comm=dec(pl[:ce]), prev_pid=r32(pid), prev_prio=r32(prio))
        st = parse_state(pl, skip_ws(pl, q, arrow), arrow)
        if st is None:
            raise bad_field()
        rec["prev_state"] = st
        start = arrow + 5
        r = comm_pid_prio(pl, start, len(pl))
        if r is None:
            raise bad_field()
        ce, pid, prio, q = r
        rec.update(next_comm=dec(pl[start:ce]), next_pid=r32(pid), next_prio=r32(prio))

    def pl_sched_wake(self, rec, pl, name, cpu):
        if pl.startswith(b"comm="):
            c, q = kv_comm(pl, 0, b" comm=", b" pid=")
            rec["task_comm"] = dec(c)
            v, q = kv_int(pl, q, b" pid=", True)
            rec["task_pid"] = r32(v)
            v, q = kv_int(pl, q, b" prio=", True)
            rec["prio"] = r32(v)
            v, q = kv_int(pl, q, b" success=", False)
            if v is not None:
                rec["success"] = r8(v)
            v, q = kv_int(pl, q, b" target_cpu=", False)
            if v is not None:
                rec["target_cpu"] = r32(v)
            return
        # trace-cmd's sched plugin: `comm:pid [prio] [success=1] CPU:005`
        r = comm_pid_prio(pl, 0, len(pl))
        if r is None:
            raise bad_field()
        ce, pid, prio, q = r
        rec.update(task_comm=dec(pl[:ce]), task_pid=r32(pid), prio=r32(prio))
        v, q = kv_int(pl, q, b" success=", False)
        if v is not None:
            rec["success"] = r8(v)
        k = pl.find(b" CPU:", q)
        if k >= 0:
            r = parse_i64(pl, k + 5)
            if r is None:
                raise bad_field()
            rec["target_cpu"] = r32(r[0])

    def task_pid(self, rec, pl, ckey=b" comm=", pkey=b" pid="):
        c, q = kv_comm(pl, 0, ckey, pkey)
        rec["task_comm"] = dec(c)
        v, q = kv_int(pl, q, pkey, True)
        rec["task_pid"] = r32(v)
        return q

    def pl_migrate(self, rec, pl, name, cpu):
        q = self.task_pid(rec, pl)
        v, q = kv_int(pl, q, b" prio=", False)
        if v is not None:
            rec["prio"] = r32(v)
        v, q = kv_int(pl, q, b" orig_cpu=", True)
        rec["orig_cpu"] = r32(v)
        v, q = kv_int(pl, q, b" dest_cpu=", True)
        rec["dest_cpu"] = r32(v)

    def pl_fork(self, rec, pl, name, cpu):
        if pl.startswith(b"parent_comm="):
            q = self.task_pid(rec, pl, b" parent_comm=", b" parent_pid=")
        else:
            q = self.task_pid(rec, pl)
        c, q = kv_comm(pl, q, b" child_comm=", b" child_pid=")
        rec["child_comm"] = dec(c)
        v, q = kv_int(pl, q, b" child_pid=", True)
        rec["child_pid"] = r32(v)

    def pl_proc_task(self, rec, pl, name, cpu):
        q = self.task_pid(rec, pl)
        v, q = kv_int(pl, q, b" prio=", False)
        if v is not None:
            rec["prio"] = r32(v)

    def pl_exec(self, rec, pl, name, cpu):
        v = kv(pl, 0, b" filename=")
        if v is None:
            raise bad_field()
        k = pl.find(b" pid=", v)
        if k < 0:
            raise bad_field()
        rec["filename"] = dec(pl[v:k])
        n, k = kv_int(pl, k, b" pid=", True)
        rec["task_pid"] = r32(n)
        n, k = kv_int(pl, k, b" old_pid=", False)
        if n is not None:
            rec["old_pid"] = r32(n)

    def pl_stat_runtime(self, rec, pl, name, cpu):
        q = self.task_pid(rec, pl)
        v, q = kv_int(pl, q, b" runtime=", True)
        rec["runtime"] = v
        v, q = kv_int(pl, q, b" vruntime=", False)
        if v is not None:
            rec["vruntime"] = v

    def pl_stat_delay(self, rec, pl, name, cpu):
        q = self.task_pid(rec, pl)
        v, q = kv_int(pl, q, b" delay=", True)
        rec["delay"] = v

    def pl_kvm(self, rec, pl, name, cpu):
        """kvm_entry / kvm_exit: words `key value` or `key=value` (kernel, trace-cmd plugin,
        raw), `info A B` (bare hex pair); other words are skipped."""
        if not pl:
            return   # trace-cmd prints the name alone when its plugin lacks the fields
        exit_ = "reason" in rec
        e = len(pl)
        has_reason = False
        w = 0
        while True:
            w = skip_ws(pl, w)
            if w >= e:
                break
            we_tok = tok_end(pl, w)
            we = we_tok - 1 if pl[we_tok - 1:we_tok] == b"," else we_tok
            word = pl[w:we]
            key = word.split(b"=", 1)[0]

            def value():
                if b"=" in word:
                    return w + word.index(b"=") + 1, we
                v = skip_ws(pl, we)
                return v, tok_end(pl, v)

            if key in (b"vcpu", b"vcpu_id"):
                v, ve = value()
                r = parse_i64(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec["vcpu"] = r32(r[0])
            elif key in (b"rip", b"guest_rip"):
                v, ve = value()
                if ve > v and pl[ve - 1:ve] == b",":
                    ve -= 1
                r = parse_hex(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec["rip"] = r[0]
            elif exit_ and key in (b"reason", b"exit_reason"):
                v, ve = value()
                if ve > v and pl[ve - 1:ve] == b",":
                    ve -= 1
                if ve == v:
                    raise bad_field()
                rec["reason"] = dec(pl[v:ve])
                has_reason = True
            elif exit_ and key == b"info":
                v = skip_ws(pl, we)
                ve = tok_end(pl, v)
                r = parse_hex(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec["info1"] = r[0]
                v = skip_ws(pl, ve)
                ve = tok_end(pl, v)
                r = parse_hex(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec["info2"] = r[0]
            elif exit_ and key in (b"info1", b"info2"):
                v, ve = value()
                r = parse_hex(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec["info1" if key == b"info1" else "info2"] = r[0]
            elif exit_ and key in (b"intr_info", b"error_code"):
                v, ve = value()
                r = parse_hex(pl, v, ve)
                if r is None:
                    raise bad_field()
                rec[key.decode()] = i64(r[0])
            else:
                ve = we_tok
            w = ve
        if exit_ and not has_reason:
            raise bad_field()

    def pl_kvm_wakeup(self, rec, pl, name, cpu):
        # kernel: `wait time 3279293 ns, polling valid` (or `poll time`; older: no polling)
        for lead, waited in ((b"wait time ", 1), (b"poll time ", 0)):
            if pl.startswith(lead):
                rec["waited"] = waited
                r = parse_i64(pl, len(lead))
                if r is None:
                    raise bad_field()
                rec["ns"] = r[0]
                rest = pl[r[1]:]
                if b"polling valid" in rest:
                    rec["valid"] = 1
                elif b"polling invalid" in rest:
                    rec["valid"] = 0
                return
        # raw: ns=N waited=1 valid=1
        v, q = kv_int(pl, 0, b" ns=", True)
        rec["ns"] = v
        v, q = kv_int(pl, q, b" waited=", False)
        if v is not None:
            rec["waited"] = r8(v)
        v, q = kv_int(pl, q, b" valid=", False)
        if v is not None:
            rec["valid"] = r8(v)

    def pl_irq_entry(self, rec, pl, name, cpu):
        v, q = kv_int(pl, 0, b" irq=", True)
        rec["irq"] = r32(v)
        n = kv(pl, q, b" name=")
        if n is not None:
            rec["name"] = dec(pl[n:])

    def pl_irq_exit(self, rec, pl, name, cpu):
        v, q = kv_int(pl, 0, b" irq=", True)
        rec["irq"] = r32(v)
        r = kv(pl, q, b" ret=")
        if r is None:
            return
        if pl.startswith(b"handled", r):
            rec["ret"] = 1
        elif pl.startswith(b"unhandled", r):
            rec["ret"] = 0
        else:
            n = parse_i64(pl, r)
            if n is None:
                raise bad_field()
            rec["ret"] = r32(n[0])

    def pl_softirq(self, rec, pl, name, cpu):
        v, q = kv_int(pl, 0, b" vec=", True)
        rec["vec"] = r32(v)
        a = pl.find(b"[action=", q)
        if a >= 0:
            a += 8
            ae = pl.find(b"]", a)
            rec["action"] = dec(pl[a:ae if ae >= 0 else len(pl)])

    def pl_block(self, rec, pl, name, cpu):
        """`M,m RWBS BYTES (CMD) SECTOR + NR [IOPRIO] [COMM]` (issue/insert), `M,m RWBS (CMD)
        SECTOR + NR [IOPRIO] [ERROR]` (complete), or raw key=value."""
        e = len(pl)
        if kv(pl, 0, b" dev=") is not None and kv(pl, 0, b" sector=") is not None:
            dev, q = kv_int(pl, 0, b" dev=", True)
            dev &= UINT64_MAX
            rec["dev_major"] = r32(dev >> 20)   # a dev whose major does not fit is malformed
            rec["dev_minor"] = dev & 0xFFFFF
            v, q = kv_int(pl, q, b" sector=", True)
            rec["sector"] = v
            # NOTE: bad values of these optional keys are ignored (as in the parser)
            v, q = kv_int_lenient(pl, q, b" nr_sector=")
            if v is not None:
                rec["nr_sector"] = r32(v)
            v, q = kv_int_lenient(pl, q, b" bytes=")
            if v is not None:
                rec["bytes"] = v
            v, q = kv_int_lenient(pl, q, b" error=")
            if v is not None:
                rec["error"] = r32(v)
            r = kv(pl, q, b" rwbs=")
            if r is not None:
                rec["rwbs"] = dec(pl[r:tok_end(pl, r)])
            c = kv(pl, q, b" comm=")
            if c is not None:
                ce = pl.find(b" cmd=", c)
                rec["rq_comm"] = dec(pl[c:ce if ce >= 0 else len(pl)])
            return
        r = parse_i64(pl, 0)
        if r is None or pl[r[1]:r[1] + 1] != b",":
            raise bad_field()
        rec["dev_major"] = r32(r[0])
        r = parse_i64(pl, r[1] + 1)
        if r is None:
            raise bad_field()
        rec["dev_minor"] = r32(r[0])
        q = skip_ws(pl, r[1])
        te = tok_end(pl, q)
        rec["rwbs"] = dec(pl[q:te])
        q = skip_ws(pl, te)
        if q < e and is_digit(pl[q]):
            r = parse_i64(pl, q)
            if r is None:
                raise bad_field()
            rec["bytes"] = r[0]
            q = skip_ws(pl, r[1])
        if pl[q:q + 1] != b"(":
            raise bad_field()
        q = pl.find(b")", q)
        if q < 0:
            raise bad_field()
        q = skip_ws(pl, q + 1)
        r = parse_u64(pl, q)   # printed unsigned: (u64)-1 (no sector) becomes -1
        if r is None:
            raise bad_field()
        rec["sector"] = i64(r[0])
        q = skip_ws(pl, r[1])
        if pl[q:q + 1] == b"+":
            r = parse_i64(pl, skip_ws(pl, q + 1))
            if r is None:
                raise bad_field()
            rec["nr_sector"] = r32(r[0])
            q = r[1]
        # the last [..] is the comm (issue/insert) or the error (complete)
        lb = pl.rfind(b"[", q)
        if lb >= 0 and pl.endswith(b"]"):
            inner = pl[lb + 1:e - 1]
            err = int_all(inner) if name == b"block_rq_complete" else None
            if err is not None:
                rec["error"] = r32(err)
            else:
                rec["rq_comm"] = dec(inner)

    def pl_funcgraph(self, rec, pl, name, cpu):
        """trace-cmd's funcgraph_entry / funcgraph_exit: raw `func=0x.. depth=N` or the
        function_graph text after the event name."""
        v = kv(pl, 0, b" func=")
        if v is not None:
            rec["func"] = dec(pl[v:tok_end(pl, v)])
            d, _ = kv_int_lenient(pl, 0, b" depth=")
            if d is not None:
                rec["depth"] = r32(d)
            return
        r = self.fg_duration(pl, 0)
        if r is None:
            raise Malformed("bad_funcgraph")
        q, dur = r
        self.fg_body(rec, pl, q, cpu, dur, 2)


def _int_plus(b):
    """b is exactly an optionally '+'-signed decimal int64 (a pid after the comm's '-')."""
    m = re.fullmatch(rb"\+?[0-9]+", b)
    if not m or int(b) > INT64_MAX:
        return None
    return int(b)


PAYLOAD = {
    "generic": RefParser.pl_generic,
    "sched_switch": RefParser.pl_sched_switch,
    "sched_wake": RefParser.pl_sched_wake,
    "sched_migrate_task": RefParser.pl_migrate,
    "sched_process_fork": RefParser.pl_fork,
    "sched_process_task": RefParser.pl_proc_task,
    "sched_process_exec": RefParser.pl_exec,
    "sched_stat_runtime": RefParser.pl_stat_runtime,
    "sched_stat_delay": RefParser.pl_stat_delay,
    "kvm_entry": RefParser.pl_kvm,
    "kvm_exit": RefParser.pl_kvm,
    "kvm_vcpu_wakeup": RefParser.pl_kvm_wakeup,
    "irq_handler_entry": RefParser.pl_irq_entry,
    "irq_handler_exit": RefParser.pl_irq_exit,
    "softirq": RefParser.pl_softirq,
    "block_rq": RefParser.pl_block,
    "text": RefParser.pl_text,
    "funcgraph": RefParser.pl_funcgraph,
    "stack_frame": RefParser.pl_none,
}
assert set(PAYLOAD) == set(EV.LAYOUTS)


def _time_arg(v):
    """start/end: an int is in the trace's unit; a float or str is seconds (str may end in
    s, ms, us, ns)."""
    if v is None or isinstance(v, int):
        return v
    if isinstance(v, float):
        num, unit = repr(v), "s"
    else:
        m = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(s|ms|us|ns)?\s*", v)
        if not m:
            raise ValueError(v)
        num, unit = m.group(1), m.group(2) or "s"
    return int(Decimal(num) * {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit])


def read_input(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        data = Path(path_or_bytes).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def refparse(path_or_bytes, **filters):
    """Parse a whole log (path, or bytes; gzip is undone) with the reference parser."""
    p = RefParser(**filters)
    p.parse(read_input(path_or_bytes))
    return p.result()
