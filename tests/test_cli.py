"""The ``ftfast`` command line and the skill's drop-in scripts, run as subprocesses (the real
console entry point) on the fixtures: output, JSON schema, filters, exit codes, and the
classic grep/awk pipelines they replace."""

import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import sched
from helpers import DATA

ROOT = Path(__file__).resolve().parent.parent
SMP2 = DATA / "kvm_smp2_small.txt.gz"          # comms with spaces: CPU n/KVM, IO io1
SMP4 = DATA / "kvm_smp4_contended_small.txt.gz"  # record-tgid column
NO_SWITCH = DATA / "public" / "trappy-tests-tracecmd-sched-stat.txt"

_exe = shutil.which("ftfast", path=os.path.dirname(sys.executable))
FTFAST = [_exe] if _exe else [sys.executable, "-m", "ftrace_fast"]
ENV = dict(os.environ, LC_ALL="C", PYTHONWARNINGS="ignore")


def run(*args, stdin=None, cmd=None):
    p = subprocess.run((cmd or FTFAST) + [str(a) for a in args], input=stdin,
                       capture_output=True, env=ENV, timeout=120)
    p.out = p.stdout.decode()
    p.err = p.stderr.decode()
    return p


def ok(*args, **kw):
    p = run(*args, **kw)
    assert p.returncode == 0, p.err
    assert "Traceback" not in p.err
    return p


