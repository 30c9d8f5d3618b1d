"""``ftfast diff A B``: a generated pair of traces with exact truth.  In B one task's wait for
its CPU doubles (it is woken 1 ms earlier behind the same CPU hog) and the vCPU gains a noisy
neighbour that holds its CPU for 3 ms of every period; small random jitter elsewhere, and a
task with two wakeups whose latency changes a lot (too few samples to rank)."""

import contextlib
import csv
import io
import json
import random

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from ftrace_fast import cli  # noqa: E402

PERIOD_US = 10_000
PERIODS = 30
T0_US = 5_000_000
VM_PID, VCPU_PID, DB_PID, BATCH_PID, NOISY_PID, LOG_PID, RARE_PID = 100, 101, 200, 201, 300, 400, 500
COMMS = {0: "<idle>", VCPU_PID: "CPU 0/KVM", DB_PID: "dbworker", BATCH_PID: "batch", NOISY_PID: "noisy",
         LOG_PID: "logger", RARE_PID: "rare", VM_PID: "qemu-system-x86"}


class Gen:
    """ftrace text (kernel 'trace' format, 5 flag characters) of a 2-CPU host, line by line."""

    def __init__(self):
        self.lines = []
        self.cur = {0: 0, 1: 0}

    def emit(self, ts_us, cpu, event, payload):
        pid = self.cur[cpu]
        comm = COMMS[pid]
        self.lines.append((ts_us, len(self.lines),
                           f"{comm:>16}-{pid:<7} [{cpu:03d}] d..2. {ts_us // 1_000_000:5d}."
                           f"{ts_us % 1_000_000:06d}: {event}: {payload}"))

    def wake(self, ts, cpu, pid, target):
        self.emit(ts, cpu, "sched_waking", f"comm={COMMS[pid]} pid={pid} prio=120 target_cpu={target:03d}")
        self.emit(ts, cpu, "sched_wakeup", f"comm={COMMS[pid]} pid={pid} prio=120 target_cpu={target:03d}")

    def switch(self, ts, cpu, state, nxt):
        prev = self.cur[cpu]
        pc = COMMS[prev] if prev else f"swapper/{cpu}"
        nc = COMMS[nxt] if nxt else f"swapper/{cpu}"
        self.emit(ts, cpu, "sched_switch", f"prev_comm={pc} prev_pid={prev} prev_prio=120 prev_state={state}"
                                           f" ==> next_comm={nc} next_pid={nxt} next_prio=120")
        self.cur[cpu] = nxt

    def text(self):
        body = [ln for _, _, ln in sorted(self.lines)]
        return "# tracer: nop\n#\n" + "\n".join(body) + "\n"


def make(noisy, seed):
    """The trace of A (noisy=False) or B (noisy=True): CPU 1 runs batch for 3 ms of each
    period and dbworker, woken 1 ms (A) or 2 ms (B) before batch ends, for 2 ms; CPU 0 runs
    the vCPU for 6 ms (with exits), in B after noisy held the CPU for 3 ms."""
    rng = random.Random(seed)
    g = Gen()
    for k in range(PERIODS):
        t = T0_US + k * PERIOD_US
        # CPU 1
        g.wake(t, 1, BATCH_PID, 1)
        g.switch(t + 1, 1, "R", BATCH_PID)
        g.wake(t + (1001 if noisy else 2001), 1, DB_PID, 1)
        g.switch(t + 3001, 1, "S", DB_PID)
        g.switch(t + 5001, 1, "S", 0)
        # jitter: logger runs about 50 us, woken at about 7 ms
        w = t + 7000 + rng.randint(0, 200)
        g.wake(w, 1, LOG_PID, 1)
        g.switch(w + rng.randint(1, 30), 1, "R", LOG_PID)
        g.switch(w + 60 + rng.randint(0, 60), 1, "S", 0)
        # CPU 0
        if noisy:
            g.wake(t, 0, NOISY_PID, 0)
            g.switch(t + 1, 0, "R", NOISY_PID)
            g.wake(t + 2, 0, VCPU_PID, 0)
            g.switch(t + 3001, 0, "S", VCPU_PID)
            v0 = t + 3001
        else:
            g.wake(t + 2, 0, VCPU_PID, 0)
            g.switch(t + 3, 0, "R", VCPU_PID)
            v0 = t + 3
        g.emit(v0 + 5, 0, "kvm_entry", "vcpu 0, rip 0xffffffff81000000")
        x = v0 + 5
        for _ in range(5):
            x += 1000 + rng.randint(0, 20)
            g.emit(x, 0, "kvm_exit", "vcpu 0 reason MSR_WRITE rip 0xffffffff81000010 info1 0x0 info2 0x0 "
                                     "intr_info 0x0 error_code 0x0")
            x += 10 + rng.randint(0, 5)
            g.emit(x, 0, "kvm_entry", "vcpu 0, rip 0xffffffff81000000")
        g.emit(v0 + 5990, 0, "kvm_exit", "vcpu 0 reason HLT rip 0xffffffff81000020 info1 0x0 info2 0x0 "
                                         "intr_info 0x0 error_code 0x0")
        g.switch(v0 + 6000, 0, "S", 0)
        # rare: woken twice in the trace, on an idle CPU 0 in A, behind noisy... never: its
        # latency is 10 us in A and 900 us in B
        if k in (5, 20):
            lat = 900 if noisy else 10
            g.wake(t + 9500 - lat, 0 if not noisy else 1, RARE_PID, 0)
            g.switch(t + 9500, 0, "S", RARE_PID)
            g.switch(t + 9600, 0, "S", 0)
    return g.text()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    a, b = d / "a.txt", d / "b.txt"
    a.write_text(make(False, 1))
    b.write_text(make(True, 2))
    return str(a), str(b)


