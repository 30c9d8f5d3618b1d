"""``ftfast fleet`` on N generated KVM host traces of M MB each (default 40 x 25 MB; set
FTFAST_FLEET_BENCH_TRACES and FTFAST_FLEET_BENCH_MB), whole commands timed in the same run:

- ``fleet run --workers 1`` and ``--workers 2`` (each into a fresh store): the throughput of 2
  workers is at least 1.7 times that of 1 (target);
- the baseline: ``ftfast stats FILE --format json`` on every trace, the list split between two
  shells running at once; ``fleet run --workers 2`` takes at most 1.3 times as long (target);
- ``fleet report --store S --format json`` over the store of the N traces: under 1 s (target),
  the whole command (interpreter start-up included).

Figures go in bench/README.md with the machine's load: the 2-worker target needs two idle cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from benchlib import set_extra_info
from gen_trace import cached_trace

pytest.importorskip("dask.distributed")
pytest.importorskip("duckdb")

pytestmark = pytest.mark.benchmark(group="fleet")

N = int(os.environ.get("FTFAST_FLEET_BENCH_TRACES", "40"))
MB = float(os.environ.get("FTFAST_FLEET_BENCH_MB", "25"))
_exe = shutil.which("ftfast", path=os.path.dirname(sys.executable))
FTFAST = [_exe] if _exe else [sys.executable, "-m", "ftrace_fast"]


@pytest.fixture(scope="module")
def traces():
    # one host per trace: the seed in the file name is the host (--host-from)
    return [cached_trace(MB, seed=1000 + i) for i in range(N)]


def _timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def _fleet(traces, store, workers):
    shutil.rmtree(store, ignore_errors=True)
    return _timed(FTFAST + ["fleet", "run", *traces, "--store", store, "--workers", str(workers),
                            "--host-from", r"seed(\d+)", "-q"])


def _two_shells(traces):
    halves = [traces[0::2], traces[1::2]]
    cmd = " ".join(FTFAST)
    t = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", f'for f in "$@"; do {cmd} stats "$f" --format json -q > /dev/null '
                                           '|| exit 1; done', "sh", *h]) for h in halves]
    rcs = [p.wait() for p in procs]
    el = time.perf_counter() - t
    assert rcs == [0, 0]
    return el


def test_fleet_run_scaling_baseline_and_report(benchmark, traces, tmp_path):
    total_mb = sum(os.path.getsize(p) for p in traces) / 1e6
    one = _fleet(traces, str(tmp_path / "s1"), 1)
    baseline = _two_shells(traces)
    store = str(tmp_path / "s2")
    two = benchmark.pedantic(_fleet, args=(traces, store, 2), rounds=1, iterations=1)
    two = benchmark.stats.stats.max
    rep = min(_timed(FTFAST + ["fleet", "report", "--store", store, "--format", "json"]) for _ in range(3))
    info = {"traces": N, "mb_each": MB, "total_mb": round(total_mb, 1),
            "one_worker_s": round(one, 2), "two_workers_s": round(two, 2),
            "two_shells_stats_s": round(baseline, 2),
            "one_worker_mb_s": round(total_mb / one, 1), "two_workers_mb_s": round(total_mb / two, 1),
            "speedup_2_vs_1": round(one / two, 2), "vs_two_shells": round(two / baseline, 2),
            "report_s": round(rep, 3), "per_trace_ms_2_workers": round(1000 * two / N, 1),
            "load_avg_1min": round(os.getloadavg()[0], 1)}
    set_extra_info(benchmark, info)
    print("\nfleet bench:", info)
    assert one / two >= 1.7, info
    assert two <= 1.3 * baseline, info
    assert rep < 1.0, info