def script(name, *args):
    return run(*args, cmd=[sys.executable, str(ROOT / "scripts" / name)])


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The smp2 fixture decompressed (the pipelines read plain text)."""
    d = tmp_path_factory.mktemp("cli")
    p = d / "kvm_smp2_small.txt"
    p.write_bytes(gzip.decompress(SMP2.read_bytes()))
    return p


@pytest.fixture(scope="module")
def smp2():
    return ftrace_fast.load(SMP2)


@pytest.fixture(scope="module")
def stats_json():
    return json.loads(ok("stats", SMP2, "--format", "json").out)


# -- info -------------------------------------------------------------------------------------

def test_info_table_and_json(smp2):
    p = ok("info", SMP2)
    assert "format:    kernel trace text, irq-info flags (5 chars)" in p.out
    assert "cpus:      2 (0-1)" in p.out
    assert re.search(r"^\s+2484  sched_switch$", p.out, re.M)
    assert p.err == ""
    d = json.loads(ok("info", SMP2, "--format", "json").out)
    assert d["schema"] == 1
    assert d["source"]["compression"] == "gzip" and d["source"]["clock"] == "ns"
    assert d["events"] == {k: len(v) for k, v in smp2.events.items()}
    assert d["lines"]["total"] == smp2.stats.lines and d["lost"] == [] and d["malformed"] == []


def test_info_malformed_lines_are_listed(tmp_path):
    text = gzip.decompress(SMP2.read_bytes()).splitlines(keepends=True)
    text.insert(20, b"garbage in the middle\n")
    f = tmp_path / "bad.txt"
    f.write_bytes(b"".join(text))
    d = json.loads(ok("info", f, "--format", "json").out)
    assert d["lines"]["malformed"] == 1
    assert d["malformed"][0]["line"] == 21
    assert "line 21" in ok("info", f).out


# -- stats: every section in every format -----------------------------------------------------

SECTION_FLAGS = {"tasks": "--task-stats", "cpus": "--cpu-stats", "wakeups": "--wakeup-stats",
                 "switches": "--switch-stats", "latency": "--latency",
                 "migrations": "--migrations"}


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
@pytest.mark.parametrize("section", sorted(SECTION_FLAGS))
def test_stats_section_formats(section, fmt):
    p = ok("stats", SMP4, SECTION_FLAGS[section], "--format", fmt)
    assert p.err == ""
    if fmt == "json":
        d = json.loads(p.out)
        assert {k for k in SECTION_FLAGS if k in d} == {section}
        assert d[section]
    elif fmt == "csv":
        blocks = _csv_blocks(p.out)
        want = {"latency": {"latency_global", "latency_tasks"}}.get(section, {section})
        assert set(blocks) == want
        assert all(rows for rows in blocks.values())
    else:
        title = {"tasks": "Tasks", "cpus": "CPUs", "wakeups": "Wakeups",
                 "switches": "Context switches", "latency": "Wakeup latency",
                 "migrations": "Migrations"}[section]
        assert f"\n{title}" in p.out
        assert p.out.count("\n\n") == 1  # one table


def _csv_blocks(text):
    out = {}
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        assert lines[0].startswith("# ")
        out[lines[0][2:]] = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    return out


def test_stats_overview_has_every_section(stats_json):
    for key in ("schema", "source", "filters", "caveats", "tasks", "cpus", "wakeups",
                "wakeups_event", "switches", "latency", "migrations"):
        assert key in stats_json
    p = ok("stats", SMP2)
    for title in ("CPUs", "Tasks", "Wakeup latency", "Wakeups", "Context switches", "Migrations"):
        assert f"\n{title}" in p.out
    assert "top 20 of" in p.out


def test_json_schema(stats_json):
    d = stats_json
    assert d["schema"] == 1
    assert d["source"] == {"file": str(SMP2), "format": "kernel trace text, irq-info flags (5 chars)",
                           "clock": "ns", "time_unit": "ns",
                           "window": {"start": 1001226635000, "end": 1001626803000,
                                      "duration": 400168000}}
    lat_keys = {"count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"}
    task_keys = {"pid", "tgid", "comm", "run_ns", "wait_ns", "sleep_ns", "blocked_ns",
                 "switches_in", "preemptions", "wakeups", "migrations", "inferred_switch_ins",
                 "wakeup_latency"}
    for r in d["tasks"]:
        assert task_keys <= set(r)
        assert lat_keys <= set(r["wakeup_latency"])
        assert r["tgid"] is None  # no record-tgid column in this file
        assert r["comm"] in r["comms"]
    for r in d["cpus"]:
        assert {"cpu", "busy_ns", "idle_ns", "unknown_ns", "utilization_pct", "switches"} <= set(r)
        assert r["busy_ns"] + r["idle_ns"] + r["unknown_ns"] == d["source"]["window"]["duration"]
    assert all({"comm", "count", "pids"} <= set(r) for r in d["wakeups"])
    assert d["wakeups_event"] == "sched_waking"
    assert all(set(r) >= {"comm", "pid", "switches_in", "voluntary", "involuntary"}
               for r in d["switches"])
    assert lat_keys | {"tasks", "source"} <= set(d["latency"])
    assert d["latency"]["source"] == "sched_wakeup"
    assert all({"pid", "comm", "count"} <= set(r) for r in d["migrations"])
    # a task without latency samples has nulls, never -1 or NaN
    no_lat = [r for r in d["tasks"] if r["wakeup_latency"]["count"] == 0]
    assert no_lat and all(r["wakeup_latency"]["p99_ns"] is None for r in no_lat)


def test_json_figures_equal_the_api(stats_json, smp2):
    s = sched.task_summary(smp2)
    by_pid = {r["pid"]: r for r in stats_json["tasks"]}
    assert set(by_pid) == set(s["pid"].tolist())
    for r in s:
        j = by_pid[int(r["pid"])]
        for k in ("run_ns", "wait_ns", "sleep_ns", "blocked_ns", "switches_in", "preemptions",
                  "wakeups", "migrations", "inferred_switch_ins"):
            assert j[k] == int(r[k]), (r["pid"], k)
    c = sched.cpu_summary(smp2)
    assert [(x["cpu"], x["busy_ns"], x["switches"]) for x in stats_json["cpus"]] == \
        [(int(a), int(b), int(n)) for a, b, n in zip(c["cpu"], c["busy_ns"], c["switches"])]
    g = sched.latency_stats(sched.wakeup_latencies(smp2)["latency_ns"])
    assert {k: stats_json["latency"][k] for k in g} == g


def _line_counts(path, event, field):
    """The per-thread truth, straight from the text: `field=<comm> <pid field>=` per line."""
    rx = re.compile(rf": {event}: .*?\b{field}=(.*?) (?:prev_|next_)?pid=(\d+)")
    c = Counter()
    with gzip.open(path, "rt") as f:
        for line in f:
            m = rx.search(line)
            if m:
                c[(m.group(1), int(m.group(2)))] += 1
    return c


def test_wakeups_and_switches_count_the_lines(stats_json):
    waking = _line_counts(SMP2, "sched_waking", "comm")
    got = Counter({(r["comm"], x["pid"]): x["count"] for r in stats_json["wakeups"]
                   for x in r["pids"]})
    assert got == waking
    switch_in = _line_counts(SMP2, "sched_switch", "next_comm")
    got = Counter({(r["comm"], r["pid"]): r["switches_in"] for r in stats_json["switches"]
                   if r["switches_in"]})
    assert got == switch_in
    # the idle task appears as swapper/N, one row per CPU, as printed
    assert ("swapper/0", 0) in got
    # voluntary + involuntary = the sched_switch lines with that task as prev
    prev = _line_counts(SMP2, "sched_switch", "prev_comm")
    for r in stats_json["switches"]:
        assert r["voluntary"] + r["involuntary"] == prev[(r["comm"], r["pid"])]


def test_stats_filters_restrict_rows_not_the_analysis(smp2):
    d = json.loads(ok("stats", SMP2, "--format", "json", "--comm", "KVM", "--cpu", "0",
                      "--start", "1001.3", "--end", "1001.5").out)
    kw = dict(start="1001.3", end="1001.5", cpus=[0])
    s = sched.task_summary(smp2, comm="KVM", **kw)
    assert [(r["pid"], r["run_ns"], r["wait_ns"]) for r in sorted(d["tasks"], key=lambda r: r["pid"])] \
        == [(int(r["pid"]), int(r["run_ns"]), int(r["wait_ns"])) for r in s]
    assert {r["comm"] for r in d["tasks"]} == {"CPU 0/KVM", "CPU 1/KVM"}
    c = sched.cpu_summary(smp2, start="1001.3", end="1001.5", cpus=[0])
    assert [(r["cpu"], r["busy_ns"]) for r in d["cpus"]] == [(0, int(c["busy_ns"][0]))]
    assert {r["comm"] for r in d["wakeups"]} <= {"CPU 0/KVM", "CPU 1/KVM"}
    sw = smp2.events["sched_switch"]
    k = (sw["cpu"] == 0) & (sw["ts"] >= 1001300000000) & (sw["ts"] <= 1001500000000)
    names = np.array(smp2.comms, dtype=object)[sw["next_comm"][k]]
    assert sum(r["switches_in"] for r in d["switches"]) == sum("KVM" in n for n in names)
    assert d["filters"]["cpus"] == [0] and d["filters"]["comm"] == "KVM"
    # the latency samples are those switched in on the selected CPU
    lat = sched.wakeup_latencies(smp2, comm="KVM", **kw)
    assert d["latency"]["count"] == len(lat) and set(lat["cpu"].tolist()) <= {0}


def test_stats_tgid_selects_the_threads_of_a_process():
    d = json.loads(ok("stats", SMP4, "--task-stats", "--switch-stats", "--format", "json",
                      "--tgid", "11947").out)
    assert {r["comm"] for r in d["tasks"]} == {"CPU 0/KVM", "CPU 1/KVM", "CPU 2/KVM",
                                              "CPU 3/KVM", "IO io1", "worker", "qemu-system-x86"}
    assert {r["tgid"] for r in d["tasks"]} == {11947}
    assert {r["pid"] for r in d["switches"]} == {r["pid"] for r in d["tasks"]}
    # the kernel thread kvm-pit/11947 is its own process: its name is not its tgid
    assert "kvm-pit/11947" not in {r["comm"] for r in d["tasks"]}


def test_stats_sort_and_top():
    p = ok("stats", SMP2, "--task-stats", "--sort", "wait_ns", "--top", "3")
    assert "top 3 of" in p.out
    d = json.loads(ok("stats", SMP2, "--task-stats", "--sort", "wait_ns", "--format", "json").out)
    waits = [r["wait_ns"] for r in d["tasks"]]
    assert waits == sorted(waits, reverse=True)
    d = json.loads(ok("stats", SMP2, "--switch-stats", "--sort", "voluntary", "--format", "json").out)
    vol = [r["voluntary"] for r in d["switches"]]
    assert vol == sorted(vol, reverse=True)


def test_stats_without_sched_switch_overview_degrades():
    d = json.loads(ok("stats", NO_SWITCH, "--format", "json").out)
    assert "tasks" not in d and "wakeups" in d


def test_integer_clock_figures_are_ticks(tmp_path, plain):
    # the smp2 log with its time stamps printed as an integer (counter) clock: 1 tick = 1 us
    f = tmp_path / "ticks.txt"
    f.write_text(re.sub(r" 1001\.(\d{6}):", r" 1001\1:", plain.read_text()))
    d = json.loads(ok("stats", f, "--cpu-stats", "--latency", "--format", "json").out)
    ns = json.loads(ok("stats", SMP2, "--cpu-stats", "--latency", "--format", "json").out)
    assert d["source"]["clock"] == "counter" and d["source"]["time_unit"] == "ticks"
    assert any("ticks" in c for c in d["caveats"])
    assert [r["busy_ns"] * 1000 for r in d["cpus"]] == [r["busy_ns"] for r in ns["cpus"]]
    assert d["latency"]["max_ns"] * 1000 == ns["latency"]["max_ns"]
    a = json.loads(ok("stats", f, "--cpu-stats", "--format", "json",
                      "--start", "1001300000ticks", "--end", "1001400000ticks").out)
    b = json.loads(ok("stats", SMP2, "--cpu-stats", "--format", "json",
                      "--start", "1001.3", "--end", "1001.4").out)
    assert [r["busy_ns"] * 1000 for r in a["cpus"]] == [r["busy_ns"] for r in b["cpus"]]


# -- stdin and compressed input ---------------------------------------------------------------

def test_stdin_and_gzip_give_the_same_answers(plain):
    a = ok("stats", SMP2, "--format", "json").out
    b = ok("stats", "-", "--format", "json", stdin=SMP2.read_bytes()).out
    c = ok("stats", "-", "--format", "json", stdin=plain.read_bytes()).out
    d = ok("stats", plain, "--format", "json").out
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "source"}  # noqa: E731
    assert strip(a) == strip(b) == strip(c) == strip(d)
    assert json.loads(b)["source"]["file"] == "<stdin>"
    i = json.loads(ok("info", "-", "--format", "json", stdin=SMP2.read_bytes()).out)
    assert i["source"]["compression"] == "gzip" and i["lines"]["total"] == 10126


# -- filter -----------------------------------------------------------------------------------

_OWN = re.compile(r"^\s*(.+?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[\d+\]")
_PAYLOAD = re.compile(r"\b(?:prev_comm|next_comm|comm)=(.+?) (?:prev_pid|next_pid|pid)=")


def _expected(text, rx):
    """The filter's contract, independently: header lines, and event lines whose own task
    or a task named in the payload has a comm the regex finds."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            out.append(line)
            continue
        comms = [_OWN.match(line).group(1)] + _PAYLOAD.findall(line)
        if any(rx.search(c) for c in comms):
            out.append(line)
    return "".join(out)


