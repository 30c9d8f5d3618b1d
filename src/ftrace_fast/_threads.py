"""Work beside the caller: one function on another thread, waited for where its result is
needed.  Used where the two sides run mostly without the GIL (Cython walks, NumPy, pyarrow)
and a benchmark shows the overlap pays (bench/threads_ab.py)."""

import threading


def beside(fn, name="ftrace_fast"):
    """Start fn() on another thread; returns a function that waits for it and returns its
    result, or raises its exception in the caller's thread."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised by the caller's wait
            out["error"] = exc
    th = threading.Thread(target=run, name=name)
    th.start()

    def result():
        th.join()
        if "error" in out:
            raise out["error"]
        return out["value"]
    return result