def _main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def diff_rows(pair):
    rc, out, err = _main("diff", *pair, "--format", "json")
    assert rc == 0, err
    return json.loads(out)["rows"]


def _row(rows, table, key, figure):
    (r,) = [r for r in rows if (r["table"], r["key"], r["figure"]) == (table, key, figure)]
    return r


def test_the_planted_changes_rank_first(diff_rows):
    rows = diff_rows
    n = PERIODS
    # exact truth: dbworker waits 1 ms -> 2 ms per period; the vCPU 0 -> 2.999 ms behind noisy
    db = _row(rows, "tasks", "comm=dbworker", "wait_ns")
    assert (db["a"], db["b"], db["change"], db["change_pct"]) == (n * 1_000_000, n * 2_000_000, n * 1_000_000, 100.0)
    vm = _row(rows, "vcpus", f"vm={VCPU_PID} vcpu=0", "wait_ns")
    assert (vm["a"], vm["b"]) == (n * 1_000, n * 2_999_000)
    st = _row(rows, "vcpus", f"vm={VCPU_PID} vcpu=0", "stolen_ns[noisy]")
    assert (st["a"], st["b"]) == (0, n * 2_999_000)
    ranked = [r for r in rows if r["rank"] is not None]
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    # ranked first: the vCPU's changes (and the same time seen from CPU 0: its busy and idle
    # time; the vCPU thread's sleep), then dbworker's wait (and batch's... unchanged: it runs
    # the same); every row above dbworker's wait is about the vCPU or its CPU
    i_db = ranked.index(db)
    above = {(r["table"], r["key"]) for r in ranked[:i_db]}
    assert above <= {("tasks", "comm=CPU 0/KVM"), ("groups", "group=CPU N/KVM"),
                     ("vcpus", f"vm={VCPU_PID} vcpu=0"), ("cpus", "cpu=0")}
    assert vm in ranked[:5] and st in ranked[:5]
    cpu0 = _row(rows, "cpus", "cpu=0", "busy_ns")
    assert ranked[0] == cpu0 and cpu0["change"] == n * 3_000_000    # noisy's 3 ms per period
    # nothing of the jitter ranks above the planted changes
    assert all(abs(r["change"]) < n * 1_000_000 for r in ranked[i_db + 1:]
               if (r["table"], r["key"]) not in above | {("tasks", "comm=dbworker"), ("groups", "group=dbworker")})
    # sorted by time changed, not by percentage of nothing
    assert all(abs(x["change"]) >= abs(y["change"]) for x, y in zip(ranked, ranked[1:]))


def test_few_samples_are_flagged_not_ranked_and_one_sided_rows(diff_rows):
    rows = diff_rows
    rare = [r for r in rows if r["key"] == "comm=rare"]
    assert rare and all(r["flag"] == "few_samples" and r["rank"] is None for r in rare)
    lat = _row(rows, "tasks", "comm=rare", "lat_max_ns")
    assert (lat["a"], lat["b"]) == (10_000, 900_000)
    noisy = [r for r in rows if r["key"] == "comm=noisy"]
    assert noisy and all(r["flag"] == "only_b" and r["a"] is None and r["rank"] is None for r in noisy)
    # the exit reasons: MSR_WRITE timing rows have samples (5 per period)
    msr = _row(rows, "exits", f"vm={VCPU_PID} reason=MSR_WRITE", "count")
    assert (msr["a"], msr["b"], msr["flag"]) == (5 * PERIODS, 5 * PERIODS, "")
    cpu = _row(rows, "cpus", "cpu=0", "busy_ns")
    assert cpu["change"] == PERIODS * 3_000_000          # noisy's 3 ms per period


def test_text_csv_and_errors(pair, tmp_path):
    rc, out, _ = _main("diff", *pair, "--top", "5")
    assert rc == 0 and "Largest changes in time" in out and "CPU 0/KVM" in out and "only in B" in out
    first = out.split("Largest changes in time")[1].splitlines()[3]
    assert first.split()[:4] == ["1", "cpus", "cpu=0", "busy_ns"]
    rc, out, _ = _main("diff", *pair, "--format", "csv")
    rs = list(csv.DictReader(io.StringIO(out)))
    assert rs[0]["rank"] == "1" and {"table", "key", "figure", "a", "b", "change", "change_pct", "flag"} <= set(rs[0])
    rc, _, err = _main("diff", pair[0], str(tmp_path / "missing.txt"))
    assert rc == 3 and err.count("\n") == 1
    rc, _, err = _main("diff", pair[0], str(tmp_path))
    assert rc == 3 and "not a fleet store" in err


def test_diff_of_two_stores_by_host(pair, tmp_path):
    """Two stores: the same figures per host (here one trace each, written without Dask)."""
    from ftrace_fast import fleet
    sa, sb = str(tmp_path / "sa"), str(tmp_path / "sb")
    assert fleet.analyse(pair[0], "h1", sa)["status"] == "done"
    assert fleet.analyse(pair[1], "h1", sb)["status"] == "done"
    rc, out, _ = _main("diff", sa, sb, "--format", "json")
    rows = json.loads(out)["rows"]
    db = _row(rows, "tasks", "host=h1 comm=dbworker", "wait_ns")
    assert db["change"] == PERIODS * 1_000_000 and db["key_fields"] == {"host": "h1", "comm": "dbworker"}
    rc, _, err = _main("diff", sa, pair[1])
    assert rc == 2 and "two traces or two stores" in err
