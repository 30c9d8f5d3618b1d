"""The shared NumPy helpers (ftrace_fast._group) and human formatting (ftrace_fast._fmt)
against plain NumPy and hand-written answers."""

from __future__ import annotations

import numpy as np
import pytest

from ftrace_fast import _fmt, _group


@pytest.mark.parametrize("spread", [10, 1 << 40])
def test_grouping_helpers_equal_numpy_unique(spread):
    rng = np.random.default_rng(spread % 97)
    a = rng.integers(-3, spread, 5000)
    b = rng.integers(0, 7, 5000)
    u, inv = _group.dense(a)
    nu, ninv = np.unique(a, return_inverse=True)
    assert np.array_equal(u, nu) and np.array_equal(inv, ninv)
    (ga, gb), ginv = _group.group(a, b)
    pairs = np.unique(np.c_[a, b], axis=0)
    assert np.array_equal(ga, pairs[:, 0]) and np.array_equal(gb, pairs[:, 1])
    assert np.array_equal(ga[ginv], a) and np.array_equal(gb[ginv], b)
    # three columns whose ranges multiply past 2**62: grouped column by column instead
    c = rng.integers(-spread, spread, 5000)
    (ga, gb, gc), ginv = _group.group(a, b, c)
    triples = np.unique(np.c_[a, b, c], axis=0)
    assert [x.tolist() for x in (ga, gb, gc)] == triples.T.tolist()
    assert np.array_equal(gc[ginv], c) and np.array_equal(ga[ginv], a)
    assert [len(x) for x in _group.group(a[:0], b[:0])[0]] == [0, 0]


@pytest.mark.parametrize("pid_hi", [50, 1 << 30])
@pytest.mark.parametrize("with_negative", [False, True])
def test_pair_index_equals_numpy_unique_of_pairs(pid_hi, with_negative):
    # the lookup-table path (small pids) and the sorting path (large or negative ids)
    rng = np.random.default_rng(pid_hi % 89 + with_negative)
    comm = rng.integers(-1 if with_negative else 0, 30, 4000).astype(np.int32)
    pid = rng.integers(-2 if with_negative else 0, pid_hi, 4000).astype(np.int32)
    idx, pc, pp = _group.pair_index(comm, pid)
    pairs = sorted(set(zip(comm.tolist(), pid.tolist())),
                   key=lambda cp: (cp[0], cp[1] & 0xffffffff))
    assert list(zip(pc.tolist(), pp.tolist())) == pairs
    assert np.array_equal(pc[idx], comm) and np.array_equal(pp[idx], pid)
    e = _group.pair_index(comm[:0], pid[:0])
    assert [len(x) for x in e] == [0, 0, 0]


def test_unique_and_ids():
    x = np.array([5, 3, 3, 9, 0], np.int32)
    assert _group.unique(x).tolist() == [0, 3, 5, 9]
    assert _group.unique(np.array([1 << 40, -5, 1 << 40])).tolist() == [-5, 1 << 40]
    ids = _group.Ids(np.array([3, 7, 40]), zero=-2)
    assert ids(np.array([-1, 0, 3, 7, 8, 40, 99])).tolist() == [-1, -2, 0, 1, -1, 2, -1]
    big = _group.Ids(np.array([3, 1 << 28]), zero=-2)     # no lookup table: a binary search
    assert big.lut is None
    assert big(np.array([-1, 0, 3, 1 << 28, 5])).tolist() == [-1, -2, 0, 1, -1]


def test_sum_by_is_exact_past_float_precision():
    idx = np.array([0, 1, 0, 2])
    val = np.array([1, 2, 3, 4], np.int64)
    assert _group.sum_by(idx, val, 4).tolist() == [4, 2, 4, 0]
    huge = np.array([2**60 + 1, 2**60 + 3], np.int64)
    assert _group.sum_by(np.array([0, 0]), huge, 1).tolist() == [2**61 + 4]
    assert _group.sum_by(np.zeros(0, np.int64), np.zeros(0, np.int64), 2).tolist() == [0, 0]


def test_masks_and_clip():
    ts = np.array([10, 20, 30, 40])
    cpu = np.array([0, 1, 0, 2])
    assert _group.window_mask(ts, 20, 30).tolist() == [False, True, True, False]
    assert _group.window_mask(ts, None, None).all()
    assert _group.line_mask(ts, cpu, 15, None, {0, 2}).tolist() == [False, False, True, True]
    assert _group.line_mask(ts, cpu, cpus=[]).tolist() == [False] * 4
    pid = np.array([1, 2, 3, 4])
    comm = np.array([0, -1, 1, 2])
    ok = np.array([True, False, True])
    assert _group.task_mask(pid, comm, None, ok).tolist() == [True, False, False, True]
    assert _group.task_mask(pid, comm, [1, 2, 3], None).tolist() == [True, True, True, False]
    assert not _group.task_mask(pid, comm, None, np.zeros(0, bool)).any()
    a, b, d = _group.clip(15, 35, np.array([10, 20, 40]), np.array([20, 30, 50]))
    assert (a.tolist(), b.tolist(), d.tolist()) == ([15, 20, 35], [20, 30, 35], [5, 10, 0])


def test_dicts_and_records():
    arr = np.array([(1, 2.5), (2, np.nan)], dtype=[("a", "i4"), ("b", "f8")])
    assert _group.records(arr) == [{"a": 1, "b": 2.5}, {"a": 2, "b": None}]
    assert _group.records(arr, ["b"]) == [{"b": 2.5}, {"b": None}]
    assert _group.dicts({"x": np.array([5, 6, 7])}, np.array([2, 0])) == [{"x": 7}, {"x": 5}]


def test_human_formats():
    assert _fmt.ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert _fmt.ranges([]) == "-" and _fmt.ranges([3]) == "3"
    assert [_fmt.duration(v, "ns") for v in (None, 0, 999, 1500, 2_500_000, 3e9, -4e6)] == \
        ["?", "0 ns", "999 ns", "1.5 µs", "2.5 ms", "3 s", "-4 ms"]
    assert _fmt.duration(1234567, "ticks") == "1234567 ticks"
    assert _fmt.timestamp(1_000_123_456, "ns") == "1.000123"
    assert _fmt.timestamp(42, "ticks") == "42" and _fmt.timestamp(None, "ns") == "-"
