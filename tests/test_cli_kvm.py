"""``ftfast stats --kvm`` and ``ftfast diagnose`` run as subprocesses on the fixtures: the JSON
contract of the CLI issue (kvm.vcpus[] ...), the findings document, tables, filters and errors."""

import csv
import io
import json

import pytest

import ftrace_fast
from ftrace_fast import kvm

from test_cli import NO_SWITCH, SMP2, SMP4, ok, run

VCPU_KEYS = {"pid", "tgid", "vcpu", "comm", "run_ns", "wait_ns", "guest_ns", "handling_ns", "exits"}
EXIT_KEYS = {"count", "total_ns", "mean_ns", "p99_ns", "max_ns"}


@pytest.fixture(scope="module")
def kvm_json():
    return json.loads(ok("stats", SMP4, "--kvm", "--format", "json").out)


def test_stats_kvm_json_contract(kvm_json):
    d = kvm_json
    assert d["schema"] == 1 and d["source"]["time_unit"] == "ns"
    assert set(d) >= {"kvm"} and "tasks" not in d
    k = d["kvm"]
    assert set(k) >= {"vms", "vcpus", "threads", "io", "runnable_vcpus"}
    t = ftrace_fast.load(SMP4)
    vs = kvm.vcpu_summary(t)
    assert [r["pid"] for r in k["vcpus"]] == vs["pid"].tolist() and len(vs) == 4
    for r, a in zip(k["vcpus"], vs):
        assert VCPU_KEYS <= set(r)
        assert (r["run_ns"], r["wait_ns"], r["vcpu"], r["tgid"]) == \
            (int(a["run_ns"]), int(a["wait_ns"]), int(a["vcpu"]), int(a["tgid"]))
        # no kvm_entry/kvm_exit on this machine's software hypervisor: null, not 0
        assert r["guest_ns"] is None and r["handling_ns"] is None and r["exits"] == {}
        assert sum(n["stolen_ns"] for n in r["neighbours"]) == r["wait_ns"]
        assert r["wakeup_latency"]["count"] == int(a["lat_count"])
    (vm,) = k["vms"]
    assert vm["vm"] == 11947 and vm["tgid_known"] and len(vm["vcpus"]) == 4
    assert vm["run_ns"] == sum(r["run_ns"] for r in k["vcpus"])
    assert vm["stacked_ns"] + sum(n["stolen_ns"] for n in vm["neighbours"]) <= vm["wait_ns"]
    assert vm["neighbours"][0]["comm"] == "other" and not vm["neighbours"][0]["same_vm"]
    assert {r["role"] for r in k["threads"]} == {"vcpu", "main", "iothread", "thread"}
    assert k["io"]["devices"] and k["io"]["devices"][0]["device"] == "254,0"
    assert k["runnable_vcpus"]["ncpus"] == 2 and k["runnable_vcpus"]["overcommit_ns"] > 0


def test_stats_kvm_exits_on_a_real_kvm_host(tmp_path):
    from test_kvm import CORPUS
    import os
    path = os.path.join(CORPUS, "tracecmd", "hip24-kvm-host-20cpu-entry-exit.txt")
    if not os.path.exists(path):
        pytest.skip("shared corpus not present")
    d = json.loads(ok("stats", path, "--kvm", "--format", "json").out)
    vc = {r["pid"]: r for r in d["kvm"]["vcpus"]}
    assert set(vc) == {453724, 453725, 483882}
    t = ftrace_fast.load(path)
    x = kvm.exits(t)
    for row in x.by_reason(lambda p: p):
        e = vc[row["group"]]["exits"][row["reason"]]
        assert EXIT_KEYS <= set(e)
        assert (e["count"], e["total_ns"], e["p99_ns"]) == (row["count"], row["total_ns"], row["p99_ns"])
    for r in vc.values():
        assert r["run_ns"] is None          # no sched_switch in this file
        assert r["guest_ns"] > 0 and sum(e["count"] for e in r["exits"].values()) == r["exits_total"]["count"]
    # two VMs: grouped by pid order without a tgid column (K2)
    assert sorted(tuple(v["vcpus"]) for v in d["kvm"]["vms"]) == [(453724, 453725), (483882,)]
    p = ok("stats", path, "--kvm")
    assert "Exits per VM and reason" in p.out and "EPT_MISCONFIG" in p.out


def test_stats_kvm_table_csv_and_overview():
    p = ok("stats", SMP4, "--kvm")
    for title in ("vCPU threads", "Noisy neighbours", "QEMU I/O", "Block requests"):
        assert f"\n{title}" in p.out
    p = ok("stats", SMP4, "--kvm", "--format", "csv")
    blocks = {}
    for block in p.out.strip().split("\n\n"):
        lines = block.splitlines()
        blocks[lines[0][2:]] = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    assert {"kvm_vcpus", "kvm_neighbours", "kvm_io_threads", "kvm_block"} <= set(blocks)
    assert len(blocks["kvm_vcpus"]) == 4
    # the csv rows are the JSON's, row by row
    k = json.loads(ok("stats", SMP4, "--kvm", "--format", "json").out)["kvm"]
    assert [int(r["pid"]) for r in blocks["kvm_vcpus"]] == [r["pid"] for r in k["vcpus"]]
    for row, r in zip(blocks["kvm_vcpus"], k["vcpus"]):
        assert (int(row["run_ns"]), int(row["wait_ns"]), row["comm"]) == (r["run_ns"], r["wait_ns"], r["comm"])
    want = [(r["pid"], n["pid"], n["stolen_ns"]) for r in k["vcpus"] for n in r["neighbours"][:5]]
    assert [(int(x["vcpu_pid"]), int(x["pid"]), int(x["stolen_ns"])) for x in blocks["kvm_neighbours"]] == want
    assert [int(x["pid"]) for x in blocks["kvm_io_threads"]] == [r["pid"] for r in k["io"]["threads"]]
    assert [x["device"] for x in blocks["kvm_block"]] == [d["device"] for d in k["io"]["devices"]]
    # the overview shows the KVM section on a KVM host, not elsewhere
    assert "kvm" in json.loads(ok("stats", SMP2, "--format", "json").out)
    assert "kvm" not in json.loads(ok("stats", NO_SWITCH, "--format", "json").out)


