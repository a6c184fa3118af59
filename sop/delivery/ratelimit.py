"""Sending at the platform's pace: per-API and per-member limits, on the injected clock.

Each limit is "at most ``limit`` sends in any window of ``per``", kept exactly with a sliding
log of send times. A classic token bucket (burst ``limit``, refill ``limit/per``) lets up to
twice the limit through in one window; for app messages WeCom silently drops whatever goes
beyond 30 a minute per member, so the sender must never exceed it, not just on average.

:class:`RateLimiter` keeps its state in memory, for one process; the sender uses
:class:`~sop.delivery.shared_limits.SharedRateLimiter`, which applies the same rule to
budgets kept in the database, so that every sender process spends from the same budgets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sop.delivery.channel import RateKey


@dataclass(frozen=True)
class Rate:
    limit: int
    per: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1 or self.per <= timedelta(0):
            raise ValueError(f"a rate needs limit >= 1 and a positive period, got {self}")


MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)

#: From the platform's documentation (WECOM.md "Sending"): per corp per API 10,000 calls a
#: minute and 150,000 an hour; app messages per receiving member 30 a minute, 1000 an hour.
DOCUMENTED: Mapping[str, tuple[Rate, ...]] = {
    "api": (Rate(10_000, MINUTE), Rate(150_000, HOUR)),
    "member:message/send": (Rate(30, MINUTE), Rate(1000, HOUR)),
}


@dataclass(frozen=True)
class RateLimits:
    """Rates by scope: an exact scope (``member:message/send``) wins over its prefix (``api``).

    Scopes without an entry are unlimited.
    """

    rates: Mapping[str, tuple[Rate, ...]] = field(default_factory=lambda: dict(DOCUMENTED))

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls({})

    def for_scope(self, scope: str) -> tuple[Rate, ...]:
        found = self.rates.get(scope)
        if found is None:
            found = self.rates.get(scope.partition(":")[0], ())
        return found


class SlidingWindow:
    """At most ``rate.limit`` events in any window of ``rate.per``."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._times: deque[datetime] = deque()

    def next_free(self, now: datetime) -> datetime | None:
        """None when an event may happen at ``now``, else the earliest time it may."""
        start = now - self.rate.per
        while self._times and self._times[0] <= start:
            self._times.popleft()
        if len(self._times) < self.rate.limit:
            return None
        return self._times[0] + self.rate.per

    def record(self, now: datetime) -> None:
        self._times.append(now)


class RateLimiter:
    """Hands out send permissions against every budget a send spends, all or nothing."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        self._limits = limits if limits is not None else RateLimits()
        self._windows: dict[tuple[str, str], list[SlidingWindow]] = {}

    def acquire(self, keys: Iterable[RateKey], now: datetime) -> datetime | None:
        """Spend one send from each budget and return None, or spend nothing and return
        the earliest time worth asking again."""
        windows = [w for key in keys for w in self._windows_of(key)]
        blocked = [t for t in (w.next_free(now) for w in windows) if t is not None]
        if blocked:
            return max(blocked)
        for window in windows:
            window.record(now)
        return None

    def _windows_of(self, key: RateKey) -> list[SlidingWindow]:
        found = self._windows.get((key.scope, key.key))
        if found is None:
            found = [SlidingWindow(rate) for rate in self._limits.for_scope(key.scope)]
            self._windows[(key.scope, key.key)] = found
        return found
