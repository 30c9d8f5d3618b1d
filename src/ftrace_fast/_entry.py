"""The ``ftfast`` command's entry point: pins the BLAS thread pools, then runs the CLI.

ftrace_fast calls no BLAS, but OpenBLAS (bundled with NumPy) starts one thread per core when
NumPy is imported and those threads cost CPU time beside the parse; the pool size is read from the
environment once, when the library loads, so it is set here, before anything imports NumPy.  A
value the user set is kept.  Library users who ``import ftrace_fast`` keep their environment.
"""

import os
import signal

#: OpenBLAS, OpenMP (also read by some BLAS builds), MKL, BLIS, Apple Accelerate, numexpr
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_blas_threads():
    """One BLAS thread unless the user chose otherwise; effective only before NumPy loads."""
    for name in BLAS_THREAD_VARS:
        os.environ.setdefault(name, "1")


def _signalled_while_starting(signum, frame):
    # nothing is written before the CLI takes over its signals: leave at once, in one line
    # (a KeyboardInterrupt inside NumPy's import would come out as an ImportError traceback)
    os.write(2, b"ftfast: interrupted\n" if signum == signal.SIGINT else b"ftfast: terminated\n")
    os._exit(128 + signum)


def main(argv=None):
    pin_blas_threads()
    signal.signal(signal.SIGTERM, _signalled_while_starting)
    signal.signal(signal.SIGINT, _signalled_while_starting)
    from .cli import main as cli_main
    try:
        return cli_main(argv)      # which hands SIGINT back to Python once its guard is up
    finally:
        # the outcome is decided: a late signal must not turn it into a silent death while
        # the interpreter shuts down (it resets Python-level handlers to the default first)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
