"""trace.dat input against trace-cmd, on a recorded context-switch-heavy trace.dat (pipe
ping-pong, see bench/record_pingpong.sh), ratios of times taken in the same run:

- ``ftfast info X.dat`` (whole process) vs ``trace-cmd report -i X.dat > /dev/null``.
  Target: ratio <= 1/20.
- ``load(X.dat)`` vs ``load()`` of the same events' ``trace-cmd report`` text.  Target: < 1.
- events/s of load(X.dat); peak RSS of a fresh interpreter loading X.dat against
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

import pytest

import ftrace_fast
from benchlib import RESULTS, ROUNDS, mem_run, run_timed, set_extra_info
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


def _fastest(cmd, rounds=ROUNDS, **kw):
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def test_info_vs_trace_cmd_report(benchmark, dat):
    t_report = _fastest([TRACE_CMD, "report", "-i", str(dat)], rounds=1)
    _r, t_info = run_timed(benchmark, lambda: subprocess.run(
        FTFAST + ["info", str(dat)], check=True, stdout=subprocess.DEVNULL))
    d = {"dat_MB": dat.stat().st_size / 1e6, "info_s": t_info, "trace_cmd_report_s": t_report,
         "info_ratio": t_info / t_report}
    RESULTS["tracedat_info"] = d
    set_extra_info(benchmark, d)


def test_load_dat_vs_load_report_text(benchmark, dat, report_text):
    t0 = time.perf_counter()
    text = ftrace_fast.load(report_text)
    t_text = time.perf_counter() - t0
    n_text = text.stats.events
    del text
    trace, t_dat = run_timed(benchmark, lambda: ftrace_fast.load(dat))
    n = trace.stats.events
    assert n == n_text
    d = {"events": n, "load_dat_s": t_dat, "load_text_s": t_text,
         "text_MB": report_text.stat().st_size / 1e6, "load_ratio": t_dat / t_text,
         "events_per_s": n / t_dat}
    RESULTS["tracedat_load"] = d
    set_extra_info(benchmark, d)


def test_peak_memory(benchmark, dat):
    from ftrace_fast._datfile import cpu_data, open_dat
    d = open_dat(dat)
    b = [x for x in d.buffers if any(s for _c, _o, s in x.cpus)][0]
    largest = max(len(cpu_data(d, d.path, b, i)) for i in range(len(b.cpus)))
    base = mem_run(None, None)["maxrss_kib"]
    r = mem_run(str(dat), None)
    extra = (r["maxrss_kib"] - base) * 1024
    budget = r["nbytes"] + 1.3 * largest
    f = {"peak_extra_MiB": extra / 2**20, "nbytes_MiB": r["nbytes"] / 2**20,
         "largest_cpu_buffer_MiB": largest / 2**20, "mem_ratio": extra / budget}
    RESULTS["tracedat_memory"] = f
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    set_extra_info(benchmark, f)
