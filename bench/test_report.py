"""``ftfast report`` on the generated 200 MB KVM-host trace, as a ratio to the plain load() of
the same file in the same run (no target: the issue sets none; the figure is reported).

- the command: ``ftfast report FILE -o OUT.html -q`` as a whole process (load, the stats
  overview, diagnose, six charts, the page), against a process that imports ftrace_fast and
  only runs ``load(FILE)``; fastest of ROUNDS each.
- where it goes, in process, from one fresh load: the ``stats`` tables, ``kvm.diagnose``,
  each chart (drawn and encoded as PNG), the rendering of the page.
"""

from __future__ import annotations

import argparse
import os
import time
from html import escape

import pytest

from benchlib import RESULTS, run_timed, set_extra_info
from test_kvm import FTFAST, LOAD_ONLY, _fastest, _run

pytestmark = pytest.mark.benchmark(group="report")


def test_report(benchmark, bench_file, ftrace_fast, tmp_path):
    from ftrace_fast import cli, kvm, report
    path = bench_file.path
    out = str(tmp_path / "report.html")
    _, load_proc = _fastest(lambda: _run(LOAD_ONLY + [path]))
    _, seconds = run_timed(benchmark, lambda: _run(FTFAST + ["report", path, "-o", out, "-q"]))
    size = os.path.getsize(out)
    with open(out, encoding="utf-8") as f:
        page = f.read()
    assert page.count('<img src="data:image/png;base64,') == 6     # the host has kvm_exit
    # the stages, once each, from one fresh load in this process
    stages = {}
    t0 = time.perf_counter()
    args = cli.build_parser().parse_args(["report", path, "-o", out, "-q"])
    st = argparse.Namespace(**vars(args))
    for dest in cli.SECTIONS.values():
        setattr(st, dest, False)
    st.sort, st.latency_from, st.latency_sort, st.wakeups_from = None, "wakeup", "max", "waking"
    t, doc, tables = cli.stats_document(st)
    stages["load + stats tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = kvm.diagnose(t)
    stages["diagnose"] = time.perf_counter() - t0
    charts = []
    for kind in report.CHART_KINDS:
        t0 = time.perf_counter()
        charts += report.charts(t, kinds=(kind,))
        stages[f"chart {kind}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    html = report.render(t, tables=tables, findings=found, charts=charts, caveats=doc["caveats"])
    stages["render"] = time.perf_counter() - t0
    # the page of the command holds the findings computed here, in order
    real = [escape(f["explanation"], quote=True) for f in found if f["kind"] != "caveat"]
    assert real and [page.find(e) for e in real] == sorted(page.find(e) for e in real)
    assert min(page.find(e) for e in real) >= 0 and len(html) > 0 and len(charts) == 6
    r = {"seconds": seconds, "load_process_seconds": load_proc, "ratio": seconds / load_proc,
         "html_bytes": size, "stages": stages}
    set_extra_info(benchmark, {k: v for k, v in r.items() if k != "stages"})
    RESULTS["report"] = r
