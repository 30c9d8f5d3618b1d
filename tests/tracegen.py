"""Writer of random, valid ftrace text logs together with the exact parse expected of them.

Every variant of the text format the parser reads can be produced (see :data:`VARIANTS`): the
kernel's ``trace`` file (4/5-char irq-info flags, none, record-tgid, 6/9-decimal or integer
timestamps, CRLF), ``trace_pipe`` with ``[LOST N EVENTS]`` lines, ``trace-cmd report`` (default,
``-R``, ``-l``, multi-file), the kernel latency format and ``ftrace_dump_on_oops`` output.

The line shapes follow the printing code of the kernel (``trace_output.c``: ``%16s-%-7d``,
``(%7d)``, ``[%03d]``, `` %5lu.%06lu``, `` %12llu``, latency ``%8.8s-%-7d %3d`` + `` %4lldus%c: ``)
and of trace-cmd (``%16s-%-5d [%03d]``, `` %5d.%06d:`` / ``%12d:``, event name + ``:`` padded
to 21 columns, latency ``%8.8s-%-5d %3d``), checked against the real files in
``/work/shared/corpus``.

Usage::

    import random, tracegen
    t = tracegen.generate(random.Random(1), "tracecmd")
    t.text          # the log, str
    t.data          # the log, bytes
    t.events        # [ExpectedEvent]: name, line, ts, cpu, pid, tgid, comm, flags, fields
    t.lost          # [(cpu, line, count)]
    t.n_lines, t.n_headers, t.clock

``rng`` may be any object with the ``random.Random`` interface (``hypothesis.strategies.randoms()``
gives shrinkable ones).  ``fields`` holds every typed column of the event's layout: comm and sym
kinds as the expected string (``None`` = absent, i.e. id -1), text kinds as str, integers as int;
:data:`ANY` marks a value this writer deliberately does not pin down.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import string
import sys

try:  # the package may not be importable yet (parser not built): fall back to the file
    from ftrace_fast import events as _events
except Exception:  # pragma: no cover - depends on the build state
    _p = os.path.join(os.path.dirname(__file__), os.pardir, "src", "ftrace_fast", "events.py")
    _spec = importlib.util.spec_from_file_location("_ftrace_fast_events", os.path.abspath(_p))
    _events = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _events
    _spec.loader.exec_module(_events)

EVENT_LAYOUT = _events.EVENT_LAYOUT
LAYOUTS = _events.LAYOUTS
STATE_BITS = _events.STATE_BITS
STATE_PREEMPTED = _events.STATE_PREEMPTED
STATE_NUMERIC = _events.STATE_NUMERIC


class _Any:
    def __repr__(self):
        return "ANY"

    def __eq__(self, other):
        return True

    def __hash__(self):
        return 0


#: a value the writer does not pin down (e.g. softirq action in ``-R`` output, which has only vec)
ANY = _Any()

VARIANTS = (
    "kernel5",  # 1. trace file, 5-char flags, header
    "kernel4",  # 2. 4-char flags, old 4-char header
    "kernel_noflags",  # 3. options/irq-info off
    "kernel_tgid",  # 4. record-tgid column, some (-------)/(-----)
    "kernel_ns",  # 5. 9-decimal timestamps
    "kernel_counter",  # 6. integer clock (counter or x86-tsc)
    "kernel_crlf",  # 7. CRLF line ends
    "trace_pipe",  # 8. no header, CPU:N [LOST M EVENTS] lines
    "tracecmd",  # 9. trace-cmd report, compact sched plugin payloads
    "tracecmd_raw",  # 10. trace-cmd report -R
    "tracecmd_latency",  # 11. trace-cmd report -l
    "dump",  # 12. ftrace_dump_on_oops: dmesg [ts] prefix on every line
    "tracecmd_multi",  # 13. trace-cmd report -i a.dat -i b.dat: file-name prefix
    "kernel_latency",  # kernel options/latency-format (what the dump prints on new kernels)
    "mixed",  # any kernel combination of the options above, drawn at random
    "tracecmd_tsc_flags",  # trace-cmd >= 3.2 (prints flags) over an x86-tsc trace: flags run into the ts
)

#: the anchor of the line prefix: a comm must not contain a match
PREFIX_ANCHOR = re.compile(r"-\d+\s+[\[(\d]")
#: the compact trace-cmd ``comm:pid [prio]`` anchor
COMPACT_ANCHOR = re.compile(r":\d+ \[")

COMM_POOL = (
    "CPU 0/KVM", "CPU 13/KVM", "kworker/u16:2", "kworker/0:1H", "gnome-shell", "a-1", "x y-2",
    "<idle>", "<...>", "swapper/0", "qemu-system-x86", "IO io1", "MainTaskLow:422", "Web Content",
    "jbd2/xvda1-8", "ksoftirqd/1", "rcu_preempt", "(sd-pam)", "C2 CompilerThre", "tmux: server",
    "sh", "1", "a+b", ":", ".", "-", "--", "-1", "a-1-2", "<", ">", "()", "x-1 y", "Binder:2030_3",
    "flush-8:0", "migration/12", "a b c d e f g h", "12345678901234", "-5-6-7", "a -1", "((x))",
    "ndroid.systemui", "irq/36-virtio1", "0", "a:1", "a:1 b", "<x>-3", "+", "kvm-nx-lpage-re",
    "cpus:2", "CPU:1", "(---)", "a > b", "1.5:", "5)x", "0) y", "12)",  # like function_graph's 'N) '
)
#: comms with '#': legal task names; a line whose comm starts with '#' is still an event line
#: ('        #x-12 [000] ...', and in latency format '#1234567-12   0d..2. ...' from column 0)
HASH_COMMS = ("#x", "#12345678", "a#b", "# x", "#", "##", "#1-2")
COMM_ALPHABET = string.ascii_letters + string.digits + " -:/.<>()_+"

STATE_LETTERS = tuple(STATE_BITS)  # S D T t X Z P I K W x N n
PLUGIN_LETTERS = "SDTtZXxW"  # libtraceevent 1.7 sched_switch plugin table
SOFTIRQ_NAMES = ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED",
                 "HRTIMER", "RCU")
EXIT_REASONS = ("EPT_VIOLATION", "HLT", "EXTERNAL_INTERRUPT", "IO_INSTRUCTION", "MSR_WRITE",
                "MSR_READ", "APIC_WRITE", "EPT_MISCONFIG", "CPUID", "PREEMPTION_TIMER", "VMCALL",
                "CR_ACCESS", "DR_ACCESS", "PAUSE_INSTRUCTION", "EXCEPTION_NMI", "npf", "msr",
                "vmmcall", "hlt", "intr", "INVALID_STATE", "TRIPLE_FAULT")
IRQ_NAMES = ("virtio1-req.0", "timer", "i8042", "arch_timer", "nvme0q3", "xhci_hcd",
             "eth0-TxRx-0", "ahci[0000:00:1f.2]", "acpi", "hpet", "IPI", "mmc0", "vfio-msix[0](0000:01:00.0)",
             "PCIe PME", "idma64.0 x")
RWBS = ("WS", "RS", "FF", "WSM", "R", "W", "N", "RA", "WFS", "D", "DS", "RM", "FWS", "WFUA", "RSM")
IOPRIO = ("be,0,4", "none,0,0", "0x2,0,4", "rt,0,2", "idle,0,0", "be,0,0")
UNKNOWN_NAMES = ("kvm_pio", "kvm_apic_ipi", "kvm_halt_poll_ns", "kvm_apic_accept_irq",
                 "cpu_idle", "cpu_frequency", "rcu_utilization", "hrtimer_start", "kvm_msr",
                 "sched_wake_idle_without_ipi", "mmap_lock_acquire_returned", "x", "a1",
                 "cobalt_switch_context", "kmalloc", "writeback_exec", "ipi_raise",
                 "sched_pi_setprio", "my_event_with_a_rather_long_name_0", "9p_client_req",
                 "name_of_20_chars_xyz", "name_of_21_chars_xyzw")
#: names the parser gives special meaning to: never used for random unknown events
RESERVED_NAMES = {"function", "kernel_stack", "user_stack", "stack_frame", "funcgraph_entry",
                  "funcgraph_exit", "print", "bprint", "bputs"}

KNOWN_EVENTS = (
    "sched_switch", "sched_waking", "sched_wakeup", "sched_wakeup_new", "sched_migrate_task",
    "sched_process_fork", "sched_process_exit", "sched_process_free", "sched_process_wait",
    "sched_process_exec", "sched_stat_runtime", "sched_stat_wait", "sched_stat_sleep",
    "sched_stat_blocked", "sched_stat_iowait", "kvm_entry", "kvm_exit", "kvm_vcpu_wakeup",
    "irq_handler_entry", "irq_handler_exit", "softirq_entry", "softirq_exit", "softirq_raise",
    "block_rq_issue", "block_rq_insert", "block_rq_complete", "tracing_mark_write",
)
#: events whose ``-R`` rendering is extrapolated from the kernel's field lists (no real -R file
#: in the corpus has them): drawn less often in -R traces
RAW_UNCERTAIN = ("kvm_exit", "block_rq_issue", "block_rq_insert", "block_rq_complete")


@dataclasses.dataclass
class ExpectedEvent:
    name: str
    line: int
    ts: int
    cpu: int
    pid: int
    tgid: int
    comm: str
    flags: bytes
    fields: dict


@dataclasses.dataclass
class Format:
    variant: str
    family: str = "kernel"  # kernel | tracecmd
    flags: int = 5  # 0, 4 or 5 irq-info characters
    pidw: int = 7  # width of %-Nd after comm-
    tgid: int = 0  # 0 (no column), 5 or 7 (width of the tgid column)
    clock: str = "us"  # us | ns9 | int | lat (kernel latency NNNNus)
    int_big: bool = False  # integer clock >= 10**12 (x86-tsc)
    latency: bool = False  # latency-format prefix (%8.8s-%-Nd %3d + flags)
    header: bool = True
    eol: str = "\n"
    dmesg: bool = False
    lost: bool = False
    dialect: str = "kernel"  # kernel | compact | raw
    files: tuple = ()  # multi-file report input names
    final_newline: bool = True
    unicode: bool = False
    hash_comms: bool = False


@dataclasses.dataclass
class GeneratedTrace:
    variant: str
    fmt: Format
    lines: list  # the lines, without line ends
    events: list  # [ExpectedEvent]
    lost: list  # [(cpu, line, count)]
    n_headers: int
    clock: object  # str or ANY

    @property
    def text(self) -> str:
        s = self.fmt.eol.join(self.lines)
        if self.fmt.final_newline:
            s += self.fmt.eol
        return s

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    @property
    def n_events(self) -> int:
        return len(self.events)

    def line_text(self, lineno: int) -> str:
        return self.lines[lineno - 1] if 1 <= lineno <= len(self.lines) else "<no such line>"

    def by_name(self) -> dict:
        out = {}
        for ev in self.events:
            out.setdefault(ev.name, []).append(ev)
        return out

    def write(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.data)


# ---------------------------------------------------------------------------------------------
# random pieces


def _chance(rng, p: float) -> bool:
    return rng.random() < p


def comm_ok(c: str, compact: bool = False) -> bool:
    if not (1 <= len(c.encode("utf-8")) <= 15) or c != c.strip(" ") or c.strip() == "":
        return False
    if any(ch in c for ch in "=[]|\t\r\n\0"):
        return False
    if PREFIX_ANCHOR.search(c):
        return False
    if compact and COMPACT_ANCHOR.search(c):
        return False
    return True


def gen_comm(rng, compact: bool = False, unicode: bool = False, hash_: bool = False) -> str:
    """a task name: 1..15 bytes, hostile but printable the way the kernel prints it."""
    while True:
        r = rng.random()
        if hash_ and r < 0.3:
            c = rng.choice(HASH_COMMS) if r < 0.15 else "#" + gen_word(rng, COMM_ALPHABET, 1, 14)
        elif unicode and r < 0.1:
            c = "".join(rng.choice(COMM_ALPHABET + _UNICODE_CHARS) for _ in range(rng.randint(1, 8)))
        elif r < 0.45:
            c = rng.choice(COMM_POOL)
        elif r < 0.6:  # realistic name + number suffix
            c = rng.choice(("kworker/", "CPU ", "worker-", "a-", "x y-", "irq/", "T:", "-"))
            c += str(rng.randint(0, 99999))
            c = c[:15]
        else:
            n = rng.randint(1, 15)
            c = "".join(rng.choice(COMM_ALPHABET) for _ in range(n))
        if comm_ok(c, compact):
            return c


def gen_pid(rng) -> int:
    r = rng.random()
    if r < 0.05:
        return 0
    if r < 0.6:
        return rng.randint(1, 9999)
    if r < 0.85:
        return rng.randint(10000, 999999)
    return rng.randint(1000000, 4194304)


def gen_prio(rng, allow_dl: bool = False) -> int:
    if allow_dl and _chance(rng, 0.05):
        return -1
    return rng.choice((120, 120, 139, 0, 99, rng.randint(0, 139)))


def gen_flags(rng, width: int) -> str:
    if width == 5:
        a = rng.choice("d.D.bX")
        b = rng.choice("N.n.pLBbl")
        c = rng.choice("h.s.HzZ")
        d = rng.choice(".123456789abcdef")
        e = rng.choice("..1234f")
        return a + b + c + d + e
    if width == 4:
        return rng.choice("d.X") + rng.choice("N.n") + rng.choice("h.s.H") + rng.choice(".12345f")
    return ""


def gen_word(rng, alphabet=string.ascii_letters + string.digits + "_", lo=1, hi=12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def gen_hex(rng, bits: int = 64) -> int:
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return (1 << bits) - 1
    if r < 0.6 and bits == 64:
        return 0xFFFFFFFF80000000 + rng.randint(0, 0x7FFFFFFF)
    return rng.randint(0, (1 << bits) - 1)


_TEXT_CHARS = string.ascii_letters + string.digits + " |:=-_.,;()[]{}<>/+*#!?'\"@$%^&~`\\"
_UNICODE_CHARS = "äöüßé€😀中文"


def gen_text(rng, unicode: bool = False, allow_empty: bool = True) -> str:
    """free text: no leading/trailing whitespace, no line breaks."""
    if allow_empty and _chance(rng, 0.03):
        return ""
    r = rng.random()
    if r < 0.3:
        t = rng.choice(("B|%d|%s" % (rng.randint(1, 99999), gen_word(rng)), "E",
                        "C|%d|counter|%d" % (rng.randint(1, 99999), rng.randint(-5, 99999)),
                        "trace_event_clock_sync: parent_ts=%d.%06d" % (rng.randint(0, 99999), rng.randint(0, 999999)),
                        "prev_comm=x prev_pid=1 ==> next_comm=y", "a: b: c", "[FAILED TO PARSE]",
                        # a whole fake line prefix inside the text
                        "x-12 [001] d..2.  1.000000: sched_switch: prev_comm=a prev_pid=1",
                        "   <idle>-0     [000]  5.5: kvm_exit: reason HLT", "CPU:1 [LOST 3 EVENTS]",
                        "# tracer: nop", "cpus=4"))
    else:
        chars = _TEXT_CHARS + (_UNICODE_CHARS if unicode else "")
        t = "".join(rng.choice(chars) for _ in range(rng.randint(1, 60)))
    return t.strip(" ")


def gen_unknown_name(rng) -> str:
    while True:
        if _chance(rng, 0.5):
            n = rng.choice(UNKNOWN_NAMES)
        else:
            n = rng.choice(string.ascii_lowercase) + gen_word(
                rng, string.ascii_lowercase + string.digits + "_", 0, 30)
        if n not in EVENT_LAYOUT and n not in RESERVED_NAMES and not n.startswith("sys_"):
            return n


def gen_kv_payload(rng, unicode: bool = False) -> str:
    """arbitrary ``key=value`` payload of an unknown event (may end in spaces, never starts with one)."""
    parts = []
    for _ in range(rng.randint(0, 8)):
        r = rng.random()
        key = gen_word(rng, string.ascii_lowercase + "_", 1, 12)
        if r < 0.35:
            parts.append("%s=%d" % (key, rng.randint(-(1 << 40), 1 << 40)))
        elif r < 0.5:
            parts.append("%s=0x%x" % (key, gen_hex(rng)))
        elif r < 0.7:
            parts.append("%s=%s" % (key, gen_word(rng, string.ascii_letters + string.digits + "/:._-", 0, 16)))
        elif r < 0.8:
            parts.append(rng.choice(("(Fixed|physical|edge)", "[ns]", "==>", "vec 35", "dst 1",
                                     "pio_write at 0xc010 size 2 count 1 val 0x0")))
        elif r < 0.9:
            parts.append("%s={%d %d}" % (key, rng.randint(0, 99), rng.randint(0, 99)))
        else:
            parts.append(gen_text(rng, unicode, allow_empty=False))
    p = " ".join(parts).lstrip(" ")
    if _chance(rng, 0.2):
        p += " " * rng.randint(1, 3)
    return p


def gen_state_letters(rng, letters=STATE_LETTERS, plus_p: float = 0.15):
    """(text, bits) of a printed task state."""
    r = rng.random()
    if r < 0.35:
        chosen = []
    elif r < 0.85:
        chosen = [rng.choice(letters)]
    else:
        chosen = [ch for ch in letters if _chance(rng, 0.3)]
    bits = 0
    for ch in chosen:
        bits |= STATE_BITS[ch]
    txt = "|".join(ch for ch in letters if ch in chosen) if chosen else "R"
    if _chance(rng, plus_p):
        txt += "+"
        bits |= STATE_PREEMPTED
    return txt, bits


def gen_state_numeric(rng):
    """(text, bits) of a numeric prev_state (trace-cmd -R, old reports)."""
    v = rng.choice((0, 0, 1, 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800,
                    0x1000, 0x402, 0x81, 0x1001, 0x800 | 0x2, rng.randint(0, 0xFFFF)))
    bits = (v & 0xFF) | STATE_NUMERIC
    if v >> 8:
        bits |= STATE_PREEMPTED
    txt = ("0x%x" % v) if _chance(rng, 0.25) else str(v)
    return txt, bits


# ---------------------------------------------------------------------------------------------
# payloads

_gen_comm = gen_comm


def _defaults(name: str) -> dict:
    layout = EVENT_LAYOUT.get(name, "generic")
    out = {}
    for f in LAYOUTS[layout]:
        fname, kind = f[0], f[1]
        if kind in ("comm", "sym"):
            out[fname] = None
        elif kind == "text":
            out[fname] = ""
        elif kind == "u8":
            out[fname] = 0
        else:
            out[fname] = -1
    return out


def _payload(rng, name: str, fmt: Format, ncpu: int):
    """(payload text as printed after the event name, expected typed fields)."""
    d = fmt.dialect
    f = _defaults(name)
    compact = d == "compact"
    raw = d == "raw"

    def gen_comm(rng, compact=False):  # payload comms: UTF-8 / '#' too when asked
        return _gen_comm(rng, compact, fmt.unicode, fmt.hash_comms)
    sp = " " if raw else ""  # trace-cmd -R starts every payload with one more space

    if name not in EVENT_LAYOUT:
        p = gen_kv_payload(rng, fmt.unicode)
        f["payload"] = p.strip()
        return sp + p, f

    if name == "sched_switch":
        pc, nc = gen_comm(rng, compact), gen_comm(rng, compact)
        pp, np_ = gen_pid(rng), gen_pid(rng)
        ppr, npr = gen_prio(rng, True), gen_prio(rng, True)
        f.update(prev_comm=pc, prev_pid=pp, prev_prio=ppr, next_comm=nc, next_pid=np_, next_prio=npr)
        style = "raw" if raw else d
        if d == "compact" and _chance(rng, 0.12):
            style = rng.choice(("kernel", "oldnum"))  # reports without the plugin / older kernels
        if style == "compact":
            st, bits = gen_state_letters(rng, PLUGIN_LETTERS if _chance(rng, 0.7) else STATE_LETTERS,
                                         plus_p=0.05)
            f["prev_state"] = bits
            return "%s:%d [%d] %s ==> %s:%d [%d]" % (pc, pp, ppr, st, nc, np_, npr), f
        if style in ("raw", "oldnum"):
            st, bits = gen_state_numeric(rng)
            f["prev_state"] = bits
            return sp + "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s next_comm=%s next_pid=%d next_prio=%d" % (
                pc, pp, ppr, st, nc, np_, npr), f
        st, bits = gen_state_letters(rng)
        f["prev_state"] = bits
        return "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s ==> next_comm=%s next_pid=%d next_prio=%d" % (
            pc, pp, ppr, st, nc, np_, npr), f

    if name in ("sched_waking", "sched_wakeup", "sched_wakeup_new"):
        c, p, pr, tc = gen_comm(rng, compact), gen_pid(rng), gen_prio(rng), rng.randint(0, ncpu - 1)
        f.update(task_comm=c, task_pid=p, prio=pr, target_cpu=tc)
        success = name != "sched_waking" and _chance(rng, 0.2)  # pre-4.x kernels print success=
        if success:
            f["success"] = rng.randint(0, 1)
        tcs = "%03d" % tc if (raw or _chance(rng, 0.85)) else "%d" % tc
        if compact and name != "sched_waking":
            s = "%s:%d [%d]" % (c, p, pr)
            if success:
                s += " success=%d" % f["success"]
            return s + " CPU:%03d" % tc, f
        s = "comm=%s pid=%d prio=%d" % (c, p, pr)
        if success:
            s += " success=%d" % f["success"]
        return sp + s + " target_cpu=" + tcs, f

    if name == "sched_migrate_task":
        c, p, pr = gen_comm(rng), gen_pid(rng), gen_prio(rng)
        o, dst = rng.randint(0, ncpu - 1), rng.randint(0, ncpu - 1)
        f.update(task_comm=c, task_pid=p, prio=pr, orig_cpu=o, dest_cpu=dst)
        return sp + "comm=%s pid=%d prio=%d orig_cpu=%d dest_cpu=%d" % (c, p, pr, o, dst), f

    if name == "sched_process_fork":
        c, p, cc, cp = gen_comm(rng), gen_pid(rng), gen_comm(rng), gen_pid(rng)
        f.update(task_comm=c, task_pid=p, child_comm=cc, child_pid=cp)
        if raw:  # the kernel's field names are parent_comm/parent_pid; -R prints them
            return sp + "parent_comm=%s parent_pid=%d child_comm=%s child_pid=%d" % (c, p, cc, cp), f
        return "comm=%s pid=%d child_comm=%s child_pid=%d" % (c, p, cc, cp), f

    if name in ("sched_process_exit", "sched_process_free", "sched_process_wait"):
        c, p, pr = gen_comm(rng), gen_pid(rng), gen_prio(rng)
        f.update(task_comm=c, task_pid=p, prio=pr)
        s = "comm=%s pid=%d prio=%d" % (c, p, pr)
        if name == "sched_process_exit" and _chance(rng, 0.4):  # 6.x: group_dead
            s += " group_dead=%s" % (rng.choice("01") if raw else rng.choice(("true", "false")))
        return sp + s, f

    if name == "sched_process_exec":
        fn = "/" + "/".join(gen_word(rng, string.ascii_letters + string.digits + "._-+", 1, 10)
                            for _ in range(rng.randint(1, 4)))
        if _chance(rng, 0.1):
            fn = "/tmp/a b/c d"  # paths may hold spaces
        p, op = gen_pid(rng), gen_pid(rng)
        f.update(filename=fn, task_pid=p, old_pid=op)
        return sp + "filename=%s pid=%d old_pid=%d" % (fn, p, op), f

    if name == "sched_stat_runtime":
        c, p = gen_comm(rng), gen_pid(rng)
        rt = rng.randint(0, 1 << 40)
        f.update(task_comm=c, task_pid=p, runtime=rt)
        old = _chance(rng, 0.5)  # old kernels: vruntime too; 6.x: runtime only
        if old:
            f["vruntime"] = rng.randint(0, 1 << 62)
        if raw:
            s = "comm=%s pid=%d runtime=%d" % (c, p, rt)
            if old:
                s += " vruntime=%d" % f["vruntime"]
            return sp + s, f
        s = "comm=%s pid=%d runtime=%d [ns]" % (c, p, rt)
        if old:
            s += " vruntime=%d [ns]" % f["vruntime"]
        return s, f

    if name.startswith("sched_stat_"):
        c, p, dl = gen_comm(rng), gen_pid(rng), rng.randint(0, 1 << 40)
        f.update(task_comm=c, task_pid=p, delay=dl)
        return sp + "comm=%s pid=%d delay=%d%s" % (c, p, dl, "" if raw else " [ns]"), f

    if name == "kvm_entry":
        v, rip = rng.randint(0, 300), gen_hex(rng)
        f.update(vcpu=v, rip=rip)
        if raw:
            return sp + "vcpu_id=%d rip=0x%x" % (v, rip), f
        if compact:
            s = " vcpu %d rip 0x%x" % (v, rip)  # the kvm plugin adds one leading space
            if _chance(rng, 0.1):
                s += " default_idle+0x10"  # guest symbol resolved in host+guest reports
            return s, f
        if _chance(rng, 0.15):  # old kernels: vcpu only
            f["rip"] = 0
            return "vcpu %d" % v, f
        return "vcpu %d, rip 0x%x%s" % (v, rip, "[immediate exit]" if _chance(rng, 0.05) else ""), f

    if name == "kvm_exit":
        reason, rip = rng.choice(EXIT_REASONS), gen_hex(rng)
        i1, i2 = gen_hex(rng), gen_hex(rng)
        f.update(reason=reason, rip=rip, info1=i1, info2=i2)
        if raw:
            v, ii, ec = rng.randint(0, 300), gen_hex(rng, 32), gen_hex(rng, 32)
            # exit_reason is a number in -R output: the reason symbol is not pinned down
            f.update(vcpu=v, intr_info=ii, error_code=ec, reason=ANY)
            return sp + ("exit_reason=%d guest_rip=0x%x isa=1 info1=0x%016x info2=0x%016x intr_info=0x%08x "
                         "error_code=0x%08x vcpu_id=%d") % (rng.randint(0, 80), rip, i1, i2, ii, ec, v), f
        if compact or _chance(rng, 0.3):
            sym = " iowrite16+0x9" if compact and _chance(rng, 0.1) else ""
            return "reason %s rip 0x%x%s info %x %x" % (reason, rip, sym, i1, i2), f
        v, ii, ec = rng.randint(0, 300), gen_hex(rng, 32), gen_hex(rng, 32)
        f.update(vcpu=v, intr_info=ii, error_code=ec)
        return ("vcpu %d reason %s rip 0x%x info1 0x%016x info2 0x%016x intr_info 0x%08x error_code 0x%08x"
                % (v, reason, rip, i1, i2, ii, ec)), f

    if name == "kvm_vcpu_wakeup":
        ns, w, va = rng.randint(0, 1 << 40), rng.randint(0, 1), rng.randint(0, 1)
        f.update(ns=ns, waited=w, valid=va)
        if raw:
            return sp + "ns=%d waited=%d valid=%d" % (ns, w, va), f
        return "%s time %d ns, polling %s" % ("wait" if w else "poll", ns, "valid" if va else "invalid"), f

    if name == "irq_handler_entry":
        irq, nm = rng.randint(0, 4096), rng.choice(IRQ_NAMES)
        f.update(irq=irq, name=nm)
        return sp + "irq=%d name=%s" % (irq, nm), f

    if name == "irq_handler_exit":
        irq = rng.randint(0, 4096)
        if raw:
            ret = rng.choice((0, 1, 2))
            f.update(irq=irq, ret=ret)
            return sp + "irq=%d ret=%d" % (irq, ret), f
        ret = rng.choice((0, 1, 1))
        f.update(irq=irq, ret=ret)
        return "irq=%d ret=%s" % (irq, "handled" if ret else "unhandled"), f

    if name.startswith("softirq_"):
        vec = rng.randint(0, 9)
        if raw:  # -R prints only vec
            f.update(vec=vec, action=ANY)
            return sp + "vec=%d" % vec, f
        f.update(vec=vec, action=SOFTIRQ_NAMES[vec])
        return "vec=%d [action=%s]" % (vec, SOFTIRQ_NAMES[vec]), f

    if name.startswith("block_rq_"):
        ma, mi = rng.randint(0, 511), rng.randint(0, 1 << 16)
        rwbs = rng.choice(RWBS)
        sector, nr = rng.randint(0, 1 << 40), rng.randint(0, 1 << 16)
        cmd = "()" if _chance(rng, 0.9) else "(%s)" % " ".join("%02x" % rng.randint(0, 255) for _ in range(rng.randint(1, 6)))
        iop = (" " + rng.choice(IOPRIO)) if _chance(rng, 0.7) else ""  # 6.x adds ioprio
        f.update(dev_major=ma, dev_minor=mi, rwbs=rwbs, sector=sector, nr_sector=nr)
        if raw:  # -R: the kernel's fields in format order; dev is MKDEV(major, minor)
            iop = " ioprio=%d" % rng.choice((0, 16388, 8192)) if _chance(rng, 0.5) else ""
            mi &= 0xFFFFF
            f["dev_minor"] = mi
            s = "dev=%d sector=%d nr_sector=%d" % ((ma << 20) | mi, sector, nr)
            if name == "block_rq_complete":
                err = rng.randint(-5, 0)
                f["error"] = err
                s += " error=%d%s rwbs=%s cmd=" % (err, iop, rwbs)
            else:
                by, c = rng.randint(0, 1 << 20), gen_comm(rng)
                f.update(bytes=by, rq_comm=c)
                s += " bytes=%d%s rwbs=%s comm=%s cmd=" % (by, iop, rwbs, c)
            return sp + s, f
        if name == "block_rq_complete":
            err = rng.choice((0, 0, 0, -5, -11, 1))
            f["error"] = err
            return "%d,%d %s %s %d + %d%s [%d]" % (ma, mi, rwbs, cmd, sector, nr, iop, err), f
        by, c = rng.randint(0, 1 << 31), gen_comm(rng)
        f.update(bytes=by, rq_comm=c)
        return "%d,%d %s %d %s %d + %d%s [%s]" % (ma, mi, rwbs, by, cmd, sector, nr, iop, c), f

    if name == "tracing_mark_write":
        t = gen_text(rng, fmt.unicode)
        f["text"] = t
        return t, f

    raise AssertionError("no payload writer for %s" % name)


# ---------------------------------------------------------------------------------------------
# formats and headers


def draw_format(rng, variant: str) -> Format:
    """the format options of a variant (sub-options drawn at random)."""
    F = Format(variant=variant)
    if variant == "kernel5":
        pass
    elif variant == "kernel4":
        F.flags, F.pidw = 4, 5
    elif variant == "kernel_noflags":
        F.flags, F.pidw = 0, rng.choice((7, 5))
    elif variant == "kernel_tgid":
        F.flags = rng.choice((5, 4, 0))
        F.tgid = rng.choice((7, 5))
        F.pidw = 7 if F.tgid == 7 else 5
    elif variant == "kernel_ns":
        F.clock = "ns9"
        F.flags = rng.choice((5, 4, 0))
    elif variant == "kernel_counter":
        F.clock, F.int_big = "int", _chance(rng, 0.5)
        F.flags = rng.choice((5, 5, 4, 0))
    elif variant == "kernel_crlf":
        F.eol = "\r\n"
        F.flags = rng.choice((5, 4, 0))
        F.tgid = rng.choice((0, 0, 7))
    elif variant == "trace_pipe":
        F.header, F.lost = False, True
        F.flags = rng.choice((5, 5, 4, 0))
    elif variant in ("tracecmd", "tracecmd_multi", "tracecmd_tsc_flags"):
        F.family, F.dialect, F.pidw = "tracecmd", "compact", 5
        F.flags = 5 if _chance(rng, 0.2) else 0  # trace-cmd >= 3.2 prints the flags too
        if _chance(rng, 0.15):
            F.clock, F.int_big = "int", _chance(rng, 0.7)
            F.flags = 0  # flags + integer clock: see tracecmd_tsc_flags
        if variant == "tracecmd_tsc_flags":
            # '[005] d..1.303280081944169:' (trace-cmd prints TEP_PRINT_LATENCY, then '%12d:'),
            # the same glue as the real '-l' output '5d..1.303280081944169:'
            F.clock, F.int_big, F.flags = "int", True, 5
        if variant == "tracecmd_multi":
            n = rng.choice((2, 2, 3))
            names = ["trace.dat", "trace-guest.dat", "trace-Salamander4.dat", "host.dat", "g.dat",
                     "trace-tumbleweed.dat", "a-1.dat", "x.dat"]
            files = []
            while len(files) < n:
                nm = rng.choice(names)
                if nm not in files:
                    files.append(nm)
            F.files = tuple(files)
    elif variant == "tracecmd_raw":
        F.family, F.dialect, F.pidw, F.flags = "tracecmd", "raw", 5, 0
        if _chance(rng, 0.15):
            F.clock, F.int_big = "int", _chance(rng, 0.7)
    elif variant == "tracecmd_latency":
        F.family, F.dialect, F.pidw, F.latency = "tracecmd", "compact", 5, True
        F.flags = 5 if _chance(rng, 0.85) else 4
        if _chance(rng, 0.2):
            # the flags run into a >= 12-digit timestamp ('5d..1.303280081944169'): only the
            # 5-char flags of the kernels that use that clock, else the split is ambiguous
            F.clock, F.int_big, F.flags = "int", True, 5
    elif variant == "kernel_latency":
        F.latency, F.clock = True, "lat"
        F.flags = rng.choice((5, 5, 4))
        F.pidw = 7 if F.flags == 5 else 5
    elif variant == "dump":
        F.dmesg, F.lost, F.header = True, True, False
        if _chance(rng, 0.6):
            F.latency, F.clock, F.flags = True, "lat", 5
        else:
            F.flags = rng.choice((5, 4, 0))
            F.pidw = 7 if F.flags == 5 else 5
    elif variant == "mixed":
        F.flags = rng.choice((0, 4, 5))
        F.pidw = rng.choice((5, 7))
        F.tgid = rng.choice((0, 0, 5, 7))
        F.clock = rng.choice(("us", "us", "ns9", "int"))
        F.int_big = _chance(rng, 0.5)
        F.header = _chance(rng, 0.7)
        F.lost = not F.header or _chance(rng, 0.2)
        F.eol = "\r\n" if _chance(rng, 0.2) else "\n"
        F.dmesg = _chance(rng, 0.15)
        if F.dmesg:
            F.header = False
    else:
        raise ValueError("unknown variant %r" % variant)
    return F


def kernel_header(F: Format, nev: int, ncpu: int) -> list:
    if F.latency:
        return [
            "# tracer: nop", "#",
            "#                    _------=> CPU#            ",
            "#                   / _-----=> irqs-off/BH-disabled",
            "#                  | / _----=> need-resched    ",
            "#                  || / _---=> hardirq/softirq ",
            "#                  ||| / _--=> preempt-depth   ",
            "#                  |||| / _-=> migrate-disable ",
            "#                  ||||| /     delay           ",
            "#  cmd     pid     |||||| time  |   caller     ",
            "#     \\   /        ||||||  \\    |    /       ",
        ]
    lines = ["# tracer: nop", "#",
             "# entries-in-buffer/entries-written: %d/%d   #P:%d" % (nev, nev, ncpu), "#"]
    tg = F.tgid != 0
    if F.flags == 5:
        prec = 12 if tg else 2
        sp = " " * prec
        lines += [
            "#                            %s  _-----=> irqs-off/BH-disabled" % sp,
            "#                            %s / _----=> need-resched" % sp,
            "#                            %s| / _---=> hardirq/softirq" % sp,
            "#                            %s|| / _--=> preempt-depth" % sp,
            "#                            %s||| / _-=> migrate-disable" % sp,
            "#                            %s|||| /     delay" % sp,
            "#           TASK-PID  %s CPU#  |||||  TIMESTAMP  FUNCTION" % "     TGID   "[:prec],
            "#              | |    %s   |   |||||     |         |" % "       |    "[:prec],
        ]
    elif F.flags == 4:
        if tg:
            lines += [
                "#                                      _-----=> irqs-off",
                "#                                     / _----=> need-resched",
                "#                                    | / _---=> hardirq/softirq",
                "#                                    || / _--=> preempt-depth",
                "#                                    ||| /     delay",
                "#           TASK-PID    TGID   CPU#  ||||    TIMESTAMP  FUNCTION",
                "#              | |        |      |   ||||       |         |",
            ]
        else:
            lines += [
                "#                              _-----=> irqs-off",
                "#                             / _----=> need-resched",
                "#                            | / _---=> hardirq/softirq",
                "#                            || / _--=> preempt-depth",
                "#                            ||| /     delay",
                "#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION",
                "#              | |       |   ||||       |         |",
            ]
    else:
        lines += [
            "#           TASK-PID    %s CPU#     TIMESTAMP  FUNCTION" % ("   TGID   " if tg else ""),
            "#              | |      %s   |         |         |" % ("     |    " if tg else ""),
        ]
    return lines


# ---------------------------------------------------------------------------------------------
# line prefixes


def _ts_text(F: Format, t: int) -> str:
    """timestamp column text (raw units) for the kernel / trace-cmd formats (non latency-us)."""
    if F.clock == "int":
        return (" %12d" % t) if F.family == "kernel" else ("%12d" % t)
    # kernel: " %5lu.%06lu"; trace-cmd 3.1.6 prints the same shape (" %5d.%06d:", e.g.
    # "[000]  1347.435537:", "[000]    34.896920:", "[005] 926697.930145:")
    if F.clock == "ns9":
        return " %5d.%09d" % divmod(t, 10**9)
    return " %5d.%06d" % divmod(t, 10**6)


def _ts_ns(F: Format, t: int) -> int:
    if F.clock in ("us", "lat"):
        return t * 1000
    return t  # ns9 (already ns) and int (raw ticks)


def render_line(rng, F: Format, ev: ExpectedEvent, raw_ts: int, payload: str, line_comm: str) -> str:
    """one event line; fills ev.comm with the comm the parser must report."""
    name = ev.name
    if F.latency:
        cut = line_comm[:8]
        ev.comm = cut.lstrip(" ")
        s = "%8.8s-%-*d %3d%s" % (line_comm, F.pidw, ev.pid, ev.cpu, ev.flags.decode())
        if F.clock == "lat":
            s += " %4dus%s: " % (raw_ts, rng.choice("  +!#*@$"))
        else:
            s += _ts_text(F, raw_ts) + ":"
    else:
        ev.comm = line_comm
        # %16s pads to 16 bytes, not characters
        s = " " * max(0, 16 - len(line_comm.encode("utf-8"))) + "%s-%-*d " % (line_comm, F.pidw, ev.pid)
        if F.family == "kernel":
            if F.tgid:
                if ev.tgid < 0:
                    s += "(" + "-" * F.tgid + ") "
                else:
                    s += "(%*d) " % (F.tgid, ev.tgid)
            s += "[%03d] " % ev.cpu + ev.flags.decode() + _ts_text(F, raw_ts) + ": "
        else:
            s = s[:-1] + " [%03d]" % ev.cpu
            if F.flags:
                s += " " + ev.flags.decode()
            s += _ts_text(F, raw_ts) + ":"
    if F.family == "kernel":
        return s + name + ": " + payload
    pad = " " * max(0, 20 - len(name))
    return s + " " + name + ": " + pad + payload


# ---------------------------------------------------------------------------------------------
# the generator

DEFAULT_WEIGHTS = {n: 1.0 for n in KNOWN_EVENTS}
DEFAULT_WEIGHTS.update(sched_switch=3.0, sched_wakeup=2.0, sched_waking=2.0)
UNKNOWN_WEIGHT = 2.5


def _pick_name(rng, F: Format) -> str:
    names = list(KNOWN_EVENTS)
    if F.family == "tracecmd":
        # trace-cmd reports a trace_marker write as the 'print' event (payload
        # 'tracing_mark_write: text'): how that maps is the parser's choice, not generated here
        names.remove("tracing_mark_write")
    if F.dialect == "raw":
        names = [n for n in names if n not in RAW_UNCERTAIN] if _chance(rng, 0.7) else names
    total = sum(DEFAULT_WEIGHTS[n] for n in names) + UNKNOWN_WEIGHT
    r = rng.random() * total
    for n in names:
        r -= DEFAULT_WEIGHTS[n]
        if r < 0:
            return n
    return gen_unknown_name(rng)


def generate(rng, variant: str = "kernel5", n_events: int | None = None, *, unicode: bool = False,
             final_newline: bool = True, hash_comms: bool = False,
             fmt: Format | None = None) -> GeneratedTrace:
    """a random trace of ``variant`` with its expected parse.

    final_newline=False: the last line has no line end (a complete line all the same).
    unicode=True: UTF-8 in comms (not in latency formats), marker text and payloads.
    hash_comms=True: comms with '#', some starting with it.
    """
    F = fmt or draw_format(rng, variant)
    F.unicode = unicode
    F.hash_comms = hash_comms
    F.final_newline = final_newline
    if n_events is None:
        n_events = rng.randint(0, 40)
    ncpu = rng.choice((1, 2, 4, 8, rng.randint(1, 256)))
    cpu_pool = [rng.randint(0, ncpu - 1) for _ in range(rng.randint(1, min(ncpu, 6)))]
    # tasks: (comm, pid, tgid); reused so comms repeat like in real traces
    tasks = []
    uni = unicode and not F.latency  # %8.8s may cut a UTF-8 sequence: not generated
    for _ in range(rng.randint(1, 8)):
        tasks.append((gen_comm(rng, F.dialect == "compact", uni, hash_comms), gen_pid(rng),
                      -1 if _chance(rng, 0.25) else rng.randint(1, 4194304)))

    # timestamps in raw units
    if F.clock == "int":
        t = rng.randint(10**12, 10**15) if F.int_big else rng.randint(0, 10**6)
        step = (0, 10**6)
    elif F.clock == "ns9":
        t = rng.choice((rng.randint(0, 10**10), rng.randint(0, 10**17)))
        step = (0, 10**9)
    elif F.clock == "lat":
        t = rng.choice((0, rng.randint(0, 10**6), rng.randint(0, 10**11)))
        step = (0, 10**4)
    else:
        t = rng.choice((rng.randint(0, 10**7), rng.randint(0, 10**13), rng.randint(0, 10**6)))
        step = (0, 10**6)
    dm = rng.randint(0, 10**9)  # dmesg clock (us)

    lines, events, lost = [], [], []
    n_headers = 0

    def add(text, header=False, file=None):
        nonlocal n_headers, dm
        if F.files:
            text = file.rjust(max(len(x) for x in F.files)) + ": " + text
        if F.dmesg:
            dm += rng.randint(0, 5000)
            text = "[%5d.%06d] " % divmod(dm, 10**6) + text
        lines.append(text)
        if header:
            n_headers += 1
        return len(lines)

    # header
    if F.family == "tracecmd":
        for fl in (F.files or (None,)):
            if _chance(rng, 0.1):
                add("version = 6", True, fl)
                for c in range(min(ncpu, 3)):
                    if c not in cpu_pool:
                        add("CPU %d is empty" % c, True, fl)
            add("cpus=%d" % ncpu, True, fl)
    elif F.header:
        for h in kernel_header(F, n_events, ncpu):
            add(h, True)
    if F.dmesg:
        add("Dumping ftrace buffer:", True)
        add("---------------------------------", True)

    for _ in range(n_events):
        if F.lost and _chance(rng, 0.08):
            cpu = rng.choice(cpu_pool)
            cnt = rng.randint(1, 10**8)
            ln = add("CPU:%d [LOST %d EVENTS]" % (cpu, cnt), True)
            lost.append((cpu, ln, cnt))
        t += rng.randint(*step) if _chance(rng, 0.8) else 0
        name = _pick_name(rng, F)
        comm, pid, tgid = rng.choice(tasks)
        if F.family != "kernel" or not F.tgid:
            tgid = -1
        cpu = rng.choice(cpu_pool)
        flags = gen_flags(rng, F.flags)
        payload, fields = _payload(rng, name, F, ncpu)
        ev = ExpectedEvent(name=name, line=0, ts=_ts_ns(F, t), cpu=cpu, pid=pid, tgid=tgid,
                           comm=comm, flags=flags.encode(), fields=fields)
        text = render_line(rng, F, ev, t, payload, comm)
        ev.line = add(text, False, rng.choice(F.files) if F.files else None)
        events.append(ev)

    if F.lost and _chance(rng, 0.3):
        cpu = rng.choice(cpu_pool)
        cnt = rng.randint(1, 10**8)
        ln = add("CPU:%d [LOST %d EVENTS]" % (cpu, cnt), True)
        lost.append((cpu, ln, cnt))
    if F.dmesg:
        add("---------------------------------", True)

    if F.clock in ("us", "ns9"):
        clock = "ns"
    elif F.clock == "int":
        clock = "x86-tsc" if F.int_big else "counter"
    else:
        clock = ANY  # latency-format microseconds: not pinned down by the spec
    if not events:
        clock = ANY  # nothing to tell the clock by
    if not lines:
        F.final_newline = False
    return GeneratedTrace(variant=variant, fmt=F, lines=lines, events=events, lost=lost,
                          n_headers=n_headers, clock=clock)


# ---------------------------------------------------------------------------------------------
# mutations for fuzzing


def mutate(rng, data: bytes, n: int | None = None) -> bytes:
    """random byte-level damage: flips, inserts, deletes, duplicated/cut lines, NULs."""
    b = bytearray(data)
    for _ in range(n if n is not None else rng.randint(1, 8)):
        op = rng.randrange(9)
        if op == 0 and b:  # flip a byte
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert random bytes
            i = rng.randint(0, len(b))
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and b:  # delete a span
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 16)]
        elif op == 3:  # duplicate a line
            ls = bytes(b).split(b"\n")
            k = rng.randrange(len(ls))
            ls.insert(k, ls[k])
            b = bytearray(b"\n".join(ls))
        elif op == 4:  # insert NUL
            i = rng.randint(0, len(b))
            b[i:i] = b"\0" * rng.randint(1, 3)
        elif op == 5 and b:  # cut the last line short (no final newline)
            cut = rng.randint(1, min(len(b), 60))
            del b[len(b) - cut:]
        elif op == 6 and b:  # replace a byte by a structural character
            i = rng.randrange(len(b))
            b[i] = ord(rng.choice("[]()-:= \r\n\t0123456789.|#"))
        elif op == 7:  # swap two lines
            ls = bytes(b).split(b"\n")
            if len(ls) > 1:
                i, j = rng.randrange(len(ls)), rng.randrange(len(ls))
                ls[i], ls[j] = ls[j], ls[i]
                b = bytearray(b"\n".join(ls))
        elif op == 8:  # truncate digits: a long run of digits
            i = rng.randint(0, len(b))
            b[i:i] = b"9" * rng.randint(10, 40)
    return bytes(b)


if __name__ == "__main__":  # print a sample of every variant
    import random

    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    for v in (sys.argv[2:] or VARIANTS):
        g = generate(random.Random(seed), v, 8)
        print("=== %s  %s" % (v, g.fmt))
        sys.stdout.write(g.text.replace("\r\n", "\\r\\n\n"))
        print("--- expected")
        for ev in g.events:
            print("  ", ev)
        print("   lost", g.lost, "headers", g.n_headers, "lines", g.n_lines, "clock", g.clock)
