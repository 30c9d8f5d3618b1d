"""Whether a background thread pays: the same call with the thread and with its work run
inline, in one process on one loaded trace, pairs alternating which goes first, the derived
tables forgotten before each.  Both ways must give the same result.

- ``kvm``: ``kvm.diagnose`` with ``kvm._background`` (the exit pairing beside the scheduling
  model's walk in ``prepare``, the stolen-time and exit figures beside the run/wait figures
  in the warm-up); the findings must be equal.
- ``export``: ``export.write_tables(..., "parquet")`` with ``export._beside`` (the analysis
  tables beside the event tables' conversion and writes); the tables and row counts written
  (meta.json) must be equal.

    python bench/threads_ab.py kvm|export TRACE [--pairs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time


def _kvm(t):
    from ftrace_fast import kvm

    def inline(*fns):
        for fn in fns:
            fn()
        return lambda: None
    return kvm, "_background", inline, lambda d: repr(kvm.diagnose(t))


def _export(t):
    from ftrace_fast import export

    def inline(fn, name=None):
        value = fn()
        return lambda: value

    def run(d):
        meta = export.write_tables(t, os.path.join(d, "out"), "parquet")
        return json.dumps({k: meta[k] for k in ("events", "tables")}, sort_keys=True)
    return export, "_beside", inline, run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("kvm", "export"))
    ap.add_argument("trace")
    ap.add_argument("--pairs", type=int, default=8)
    args = ap.parse_args()

    import ftrace_fast
    t = ftrace_fast.load(args.trace, cache=False)
    module, attr, inline, run = (_kvm if args.what == "kvm" else _export)(t)
    ways = {"thread": getattr(module, attr), "inline": inline}
    times = {name: [] for name in ways}
    results = set()
    try:
        for i in range(args.pairs):
            for name in (("thread", "inline") if i % 2 == 0 else ("inline", "thread")):
                setattr(module, attr, ways[name])
                t.forget_derived()
                d = tempfile.mkdtemp()          # (written files are removed untimed)
                try:
                    c0, w0 = time.process_time(), time.perf_counter()
                    results.add(run(d))
                    times[name].append((time.perf_counter() - w0, time.process_time() - c0))
                finally:
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        setattr(module, attr, ways["thread"])
    if len(results) != 1:
        raise SystemExit("the two ways gave different results")
    for name, v in times.items():
        wall = [w for w, _ in v]
        print(f"{name:7s} wall median {statistics.median(wall):.3f} s "
              f"({' / '.join(f'{w:.2f}' for w in wall)}), "
              f"CPU median {statistics.median(c for _, c in v):.3f} s")


if __name__ == "__main__":
    main()
