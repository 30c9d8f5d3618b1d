"""Choices and defaults the command line shows in its help, kept free of NumPy and of the
analyses so that building the ``ftfast`` parser imports neither (``ftfast info`` needs neither).

:class:`Thresholds` is re-exported as ``ftrace_fast.kvm.Thresholds``; :data:`PLOT_KINDS` are the
keys of ``ftrace_fast.plot.KINDS``, in the same order (a test holds them equal).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: the charts ``ftfast plot --kind`` draws
PLOT_KINDS = ("cpu-util", "timeline", "latency", "switches", "wakeups", "kvm-exits")


@dataclass
class Thresholds:
    """When a figure becomes a finding (the CLI exposes each as an option)."""
    steal_pct: float = 5.0          # vCPU wait share of (run + wait), %
    stack_pct: float = 10.0         # share of a vCPU's wait spent behind a sibling vCPU, %
    min_wait_ms: float = 1.0        # ignore vCPUs that waited less than this in all
    exit_rate: float = 10000.0      # exits per second of one reason on one vCPU
    exit_p99_us: float = 100.0      # p99 handling time of a non-HLT reason, µs
    min_exits: int = 20             # reasons with fewer handled exits are not judged
    wakeup_p99_us: float = 500.0    # vCPU wakeup latency p99, µs
    io_blocked_ms: float = 10.0     # longest D stretch of an I/O thread, ms
    io_blocked_pct: float = 20.0    # D share of the window of an I/O thread, %
    block_p99_ms: float = 20.0      # block device p99 issue-to-complete, ms
    busy_pct: float = 90.0          # a CPU this busy ...
    idle_pct: float = 50.0          # ... while another is idle at least this much
    overcommit_pct: float = 10.0    # share of the window with more runnable vCPUs than CPUs

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]
