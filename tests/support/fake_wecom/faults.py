"""Switchable faults of the fake, and the record of every call it received.

Faults are queued per API path and consumed by the calls that hit them, so a test says
exactly how many calls fail and how. A delay stays until it is switched off.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class Call:
    """One request as the fake received it, and what it answered.

    ``errcode`` is None when no JSON answer went out (an HTTP error status, a dropped
    connection, an unknown path).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    at: datetime
    errcode: int | None = None
    status: int | None = None
    dropped: bool = False


@dataclass(frozen=True)
class Fault:
    kind: str  # "errcode", "status", "drop" (nothing done) or "lost" (done, answer lost)
    value: int = 0
    errmsg: str | None = None


class FaultPlan:
    def __init__(self) -> None:
        self._queued: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self.delays: dict[str, float] = {}

    def add(self, path: str, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._queued[_key(path)].extend([fault] * times)

    def take(self, path: str) -> Fault | None:
        queue = self._queued.get(_key(path))
        return queue.popleft() if queue else None

    def delay(self, path: str, seconds: float) -> None:
        if seconds > 0:
            self.delays[_key(path)] = seconds
        else:
            self.delays.pop(_key(path), None)

    def delay_of(self, path: str) -> float:
        return self.delays.get(_key(path), 0.0)

    def clear(self) -> None:
        self._queued.clear()
        self.delays.clear()


def _key(path: str) -> str:
    return path.strip("/").removeprefix("cgi-bin/")
