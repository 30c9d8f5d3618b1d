"""The parse cache (ftrace_fast.cache): a cached Trace equals a fresh one attribute by
attribute; stale, changed, damaged and half-written entries are never used; a full or
read-only cache directory is no failure; the scheduling model is restored without a walk."""

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import cache, kvm, sched
from ftrace_fast.trace import Trace

from helpers import DATA

FTFAST = [sys.executable, "-m", "ftrace_fast"]
EXTRA = (b"CPU:1 [LOST 12 EVENTS]\n"
         b"  this line is no ftrace line at all\n"
         b"           <...>-11953 [001] d... 101.500000: tracing_mark_write: hello marker\n")


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FTFAST_CACHE_DIR", str(d))
    monkeypatch.delenv("FTFAST_CACHE_MAX", raising=False)
    monkeypatch.delenv("FTFAST_CACHE_MIN", raising=False)
    monkeypatch.setattr(cache, "BACKGROUND", False)   # cli.main() run in process sets it
    cache._warned.clear()
    return d


@pytest.fixture(scope="module")
def kvm_text(tmp_path_factory):
    """A KVM host trace with a LOST marker, a malformed line and a text event added."""
    p = tmp_path_factory.mktemp("in") / "kvm.txt"
    p.write_bytes(gzip.decompress((DATA / "kvm_smp4_contended_small.txt.gz").read_bytes()) + EXTRA)
    return p


