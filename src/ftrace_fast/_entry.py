"""The ``ftfast`` command's entry point: sets NumPy's environment, then runs the CLI.

ftrace_fast calls no BLAS, but OpenBLAS (bundled with NumPy) starts one thread per core when
NumPy is imported and those threads cost CPU time beside the parse; the pool size is read from the
environment once, when the library loads, so it is set here, before anything imports NumPy.
NumPy's advice of transparent huge pages for its large arrays is read then too, and turned off
where a fresh huge page is the slow case (numpy_huge_pages).  A value the user set is kept.
Library users who ``import ftrace_fast`` keep their environment.
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


def free_pages_reported(sys_root="/sys"):
    """Whether a virtio balloon reports free memory to the hypervisor (its feature bit 5,
    VIRTIO_BALLOON_F_REPORTING, with a driver bound) in blocks no larger than a transparent
    huge page (``page_reporting_order`` at most 9, the kernel's default).  The blocks
    reported are the free 2 MB ones, so a fresh huge page is one the host must fault in on
    first touch; 4 KB pages come from the smaller blocks, never reported."""
    base = os.path.join(sys_root, "bus", "virtio", "devices")
    try:
        with open(os.path.join(sys_root, "module", "page_reporting", "parameters",
                               "page_reporting_order")) as f:
            if int(f.read()) > 9:
                return False
    except (OSError, ValueError):
        pass                        # no such parameter: the kernel's default order
    try:
        names = os.listdir(base)
    except OSError:
        return False
    for name in names:
        dev = os.path.join(base, name)
        try:
            with open(os.path.join(dev, "device")) as f:
                balloon = int(f.read(), 16) == 5
            if not balloon or not os.path.exists(os.path.join(dev, "driver")):
                continue
            with open(os.path.join(dev, "features")) as f:
                bits = f.read().strip()
        except (OSError, ValueError):
            continue
        if len(bits) > 5 and bits[5] == "1":
            return True
    return False


def numpy_huge_pages(sys_root="/sys"):
    """NumPy asks for transparent huge pages for its large arrays.  Where free pages are
    reported to the hypervisor (free_pages_reported) the first touch of a fresh huge page is
    about 3x slower than that of 4 KB pages (bench/README.md), and the analyses' arrays are
    mostly fresh: NumPy's advice is turned off there, unless the user set it.  The parser's
    own buffers keep theirs (with theirs off too, the parse took longer there)."""
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ and free_pages_reported(sys_root):
        os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"


def before_numpy():
    """What must be set before NumPy loads: the BLAS threads, NumPy's huge-page advice."""
    pin_blas_threads()
    numpy_huge_pages()


def _signalled_while_starting(signum, frame):
    # nothing is written before the CLI takes over its signals: leave at once, in one line
    # (a KeyboardInterrupt inside NumPy's import would come out as an ImportError traceback)
    os.write(2, b"ftfast: interrupted\n" if signum == signal.SIGINT else b"ftfast: terminated\n")
    os._exit(128 + signum)


def main(argv=None):
    before_numpy()
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
