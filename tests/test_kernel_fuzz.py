"""The analysis kernels of _ftsched besides the walk (the walk is fuzzed through whole traces in
test_fuzz.py and test_kvm.py): they run without bounds checks, so hostile arguments (unsorted,
negative, extreme or mismatched) must give a ValueError or a correct answer, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from ftrace_fast import _ftsched, _group

I64 = np.iinfo(np.int64)


def _ints(rng, n, lo, hi, dtype=np.int64):
    return rng.integers(lo, hi, n, dtype=np.int64).astype(dtype)


def _hostile(rng, n, dtype=np.int64):
    """Small, negative, huge and extreme values, in any order."""
    pools = [_ints(rng, n, -3, 5), _ints(rng, n, -10**6, 10**6), _ints(rng, n, I64.min // 4, I64.max // 4)]
    x = pools[int(rng.integers(0, 3))]
    if rng.random() < 0.3 and n:
        x[int(rng.integers(0, n))] = I64.max if dtype == np.int64 else np.iinfo(dtype).max
    return x.astype(dtype) if dtype == np.int64 else np.clip(x, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("seed", range(40))
def test_pair_exits_survives_hostile_columns(seed):
    rng = np.random.default_rng(seed)
    n = [int(rng.integers(0, 40)) for _ in range(3)]

    def cols(k, fields):
        c = {"pid": _ints(rng, n[k], -1, 6, np.int32), "prev": _ints(rng, n[k], -1, 6, np.int32),
             "next": _ints(rng, n[k], -1, 6, np.int32), "ts": _hostile(rng, n[k]),
             "line": np.sort(_ints(rng, n[k], 0, 200)) if rng.random() < 0.8 else _hostile(rng, n[k]),
             "cpu": _ints(rng, n[k], -1, 3, np.int32), "reason": _ints(rng, n[k], -1, 4, np.int32)}
        return [c[f] for f in fields]
    vp = np.unique(_ints(rng, int(rng.integers(0, 6)), 1, 8))
    args = cols(0, ("pid", "ts", "line", "cpu")) + cols(1, ("pid", "ts", "line", "cpu", "reason")) + \
        cols(2, ("prev", "next", "ts", "line", "cpu"))
    r = _ftsched.pair_exits(*args, _group.Ids(vp))
    if r is not None:
        nx = len(r["x_ts"])
        assert all(len(r[k]) == nx for k in r if k.startswith("x_"))
        assert np.isin(r["x_pid"], vp).all() and np.isin(r["g_pid"], vp).all()
        assert (r["g_end"] >= r["g_start"]).all()
    short = list(args)
    if n[1]:
        short[5] = short[5][:-1]       # kvm_exit's pid one shorter than its ts
        with pytest.raises(ValueError):
            _ftsched.pair_exits(*short, _group.Ids(vp))
    if len(vp) > 1:
        with pytest.raises(ValueError):
            _ftsched.pair_exits(*args, _group.Ids(vp[::-1].copy()))


@pytest.mark.parametrize("seed", range(40))
def test_join_sweep_and_pixels_survive_hostile_arguments(seed):
    rng = np.random.default_rng(100 + seed)
    n, m, ng = (int(rng.integers(0, 50)) for _ in range(3))
    key = _ints(rng, m, -2, ng + 2, np.int32)
    perm, off = _ftsched.by_key(key, ng)
    assert len(perm) == off[-1] == int(((key >= 0) & (key < ng)).sum())
    s, e = _hostile(rng, m), _hostile(rng, m)
    a, b = _hostile(rng, n), _hostile(rng, n)
    qk = _ints(rng, n, -2, ng + 2, np.int32)
    task = _ints(rng, n, -2, 6, np.int32)
    state = _ints(rng, n, -1, 3, np.int8)
    occ = _ints(rng, m, -3, 6, np.int32)
    keys, d = _ftsched.stolen_keys(task, state, a, b, qk, 1, s, e, occ, perm, off, 5)
    assert len(keys) == len(d)                       # unsorted groups: any answer, no crash
    if max(np.abs(np.r_[a, b, s, e, 0]).max(), 0) < 2**61:        # lengths that do not overflow
        assert (d > 0).all()
    bad = perm.copy()
    if len(bad):
        bad[0] = m + 5
        with pytest.raises(ValueError):
            _ftsched.stolen_keys(task, state, a, b, qk, 1, s, e, occ, bad, off, 5)
    with pytest.raises(ValueError):
        _ftsched.stolen_keys(task, state, a, b, qk, 1, s, e, occ[:-1] if m else np.zeros(1, np.int32),
                             perm, off, 5)
    hist, most = _ftsched.count_sweep(np.sort(_ints(rng, n, -100, 100)), _hostile(rng, m),
                                      int(rng.integers(-200, 200)), int(rng.integers(-200, 200)))
    assert 0 <= most < len(hist) and (hist >= 0).all()
    w = int(rng.integers(1, 40))
    nr, nc = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    acc = _ftsched.pixel_accumulate(_ints(rng, n, -1, nr + 2), _ints(rng, n, -1, nc + 2), a, b,
                                    int(rng.integers(-10**6, 10**6)), int(rng.integers(-10**6, 10**6)),
                                    nr, nc, w)
    assert acc.shape == (nr, nc, w) and np.isfinite(acc).all()
    with pytest.raises(ValueError):
        _ftsched.pixel_accumulate(_ints(rng, n + 1, 0, 1), _ints(rng, n, 0, 1), a, b, 0, 10, 1, 1, w)


@pytest.mark.parametrize("seed", range(40))
def test_switch_cells_survives_hostile_columns(seed):
    """switch_cells: None on a negative id, a pid past mark_n or too many cells; otherwise
    exactly the counts a plain NumPy tally of the same columns gives."""
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(0, 60))
    lo = -2 if rng.random() < 0.3 else 0
    nc, pc = _ints(rng, n, lo, 5, np.int32), _ints(rng, n, lo, 5, np.int32)
    npid, ppid = _ints(rng, n, lo, 40, np.int32), _ints(rng, n, lo, 40, np.int32)
    st = _ints(rng, n, 0, 1 << 12, np.int32)
    nkeep = (rng.random(n) < 0.7).astype(np.uint8) if rng.random() < 0.5 else np.zeros(0, np.uint8)
    pkeep = (rng.random(n) < 0.7).astype(np.uint8) if rng.random() < 0.5 else np.zeros(0, np.uint8)
    mark_n, max_cells = int(rng.integers(0, 50)), int(rng.integers(0, 400))
    letters, dbit = 0x7F, 0x2
    got = _ftsched.switch_cells(nc, npid, pc, ppid, st, nkeep, pkeep, letters, dbit, mark_n, max_cells)
    pids = np.concatenate([npid, ppid])
    if n and (min(nc.min(), pc.min(), pids.min()) < 0 or pids.max() >= mark_n):
        assert got is None
        return
    if got is None:
        ub = np.unique(pids)
        assert n == 0 or (int(max(nc.max(), pc.max())) + 1) * len(ub) > max_cells
        return
    ub, width, sw_in, vol, inv, dd = got
    assert (ub == np.unique(pids)).all() and width == len(ub)
    nk = np.ones(n, bool) if not len(nkeep) else nkeep.astype(bool)
    pk = np.ones(n, bool) if not len(pkeep) else pkeep.astype(bool)
    cell_n = nc.astype(np.int64) * width + np.searchsorted(ub, npid)
    cell_p = pc.astype(np.int64) * width + np.searchsorted(ub, ppid)
    size = len(sw_in)
    assert (sw_in == np.bincount(cell_n[nk], minlength=size)).all()
    vol_mask = pk & ((st & letters) != 0)
    assert (vol == np.bincount(cell_p[vol_mask], minlength=size)).all()
    assert (inv == np.bincount(cell_p[pk & ~((st & letters) != 0)], minlength=size)).all()
    assert (dd == np.bincount(cell_p[pk & ((st & dbit) != 0)], minlength=size)).all()
    if n:
        with pytest.raises(ValueError):
            _ftsched.switch_cells(nc[:-1], npid, pc, ppid, st, nkeep, pkeep, letters, dbit, mark_n,
                                  max_cells)