def quiet_load(*a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(*a, **kw)


def entry_dirs(d):
    e = d / "entries"
    return sorted(e.iterdir()) if e.is_dir() else []


def leftovers(d):
    return [n for n in os.listdir(d) if n.startswith(("tmp-", "trash-"))] if d.is_dir() else []


def assert_same_trace(fresh, cached):
    state = set(vars(fresh)) - set(cache.TRACE_DERIVED)
    assert state == set(cache.TRACE_ATTRIBUTES), "Trace holds state the cache does not store"
    for name in cache.TRACE_ATTRIBUTES:
        a, b = getattr(fresh, name), getattr(cached, name)
        if name == "events":
            assert list(a) == list(b)
            for k in a:
                assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
        elif name == "kept_text":
            assert (a is None) == (b is None)
            if a is not None:
                assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
        elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        elif isinstance(a, dict):
            assert list(a.items()) == list(b.items()), name     # order too
        else:
            assert a == b, name
    if fresh.stats.error_counts is not None:
        assert list(fresh.stats.error_counts.items()) == list(cached.stats.error_counts.items())
    assert repr(fresh) == repr(cached) and fresh.span == cached.span


CASES = [
    ("kvm", {}),
    ("kvm", {"events": ["sched_switch", "sched_wakeup"], "cpus": [1, 2]}),
    ("kvm", {"mark_lines": True, "keep_text": True}),
    ("public/tracecompass-tracecmd-raw-funcgraph.txt", {}),
    ("public/trappy-tests-no-trailing-newline.txt", {}),
    ("kvm_smp2_small.txt.gz", {"start": "0.1", "end": "0.3", "comm": "KVM"}),
]


@pytest.mark.parametrize("name,opts", CASES)
def test_cached_trace_equals_fresh(cdir, kvm_text, name, opts):
    path = kvm_text if name == "kvm" else DATA / name
    fresh = quiet_load(path, cache=False, **opts)
    first = quiet_load(path, cache=True, **opts)
    assert len(entry_dirs(cdir)) == 1
    again = quiet_load(path, cache=True, **opts)
    # read back from the entry: memory-mapped, read-only arrays
    assert again._derived.backing is not None
    assert all(not a.flags.writeable for a in again.events.values() if len(a))
    assert_same_trace(fresh, first)
    assert_same_trace(fresh, again)
    if name == "kvm" and not opts:
        assert len(again.lost) == 1 and again.stats.malformed == 1 and again.errors
        assert again.text("tracing_mark_write") == fresh.text("tracing_mark_write")


@pytest.mark.parametrize("name,opts", CASES[:2] + CASES[-1:])
def test_cached_span_and_cpus_are_the_arrays(cdir, kvm_text, name, opts):
    # the entry stores span and CPU list; read back they must be what the arrays give
    path = kvm_text if name == "kvm" else DATA / name
    fresh = quiet_load(path, cache=False, **opts)
    quiet_load(path, cache=True, **opts)
    again = quiet_load(path, cache=True, **opts)
    assert again._derived.backing is not None
    assert again.cpus() == fresh.cpus() == again._cpus()
    assert bool(again.cpus()) == (name == "kvm")
    assert again.span == fresh.span == again._span()
    # a trace whose arrays are replaced computes them again
    again.events = {k: v[: len(v) // 2] for k, v in again.events.items()}
    assert again.cpus() == again._cpus() and again.span == again._span()


def test_no_pickle_anywhere(cdir, kvm_text):
    quiet_load(kvm_text, cache=True)
    for d in entry_dirs(cdir):
        for f in d.iterdir():
            if f.suffix == ".npy":
                np.load(f, allow_pickle=False)      # raises on an object array


def test_default_rule(cdir, kvm_text, monkeypatch):
    quiet_load(kvm_text)
    quiet_load(kvm_text, cache=None)
    assert entry_dirs(cdir) == []          # under 64 MiB: not cached unless asked
    quiet_load(kvm_text, cache=False)
    assert entry_dirs(cdir) == []
    monkeypatch.setenv("FTFAST_CACHE_MIN", "0")
    quiet_load(kvm_text)
    assert len(entry_dirs(cdir)) == 1      # on by default past the size
    assert cache.MIN_BYTES == 64 << 20


def test_compressed_input_counts_sixteen_times_its_size(cdir, monkeypatch):
    gz = DATA / "kvm_smp2_small.txt.gz"
    size = gz.stat().st_size
    monkeypatch.setenv("FTFAST_CACHE_MIN", str(size * 16 + 1))
    quiet_load(gz)
    assert entry_dirs(cdir) == []
    monkeypatch.setenv("FTFAST_CACHE_MIN", str(size * 16))
    quiet_load(gz)
    t = quiet_load(gz)
    assert len(entry_dirs(cdir)) == 1 and t._derived.backing is not None and t.compression == "gzip"


def test_strict_and_warnings_on_a_hit(cdir, kvm_text):
    quiet_load(kvm_text, cache=True)
    with pytest.warns(UserWarning, match="1 malformed line"):
        ftrace_fast.load(kvm_text, cache=True)
    with pytest.raises(ftrace_fast.ParseError) as hit:
        ftrace_fast.load(kvm_text, cache=True, strict=True)
    with pytest.raises(ftrace_fast.ParseError) as fresh:
        ftrace_fast.load(kvm_text, cache=False, strict=True)
    assert str(hit.value) == str(fresh.value)


def test_model_restored_without_a_walk(cdir, kvm_text, monkeypatch):
    t = quiet_load(kvm_text, cache=True)
    want = (sched.task_summary(t), sched.cpu_summary(t), sched.latency_table(t),
            sched.task_intervals(t))
    cache.flush()
    assert (entry_dirs(cdir)[0] / "model" / "manifest").is_file()

    def no_walk(self, full, iv_sel=None):
        raise AssertionError("walked")
    monkeypatch.setattr(sched.SchedModel, "_walk", no_walk)
    u = quiet_load(kvm_text, cache=True)
    got = (sched.task_summary(u), sched.cpu_summary(u), sched.latency_table(u),
           sched.task_intervals(u))
    for a, b in zip(want, got):
        assert a.dtype == b.dtype
        for f in a.dtype.names:
            assert np.array_equal(a[f], b[f]) or (a[f].dtype.kind == "f" and
                                                 np.allclose(a[f], b[f], equal_nan=True)), f


def test_changed_input_is_rebuilt(cdir, tmp_path, kvm_text, capsys):
    p = tmp_path / "t.txt"
    data = kvm_text.read_bytes()
    p.write_bytes(data)
    quiet_load(p, cache=True)
    # same size, same mtime: only the content hash tells
    st = os.stat(p)
    changed = data.replace(b"CPU 1/KVM", b"CPU 9/KVM", 1)
    assert len(changed) == len(data)
    p.write_bytes(changed)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    capsys.readouterr()
    t = quiet_load(p, cache=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed since it was cached (its content)" in err[0]
    assert "CPU 9/KVM" in t.comms
    assert_same_trace(quiet_load(p, cache=False), t)
    assert len(entry_dirs(cdir)) == 1
    # now current: used without a word
    quiet_load(p, cache=True)
    assert capsys.readouterr().err == ""


def test_other_version_is_rebuilt(cdir, kvm_text, monkeypatch, capsys):
    quiet_load(kvm_text, cache=True)
    monkeypatch.setattr(cache, "_version", lambda: "99.0")
    capsys.readouterr()
    t = quiet_load(kvm_text, cache=True)
    assert "written by ftrace_fast 0.1.0" in capsys.readouterr().err
    assert_same_trace(quiet_load(kvm_text, cache=False), t)


@pytest.mark.parametrize("damage", ["truncate", "manifest", "header", "missing"])
def test_damaged_entry_is_rebuilt(cdir, kvm_text, capsys, damage):
    fresh = quiet_load(kvm_text, cache=False)
    quiet_load(kvm_text, cache=True)
    d = entry_dirs(cdir)[0]
    biggest = max(d.glob("*.npy"), key=lambda f: f.stat().st_size)
    if damage == "truncate":
        with open(biggest, "r+b") as f:
            f.truncate(biggest.stat().st_size // 2)
    elif damage == "manifest":
        m = (d / "manifest").read_bytes()
        (d / "manifest").write_bytes(m.replace(b'"clock":"ns"', b'"clock":"xx"'))
    elif damage == "header":
        data = bytearray(biggest.read_bytes())
        data[:6] = b"NOTNPY"
        biggest.write_bytes(bytes(data))
    else:
        biggest.unlink()
    capsys.readouterr()
    t = quiet_load(kvm_text, cache=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "parsing it again" in err[0], err
    assert_same_trace(fresh, t)
    assert_same_trace(fresh, quiet_load(kvm_text, cache=True))


def test_full_disk_is_no_failure(cdir, kvm_text, monkeypatch, capsys):
    real = np.save
    calls = []

    def full(path, a, **kw):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, a, **kw)
    monkeypatch.setattr(cache.np, "save", full)
    t = quiet_load(kvm_text, cache=True)
    t2 = quiet_load(kvm_text, cache=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left: not cached" in err[0]
    assert_same_trace(quiet_load(kvm_text, cache=False), t)
    assert t2._derived.backing is None
    assert entry_dirs(cdir) == [] and leftovers(cdir) == []


def test_read_only_cache_dir(tmp_path, kvm_text, monkeypatch, capsys):
    cache._warned.clear()
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setenv("FTFAST_CACHE_DIR", str(ro / "cache"))

    def refuse(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")
    if os.geteuid() == 0:     # root writes anywhere: the file system's refusal is simulated
        monkeypatch.setattr(cache.os, "makedirs", refuse)
    else:
        ro.chmod(0o555)
    try:
        t = quiet_load(kvm_text, cache=True)
        quiet_load(kvm_text, cache=True)
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only: not cached" in err[0]
    assert_same_trace(quiet_load(kvm_text, cache=False), t)


def test_two_processes_at_once(cdir, kvm_text):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))
    cmd = FTFAST + ["info", str(kvm_text), "--cache", "--format", "json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and outs[0][1] == outs[1][1] == b""
    settle(cdir)          # the CLI's writers are forked: they may outlive the commands
    assert len(entry_dirs(cdir)) == 1 and leftovers(cdir) == []
    third = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert third.stdout == outs[0][0] and third.stderr == b""
    body = cache.read_manifest(entry_dirs(cdir)[0])
    assert body["input"]["path"] == os.path.realpath(kvm_text)


_SLOW_WRITER = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C as at a terminal, also when the test runner was started with SIGINT ignored
    # (a background job of a script): Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np
    from ftrace_fast import cache
    import ftrace_fast
    real = cache._Writer.array
    def slow(self, a):
        name = real(self, a)
        if len(self.files) == 3:
            print("writing", flush=True)
            # short sleeps: a signal that lands before one starts does not wait a minute
            for _ in range(1200):
                time.sleep(0.05)
        return name
    cache._Writer.array = slow
    ftrace_fast.load(sys.argv[1], cache=True, warn=False)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_writer_leaves_no_entry(cdir, kvm_text, sig):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(kvm_text)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"writing\n"
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        p.kill()
        p.wait()
    assert entry_dirs(cdir) == []
    left = leftovers(cdir)
    if sig == signal.SIGINT:
        assert left == []         # Ctrl-C: the writer removes its temporary directory
    else:
        assert len(left) == 1     # SIGKILL: a temporary directory no reader looks at
    t = quiet_load(kvm_text, cache=True)
    assert t._derived.backing is not None and len(entry_dirs(cdir)) == 1
    assert_same_trace(quiet_load(kvm_text, cache=False), quiet_load(kvm_text, cache=True))
    if left:
        # the dead writer's leftover goes at the next write once it is a minute old
        old = time.time() - 120
        os.utime(cdir / left[0], (old, old))
        cache.evict()
        assert leftovers(cdir) == []


def test_lru_eviction(cdir, kvm_text, tmp_path, monkeypatch):
    other = tmp_path / "other.txt"
    other.write_bytes(kvm_text.read_bytes())
    quiet_load(kvm_text, cache=True)
    first = entry_dirs(cdir)
    size = cache.entries()[0]["bytes"]
    old = time.time() - 100
    os.utime(first[0], (old, old))
    monkeypatch.setenv("FTFAST_CACHE_MAX", str(int(size * 1.5)))
    quiet_load(other, cache=True)
    rows = cache.entries()
    assert len(rows) == 1 and rows[0]["input"] == os.path.realpath(other)
    monkeypatch.setenv("FTFAST_CACHE_MAX", "1.5K")
    assert cache.max_bytes() == 1536


def test_cli_cache_commands(cdir, kvm_text, tmp_path):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))

    def run(*args, inp=None):
        return subprocess.run(FTFAST + list(args), env=env, capture_output=True, timeout=120,
                              input=inp)
    r = run("stats", str(kvm_text), "--no-cache", "--format", "json")
    assert r.returncode == 0 and entry_dirs(cdir) == []
    first = run("stats", str(kvm_text), "--cache", "--format", "json")
    second = run("stats", str(kvm_text), "--cache", "--format", "json")
    assert first.stdout == second.stdout == r.stdout
    assert (entry_dirs(cdir)[0] / "model").is_dir()
    info = run("cache", "info")
    assert info.returncode == 0
    assert os.path.realpath(kvm_text) in info.stdout.decode() and "yes" in info.stdout.decode()
    # stdin: cached only when asked, keyed by its content
    data = kvm_text.read_bytes()
    a = run("info", "-", "--format", "json", inp=data)
    assert len(entry_dirs(cdir)) == 1
    b = run("info", "-", "--cache", "--format", "json", inp=data)
    c = run("info", "-", "--cache", "--format", "json", inp=data)
    assert a.stdout == b.stdout == c.stdout and c.stderr == b""
    assert len(entry_dirs(cdir)) == 2 and "<stdin>" in run("cache", "info").stdout.decode()
    other = run("cache", "clear", str(tmp_path / "nothing.txt"))
    assert other.stdout.decode().startswith("removed 0 entries")
    one = run("cache", "clear", str(kvm_text))
    assert one.stdout.decode().startswith("removed 1 entry") and len(entry_dirs(cdir)) == 1
    run("cache", "clear")
    assert entry_dirs(cdir) == []
    assert run("cache", "frobnicate").returncode == 2


def test_trace_attributes_are_listed():
    # a new attribute of Trace must be stored by the cache (or declared derived)
    assert set(vars(Trace())) - set(cache.TRACE_DERIVED) <= set(cache.TRACE_ATTRIBUTES) | {"stats"}
    assert json.dumps(cache.options_key(events=None, cpus={2, 1}, pids=np.array([3]), comm=None,
                                        start=None, end=5, mark_lines=False, keep_text=False,
                                        records=True))


def test_a_racing_writer_keeps_the_published_entry(cdir, kvm_text):
    t = quiet_load(kvm_text, cache=True)
    d = entry_dirs(cdir)[0]
    ino = os.stat(d).st_ino
    t._derived.backing.write(t)              # the loser of a race: its copy is dropped
    assert entry_dirs(cdir) == [d] and os.stat(d).st_ino == ino and leftovers(cdir) == []


def test_background_write_of_the_cli(cdir, kvm_text, monkeypatch):
    monkeypatch.setattr(cache, "BACKGROUND", True)
    t = quiet_load(kvm_text, cache=True)
    sched.task_summary(t)
    cache.flush()                  # what the process does at exit: the entry, then the model
    settle(cdir)                   # both are written by children: the command does not wait
    assert len(entry_dirs(cdir)) == 1 and (entry_dirs(cdir)[0] / "model").is_dir()
    assert_same_trace(quiet_load(kvm_text, cache=False), quiet_load(kvm_text, cache=True))


_BLOCKED_STORE = textwrap.dedent("""
    import os, sys, time
    from ftrace_fast import cache, cli
    real = cache._Writer.array
    def blocked(self, a):
        while not os.path.exists(sys.argv[2]):     # the test releases it
            time.sleep(0.02)
        return real(self, a)
    cache._Writer.array = blocked
    sys.exit(cli.main(["stats", sys.argv[1], "--cache", "--format", "json"]))
""")


def test_a_command_on_a_cached_entry_leaves_its_stores_to_a_child(cdir, kvm_text, tmp_path):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))
    first = subprocess.run(FTFAST + ["info", str(kvm_text), "--cache"], env=env,
                           capture_output=True, timeout=120)
    assert first.returncode == 0 and first.stderr == b""
    settle(cdir)
    d = entry_dirs(cdir)[0]
    assert not (d / "model").exists()             # info builds no model
    release = tmp_path / "release"
    p = subprocess.run([sys.executable, "-c", _BLOCKED_STORE, str(kvm_text), str(release)],
                       env=env, capture_output=True, timeout=120)
    # the command is done while its model cannot be written: the store is a child's
    assert p.returncode == 0
    assert not (d / "model").exists() and any(n.endswith("-store") for n in leftovers(cdir))
    release.touch()
    settle(cdir)
    assert (d / "model").is_dir() and (d / "derived").is_dir() and leftovers(cdir) == []
    again = subprocess.run(FTFAST + ["stats", str(kvm_text), "--cache", "--format", "json"],
                           env=env, capture_output=True, timeout=120)
    assert again.returncode == 0 and (again.stdout, again.stderr) == (p.stdout, p.stderr)


_RACING_WRITER = textwrap.dedent("""
    import sys, time
    from ftrace_fast import cache
    import ftrace_fast
    real = cache._Writer.array
    def slow(self, a):
        if not self.files:
            time.sleep(1.0)       # both writers are inside their temporary directories
        return real(self, a)
    cache._Writer.array = slow
    t = ftrace_fast.load(sys.argv[1], cache=True, warn=False)
    print(t.stats.events, len(t.comms))
""")


def test_two_writers_inside_their_writes_at_once(cdir, kvm_text):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))
    procs = [subprocess.Popen([sys.executable, "-c", _RACING_WRITER, str(kvm_text)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0] == outs[1] and outs[0][1] == b""
    assert len(entry_dirs(cdir)) == 1 and leftovers(cdir) == []
    t = quiet_load(kvm_text, cache=True)
    assert t._derived.backing is not None
    assert_same_trace(quiet_load(kvm_text, cache=False), t)


def settle(d, timeout=60):
    """Wait for the forked writers of the CLI (tmp-<pid>-<key>-*) to finish."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(
            cache._pid_alive(int(n.split("-")[1])) for n in leftovers(d) if n.startswith("tmp-")):
        time.sleep(0.05)


def test_cli_first_run_writes_beside_and_the_next_waits(cdir, kvm_text):
    env = dict(os.environ, FTFAST_CACHE_DIR=str(cdir))
    cmd = FTFAST + ["info", str(kvm_text), "--cache", "--format", "json"]
    first = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    second = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert first.returncode == second.returncode == 0 and first.stderr == second.stderr == b""
    assert first.stdout == second.stdout
    settle(cdir)
    assert len(entry_dirs(cdir)) == 1 and leftovers(cdir) == []


def test_a_load_waits_for_a_live_writer_of_its_entry(cdir, kvm_text):
    import threading
    quiet_load(kvm_text, cache=True)
    d = entry_dirs(cdir)[0]
    away = cdir / "away"
    os.rename(d, away)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # what a forked writer of this entry looks like while it writes
        (cdir / f"tmp-{sleeper.pid}-{d.name}-abc").mkdir()
        threading.Timer(0.5, os.rename, (away, d)).start()
        t0 = time.monotonic()
        t = quiet_load(kvm_text, cache=True)
        assert time.monotonic() - t0 >= 0.4 and t._derived.backing is not None
        assert len(entry_dirs(cdir)) == 1
        # a dead writer's leftover is not waited for
        os.rename(d, away)
        sleeper.kill()
        sleeper.wait()
        t0 = time.monotonic()
        quiet_load(kvm_text, cache=True)
        assert time.monotonic() - t0 < 30
    finally:
        sleeper.kill()
        sleeper.wait()


def test_model_with_the_vcpu_intervals_only_restored_without_a_walk(cdir, kvm_text, monkeypatch):
    """A model whose walk kept the intervals of the vCPU threads only (kvm.topology) is stored
    with the tasks it kept them for, and read back as such."""
    t = quiet_load(kvm_text, cache=True)
    vcpus = kvm.topology(t).vcpu_pids
    m = sched.model(t)
    assert m._iv_sel is not None and not m._iv_sel.all()
    want = sched.interval_columns(m, pids=vcpus)
    cache.flush()

    def no_walk(self, full, iv_sel=None):
        raise AssertionError("walked")
    monkeypatch.setattr(sched.SchedModel, "_walk", no_walk)
    u = quiet_load(kvm_text, cache=True)
    mu = sched.model(u)
    assert np.array_equal(mu._iv_sel, m._iv_sel) and mu._have == m._have
    got = sched.interval_columns(mu, pids=vcpus)
    for k in want:
        assert np.array_equal(want[k], got[k]), k
    monkeypatch.undo()
    # the intervals of every task: a walk, then stored with the model
    every = sched.task_intervals(u)
    assert mu._have & sched.IV and mu._iv_sel is None
    fresh = sched.task_intervals(quiet_load(kvm_text, cache=False))
    for f in fresh.dtype.names:
        assert np.array_equal(every[f], fresh[f]), f