@pytest.mark.parametrize("regex", ["KVM|qemu|vhost", "^worker$", "IO io1"])
def test_filter_keeps_the_tasks_lines_and_header(tmp_path, plain, regex):
    out = tmp_path / "f.txt"
    p = ok("filter", SMP2, "-o", out, "--comm", regex)
    assert p.err.startswith("ftfast filter: kept ") and p.err.count("\n") == 1
    text = plain.read_text()
    assert out.read_text() == _expected(text, re.compile(regex))
    # and reads back: ftfast itself, with the same tasks' events
    d = json.loads(ok("info", out, "--format", "json").out)
    assert d["lines"]["malformed"] == 0 and d["lines"]["headers"] == 12
    again = json.loads(ok("info", SMP2, "--format", "json", "--comm", regex).out)
    assert d["events"] == again["events"]


def test_filter_keeps_a_switch_by_its_payload_task(tmp_path, plain):
    out = tmp_path / "f.txt"
    ok("filter", SMP2, "-o", out, "--comm", "KVM", "-q")
    kept = out.read_text()
    # switches where only prev or only next is a vCPU thread
    to_vcpu = [ln for ln in kept.splitlines()
               if "sched_switch" in ln and "prev_comm=other" in ln and "next_comm=CPU" in ln]
    from_vcpu = [ln for ln in kept.splitlines()
                 if "sched_switch" in ln and "prev_comm=CPU" in ln and "next_comm=other" in ln]
    assert to_vcpu and from_vcpu
    # a vCPU woken by another task is kept by the woken comm
    assert any("sched_waking: comm=CPU" in ln and not _OWN.match(ln).group(1).startswith("CPU")
               for ln in kept.splitlines())


