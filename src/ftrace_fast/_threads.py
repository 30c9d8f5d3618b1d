"""Work beside the caller: one function on another thread, waited for where its result is
needed.  Used where the two sides run mostly without the GIL (Cython walks, NumPy, pyarrow)
and a benchmark shows the overlap pays (bench/threads_ab.py)."""

import contextlib
import threading

_LOCAL = threading.local()


@contextlib.contextmanager
def inline():
    """Every beside() called from this thread inside the block runs fn() at once, in this
    thread: where other processes already keep every core busy (a fleet worker per core), a
    second thread only takes time and memory from them."""
    old = getattr(_LOCAL, "inline", False)
    _LOCAL.inline = True
    try:
        yield
    finally:
        _LOCAL.inline = old


def beside(fn, name="ftrace_fast"):
    """Start fn() on another thread (inline: run it now); returns a function that waits for
    it and returns its result, or raises its exception in the caller's thread."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised by the caller's wait
            out["error"] = exc
    th = None
    if getattr(_LOCAL, "inline", False):
        run()
    else:
        th = threading.Thread(target=run, name=name)
        th.start()

    def result():
        if th is not None:
            th.join()
        if "error" in out:
            raise out["error"]
        return out["value"]
    return result
