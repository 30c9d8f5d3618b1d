"""``ftfast fleet``: a real local Dask cluster (2 worker processes) over 20 simulated KVM host
traces with planted anomalies (a stacked VM, a host with a CPU hog, an exit storm); the
store's figures against each trace's own ``stats --format json`` / ``diagnose --format json``;
faults (corrupt and vanished traces, a half-written store, Ctrl-C, a worker killed by pid)."""

import contextlib
import glob
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("dask.distributed")
pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from ftrace_fast import cli, fleet, fleet_sql  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simkvm  # noqa: E402

HOG, STACKED, STORM = "hoghost", "stacked", "storm"


class StormSim(simkvm.KvmSim):
    """An exit storm: guest spans 8 times shorter and most exits MSR_WRITE, handled fast."""

    def at(self, t, fn, *args):
        if getattr(fn, "__name__", "") == "guest_exit" and t > self.now:
            t = self.now + max((t - self.now) // 8, 1)
        super().at(t, fn, *args)

    def guest_exit(self, cpu, epoch):
        c = self.cpus[cpu]
        t = c.cur
        if c.epoch != epoch or t is None or t.kind != "vcpu" or not t.guest:
            return
        if self.rng.random() < 0.85:
            self._exit(cpu, t, "MSR_WRITE")
            self.at(self.now + self.d(0, 20), self.guest_entry, cpu, epoch)
            return
        super().guest_exit(cpu, epoch)


def _specs():
    """(host, simulator class, keyword arguments): 17 ordinary traces on 9 hosts (4 CPUs, 2
    vCPUs, no hog) and the three planted ones."""
    base = dict(variant="kernel5_tgid", duration=20000, svm=False, debug_threads=True)
    out = [(f"host{i // 2:02d}", simkvm.KvmSim, dict(base, seed=1000 + i, hog=False, ncpu=4, n_vcpu=2))
           for i in range(17)]
    out.append((STACKED, simkvm.KvmSim, dict(base, seed=2001, hog=False, ncpu=2, n_vcpu=6)))
    out.append((HOG, simkvm.KvmSim, dict(base, seed=2004, hog=True, ncpu=2, n_vcpu=1)))
    out.append((STORM, StormSim, dict(base, seed=2003, hog=False, ncpu=4, n_vcpu=2)))
    return out


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-traces")
    paths = {}
    for host, cls, kw in _specs():
        d = root / host
        d.mkdir(exist_ok=True)
        p = d / f"trace-{kw['seed']}.txt"
        cls(**kw).write(str(p))
        paths[str(p)] = host
    return root, paths


@pytest.fixture(scope="module")
def client():
    # the command's own local cluster (workers forked on Linux), 2 worker processes
    with fleet.client_for(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def store(traces, client, tmp_path_factory):
    root, paths = traces
    st = str(tmp_path_factory.mktemp("fleet-store") / "store")
    s = fleet.run(fleet.expand_inputs([str(root)]), st, client=client, progress=False)
    assert len(s["done"]) == len(paths) and not s["failed"] and not s["skipped"]
    return st


def _main(*argv):
    """(exit code, stdout, stderr) of ftfast in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _q(st, sql):
    return fleet_sql.rows(fleet_sql.connect(st), sql)


def _partitions(st, table="traces"):
    return sorted(glob.glob(os.path.join(st, table, "host=*", "trace=*", "part.parquet")))


def _once(st, n):
    """The store holds n traces, each exactly once (raw files, not only the views)."""
    ids = [p.split(os.sep)[-2] for p in _partitions(st)]
    assert len(ids) == len(set(ids)) == n
    for table in fleet.TABLES:
        assert len({p.split(os.sep)[-2] for p in _partitions(st, table)}) <= n
    got = _q(st, "SELECT trace_id, count(*) AS n FROM traces GROUP BY ALL HAVING count(*) > 1")
    assert got == []


# -- the figures ---------------------------------------------------------------------------------

def _by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_every_stored_figure_equals_stats_and_diagnose_json(traces, store):
    root, paths = traces
    _once(store, len(paths))
    con = fleet_sql.connect(store)
    for path, host in paths.items():
        tid = fleet.content_id(path)
        rc, out, _ = _main("stats", path, "--format", "json")
        assert rc == 0
        doc = json.loads(out)
        rc, out, _ = _main("diagnose", path, "--format", "json")
        assert rc == 0
        diag = json.loads(out)

        def table(name):
            rs = fleet_sql.rows(con, f"SELECT * FROM {name} WHERE trace_id = ?", [tid])
            assert all(r["host"] == host for r in rs)
            return rs

        (tr,) = table("traces")
        w, lat = doc["source"]["window"], doc["latency"]
        assert (tr["window_start"], tr["window_end"], tr["duration_ns"]) == (w["start"], w["end"], w["duration"])
        assert (tr["format"], tr["clock"], tr["time_unit"]) == (doc["source"]["format"], doc["source"]["clock"],
                                                               doc["source"]["time_unit"])
        assert tr["path"] == path and tr["bytes"] == os.path.getsize(path)
        for k in ("count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"):
            assert tr["lat_" + k] == lat[k]
        assert tr["caveats"] == doc["caveats"]
        oc = doc["kvm"]["runnable_vcpus"]
        assert (tr["overcommit_ns"], tr["runnable_vcpus_max"], tr["runnable_vcpus_mean"], tr["ncpus"]) == \
            (oc["overcommit_ns"], oc["max"], oc["mean"], oc["ncpus"])
        # tasks and CPUs: every column is the document's
        tasks = _by(table("tasks"), "pid")
        assert len(tasks) == len(doc["tasks"])
        for r in doc["tasks"]:
            got = tasks[(r["pid"],)]
            for c, _, _ in fleet.TABLES["tasks"][1]:
                assert got[c] == r[c], (path, r["pid"], c)
        cpus = _by(table("cpus"), "cpu")
        assert len(cpus) == len(doc["cpus"])
        for r in doc["cpus"]:
            assert {c: cpus[(r["cpu"],)][c] for c in r} == r
        hist = table("latency_hist")
        assert sum(h["count"] for h in hist) == lat["count"]
        # the histogram's buckets hold the samples' nearest-rank percentiles
        cum = 0
        for h in sorted(hist, key=lambda h: h["bucket"]):
            if cum < -(-99 * lat["count"] // 100) <= cum + h["count"]:
                assert h["lo_ns"] <= lat["p99_ns"] < h["hi_ns"]
            cum += h["count"]
        assert _by(table("switches"), "comm", "pid") == {
            (r["comm"], r["pid"]): dict(r, host=host, trace_id=tid) for r in doc["switches"]}
        assert sorted((r["comm"], r["pid"], r["count"]) for r in table("wakeups")) == sorted(
            (r["comm"], x["pid"], x["count"]) for r in doc["wakeups"] for x in r["pids"])
        assert sorted((r["comm"], r["pid"], r["count"]) for r in table("migrations")) == sorted(
            (r["comm"], r["pid"], r["count"]) for r in doc["migrations"])
        # KVM: vCPUs, their exits, neighbours and placement; VMs; I/O
        k = doc["kvm"]
        vc = _by(table("vcpus"), "pid")
        ex = _by(table("exits"), "vcpu_pid", "reason")
        nb = _by(table("neighbours"), "vcpu_pid", "pid")
        pl = _by(table("placement"), "vcpu_pid", "cpu")
        assert len(vc) == len(k["vcpus"]) and len(ex) == sum(len(v["exits"]) for v in k["vcpus"])
        assert len(nb) == sum(len(v["neighbours"]) for v in k["vcpus"])
        for v in k["vcpus"]:
            g = vc[(v["pid"],)]
            for c in ("vm", "vcpu", "tgid", "comm", "run_ns", "wait_ns", "steal_pct", "sleep_ns", "blocked_ns",
                      "stacked_ns", "guest_ns", "guest_edge_ns", "handling_ns", "preemptions", "main_cpu"):
                assert g[c] == v[c], (path, v["pid"], c)
            assert (g["exits"], g["exits_handled"], g["exits_switched_out"]) == (
                v["exits_total"]["count"], v["exits_total"]["handled"], v["exits_total"]["switched_out"])
            assert (g["halts"], g["halt_ns"]) == (v["halts"]["count"], v["halts"]["total_ns"])
            assert (g["lat_count"], g["lat_p99_ns"]) == (v["wakeup_latency"]["count"], v["wakeup_latency"]["p99_ns"])
            for reason, e in v["exits"].items():
                got = ex[(v["pid"], reason)]
                assert {c: got[c] for c in e} == e
            for n in v["neighbours"]:
                got = nb[(v["pid"], n["pid"])]
                assert (got["comm"], got["stolen_ns"], got["same_vm"], got["cpus"]) == \
                    (n["comm"], n["stolen_ns"], n["same_vm"], n["cpus"])
            for c, x in v["cpus"].items():
                assert (pl[(v["pid"], int(c))]["run_ns"], pl[(v["pid"], int(c))]["wait_ns"]) == \
                    (x["run_ns"], x["wait_ns"])
        vms = _by(table("vms"), "vm")
        vx = _by(table("vm_exits"), "vm", "reason")
        for vm in k["vms"]:
            g = vms[(vm["vm"],)]
            assert (g["run_ns"], g["wait_ns"], g["stacked_ns"], g["vcpus"]) == \
                (vm["run_ns"], vm["wait_ns"], vm["stacked_ns"], len(vm["vcpus"]))
            for reason, e in vm["exits"].items():
                assert {c: vx[(vm["vm"], reason)][c] for c in e} == e
        io_rows = _by(table("io_threads"), "pid")
        for r in k["io"]["threads"]:
            assert {c: io_rows[(r["pid"],)][c] for c in r} == r
        assert sorted(table("block"), key=lambda r: r["device"]) == sorted(
            (dict(r, host=host, trace_id=tid) for r in k["io"]["devices"]), key=lambda r: r["device"])
        # findings: diagnose's list, in its order
        fs = sorted(table("findings"), key=lambda r: r["rank"])
        assert len(fs) == len(diag["findings"])
        for got, f in zip(fs, diag["findings"]):
            assert (got["kind"], got["severity"], got["score"], got["explanation"]) == \
                (f["kind"], f["severity"], f["score"], f["explanation"])
            assert json.loads(got["evidence"]) == f["evidence"] and json.loads(got["subject"]) == f["subject"]
        assert tr["findings"] == sum(1 for f in diag["findings"] if f["kind"] != "caveat")


# -- the rankings --------------------------------------------------------------------------------

def test_report_names_the_planted_anomalies(traces, store):
    con = fleet_sql.connect(store)
    rep = fleet_sql.report(con, top=0)
    ov = rep["overview"][0]
    assert (ov["traces"], ov["hosts"], ov["failures"]) == (20, 12, 0)
    # the hog: the only host whose vCPU lost its CPU mostly to stress-ng-cpu, among the worst three
    steal = rep["steal"]
    hogged = [r for r in steal if r["top_comm"] == "stress-ng-cpu"]
    assert [r["host"] for r in hogged] == [HOG]
    assert HOG in [r["host"] for r in steal[:3]]
    assert "stress-ng-cpu" in hogged[0]["took_cpu"]
    # stacking: the stacked VM's host first by overcommit, its VM named; its vCPUs lost their
    # CPUs to their own siblings
    hosts = rep["hosts"]
    assert hosts[0]["host"] == STACKED and hosts[0]["overcommit_pct"] > 10
    assert all(h["overcommit_pct"] == 0 for h in hosts[1:])
    (vm,) = fleet_sql.rows(con, f"SELECT vm FROM vms WHERE host = '{STACKED}'")
    assert hosts[0]["stacked_vm"] == vm["vm"]
    assert steal[0]["host"] == STACKED and steal[0]["top_comm"].endswith("/KVM")
    # the storm: MSR_WRITE's rate on the storm host, first and far out
    ex = rep["exits"]
    assert (ex[0]["host"], ex[0]["reason"], ex[0]["metric"]) == (STORM, "MSR_WRITE", "rate_per_vcpu_s")
    assert ex[0]["z"] > 10
    # besides it, only the hog's preemptions (a preempted vCPU leaves with EXTERNAL_INTERRUPT)
    assert {(r["host"], r["reason"]) for r in ex if r["metric"] == "rate_per_vcpu_s"} <= \
        {(STORM, "MSR_WRITE"), (HOG, "EXTERNAL_INTERRUPT")}
    # the robust z-score by hand for the storm: median and MAD over the fleet's VMs
    vals = [r["v"] for r in fleet_sql.rows(con, """SELECT e.rate_per_s / v.vcpus AS v FROM vm_exits e
                                           JOIN vms v USING (host, trace_id, vm) WHERE e.reason = 'MSR_WRITE'""")]
    vals.sort()
    med = _median(vals)
    mad = _median(sorted(abs(x - med) for x in vals))
    assert ex[0]["z"] == pytest.approx(0.6745 * (max(vals) - med) / mad)
    # findings: the overcommit finding only on the stacked host
    fk = {(r["host"], r["kind"]) for r in rep["findings"]}
    assert {h for h, kd in fk if kd == "overcommit"} == {STACKED}
    # latency per host: counts exact, pooled percentiles within a bucket of the exact ones
    lat = {r["host"]: r for r in rep["latency"]}
    for r in fleet_sql.rows(con, "SELECT host, lat_count, lat_p99_ns, lat_p50_ns FROM traces WHERE host IN "
                                 "(SELECT host FROM traces GROUP BY host HAVING count(*) = 1)"):
        got = lat[r["host"]]
        assert got["count"] == r["lat_count"]
        assert r["lat_p99_ns"] <= got["p99_ns"] <= r["lat_p99_ns"] * 1.045 + 1
        assert r["lat_p50_ns"] <= got["p50_ns"] <= r["lat_p50_ns"] * 1.045 + 1
    # a host of two traces: the pooled samples' exact percentiles
    import numpy as np
    import ftrace_fast
    from ftrace_fast import sched
    samples = np.concatenate([sched.wakeup_latencies(ftrace_fast.load(p), source="wakeup")["latency_ns"]
                              for p, h in traces[1].items() if h == "host00"])
    exact = sched.latency_stats(samples)
    got = lat["host00"]
    assert got["count"] == exact["count"] and got["max_ns"] == exact["max_ns"]
    for k in ("p50_ns", "p90_ns", "p99_ns"):
        assert exact[k] <= got[k] <= exact[k] * 1.045 + 1


def _median(s):
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def test_report_formats_query_and_schema(store, tmp_path):
    rc, out, err = _main("fleet", "report", "--store", store, "--top", "3")
    assert rc == 0 and "Worst vCPUs by steal" in out and "robust z-score" in out and STORM in out
    rc, out, _ = _main("fleet", "report", "--store", store, "--format", "json")
    doc = json.loads(out)
    assert set(fleet_sql.SECTIONS) <= set(doc) and len(doc["steal"]) == 10
    rc, out, _ = _main("fleet", "report", "--store", store, "--format", "csv", "--top", "2")
    assert rc == 0 and "# steal\n" in out and "# exits\n" in out
    rc, out, _ = _main("fleet", "report", "--store", store, "--format", "html")
    assert rc == 0 and out.startswith("<!DOCTYPE html>") and "<script" not in out and "MSR_WRITE" in out
    rc, out, _ = _main("fleet", "query", "--store", store, "--format", "json",
                       "SELECT host, count(*) AS n FROM traces GROUP BY host ORDER BY host")
    assert rc == 0 and {"host": "host00", "n": 2} in json.loads(out)
    rc, out, _ = _main("fleet", "query", "--store", store, "--format", "csv",
                       "SELECT comm, steal_pct FROM vcpus ORDER BY steal_pct DESC LIMIT 1")
    assert out.splitlines()[0] == "comm,steal_pct"
    rc, out, _ = _main("fleet", "query", "--store", store, "--schema")
    assert rc == 0 and "vcpus:" in out and "steal_pct" in out and "failures:" in out
    rc, out, err = _main("fleet", "query", "--store", store, "SELECT nope FROM traces")
    assert rc == 2 and err.startswith("ftfast: query: ") and len(err.splitlines()) == 1
    rc, _, err = _main("fleet", "report", "--store", str(tmp_path / "none"))
    assert rc == 3 and "not a fleet store" in err


def test_html_escapes_names_from_the_store(tmp_path):
    page = fleet_sql.html_page({"overview": [{"traces": 1, "hosts": 1, "bytes": 1, "vcpus": 0,
                                              "findings": 0, "failures": 1}],
                                **{k: [] for k in fleet_sql.SECTIONS[1:-1]},
                                "failures": [{"host": "<b>h&", "path": "/x/<script>", "error": "e\"'"}]},
                               store_url="<s>")
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;h&amp;" in page


# -- faults --------------------------------------------------------------------------------------

def test_corrupt_and_vanished_traces_are_failures_the_rest_goes_on(traces, client, tmp_path):
    root, paths = traces
    good = sorted(paths)[:3]
    bad_dir = tmp_path / "badhost"
    bad_dir.mkdir()
    corrupt = bad_dir / "corrupt.txt"
    corrupt.write_bytes(bytes(range(256)) * 64)
    gone = bad_dir / "gone.txt"
    shutil.copy(good[0], gone)
    with open(gone, "ab") as f:
        f.write(b"\n")                       # another content: another trace id
    listed = fleet.expand_inputs(good + [str(bad_dir)])
    assert str(gone) in listed
    os.unlink(gone)                          # vanishes between listing and loading
    st = str(tmp_path / "store")
    s = fleet.run(listed, st, client=client, progress=False)
    assert len(s["done"]) == 3 and sorted(r["path"] for r in s["failed"]) == sorted([str(corrupt), str(gone)])
    _once(st, 3)
    fl = _q(st, "SELECT host, path, error FROM failures ORDER BY path")
    assert [(r["host"], r["path"]) for r in fl] == [("badhost", str(corrupt)), ("badhost", str(gone))]
    assert "not ftrace text" in fl[0]["error"] or "binary" in fl[0]["error"]
    assert fl[1]["error"] == f"{gone}: No such file or directory"
    assert all("\n" not in r["error"] for r in fl)
    # the trace comes back: the re-run analyses it and its failure row goes
    shutil.copy(good[0], gone)
    s = fleet.run(listed, st, client=client, progress=False)
    # the same content as good[0]: skipped, one trace under the host it was first stored with
    assert len(s["skipped"]) == 4 and len(s["failed"]) == 1 and not s["done"]
    _once(st, 3)
    assert [r["path"] for r in _q(st, "SELECT path FROM failures")] == [str(corrupt)]


def test_rerun_over_a_half_finished_store(traces, client, tmp_path):
    root, paths = traces
    ps = sorted(paths)[:8]
    st = str(tmp_path / "store")
    s = fleet.run(ps[:4], st, client=client, progress=False)
    assert len(s["done"]) == 4
    # a task killed while writing: some tables of a fifth trace, no traces row, a temporary file
    victim = ps[4]
    t, doc, found = fleet.documents(victim)
    rows = fleet.tables_of(t, doc, found, path=victim, size=os.path.getsize(victim))
    store = fleet.Store(st)
    tid = fleet.content_id(victim)
    for name in ("tasks", "vcpus", "findings"):
        store.write_table(store.partition(name, paths[victim], tid),
                          fleet._arrow(name, paths[victim], tid, rows[name]))
    stale = store.partition("cpus", paths[victim], tid) + ".tmp-1-dead"
    os.makedirs(os.path.dirname(stale), exist_ok=True)
    with open(stale, "wb") as f:
        f.write(b"PAR1 half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    # not committed: invisible to every view
    assert _q(st, f"SELECT count(*) AS n FROM tasks WHERE trace_id = '{tid}'")[0]["n"] == 0
    n_tasks = len(rows["tasks"])
    s = fleet.run(ps, st, client=client, progress=False)
    assert len(s["skipped"]) == 4 and len(s["done"]) == 4 and not s["failed"]
    _once(st, 8)
    assert _q(st, f"SELECT count(*) AS n FROM tasks WHERE trace_id = '{tid}'")[0]["n"] == n_tasks
    assert not os.path.exists(stale)
    # a third run reads nothing again: every file has the size and mtime it was stored with
    tasks = []
    s = fleet.run(ps, st, client=client, progress=False, on_result=tasks.append)
    assert len(s["skipped"]) == 8 and not s["done"] and tasks == []
    # a touched file is hashed again by a task, and found in the store by its content
    os.utime(ps[0], None)
    s = fleet.run(ps, st, client=client, progress=False, on_result=tasks.append)
    assert len(s["skipped"]) == 8 and [(r["path"], r["status"]) for r in tasks] == [(ps[0], "skipped")]
    _once(st, 8)


def test_interrupt_stops_and_a_rerun_finishes(traces, client, tmp_path):
    root, paths = traces
    ps = sorted(paths)[:10]
    st = str(tmp_path / "store")
    seen = []

    def ctrl_c(r):
        seen.append(r)
        if len(seen) == 2:
            raise KeyboardInterrupt
    s = fleet.run(ps, st, client=client, progress=False, on_result=ctrl_c)
    assert s["interrupted"] and len(s["done"]) == 2
    # tasks already running may still finish: wait for the cluster to go quiet
    deadline = time.time() + 30
    while any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.1)
    s = fleet.run(ps, st, client=client, progress=False)
    assert len(s["done"]) + len(s["skipped"]) == 10 and len(s["skipped"]) >= 2
    _once(st, 10)


def test_ctrl_c_on_the_whole_command(traces, client, tmp_path):
    """SIGINT to the command's process group (a terminal's Ctrl-C) once a trace is stored:
    exit 130 with one line saying how to finish, no process left behind, a re-run finishes."""
    root, paths = traces
    ps = sorted(paths)
    st = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "ftrace_fast", "fleet", "run", *ps, "--store", st, "--workers", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 120
    while not _partitions(st) and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("every trace was stored before the signal arrived")
    assert p.returncode == 130 and out == "", err
    assert err.splitlines()[-1].startswith("ftfast fleet: interrupted: ") and "Traceback" not in err, err
    time.sleep(1)
    left = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert left == []
    n = len(_partitions(st))
    assert 1 <= n < len(ps)
    s = fleet.run(ps, st, client=client, progress=False)
    assert len(s["skipped"]) == n and len(s["done"]) == len(ps) - n and not s["failed"]
    _once(st, len(ps))


def test_fsspec_store_url(traces, client, tmp_path):
    pytest.importorskip("fsspec")
    root, paths = traces
    ps = sorted(paths)[:3]
    url = "file://" + str(tmp_path / "remote")
    # through --scheduler: a client of its own on the running cluster, as from another machine
    s = fleet.run(ps, url, scheduler=client.scheduler.address, progress=False)
    assert len(s["done"]) == 3
    con = fleet_sql.connect(url)
    assert fleet_sql.rows(con, "SELECT count(*) AS n FROM traces")[0]["n"] == 3
    assert len(fleet_sql.report(con)["steal"]) > 0
    s = fleet.run(ps, url, client=client, progress=False)
    assert len(s["skipped"]) == 3


def test_the_command_on_its_own_local_cluster(traces, tmp_path):
    """The whole command, its workers forked from it: its summary line and nothing else on
    stderr (no word from Dask, the workers or their shut-down)."""
    root, paths = traces
    ps = sorted(paths)[:3]
    st = str(tmp_path / "store")
    p = subprocess.run([sys.executable, "-m", "ftrace_fast", "fleet", "run", *ps, "--store", st,
                        "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("ftfast fleet: 3 analysed ("), p.stderr
    _once(st, 3)
    rc, out, err = _main("fleet", "run", *ps, "--store", st, "--workers", "1")
    assert rc == 0 and out == "" and "0 analysed" in err and "3 already in the store" in err
    rc, _, err = _main("fleet", "run", *ps, "--store", st, "--workers", "0")
    assert rc == 2 and "--workers must be at least 1" in err


def test_worker_preload_imports_what_a_task_needs():
    """``dask worker --preload ftrace_fast.fleet`` (README): the worker has the task's modules
    before its first task."""
    code = """
import asyncio, sys
from distributed import Scheduler, Worker
async def main():
    async with Scheduler(dashboard_address="127.0.0.1:0", port=0) as s:
        async with Worker(s.address, preload=["ftrace_fast.fleet"], nthreads=1):
            print(sorted(m for m in ("ftrace_fast.kvm", "ftrace_fast.sched", "pyarrow.parquet")
                         if m in sys.modules))
asyncio.run(main())
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split("\n")[0] == str(["ftrace_fast.kvm", "ftrace_fast.sched", "pyarrow.parquet"])


def test_without_the_extra_fleet_exits_2_with_the_install_line(tmp_path):
    code = ("import sys; sys.modules['duckdb'] = None; from ftrace_fast import cli; "
            f"sys.exit(cli.main(['fleet', 'run', {str(tmp_path)!r}, '--store', {str(tmp_path / 's')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == ["ftfast: ftfast fleet and diff need duckdb: pip install 'ftrace_fast[fleet]'"]


def test_inputs_globs_dirs_lists_and_hosts(traces, tmp_path):
    root, paths = traces
    some = sorted(paths)[:2]
    lst = tmp_path / "list.txt"
    lst.write_text(f"# two traces\n{some[0]}\n\n{some[1]}\n")
    assert fleet.expand_inputs([f"@{lst}"]) == some
    assert fleet.expand_inputs([str(root / "host0*" / "*.txt")]) == sorted(p for p in paths if "/host0" in p)
    assert fleet.expand_inputs([str(root)]) == sorted(paths)
    with pytest.raises(fleet.FleetError, match="no such file"):
        fleet.expand_inputs([str(tmp_path / "nothing*")])
    import re
    assert fleet.host_of("/data/host7/t.txt") == "host7"
    assert fleet.host_of("/data/x/node-12_trace.txt", re.compile(r"node-(\d+)")) == "12"
    assert fleet.host_of("/data/x/a.txt", re.compile(r"(?P<host>[a-z])\.txt")) == "a"
    assert fleet.host_of("/data/x/a.txt", re.compile("zz")) is None
    rc, _, err = _main("fleet", "run", str(tmp_path / "none"), "--store", str(tmp_path / "s"))
    assert rc == 2 and "no such file" in err


def test_worker_killed_mid_run(traces, client, tmp_path):
    """Last in the module: the nanny restarts the killed worker, the scheduler gives its task to
    a worker again, and the store holds every trace once."""
    root, paths = traces
    ps = sorted(paths)
    st = str(tmp_path / "store")
    pids = client.run(os.getpid)
    killed = []

    def kill_one(r):
        if killed:
            return
        for addr, keys in client.processing().items():
            if keys and addr in pids:
                os.kill(pids[addr], signal.SIGKILL)
                killed.append((pids[addr], list(keys)))
                return
    s = fleet.run(ps, st, client=client, progress=False, on_result=kill_one)
    assert killed, "no worker was processing a trace after the first one finished"
    assert not s["failed"] and len(s["done"]) + len(s["skipped"]) == len(ps)
    _once(st, len(ps))
    assert killed[0][0] not in client.run(os.getpid).values()


def test_host_names_are_escaped_in_paths_and_kept_in_columns(traces, tmp_path):
    root, paths = traces
    st = str(tmp_path / "store")
    p = sorted(paths)[0]
    for host in ("a b/c", ".."):
        r = fleet.analyse(p if host == ".." else p, host, st, skip_done=False)
        assert r["status"] == "done"
    dirs = sorted(os.listdir(os.path.join(st, "traces")))
    assert dirs == ["host=%2E%2E", "host=a%20b%2Fc"]
    # one trace (same content under two hosts): the views show it once, under the first host
    assert [r["host"] for r in _q(st, "SELECT host FROM traces")] == [".."]
    assert {r["host"] for r in _q(st, "SELECT DISTINCT host FROM tasks")} == {".."}


def test_arrow_tables_built_from_buffers_equal_pyarrows_own_builder(traces):
    """fleet._arrow builds each store table from NumPy buffers: the same table (schema, values,
    nulls) as pyarrow's builder from Python rows, for every table of a KVM trace and for rows
    with nulls, empty and null lists, null list items and non-ASCII text; a value of another
    type or an unknown column raises, as the JSON reader it replaced did."""
    import pyarrow as pa
    _, paths = traces
    p = sorted(paths)[-1]
    t, doc, found = fleet.documents(p)
    rows = fleet.tables_of(t, doc, found, path=p, size=os.path.getsize(p))
    seen = set()
    for name, rs in rows.items():
        want = pa.Table.from_pylist([dict(r, host="h\u00e9", trace_id="t") for r in rs],
                                    schema=fleet.schema(name))
        got = fleet._arrow(name, "h\u00e9", "t", rs)
        got.validate(full=True)
        assert got.equals(want), name
        seen |= {str(f.type) for f in got.schema} if rs else set()
    assert {"int64", "double", "string", "bool", "list<item: int64>", "list<item: string>"} <= seen
    # every type with nulls, edge values and lists: a neighbours row has int, float, str,
    # bool and list<int64> columns, a tasks row a list<string>
    for name, lcol in (("neighbours", "cpus"), ("tasks", "comms")):
        sch = fleet.schema(name)
        assert pa.types.is_list(sch.field(lcol).type)
        base = rows[name][0]
        item = [-(1 << 63), None, 3] if lcol == "cpus" else ["\u00fcber \u2603", None, ""]
        text = {f.name: "\u00fcber \u2603" for f in sch if f.type == pa.string() and f.name in base}
        edge = [dict(base, **{lcol: []}), dict(base, **{lcol: None}), dict(base, **{lcol: item}),
                {k: None for k in base}, dict(base, **text)]
        want = pa.Table.from_pylist([dict(r, host="h", trace_id="t") for r in edge], schema=sch)
        got = fleet._arrow(name, "h", "t", edge)
        got.validate(full=True)
        assert got.equals(want), name
        assert fleet._arrow(name, "h", "t", []).equals(sch.empty_table())
        bad_item = 1.5 if lcol == "cpus" else 3
        for bad in (dict(base, nosuch=1), dict(base, **{lcol: [bad_item]}), dict(base, **{lcol: "3"})):
            with pytest.raises(ValueError):
                fleet._arrow(name, "h", "t", [bad])
    sch = fleet.schema("neighbours")
    r0 = rows["neighbours"][0]
    for col, v in [("stolen_ns", 1.0), ("stolen_ns", True), ("stolen_ns", 1 << 63), ("stolen_ns", "1"),
                   ("share_pct", float("nan")), ("share_pct", float("inf")), ("share_pct", True),
                   ("same_vm", 1), ("comm", 3)]:
        with pytest.raises(ValueError):
            fleet._arrow("neighbours", "h", "t", [dict(r0, **{col: v})])
    # an int in a float column is taken, as the JSON reader took it
    got = fleet._arrow("neighbours", "h", "t", [dict(r0, share_pct=3)])
    assert got.column("share_pct").to_pylist() == [3.0]


def test_a_task_does_not_import_pandas(traces, tmp_path):
    """What fleet._arrow is built to avoid (pyarrow's builders from Python lists or NumPy
    arrays import pandas: about 0.4 s of CPU per worker), checked in a fresh process."""
    _, paths = traces
    p = sorted(paths)[-1]
    code = f"""
import sys
from ftrace_fast import fleet
fleet.dask_setup()
r = fleet.analyse({p!r}, "h", {str(tmp_path / "store")!r})
print(r["status"], "pandas" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["done", "False"]
