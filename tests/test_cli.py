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
from helpers import DATA, SCHEMA_COMMANDS, loads_checked, record_walks

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


def _json_command(args):
    """The command of an ``ftfast info|stats|diagnose ... --format json`` argument list, else None."""
    a = [str(x) for x in args]
    fmt = [a[i + 1] for i in range(len(a) - 1) if a[i] == "--format"]
    return a[0] if a and a[0] in SCHEMA_COMMANDS and fmt[-1:] == ["json"] else None


def ok(*args, **kw):
    """Run ftfast, assert success; every --format json document it writes is checked against
    docs/schema (tests/helpers.check_json), whichever test reads it."""
    p = run(*args, **kw)
    assert p.returncode == 0, p.err
    assert "Traceback" not in p.err
    command = _json_command(args) if kw.get("cmd") is None else None
    if command:
        loads_checked(command, p.out)
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


@pytest.fixture(scope="module")
def section_json():
    """Each section's --format json document (SMP4), once."""
    return {s: json.loads(ok("stats", SMP4, flag, "--format", "json").out)
            for s, flag in SECTION_FLAGS.items()}


def _json_rows(doc, section):
    """The JSON rows a table or csv block shows: wakeups tidy per (comm, pid) in csv."""
    if section == "latency":
        return doc["latency"]["tasks"]
    return doc[section]


def _cell(v):
    """A JSON value as the table prints it (floats to 0.1, null as -)."""
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def _table(text):
    """The one aligned table of a --format table output: (title, header, rows as dicts of
    cells), cut at the column boundaries its dashed rule shows (comms may hold spaces)."""
    lines = text.split("\n\n", 1)[1].rstrip("\n").split("\n")
    title, header, rule, body = lines[0], lines[1], lines[2], lines[3:]
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    bounds = list(zip(starts, starts[1:] + [None]))
    cut = lambda line: [line[a:b].strip() for a, b in bounds]  # noqa: E731
    names = cut(header)
    return title, names, [dict(zip(names, cut(line))) for line in body]


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
@pytest.mark.parametrize("section", sorted(SECTION_FLAGS))
def test_stats_section_formats(section, fmt, section_json):
    """Each section in each format: the table and csv rows are the JSON rows, cell by cell, in
    the same order (the table cut to --top's default 20, csv whole)."""
    p = ok("stats", SMP4, SECTION_FLAGS[section], "--format", fmt)
    assert p.err == ""
    doc = section_json[section]
    if fmt == "json":
        d = json.loads(p.out)
        assert {k for k in SECTION_FLAGS if k in d} == {section}
        assert d[section] and d == dict(doc, source=d["source"])
    elif fmt == "csv":
        blocks = _csv_blocks(p.out)
        want = {"latency": {"latency_global", "latency_tasks"}}.get(section, {section})
        assert set(blocks) == want
        if section == "latency":
            (g,) = blocks["latency_global"]
            assert g == {k: "" if doc["latency"][k] is None else str(doc["latency"][k]) for k in g}
            assert set(g) == {"source", "count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"}
            section = "latency_tasks"
        rows = blocks[section]
        jrows = _json_rows(doc, "latency" if section == "latency_tasks" else section)
        if section == "wakeups":
            jrows = [{"comm": r["comm"], "pid": x["pid"], "count": x["count"]} for r in jrows for x in r["pids"]]
        assert rows and len(rows) == len(jrows)
        for got, want in zip(rows, jrows):
            assert set(got) <= set(want) and len(got) >= 3
            assert got == {k: "" if want[k] is None else str(want[k]) for k in got}
        if section == "tasks":     # every flat column of the JSON rows
            assert set(rows[0]) == {k for k, v in jrows[0].items() if not isinstance(v, (dict, list))}
    else:
        title = {"tasks": "Tasks", "cpus": "CPUs", "wakeups": "Wakeups",
                 "switches": "Context switches", "latency": "Wakeup latency",
                 "migrations": "Migrations"}[section]
        assert p.out.count("\n\n") == 1  # one table
        head, names, rows = _table(p.out)
        assert head.startswith(title)
        jrows = _json_rows(doc, section)
        shown = min(len(jrows), 20)
        assert len(rows) == shown and (f"top 20 of {len(jrows)}" in head) == (len(jrows) > 20)
        assert len(names) >= 3
        for got, want in zip(rows, jrows):
            assert got == {k: _cell(want[k]) for k in names}
        if section == "latency":
            g = doc["latency"]
            assert f"{g['count']} samples" in head and f"max {_cell(g['max_ns'])}" in head


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
    (["stats", "{d}/trace.dat"], 3, "offset 13: expected long size 4 or 8, got 0"),
    (["filter", "{d}/notes.txt", "-o", "{d}/o.txt"], 3, "not ftrace text"),
    (["filter", "{d}/notes.txt", "-o", "-"], 3, "not ftrace text"),
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


