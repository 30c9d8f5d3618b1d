"""Record layouts of the events the parser knows, declared as data.

Every event record starts with the common columns (:data:`COMMON`), then the typed fields of its
layout.  The Cython parser lowers these declarations once, at start-up, into a table of byte
offsets; NumPy sees the very same bytes through :func:`dtype_for`.

Field kinds (the second item of each field):

``i1 i4 i8 u8``
    integers of that many bytes (signed, ``u8`` unsigned); a value absent from the line is -1
    (``u8``: 0).
``comm``
    int32 id into ``Trace.comms`` (task names), -1 when absent.
``sym``
    int32 id into ``Trace.symbols`` (exit reasons, irq and softirq names, functions, ...), -1
    when absent.
``text``
    a variable-length string kept in ``Trace.text_arena``: two columns ``<name>_off`` (int64)
    and ``<name>_len`` (int32); ``Trace.text(event, field)`` decodes them.
``state``
    int32 bit set of a task state as printed (see :data:`STATE_BITS`).

A field named in the kernel's format differently from the column name carries the kernel name
as its third item (``task_pid`` is the kernel's ``pid``): the common columns already use
``comm`` and ``pid`` for the task of the line.  ``Trace.df()`` restores the kernel names.
"""

from __future__ import annotations

import numpy as np

#: Common columns of every event: (name, numpy type, doc).
COMMON = (
    ("ts", "i8", "timestamp: ns for decimal-second clocks, raw ticks for integer clocks"),
    ("line", "i8", "1-based line number in the source"),
    ("cpu", "i4", "CPU of the line (-1 when the line shows none)"),
    ("pid", "i4", "pid (thread id) of the task of the line, -1 when unknown"),
    ("tgid", "i4", "thread-group id from the record-tgid column; -1 when absent or '-----'"),
    ("comm", "i4", "id into Trace.comms of the task of the line (-1 when unknown)"),
    ("flags", "S8", "irq-info flag characters as printed ('' when the log has none)"),
)

COMMON_SIZE = 40  # bytes: 8 + 8 + 4 * 4 + 8

#: Task-state letters and the bit each sets in a ``state`` column.  The first eight follow the
#: kernel's report layout since 4.14 (S D T t X Z P I), so a numeric prev_state (``trace-cmd
#: report -R``, LISA's fixtures) maps bit for bit; the rest are letters older kernels and
#: trace-cmd print.  ``R`` is the empty set.
STATE_BITS = {
    "S": 0x1, "D": 0x2, "T": 0x4, "t": 0x8, "X": 0x10, "Z": 0x20, "P": 0x40, "I": 0x80,
    "K": 0x100, "W": 0x200, "x": 0x400, "N": 0x800, "n": 0x1000,
}
#: ``+`` after the letters (``R+``): the task was preempted while runnable.
STATE_PREEMPTED = 0x10000
#: the state was printed as a number (trace-cmd report -R, old reports): its low byte maps bit
#: for bit onto the letters above, and any higher bit set (the preempt marker of the kernel that
#: wrote it: 0x100, 0x800 or 0x1000 depending on the version) adds STATE_PREEMPTED.
STATE_NUMERIC = 0x20000
#: a letter outside the table above.
STATE_UNKNOWN_LETTER = 0x40000


def state_string(bits: int) -> str:
    """The letters of a ``state`` bit set, as the kernel would print them (``R+``, ``D|K``)."""
    letters = [ch for ch, b in STATE_BITS.items() if bits & b]
    s = "|".join(letters) if letters else "R"
    if bits & STATE_UNKNOWN_LETTER:
        s += "?"
    if bits & STATE_PREEMPTED:
        s += "+"
    return s


_SCHED_WAKE = (
    ("task_comm", "comm", "comm"),
    ("task_pid", "i4", "pid"),
    ("prio", "i4"),
    ("target_cpu", "i4"),
    ("success", "i1"),
)
_SCHED_TASK = (("task_comm", "comm", "comm"), ("task_pid", "i4", "pid"), ("prio", "i4"))
_SCHED_DELAY = (("task_comm", "comm", "comm"), ("task_pid", "i4", "pid"), ("delay", "i8"))
_BLOCK = (
    ("dev_major", "i4"),
    ("dev_minor", "i4"),
    ("rwbs", "sym"),
    ("bytes", "i8"),
    ("sector", "i8"),
    ("nr_sector", "i4"),
    ("error", "i4"),
    ("rq_comm", "comm", "comm"),
)
_FUNCGRAPH = (("depth", "i4"), ("func", "sym"), ("duration_ns", "i8"))

