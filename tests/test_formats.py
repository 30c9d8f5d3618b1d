"""Every text variant the parser supports, each with exact expected values.

The snippets are written for these tests in the shapes the kernel (kernel/trace/trace_output.c,
trace_functions_graph.c) and trace-cmd 3.x print; the real files in tests/data and
../shared/corpus are checked in test_corpus.py.
"""

import pytest

from ftrace_fast import events as ev
from helpers import load_text, rows

KERNEL_HEADER_5 = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 4/4   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def test_kernel_5char_flags_and_header():
    text = KERNEL_HEADER_5 + (
        "         python3-2141    [001] d..2.  1154.513760: sched_switch: prev_comm=python3 "
        "prev_pid=2141 prev_prio=120 prev_state=S ==> next_comm=CPU 1/KVM next_pid=2025 next_prio=120\n"
        "       CPU 1/KVM-2025    [001] dN.3.  1154.513824: sched_wakeup: comm=CPU 0/KVM pid=2024 "
        "prio=120 target_cpu=001\n"
        "       CPU 1/KVM-2025    [001] .....  1154.513774: kvm_halt_poll_ns: vcpu 1: halt_poll_ns 50000 (shrink 100000)\n"
        "          <idle>-0       [000] d.h3.  1154.600000: sched_waking: comm=IO io1 pid=3658 prio=120 target_cpu=000\n"
    )
    t = load_text(text)
    assert (t.stats.lines, t.stats.events, t.stats.headers, t.stats.malformed) == (16, 4, 12, 0)
    sw = rows(t, "sched_switch")
    assert sw == [{
        "ts": 1154513760000, "line": 13, "cpu": 1, "pid": 2141, "tgid": -1, "comm": "python3",
        "flags": "d..2.", "prev_comm": "python3", "prev_pid": 2141, "prev_prio": 120,
        "prev_state": "S", "next_comm": "CPU 1/KVM", "next_pid": 2025, "next_prio": 120}]
    wk = rows(t, "sched_wakeup")[0]
    assert (wk["comm"], wk["pid"], wk["task_comm"], wk["task_pid"], wk["prio"], wk["target_cpu"],
            wk["success"], wk["flags"]) == ("CPU 1/KVM", 2025, "CPU 0/KVM", 2024, 120, 1, -1, "dN.3.")
    g = rows(t, "kvm_halt_poll_ns")[0]
    assert g["payload"] == "vcpu 1: halt_poll_ns 50000 (shrink 100000)"
    wg = rows(t, "sched_waking")[0]
    assert (wg["comm"], wg["pid"], wg["task_comm"], wg["cpu"]) == ("<idle>", 0, "IO io1", 0)
    assert t.clock == "ns" and t.time_unit == "ns"


