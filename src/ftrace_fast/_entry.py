"""The ``ftfast`` command's entry point: pins the BLAS thread pools, then runs the CLI.

ftrace_fast calls no BLAS, but OpenBLAS (bundled with NumPy) starts one thread per core when
NumPy is imported and those threads cost CPU time beside the parse; the pool size is read from the
environment once, when the library loads, so it is set here, before anything imports NumPy.  A
value the user set is kept.  Library users who ``import ftrace_fast`` keep their environment.
"""

import os

#: OpenBLAS, OpenMP (also read by some BLAS builds), MKL, BLIS, Apple Accelerate, numexpr
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_blas_threads():
    """One BLAS thread unless the user chose otherwise; effective only before NumPy loads."""
    for name in BLAS_THREAD_VARS:
        os.environ.setdefault(name, "1")


def main(argv=None):
    pin_blas_threads()
    from .cli import main as cli_main
    return cli_main(argv)