def test_filter_never_selects_by_other_text(tmp_path, plain):
    # 'apic' is in thousands of lines (kvm_apic_ipi ...), in no comm: grep keeps them, we don't
    out = tmp_path / "f.txt"
    ok("filter", SMP2, "-o", out, "--comm", "apic", "-q")
    assert all(ln.startswith("#") for ln in out.read_text().splitlines())
    assert "apic" in plain.read_text()


def test_filter_stdin_to_stdout_and_other_filters(tmp_path):
    p = ok("filter", "-", "-o", "-", "--cpu", "1", "--start", "1001.4", "-q",
           stdin=SMP2.read_bytes())
    t = ftrace_fast.load(io.BytesIO(p.stdout))
    assert t.stats.malformed == 0 and t.cpus() == [1]
    assert min(int(a["ts"].min()) for a in t.events.values()) >= 1001400000000
    out = tmp_path / "t.txt"
    ok("filter", SMP4, "-o", out, "--tgid", "11947", "--events", "sched_switch", "-q")
    t = ftrace_fast.load(out)
    assert list(t.events) == ["sched_switch"]
    sw = t.events["sched_switch"]
    tg = {r["pid"] for r in json.loads(ok("stats", SMP4, "--task-stats", "--tgid", "11947",
                                         "--format", "json").out)["tasks"]}
    assert len(tg) == 8
    assert all(a in tg or b in tg for a, b in zip(sw["prev_pid"].tolist(), sw["next_pid"].tolist()))