def test_kernel_4char_flags_no_flags_and_mixed_blocks():
    text = (
        "     threaded-ml-32307 [001] d..3 21926.770086: sched_waking: comm=AudioOutputDevi pid=32308 prio=120 target_cpu=003\n"
        "           <...>-2677  [001]   840.861118: shrink_slab: shrink_icache_memory before=47300 after=47200\n"
        "          svscan-1678  [000] .... 6412438.703521: do_nanosleep <-hrtimer_nanosleep\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0 and t.stats.events == 3
    assert rows(t, "sched_waking")[0]["flags"] == "d..3"
    r = rows(t, "shrink_slab")[0]
    assert (r["comm"], r["pid"], r["flags"], r["ts"]) == ("<...>", 2677, "", 840861118000)
    f = rows(t, "function")[0]
    assert (f["comm"], f["payload"], f["ts"]) == ("svscan", "do_nanosleep <-hrtimer_nanosleep",
                                                  6412438703521000)


def test_record_tgid_column():
    text = (
        "         python3-3371    (   3371) [000] d..2.  1181.185886: sched_switch: prev_comm=python3 prev_pid=3371 prev_prio=120 prev_state=R+ ==> next_comm=CPU 3/KVM next_pid=3256 next_prio=120\n"
        "          <idle>-0       (-------) [001] d..2.  1181.185890: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=worker next_pid=3331 next_prio=120\n"
        "com.google.android.youtube-23071 (23071) [002] ...1 214168.479970: tracing_mark_write: E\n"
    )
    t = load_text(text)
    sw = rows(t, "sched_switch")
    assert [r["tgid"] for r in sw] == [3371, -1]
    assert sw[0]["prev_state"] == "R+"
    assert sw[1]["prev_comm"] == "swapper/1" and sw[1]["comm"] == "<idle>"
    m = rows(t, "tracing_mark_write")[0]
    assert (m["comm"], m["pid"], m["tgid"], m["text"]) == ("com.google.android.youtube", 23071, 23071, "E")


@pytest.mark.parametrize("comm", ["CPU 0/KVM", "gnome-shell", "kworker/u16:2", "Web Content",
                                  "jbd2/xvda1-8", "flush-8:0", "a-1 b", "MainTaskLow:422",
                                  "(sd-pam)", "x y-2", "tmux: server", "<...>", "1234"])
def test_hostile_comms(comm):
    text = (f"{comm:>16}-4242  [003] d..2.   100.000001: sched_switch: prev_comm={comm} "
            f"prev_pid=4242 prev_prio=120 prev_state=D ==> next_comm=swapper/3 next_pid=0 next_prio=120\n")
    t = load_text(text)
    assert t.stats.malformed == 0
    r = rows(t, "sched_switch")[0]
    assert (r["comm"], r["pid"], r["prev_comm"], r["prev_state"], r["cpu"]) == (comm, 4242, comm, "D", 3)


def test_timestamps_exact():
    text = (
        "  a-1 [000] .... 1.000001: e: x=1\n"
        "  a-1 [000] .... 123456789.123456789: e: x=2\n"
        "  a-1 [000] .... 9223372035.999999999: e: x=3\n"
        "  dummy-0000 [000] 0.0: 0: trace_event_clock_sync\n"
        "  a-1 [000] .... 1.5: e: x=4\n"
    )
    t = load_text(text)
    assert t.events["e"]["ts"].tolist() == [1000001000, 123456789123456789, 9223372035999999999,
                                             1500000000]
    assert t.events["0"]["ts"].tolist() == [0]
    # ten decimals or seconds past int64 ns are errors, never rounded
    bad = load_text("  a-1 [000] .... 1.0000000001: e: x=1\n  a-1 [000] .... 9223372037.0: e: x=1\n")
    assert [e.code for e in bad.errors] == ["bad_timestamp", "timestamp_range"]


def test_integer_clocks():
    text = KERNEL_HEADER_5 + (
        "         python3-3913    [001] d..2.            3: sched_switch: prev_comm=python3 prev_pid=3913 prev_prio=120 prev_state=S ==> next_comm=worker next_pid=3831 next_prio=120\n"
        "          worker-3831    [001] d..3.            4: sched_waking: comm=IO io1 pid=3658 prio=120 target_cpu=001\n")
    t = load_text(text)
    assert t.events["sched_switch"]["ts"].tolist() == [3]
    assert t.clock == "counter" and t.time_unit == "ticks"
    # raw TSC runs straight into the CPU bracket in trace-cmd report
    tsc = " qemu-system-x86-533825 [005]303280081900681: kvm_halt_poll_ns:     vcpu 0: halt_poll_ns 0 (shrink 10000)\n"
    t = load_text("cpus=20\n" + tsc)
    r = rows(t, "kvm_halt_poll_ns")[0]
    assert (r["ts"], r["cpu"], r["pid"], r["comm"]) == (303280081900681, 5, 533825, "qemu-system-x86")
    assert t.clock == "x86-tsc"


def test_crlf_and_blank_lines():
    text = ("# tracer: nop\r\n\r\n  bash-5 [000] .... 1.000000: sched_waking: comm=a pid=2 prio=120 target_cpu=000\r\n")
    t = load_text(text)
    assert (t.stats.lines, t.stats.events, t.stats.headers) == (3, 1, 2)
    assert rows(t, "sched_waking")[0]["target_cpu"] == 0


def test_lost_events_and_buffer_started():
    text = (
        "           <...>-2677  [001]   840.861118: shrink_slab: a\n"
        "CPU:1 [LOST 702 EVENTS]\n"
        "##### CPU 3 buffer started ####\n"
        "           <...>-2677  [001]   840.900000: shrink_slab: b\n"
        "CPU:0 [12 EVENTS DROPPED]\n"
    )
    t = load_text(text)
    assert t.lost.tolist() == [(1, 2, 702, 840861118000), (0, 5, 12, 840900000000)]
    assert (t.stats.events, t.stats.headers) == (2, 3)


def test_tracecmd_report_compact_sched_plugin():
    text = (
        "version = 6\n"
        "CPU 0 is empty\n"
        "cpus=8\n"
        "       trace-cmd-20913 [002] 852655.067718: sched_switch:         trace-cmd:20913 [120] R ==> kworker/u8:1:20665 [120]\n"
        "    kworker/u8:1-20665 [002] 852655.067786: sched_switch:         kworker/u8:1:20665 [120] D|K ==> CPU 0/KVM:9855 [120]\n"
        "           other-9927  [001]  1347.436087: sched_wakeup:         python3:9980 [120] CPU:001\n"
        "      kworker/28:1-322 [028] 356963.892719: sched_wakeup:         kworker/28:1:322 [120] success=1 CPU:028\n"
        "          <idle>-0     [000]  1347.436485: sched_waking:         comm=CPU 0/KVM pid=9855 prio=120 target_cpu=000\n"
        "           <idle>-0     [000] d..2. 162573.216423: sched_switch:         swapper/0:0 [120] R ==> trace-cmd:89135 [120] Latency: 85.751 usecs\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0 and t.stats.headers == 3
    sw = rows(t, "sched_switch")
    assert [(r["prev_comm"], r["prev_pid"], r["prev_prio"], r["prev_state"], r["next_comm"],
             r["next_pid"], r["next_prio"]) for r in sw] == [
        ("trace-cmd", 20913, 120, "R", "kworker/u8:1", 20665, 120),
        ("kworker/u8:1", 20665, 120, "D|K", "CPU 0/KVM", 9855, 120),
        ("swapper/0", 0, 120, "R", "trace-cmd", 89135, 120)]
    wk = rows(t, "sched_wakeup")
    assert [(r["task_comm"], r["task_pid"], r["prio"], r["target_cpu"], r["success"]) for r in wk] == [
        ("python3", 9980, 120, 1, -1), ("kworker/28:1", 322, 120, 28, 1)]
    assert rows(t, "sched_waking")[0]["task_comm"] == "CPU 0/KVM"


def test_tracecmd_raw_numeric_prev_state():
    text = (
        "cpus=8\n"
        "           sleep-688468 [005] 926697.930152: sched_switch:          prev_comm=trace-cmd prev_pid=688468 prev_prio=120 prev_state=2 next_comm=swapper/5 next_pid=0 next_prio=120\n"
        "           sleep-688468 [005] 926697.930153: sched_switch:          prev_comm=a prev_pid=1 prev_prio=120 prev_state=256 next_comm=b next_pid=2 next_prio=120\n"
        "           sleep-688468 [005] 926697.930154: sched_switch:          prev_comm=a prev_pid=1 prev_prio=120 prev_state=0x8 next_comm=b next_pid=2 next_prio=120\n"
        "           sleep-688468 [005] 926697.930155: sched_process_fork:    parent_comm=baloo_file parent_pid=5347 child_comm=baloo_file child_pid=5348\n"
    )
    t = load_text(text)
    st = t.events["sched_switch"]["prev_state"].tolist()
    assert st == [ev.STATE_BITS["D"] | ev.STATE_NUMERIC,
                  ev.STATE_PREEMPTED | ev.STATE_NUMERIC,
                  ev.STATE_BITS["t"] | ev.STATE_NUMERIC]
    fk = rows(t, "sched_process_fork")[0]
    assert (fk["task_comm"], fk["task_pid"], fk["child_comm"], fk["child_pid"]) == (
        "baloo_file", 5347, "baloo_file", 5348)


def test_tracecmd_latency_format():
    text = (
        "cpus=20\n"
        "qemu-sys-533825   5d..1.303280081944169: kvm_entry:            vcpu 0 rip 0xffffffffba032530\n"
        "   sleep-688468   5d..2. 926697.930152: sched_switch:         trace-cmd:688468 [120] D ==> swapper/5:0 [120]\n"
        "  <idle>-0       5d.h3. 926697.934128: sched_waking:         comm=nxserver.bin pid=4687 prio=120 target_cpu=005\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    e = rows(t, "kvm_entry")[0]
    assert (e["comm"], e["pid"], e["cpu"], e["flags"], e["ts"], e["vcpu"], e["rip"]) == (
        "qemu-sys", 533825, 5, "d..1.", 303280081944169, 0, 0xffffffffba032530)
    s = rows(t, "sched_switch")[0]
    assert (s["comm"], s["cpu"], s["flags"], s["ts"], s["prev_state"]) == (
        "sleep", 5, "d..2.", 926697930152000, "D")


def test_kernel_latency_format_and_dump_prefix():
    text = (
        "[10611.834143] Dumping ftrace buffer:\n"
        "[10611.834561] ---------------------------------\n"
        "[10611.835048] CPU:1 [LOST 16689746 EVENTS]\n"
        "[10611.835048] rcu_tort-70        1dNh3. 10607789211us : sched_wakeup: comm=rcu_torture_fak pid=65 prio=139 target_cpu=001\n"
        "    <...>-1         1...1.    0us!: rwsem_optimistic_spin+0x20/0x194 <-rwsem_optimistic_spin+0x20/0x194\n"
        "    <...>-1         1.N.1. 7824us : <stack trace>\n"
        "  => rwsem_down_write_slowpath+0xc9/0x3fe\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0 and t.stats.headers == 3
    w = rows(t, "sched_wakeup")[0]
    assert (w["comm"], w["pid"], w["cpu"], w["flags"], w["ts"], w["task_comm"]) == (
        "rcu_tort", 70, 1, "dNh3.", 10607789211000, "rcu_torture_fak")
    assert t.lost.tolist() == [(1, 3, 16689746, 0)]
    f = rows(t, "function")[0]
    assert (f["ts"], f["flags"]) == (0, "...1.")
    k = rows(t, "kernel_stack")[0]
    fr = rows(t, "stack_frame")[0]
    assert (fr["func"], fr["addr"], fr["ts"], fr["pid"], fr["line"]) == (
        "rwsem_down_write_slowpath+0xc9/0x3fe", 0, k["ts"], 1, 7)


def test_stack_frames_inherit_the_event():
    text = (
        "       trace-cmd-86689 [003] 11370.816179: kernel_stack:         <stack trace >\n"
        "=> try_to_wake_up (ffffffffa8902e5f)\n"
        "=> default_wake_function (ffffffffa890327a)\n"
        "            bash-11886 [003] d... 19601233.618462: <user stack trace>\n"
        " =>  <00007f4d6d6f2e30>\n"
    )
    t = load_text(text)
    fr = rows(t, "stack_frame")
    assert [(r["func"], r["addr"], r["pid"], r["cpu"], r["ts"]) for r in fr] == [
        ("try_to_wake_up", 0xffffffffa8902e5f, 86689, 3, 11370816179000),
        ("default_wake_function", 0xffffffffa890327a, 86689, 3, 11370816179000),
        ("<00007f4d6d6f2e30>", 0x00007f4d6d6f2e30, 11886, 3, 19601233618462000)]
    assert t.count("kernel_stack") == 1 and t.count("user_stack") == 1
    orphan = load_text("=> lonely_frame\n")
    assert [e.code for e in orphan.errors] == ["orphan_stack_frame"]


def test_tracecmd_multifile_prefix():
    text = (
        "            trace.dat: cpus=20\n"
        "trace-Salamander4.dat: cpus=1\n"
        "trace-Salamander4.dat:        trace-cmd-510   [000] 22149.948193: sys_exit:             NR 1 = 1\n"
        "            trace.dat:  qemu-system-x86-483882 [007] 22149.949610: kvm_exit:             reason EPT_MISCONFIG rip 0xffffffffa0632f49 iowrite16+0x9 info 0 0\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0 and t.stats.headers == 2
    s = rows(t, "sys_exit")[0]
    assert (s["comm"], s["pid"]) == ("trace-cmd", 510)
    x = rows(t, "kvm_exit")[0]
    assert (x["comm"], x["pid"], x["reason"], x["rip"], x["info1"], x["info2"], x["vcpu"]) == (
        "qemu-system-x86", 483882, "EPT_MISCONFIG", 0xffffffffa0632f49, 0, 0, -1)


def test_kvm_exit_layouts():
    text = (
        " qemu-system-x86-8397    [002] d....  1404.389366: kvm_exit: vcpu 1 reason CR_ACCESS rip 0xffffffff8100007a info1 0x0000000000000010 info2 0x0000000000000002 intr_info 0x80000b0e error_code 0x00000004\n"
        "  dirty_log_test-29003 [001] 184503.384329: kvm_exit:             reason EPT_VIOLATION rip 0x40359f info 582 0\n"
        "           CPU 0/KVM-7289    [023] d....  2925.640967: kvm_exit: vcpu 0 reason EXTERNAL_INTERRUPT intr_info 0x800000ec\n"
        " qemu-system-x86-533825 [005]303280081944169: kvm_exit:              exit_reason=1 guest_rip=0xffffffffba200cf0 isa=1 info1=0x0 info2=0x0 intr_info=0x800000ec error_code=0x00000000 vcpu_id=0\n"
        "       CPU 2/KVM-6001  [004] 100.000000: kvm_exit:             reason npf rip 0xffffffff81000000 info 100000004 fee00300\n"
        " qemu-system-x86-8397    [002] .....  1404.389373: kvm_entry: vcpu 1, rip 0xffffffff8100007d\n"
        "           trace.dat:  CPU 0/KVM-4594  [001]  2.167191: kvm_entry:\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    x = rows(t, "kvm_exit")
    got = [(r["vcpu"], r["reason"], r["rip"], r["info1"], r["info2"], r["intr_info"], r["error_code"])
           for r in x]
    assert got == [
        (1, "CR_ACCESS", 0xffffffff8100007a, 0x10, 0x2, 0x80000b0e, 4),
        (-1, "EPT_VIOLATION", 0x40359f, 0x582, 0, -1, -1),
        (0, "EXTERNAL_INTERRUPT", 0, 0, 0, 0x800000ec, -1),
        (0, "1", 0xffffffffba200cf0, 0, 0, 0x800000ec, 0),
        (-1, "npf", 0xffffffff81000000, 0x100000004, 0xfee00300, -1, -1)]
    e = rows(t, "kvm_entry")
    assert [(r["vcpu"], r["rip"]) for r in e] == [(1, 0xffffffff8100007d), (-1, 0)]


def test_kvm_vcpu_wakeup_irq_softirq_block():
    text = (
        "       CPU 1/KVM-2025    [001] .....  1154.513774: kvm_vcpu_wakeup: wait time 757592 ns, polling valid\n"
        "       CPU 1/KVM-2025    [001] .....  1154.513775: kvm_vcpu_wakeup: poll time 1200 ns, polling invalid\n"
        " qemu-system-x86-533825 [005]303280081909057: kvm_vcpu_wakeup:       ns=3279293 waited=1 valid=1\n"
        "      Compositor-3487  [000] d.h. 26186.336630: irq_handler_entry: irq=28 name=radeon\n"
        "      Compositor-3487  [000] d.h. 26186.336653: irq_handler_exit: irq=28 ret=unhandled\n"
        "       CPU 1/KVM-2025    [001] .Ns..  1154.517157: softirq_entry: vec=9 [action=RCU]\n"
        "          worker-2102    [001] .....  1154.518209: block_rq_issue: 254,0 WS 131072 () 177148416 + 256 be,0,4 [worker]\n"
        "       supervise-1692  [001] d... 7269912.982162: block_rq_issue: 202,1 W 0 () 17039656 + 8 [supervise]\n"
        "       CPU 0/KVM-2024    [001] ..s1.  1154.521563: block_rq_complete: 254,0 FF () 18446744073709551615 + 0 none,0,0 [0]\n"
        "       CPU 0/KVM-2024    [001] ..s1.  1154.521564: block_rq_complete: 254,0 WS () 177148416 + 256 be,0,4 [-5]\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    assert [(r["ns"], r["waited"], r["valid"]) for r in rows(t, "kvm_vcpu_wakeup")] == [
        (757592, 1, 1), (1200, 0, 0), (3279293, 1, 1)]
    assert rows(t, "irq_handler_entry")[0]["name"] == "radeon"
    assert rows(t, "irq_handler_exit")[0]["ret"] == 0
    s = rows(t, "softirq_entry")[0]
    assert (s["vec"], s["action"]) == (9, "RCU")
    bi = rows(t, "block_rq_issue")
    assert [(r["dev_major"], r["dev_minor"], r["rwbs"], r["bytes"], r["sector"], r["nr_sector"],
             r["rq_comm"]) for r in bi] == [(254, 0, "WS", 131072, 177148416, 256, "worker"),
                                            (202, 1, "W", 0, 17039656, 8, "supervise")]
    bc = rows(t, "block_rq_complete")
    assert [(r["rwbs"], r["sector"], r["nr_sector"], r["error"], r["bytes"]) for r in bc] == [
        ("FF", -1, 0, 0, -1), ("WS", 177148416, 256, -5, -1)]


def test_sched_process_and_stat_events():
    text = (
        "       trace-cmd-2461  [000]    34.896920: sched_stat_runtime:   comm=trace-cmd pid=2461 runtime=7778999 [ns] vruntime=6087430069 [ns]\n"
        "           sleep-688468 [005] 926697.930145: sched_stat_runtime:    comm=trace-cmd pid=688468 runtime=842210\n"
        "       trace-cmd-2461  [000]    34.896941: sched_stat_sleep:     comm=sshd pid=2450 delay=1802051076 [ns]\n"
        "           other-3294    [001] .....  1181.297519: sched_process_exit: comm=other pid=3294 prio=120 group_dead=false\n"
        "           bash-100 [000] .....   5.000000: sched_process_exec: filename=/usr/bin/ls pid=100 old_pid=100\n"
        "           bash-100 [000] .....   5.000001: sched_process_free: comm=ls pid=99 prio=120\n"
        "           bash-100 [000] .....   5.000002: sched_migrate_task: comm=IO io1 pid=2841 prio=120 orig_cpu=1 dest_cpu=0\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    assert [(r["task_comm"], r["task_pid"], r["runtime"], r["vruntime"])
            for r in rows(t, "sched_stat_runtime")] == [
        ("trace-cmd", 2461, 7778999, 6087430069), ("trace-cmd", 688468, 842210, -1)]
    assert rows(t, "sched_stat_sleep")[0]["delay"] == 1802051076
    assert rows(t, "sched_process_exit")[0]["task_pid"] == 3294
    ex = rows(t, "sched_process_exec")[0]
    assert (ex["filename"], ex["task_pid"], ex["old_pid"]) == ("/usr/bin/ls", 100, 100)
    assert rows(t, "sched_process_free")[0]["task_comm"] == "ls"
    m = rows(t, "sched_migrate_task")[0]
    assert (m["task_comm"], m["orig_cpu"], m["dest_cpu"]) == ("IO io1", 1, 0)


def test_syscall_and_probe_lines():
    text = (
        "           <...>-4083  [004] ....   395.705673: sys_rt_sigprocmask -> 0x0\n"
        "           <...>-4083  [004] ....   395.705679: sys_ioctl(fd: ff, cmd: 5410, arg: 7ffe0babe8fc)\n"
        "          kprobe-26042 [001] d... 6910441.001452: do_sys_open: (do_sys_open+0x0/0x220)\n"
        "           CPU 0/KVM-7289    [023] d....  2925.640963: <hack>: Set DRs, DR6 = 0xffff0ff1\n"
        "     hwc_eventmon-336   [000] 50260.929925: 0: C|124|VSYNC|1\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    assert rows(t, "sys_exit_rt_sigprocmask")[0]["payload"] == "0x0"
    assert rows(t, "sys_enter_ioctl")[0]["payload"] == "(fd: ff, cmd: 5410, arg: 7ffe0babe8fc)"
    assert rows(t, "do_sys_open")[0]["payload"] == "(do_sys_open+0x0/0x220)"
    assert rows(t, "<hack>")[0]["payload"] == "Set DRs, DR6 = 0xffff0ff1"
    assert rows(t, "0")[0]["payload"] == "C|124|VSYNC|1"


def test_function_graph():
    text = (
        "# tracer: function_graph\n"
        " 0)               |  do_nanosleep() {\n"
        " 0)               |    hrtimer_start_range_ns() {\n"
        " 0)   0.908 us    |      lock_hrtimer_base.isra.24();\n"
        " 0)   3.447 us    |    }\n"
        " 0) ! 8147.120 us |  } /* do_nanosleep */\n"
        " ------------------------------------------\n"
        " 3)    bash-431    =>    <idle>-0   \n"
        " ------------------------------------------\n"
        " 3)   0.105 us    |      do_balance_callbacks(rq=0xffff88807ddad800, head=0x0); /* <-finish_task_switch.isra.0+0xad/0x220 */\n"
        "2678112.003180 |   0)  cksum-26695   | ! 8145.268 us |  } /* ext3_readpages */\n"
        " 1) do_sys_open() {\n"
        " 1)   getname() {\n"
        " 1)   }\n"
        " 0)  ==========> |\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    en = rows(t, "funcgraph_entry")
    assert [(r["cpu"], r["depth"], r["func"], r["duration_ns"], r["pid"], r["comm"]) for r in en] == [
        (0, 0, "do_nanosleep", -1, -1, None),
        (0, 1, "hrtimer_start_range_ns", -1, -1, None),
        (0, 2, "lock_hrtimer_base.isra.24", 908, -1, None),
        (3, 2, "do_balance_callbacks", 105, 0, "<idle>"),
        (1, 0, "do_sys_open", -1, -1, None),
        (1, 1, "getname", -1, -1, None)]
    ex = rows(t, "funcgraph_exit")
    assert [(r["cpu"], r["depth"], r["func"], r["duration_ns"], r["ts"], r["pid"]) for r in ex] == [
        (0, 1, "hrtimer_start_range_ns", 3447, -1, -1),
        (0, 0, "do_nanosleep", 8147120, -1, -1),
        (0, 0, "ext3_readpages", 8145268, 2678112003180000, 26695),
        (1, 1, "getname", -1, -1, -1)]
    # the same shape inside trace-cmd's funcgraph events, and its -R raw fields
    text = (
        "          <idle>-0     [000] 157412.933969: funcgraph_entry:                  |  do_IRQ() {\n"
        "          <idle>-0     [000] 157412.934004: funcgraph_exit:       + 36.358 us |  }\n"
        "       trace-cmd-11809 [003] 11658.899115: funcgraph_entry:       func=0xffffffffba5ddc00 depth=0\n"
    )
    t = load_text(text)
    assert t.stats.malformed == 0
    assert [(r["func"], r["depth"]) for r in rows(t, "funcgraph_entry")] == [
        ("do_IRQ", 0), ("0xffffffffba5ddc00", 0)]
    x = rows(t, "funcgraph_exit")[0]
    assert (x["func"], x["duration_ns"], x["ts"]) == ("do_IRQ", 36358, 157412934004000)


def test_libtraceevent_noise_and_failed_to_parse():
    text = (
        "000: ARG TYPE NOT FIELD BUT 2\n"
        "     kworker/5:2-1497  [005]   454.414603: thermal_power_cpu_get_power: [FAILED TO PARSE] cpumask=ARRAY[0f, 00] freq=0x82208\n"
    )
    t = load_text(text)
    assert (t.stats.headers, t.stats.events, t.stats.malformed) == (1, 1, 0)
    assert rows(t, "thermal_power_cpu_get_power")[0]["payload"].startswith("[FAILED TO PARSE]")


def test_malformed_lines_are_counted_with_exact_messages():
    text = (
        "  a-1 [000] .... 1.000000: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b next_pdi=12 next_prio=120\n"
        "this is not ftrace\n"
        "qemu-system-x86-5659  [007] ....   280.971116:\n"
        "  a-1 [000] .... 1.000001: sched_switch: prev_comm=a prev_pid=1\n"
    )
    t = load_text(text)
    assert (t.stats.lines, t.stats.events, t.stats.malformed) == (4, 0, 4)
    assert [e.message for e in t.errors] == [
        "line 1: sched_switch: expected 'next_pid=', got 'next_pdi=12 next_prio=120'",
        "line 2: not an ftrace line (no 'comm-pid [cpu] timestamp:' prefix): 'this is not ftrace'",
        "line 3: no event after the timestamp: 'qemu-system-x86-5659  [007] ....   280.971116:'",
        "line 4: sched_switch: expected 'prev_prio=', got end of line",
    ]


def test_truncated_last_line_is_reported_not_fatal():
    text = ("  a-1 [000] .... 1.000000: sched_waking: comm=a pid=2 prio=120 target_cpu=000\n"
            "  a-1 [000] .... 1.000001: sched_waking: comm=a pid=")
    t = load_text(text)
    assert (t.stats.events, t.stats.malformed, t.stats.truncated_last_line) == (1, 1, True)
    assert t.errors[0].code == "truncated_last_line" and t.errors[0].line == 2
    # an unterminated but complete last line is an ordinary event
    t = load_text(text.rsplit("\n", 1)[0])
    assert (t.stats.events, t.stats.malformed, t.stats.truncated_last_line) == (1, 0, False)


def test_state_letters():
    def st(s):
        t = load_text(f"  a-1 [000] .... 1.0: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 "
                      f"prev_state={s} ==> next_comm=b next_pid=2 next_prio=120\n")
        return int(t.events["sched_switch"]["prev_state"][0])
    B = ev.STATE_BITS
    assert st("R") == 0
    assert st("R+") == ev.STATE_PREEMPTED
    assert st("S") == B["S"] and st("D") == B["D"] and st("I") == B["I"]
    assert st("D|K") == B["D"] | B["K"]
    assert st("S|T") == B["S"] | B["T"]
    assert st("W") == B["W"] and st("X") == B["X"] and st("Z") == B["Z"]
    assert st("Q") == ev.STATE_UNKNOWN_LETTER
    assert ev.state_string(st("D|K")) == "D|K"
    assert ev.state_string(st("R+")) == "R+"


def test_function_graph_cpu_out_of_range_is_malformed_not_a_crash():
    # found by fuzzing under ASan: a function_graph CPU number past the per-CPU tables
    t = load_text(" 99999999999)   0.100 us    |  foo();\n 4294967296) | bar() {\n")
    assert (t.stats.events, t.stats.malformed) == (0, 2)


def test_cpu_numbers_past_the_limit_are_malformed_not_wrapped():
    # a CPU of 2**32 used to wrap to CPU 0 in the int32 column: now no prefix anchor, and no
    # LOST marker, in the bracket form as in the latency form
    t = load_text("a-1 [4294967296] .... 1.000001: sched_wakeup: comm=b pid=2 prio=120 target_cpu=000\n"
                  "CPU:4294967296 [LOST 3 EVENTS]\n"
                  "a-1 [1048577] .... 1.000002: sched_wakeup: comm=b pid=2 prio=120 target_cpu=000\n"
                  "a-1 [1048576] .... 1.000003: sched_wakeup: comm=b pid=2 prio=120 target_cpu=000\n"
                  "CPU:3 [LOST 3 EVENTS]\n")
    assert (t.stats.events, t.stats.malformed) == (1, 3)
    assert t.events["sched_wakeup"]["cpu"].tolist() == [1 << 20]
    assert t.lost["cpu"].tolist() == [3]
    assert [e.line for e in t.errors] == [1, 2, 3]
