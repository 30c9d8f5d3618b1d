"""NumPy helpers shared by the analyses: dense ids and group keys, row masks, exact sums.

Every analysis groups event rows by small integers (pids, CPU numbers, comm ids, exit reasons)
and restricts them by time, CPU and task; these are the one implementation of each.  Integer
ids of a trace span small ranges, so most helpers take a sort-free path (a lookup table over
the range) and fall back to ``np.unique`` when the range is large.
"""

from __future__ import annotations

import math

import numpy as np


def unique(x):
    """The sorted distinct values of an integer array: ``np.unique(x)``, by a bincount when
    the values are small non-negative ints."""
    if not len(x):
        return x[:0]
    hi = int(x.max())
    if x.dtype.itemsize <= 4 and 0 <= int(x.min()) and hi < (1 << 24):
        return np.flatnonzero(np.bincount(x, minlength=hi + 1)).astype(x.dtype)
    return np.unique(x)


def dense(x):
    """(sorted distinct values, index of each element among them): ``np.unique(x,
    return_inverse=True)`` without a sort when the values span a small range."""
    x = np.asarray(x)
    if not len(x):
        return x[:0], np.zeros(0, np.intp)
    lo, hi = int(x.min()), int(x.max())
    if hi - lo < max(4 * len(x), 1 << 16) and hi - lo < (1 << 26):
        present = np.zeros(hi - lo + 1, bool)
        present[x - lo] = True
        rank = np.cumsum(present) - 1
        return (np.flatnonzero(present) + lo).astype(x.dtype), rank[x - lo]
    return np.unique(x, return_inverse=True)


def group(*cols):
    """Group rows by several integer columns: (a list of each group's values per column,
    the group of each row), groups in lexicographic order of the columns."""
    n = len(cols[0])
    if not n:
        return [np.asarray(c)[:0] for c in cols], np.zeros(0, np.intp)
    lo = [int(np.min(c)) for c in cols]
    span = [int(np.max(c)) - x + 1 for c, x in zip(cols, lo)]
    if math.prod(span) < (1 << 62):
        # one key over the columns' ranges: one dense pass instead of one per column
        key = np.zeros(n, np.int64)
        for c, x, w in zip(cols, lo, span):
            key = key * w + (np.asarray(c, np.int64) - x)
        uk, inv = dense(key)
        vals = []
        for c, x, w in zip(reversed(cols), reversed(lo), reversed(span)):
            vals.append((uk % w + x).astype(np.asarray(c).dtype))
            uk = uk // w
        return vals[::-1], inv
    key = np.zeros(n, np.int64)
    us = []
    for c in cols:
        u, i = dense(c)
        us.append(u)
        key = key * max(len(u), 1) + i
    uk, inv = dense(key)
    vals = []
    k = uk.copy()
    for u in reversed(us):
        vals.append(u[k % max(len(u), 1)] if len(u) else u[:0])
        k = k // max(len(u), 1)
    return vals[::-1], inv


def pair_index(a, b):
    """:func:`group` of two int32 columns, for the (comm id, pid) pairs of every event line:
    (group of each row, a of each group, b of each group), groups ordered by (a, b).  In int32
    through lookup tables when both are small and non-negative, as comm ids and pids are:
    every fresh int64 array of a million lines costs its first-touch page faults."""
    if len(b) and b.min() >= 0 and a.min() >= 0 and b.max() < 1 << 24:
        present = np.zeros(int(b.max()) + 1, bool)
        present[b] = True
        ub = np.flatnonzero(present)
        if (int(a.max()) + 1) * len(ub) < 1 << 26:
            lut = np.zeros(len(present), np.int32)
            lut[ub] = np.arange(len(ub), dtype=np.int32)
            key = lut[b]
            key += a.astype(np.int32, copy=False) * np.int32(len(ub))
            used = np.bincount(key) > 0
            ukey = np.flatnonzero(used)
            klut = np.zeros(len(used), np.int32)
            klut[ukey] = np.arange(len(ukey), dtype=np.int32)
            return klut[key], ukey // len(ub), ub[ukey % len(ub)]
    key = a.astype(np.int64) << 32 | (b.astype(np.int64) & 0xffffffff)
    ukey, inv = np.unique(key, return_inverse=True)
    p = ukey & 0xffffffff
    return inv.reshape(-1), ukey >> 32, np.where(p >= 1 << 31, p - (1 << 32), p)


