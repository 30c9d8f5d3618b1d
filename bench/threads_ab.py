"""Whether kvm's background threads pay: ``kvm.diagnose`` with them (the exit pairing beside
the scheduling model's walk in ``prepare``, the stolen-time and exit figures beside the
run/wait figures in the warm-up) against the same work inline, in one process on one loaded
trace.  Each round forgets the derived tables first; the two ways alternate which goes first,
and their findings must be equal.

    python bench/threads_ab.py TRACE [--pairs 8]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--pairs", type=int, default=8)
    args = ap.parse_args()

    import ftrace_fast
    from ftrace_fast import kvm

    def inline(*fns):
        for fn in fns:
            fn()
        return lambda: None

    ways = {"threads": kvm._background, "inline": inline}
    t = ftrace_fast.load(args.trace, cache=False)
    times = {name: [] for name in ways}
    findings = None
    for i in range(args.pairs):
        for name in (("threads", "inline") if i % 2 == 0 else ("inline", "threads")):
            kvm._background = ways[name]
            t.forget_derived()
            c0, w0 = time.process_time(), time.perf_counter()
            out = repr(kvm.diagnose(t))
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
            findings = out if findings is None else findings
            if out != findings:
                raise SystemExit("the two ways gave different findings")
    kvm._background = ways["threads"]
    for name, v in times.items():
        wall = [w for w, _ in v]
        cpu = [c for _, c in v]
        print(f"{name:8s} wall median {statistics.median(wall):.3f} s "
              f"({' / '.join(f'{w:.2f}' for w in wall)}), "
              f"CPU median {statistics.median(cpu):.3f} s")


if __name__ == "__main__":
    main()
