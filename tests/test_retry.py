"""Backoff: bounded, growing, jittered, reproducible with an injected random source."""

from __future__ import annotations

import random

import pytest

from sonic_fsm.core.retry import Backoff
from sonic_fsm.settings import Backend


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_ceiling_doubles_then_caps() -> None:
    b = Backoff(max_retries=10, base_seconds=0.5, max_seconds=8.0)
    assert [b.ceiling(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_delay_spans_half_to_full_ceiling() -> None:
    low = Backoff(base_seconds=1.0, max_seconds=100.0, rng=Fixed(0.0))
    high = Backoff(base_seconds=1.0, max_seconds=100.0, rng=Fixed(0.999999))
    assert low.delay(3) == pytest.approx(2.0)
    assert high.delay(3) == pytest.approx(4.0, rel=1e-5)


def test_delays_are_jittered_and_bounded() -> None:
    b = Backoff(max_retries=5, base_seconds=0.5, max_seconds=8.0, rng=random.Random(7))
    draws = [b.delay(4) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in draws)
    assert len({round(d, 6) for d in draws}) > 150  # not one fixed value


def test_same_seed_same_delays() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.delay(n) for n in range(1, 6)] == [b.delay(n) for n in range(1, 6)]


def test_exhausted_after_max_retries() -> None:
    b = Backoff(max_retries=3)
    assert [b.exhausted(n) for n in range(1, 6)] == [False, False, False, True, True]
    assert Backoff(max_retries=0).exhausted(1)


def test_huge_attempt_does_not_overflow() -> None:
    assert Backoff(max_seconds=8.0, rng=Fixed(0.5)).delay(10_000) == pytest.approx(6.0)


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        Backoff().delay(0)


def test_from_settings() -> None:
    s = Backend(max_retries=2, retry_base_seconds=0.25, retry_max_seconds=1.0)
    b = Backoff.from_settings(s, rng=Fixed(0.0))
    assert (b.max_retries, b.ceiling(1), b.ceiling(9)) == (2, 0.25, 1.0)
    assert b.exhausted(3) and not b.exhausted(2)


def test_total_wait_is_bounded() -> None:
    """A throttled start never waits longer in total than the sum of the ceilings."""
    b = Backoff(max_retries=5, base_seconds=0.5, max_seconds=8.0, rng=Fixed(0.999))
    total = sum(b.delay(n) for n in range(1, 6) if not b.exhausted(n))
    assert total <= 0.5 + 1 + 2 + 4 + 8
