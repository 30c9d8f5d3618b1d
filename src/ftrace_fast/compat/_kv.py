"""``key=value`` payload text split into typed columns with NumPy, the way trappy reads it.

trappy's rules (``trappy.base.Base.generate_data_dict``), reproduced over whole columns of
payloads at once instead of line by line:

- the data is the payload after any leading ``word:`` groups (``bputs: 0xffffs: my_event: a=1``
  gives ``a=1``); the words name the event a trace_printk / trace_marker line stands for;
- tokens are split on whitespace; a token with ``=`` is ``key=value`` (split at its first ``=``);
  a token without one continues the previous value when that value is a string (``comm=AsyncTask
  #2``), and is dropped when it is an integer (``runtime=262875 [ns]``);
- ``key={1 2 3}`` becomes ``key0=1 key1=2 key2=3``, padded with ``0`` up to the longest array of
  that key in the event; ``key={} `` is dropped;
- a value is an integer when Python's ``int(value, 0)`` reads it (decimal without leading
  zeros, ``0x``/``0o``/``0b``), else a string; a later duplicate key in a line wins.

Everything below is array arithmetic on one byte buffer holding the payloads; the Python loops
run over keys, distinct words and byte columns, never over lines.
"""

from __future__ import annotations

import numpy as np

_IDENT = np.zeros(256, bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _IDENT[_c] = True
#: blanks inside a line (the line separator b"\n" is handled apart)
_BLANK = np.zeros(256, bool)
for _c in b" \t\r\f\v":
    _BLANK[_c] = True
_DIGIT = np.zeros(256, bool)
_DIGIT[ord("0"):ord("9") + 1] = True
_HEXVAL = np.full(256, -1, np.int64)
for _i, _c in enumerate(b"0123456789"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEXVAL[_c] = 10 + _i
    _HEXVAL[_c - 32] = 10 + _i
NL = 10


class KVError(ValueError):
    """A line whose data starts with a word that is no ``key=value`` (trappy raises)."""

    def __init__(self, row):
        self.row = row
        super().__init__(row)


def index_array(col):
    """An integer column as a contiguous intp array: numpy's fancy indexing with a strided or
    int32 index (a field of the parser's records) takes a slow buffered path."""
    return np.ascontiguousarray(col, dtype=np.intp)


def gather(arena, offs, lens):
    """The payloads as one buffer, each followed by b"\\n", blank runs collapsed to one space.

    Returns (buf uint8, row_start int64): row i is buf[row_start[i]:row_start[i + 1] - 1]."""
    offs = np.asarray(offs, np.int64)
    lens = np.asarray(lens, np.int64)
    n = len(lens)
    starts = np.zeros(n, np.int64)
    if n > 1:
        np.cumsum(lens[:-1] + 1, out=starts[1:])
    total = int(lens.sum()) + n
    buf = np.empty(total, np.uint8)
    seps = starts + lens
    body = np.ones(total, bool)
    body[seps] = False
    src = np.arange(total, dtype=np.int64) + np.repeat(offs - starts, lens + 1)
    buf[body] = arena[src[body]]
    buf[seps] = NL
    blank = _BLANK[buf]
    # a blank that follows a blank goes; the rest become b" "
    keep = ~(blank & np.concatenate(([False], blank[:-1])))
    if not keep.all():
        newpos = np.cumsum(keep) - 1
        starts = newpos[starts]
        buf = buf[keep]
        blank = blank[keep]
    buf[blank] = ord(" ")
    return buf, starts


def _next_true(mask):
    """For each i, the least j >= i with mask[j] (len(mask) when none)."""
    n = len(mask)
    idx = np.where(mask, np.arange(n, dtype=np.int64), n)
    return np.minimum.accumulate(idx[::-1])[::-1]


def fixed_bytes(buf, start, end, width=None):
    """buf[start:end] of many spans as one 'S<width>' array (spans longer than width cut)."""
    start = np.asarray(start, np.int64)
    ln = np.asarray(end, np.int64) - start
    if width is None:
        width = int(ln.max()) if len(ln) else 1
    width = max(width, 1)
    cols = np.arange(width, dtype=np.int64)
    idx = start[:, None] + cols[None, :]
    ok = cols[None, :] < ln[:, None]
    mat = np.where(ok, buf[np.minimum(idx, len(buf) - 1)], 0).astype(np.uint8)
    return np.ascontiguousarray(mat).view(f"S{width}").ravel()


def prefix_words(buf, starts, max_words=6):
    """Leading ``word:`` groups of each row (each followed by a blank).

    Returns (data_start, words): data_start[i] is where row i's data begins; words is a list of
    (rows, word bytes array), one per group depth."""
    n = len(starts)
    nonident = _next_true(~_IDENT[buf])
    nonblank = _next_true(buf != ord(" "))
    pos = starts.copy()
    rows = np.arange(n, dtype=np.int64)
    words = []
    for _ in range(max_words):
        if not len(rows):
            break
        p = pos[rows]
        w_end = nonident[p]
        nxt = np.minimum(w_end + 1, len(buf) - 1)
        has = (w_end > p) & (w_end + 1 < len(buf))
        has &= (buf[np.minimum(w_end, len(buf) - 1)] == ord(":")) & (buf[nxt] == ord(" "))
        rows, p, w_end = rows[has], p[has], w_end[has]
        if not len(rows):
            break
        words.append((rows, fixed_bytes(buf, p, w_end)))
        pos[rows] = nonblank[np.minimum(w_end + 1, len(buf) - 1)]
    return pos, words


def int_cast(vals):
    """(is_int, int64 values, big) of an 'S' array under Python's int(v, 0) rules.

    big marks integers that do not fit in int64 (the caller converts those few with int())."""
    n = len(vals)
    w = vals.dtype.itemsize
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, bool)
    mat = np.frombuffer(vals.tobytes(), np.uint8).reshape(n, w)
    ln = np.count_nonzero(mat, axis=1)  # values hold no NUL bytes
    sign = (mat[:, 0] == ord("-")) | (mat[:, 0] == ord("+"))
    s = sign.astype(np.int64)
    body = ln - s
    cols = np.arange(w)
    inbody = (cols[None, :] >= s[:, None]) & (cols[None, :] < ln[:, None])
    rows = np.arange(n)
    c0 = mat[rows, np.minimum(s, w - 1)]
    c1 = mat[rows, np.minimum(s + 1, w - 1)]
    zeros = np.all((mat == ord("0")) | ~inbody, axis=1)
    # int("00", 0) is 0 but int("010", 0) fails: leading zeros only in an all-zero number
    dec = (body >= 1) & np.all(_DIGIT[mat] | ~inbody, axis=1) & ((c0 != ord("0")) | zeros)
    pref = (body >= 3) & (c0 == ord("0"))
    lower1 = c1 | 0x20
    base = np.where(lower1 == ord("x"), 16, np.where(lower1 == ord("o"), 8,
                    np.where(lower1 == ord("b"), 2, 0)))
    pref &= base > 0
    digits_from = s + np.where(pref, 2, 0)
    indig = (cols[None, :] >= digits_from[:, None]) & (cols[None, :] < ln[:, None])
    dv = _HEXVAL[mat]
    base_eff = np.where(pref, base, 10)
    okdig = (dv >= 0) & (dv < base_eff[:, None])
    pref &= np.all(okdig | ~indig, axis=1)
    is_int = dec | pref
    ndig = ln - digits_from
    maxdig = np.select([base_eff == 16, base_eff == 8, base_eff == 2], [15, 20, 62], 18)
    big = is_int & (ndig > maxdig)
    val = np.zeros(n, np.int64)
    dv = np.where(indig & is_int[:, None], dv, 0)
    for j in range(w):
        m = indig[:, j]
        if m.any():
            val = np.where(m, val * base_eff + dv[:, j], val)
    val = np.where(sign & (mat[:, 0] == ord("-")), -val, val)
    return is_int, val, big


def _py_int(b):
    return int(b.decode("ascii"), 0)


class Column:
    """One key's values over the rows: ints (int64) where is_int, else strings."""

    __slots__ = ("rows", "is_int", "ints", "strs", "big")

    def __init__(self, rows, is_int, ints, strs, big=None):
        self.rows, self.is_int, self.ints, self.strs, self.big = rows, is_int, ints, strs, big


def _decode(sarr):
    """'S' array -> object array of str, decoding each distinct value once."""
    if not len(sarr):
        return np.zeros(0, object)
    u, inv = np.unique(sarr, return_inverse=True)
    table = np.array([x.decode("utf-8", "backslashreplace") for x in u.tolist()], dtype=object)
    return table[inv]


def split(buf, starts, data_start):
    """key=value columns of every row's data [data_start[i], end of row i).

    Returns (ordered key names, {key: Column}, failed rows) where failed rows are rows whose data
    begins with a word that is not key=value (trappy's parse error)."""
    n = len(starts)
    total = len(buf)
    row_end = np.empty(n, np.int64)
    row_end[:-1] = starts[1:] - 1
    if n:
        row_end[-1] = total - 1
    # blank out each row's prefix words so the tokens start at its data
    sp = (buf == ord(" ")) | (buf == NL)
    d = np.zeros(total + 1, np.int64)
    np.add.at(d, starts, 1)
    np.add.at(d, np.minimum(data_start, total), -1)
    sp |= np.cumsum(d[:-1]) > 0
    prev_sp = np.concatenate(([True], sp[:-1]))
    next_sp = np.concatenate((sp[1:], [True]))
    t_start = np.flatnonzero(~sp & prev_sp)
    t_end = np.flatnonzero(~sp & next_sp) + 1
    nt = len(t_start)
    t_row = np.searchsorted(starts, t_start, side="right") - 1
    eqpos = _next_true(buf == ord("="))
    first_eq = eqpos[t_start] if nt else np.zeros(0, np.int64)
    has_eq = first_eq < t_end
    safe = np.minimum(first_eq + 1, total - 1)
    ti = np.arange(nt, dtype=np.int64)
    close = buf[t_end - 1] == ord("}") if nt else np.zeros(0, bool)
    brace = has_eq & (buf[safe] == ord("{"))
    # key={} followed by more data is dropped (trappy removes "key={} ")
    empty_arr = brace & (t_end == first_eq + 3) & close
    nxt_same = np.zeros(nt, bool)
    if nt > 1:
        nxt_same[:-1] = t_row[1:] == t_row[:-1]
    drop = empty_arr & nxt_same
    opening = brace & ~empty_arr & (t_end > first_eq + 2)
    # an array needs its closing brace on the same line
    close_idx = np.where(close, ti, nt)
    next_close = np.minimum.accumulate(close_idx[::-1])[::-1] if nt else close_idx
    nc_row = np.where(next_close < nt, t_row[np.minimum(next_close, max(nt - 1, 0))], -1)
    opening &= nc_row == t_row
    last_open = np.maximum.accumulate(np.where(opening, ti, -1)) if nt else ti
    close_before = np.concatenate(([-1], np.maximum.accumulate(np.where(close, ti, -1))[:-1])) \
        if nt else ti
    in_arr = (last_open >= 0) & (close_before < last_open)
    in_arr &= t_row[np.maximum(last_open, 0)] == t_row
    in_arr &= ~drop
    scalar = has_eq & ~in_arr & ~drop
    cont = ~has_eq & ~in_arr
    keyish = scalar | in_arr
    last_key = np.maximum.accumulate(np.where(keyish, ti, -1)) if nt else ti
    lk = np.maximum(last_key, 0)
    # an empty key ("=x") is no previous key for trappy: a bare word after it fails the line
    owner_ok = (last_key >= 0) & (t_row[lk] == t_row) & (in_arr[lk] | (first_eq[lk] > t_start[lk]))
    failed_rows = np.unique(t_row[cont & ~owner_ok])
    cont &= owner_ok

    # scalar keys: first value token, then continuations for string values
    s_idx = np.flatnonzero(scalar)
    s_val = fixed_bytes(buf, first_eq[s_idx] + 1, t_end[s_idx])
    s_isint, s_int, s_big = int_cast(s_val)
    is_str_owner = np.zeros(nt, bool)
    is_str_owner[s_idx[~s_isint]] = True
    c_idx = np.flatnonzero(cont)
    c_owner = last_key[c_idx]
    c_owner_str = is_str_owner[c_owner]
    vend = t_end.copy()
    if len(c_idx):
        np.maximum.at(vend, c_owner[c_owner_str], t_end[c_idx[c_owner_str]])
    rec_key_start = [t_start[s_idx]]
    rec_key_end = [first_eq[s_idx]]
    rec_row = [t_row[s_idx]]
    rec_pos = [s_idx * 4096]
    rec_elem = [np.full(len(s_idx), -1, np.int64)]
    rec_isint = [s_isint]
    rec_int = [s_int]
    rec_big = [s_big]
    str_sel = ~s_isint
    rec_vstart = [first_eq[s_idx] + 1]
    rec_vend = [np.where(str_sel, vend[s_idx], t_end[s_idx])]

    # array elements
    a_idx = np.flatnonzero(in_arr)
    if len(a_idx):
        op = last_open[a_idx]
        elem = a_idx - op
        vs = np.where(a_idx == op, first_eq[a_idx] + 2, t_start[a_idx])
        ve = t_end[a_idx] - close[a_idx]
        a_val = fixed_bytes(buf, vs, ve)
        a_isint, a_int, a_big = int_cast(a_val)
        rec_key_start.append(t_start[op])
        rec_key_end.append(first_eq[op])
        rec_row.append(t_row[a_idx])
        rec_pos.append(op * 4096 + elem)
        rec_elem.append(elem)
        rec_open = op
        rec_isint.append(a_isint)
        rec_int.append(a_int)
        rec_big.append(a_big)
        rec_vstart.append(vs)
        rec_vend.append(ve)
    key_start = np.concatenate(rec_key_start)
    key_end = np.concatenate(rec_key_end)
    row = np.concatenate(rec_row)
    pos = np.concatenate(rec_pos)
    elem = np.concatenate(rec_elem)
    isint = np.concatenate(rec_isint)
    ival = np.concatenate(rec_int)
    big = np.concatenate(rec_big)
    vstart = np.concatenate(rec_vstart)
    vend_all = np.concatenate(rec_vend)
    if not len(row):
        return [], {}, failed_rows
    kb = fixed_bytes(buf, key_start, key_end)
    base_u, base_id = np.unique(kb, return_inverse=True)
    base_id = base_id.ravel()
    base_names = [b.decode("utf-8", "backslashreplace") for b in base_u.tolist()]
    is_arr = elem >= 0

    # pad arrays with 0 up to the longest array of the key
    if is_arr.any():
        arr_rows = row[is_arr]
        arr_key = base_id[is_arr]
        arr_elem = elem[is_arr]
        nb = len(base_names)
        longest = np.zeros(nb, np.int64)
        np.maximum.at(longest, arr_key, arr_elem + 1)
        # one group per array written in a row (a key may hold two arrays in one row)
        grp = rec_open
        g_u, g_first = np.unique(grp, return_index=True)
        g_count = np.zeros(len(g_u), np.int64)
        np.add.at(g_count, np.searchsorted(g_u, grp), 1)
        g_key = arr_key[g_first]
        g_row = arr_rows[g_first]
        missing = longest[g_key] - g_count
        if missing.sum() > 0:
            rep = np.repeat(np.arange(len(g_u)), missing)
            off = np.arange(len(rep)) - np.repeat(np.cumsum(missing) - missing, missing)
            p_elem = g_count[rep] + off
            first_rec = np.flatnonzero(is_arr)[g_first[rep]]
            row = np.concatenate((row, g_row[rep]))
            base_id = np.concatenate((base_id, g_key[rep]))
            elem = np.concatenate((elem, p_elem))
            pos = np.concatenate((pos, (pos[first_rec] // 4096) * 4096 + p_elem))
            isint = np.concatenate((isint, np.ones(len(rep), bool)))
            ival = np.concatenate((ival, np.zeros(len(rep), np.int64)))
            big = np.concatenate((big, np.zeros(len(rep), bool)))
            vstart = np.concatenate((vstart, np.zeros(len(rep), np.int64)))
            vend_all = np.concatenate((vend_all, np.zeros(len(rep), np.int64)))

    # final key = (base key, element); a later duplicate in a row wins, the first fixes order
    nb = len(base_names)
    fkey = base_id.astype(np.int64) * 1_000_003 + (elem + 1)
    fk_u, fk_id = np.unique(fkey, return_inverse=True)
    fk_id = fk_id.ravel()
    names = []
    for v in fk_u.tolist():
        b, e = divmod(v, 1_000_003)
        names.append(base_names[b] if e == 0 else f"{base_names[b]}{e - 1}")
    first_pos = np.full(len(fk_u), np.iinfo(np.int64).max, np.int64)
    first_row = np.full(len(fk_u), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first_row, fk_id, row)
    # order of first appearance: by the first row holding the key, then its place in that row
    at_first = row == first_row[fk_id]
    np.minimum.at(first_pos, fk_id[at_first], pos[at_first])
    order_keys = np.lexsort((first_pos, first_row))
    o = np.lexsort((pos, fk_id, row))
    last = np.ones(len(o), bool)
    last[:-1] = (row[o][1:] != row[o][:-1]) | (fk_id[o][1:] != fk_id[o][:-1])
    keep = o[last]
    cols = {}
    fk_keep = fk_id[keep]
    srt = np.argsort(fk_keep, kind="stable")
    keep = keep[srt]
    bounds = np.searchsorted(fk_keep[srt], np.arange(len(fk_u) + 1))
    for k in range(len(fk_u)):
        sel = keep[bounds[k]:bounds[k + 1]]
        r = row[sel]
        ii = isint[sel]
        strs = None
        if not ii.all():
            s_sel = sel[~ii]
            strs = _decode(fixed_bytes(buf, vstart[s_sel], vend_all[s_sel]))
        bg = big[sel]
        bigvals = None
        if bg.any():
            b_sel = sel[bg]
            bigvals = [_py_int(x) for x in fixed_bytes(buf, vstart[b_sel], vend_all[b_sel]).tolist()]
        cols[names[k]] = Column(r, ii, ival[sel], strs, (np.flatnonzero(bg), bigvals) if bigvals else None)
    ordered = [names[k] for k in order_keys.tolist()]
    return ordered, cols, failed_rows


def column_values(col, n):
    """(values, kind) of a Column over n rows laid out as pandas lays out a list of dicts:
    int64 when every row holds an int, float64 with NaN when ints miss rows, else object
    (ints as int, strings as str, missing rows NaN)."""
    full = len(col.rows) == n
    if col.big is None and col.strs is None:
        if full:
            out = np.empty(n, np.int64)
            out[col.rows] = col.ints
            return out
        out = np.full(n, np.nan)
        out[col.rows] = col.ints
        return out
    out = np.full(n, np.nan, dtype=object)
    vals = col.ints.astype(object)
    if col.strs is not None:
        vals[~col.is_int] = col.strs
    if col.big is not None:
        idx, bigvals = col.big
        for i, v in zip(idx.tolist(), bigvals):
            vals[i] = v
    out[col.rows] = vals
    return out
