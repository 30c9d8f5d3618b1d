# Tables lowered from events.py at import: included by _ftparse.pyx (one compilation unit).
# The C side indexes them by the enums of _ftparse.pxd; each is checked against events.py.

_LAYOUT_ORDER = ("generic", "sched_switch", "sched_wake", "sched_migrate_task",
                 "sched_process_fork", "sched_process_task", "sched_process_exec",
                 "sched_stat_runtime", "sched_stat_delay", "kvm_entry", "kvm_exit",
                 "kvm_vcpu_wakeup", "irq_handler_entry", "irq_handler_exit", "softirq",
                 "block_rq", "text", "funcgraph", "stack_frame")
if tuple(_ev.LAYOUTS) != _LAYOUT_ORDER:
    raise ImportError("ftrace_fast.events.LAYOUTS does not match the parser's layout table; "
                      "rebuild the extension (pip install .)")


# The column each O_* constant locates, looked up in events.py at import: one line per
# constant, so a renamed or reordered constant cannot pair with another's column.
_OFFSETS = {
    O_PAYLOAD_OFF: ("generic", "payload_off"),
    O_PAYLOAD_LEN: ("generic", "payload_len"),
    O_SW_PREV_COMM: ("sched_switch", "prev_comm"),
    O_SW_PREV_PID: ("sched_switch", "prev_pid"),
    O_SW_PREV_PRIO: ("sched_switch", "prev_prio"),
    O_SW_PREV_STATE: ("sched_switch", "prev_state"),
    O_SW_NEXT_COMM: ("sched_switch", "next_comm"),
    O_SW_NEXT_PID: ("sched_switch", "next_pid"),
    O_SW_NEXT_PRIO: ("sched_switch", "next_prio"),
    O_WK_COMM: ("sched_wake", "task_comm"),
    O_WK_PID: ("sched_wake", "task_pid"),
    O_WK_PRIO: ("sched_wake", "prio"),
    O_WK_TARGET: ("sched_wake", "target_cpu"),
    O_WK_SUCCESS: ("sched_wake", "success"),
    O_MG_COMM: ("sched_migrate_task", "task_comm"),
    O_MG_PID: ("sched_migrate_task", "task_pid"),
    O_MG_PRIO: ("sched_migrate_task", "prio"),
    O_MG_ORIG: ("sched_migrate_task", "orig_cpu"),
    O_MG_DEST: ("sched_migrate_task", "dest_cpu"),
    O_FK_COMM: ("sched_process_fork", "task_comm"),
    O_FK_PID: ("sched_process_fork", "task_pid"),
    O_FK_CCOMM: ("sched_process_fork", "child_comm"),
    O_FK_CPID: ("sched_process_fork", "child_pid"),
    O_PT_COMM: ("sched_process_task", "task_comm"),
    O_PT_PID: ("sched_process_task", "task_pid"),
    O_PT_PRIO: ("sched_process_task", "prio"),
    O_EX_FILE: ("sched_process_exec", "filename"),
    O_EX_PID: ("sched_process_exec", "task_pid"),
    O_EX_OLDPID: ("sched_process_exec", "old_pid"),
    O_SR_COMM: ("sched_stat_runtime", "task_comm"),
    O_SR_PID: ("sched_stat_runtime", "task_pid"),
    O_SR_RUNTIME: ("sched_stat_runtime", "runtime"),
    O_SR_VRUNTIME: ("sched_stat_runtime", "vruntime"),
    O_SD_COMM: ("sched_stat_delay", "task_comm"),
    O_SD_PID: ("sched_stat_delay", "task_pid"),
    O_SD_DELAY: ("sched_stat_delay", "delay"),
    O_KE_VCPU: ("kvm_entry", "vcpu"),
    O_KE_RIP: ("kvm_entry", "rip"),
    O_KX_VCPU: ("kvm_exit", "vcpu"),
    O_KX_REASON: ("kvm_exit", "reason"),
    O_KX_RIP: ("kvm_exit", "rip"),
    O_KX_INFO1: ("kvm_exit", "info1"),
    O_KX_INFO2: ("kvm_exit", "info2"),
    O_KX_INTR: ("kvm_exit", "intr_info"),
    O_KX_ERR: ("kvm_exit", "error_code"),
    O_KW_NS: ("kvm_vcpu_wakeup", "ns"),
    O_KW_WAITED: ("kvm_vcpu_wakeup", "waited"),
    O_KW_VALID: ("kvm_vcpu_wakeup", "valid"),
    O_IE_IRQ: ("irq_handler_entry", "irq"),
    O_IE_NAME: ("irq_handler_entry", "name"),
    O_IX_IRQ: ("irq_handler_exit", "irq"),
    O_IX_RET: ("irq_handler_exit", "ret"),
    O_SI_VEC: ("softirq", "vec"),
    O_SI_ACTION: ("softirq", "action"),
    O_BK_MAJOR: ("block_rq", "dev_major"),
    O_BK_MINOR: ("block_rq", "dev_minor"),
    O_BK_RWBS: ("block_rq", "rwbs"),
    O_BK_BYTES: ("block_rq", "bytes"),
    O_BK_SECTOR: ("block_rq", "sector"),
    O_BK_NR: ("block_rq", "nr_sector"),
    O_BK_ERROR: ("block_rq", "error"),
    O_BK_COMM: ("block_rq", "rq_comm"),
    O_TX_OFF: ("text", "text_off"),
    O_TX_LEN: ("text", "text_len"),
    O_FG_DEPTH: ("funcgraph", "depth"),
    O_FG_FUNC: ("funcgraph", "func"),
    O_FG_DUR: ("funcgraph", "duration_ns"),
    O_SF_FUNC: ("stack_frame", "func"),
    O_SF_ADDR: ("stack_frame", "addr"),
}

cdef int32_t OFF[NOFFS]

def _init_offsets():
    cdef int i
    if sorted(_OFFSETS) != list(range(NOFFS)):
        raise ImportError("_OFFSETS does not name every O_* constant once")
    for i, (layout, name) in _OFFSETS.items():
        cols = {c[0]: c[2] for c in _ev.layout_columns(layout)}
        OFF[i] = cols[name]
    cols = {c[0]: c[2] for c in _ev.layout_columns("generic")}
    if (cols["ts"], cols["line"], cols["cpu"], cols["pid"], cols["tgid"], cols["comm"],
            cols["flags"]) != (C_TS, C_LINE, C_CPU, C_PID, C_TGID, C_COMM, C_FLAGS):
        raise ImportError("common column layout mismatch")

def _offset_table():
    """{O_* constant: (layout, column, byte offset the C side uses)}, for the tests."""
    return {i: (layout, name, OFF[i]) for i, (layout, name) in _OFFSETS.items()}

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
