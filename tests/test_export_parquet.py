"""export --parquet / --csv and Trace.to_arrow: read back with pyarrow and queried with DuckDB,
the tables give the counts and sums of ``ftfast stats --format json``."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import sched

from helpers import DATA

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
duckdb = pytest.importorskip("duckdb")

FTFAST = [sys.executable, "-m", "ftrace_fast"]


@pytest.fixture(scope="module", params=["sim", "gen"])
def kvm_file(tmp_path_factory, request):
    p = tmp_path_factory.mktemp("in") / "kvm.txt"
    if request.param == "sim":
        text = gzip.decompress((DATA / "kvm_smp4_contended_small.txt.gz").read_bytes())
    else:
        # the benchmark's generator: a KVM host with kvm_entry / kvm_exit lines
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
        import gen_trace
        gen_trace.generate(str(p), 300_000, 3)
        text = p.read_bytes()
    p.write_bytes(text + b"           <...>-11953 [001] d... 101.500000: tracing_mark_write: "
                         b"caf\xc3\xa9 marker\n")
    return p


def run(*args):
    r = subprocess.run(FTFAST + [str(a) for a in args], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r


@pytest.fixture(scope="module")
def exported(kvm_file, tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    run("export", kvm_file, "--parquet", d / "pq")
    run("export", kvm_file, "--csv", d / "csv")
    stats = json.loads(run("stats", kvm_file, "--format", "json", "--top", "0").stdout)
    return d / "pq", d / "csv", stats


def test_parquet_round_trip_with_duckdb(exported, kvm_file):
    pqdir, _, stats = exported
    meta = json.loads((pqdir / "meta.json").read_text())
    t = ftrace_fast.load(kvm_file, cache=False, warn=False)
    assert meta["events"] == {k: len(v) for k, v in t.events.items()}
    assert meta["clock"] == "ns" and meta["span"] == {"start": t.span[0], "end": t.span[1]}
    assert meta["ftrace_fast_version"] == ftrace_fast.__version__
    for f in ("tasks", "cpus", "latency", "vcpus", "neighbours", "findings"):
        assert (pqdir / f"{f}.parquet").is_file(), f
    con = duckdb.connect()

    def q(sql):
        return con.execute(sql.replace("{d}", str(pqdir))).fetchall()
    assert (pqdir / "exits.parquet").is_file() == (t.count("kvm_exit") > 0)
    if t.count("kvm_exit"):
        vcpus = {r["pid"] for r in stats["kvm"]["vcpus"]}
        x = t["kvm_exit"]
        assert q("select sum(count) from '{d}/exits.parquet'")[0][0] == \
            int(np.isin(x["pid"], list(vcpus)).sum())
        assert q("select count(distinct vcpu_pid) from '{d}/exits.parquet'")[0][0] == len(vcpus)
    # switches in per (comm, pid) from the raw events equal the stats' switch table
    got = {(c, p): n for c, p, n in q("select next_comm, next_pid, count(*) from "
                                      "'{d}/sched_switch.parquet' where next_pid != 0 "
                                      "group by all")}
    for row in stats["switches"]:
        assert got.get((row["comm"], row["pid"]), 0) <= row["switches_in"]
    assert sum(got.values()) == sum(r["switches_in"] - r["inferred_switch_ins"]
                                    for r in stats["tasks"])
    # the analysis tables carry the stats' figures exactly
    for col in ("run_ns", "wait_ns", "sleep_ns", "blocked_ns", "switches_in", "wakeups",
                "migrations"):
        assert q(f"select sum({col}) from '{{d}}/tasks.parquet'")[0][0] == \
            sum(r[col] for r in stats["tasks"]), col
    assert q("select count(*) from '{d}/tasks.parquet'")[0][0] == len(stats["tasks"])
    for col in ("busy_ns", "idle_ns", "switches"):
        assert q(f"select sum({col}) from '{{d}}/cpus.parquet'")[0][0] == \
            sum(r[col] for r in stats["cpus"])
    assert q("select count(*) from '{d}/sched_switch.parquet'")[0][0] == \
        sum(r["switches"] for r in stats["cpus"])
    wake = {c: n for c, n in q("select comm, count(*) from '{d}/sched_waking.parquet' "
                               "group by comm")}
    assert sum(wake.values()) == t.count("sched_waking")
    woken = {c: n for c, n in q("select task_comm, count(*) from '{d}/sched_waking.parquet' "
                                "group by all")}
    for row in stats["wakeups"]:
        assert woken[row["comm"]] == row["count"]
    lat = q("select sum(lat_count), max(lat_max_ns) from '{d}/latency.parquet'")[0]
    assert lat == (stats["latency"]["count"], stats["latency"]["max_ns"])
    # exact integers and text
    ts = pq.read_table(pqdir / "sched_switch.parquet").column("ts").to_numpy()
    assert ts.dtype == np.int64 and np.array_equal(ts, t.events["sched_switch"]["ts"])
    marks = q("select text from '{d}/tracing_mark_write.parquet'")
    assert marks == [(s,) for s in t.text("tracing_mark_write")] and "café" in marks[-1][0]


def test_parquet_schema(exported):
    pqdir = exported[0]
    tab = pq.read_table(pqdir / "sched_switch.parquet")
    s = tab.schema
    assert pa.types.is_dictionary(s.field("prev_comm").type)
    assert pa.types.is_dictionary(s.field("comm").type)
    assert s.field("ts").type == pa.int64() and s.field("ts").metadata[b"clock"] == b"ns"
    assert s.metadata[b"ftrace_fast.clock"] == b"ns"
    assert set(tab.column("prev_state").to_pylist()) <= {"R", "R+", "S", "D", "X", "Z", "I"}
    if (pqdir / "kvm_exit.parquet").exists():
        ex = pq.read_table(pqdir / "kvm_exit.parquet").schema
        assert pa.types.is_dictionary(ex.field("reason").type)


def test_csv_same_tables(exported):
    pqdir, csvdir, _ = exported
    meta = json.loads((csvdir / "meta.json").read_text())
    con = duckdb.connect()
    for name, n in meta["events"].items():
        assert con.execute(f"select count(*) from read_csv_auto('{csvdir}/{name}.csv')"
                           ).fetchone()[0] == n, name
    a = con.execute(f"select sum(run_ns) from read_csv_auto('{csvdir}/tasks.csv')").fetchone()
    b = con.execute(f"select sum(run_ns) from '{pqdir}/tasks.parquet'").fetchone()
    assert a == b


def test_to_arrow_and_filters(kvm_file, tmp_path):
    t = ftrace_fast.load(kvm_file, cache=False, warn=False)
    tab = t.to_arrow("sched_wakeup")
    assert tab.num_rows == t.count("sched_wakeup")
    assert tab.column("comm").to_pylist() == list(t.comm_names(t["sched_wakeup"]["comm"]))
    a = t["sched_switch"]
    lo, hi = int(a["ts"].min()), int(a["ts"].max())
    start, end = lo + (hi - lo) // 4, lo + (hi - lo) // 2
    meta = t.to_parquet(tmp_path / "sel", cpus=[1], start=start, end=end)
    keep = (a["cpu"] == 1) & (a["ts"] >= start) & (a["ts"] <= end)
    assert meta["events"]["sched_switch"] == int(keep.sum()) > 0
    s = sched.cpu_summary(t, cpus=[1], start=start, end=end)
    got = pq.read_table(tmp_path / "sel" / "cpus.parquet")
    assert got.column("busy_ns").to_pylist() == s["busy_ns"].tolist()
    # written again: replaced whole, nothing left beside it
    t.to_parquet(tmp_path / "sel")
    assert sorted(os.listdir(tmp_path)) == ["sel"]


def test_cli_export_events_filter_and_errors(kvm_file, tmp_path):
    run("export", kvm_file, "--parquet", tmp_path / "e", "--events", "sched_switch,sched_wakeup")
    meta = json.loads((tmp_path / "e" / "meta.json").read_text())
    assert sorted(meta["events"]) == ["sched_switch", "sched_wakeup"]
    (tmp_path / "f").write_text("x")
    r = subprocess.run(FTFAST + ["export", str(kvm_file), "--parquet", str(tmp_path / "f")],
                       capture_output=True)
    assert r.returncode == 4 and r.stderr.decode().count("\n") == 1
    # without pyarrow: exit 2, one line saying what to install
    code = ("import sys; sys.modules['pyarrow'] = None; from ftrace_fast.cli import main; "
            f"sys.exit(main(['export', {str(kvm_file)!r}, '--parquet', {str(tmp_path / 'g')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == ("ftfast: export --parquet/--csv needs pyarrow: "
                                         "pip install 'ftrace_fast[parquet]'")
    assert not (tmp_path / "g").exists()
