"""ftrace_fast: fast, exact loading and analysis of Linux ftrace text logs.

>>> import ftrace_fast
>>> t = ftrace_fast.load("trace.txt")
>>> sw = t.events["sched_switch"]          # NumPy structured array, ts in int64 ns
>>> t.comms[sw["next_comm"][0]]

The names below are imported on first use (PEP 562), so ``import ftrace_fast`` does not import
NumPy: the ``ftfast`` entry point (:mod:`ftrace_fast._entry`) sets the BLAS thread knobs first.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["load", "Trace", "Stats", "LineError", "ParseError", "InputError", "OutOfMemoryError",
           "events"]

#: public name -> the submodule that defines it
_HOME = {"load": "trace", "Trace": "trace", "Stats": "trace", "LineError": "trace",
         "ParseError": "trace", "InputError": "_source", "OutOfMemoryError": "trace"}
#: submodules reachable as attributes (``ftrace_fast.trace``), imported on first use
_SUBMODULES = ("events", "trace", "_source", "_ftparse")


def __getattr__(name):
    home = _HOME.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f".{home}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value       # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
