"""Fleets of traces: one Dask task per trace, the figures of ``ftfast stats`` and ``ftfast
diagnose`` of each trace written as partitioned Parquet, ranked across the fleet with DuckDB
(``ftrace_fast.fleet_sql``).

The store
---------
``STORE/<table>/host=<H>/trace=<ID>/part.parquet`` for each table of :data:`TABLES`, where
``<H>`` is the trace's host (from its path) and ``<ID>`` a content hash of the trace file (the
first 32 hex digits of its SHA-256 digest: twice as fast as BLAKE2b where the CPU has SHA
instructions): the same bytes under any name or host are one
trace.  Every row also holds ``host`` and ``trace_id`` as columns (the directory names are
escaped and never read back).  Failures are ``STORE/failures/<key>.parquet``, one file per
input path that could not be analysed, removed when a later run succeeds on it.

Each partition is written to a temporary name beside it and renamed; the ``traces`` partition
is written last and is the trace's commit record: a trace counts in the store when (and only
when) its ``traces`` row exists, so a task killed half way leaves nothing that a query sees,
and its retry or a re-run replaces the same files (same names) instead of adding a second
copy.  A re-run skips every trace whose ``traces`` row exists; a file whose size and
modification time are those recorded when it was stored (``STORE/_index/<key>.json``) is not
even read again.

The store is a local directory or any URL fsspec opens (``s3://``, ``gs://``, ``file://`` ...,
with the filesystem's package installed).  On an object store the rename is a copy: the
object then appears whole or not at all, which is what the commit needs.

The figures
-----------
A task runs the library's own per-trace code: ``cli.stats_document`` (what ``ftfast stats
--format json`` prints) and ``kvm.diagnose`` with default thresholds (what ``ftfast diagnose
--format json`` prints), after the same JSON conversion; the tables below are those documents
flattened, so every stored figure equals the one the commands print for that trace.  The
one addition is ``latency_hist``: the trace's wakeup latencies in logarithmic buckets, from
which the report takes per-host percentiles of pooled samples.

Scaling out
-----------
``run(..., scheduler="tcp://host:8786")`` submits the same tasks to an existing Dask cluster;
each worker needs ftrace_fast installed, the trace paths readable and the store writable
under the same names (a shared filesystem, or an object store URL).  A task parses its trace
in one thread: give each machine one single-threaded worker per core (``dask worker
tcp://host:8786 --nworkers N --nthreads 1 --preload ftrace_fast.fleet``; the preload imports
what a task needs as the worker starts, see :func:`dask_setup`).  The local cluster of ``fleet
run`` forks its workers from the command's process once it has imported them (Linux).
"""

from __future__ import annotations

import contextlib
import functools
import glob as globmod
import hashlib
import json
import os
import re
import sys
import time
import urllib.parse
import uuid

from . import _threads

#: the install line printed when an optional dependency is missing
INSTALL = "pip install 'ftrace_fast[fleet]'"
#: bytes read per hashing step
_HASH_BLOCK = 1 << 22
#: latency histogram: buckets per power of two (the bucket bounds are 2**(k/16) ns: a
#: percentile read from it is at most 4.4% above the exact one)
HIST_STEPS = 16


