"""Whether ``export.write_tables`` gains from building the analysis tables on a second thread
while the event tables are written: the same call with ``export._beside`` as it is and with
it running inline, in one process on one loaded trace, pairs alternating which goes first,
the derived tables forgotten before each.  Both ways must write the same tables with the
same row counts (meta.json).

    python bench/export_ab.py TRACE [--pairs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args()

    import ftrace_fast
    from ftrace_fast import export

    def inline(fn):
        value = fn()
        return lambda: value

    ways = {"thread": export._beside, "inline": inline}
    t = ftrace_fast.load(args.trace, cache=False)
    times = {name: [] for name in ways}
    written = set()
    for i in range(args.pairs):
        for name in (("thread", "inline") if i % 2 == 0 else ("inline", "thread")):
            export._beside = ways[name]
            t.forget_derived()
            d = tempfile.mkdtemp()
            try:
                c0, w0 = time.process_time(), time.perf_counter()
                meta = export.write_tables(t, os.path.join(d, "out"), "parquet")
                times[name].append((time.perf_counter() - w0, time.process_time() - c0))
            finally:
                shutil.rmtree(d, ignore_errors=True)
            written.add(json.dumps({k: meta[k] for k in ("events", "tables")}, sort_keys=True))
    export._beside = ways["thread"]
    if len(written) != 1:
        raise SystemExit("the two ways wrote different tables or row counts")
    for name, v in times.items():
        wall = [w for w, _ in v]
        print(f"{name:7s} wall median {statistics.median(wall):.3f} s "
              f"({' / '.join(f'{w:.2f}' for w in wall)}), "
              f"CPU median {statistics.median(c for _, c in v):.3f} s")


if __name__ == "__main__":
    main()
