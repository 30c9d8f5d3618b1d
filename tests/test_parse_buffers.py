"""Large record buffers (mappings of their own past 256 KB) grow, merge and outlive the parser."""
import gc

import numpy as np

from ftrace_fast import _ftparse

LINE = (b"       CPU %d/KVM-%d    [%03d] d..2. %5d.%06d: sched_switch: prev_comm=CPU %d/KVM "
        b"prev_pid=%d prev_prio=120 prev_state=S ==> next_comm=swapper/%d next_pid=0 "
        b"next_prio=120\n")


def _text(n, t0=0):
    return b"".join(LINE % (i % 4, 2024 + i % 4, i % 8, (t0 + i) // 1000000, (t0 + i) % 1000000,
                            i % 4, 2024 + i % 4, i % 8) for i in range(n))


def _parse(text, **kw):
    p = _ftparse.Parser(**kw)
    p.feed(bytearray(text) + bytes(64), len(text), True)
    return p


def test_large_buffers_hold_every_record_and_outlive_their_parser():
    n = 20000  # 72-byte records: 1.4 MB, past the heap's share of the growth
    p = _parse(_text(n))
    out = p.finish()
    del p
    gc.collect()
    sw = out["events"]["sched_switch"]
    assert len(sw) == n
    assert np.array_equal(sw["prev_pid"], 2024 + np.arange(n) % 4)
    assert np.array_equal(sw["cpu"], np.arange(n) % 8)
    assert np.array_equal(sw["ts"], np.arange(n) * 1000)


def test_absorbed_large_parts_equal_one_parser():
    a, b = _text(15000), _text(15000, t0=15000)
    one = _parse(a + b).finish()
    first = _parse(a)
    second = _parse(b, later_part=True)
    assert first.absorb(second)
    two = first.finish()
    x, y = one["events"]["sched_switch"], two["events"]["sched_switch"]
    assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    assert one["comms"] == two["comms"] and one["lines"] == two["lines"] == 30000
