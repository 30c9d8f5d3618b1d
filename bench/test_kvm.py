"""``ftfast diagnose`` on the generated 200 MB KVM-host trace, as a ratio to the plain load()
of the same file in the same run.  Target: under 2x.

Two figures:

- the command: ``ftfast diagnose FILE --format json -q`` as a whole process, against a
  process that imports ftrace_fast and only runs ``load(FILE)`` (the same interpreter start-up
  on both sides, both from cached bytecode); fastest of ROUNDS each.  This ratio is the
  target.
- in process: ``kvm.diagnose(trace)`` from a fresh trace (every cache dropped: the scheduling
  model, the topology, the exit pairs) against ``load()`` itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from benchlib import RESULTS, ROUNDS, run_timed, set_extra_info
from gen_trace import cache_dir

pytestmark = pytest.mark.benchmark(group="kvm")

_exe = shutil.which("ftfast", path=os.path.dirname(sys.executable))
FTFAST = [_exe] if _exe else [sys.executable, "-m", "ftrace_fast"]
LOAD_ONLY = [sys.executable, "-c", "import sys, ftrace_fast; ftrace_fast.load(sys.argv[1], progress=False)"]
# both processes run from cached bytecode, as an installed package does (see test_cli.py)
ENV = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(cache_dir(), "pycache"))
ENV.pop("PYTHONDONTWRITEBYTECODE", None)


def _run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


def _fastest(fn):
    times, r = [], None
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t0)
    return r, min(times)


def _fresh(trace):
    trace.forget_derived()


def test_diagnose(benchmark, bench_file, ftrace_fast):
    from ftrace_fast import kvm
    path = bench_file.path
    _, load_proc = _fastest(lambda: _run(LOAD_ONLY + [path]))
    out, seconds = run_timed(benchmark, lambda: _run(FTFAST + ["diagnose", path, "--format", "json", "-q"]))
    doc = json.loads(out)
    kinds = {f["kind"] for f in doc["findings"]}
    assert "vcpu_steal" in kinds, kinds      # the generated host overcommits its CPUs
    trace, load_s = _fastest(lambda: ftrace_fast.load(path, progress=False))

    def api():
        _fresh(trace)
        return kvm.diagnose(trace)
    found, api_s = _fastest(api)
    # the in-process findings are the command's, figure for figure
    assert json.loads(json.dumps(found)) == doc["findings"]
    r = {"seconds": seconds, "load_process_seconds": load_proc, "ratio": seconds / load_proc,
         "api_seconds": api_s, "load_seconds": load_s, "api_ratio": api_s / load_s,
         "findings": len(doc["findings"])}
    set_extra_info(benchmark, r)
    RESULTS["diagnose"] = r