def test_stats_kvm_filters():
    d = json.loads(ok("stats", SMP4, "--kvm", "--format", "json", "--comm", "CPU [01]/").out)
    assert [r["comm"] for r in d["kvm"]["vcpus"]] == ["CPU 0/KVM", "CPU 1/KVM"]
    full = json.loads(ok("stats", SMP4, "--kvm", "--format", "json").out)
    d = json.loads(ok("stats", SMP4, "--kvm", "--format", "json", "--cpu", "0").out)
    # --cpu restricts the figures, not the rows: the same four vCPUs, in the same order
    assert [r["pid"] for r in d["kvm"]["vcpus"]] == [r["pid"] for r in full["kvm"]["vcpus"]]
    assert len(full["kvm"]["vcpus"]) == 4
    ran = 0
    for a, b in zip(d["kvm"]["vcpus"], full["kvm"]["vcpus"]):
        assert a["run_ns"] == b["cpus"].get("0", {}).get("run_ns", 0)
        assert a["wait_ns"] == b["cpus"].get("0", {}).get("wait_ns", 0)
        assert set(a["cpus"]) <= {"0"}
        ran += a["run_ns"] > 0
    assert ran == 4 and sum(r["run_ns"] for r in d["kvm"]["vcpus"]) < sum(r["run_ns"] for r in full["kvm"]["vcpus"])


def test_diagnose_names_the_contention():
    p = ok("diagnose", SMP4)
    assert " 1. [high] vcpu_steal: CPU " in p.out
    assert "vcpu_stacking" in p.out and "overcommit" in p.out
    d = json.loads(ok("diagnose", SMP4, "--format", "json").out)
    assert d["schema"] == 1 and set(d) >= {"source", "findings", "thresholds"}
    for f in d["findings"]:
        assert set(f) == {"kind", "severity", "score", "subject", "evidence", "explanation"}
        assert f["severity"] in ("high", "medium", "low", "info")
        assert f["kind"] in kvm.KINDS
    steal = [f for f in d["findings"] if f["kind"] == "vcpu_steal"]
    assert {f["subject"]["comm"] for f in steal} == {f"CPU {i}/KVM" for i in range(4)}
    assert all(f["subject"]["vm"] == 11947 for f in steal)


def test_diagnose_thresholds_filters_and_top():
    d = json.loads(ok("diagnose", SMP4, "--format", "json", "--steal-pct", "99",
                      "--stack-pct", "99", "--overcommit-pct", "99", "--wakeup-p99-us", "1e9").out)
    assert not [f for f in d["findings"] if f["kind"] in ("vcpu_steal", "vcpu_stacking", "overcommit",
                                                          "vcpu_wakeup_latency")]
    assert d["thresholds"]["steal_pct"] == 99
    d = json.loads(ok("diagnose", SMP4, "--format", "json", "--pid", "11953").out)
    assert {f["subject"].get("pid") for f in d["findings"] if f["kind"] != "caveat"} == {11953}
    d = json.loads(ok("diagnose", SMP4, "--format", "json", "--top", "2").out)
    assert len(d["findings"]) == 2


def test_diagnose_without_kvm_says_so():
    p = ok("diagnose", NO_SWITCH)
    assert "0 findings" in p.out and "no vCPU thread" in p.out


@pytest.mark.parametrize("argv,code,message", [
    (["diagnose", SMP4, "--steal-pct", "-1"], 2, "must not be negative"),
    (["diagnose", SMP4, "--steal-pct", "x"], 2, "invalid float value"),
    (["diagnose", "/no/such/file"], 3, "no such file"),
    (["diagnose", SMP4, "--comm", "("], 2, "bad --comm regex"),
])
def test_diagnose_errors(argv, code, message):
    p = run(*argv)
    assert p.returncode == code and message in p.err and "Traceback" not in p.err
    assert p.err.count("\n") == 1


@pytest.mark.parametrize("kind", ["cpu-util", "switches", "wakeups"])
def test_plot_refuses_absurd_bins(tmp_path, kind):
    """--bin 1ns over a 0.4 s trace would be 4*10**8 bins (gigabytes): a usage error instead."""
    p = run("plot", SMP4, "--kind", kind, "--bin", "1ns", "-o", tmp_path / "x.png")
    assert p.returncode == 2 and "choose a wider bin" in p.err and "Traceback" not in p.err
    assert not (tmp_path / "x.png").exists()
    from ftrace_fast import sched
    t = ftrace_fast.load(SMP4)
    with pytest.raises(ValueError, match="wider bin"):
        sched.cpu_utilization(t, 1)
