"""Mutation fuzzing of the trace.dat reader: real ring-buffer pages mutated and fed to the
nogil page walker, record gather and merge, the load's streaming decode (RowWalker,
merge_place, Decoder: the code that runs without bounds checks), and
whole real .dat files mutated (headers, sections, compressed chunks, pages), truncated or
spliced, then loaded.  A case passes when it loads or raises InputError (one line), and the
walker's rows all lie inside the buffer.

In the test suite (test_tracedat.py) it runs a bounded number of cases.  Long runs under
AddressSanitizer / UBSan:

    FTFAST_SANITIZE=1 pip install --no-build-isolation -e .
    ASAN_OPTIONS=detect_leaks=0 \\
    LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) \\
        python tests/fuzzing_tracedat.py --pages 100000 --files 2000 --seed 1
"""

import argparse
import gzip
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ftrace_fast  # noqa: E402
from ftrace_fast import _ftdat  # noqa: E402
from ftrace_fast._datfile import cpu_data, open_dat  # noqa: E402
from helpers import DATA, corpus_dir  # noqa: E402

INTERESTING = [0, 1, 3, 4, 28, 29, 30, 31, 0x7f, 0x80, 0xff]


def seed_files(tmpdir):
    """The bundled LISA trace.dat and, when present, the corpus .dat files."""
    out = []
    p = Path(tmpdir) / "lisa-sched-load.dat"
    if not p.exists():
        with gzip.open(DATA / "public" / "lisa-sched-load.dat.gz") as f:
            p.write_bytes(f.read())
    out.append(p)
    c = corpus_dir()
    if c is not None and (c / "tracecmd" / "dat").is_dir():
        out += sorted((c / "tracecmd" / "dat").rglob("*.dat"))
    return out


