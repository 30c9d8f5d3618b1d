"""Run in a peer's own venv (real trappy 6.0.1, or real LISA): read a trace and write its
event frames as plain Python data, for tests/test_compat_peers.py and bench/test_compat.py.

    python compat_peer_frames.py trappy|lisa JOBS.json OUT.pickle

Both peers' line regexes are patched for kernel >= 5.15 text (5-character irq-info flags, and
for LISA flags holding a digit), as the comparison in issue 18 asks.  The frames are
{trace: {"seconds": s, "frames": {event: {"index": [...], "columns": {name: (dtype, [values])}}}}}
where seconds is the time the peer took to read the trace and build every frame.
"""

import pickle
import re
import sys
import time
import warnings


def _plain(df):
    cols = {}
    for c in df.columns:
        s = df[c]
        na = s.isna().to_numpy()
        vals = s.astype(object).tolist()
        if na.any():
            vals = [None if m else v for v, m in zip(vals, na)]
        vals = [v.item() if hasattr(v, "item") else v for v in vals]
        cols[str(c)] = (str(s.dtype), vals)
    return {"index": [float(x) for x in df.index], "columns": cols}


def run_trappy(path, events):
    import trappy
    import trappy.ftrace
    trappy.ftrace.SPECIAL_FIELDS_RE = re.compile(
        r"^\s*(?P<comm>.*)-(?P<pid>\d+)(?:\s+\(.*\))?\s+\[(?P<cpu>\d+)\](?:\s+.{4,5})?\s+"
        r"(?P<timestamp>[0-9]+(?P<us>\.[0-9]+)?): (\w+:\s+)+(?P<data>.+)")
    trappy.FTrace.disable_cache = True
    t0 = time.perf_counter()
    out = {}
    try:
        ft = trappy.FTrace(path, normalize_time=False, scope="custom", events=list(events))
        for ev in events:
            out[ev] = getattr(ft, ev).data_frame
    except Exception:
        # trappy refuses a whole trace for one event it cannot split: read them one by one
        for ev in events:
            try:
                ft = trappy.FTrace(path, normalize_time=False, scope="custom", events=[ev])
                out[ev] = getattr(ft, ev).data_frame
            except Exception as exc:
                out[ev] = exc
    return time.perf_counter() - t0, out


def run_lisa(path, events):
    from lisa.trace import HRTxtTraceParser, Trace
    HRTxtTraceParser.HEADER_REGEX = (
        r"\s*(?P<__comm>.+)-(?P<__pid>\d+)[^[]*\[(?P<__cpu>\d*)\]\s+(?:\S{4,5}\s+)?"
        r"(?P<__timestamp>\d+\.\d+): +(?P<__event>\w+):")
    t0 = time.perf_counter()
    tr = Trace(path, events=list(events), normalize_time=False, enable_swap=False)
    out = {}
    for ev in events:
        try:
            out[ev] = tr.df_event(ev)
        except Exception as exc:  # a peer's failure is a result too
            out[ev] = exc
    return time.perf_counter() - t0, out


def main(argv):
    """argv: LIB JOBS.json OUT.pickle; JOBS a list of [trace path, [events]]: one process reads
    every trace (the peers take seconds to import)."""
    import json
    lib, jobs, out_path = argv[1], json.load(open(argv[2])), argv[3]
    warnings.simplefilter("ignore")
    results = {}
    for path, events in jobs:
        try:
            seconds, frames = (run_trappy if lib == "trappy" else run_lisa)(path, events)
        except Exception as exc:
            results[path] = f"error: {type(exc).__name__}: {exc}"
            continue
        data = {"seconds": seconds, "frames": {}}
        for ev, df in frames.items():
            data["frames"][ev] = f"error: {type(df).__name__}: {df}" \
                if isinstance(df, Exception) else _plain(df)
        results[path] = data
    with open(out_path, "wb") as f:
        pickle.dump(results, f, protocol=4)


if __name__ == "__main__":
    main(sys.argv)