def test_filter_streams_a_big_input_in_order(tmp_path):
    """Over PARALLEL_MIN_BYTES the copy is parsed in chunks on two threads and written as
    they are merged: the same text as one parser's, and a reader that stops early stops it."""
    from ftrace_fast import trace as trace_mod
    text = gzip.decompress(SMP2.read_bytes())
    big = tmp_path / "big.txt"
    big.write_bytes(text + text.split(b"\n", 12)[-1] * (trace_mod.PARALLEL_MIN_BYTES // len(text) + 2))
    out = tmp_path / "f.txt"
    ok("filter", big, "-o", out, "--comm", "KVM|qemu", "-q")
    want = ftrace_fast.load(big, keep_text=True, records=False, comm="KVM|qemu", threads=1,
                            warn=False)
    assert out.read_bytes() == b"".join(want.kept_text)
    p = subprocess.run(" ".join(FTFAST) + f" filter {big} -o - -q | head -3; "
                       "echo rc=${PIPESTATUS[0]}", shell=True, capture_output=True, env=ENV,
                       timeout=60, executable="/bin/bash")
    assert p.stderr == b"" and p.stdout.decode().splitlines()[-1] == "rc=0"


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
    assert p.returncode == 0 and set(loads_checked("stats", p.out)) >= {"schema", "wakeups"}
    p = script("ftrace_stats.py", SMP2, "--wakeup-stats", "--top", "3")
    assert len(p.out.splitlines()) == 3
    p = script("ftrace_stats.py", "/no/such/file", "--wakeup-stats")
    assert p.returncode == 3 and p.err.count("\n") == 1 and "Traceback" not in p.err


# -- hostile use (issue 11): output paths, exit codes, escapes, options ------------------------
# in-process (cli.main) where a subprocess would only add start-up time; tests/test_hostile.py
# runs the generated hostile inputs and the signals as subprocesses

import stat  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

from ftrace_fast import _ftsched, cli  # noqa: E402

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")   # what must not reach a terminal


def _main(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


def device(tmp_path, name):
    """A character device to write to (null or full): a node made in tmp_path when we are root
    (a regression that replaced the node would then only harm the test's copy), else the
    system's, which a non-root process cannot replace."""
    minor = {"null": 3, "full": 7}[name]
    if os.geteuid() != 0:
        return Path(f"/dev/{name}")
    p = tmp_path / f"dev-{name}"
    try:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        with open(p, "wb"):
            pass
    except OSError:
        pytest.skip("cannot make or open a device node here (a nodev file system)")
    return p


def _leftovers(d):
    return sorted(p.name for p in Path(d).iterdir() if p.name.endswith(".part"))


@pytest.fixture(scope="module")
def kvm_lines(tmp_path_factory):
    """What `filter --comm KVM` writes (the reference for the write-through cases)."""
    p = tmp_path_factory.mktemp("ref") / "kvm.txt"
    assert cli.main(["filter", str(SMP2), "--comm", "KVM", "-o", str(p), "-q"]) == 0
    return p.read_bytes()


def test_output_symlink_fifo_and_device_are_written_through(tmp_path, capsys, kvm_lines):
    """A symlink keeps pointing where it did and its target gets the bytes; a FIFO gets them
    and stays a FIFO; a device node stays the device (report -o /dev/null had replaced it with a
    regular file)."""
    target = tmp_path / "target.txt"
    target.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(target.name)
    assert _main(capsys, "filter", SMP2, "--comm", "KVM", "-o", link, "-q")[0] == 0
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_bytes() == kvm_lines
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("made.json")
    assert _main(capsys, "export", SMP2, "--perfetto", dangling, "-q")[0] == 0
    assert dangling.is_symlink() and json.loads((tmp_path / "made.json").read_text())

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    rc = _main(capsys, "filter", SMP2, "--comm", "KVM", "-o", fifo, "-q")[0]
    reader.join(30)
    assert rc == 0 and got == [kvm_lines] and stat.S_ISFIFO(os.stat(fifo).st_mode)

    null = device(tmp_path, "null")
    for argv in (("filter", SMP2, "-o", null), ("export", SMP2, "--perfetto", null)):
        rc, _, err = _main(capsys, *argv)
        assert rc == 0 and "Traceback" not in err
        assert stat.S_ISCHR(os.stat(null).st_mode)
    assert _leftovers(tmp_path) == []


def test_output_full_device_is_exit_4_not_wrote(tmp_path, capsys):
    """No space (ENOSPC at write or close) is exit 4 and one line, never 'wrote ...' and 0."""
    full = device(tmp_path, "full")
    for argv in (("filter", SMP2, "-o", full), ("export", SMP2, "--perfetto", full),
                 ("report", SMP2, "-o", full)):
        rc, _, err = _main(capsys, *argv)
        assert rc == 4 and _one_line(err) and "No space left on device" in err, (argv, err)
        assert "wrote" not in err and stat.S_ISCHR(os.stat(full).st_mode)
    link = tmp_path / "chart.png"
    link.symlink_to(full)
    rc, _, err = _main(capsys, "plot", SMP2, "--kind", "switches", "-o", link)
    assert rc == 4 and _one_line(err) and link.is_symlink()
    assert _leftovers(tmp_path) == []


def test_regular_output_keeps_its_mode_and_old_bytes_on_interrupt(tmp_path, capsys, kvm_lines,
                                                                  monkeypatch):
    out = tmp_path / "out.txt"
    out.write_bytes(b"old")
    out.chmod(0o640)
    assert _main(capsys, "filter", SMP2, "--comm", "KVM", "-o", out, "-q")[0] == 0
    assert out.read_bytes() == kvm_lines and stat.S_IMODE(out.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.txt"
    assert _main(capsys, "filter", SMP2, "-o", fresh, "-q")[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    # Ctrl-C after the events were written, before the JSON is closed: the old file stays
    from ftrace_fast import export

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(export.json, "dumps", interrupted)
    rc, _, err = _main(capsys, "export", SMP2, "--perfetto", out)
    assert rc == 130 and err == "ftfast: interrupted\n"
    assert out.read_bytes() == kvm_lines and _leftovers(tmp_path) == []


def test_every_exception_is_one_line_and_a_documented_code(capsys, monkeypatch):
    for cmd in ("stats", "info", "filter", "diagnose"):
        argv = [cmd, SMP2, "--pid", "9223372036854775808"] + (["-o", "-"] if cmd == "filter" else [])
        rc, _, err = _main(capsys, *argv)
        assert rc == 2 and _one_line(err) and "out of range" in err, (cmd, err)

    def oom(args):
        raise MemoryError
    monkeypatch.setattr(cli, "stats_document", oom)
    rc, _, err = _main(capsys, "stats", SMP2)
    assert rc == cli.EXIT_NOMEM == 6 and _one_line(err) and "out of memory" in err

    def bug(args):
        raise RuntimeError("boom")
    monkeypatch.setattr(cli, "stats_document", bug)
    rc, _, err = _main(capsys, "stats", SMP2)
    assert rc == 1 and _one_line(err) and "internal error: RuntimeError: boom" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_thresholds_must_be_finite(capsys, value):
    for cmd, opt in (("diagnose", "--steal-pct"), ("diagnose", "--min-wait-ms"),
                     ("report", "--busy-pct")):
        argv = [cmd, SMP2, f"{opt}={value}"] + (["-o", "-"] if cmd == "report" else [])
        rc, out, err = _main(capsys, *argv)
        assert rc == 2 and _one_line(err) and "must be a finite number" in err and out == ""


def test_top_has_one_rule_for_every_command(tmp_path, capsys):
    """--top 0 is all, a negative --top is refused by every command (stats and diagnose took
    -1 as all, plot, report and export refused it)."""
    for argv in (("stats", SMP2), ("diagnose", SMP2), ("report", SMP2, "-o", tmp_path / "r.html"),
                 ("export", SMP2, "--perfetto", tmp_path / "e.json"),
                 ("plot", SMP2, "--kind", "timeline", "-o", tmp_path / "p.png")):
        rc, out, err = _main(capsys, *argv, "--top", "-1")
        assert rc == 2 and err == "ftfast: --top must be 0 (all) or more\n" and out == "", argv
    assert list(tmp_path.iterdir()) == []
    rc, _, err = _main(capsys, "info", SMP2, "--errors", "-1")
    assert rc == 2 and _one_line(err)
    rc, out, _ = _main(capsys, "stats", SMP2, "--switch-stats", "--top", "0")
    doc = json.loads(_main(capsys, "stats", SMP2, "--switch-stats", "--format", "json")[1])
    assert rc == 0 and len(doc["switches"]) > 20
    lines = out.splitlines()
    dashes = next(i for i, ln in enumerate(lines) if ln.startswith("-----"))
    assert len(lines) - dashes - 1 == len(doc["switches"]) and "; top " not in out


ESC_TRACE = ("# tracer: nop\n#\n"
             "  a\x1b]0;pwn\x07b-100   [000] d..2.  1000.000001: sched_switch: prev_comm=a\x1b]0;pwn\x07b "
             "prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=x\x1b[2Jy next_pid=200 next_prio=120\n"
             "  x\x1b[2Jy-200   [001] d..2.  1000.000002: sched_waking: comm=a\x1b]0;pwn\x07b pid=100 "
             "prio=120 target_cpu=000\n"
             "  x\x1b[2Jy-200   [001] d..2.  1000.000003: sched_switch: prev_comm=x\x1b[2Jy prev_pid=200 "
             "prev_prio=120 prev_state=R ==> next_comm=a\x1b]0;pwn\x07b next_pid=100 next_prio=120\n"
             "bad \x1b[31m line\x00 here \x9b\n")


def test_control_characters_are_escaped_in_human_output_only(tmp_path, capsys):
    f = tmp_path / "esc.txt"
    f.write_text(ESC_TRACE)
    for argv in (("info", f), ("stats", f), ("diagnose", f), ("stats", f, "--format", "csv"),
                 ("info", f, "--strict"), ("filter", f, "-o", tmp_path / "o.txt")):
        rc, out, err = _main(capsys, *argv)
        assert "Traceback" not in err and not _CTRL.search(err), (argv, err)
        if "csv" not in argv:
            assert not _CTRL.search(out), (argv, out)
    rc, out, _ = _main(capsys, "stats", f)
    assert "a\\x1b]0;pwn\\x07b" in out and "x\\x1b[2Jy" in out
    doc = json.loads(_main(capsys, "stats", f, "--format", "json")[1])
    assert {r["comm"] for r in doc["switches"]} == {"a\x1b]0;pwn\x07b", "x\x1b[2Jy"}
    rc, out, _ = _main(capsys, "stats", f, "--format", "csv", "--switch-stats")
    assert "a\x1b]0;pwn\x07b" in out


def test_malformed_lines_are_counted_on_stderr_and_in_json(tmp_path, capsys):
    text = gzip.decompress(SMP2.read_bytes()).splitlines(keepends=True)
    text[30:30] = [b"garbage one\n", b"garbage two\n"]
    f = tmp_path / "bad.txt"
    f.write_bytes(b"".join(text))
    total = len(text)
    for argv in (("stats", f), ("diagnose", f), ("export", f, "--perfetto", tmp_path / "e.json"),
                 ("plot", f, "--kind", "cpu-util", "-o", tmp_path / "c.png")):
        rc, _, err = _main(capsys, *argv)
        notes = [ln for ln in err.splitlines() if "lines are malformed" in ln]
        assert rc == 0 and len(notes) == 1, (argv, err)
        assert f"note: 2 of {total} lines are malformed and were skipped (first: line 31:" in notes[0]
        assert _main(capsys, *argv, "-q")[2] == ""
    for cmd in ("stats", "diagnose"):
        doc = json.loads(_main(capsys, cmd, f, "--format", "json", "-q")[1])
        assert doc["lines"]["malformed"] == 2 and doc["lines"]["total"] == total
        assert sum(v for k, v in doc["lines"].items() if k != "total") == total


def test_comm_regex_is_evaluated_once_per_distinct_comm(capsys, monkeypatch):
    calls = Counter()
    real = re.compile

    class Counting:
        def __init__(self, rx):
            self.rx, self.pattern, self.flags = rx, rx.pattern, rx.flags

        def search(self, s, *a):
            calls[s] += 1
            return self.rx.search(s, *a)

    monkeypatch.setattr(cli.re, "compile", lambda p, flags=0: Counting(real(p, flags))
                        if p == "K(V)+M" else real(p, flags))
    for argv in (("stats", SMP2), ("diagnose", SMP2), ("stats", SMP4, "--kvm")):
        calls.clear()
        assert _main(capsys, *argv, "--comm", "K(V)+M")[0] == 0
        assert calls and max(calls.values()) == 1, (argv, calls.most_common(3))


def test_stdout_closed_is_exit_4():
    p = subprocess.run(["sh", "-c", " ".join(FTFAST) + f" stats {SMP2} >&-"], capture_output=True,
                       env=ENV, timeout=120)
    assert p.returncode == 4 and p.stderr == b"ftfast: cannot write the output: stdout is closed\n"


def test_export_to_a_closed_pipe_is_success():
    """As every other command: a reader (head) that closes the pipe early is no error."""
    p = subprocess.Popen(FTFAST + ["export", str(SMP2), "--perfetto", "-", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert p.stdout.read(10) == b'{"traceEve'
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(120) == 0 and err == b""


def test_main_leaves_the_warning_filters_as_it_found_them(capsys):
    before = list(warnings.filters)
    assert _main(capsys, "stats", SMP2, "--cpu-stats")[0] == 0
    assert warnings.filters == before


def test_stolen_keys_refuses_a_key_that_would_wrap():
    z32, z8, z64 = np.zeros(1, np.int32), np.zeros(1, np.int8), np.zeros(1, np.int64)
    off, perm = np.array([0, 1], np.int64), np.zeros(1, np.int64)
    args = (z32, z8, z64, z64 + 1, z32, 0, z64, z64 + 1, z32, perm, off)
    with pytest.raises(OverflowError, match="do not fit an int64 key"):
        _ftsched.stolen_keys(*args, 1 << 32)
    key, length = _ftsched.stolen_keys(*args, 1)
    assert key.tolist() == [2] and length.tolist() == [1]      # (0 * 3 + rank 2) * 1 + 0


def test_table_rows_are_made_only_when_shown(capsys):
    """The table format of a large trace shows the top rows: only those become dicts (a
    dict per task made stats 20x slower than info on 10**6 tasks)."""
    args = cli.build_parser().parse_args(["stats", str(SMP2)])
    t, doc, tables = cli.stats_document(args)
    rows = doc["tasks"]
    assert isinstance(rows, cli._Rows) and len(rows) > 3
    top = rows[:3]
    assert rows._all is None and [r["pid"] for r in top] == [r["pid"] for r in list(rows)[:3]]
    full = json.loads(json.dumps(doc, default=cli._py))
    assert full["tasks"] == [dict(r) for r in rows]


def _script_module(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "scripts" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scripts_follow_the_same_output_and_option_rules(tmp_path, capsys):
    """ftrace_visualize.py writes its charts as ftfast does (a symlink is followed, a full
    device is exit 4, nothing half-written); ftrace_stats.py refuses a negative --top."""
    vis = _script_module("ftrace_visualize.py")
    (tmp_path / "real.png").write_bytes(b"old")
    link = tmp_path / "kvm_smp2_small.cpu-util.png"
    link.symlink_to("real.png")
    assert vis.main([str(SMP2), "--outdir", str(tmp_path), "-q"]) == 0
    assert link.is_symlink() and (tmp_path / "real.png").read_bytes()[:4] == b"\x89PNG"
    full = device(tmp_path, "full")
    link.unlink()
    link.symlink_to(full)
    capsys.readouterr()
    rc = vis.main([str(SMP2), "--outdir", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 4 and _one_line(err) and err.startswith("ftrace_visualize.py: cannot write")
    assert _leftovers(tmp_path) == []
    st = _script_module("ftrace_stats.py")
    assert st.main([str(SMP2), "--top", "-1"]) == 2
    assert capsys.readouterr().err == "ftrace_stats.py: --top must be 0 (all) or more\n"


@pytest.mark.parametrize("restrict", [["--start", "0.1s"], ["--cpu", "1"], ["--end", "9999s"]])
def test_restricted_stats_walk_the_scheduler_events_once(capsys, monkeypatch, restrict):
    """--start/--end/--cpu figures read every table of the walk: one walk makes them with the
    sums (a walk for the sums and another for the tables doubled the cost), on a KVM host
    and on a trace without vCPUs alike; the figures are those of a restricted call."""
    walks = record_walks(monkeypatch)
    for path in (SMP2, DATA / "public" / "kunalb-panopticon-sched-events-function-header.txt"):
        walks.clear()
        rc, out, _ = _main(capsys, "stats", path, "--format", "json", "--no-cache", *restrict)
        assert rc == 0 and len(walks) == 1, (path, walks)
        doc = json.loads(out)
        t = ftrace_fast.load(path)
        sel = dict(start=doc["filters"].get("start"), end=doc["filters"].get("end"),
                   cpus=doc["filters"].get("cpus"))
        want = sched.task_summary(t, **{k: v for k, v in sel.items() if v is not None})
        got = {r["pid"]: (r["run_ns"], r["wait_ns"]) for r in doc["tasks"]}
        assert got == {int(r["pid"]): (int(r["run_ns"]), int(r["wait_ns"])) for r in want}
