"""Writing an output file without harming what is at its path.

Every writer (``filter``, ``export``, ``report``, ``plot``, the scripts, ``Plot.save``,
``export.perfetto``) goes through :func:`atomic_output`:

- a regular file, or nothing yet: the bytes go to a temporary file beside it
  (``.NAME.PID.RANDOM.part``), renamed onto the name only when the whole output was written
  and closed.  Any failure, ``KeyboardInterrupt`` or signal turned into an exception removes the
  temporary file, so the path holds the old file or the new one, never half of it;
- a symlink: the same, applied to the file the link finally points to (the link stays);
- a device (``/dev/null``), a FIFO or a socket: written through, never replaced.

A failed write (no space, ``/dev/full``, I/O error) raises ``OSError`` at write or close: callers
report it and exit non-zero, they never say "wrote".

:func:`remove_temporaries` removes what an interrupted writer has not yet removed itself
(a signal landing between the file's creation and the ``try`` that guards it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat

#: temporary files being written, removed by whoever gets there first
_live = set()


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) as an exception, so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_exception(signals=(signal.SIGTERM,)):
    """Within the block, ``signals`` raise :class:`Terminated` in the main thread (the default
    action would end the process without removing a temporary file)."""
    old = {}
    try:
        for s in signals:
            old[s] = signal.signal(s, _raise_terminated)
    except ValueError:           # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def write_through(path):
    """True when ``path`` (after symlinks) is a device, FIFO or socket: written in place."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


@contextlib.contextmanager
def atomic_output(path, mode="w", encoding="utf-8"):
    """A file object writing ``path`` (``mode`` "w" for text, "wb" for bytes) under the rules
    of the module docstring.  Raises OSError when the output cannot be written."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_output: mode {mode!r} (use 'w' or 'wb')")
    kw = {} if "b" in mode else {"encoding": encoding, "newline": ""}
    path = os.fspath(path)
    if write_through(path):
        # a device or FIFO: replacing it would destroy it (a FIFO's reader would never see data)
        with open(path, mode, **kw) as f:
            yield f
        return
    target = os.path.realpath(path)          # a symlink: write the file it points to
    d, base = os.path.split(target)
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        old_mode = 0o666 & ~_umask()
    tmp = os.path.join(d, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.part")
    _live.add(tmp)                           # before the file exists: a signal cannot orphan it
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        with open(fd, mode, **kw) as f:
            os.fchmod(fd, old_mode)
            yield f
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _live.discard(tmp)


def remove_temporaries():
    """Remove the temporary files of writers that did not finish (called on the way out)."""
    for tmp in list(_live):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _live.discard(tmp)
