"""Bounded, jittered exponential backoff for replacing a failed session.

Pure: no clock, no sleeping. The engine asks how long to wait before attempt ``n`` and
whether it has run out of attempts; it does the waiting itself, on its own clock. The
random source is injected so tests (and the virtual-time benchmarks) are reproducible.

"Equal jitter" (a uniform draw between half the capped exponential and all of it) keeps a
fleet of clients that were throttled together from retrying together, while every retry
still waits at least half its step, so backing off really backs off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from sonic_fsm.core.config import Backend


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Attempt ``n`` (1 for the first retry) waits at most ``min(max, base * 2**(n-1))``."""

    max_retries: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 8.0
    rng: RandomSource = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("backoff delays must not be negative")

    @classmethod
    def from_settings(cls, backend: Backend, rng: RandomSource | None = None) -> Backoff:
        return cls(
            max_retries=backend.max_retries,
            base_seconds=backend.retry_base_seconds,
            max_seconds=backend.retry_max_seconds,
            rng=rng if rng is not None else random.Random(),
        )

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` may draw (no jitter)."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        # Cap the exponent so a huge attempt number cannot overflow a float.
        exponent = min(attempt - 1, 62)
        return min(self.max_seconds, self.base_seconds * float(2**exponent))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1, 2, ...): uniform in [ceiling/2, ceiling]."""
        top = self.ceiling(attempt)
        return top / 2 + self.rng.random() * top / 2

    def exhausted(self, attempt: int) -> bool:
        """True when retry ``attempt`` is beyond the budget: stop and report the error."""
        return attempt > self.max_retries


@dataclass
class Retries:
    """Failures in a row that each needed a replacement session (see
    ``sessions.count_failure``), and when the next replacement opens."""

    attempts: int = 0  # failures in a row
    last_at: float | None = None  # when the last one happened
    last_why: str | None = None  # what it was, ``Code: message`` or a timeout
    retry_at: float | None = None  # a replacement opens then


__all__ = ["Backoff", "RandomSource", "Retries"]
