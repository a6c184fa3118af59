"""When to try a transiently failed send again, and when to stop trying.

Exponential backoff with jitter: the n-th retry waits ``base * 2**(n-1)``, capped, times a
random factor in [0.5, 1), so rows that failed together (a platform hiccup) do not all come
back in the same instant. The random source is injected for reproducible tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: timedelta = timedelta(seconds=2)
    cap: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def gives_up(self, attempts: int) -> bool:
        """True when ``attempts`` sends have been made and none may follow."""
        return attempts >= self.max_attempts

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """How long to wait after the ``attempts``-th failed send."""
        exponent = min(max(attempts - 1, 0), 30)  # past the cap long before; no overflow
        backoff: timedelta = min(self.base * (2**exponent), self.cap)
        factor = 0.5 + rng.random() / 2
        return backoff * factor
