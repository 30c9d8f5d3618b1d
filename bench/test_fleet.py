"""``ftfast fleet`` on N generated KVM host traces of M MB each (default 40 x 25 MB; set
FTFAST_FLEET_BENCH_TRACES and FTFAST_FLEET_BENCH_MB), whole commands timed in the same run:

- ``fleet run --workers 1`` and ``--workers 2`` (each into a fresh store): the throughput of 2
  workers is at least 1.7 times that of 1 (target).  Throughput is traces a second while the
  workers run, read from each whole command's store: the commit times (mtimes) of its
  ``traces`` partitions, from the first commit of every worker to the last commit,
  (N - W) / (t_N - t_W) for W workers.  The whole commands' time ratio is reported beside it
  (``speedup_2_vs_1``): it adds the fixed start-up both runs pay (Python, ``import
  dask.distributed``, the cluster), which the two-shell target below measures.  Both are also
  run over the first half of the traces, which gives the marginal rate of each from two
  separate runs (reported, ``marginal_speedup_2_vs_1``);
- the baseline: ``ftfast stats FILE --format json`` on every trace, the list split between two
  shells running at once; ``fleet run --workers 2`` takes at most 1.3 times as long (target);
- ``fleet report --store S --format json`` over the store of the N traces: under 1 s (target),
  the whole command (interpreter start-up included), fastest of 3.

After the timings, the stores are checked: each holds every trace exactly once and no failure,
the two stores hold the same figures, and every trace's stored tasks equal those its ``stats``
run printed in the baseline.  Besides wall times, each command's CPU time (its workers
included) and the tasks' own time (``traces.analysis_s``) are recorded: on a loaded machine the
ratios say little, the CPU figures still do (bench/README.md).
"""

from __future__ import annotations

import json
import os
import resource
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
    paths = [cached_trace(MB, seed=1000 + i) for i in range(N)]
    _compile_ours()
    for p in paths:               # in the page cache for every command alike
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    return paths


def _compile_ours():
    """Bytecode for ftrace_fast, as an installed package has it: an editable install run under
    PYTHONDONTWRITEBYTECODE would compile its sources again in every timed process."""
    import compileall
    import ftrace_fast
    compileall.compile_dir(os.path.dirname(ftrace_fast.__file__), quiet=1)


def _timed(cmd, **kw):
    """(wall seconds, CPU seconds of the process and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    el = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return el, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _fleet(traces, store, workers):
    shutil.rmtree(store, ignore_errors=True)
    return _timed(FTFAST + ["fleet", "run", *traces, "--store", store, "--workers", str(workers),
                            "--host-from", r"seed(\d+)", "-q"])


def _throughput(store, workers):
    """Traces a second of the run that filled ``store`` with ``workers`` workers, from the
    commit times of its traces partitions (a task's last write): (N - W) / (t_N - t_W), which
    leaves out each worker's start and its first task, as the whole command's time does not."""
    import glob
    t = sorted(os.stat(f).st_mtime_ns for f in
               glob.glob(os.path.join(store, "traces", "host=*", "trace=*", "part.parquet")))
    assert len(t) > workers + 1, t
    return (len(t) - workers) / ((t[-1] - t[workers - 1]) / 1e9)


def _two_shells(traces, out_dir):
    """Each trace's ``stats --format json`` into out_dir/<i>.json, two shells at once."""
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(p, os.path.join(out_dir, f"{i}.json")) for i, p in enumerate(traces)]
    halves = [jobs[0::2], jobs[1::2]]
    cmd = " ".join(FTFAST)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", f'while [ $# -gt 0 ]; do {cmd} stats "$1" --format json -q '
                                           '> "$2" || exit 1; shift 2; done',
                               "sh", *[x for job in h for x in job]]) for h in halves]
    rcs = [p.wait() for p in procs]
    el = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert rcs == [0, 0]
    return el, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _check_stores(traces, stores, stats_dir):
    """Every trace once in each store, no failure, the same figures in both, each trace's tasks
    as its own ``stats`` printed them.  Returns the mean of the tasks' analysis_s per store."""
    from ftrace_fast import fleet, fleet_sql
    ids = {p: fleet.content_id(p) for p in traces}
    assert len(set(ids.values())) == len(traces)
    cons = [fleet_sql.connect(s) for s in stores]
    task_s = []
    for con in cons:
        got = fleet_sql.rows(con, "SELECT trace_id, path, count(*) OVER (PARTITION BY trace_id) AS n FROM traces")
        assert sorted((r["trace_id"], r["path"]) for r in got) == sorted((ids[p], p) for p in traces)
        assert all(r["n"] == 1 for r in got)
        assert fleet_sql.rows(con, "SELECT count(*) AS n FROM failures")[0]["n"] == 0
        task_s.append(fleet_sql.rows(con, "SELECT avg(analysis_s) AS s FROM traces")[0]["s"])
    for table, (_, cols) in fleet.TABLES.items():
        names = ", ".join(["trace_id"] + [c for c, _, _ in cols if c != "analysis_s"])
        a, b = (con.execute(f"SELECT {names} FROM {table} ORDER BY ALL").fetchall() for con in cons)
        assert a == b, f"{table}: the 1-worker and 2-worker stores differ"
    key = "pid, run_ns, wait_ns, sleep_ns, switches_in, lat_count, lat_max_ns"
    for i, p in enumerate(traces):
        with open(os.path.join(stats_dir, f"{i}.json")) as f:
            doc = json.load(f)
        want = sorted(tuple(t[k.strip()] for k in key.split(",")) for t in doc["tasks"])
        got = cons[1].execute(f"SELECT {key} FROM tasks WHERE trace_id = ? ORDER BY ALL", [ids[p]]).fetchall()
        assert got == want, f"{p}: the stored tasks differ from its 'ftfast stats' output"
    return task_s