# -- errors: one line on stderr, the documented exit code, no traceback ------------------------

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.txt").write_bytes(b"")
    (d / "trace.dat").write_bytes(b"\x17\x08Dtracing6\x00\x00\x00" + bytes(200))
    (d / "notes.txt").write_text("hello world\nthis is not a trace\n")
    text = gzip.decompress(SMP2.read_bytes()).splitlines(keepends=True)
    (d / "one_bad.txt").write_bytes(b"".join(text[:30] + [b"garbage\n"] + text[30:]))
    (d / "dir").mkdir()
    return d


ERRORS = [
    # (argv with {d} = the bad-inputs dir, {f} = a good file, exit code, message part)
    (["info", "{d}/missing.txt"], 3, "no such file"),
    (["stats", "{d}/empty.txt"], 3, "empty input"),
    (["info", "{d}/dir"], 3, "is a directory"),
    (["stats", "{d}/trace.dat"], 3, "trace-cmd report"),
    (["filter", "{d}/notes.txt", "-o", "{d}/o.txt"], 3, "not ftrace text"),
    (["stats", "{f}", "--comm", "CPU ("], 2, "bad --comm regex"),
    (["filter", "{f}", "-o", "{d}/o.txt", "--comm", "[a"], 2, "bad --comm regex"),
    (["stats", "{f}", "--start", "2", "--end", "1"], 2, "bad time range"),
    (["info", "{f}", "--start", "soon"], 2, "not a time"),
    (["stats", "{f}", "--cpu", "0-x"], 2, "bad --cpu list"),
    (["filter", "{f}", "-o", "{d}/o.txt", "--cpu", "3-1"], 2, "bad --cpu list"),
    (["stats", "{f}", "--pid", "abc"], 2, "bad --pid list"),
    (["stats", "{f}", "--tgid", "1"], 2, "record-tgid"),
    (["stats", "{f}", "--sort", "nonsense"], 2, "--sort"),
    (["stats", "{f}", "--no-such-option"], 2, "unrecognized arguments"),
    (["stats", str(NO_SWITCH), "--task-stats"], 3, "no sched_switch"),
    (["filter", "{f}", "-o", "{d}/no/such/dir/o.txt"], 4, "cannot write"),
    (["filter", "{f}", "-o", "{d}/dir"], 4, "is a directory"),
    (["filter", "{d}/one_bad.txt", "-o", "{d}/one_bad.txt"], 4, "it is the input file"),
    (["stats", "{d}/one_bad.txt", "--strict"], 5, "line 31"),
    (["filter", "{d}/one_bad.txt", "-o", "{d}/o.txt", "--strict"], 5, "line 31"),
]
if os.path.exists("/dev/full"):
    ERRORS.append((["filter", "{f}", "-o", "/dev/full"], 4, "No space left"))
    ERRORS.append((["info", "{f}", ">/dev/full"], 4, "cannot write the output"))