class FleetError(Exception):
    """A usage or environment error of the fleet commands: message and exit code."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def _installed(mod):
    import importlib.util
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):      # ValueError: a module set to None in sys.modules
        return False


def require():
    """FleetError(2) saying what to install when a module of the fleet extra is missing (found,
    not imported: importing dask.distributed alone takes a second)."""
    missing = [m for m in ("dask", "distributed", "duckdb", "pyarrow") if not _installed(m)]
    if missing:
        raise FleetError(f"ftfast fleet and diff need {', '.join(missing)}: {INSTALL}", 2)


# ---------------------------------------------------------------------------------------------
# tables as data: name -> (what a row is, [(column, type, meaning)]).  Types: i int64, f float64,
# s string, b bool, li list of int64, ls list of strings.  Times are ns (ticks for integer
# clocks: traces.time_unit says which); every table also starts with host and trace_id.

TABLES = {
    "traces": ("one row per trace analysed (the commit record of the trace)", [
        ("path", "s", "the trace's path when it was analysed"),
        ("bytes", "i", "file size"),
        ("format", "s", "input format, as 'ftfast info' prints it"),
        ("clock", "s", "trace clock"),
        ("time_unit", "s", "ns, or ticks for integer clocks"),
        ("window_start", "i", "analysis window start (trace time)"),
        ("window_end", "i", "analysis window end (trace time)"),
        ("duration_ns", "i", "window length"),
        ("lines", "i", "lines read"),
        ("events", "i", "event lines"),
        ("malformed", "i", "malformed lines"),
        ("lost_events", "i", "events lost in LOST markers"),
        ("ncpus", "i", "CPUs of the scheduling analysis"),
        ("tasks", "i", "tasks in the tasks table"),
        ("vms", "i", "VMs (QEMU processes) found"),
        ("vcpus", "i", "vCPU threads found"),
        ("lat_source", "s", "the event latency is measured from (sched_wakeup)"),
        ("lat_count", "i", "wakeup latency samples of all tasks"),
        ("lat_mean_ns", "f", "their mean"),
        ("lat_p50_ns", "i", "median (nearest rank)"),
        ("lat_p90_ns", "i", "90th percentile"),
        ("lat_p99_ns", "i", "99th percentile"),
        ("lat_max_ns", "i", "largest"),
        ("runnable_vcpus_mean", "f", "mean number of vCPU threads running or runnable"),
        ("runnable_vcpus_max", "i", "most vCPU threads running or runnable at once"),
        ("overcommit_ns", "i", "time with more runnable vCPU threads than CPUs"),
        ("overcommit_pct", "f", "overcommit_ns / duration_ns, %"),
        ("vcpu_run_ns", "i", "run time of all vCPU threads"),
        ("vcpu_wait_ns", "i", "runnable (steal) time of all vCPU threads"),
        ("stacked_ns", "i", "vCPU wait behind a vCPU of the same VM"),
        ("findings", "i", "findings of 'diagnose' (caveats not counted)"),
        ("caveats", "ls", "caveats of the analysis"),
        ("analysis_s", "f", "seconds the task took (load, analysis, writing)"),
        ("version", "s", "ftrace_fast version that wrote the row"),
    ]),
    "cpus": ("per CPU ('stats' cpus)", [
        ("cpu", "i", "CPU number"), ("busy_ns", "i", "a task other than idle current"),
        ("idle_ns", "i", "idle current"), ("unknown_ns", "i", "no knowledge (lost events)"),
        ("utilization_pct", "f", "busy / (busy + idle), %"), ("switches", "i", "sched_switch lines"),
        ("irq_ns", "i", "in hard irq handlers (null without irq events)"),
        ("softirq_ns", "i", "in softirqs (null without softirq events)"),
    ]),
    "tasks": ("per task ('stats' tasks)", [
        ("pid", "i", ""), ("tgid", "i", "null without a TGID column"), ("comm", "s", "name at its last line"),
        ("comms", "ls", "every name the task had"),
        ("run_ns", "i", "running"), ("wait_ns", "i", "runnable, waiting for a CPU"),
        ("sleep_ns", "i", "interruptible sleep (S)"), ("blocked_ns", "i", "uninterruptible (D)"),
        ("other_sleep_ns", "i", "other sleep states"), ("unknown_ns", "i", "unknown (lost events)"),
        ("dead_ns", "i", "after its exit"), ("switches_in", "i", ""),
        ("inferred_switch_ins", "i", "switch-ins inferred, not seen"), ("preemptions", "i", "switched out runnable"),
        ("switches_out_S", "i", ""), ("switches_out_D", "i", ""), ("switches_out_other", "i", ""),
        ("switches_out_dead", "i", ""), ("wakeups", "i", "sched_wakeup of it"),
        ("wakings", "i", "sched_waking of it"), ("migrations", "i", ""), ("slices", "i", "run slices"),
        ("max_slice_ns", "i", ""), ("mean_slice_ns", "f", ""),
        ("lat_count", "i", "wakeup latency samples"), ("lat_mean_ns", "f", ""),
        ("lat_p50_ns", "i", ""), ("lat_p90_ns", "i", ""), ("lat_p99_ns", "i", ""),
        ("lat_max_ns", "i", ""), ("lat_max_ts", "i", "when the largest happened (trace time)"),
    ]),
    "latency_hist": ("wakeup latency samples of the trace in buckets [lo_ns, hi_ns)", [
        ("bucket", "i", f"k: lo_ns = floor(2**(k/{HIST_STEPS})), 0 for latency 0"),
        ("lo_ns", "i", "smallest latency of the bucket"), ("hi_ns", "i", "bound above the bucket"),
        ("count", "i", "samples"),
    ]),
    "wakeups": ("wakeup lines per woken (comm, pid) ('stats' wakeups)", [
        ("event", "s", "sched_waking or sched_wakeup"), ("comm", "s", ""), ("pid", "i", ""),
        ("count", "i", "lines"),
    ]),
    "switches": ("context switches per (comm, pid) as printed ('stats' switches)", [
        ("comm", "s", ""), ("pid", "i", ""), ("switches_in", "i", ""), ("voluntary", "i", ""),
        ("involuntary", "i", ""), ("switches_out_D", "i", ""),
    ]),
    "migrations": ("sched_migrate_task lines per task ('stats' migrations)", [
        ("comm", "s", ""), ("pid", "i", ""), ("count", "i", ""),
    ]),
    "vms": ("per VM ('stats --kvm' vms)", [
        ("vm", "i", "VM id: QEMU's tgid, else its first vCPU thread's pid"),
        ("tgid_known", "b", "vm is a tgid"), ("vcpus", "i", "vCPU threads"), ("threads", "i", "other threads"),
        ("run_ns", "i", "vCPU run"), ("wait_ns", "i", "vCPU wait (steal)"), ("guest_ns", "i", "in the guest"),
        ("handling_ns", "i", "exit handling in the host"), ("stacked_ns", "i", "vCPU wait behind own vCPUs"),
        ("runnable_vcpus_mean", "f", ""), ("runnable_vcpus_max", "i", ""),
        ("overcommit_ns", "i", "more of its vCPUs runnable than CPUs"),
    ]),
    "vcpus": ("per vCPU thread ('stats --kvm' vcpus)", [
        ("vm", "i", ""), ("vcpu", "i", "vCPU number"), ("pid", "i", ""), ("tgid", "i", ""), ("comm", "s", ""),
        ("run_ns", "i", ""), ("wait_ns", "i", "runnable: the steal the guest feels"),
        ("steal_pct", "f", "wait / (run + wait), %"), ("sleep_ns", "i", ""), ("blocked_ns", "i", ""),
        ("other_sleep_ns", "i", ""), ("unknown_ns", "i", ""), ("switches_in", "i", ""),
        ("inferred_switch_ins", "i", ""), ("preemptions", "i", ""), ("wakeups", "i", ""),
        ("migrations", "i", ""), ("stacked_ns", "i", "wait behind vCPUs of its own VM"),
        ("guest_ns", "i", "complete guest spans"), ("guest_edge_ns", "i", "guest spans cut by the window"),
        ("guest_pct", "f", ""), ("handling_ns", "i", "exit handling"),
        ("exits", "i", "kvm_exit lines"), ("exits_handled", "i", "timed exits"),
        ("exits_switched_out", "i", "switched out before re-entry"), ("exits_broken", "i", "not timed"),
        ("halts", "i", "HLT exits"), ("halt_ns", "i", ""), ("halts_slept", "i", ""), ("halts_polled", "i", ""),
        ("lat_count", "i", "wakeup latency samples"), ("lat_mean_ns", "f", ""), ("lat_p50_ns", "i", ""),
        ("lat_p90_ns", "i", ""), ("lat_p99_ns", "i", ""), ("lat_max_ns", "i", ""),
        ("main_cpu", "i", "CPU it ran on most"),
    ]),
    "neighbours": ("who ran on the CPU a vCPU waited for (K4), per (vCPU, task)", [
        ("vm", "i", ""), ("vcpu", "i", ""), ("vcpu_pid", "i", ""), ("vcpu_comm", "s", ""),
        ("pid", "i", "the task that held the CPU (0 idle, -1 unknown)"), ("comm", "s", ""),
        ("stolen_ns", "i", "time it held the CPU while the vCPU waited"),
        ("share_pct", "f", "stolen_ns / the vCPU's wait_ns, %"), ("same_vm", "b", "a thread of the same VM"),
        ("cpus", "li", "CPUs where it happened"),
    ]),
    "placement": ("run and wait time of each vCPU thread per CPU", [
        ("vm", "i", ""), ("vcpu", "i", ""), ("vcpu_pid", "i", ""), ("cpu", "i", ""),
        ("run_ns", "i", ""), ("wait_ns", "i", ""),
    ]),
    "exits": ("exits per vCPU thread and reason", [
        ("vm", "i", ""), ("vcpu", "i", ""), ("vcpu_pid", "i", ""), ("reason", "s", "as printed"),
        ("count", "i", ""), ("rate_per_s", "f", "null for tick clocks"), ("handled", "i", "timed exits"),
        ("total_ns", "i", "handling time"), ("mean_ns", "f", ""), ("p50_ns", "i", ""), ("p99_ns", "i", ""),
        ("max_ns", "i", ""), ("switched_out", "i", "switched out before re-entry"),
    ]),
    "vm_exits": ("exits per VM and reason", [
        ("vm", "i", ""), ("reason", "s", ""), ("count", "i", ""), ("rate_per_s", "f", ""),
        ("handled", "i", ""), ("total_ns", "i", ""), ("mean_ns", "f", ""), ("p50_ns", "i", ""),
        ("p99_ns", "i", ""), ("max_ns", "i", ""), ("switched_out", "i", ""),
    ]),
    "io_threads": ("QEMU I/O and other non-vCPU threads ('stats --kvm' io.threads)", [
        ("vm", "i", ""), ("role", "s", "iothread, vhost, main, thread"), ("pid", "i", ""), ("tgid", "i", ""),
        ("comm", "s", ""), ("run_ns", "i", ""), ("wait_ns", "i", ""), ("sleep_ns", "i", ""),
        ("blocked_ns", "i", ""), ("blocked_count", "i", ""), ("wakeups", "i", ""),
        ("longest_blocked_ns", "i", ""), ("longest_blocked_at", "i", "trace time"),
    ]),
    "block": ("block requests per device, issue to complete", [
        ("device", "s", "major,minor"), ("issued", "i", ""), ("completed", "i", ""), ("paired", "i", ""),
        ("bytes", "i", ""), ("latency_mean_ns", "f", ""), ("latency_p50_ns", "i", ""), ("latency_p90_ns", "i", ""),
        ("latency_p99_ns", "i", ""), ("latency_max_ns", "i", ""),
    ]),
    "findings": ("'diagnose' findings, most severe first", [
        ("rank", "i", "1 = most severe"), ("kind", "s", "vcpu_steal, overcommit, vcpu_stacking, ..."),
        ("severity", "s", "high, medium, low, info"), ("score", "f", "how far past its threshold"),
        ("pid", "i", "subject task"), ("comm", "s", ""), ("vm", "i", ""), ("vcpu", "i", ""),
        ("cpu", "i", "subject CPU"), ("device", "s", "subject device"),
        ("subject", "s", "the subject as JSON"), ("evidence", "s", "the evidence as JSON"),
        ("explanation", "s", "the sentence"),
    ]),
}

#: the failures table (not per trace: one file per failed input path)
FAILURES = ("traces that could not be analysed", [
    ("path", "s", ""), ("trace_id", "s", "content hash, null when unreadable"),
    ("error", "s", "one line"), ("bytes", "i", "file size, null when missing"),
    ("failed_at", "f", "Unix time"),
])


def _arrow_type(code):
    import pyarrow as pa
    return {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "b": pa.bool_(),
            "li": pa.list_(pa.int64()), "ls": pa.list_(pa.string())}[code]


@functools.lru_cache(maxsize=None)
def schema(table):
    """The Arrow schema of a store table (host and trace_id first)."""
    import pyarrow as pa
    if table == "failures":
        cols = [("host", "s", "")] + FAILURES[1]
    else:
        cols = [("host", "s", ""), ("trace_id", "s", "")] + TABLES[table][1]
    return pa.schema([(c, _arrow_type(t)) for c, t, _ in cols])


# ---------------------------------------------------------------------------------------------
# inputs

def expand_inputs(items):
    """Paths, globs, directories (every regular file under it, hidden ones skipped) and
    @list files (one input a line, # comments) -> sorted unique paths.  FleetError(2) for an
    item that names nothing."""
    out = []

    def add(item, depth=0):
        if item.startswith("@"):
            if depth > 4:
                raise FleetError(f"{item}: @list files nest too deep")
            try:
                with open(item[1:], encoding="utf-8") as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise FleetError(f"cannot read list {item[1:]}: {exc.strerror or exc}") from None
            base = os.path.dirname(os.path.abspath(item[1:]))
            for ln in lines:
                if ln and not ln.startswith("#"):
                    add(ln if os.path.isabs(ln) or ln.startswith("@") else os.path.join(base, ln),
                        depth + 1)
            return
        if os.path.isdir(item):
            found = []
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, f) for f in files if not f.startswith("."))
            out.extend(found)
            return
        if os.path.exists(item):
            out.append(item)
            return
        if any(ch in item for ch in "*?["):
            hits = sorted(globmod.glob(item, recursive=True))
            files = [h for h in hits if os.path.isfile(h)]
            if files:
                out.extend(files)
                return
        raise FleetError(f"{item}: no such file, directory or matching glob")

    for it in items:
        add(it)
    seen, paths = set(), []
    for p in out:
        a = os.path.abspath(p)
        if a not in seen:
            seen.add(a)
            paths.append(a)
    return sorted(paths)


def host_of(path, pattern=None):
    """The host of a trace path: the first group (or the whole match) of ``pattern``
    searched in the path, else the parent directory's name."""
    if pattern is None:
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "-"
    m = pattern.search(path)
    if not m:
        return None
    if "host" in m.re.groupindex:
        return m.group("host")
    return m.group(1) if m.re.groups else m.group(0)


def content_id(path):
    """The trace's id: the first 32 hex digits of the SHA-256 digest of the file's bytes."""
    import mmap
    h = hashlib.sha256()
    with open(path, "rb") as f:
        try:
            # hashed where the page cache holds it: no copy (the parse reads the same pages)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                h.update(m)
            return h.hexdigest()[:32]
        except (ValueError, OSError):
            pass          # empty, or not mappable (a pipe): read it
        while True:
            b = f.read(_HASH_BLOCK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# the store

def _escape(v):
    """A value as a directory name: percent-escaped (hive style); never empty, '.' or '..'
    (quote() leaves dots alone)."""
    s = urllib.parse.quote(str(v), safe="-_.,+@:")
    return s if s not in ("", ".", "..") else ("%2E" * len(s) or "%00")


class Store:
    """A local directory or an fsspec URL; files are written beside their final name and
    renamed into place."""

    def __init__(self, url):
        self.url = str(url).rstrip("/") or "/"
        self.fs = None
        if "://" in self.url:
            try:
                import fsspec
            except ImportError:
                raise FleetError(f"a store URL needs fsspec: {INSTALL}") from None
            try:
                self.fs, self.root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise FleetError(f"cannot open store {self.url}: {exc}") from None
            self.root = self.root.rstrip("/")
        else:
            self.root = os.path.abspath(self.url)

    @property
    def local(self):
        return self.fs is None or getattr(self.fs, "protocol", None) in ("file", ("file", "local"))

    def local_root(self):
        """The store as a local directory path, or None for a remote one."""
        if self.fs is None:
            return self.root
        return self.root if self.local else None

    def join(self, *parts):
        return "/".join([self.root, *parts]) if self.fs is not None else os.path.join(self.root, *parts)

    def partition(self, table, host, trace_id):
        return self.join(table, f"host={_escape(host)}", f"trace={trace_id}", "part.parquet")

    def failure_path(self, key):
        return self.join("failures", f"{key}.parquet")

    def check_writable(self):
        """Create the store's root; FleetError(4) when it cannot be written."""
        try:
            if self.fs is None:
                os.makedirs(self.root, exist_ok=True)
                probe = os.path.join(self.root, f".probe-{uuid.uuid4().hex}")
                with open(probe, "wb"):
                    pass
                os.unlink(probe)
            else:
                self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise FleetError(f"cannot write the store {self.url}: {exc.strerror or exc}", 4) from None

    def exists(self, path):
        return os.path.exists(path) if self.fs is None else self.fs.exists(path)

    def glob(self, *parts):
        """The paths matching a pattern under the root (the root's own characters literal)."""
        if self.fs is None:
            return globmod.glob(os.path.join(globmod.escape(self.root), *parts), recursive=True)
        return self.fs.glob(self.join(*parts))

    def pattern(self, table):
        """The glob of a table's part files."""
        if table == "failures":
            return ("failures", "*.parquet")
        return (table, "host=*", "trace=*", "part.parquet")

    def committed(self, trace_id):
        return bool(self.glob("traces", "host=*", f"trace={trace_id}", "part.parquet"))

    def publish(self, path, write):
        """Write a file by ``write(binary file)`` under a temporary name beside ``path``, then
        rename it to ``path``."""
        d = os.path.dirname(path) if self.fs is None else path.rsplit("/", 1)[0]
        tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if self.fs is None:
            os.makedirs(d, exist_ok=True)
            try:
                with open(tmp, "wb") as f:
                    write(f)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.makedirs(d, exist_ok=True)
            try:
                with self.fs.open(tmp, "wb") as f:
                    write(f)
                self.fs.mv(tmp, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm(tmp)
                raise

    def write_table(self, path, table):
        """An Arrow table as Parquet at ``path`` (published).  Uncompressed, without column
        statistics: a partition holds one trace's few rows, where compression and statistics
        cost more to write than they save (zstd halved the writing speed for 3% fewer bytes)."""
        import pyarrow.parquet as pq
        self.publish(path, lambda f: pq.write_table(table, f, compression="none",
                                                    write_statistics=False))

    def index_path(self, key):
        return self.join("_index", f"{key}.json")

    def read_json(self, path):
        """A small JSON file of the store, or None when missing or unreadable."""
        try:
            if self.fs is None:
                with open(path, "rb") as f:
                    return json.loads(f.read())
            with self.fs.open(path, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError, FileNotFoundError):
            return None

    def remove(self, path):
        with contextlib.suppress(OSError, FileNotFoundError):
            if self.fs is None:
                os.unlink(path)
            elif self.fs.exists(path):
                self.fs.rm(path)

    def first_file(self, table):
        """A committed part file of a table, or None (the first found: not every file listed)."""
        return next((h for h in self._iglob(*self.pattern(table)) if ".tmp-" not in h), None)

    def _iglob(self, *parts):
        if self.fs is None:
            return globmod.iglob(os.path.join(globmod.escape(self.root), *parts), recursive=True)
        return iter(self.fs.glob(self.join(*parts)))

    def files(self, table):
        """The committed part files of a table (traces committed, or every failure file)."""
        return sorted(h for h in self.glob(*self.pattern(table)) if ".tmp-" not in h)

    def clean_temporaries(self, older_than_s=3600.0):
        """Remove temporary files left by killed tasks (older than an hour: a task of this
        or another run may still be writing a fresh one)."""
        if self.fs is not None:
            return 0
        n = 0
        now = time.time()
        for p in self.glob("**", "*.tmp-*"):
            with contextlib.suppress(OSError):
                if now - os.path.getmtime(p) > older_than_s:
                    os.unlink(p)
                    n += 1
        return n


# ---------------------------------------------------------------------------------------------
# one trace -> rows of every table

_PARSER = []


def _stats_args(path):
    """The command line ``ftfast stats PATH --format json -q``: the same defaults as the
    command, from its own parser (built once per process), parsed in one thread: the tasks
    running at once are the parallelism (a worker per core)."""
    from . import cli
    if not _PARSER:
        _PARSER.append(cli.build_parser())
    args = _PARSER[0].parse_args(["stats", path, "--format", "json", "-q"])
    args.load_threads = 1
    return args


def _jsonable(doc):
    """The document as ``--format json`` prints it (NumPy scalars as Python, NaN as null)."""
    from . import cli
    return json.loads(json.dumps(doc, default=cli._py, allow_nan=False))


def documents(path):
    """(trace, stats document, findings) of one trace: what ``ftfast stats --format json`` and
    ``ftfast diagnose --format json`` print for it (``findings`` is the latter's list)."""
    from . import cli, kvm
    t, doc, _ = cli.stats_document(_stats_args(path))
    found = kvm.diagnose(t, kvm.Thresholds())
    return t, _jsonable(doc), _jsonable(found)


def _hist_rows(latency_ns):
    """Bucket counts of latency samples: bucket k holds [floor(2**(k/S)), floor(2**((k+1)/S)))
    (k = -1 holds the zeros)."""
    import numpy as np
    v = np.asarray(latency_ns, np.int64)
    if not len(v):
        return []
    v = np.maximum(v, 0)
    k = np.full(len(v), -1, np.int64)
    pos = v > 0
    k[pos] = np.floor(np.log2(v[pos]) * HIST_STEPS).astype(np.int64)
    # float rounding at the bounds: move each sample into the bucket whose bounds hold it
    lo = _bucket_lo(k)
    k -= v < lo
    k += v >= _bucket_lo(k + 1)
    u, n = np.unique(k, return_counts=True)
    return [{"bucket": b, "lo_ns": int(_bucket_lo(b)), "hi_ns": int(_bucket_lo(b + 1)), "count": c}
            for b, c in zip(u.tolist(), n.tolist())]


def _bucket_lo(k):
    import numpy as np
    k = np.asarray(k, np.int64)
    lo = np.floor(np.exp2(np.maximum(k, 0) / HIST_STEPS)).astype(np.int64)
    return np.where(k < 0, 0, np.where(k == 0, 1, lo))


def _pick(d, cols, **rename):
    """A row: the named columns of a dict (renamed ones from other keys)."""
    return {c: (d.get(rename[c]) if c in rename else d.get(c)) for c in cols}


def tables_of(t, doc, found, *, path, size, seconds=None):
    """{table: rows} of one trace from its documents (the store's tables without host and
    trace_id)."""
    from . import __version__, sched
    cols = {name: [c for c, _, _ in spec[1]] for name, spec in TABLES.items()}
    out = {name: [] for name in TABLES}
    out["cpus"] = [_pick(r, cols["cpus"]) for r in doc.get("cpus", [])]
    out["tasks"] = [_pick(r, cols["tasks"]) for r in doc.get("tasks", [])]
    ev = doc.get("wakeups_event")
    out["wakeups"] = [{"event": ev, "comm": r["comm"], "pid": x["pid"], "count": x["count"]}
                      for r in doc.get("wakeups", []) for x in r["pids"]]
    out["switches"] = [_pick(r, cols["switches"]) for r in doc.get("switches", [])]
    out["migrations"] = [_pick(r, cols["migrations"]) for r in doc.get("migrations", [])]
    lat = doc.get("latency")
    if lat is not None:
        samples = sched.wakeup_latencies(t, source="wakeup")["latency_ns"]
        out["latency_hist"] = _hist_rows(samples)
    k = doc.get("kvm")
    oc = {}
    if k:
        oc = k.get("runnable_vcpus") or {}
        for vm in k["vms"]:
            r = _pick(vm, cols["vms"])
            r["vcpus"], r["threads"] = len(vm["vcpus"]), len(vm["threads"])
            ro = vm.get("runnable_vcpus") or {}
            r["runnable_vcpus_mean"], r["runnable_vcpus_max"] = ro.get("mean"), ro.get("max")
            r["overcommit_ns"] = ro.get("overcommit_ns")
            out["vms"].append(r)
            for reason, e in vm["exits"].items():
                out["vm_exits"].append(dict(_pick(e, cols["vm_exits"]), vm=vm["vm"], reason=reason))
        for v in k["vcpus"]:
            r = _pick(v, cols["vcpus"])
            et = v.get("exits_total") or {}
            r["exits"], r["exits_handled"] = et.get("count"), et.get("handled")
            r["exits_switched_out"], r["exits_broken"] = et.get("switched_out"), et.get("broken")
            h = v.get("halts") or {}
            r["halts"], r["halt_ns"] = h.get("count"), h.get("total_ns")
            r["halts_slept"], r["halts_polled"] = h.get("slept"), h.get("polled")
            wl = v.get("wakeup_latency") or {}
            r["lat_count"] = wl.get("count", 0 if v.get("run_ns") is not None else None)
            for c in ("mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"):
                r["lat_" + c] = wl.get(c)
            out["vcpus"].append(r)
            key = {"vm": v["vm"], "vcpu": v["vcpu"], "vcpu_pid": v["pid"]}
            for reason, e in v["exits"].items():
                out["exits"].append(dict(_pick(e, cols["exits"]), **key, reason=reason))
            for n in v["neighbours"]:
                out["neighbours"].append(dict(
                    key, vcpu_comm=v["comm"], pid=n["pid"], comm=n["comm"], stolen_ns=n["stolen_ns"],
                    share_pct=100.0 * n["stolen_ns"] / v["wait_ns"] if v.get("wait_ns") else None,
                    same_vm=n["same_vm"], cpus=n["cpus"]))
            for c, x in v["cpus"].items():
                out["placement"].append(dict(key, cpu=int(c), run_ns=x["run_ns"], wait_ns=x["wait_ns"]))
        out["io_threads"] = [_pick(r, cols["io_threads"]) for r in k["io"]["threads"]]
        out["block"] = [_pick(r, cols["block"]) for r in k["io"]["devices"]]
    for i, f in enumerate(found):
        s = f["subject"]
        out["findings"].append({"rank": i + 1, "kind": f["kind"], "severity": f["severity"],
                                "score": f["score"], "pid": s.get("pid"), "comm": s.get("comm"),
                                "vm": s.get("vm"), "vcpu": s.get("vcpu"), "cpu": s.get("cpu"),
                                "device": s.get("device"),
                                "subject": json.dumps(s, sort_keys=True, ensure_ascii=False),
                                "evidence": json.dumps(f["evidence"], sort_keys=True, ensure_ascii=False),
                                "explanation": f["explanation"]})
    src, w = doc["source"], doc["source"]["window"]
    vc = out["vcpus"]
    tot = lambda key: sum(r[key] for r in vc) if vc and all(r[key] is not None for r in vc) else None  # noqa: E731
    dur = w["duration"]
    lat = lat or {}
    out["traces"] = [{
        "path": path, "bytes": size, "format": src["format"], "clock": src["clock"],
        "time_unit": src["time_unit"], "window_start": w["start"], "window_end": w["end"],
        "duration_ns": dur, "lines": t.stats.lines, "events": t.stats.events,
        "malformed": t.stats.malformed, "lost_events": int(t.lost["count"].sum()) if len(t.lost) else 0,
        "ncpus": oc.get("ncpus", len(doc["cpus"]) if "cpus" in doc else len(t.cpus())),
        "tasks": len(out["tasks"]), "vms": len(out["vms"]), "vcpus": len(vc),
        "lat_source": lat.get("source"), "lat_count": lat.get("count"), "lat_mean_ns": lat.get("mean_ns"),
        "lat_p50_ns": lat.get("p50_ns"), "lat_p90_ns": lat.get("p90_ns"), "lat_p99_ns": lat.get("p99_ns"),
        "lat_max_ns": lat.get("max_ns"),
        "runnable_vcpus_mean": oc.get("mean"), "runnable_vcpus_max": oc.get("max"),
        "overcommit_ns": oc.get("overcommit_ns"),
        "overcommit_pct": 100.0 * oc["overcommit_ns"] / max(dur, 1) if oc else None,
        "vcpu_run_ns": tot("run_ns"), "vcpu_wait_ns": tot("wait_ns"), "stacked_ns": tot("stacked_ns"),
        "findings": sum(1 for f in found if f["kind"] != "caveat"),
        "caveats": list(doc.get("caveats", [])), "analysis_s": seconds, "version": __version__,
    }]
    return out


def _arrow(table, host, trace_id, rows):
    """Rows (dicts) as an Arrow table of the store's schema, built from NumPy buffers.
    pyarrow's own builders from Python lists or NumPy arrays import pandas (about 0.4 s of CPU
    per process), and its JSON reader starts an I/O thread per call (with a worker per core,
    each start waits for a core: 14 a task).  Types are as strict as that reader was: an
    unknown column, or a value of another type, raises ValueError."""
    import pyarrow as pa
    sch = schema(table)
    key = {"host": host} if table == "failures" else {"host": host, "trace_id": trace_id}
    known = set(sch.names)
    for r in rows:
        if not known.issuperset(r):
            raise ValueError(f"{table}: no column {sorted(set(r) - known)} in the store's schema")
    n = len(rows)
    cols = [_column([key[f.name]] * n if f.name in key else [r.get(f.name) for r in rows], f.type,
                    f"{table}.{f.name}") for f in sch]
    return pa.Table.from_arrays(cols, schema=sch)


def _column(values, typ, where):
    """One Arrow array of ``typ`` (int64, float64, bool, string or a list of int64 or
    string) from Python values, None as null, with export's buffer builders."""
    import numpy as np
    import pyarrow as pa
    from .export import _numbers, _strings, _validity
    kinds = {type(v) for v in values}
    null = None
    if type(None) in kinds:
        kinds.discard(type(None))
        null = np.array([v is None for v in values], bool)
    if pa.types.is_list(typ):
        _kinds_in(kinds, (list, tuple), values, where)
        child = _column([x for v in values if v is not None for x in v], typ.value_type, where)
        ends = np.cumsum([len(v) if v is not None else 0 for v in values], dtype=np.int64)
        if len(ends) and ends[-1] >= 1 << 31:
            raise ValueError(f"{where}: over 2**31 items in one column")
        offsets = np.concatenate([[0], ends]).astype(np.int32)
        valid, nulls = _validity(pa, null)
        return pa.Array.from_buffers(typ, len(values), [valid, pa.py_buffer(offsets)],
                                     null_count=nulls, children=[child])
    if typ == pa.string():
        _kinds_in(kinds, (str,), values, where)
        col = _strings(pa, values)
        if col.type != typ:
            raise ValueError(f"{where}: over 2**31 bytes of text in one column")
        return col
    data = values if null is None else [0 if v is None else v for v in values]
    if typ == pa.bool_():
        _kinds_in(kinds, (bool,), values, where)
        return _numbers(pa, np.array(data, bool), null)
    if typ == pa.int64():
        _kinds_in(kinds, (int,), values, where)
        dtype = np.int64
    elif typ == pa.float64():
        _kinds_in(kinds, (float, int), values, where)
        dtype = np.float64
    else:
        raise ValueError(f"{where}: no builder for {typ}")
    try:
        a = np.array(data, dtype)
    except OverflowError:
        raise ValueError(f"{where}: a value past {typ}") from None
    if dtype is np.float64 and not np.isfinite(a).all():
        raise ValueError(f"{where}: NaN or infinity (JSON has neither)")
    return _numbers(pa, a, null)


def _kinds_in(kinds, allowed, values, where):
    """ValueError unless every (non-null) value is of one of the allowed Python types, as the
    JSON reader took them (bool is no int there, nor a number a string)."""
    bad = kinds.difference(allowed)
    if bad:
        v = next(v for v in values if type(v) in bad)
        raise ValueError(f"{where}: {v!r} is not a value of its column "
                         f"({', '.join(t.__name__ for t in allowed)})")


def _one_line(exc):
    s = str(exc).strip().splitlines()
    msg = s[0] if s else ""
    return msg if msg else type(exc).__name__


def analyse(path, host, store_url, *, skip_done=True):
    """The Dask task: one trace into the store.  Returns a small dict (status "done",
    "skipped" or "failed", trace_id, bytes, seconds, error).  Never raises for a bad trace:
    a failure becomes a row of the failures table."""
    from ._source import InputError
    from .trace import ParseError
    t0 = time.time()
    store = Store(store_url)
    fkey = path_key(path)
    res = {"path": path, "host": host, "trace_id": None, "bytes": None, "status": None,
           "error": None, "seconds": 0.0}
    try:
        # stat before hashing: a file changed meanwhile gets another stamp, read again next run
        st = os.stat(path)
        res["bytes"] = st.st_size
        res["trace_id"] = tid = content_id(path)
        stamp = json.dumps({"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            "trace_id": tid}).encode()
        if skip_done and store.committed(tid):
            res["status"] = "skipped"
            store.remove(store.failure_path(fkey))
            store.publish(store.index_path(fkey), lambda f: f.write(stamp))
            return res
        # one core a task: the workers running at once are the parallelism
        with _threads.inline():
            t, doc, found = documents(path)
            rows = tables_of(t, doc, found, path=path, size=res["bytes"])
        del t
        # the traces row commits the trace: every other table first
        for name in TABLES:
            # an empty table is no file (a trace without KVM has no vCPU tables)
            if name != "traces" and rows[name]:
                store.write_table(store.partition(name, host, tid), _arrow(name, host, tid, rows[name]))
        rows["traces"][0]["analysis_s"] = round(time.time() - t0, 6)
        store.write_table(store.partition("traces", host, tid), _arrow("traces", host, tid, rows["traces"]))
        store.remove(store.failure_path(fkey))
        store.publish(store.index_path(fkey), lambda f: f.write(stamp))
        res["status"] = "done"
    except MemoryError:
        res["status"], res["error"] = "failed", f"{path}: out of memory"
        record_failure(store, path, host, res["trace_id"], res["error"], res["bytes"], key=fkey)
    except Exception as exc:  # noqa: BLE001: any failure of one trace is that trace's row
        from . import cli
        if isinstance(exc, cli.CliError):
            err = str(exc)
        elif isinstance(exc, (InputError, ParseError)):
            err = f"{path}: {_one_line(exc)}"
        elif isinstance(exc, OSError):
            err = f"{path}: {exc.strerror or _one_line(exc)}"
        else:
            err = f"{path}: {type(exc).__name__}: {_one_line(exc)}"
        res["status"], res["error"] = "failed", err
        record_failure(store, path, host, res["trace_id"], err, res["bytes"], key=fkey)
    res["seconds"] = time.time() - t0
    return res


def path_key(path):
    """The name of a path's failure and index files."""
    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def _unchanged(store, path, committed):
    """The trace id of a path whose size and modification time are those it had when it was
    stored (the index), its trace still committed; else None."""
    idx = store.read_json(store.index_path(path_key(path)))
    if not idx or idx.get("trace_id") not in committed or idx.get("path") != path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return idx["trace_id"] if (idx.get("size"), idx.get("mtime_ns")) == (st.st_size, st.st_mtime_ns) else None


def record_failure(store, path, host, trace_id, error, size, key=None):
    key = key or path_key(path)
    row = {"path": path, "trace_id": trace_id, "error": error, "bytes": size, "failed_at": time.time()}
    tbl = _arrow("failures", host, None, [row])
    store.write_table(store.failure_path(key), tbl)


# ---------------------------------------------------------------------------------------------
# the driver

class _Bar:
    """Traces done, bytes, rate and ETA on one stderr line (a terminal only)."""

    def __init__(self, total, total_bytes, enabled):
        self.total, self.total_bytes = total, max(total_bytes, 1)
        self.enabled = enabled
        self.t0 = time.time()
        self.last = 0.0

    def update(self, done, done_bytes, failed, force=False):
        if not self.enabled:
            return
        now = time.time()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        el = now - self.t0
        rate = done_bytes / el if el > 0 else 0
        eta = (self.total_bytes - done_bytes) / rate if rate > 0 else None
        eta_s = "--:--" if eta is None else f"{int(eta) // 60:d}:{int(eta) % 60:02d}"
        pct = 100.0 * done_bytes / self.total_bytes
        fail = f", {failed} failed" if failed else ""
        sys.stderr.write(f"\rftfast fleet: {done}/{self.total} traces{fail}, "
                         f"{done_bytes / 1e6:,.0f}/{self.total_bytes / 1e6:,.0f} MB ({pct:.0f}%), "
                         f"{rate / 1e6:,.1f} MB/s, ETA {eta_s} ")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def dask_setup(worker=None):
    """Import what a task needs, once per process, before its first task.  A Dask preload
    (``dask worker --preload ftrace_fast.fleet`` runs it as each worker starts); the local
    cluster runs it in this process before its workers are forked from it."""
    import numpy  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from . import cli, export, kvm, sched  # noqa: F401
    if not _PARSER:
        _PARSER.append(cli.build_parser())


def _fork_workers():
    """Whether the local cluster's workers are forked from this process (Linux), rather than
    started as new interpreters (Dask's default, spawn)."""
    import multiprocessing
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def client_for(workers=None, scheduler=None):
    """A Dask client: on ``scheduler`` (an address) or on a new LocalCluster of ``workers``
    processes with one thread each (default: the CPUs this process may use).  On Linux the
    workers are forked from this process after :func:`dask_setup`: each starts with Dask,
    NumPy, pyarrow and ftrace_fast imported (a spawned worker imports them again: about a
    second of CPU each, most of the run for a few traces)."""
    import logging
    import dask
    from dask.distributed import Client, LocalCluster
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise FleetError(f"cannot reach the Dask scheduler {scheduler}: {_one_line(exc)}", 2) from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            workers = os.cpu_count() or 1
    # no profiler, slow admin ticks: idle, they take CPU from the tasks; the nannies'
    # memory watch stays at Dask's pace
    cfg = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
           "distributed.admin.system-monitor.interval": "1s"}
    if _fork_workers():
        dask_setup()
        # a worker restarted by its nanny (after its process died) is forked the same way
        cfg["distributed.worker.multiprocessing-method"] = "fork"
        import warnings
        # Python 3.12+ warns on any fork of a process with threads (here the cluster's event
        # loop): the child runs only the worker, which starts its own loop
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                                category=DeprecationWarning)
    # the workers are forked with every object so far frozen: their collector never walks
    # (and so never copies) the pages they share with this process; here collection resumes
    # once they are started
    import gc
    import signal
    gc.freeze()
    with dask.config.set(cfg):
        # the worker processes start with SIGINT ignored (kept across fork and exec; Python and
        # asyncio then install no handler): Ctrl-C on the terminal reaches every process of the
        # group, and only this one should act on it, cancelling the tasks and closing the cluster
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            # the scheduler's HTTP routes (health, metrics) on a free local port: the default
            # 8787 may be taken (another cluster), and Dask then retries and warns
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL,
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        finally:
            gc.unfreeze()
            if old is not None:
                signal.signal(signal.SIGINT, old)
        # results straight from the workers, not relayed by the scheduler (a hop less per task)
        client = Client(cluster, direct_to_workers=True)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close()
            with contextlib.suppress(Exception):
                cluster.close()


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def run(inputs, store_url, *, workers=None, scheduler=None, client=None, host_from=None,
        progress=None, retries=2, on_result=None):
    """Analyse every trace of ``inputs`` (paths as ``expand_inputs`` gives them) into the
    store.  Returns {"done", "skipped", "failed": [result dicts], "interrupted"}.

    ``client``: an existing dask.distributed Client (tests); else one is made from
    ``scheduler`` or ``workers``.  ``host_from``: a compiled regex (see :func:`host_of`).
    ``on_result(result)``: called in the driver as each task finishes.  ``retries``: Dask
    retries of a task that raised (a task records a bad trace instead of raising; a task whose
    worker died is given to another worker by the scheduler, up to its allowed-failures)."""
    require()
    store = Store(store_url)
    store.check_writable()
    store.clean_temporaries()
    jobs = []
    nohost = []
    for p in inputs:
        h = host_of(p, host_from)
        if h is None:
            nohost.append(p)
            h = "unknown"
        jobs.append((p, h))
    sizes = {}
    for p, _ in jobs:
        try:
            sizes[p] = os.path.getsize(p)
        except OSError:
            sizes[p] = 0
    summary = {"done": [], "skipped": [], "failed": [], "interrupted": False, "nohost": nohost}
    # a file unchanged since it was stored (size, mtime) is not read again: no task, and no
    # cluster at all when every trace is done
    committed = {f.replace("\\", "/").split("/")[-2][len("trace="):] for f in store.files("traces")}
    todo = []
    for p, h in jobs:
        tid = _unchanged(store, p, committed) if committed else None
        if tid is None:
            todo.append((p, h))
        else:
            summary["skipped"].append({"path": p, "host": h, "trace_id": tid, "bytes": sizes[p],
                                       "status": "skipped", "error": None, "seconds": 0.0})
    jobs = todo
    if not jobs:
        return summary
    if progress is None:
        progress = sys.stderr.isatty()
    bar = _Bar(len(jobs), sum(sizes.values()), progress)
    ctx = contextlib.nullcontext(client) if client is not None else client_for(workers, scheduler)
    futures = []
    try:
        with ctx as c:
            from dask.distributed import as_completed
            from distributed.scheduler import KilledWorker
            # one graph for all the tasks: one message to the scheduler, not one per trace
            futures = c.map(analyse, [p for p, _ in jobs], [h for _, h in jobs], [store_url] * len(jobs),
                            key=[f"ftfast-{uuid.uuid4().hex}" for _ in jobs], retries=retries, pure=False)
            by_key = {f.key: job for f, job in zip(futures, jobs)}
            done_bytes = 0
            n = 0
            for fut in as_completed(futures):
                p, h = by_key[fut.key]
                try:
                    r = fut.result()
                except KilledWorker:
                    err = (f"{p}: every worker that took it died (Dask's allowed-failures; out of "
                           "memory?)")
                    record_failure(store, p, h, None, err, sizes.get(p))
                    r = {"path": p, "host": h, "trace_id": None, "bytes": sizes.get(p),
                         "status": "failed", "error": err, "seconds": 0.0}
                n += 1
                done_bytes += sizes.get(p, 0)
                summary[r["status"] if r["status"] in ("done", "skipped") else "failed"].append(r)
                if on_result is not None:
                    on_result(r)
                bar.update(n, done_bytes, len(summary["failed"]))
            bar.update(n, done_bytes, len(summary["failed"]), force=True)
    except KeyboardInterrupt:
        summary["interrupted"] = True
        for f in futures:
            with contextlib.suppress(Exception):
                f.cancel()
    finally:
        bar.close()
    return summary


# ---------------------------------------------------------------------------------------------
# command line (parsing lives in cli.py)

def quick_exit():
    """Have the interpreter's exit skip the collector's last walk over every object (Dask's,
    DuckDB's, pyarrow's and NumPy's modules: 0.2-0.8 s of a command's time): a finished command
    has nothing left to collect.  At exit only, so a caller that goes on is unaffected."""
    if not _QUICK_EXIT:
        import atexit
        import gc
        atexit.register(gc.freeze)
        _QUICK_EXIT.append(True)


_QUICK_EXIT = []


def cmd_run(args, out):
    require()
    quick_exit()
    pattern = None
    if args.host_from is not None:
        try:
            pattern = re.compile(args.host_from)
        except re.error as exc:
            raise FleetError(f"bad --host-from regex {args.host_from!r}: {exc}") from None
    if args.workers is not None and args.workers < 1:
        raise FleetError("--workers must be at least 1")
    if args.workers is not None and args.scheduler:
        raise FleetError("--workers and --scheduler exclude each other (the cluster has its own workers)")
    paths = expand_inputs(args.traces)
    if not paths:
        raise FleetError("no trace to analyse")
    t0 = time.time()
    s = run(paths, args.store, workers=args.workers, scheduler=args.scheduler, host_from=pattern,
            progress=None if not args.quiet else False)
    el = time.time() - t0
    mb = sum(r["bytes"] or 0 for r in s["done"]) / 1e6
    if not args.quiet:
        if s["nohost"]:
            print(f"ftfast fleet: note: --host-from matched no host in {len(s['nohost'])} path(s) "
                  f"(host 'unknown'), e.g. {s['nohost'][0]}", file=sys.stderr)
        for r in s["failed"][:10]:
            print(f"ftfast fleet: failed: {r['error']}", file=sys.stderr)
        if len(s["failed"]) > 10:
            print(f"ftfast fleet: ... {len(s['failed']) - 10} more failures (see the failures view)",
                  file=sys.stderr)
        print(f"ftfast fleet: {len(s['done'])} analysed ({mb:,.1f} MB in {el:.1f} s), "
              f"{len(s['skipped'])} already in the store, {len(s['failed'])} failed; store {args.store}",
              file=sys.stderr)
    if s["interrupted"]:
        left = len(paths) - len(s["done"]) - len(s["skipped"]) - len(s["failed"])
        print(f"ftfast fleet: interrupted: {left} trace(s) not analysed; run the same command "
              "again to finish", file=sys.stderr)
        return 130
    # some unreadable traces among good ones are the fleet's normal state; none readable is not
    return 3 if s["failed"] and not s["done"] and not s["skipped"] else 0
