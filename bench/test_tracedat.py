"""trace.dat input against trace-cmd, on a recorded context-switch-heavy trace.dat (pipe
ping-pong, see bench/record_pingpong.sh), ratios of times taken in the same run:

- ``ftfast info X.dat`` (whole process) vs ``trace-cmd report -i X.dat > /dev/null``, CPU
  time (user + sys) of each, interleaved.  Target: ratio <= 1/20.  Checked: info's event
  counts equal those of the report.
- ``load(X.dat)`` vs ``load(report text, cache=False)`` of the same events, CPU time of every
  thread, interleaved.  Target: < 1.  Checked: same counts, and sched_switch / sched_wakeup
  agree row by row (times to the report's µs, pids, cpus, comms).
- events per CPU second of load(X.dat); peak RSS of a fresh interpreter loading X.dat against
  Trace.nbytes + 1.3 x the largest decompressed CPU buffer.

The trace.dat is never in git: $FTFAST_BENCH_DAT names one, else one is recorded into the
bench cache directory when trace-cmd can record here (root, tracefs; $FTFAST_BENCH_DAT_SECONDS
of ping-pong, default 30), else the module skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ftrace_fast
from benchlib import RESULTS, ROUNDS, mem_run, set_extra_info
from gen_trace import cache_dir

pytestmark = pytest.mark.benchmark(group="tracedat")

_exe = shutil.which("ftfast", path=os.path.dirname(sys.executable))
FTFAST = [_exe] if _exe else [sys.executable, "-m", "ftrace_fast"]
TRACE_CMD = shutil.which("trace-cmd")
HERE = Path(__file__).resolve().parent


def _dat_path():
    env = os.environ.get("FTFAST_BENCH_DAT")
    if env:
        return Path(env) if Path(env).is_file() else None
    p = Path(cache_dir()) / "pingpong.dat"
    if p.is_file():
        return p
    if TRACE_CMD is None or os.geteuid() != 0:
        return None
    secs = os.environ.get("FTFAST_BENCH_DAT_SECONDS", "30")
    r = subprocess.run(["bash", str(HERE / "record_pingpong.sh"), str(p), secs],
                       capture_output=True, text=True)
    return p if r.returncode == 0 and p.is_file() else None


@pytest.fixture(scope="module")
def dat():
    if TRACE_CMD is None:
        pytest.skip("trace-cmd is not installed")
    p = _dat_path()
    if p is None:
        pytest.skip("no recorded trace.dat (set FTFAST_BENCH_DAT, or run as root with tracefs)")
    return p


@pytest.fixture(scope="module", autouse=True)
def _figures():
    yield
    import json
    got = {k: v for k, v in RESULTS.items() if k.startswith("tracedat_")}
    if got:
        out = Path(cache_dir()) / "tracedat_results.json"
        out.write_text(json.dumps(got, indent=1))
        print("\ntrace.dat figures:", json.dumps(got, indent=1))


@pytest.fixture(scope="module")
def report_text(dat):
    # the report is ~30x the .dat: keep it within the 200 MB the project's benches allow
    if dat.stat().st_size * 30 > 200e6 and os.environ.get("FTFAST_BENCH_DAT_TEXT") != "1":
        pytest.skip("the report text of this trace.dat would pass 200 MB (FTFAST_BENCH_DAT_TEXT=1)")
    out = Path(cache_dir()) / (dat.stem + ".report.txt")
    if not out.is_file() or out.stat().st_mtime < dat.stat().st_mtime:
        with open(out, "wb") as f:
            subprocess.run([TRACE_CMD, "report", "-i", str(dat)], stdout=f, check=True,
                           stderr=subprocess.DEVNULL)
    return out


def _child_cpu(cmd, **kw):
    """(user + sys CPU seconds of a whole child process, its stdout)."""
    before = os.times()
    p = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)
    after = os.times()
    return (after.children_user - before.children_user
            + after.children_system - before.children_system), p.stdout


def _cpu(fn):
    """(result, CPU seconds of this process, all threads) of fn()."""
    t0 = time.process_time()
    r = fn()
    return r, time.process_time() - t0


def _report_counts(text):
    """Event name -> count of `trace-cmd report` output (the name after the time stamp)."""
    import collections
    import re
    return dict(collections.Counter(
        m.decode() for m in re.findall(rb"\] +[0-9.]+: ([A-Za-z0-9_]+):", text)))


def test_info_vs_trace_cmd_report(benchmark, dat):
    # CPU time (user + sys) of whole processes, interleaved in one run: the machine is shared
    t_report, t_info = [], []
    out = None
    for _ in range(ROUNDS):
        t, report = _child_cpu([TRACE_CMD, "report", "-i", str(dat)])
        t_report.append(t)
        t, out = _child_cpu(FTFAST + ["info", "--format", "json", str(dat)])
        t_info.append(t)
    import json
    info = json.loads(out)
    # info counts what trace-cmd report prints, event by event
    assert info["events"] == _report_counts(report)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    n = sum(info["events"].values())
    d = {"dat_MB": dat.stat().st_size / 1e6, "events": n, "info_cpu_s": min(t_info),
         "trace_cmd_report_cpu_s": min(t_report), "info_ratio": min(t_info) / min(t_report),
         "info_events_per_cpu_s": n / min(t_info)}
    RESULTS["tracedat_info"] = d
    set_extra_info(benchmark, d)


def test_load_dat_vs_load_report_text(benchmark, dat, report_text):
    # CPU time of this process (every thread), the two loads interleaved in one run
    t_text, t_dat = [], []
    for _ in range(ROUNDS):
        text, t = _cpu(lambda: ftrace_fast.load(report_text, cache=False))
        t_text.append(t)
        n_text = text.stats.events
        counts = {k: len(v) for k, v in text.events.items()}
        del text
        trace, t = _cpu(lambda: ftrace_fast.load(dat))
        t_dat.append(t)
    # the same events, and the same rows of the busiest event
    assert trace.stats.events == n_text
    assert {k: len(v) for k, v in trace.events.items()} == counts
    text = ftrace_fast.load(report_text, cache=False)
    for name in ("sched_switch", "sched_wakeup"):
        if name in counts:
            a, b = trace.events[name], text.events[name]
            assert (b["ts"] == (a["ts"] + 500) // 1000 * 1000).all()
            for col in ("pid", "cpu", "prev_pid", "next_pid", "task_pid", "target_cpu"):
                if col in a.dtype.names:
                    assert (a[col] == b[col]).all(), (name, col)
            # the payload's comms (the text path reads an instance's "NAME:" line prefix
            # into the line's comm: that column is not compared)
            for col in ("prev_comm", "next_comm", "task_comm"):
                if col in a.dtype.names:
                    ca, cb = np.array(trace.comms + [""]), np.array(text.comms + [""])
                    assert (ca[a[col]] == cb[b[col]]).all(), (name, col)
    del text
    n = trace.stats.events
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    d = {"events": n, "load_dat_cpu_s": min(t_dat), "load_text_cpu_s": min(t_text),
         "text_MB": report_text.stat().st_size / 1e6, "load_ratio": min(t_dat) / min(t_text),
         "events_per_cpu_s": n / min(t_dat)}
    RESULTS["tracedat_load"] = d
    set_extra_info(benchmark, d)


def test_peak_memory(benchmark, dat):
    from ftrace_fast._datfile import cpu_chunks, open_dat
    d = open_dat(dat)
    b = [x for x in d.buffers if any(s for _c, _o, s in x.cpus)][0]
    largest = max(sum(len(p) for p in cpu_chunks(d, d.path, b, i)) for i in range(len(b.cpus)))
    base = mem_run(None, None)["maxrss_kib"]
    r = mem_run(str(dat), None)
    assert r["nbytes"] > 0
    extra = (r["maxrss_kib"] - base) * 1024
    budget = r["nbytes"] + 1.3 * largest
    f = {"peak_extra_MiB": extra / 2**20, "nbytes_MiB": r["nbytes"] / 2**20,
         "largest_cpu_buffer_MiB": largest / 2**20, "mem_ratio": extra / budget}
    RESULTS["tracedat_memory"] = f
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    set_extra_info(benchmark, f)
