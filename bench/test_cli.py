"""The ``ftfast`` command line against the grep/awk pipelines it replaces, on the same
generated file, each as a ratio of two times taken in the same run (fastest of ROUNDS each,
whole processes: interpreter start-up and imports count against ftfast).

- ``ftfast stats --switch-stats FILE`` vs
  ``grep sched_switch FILE | awk -F'next_comm=' '{print $2}' | awk '{print $1}' | sort | uniq -c | sort -rn | head -20``.
  Target: ratio < 1 (faster than the pipeline).
- ``ftfast filter FILE -o OUT --comm 'KVM|qemu|vhost'`` vs ``grep -E 'KVM|qemu|vhost' FILE > OUT``.
  Target: ratio <= 1.5.  Both write a real file beside the log (removed before each round):
  GNU grep notices a stdout that is /dev/null and stops at the first match, so
  ``grep ... > /dev/null`` measures nothing.

Both run under LC_ALL=C (the pipeline's sort is then at its fastest: the stricter comparison).

ftfast runs as an installed package does: from compiled bytecode.  The bytecode is cached in
``$FTFAST_BENCH_DIR/pycache`` (PYTHONPYCACHEPREFIX; the source tree is not touched) and
written by the first round, so an environment with PYTHONDONTWRITEBYTECODE=1 and an editable
install does not recompile every module (about 40 ms) at every start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from benchlib import RESULTS, ROUNDS, count_newlines, CHUNK, run_timed, set_extra_info
from gen_trace import cache_dir

pytestmark = pytest.mark.benchmark(group="cli")

_exe = shutil.which("ftfast", path=os.path.dirname(sys.executable))
FTFAST = [_exe] if _exe else [sys.executable, "-m", "ftrace_fast"]
ENV = dict(os.environ, LC_ALL="C", PYTHONPYCACHEPREFIX=os.path.join(cache_dir(), "pycache"))
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
SWITCH_PIPELINE = ("grep sched_switch {f} | awk -F'next_comm=' '{{print $2}}' | awk '{{print $1}}' "
                   "| sort | uniq -c | sort -rn | head -20")
FILTER_GREP = "grep -E 'KVM|qemu|vhost' {f} > {out}"

if not (shutil.which("grep") and shutil.which("awk") and shutil.which("bash")):
    pytest.skip("grep, awk and bash are needed for the pipeline comparison", allow_module_level=True)


def _shell(cmd):
    p = subprocess.run(cmd, shell=True, executable="/bin/bash", env=ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


def _ftfast(*args):
    p = subprocess.run(FTFAST + list(args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


def _fastest(fn, before=None):
    """(last result, fastest of ROUNDS in s), outside pytest-benchmark's record."""
    times, r = [], None
    for _ in range(ROUNDS):
        if before:
            before()
        t0 = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t0)
    return r, min(times)


def _record(benchmark, key, bench_file, seconds, peer_seconds, **extra):
    r = {"file_MB": bench_file.mb, "seconds": seconds, "MB_per_s": bench_file.mb / seconds,
         "pipeline_seconds": peer_seconds, "ratio": seconds / peer_seconds, **extra}
    set_extra_info(benchmark, r)
    RESULTS[key] = r


def test_cli_switch_stats(benchmark, bench_file):
    path = bench_file.path
    theirs, peer = _fastest(lambda: _shell(SWITCH_PIPELINE.format(f=path)))
    ours, seconds = run_timed(benchmark, lambda: _ftfast("stats", "--switch-stats", path))
    assert b"Context switches" in ours
    # the pipeline's top rows whose comm has no space appear with the same counts
    # (ours are per comm and pid; summed per comm in the JSON check below)
    top = {}
    for line in theirs.decode().splitlines():
        n, comm = line.split(None, 1)
        top[comm] = int(n)
    doc = json.loads(_ftfast("stats", "--switch-stats", "--format", "json", "-q", path))
    per_comm = {}
    for r in doc["switches"]:
        per_comm[r["comm"]] = per_comm.get(r["comm"], 0) + r["switches_in"]
    for comm, n in top.items():
        if not any(c != comm and c.split(" ")[0] == comm for c in per_comm):
            assert per_comm.get(comm) == n, (comm, n, per_comm.get(comm))
    _record(benchmark, "cli_switch_stats", bench_file, seconds, peer)


def test_cli_filter(benchmark, bench_file):
    path = bench_file.path
    d = os.path.dirname(path)
    out_grep = os.path.join(d, f"bench-grep-{os.getpid()}.out")
    out_ours = os.path.join(d, f"bench-ftfast-{os.getpid()}.out")

    def rm(p):
        return lambda: os.path.exists(p) and os.unlink(p)
    try:
        _, peer = _fastest(lambda: _shell(FILTER_GREP.format(f=path, out=out_grep)), rm(out_grep))
        grep_lines = count_newlines(out_grep, bytearray(CHUNK))
        os.unlink(out_grep)

        def ours():
            rm(out_ours)()
            t0 = time.perf_counter()
            _ftfast("filter", path, "-o", out_ours, "--comm", "KVM|qemu|vhost", "-q")
            return time.perf_counter() - t0
        # the removal of the last round's output is not timed: time the command itself
        rounds = []
        benchmark.pedantic(lambda: rounds.append(ours()), rounds=ROUNDS, iterations=1,
                           warmup_rounds=0)
        seconds = min(rounds)
        ours_lines = count_newlines(out_ours, bytearray(CHUNK))
        matching = int(_shell(f"grep -v '^#' {out_ours} | grep -c -E 'KVM|qemu|vhost' || true").strip() or 0)
    finally:
        for p in (out_grep, out_ours):
            if os.path.exists(p):
                os.unlink(p)
    # every event line kept names a task of those comms (the generated log renames none), so
    # it is one of grep's lines
    kept = ours_lines - bench_file.info["header_lines"]
    assert 0 < kept == matching <= grep_lines, (kept, matching, grep_lines)
    _record(benchmark, "cli_filter", bench_file, seconds, peer, grep_lines=grep_lines,
            ftfast_lines=ours_lines)
