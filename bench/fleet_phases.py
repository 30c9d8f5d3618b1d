"""Where the time of ``ftfast fleet run`` goes, step by step, in one process: the imports, the
local cluster's start, the tasks, the shut-down; wall and CPU time of this process at each
step, and each worker's CPU time.  The fixed part (everything but the tasks) is what the
2-vs-1 worker ratio of bench/test_fleet.py depends on.

    python bench/fleet_phases.py --workers 2 TRACE...

(``--host-from`` is not needed: every trace gets a host of its own.)
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

T0 = time.perf_counter()
MARKS = []


def mark(name):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    MARKS.append((name, time.perf_counter() - T0, ru.ru_utime + ru.ru_stime))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    from ftrace_fast import cli  # noqa: F401
    mark("python + import ftrace_fast.cli")
    import dask.distributed  # noqa: F401
    mark("import dask.distributed")
    from dask.distributed import as_completed

    from ftrace_fast import fleet
    store = tempfile.mkdtemp(prefix="fleet-phases-")
    try:
        with fleet.client_for(a.workers) as c:
            mark("dask_setup, cluster and client")
            futs = c.map(fleet.analyse, a.traces, [f"h{i}" for i in range(len(a.traces))],
                         [store] * len(a.traces), pure=False)
            for i, f in enumerate(as_completed(futs)):
                assert f.result()["status"] == "done", f.result()
                if i == 0:
                    mark("first task done")
            mark("every task done")
            workers = c.run(time.process_time)
        mark("cluster closed")
    finally:
        shutil.rmtree(store, ignore_errors=True)
    prev_t = prev_c = 0.0
    for name, t, cpu in MARKS:
        print(f"{name:34s} wall {t:6.2f} s (+{t - prev_t:5.2f})   CPU {cpu:5.2f} s (+{cpu - prev_c:5.2f})")
        prev_t, prev_c = t, cpu
    n = len(a.traces)
    tot = sum(workers.values())
    print(f"workers' CPU: {', '.join(f'{v:.2f}' for v in workers.values())} s "
          f"({tot / n * 1e3:.0f} ms per trace, start-up included)")


if __name__ == "__main__":
    main()
