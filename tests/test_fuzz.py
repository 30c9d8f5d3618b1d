"""Bounded mutation fuzzing (tests/fuzzing.py has the long, sanitizer-backed runs)."""

import random

import pytest

from fuzzing import check_case, run


@pytest.mark.parametrize("seed", range(4))
def test_mutated_real_lines(seed):
    assert run(seed, n=1500) == 1500


def test_random_bytes():
    rnd = random.Random(7)
    for _ in range(300):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400)))
        check_case(data, {"chunk_size": rnd.choice([1, 5, 4096])})