#: layout name -> typed fields.  The order of this table is the layout id used by the parser.
LAYOUTS = {
    "generic": (("payload", "text"),),
    "sched_switch": (
        ("prev_comm", "comm"),
        ("prev_pid", "i4"),
        ("prev_prio", "i4"),
        ("prev_state", "state"),
        ("next_comm", "comm"),
        ("next_pid", "i4"),
        ("next_prio", "i4"),
    ),
    "sched_wake": _SCHED_WAKE,
    "sched_migrate_task": (
        ("task_comm", "comm", "comm"),
        ("task_pid", "i4", "pid"),
        ("prio", "i4"),
        ("orig_cpu", "i4"),
        ("dest_cpu", "i4"),
    ),
    "sched_process_fork": (
        ("task_comm", "comm", "comm"),
        ("task_pid", "i4", "pid"),
        ("child_comm", "comm"),
        ("child_pid", "i4"),
    ),
    "sched_process_task": _SCHED_TASK,
    "sched_process_exec": (("filename", "sym"), ("task_pid", "i4", "pid"), ("old_pid", "i4")),
    "sched_stat_runtime": (
        ("task_comm", "comm", "comm"),
        ("task_pid", "i4", "pid"),
        ("runtime", "i8"),
        ("vruntime", "i8"),
    ),
    "sched_stat_delay": _SCHED_DELAY,
    "kvm_entry": (("vcpu", "i4"), ("rip", "u8")),
    "kvm_exit": (
        ("vcpu", "i4"),
        ("reason", "sym"),
        ("rip", "u8"),
        ("info1", "u8"),
        ("info2", "u8"),
        ("intr_info", "i8"),
        ("error_code", "i8"),
    ),
    "kvm_vcpu_wakeup": (("ns", "i8"), ("waited", "i1"), ("valid", "i1")),
    "irq_handler_entry": (("irq", "i4"), ("name", "sym")),
    "irq_handler_exit": (("irq", "i4"), ("ret", "i4")),
    "softirq": (("vec", "i4"), ("action", "sym")),
    "block_rq": _BLOCK,
    "text": (("text", "text"),),
    "funcgraph": _FUNCGRAPH,
    "stack_frame": (("func", "sym"), ("addr", "u8")),
}

#: event name -> layout name, for the events with typed columns.  Any other name is loaded with
#: the ``generic`` layout (its payload text kept).
EVENT_LAYOUT = {
    "sched_switch": "sched_switch",
    "sched_waking": "sched_wake",
    "sched_wakeup": "sched_wake",
    "sched_wakeup_new": "sched_wake",
    "sched_migrate_task": "sched_migrate_task",
    "sched_process_fork": "sched_process_fork",
    "sched_process_exit": "sched_process_task",
    "sched_process_free": "sched_process_task",
    "sched_process_wait": "sched_process_task",
    "sched_process_exec": "sched_process_exec",
    "sched_stat_runtime": "sched_stat_runtime",
    "sched_stat_wait": "sched_stat_delay",
    "sched_stat_sleep": "sched_stat_delay",
    "sched_stat_blocked": "sched_stat_delay",
    "sched_stat_iowait": "sched_stat_delay",
    "kvm_entry": "kvm_entry",
    "kvm_exit": "kvm_exit",
    "kvm_vcpu_wakeup": "kvm_vcpu_wakeup",
    "irq_handler_entry": "irq_handler_entry",
    "irq_handler_exit": "irq_handler_exit",
    "softirq_entry": "softirq",
    "softirq_exit": "softirq",
    "softirq_raise": "softirq",
    "block_rq_issue": "block_rq",
    "block_rq_insert": "block_rq",
    "block_rq_complete": "block_rq",
    "tracing_mark_write": "text",
    "funcgraph_entry": "funcgraph",
    "funcgraph_exit": "funcgraph",
    "stack_frame": "stack_frame",
}

#: Names the parser gives to lines that carry no ``name:`` of their own.
#: function tracer ``func <-parent`` -> ``function``; ``<stack trace>`` -> ``kernel_stack``;
#: ``<user stack trace>`` -> ``user_stack``; ``=> frame`` lines -> ``stack_frame``; function_graph
#: lines -> ``funcgraph_entry`` / ``funcgraph_exit``; syscall lines ``sys_x(args)`` /
#: ``sys_x -> ret`` -> ``sys_enter_x`` / ``sys_exit_x``.

_KIND_DTYPE = {"i1": "i1", "i4": "i4", "i8": "i8", "u8": "u8", "comm": "i4", "sym": "i4", "state": "i4"}
_KIND_SIZE = {"i1": 1, "i4": 4, "i8": 8, "u8": 8, "comm": 4, "sym": 4, "state": 4}


def layout_columns(layout: str):
    """[(column name, numpy type, byte offset)] of a layout, common columns first.

    Fields are placed in declaration order, each aligned to its size; ``text`` fields take an
    int64 offset then an int32 length.  The record size is rounded up to 8 bytes.
    """
    cols = []
    off = 0
    for name, typ, _doc in COMMON:
        cols.append((name, typ, off))
        off += np.dtype(typ).itemsize
    assert off == COMMON_SIZE
    for field in LAYOUTS[layout]:
        name, kind = field[0], field[1]
        if kind == "text":
            off = (off + 7) & ~7
            cols.append((name + "_off", "i8", off))
            off += 8
            cols.append((name + "_len", "i4", off))
            off += 4
            continue
        size = _KIND_SIZE[kind]
        off = (off + size - 1) & ~(size - 1)
        cols.append((name, _KIND_DTYPE[kind], off))
        off += size
    return cols


def record_size(layout: str) -> int:
    cols = layout_columns(layout)
    name, typ, off = cols[-1]
    end = off + np.dtype(typ).itemsize
    return (end + 7) & ~7


def dtype_for(layout: str) -> np.dtype:
    cols = layout_columns(layout)
    return np.dtype(
        {
            "names": [c[0] for c in cols],
            "formats": [c[1] for c in cols],
            "offsets": [c[2] for c in cols],
            "itemsize": record_size(layout),
        }
    )


def field_kinds(layout: str) -> dict:
    """column name -> kind for the typed fields of a layout."""
    return {f[0]: f[1] for f in LAYOUTS[layout]}


def kernel_names(layout: str) -> dict:
    """column name -> the kernel's field name, where they differ."""
    return {f[0]: f[2] for f in LAYOUTS[layout] if len(f) > 2}


LAYOUT_IDS = {name: i for i, name in enumerate(LAYOUTS)}
