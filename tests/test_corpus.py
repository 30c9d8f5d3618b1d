"""Real logs: the fixtures in tests/data and, when present, all of ../shared/corpus.

Every file loads with zero malformed lines, except lines that truly are damaged, listed in
DAMAGED with the reason.  Each file is also loaded in small chunks and must give identical
arrays (chunk invariance on real text).
"""

import gzip
import warnings

import numpy as np
import pytest

import ftrace_fast
from helpers import DATA, arrays_equal, corpus_dir, rows

CORPUS = corpus_dir()

# file name -> (malformed line numbers, why).  Nothing else in the corpus may be malformed.
DAMAGED = {
    # the poster wrapped every event over two lines: a prefix ending in 'ts:' and an indented
    # 'event: payload' line; neither half is an event.
    "qemu-devel-kvm-pckbd-wrapped-lines-trace-marker.txt": (None, "wrapped by the mail poster"),
    # trappy's fixture ends in a sched_switch cut after prev_pid (no prev_prio... next_prio)
    "trappy-tests-tracecmd-idle-unsorted-tabs.txt": ([17], "last line truncated in the source"),
}


def _files():
    out = sorted((DATA / "public").glob("*.txt"))
    out += sorted(DATA.glob("*.txt.gz"))
    if CORPUS is not None:
        out += sorted(CORPUS.glob("*/*.txt")) + sorted(CORPUS.glob("*/*.txt.gz"))
    return out


def _load(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(path, **kw)


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_loads_with_no_malformed_lines(path):
    t = _load(path)
    s = t.stats
    assert s.check()
    assert s.lines == s.events + s.headers + s.filtered + s.malformed
    damaged = DAMAGED.get(path.name)
    if damaged is None:
        assert s.malformed == 0, [e.message for e in t.errors[:5]]
    elif damaged[0] is not None:
        assert [e.line for e in t.errors] == damaged[0]
    else:
        # every line is either a header or a damaged half of a wrapped event
        assert s.events == 0 and s.malformed == s.lines - s.headers
    # every event line is accounted for by its line number, once
    lines = np.concatenate([a["line"] for a in t.events.values()]) if t.events else np.zeros(0)
    assert len(np.unique(lines)) == len(lines) == s.events
    assert lines.size == 0 or (lines.min() >= 1 and lines.max() <= s.lines)
    # line count equals the text's own
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    assert s.lines == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@pytest.mark.parametrize("path", [p for p in _files() if p.stat().st_size < 300_000],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_chunk_invariance_on_real_files(path):
    whole = _load(path)
    for chunk in (7, 4096):
        arrays_equal(whole, _load(path, chunk_size=chunk))


def test_tracecmd_multifile_fixture():
    t = _load(DATA / "public" / "tracecmd-manpage-record-examples-multifile.txt")
    assert t.stats.malformed == 0
    fe = rows(t, "funcgraph_exit")
    assert fe[0]["func"] == "do_IRQ" and fe[0]["duration_ns"] == 36358


def test_no_trailing_newline_fixture():
    t = _load(DATA / "public" / "trappy-tests-no-trailing-newline.txt")
    assert (t.stats.lines, t.stats.events, t.stats.malformed) == (10, 10, 0)
    assert not t.stats.truncated_last_line


def test_tabs_and_numeric_states_fixture():
    t = _load(DATA / "public" / "trappy-tests-tracecmd-idle-unsorted-tabs.txt")
    sw = rows(t, "sched_switch")
    assert [(r["prev_comm"], r["prev_state"]) for r in sw[:2]] == [("trace-cmd", "P"), ("swapper/6", "S")]
    assert t.errors[0].message.startswith("line 17: sched_switch: expected 'prev_prio='")


@pytest.mark.skipif(CORPUS is None, reason="../shared/corpus not present")
def test_corpus_kvm_groundtruth_files_have_every_qemu_thread():
    import json
    for gt in sorted((CORPUS / "kvm").glob("*.groundtruth.json")):
        t = _load(gt.with_name(gt.name.replace(".groundtruth.json", ".txt.gz")))
        truth = json.loads(gt.read_text())
        threads = truth.get("threads") or truth.get("tasks") or {}
        pids = set(t.events["sched_switch"]["prev_pid"].tolist()) | set(
            t.events["sched_switch"]["next_pid"].tolist())
        tids = [int(k) for k in threads] if isinstance(threads, dict) else [
            int(x.get("tid", x.get("pid"))) for x in threads]
        assert tids and all(tid in pids for tid in tids if _ran(threads, tid)), gt.name


def _ran(threads, tid):
    rec = threads[str(tid)] if isinstance(threads, dict) else next(
        x for x in threads if int(x.get("tid", x.get("pid"))) == tid)
    return rec.get("slices", 1) > 0