def seed_pages(files, max_pages=400):
    """(page bytes, layout, DatFile) of real CPU buffers."""
    out = []
    for f in files:
        d = open_dat(f)
        hp = d.header_page
        common = d.formats.common()
        ct = common["common_type"]
        layout = (d.buffers[0].page_size, hp["timestamp"][0], hp["commit"][0], hp["commit"][1],
                  hp["data"][0], d.big_endian, ct.offset, ct.size, 8)
        for i in range(len(d.buffers[0].cpus)):
            data = cpu_data(d, d.path, d.buffers[0], i)
            ps = layout[0]
            for k in range(0, min(len(data), ps * (max_pages // 8)), ps):
                out.append((bytes(data[k:k + ps]), layout, d))
    return out


def mutate(rnd, data):
    b = bytearray(data)
    for _ in range(rnd.choice([1, 1, 2, 4, 16])):
        if not b:
            break
        i = rnd.randrange(len(b))
        r = rnd.random()
        if r < 0.4:
            b[i] = rnd.randrange(256)
        elif r < 0.6:
            b[i] = rnd.choice(INTERESTING)
        elif r < 0.8:
            b[i] ^= 1 << rnd.randrange(8)
        else:
            w = rnd.choice([2, 4, 8])
            v = rnd.choice([0, 0xffffffff, 0x7fffffff, (1 << 27) - 1, 1 << 31 | 1 << 30, 4096, 5000])
            b[i:i + w] = v.to_bytes(8, "little")[:w]
    return bytes(b)


def check_pages(data, layout):
    """Walk, gather and merge one buffer; every row must lie inside it."""
    buf = np.frombuffer(data, np.uint8)
    rows = _ftdat.walk_cpu(buf, *layout)
    ev = rows["kind"] >= 0
    offs, lens = rows["off"][ev], rows["length"][ev]
    assert ((offs >= 0) & (lens >= 0) & (offs + lens <= len(buf))).all()
    _ftdat.gather(buf, offs, lens, 0, 64)
    _ftdat.gather(buf, offs, lens, 8, 300)
    ids, first = _ftdat.intern_fixed(buf, offs, lens, 8, 16)
    assert len(ids) == len(offs) and (ids < max(len(first), 1)).all()
    _ftdat.intern_fixed(buf, offs, lens, 4090, 64)
    out = np.zeros(len(offs), np.dtype([("a", "i8"), ("b", "i4"), ("c", "i1")], align=True))
    specs = np.array([[4, 4, 1, 0, 8], [8, 8, 0, 8, 4], [60, 2, 1, 12, 1]], np.int64)
    _ftdat.fill_numbers(buf, offs, lens, out, specs, False)
    ts = rows["ts"].view(np.int64)
    half = len(ts) // 2
    _ftdat.merge_order(np.ascontiguousarray(ts), np.array([0, half, len(ts)], np.int64))


_KALLSYMS = {}


def check_decode(data, dat, cpus):
    """The load's own streaming decode (RowWalker, merge_place, Decoder, then the NumPy
    decode of the other events) over pages as `cpus` CPU streams, with the formats,
    cmdlines and kallsyms of the file they come from."""
    from ftrace_fast import tracedat
    from ftrace_fast._datfile import Buffer
    from ftrace_fast.trace import LOST_DTYPE, Stats, Trace
    ps = dat.buffers[0].page_size
    npages = max(len(data) // ps, 1)
    cut = [len(data)] if cpus == 1 else [ps * (npages // 2), len(data)]
    parts = [data[:cut[0]]] + ([data[cut[0]:]] if cpus > 1 else [])
    buf = Buffer("", dat.buffers[0].clock, ps, [(k, 0, len(p)) for k, p in enumerate(parts)],
                 False)
    ctx = tracedat._Context(dat, None)
    ctx.cpus = None
    ctx.kallsyms = _KALLSYMS.get(id(dat))      # parsed once per seed file
    # pieces of uneven sizes: the partial pages are carried over
    ctx.chunks = lambda _d, _p, _b, i: [parts[i][:ps + 7], parts[i][ps + 7:]]
    t = tracedat._decode_all(ctx, buf, 1, "case", pids=None, comm=None, start=None, end=None,
                             shift=None, Trace=Trace, Stats=Stats, LOST_DTYPE=LOST_DTYPE)
    _KALLSYMS[id(dat)] = ctx.kallsyms
    n = sum(len(a) for a in t.events.values())
    assert t.stats.events == n
    rows = n + len(t.lost) + t.stats.filtered + sum(t.dat.unknown_types.values())
    for a in t.events.values():
        assert (a["line"] >= 1).all() and (a["line"] <= rows).all()


def page_case(rnd, pages):
    k = rnd.choice([1, 1, 2, 3])
    picked = [rnd.choice(pages) for _ in range(k)]
    layout, dat = picked[0][1], picked[0][2]
    data = b"".join(mutate(rnd, p) if rnd.random() < 0.9 else p for p, _l, _d in picked
                    if _l == layout)
    if rnd.random() < 0.1:
        data = data[:rnd.randrange(len(data) + 1)]
    check_pages(data, layout)
    if rnd.random() < 0.25:         # the whole decode costs ~10 page cases
        check_decode(data, dat, rnd.choice([1, 2]))


def file_case(rnd, blobs, tmpdir):
    src = rnd.choice(blobs)
    b = bytearray(src)
    r = rnd.random()
    if r < 0.15:
        b = b[:rnd.randrange(len(b))]
    elif r < 0.25:
        other = rnd.choice(blobs)
        cut = rnd.randrange(len(b))
        b = b[:cut] + other[cut:cut + rnd.randrange(1, 65536)] + b[cut:]
    else:
        # mostly the metadata (first 64 KB holds the headers / options of small files)
        region = rnd.choice([min(len(b), 65536), len(b)])
        for _ in range(rnd.choice([1, 2, 4, 8])):
            i = rnd.randrange(region)
            b[i] = rnd.choice(INTERESTING + [rnd.randrange(256)])
    p = Path(tmpdir) / "case.dat"
    p.write_bytes(bytes(b))
    try:
        ftrace_fast.load(p, events=rnd.choice([None, ["sched_switch"], ["kvm_exit", "print"]]))
    except ftrace_fast.InputError as exc:
        assert "\n" not in str(exc)


def run(seed, pages=1000, files=20, tmpdir=None, verbose=False):
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = tmpdir or tmp
        seeds = seed_files(tmpdir)
        page_seeds = seed_pages(seeds)
        small = [f for f in seeds if os.path.getsize(f) < 4 << 20]
        blobs = [Path(f).read_bytes() for f in small[:6]]
        t0 = time.monotonic()
        for i in range(pages):
            page_case(rnd, page_seeds)
            if verbose and i % 5000 == 0:
                print(f"pages {i} {time.monotonic() - t0:.0f}s", flush=True)
        for i in range(files):
            file_case(rnd, blobs, tmpdir)
            if verbose and i % 100 == 0:
                print(f"files {i} {time.monotonic() - t0:.0f}s", flush=True)
    return pages + files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=100000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    n = run(a.seed, a.pages, a.files, verbose=True)
    print(f"ok: {n} cases ({a.pages} page cases, {a.files} file cases), seed {a.seed}")


if __name__ == "__main__":
    main()
