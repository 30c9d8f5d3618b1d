"""ftrace_fast: fast, exact loading and analysis of Linux ftrace text logs.

>>> import ftrace_fast
>>> t = ftrace_fast.load("trace.txt")
>>> sw = t.events["sched_switch"]          # NumPy structured array, ts in int64 ns
>>> t.comms[sw["next_comm"][0]]
"""

from . import events
from ._source import InputError
from .trace import LineError, OutOfMemoryError, ParseError, Stats, Trace, load

__version__ = "0.1.0"
__all__ = ["load", "Trace", "Stats", "LineError", "ParseError", "InputError", "OutOfMemoryError",
           "events"]