class Ids:
    """Dense index of the sorted ids ``values`` (pids, CPU numbers): a function mapping ids (-1
    for none) to their index, -1 for ids not in it; id 0 maps to ``zero`` when it is not among
    them (the idle task).  The Cython kernels read the same table (``lut``: lut[clip(id, -1,
    hi) + 1], or None for ids too large for one: a binary search in ``values``)."""

    def __init__(self, values, zero=-1):
        self.values = np.ascontiguousarray(values, np.int32)
        self.zero = zero
        self.hi = int(self.values.max()) + 1 if len(self.values) else 1
        self.lut = None
        if self.hi < (1 << 24):
            self.lut = np.full(self.hi + 2, -1, np.int32)
            self.lut[self.values.astype(np.int64) + 1] = np.arange(len(self.values), dtype=np.int32)
            if self.lut[1] == -1:
                self.lut[1] = zero

    def __call__(self, x):
        x = np.asarray(x)
        if self.lut is not None:
            return self.lut[np.clip(x, -1, self.hi) + 1]
        values = self.values
        i = np.searchsorted(values, x)
        ok = (i < len(values)) & (values[np.minimum(i, len(values) - 1)] == x)
        out = np.where(ok, i, -1).astype(np.int32)
        out[(x == 0) & ~ok] = self.zero
        return out


def sum_by(idx, val, n):
    """Exact int64 sums of val grouped by idx.  bincount sums in float64, exact while every
    partial sum stays below 2**53 (104 days in ns); past that, np.add.at in int64."""
    if not len(idx):
        return np.zeros(n, np.int64)
    if int(val.max(initial=0)) * len(val) < 2**53 and int(val.min(initial=0)) >= 0:
        return np.bincount(idx, weights=val, minlength=n).astype(np.int64)
    out = np.zeros(n, np.int64)
    np.add.at(out, idx, val.astype(np.int64, copy=False))
    return out


def clip(start, end, a, b):
    """Intervals [a, b) clipped to [start, end] (None: open); returns (a', b', duration >= 0)."""
    if start is not None:
        a = np.maximum(a, start)
        b = np.maximum(b, start)
    if end is not None:
        a = np.minimum(a, end)
        b = np.minimum(b, end)
    return a, b, b - a


def window_mask(ts, start, end):
    """Rows with start <= ts <= end (None: open)."""
    k = np.ones(len(ts), bool)
    if start is not None:
        k &= ts >= start
    if end is not None:
        k &= ts <= end
    return k


def ints(values):
    """An int64 array of a list, tuple, set or array of ids (CPU numbers, pids)."""
    if isinstance(values, (set, frozenset)):
        return np.fromiter(values, np.int64, len(values))
    return np.asarray(values, np.int64)


def line_mask(ts, cpu, start=None, end=None, cpus=None):
    """Event rows inside [start, end] and on ``cpus`` (None: every CPU)."""
    k = window_mask(ts, start, end)
    if cpus is not None:
        k &= np.isin(cpu, ints(cpus))
    return k


def task_mask(pid, comm_id, pids=None, comm_ok=None):
    """Event rows naming one of ``pids`` (None: any) with a comm id whose ``comm_ok`` entry is
    true (None: any comm); a row without a comm (id -1) is then never kept."""
    k = np.ones(len(pid), bool)
    if pids is not None:
        k &= np.isin(pid, ints(pids))
    if comm_ok is not None:
        if len(comm_ok):
            k &= (comm_id >= 0) & comm_ok[np.clip(comm_id, 0, len(comm_ok) - 1)]
        else:
            k[:] = False
    return k


def dicts(cols, idx):
    """The rows ``idx`` of a table held as columns (name -> array), as dicts (NaN -> None):
    one tolist per column and one zip per row, not a Python test per cell."""
    names = list(cols)
    lists = []
    for n in names:
        v = np.asarray(cols[n])[idx]
        x = v.tolist()
        if v.dtype.kind == "f" and np.isnan(v).any():
            x = [None if e != e else e for e in x]
        lists.append(x)
    return [dict(zip(names, vals)) for vals in zip(*lists)]


def records(arr, names=None):
    """Rows of a structured array as dicts (NaN -> None)."""
    names = list(names or arr.dtype.names)
    return dicts({n: arr[n] for n in names}, np.arange(len(arr)))