def test_fleet_run_scaling_baseline_and_report(benchmark, traces, tmp_path):
    total_mb = sum(os.path.getsize(p) for p in traces) / 1e6
    one, one_cpu = _fleet(traces, str(tmp_path / "s1"), 1)
    stats_dir = str(tmp_path / "stats")
    baseline, baseline_cpu = _two_shells(traces, stats_dir)
    store = str(tmp_path / "s2")
    cpu2 = []
    two = benchmark.pedantic(lambda: cpu2.append(_fleet(traces, store, 2)) or cpu2[-1][0],
                             rounds=1, iterations=1)
    two, two_cpu = cpu2[-1]
    # the same over the first half: the marginal rate, (N - N/2) / (T(N) - T(N/2)), is each
    # worker count's throughput without the fixed start-up and shut-down both runs pay
    rate1, rate2 = _throughput(str(tmp_path / "s1"), 1), _throughput(store, 2)
    half = traces[:N // 2]
    one_half = _fleet(half, str(tmp_path / "h1"), 1)[0]
    two_half = _fleet(half, str(tmp_path / "h2"), 2)[0]
    reps = [_timed(FTFAST + ["fleet", "report", "--store", store, "--format", "json"]) for _ in range(3)]
    rep, rep_cpu = min(reps)
    task_s = _check_stores(traces, [str(tmp_path / "s1"), store], stats_dir)
    info = {"traces": N, "mb_each": MB, "total_mb": round(total_mb, 1),
            "one_worker_s": round(one, 2), "two_workers_s": round(two, 2),
            "two_shells_stats_s": round(baseline, 2),
            "one_worker_mb_s": round(total_mb / one, 1), "two_workers_mb_s": round(total_mb / two, 1),
            "throughput_1_worker": round(rate1, 2), "throughput_2_workers": round(rate2, 2),
            "throughput_2_vs_1": round(rate2 / rate1, 2),
            "speedup_2_vs_1": round(one / two, 2), "vs_two_shells": round(two / baseline, 2),
            "one_worker_half_s": round(one_half, 2), "two_workers_half_s": round(two_half, 2),
            "marginal_speedup_2_vs_1": round((one - one_half) / (two - two_half), 2),
            "report_s": round(rep, 3),
            "cpu_one_worker_s": round(one_cpu, 2), "cpu_two_workers_s": round(two_cpu, 2),
            "cpu_two_shells_s": round(baseline_cpu, 2), "cpu_report_s": round(rep_cpu, 3),
            "task_s_mean_1_worker": round(task_s[0], 3), "task_s_mean_2_workers": round(task_s[1], 3),
            # what is not the tasks: start-up, the scheduler, shut-down (a loaded machine inflates it)
            "fixed_s_1_worker": round(one - N * task_s[0], 2),
            "fixed_s_2_workers": round(two - N * task_s[1] / 2, 2),
            "load_avg_1min": round(os.getloadavg()[0], 1)}
    set_extra_info(benchmark, info)
    print("\nfleet bench:", info)
    assert rate2 / rate1 >= 1.7, info
    assert two <= 1.3 * baseline, info
    assert rep < 1.0, info