@pytest.mark.parametrize("argv,code,message", ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_errors(bad_inputs, argv, code, message):
    argv = [a.format(d=bad_inputs, f=SMP2) for a in argv]
    if argv[-1].startswith(">"):
        with open(argv.pop()[1:], "w") as sink:
            p = subprocess.run(FTFAST + argv, stdout=sink, stderr=subprocess.PIPE, env=ENV,
                               timeout=60)
        p.err = p.stderr.decode()
    else:
        p = run(*argv)
        assert p.stdout == b""
    assert p.returncode == code, p.err
    assert "Traceback" not in p.err
    assert p.err.count("\n") == 1 and p.err.startswith("ftfast"), p.err
    assert message in p.err
    assert not (bad_inputs / "o.txt").exists()


def test_empty_stdin_and_no_command():
    p = run("info", "-", stdin=b"")
    assert p.returncode == 3 and p.err == "ftfast: <stdin>: empty input\n"
    # filter keeps stdin in a temporary file: the errors still say <stdin>
    p = run("filter", "-", "-o", "-", stdin=b"\x17\x08Dtracing6" + bytes(100))
    assert p.returncode == 3 and p.err.startswith("ftfast: <stdin>: this is a trace-cmd binary")
    p = run()
    assert p.returncode == 2 and "Traceback" not in p.err


def test_the_input_is_untouched_when_output_is_input(bad_inputs):
    f = bad_inputs / "one_bad.txt"
    before = f.read_bytes()
    run("filter", f, "-o", f)
    assert f.read_bytes() == before


def test_closed_pipe_is_not_an_error():
    p = subprocess.run(" ".join(FTFAST) + f" stats {SMP2} --top 0 | head -1", shell=True,
                       capture_output=True, env=ENV, timeout=60, executable="/bin/bash")
    assert p.stderr == b"" and p.stdout.count(b"\n") == 1
    p = subprocess.run(" ".join(FTFAST) + f" filter {SMP2} -o - -q | head -1; "
                       "echo rc=${PIPESTATUS[0]}", shell=True, capture_output=True, env=ENV,
                       timeout=60, executable="/bin/bash")
    assert p.stderr == b"" and p.stdout.decode().splitlines() == ["# tracer: nop", "rc=0"]


# -- the skill's scripts, and the pipelines they replace --------------------------------------

WAKING_PIPELINE = ("grep sched_waking {f} | awk -F'comm=' '{{print $2}}' | awk '{{print $1}}' "
                   "| sort | uniq -c | sort -rn | head -20")
SWITCH_PIPELINE = ("grep sched_switch {f} | awk -F'next_comm=' '{{print $2}}' | awk '{{print $1}}' "
                   "| sort | uniq -c | sort -rn | head -20")


def _bash(cmd):
    p = subprocess.run(cmd, shell=True, capture_output=True, env=ENV, executable="/bin/bash",
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def _uniq(text):
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\d+) (.*)", line)
        assert m, line
        out[m.group(2)] = int(m.group(1))
    return out


@pytest.mark.skipif(not shutil.which("awk") or not shutil.which("grep"), reason="no grep/awk")
@pytest.mark.parametrize("flag,pipeline,event,field", [
    ("--wakeup-stats", WAKING_PIPELINE, "sched_waking", "comm"),
    ("--switch-stats", SWITCH_PIPELINE, "sched_switch", "next_comm"),
])
def test_stats_script_against_the_pipeline(plain, flag, pipeline, event, field):
    ours_text = script("ftrace_stats.py", plain, flag)
    assert ours_text.returncode == 0 and ours_text.err == ""
    ours = _uniq(ours_text.out)
    theirs = _uniq(_bash(pipeline.format(f=plain)))
    truth = Counter()
    for (comm, _pid), n in _line_counts(SMP2, event, field).items():
        truth[comm] += n
    # ours is the per-comm truth, counted from the text directly
    assert ours == dict(truth)
    # equal to the pipeline for every comm without a space ...
    spaced = {c for c in ours if " " in c}
    assert spaced >= {"CPU 0/KVM", "CPU 1/KVM", "IO io1"}
    assert {c: n for c, n in ours.items() if c not in spaced} == \
        {c: n for c, n in theirs.items() if c not in {"CPU", "IO"}}
    # ... and right where the awk split is wrong: `CPU 0/KVM` and `CPU 1/KVM` become one `CPU`
    assert "CPU 0/KVM" not in theirs and theirs["CPU"] == ours["CPU 0/KVM"] + ours["CPU 1/KVM"]
    assert theirs["IO"] == ours["IO io1"]
    # the same shape: `uniq -c` lines, by count descending (ties as LC_ALL=C sort -rn)
    lines = ours_text.out.splitlines()
    assert all(re.fullmatch(r" {0,6}\d{1,7} \S.*", ln) for ln in lines)
    assert lines == sorted(lines, key=lambda ln: (int(ln.split()[0]), ln), reverse=True)
    assert len(lines) <= 20


def test_stats_script_sections_and_passthrough(plain):
    p = script("ftrace_stats.py", SMP2)
    assert p.returncode == 0
    for title in ("== Top woken threads", "== Top scheduled threads", "== Top blocking threads",
                  "== CPU utilization"):
        assert title in p.out
    p = script("ftrace_stats.py", SMP2, "--cpu-stats")
    assert p.returncode == 0 and "utilization_pct" in p.out and "==" not in p.out
    p = script("ftrace_stats.py", SMP2, "--switch-stats", "--comm", "KVM")
    assert _uniq(p.out) == {"CPU 1/KVM": 854, "CPU 0/KVM": 822}
    p = script("ftrace_stats.py", SMP2, "--wakeup-stats", "--format", "json")
    assert p.returncode == 0 and set(json.loads(p.out)) >= {"schema", "wakeups"}
    p = script("ftrace_stats.py", SMP2, "--wakeup-stats", "--top", "3")
    assert len(p.out.splitlines()) == 3
    p = script("ftrace_stats.py", "/no/such/file", "--wakeup-stats")
    assert p.returncode == 3 and p.err.count("\n") == 1 and "Traceback" not in p.err
