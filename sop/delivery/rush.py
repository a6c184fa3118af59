"""Staying off the platform's busiest seconds: app messages are not sent at :00 and :30.

WeCom asks senders to avoid sending exactly on the hour and the half hour (WECOM.md,
"Sending"): everybody's scheduled reminders go out then. A playbook step "at 09:00" would
otherwise land right in that rush. The sender nudges an app message that would go out in the
first ``seconds`` of a :00 or :30 minute to the end of that stretch plus a small random jitter
of up to ``jitter`` seconds, on the injected clock, so nudged rows spread out instead of all
arriving together at :05. The nudge moves ``due_at`` only: the row keeps its attempts and
spends no rate budget until it is really sent.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sop.delivery.messages import STAFF_APP

#: The minutes of every hour whose first seconds are avoided.
RUSH_MINUTES = (0, 30)


@dataclass(frozen=True)
class RushAvoidance:
    """Which rows avoid the rush (``channels``), how long it lasts, how far nudges spread."""

    seconds: float = 5.0
    jitter: float = 10.0
    channels: Collection[str] = field(default_factory=lambda: frozenset({STAFF_APP}))

    def __post_init__(self) -> None:
        if not 0 < self.seconds < 60 or self.jitter < 0:
            raise ValueError(
                "rush avoidance needs 0 < seconds < 60 and jitter >= 0,"
                f" got seconds={self.seconds}, jitter={self.jitter}"
            )

    def nudge(self, channel: str, now: datetime, rng: random.Random) -> datetime | None:
        """When a row of ``channel`` claimed at ``now`` should go instead, or None (now)."""
        if channel not in self.channels or now.minute not in RUSH_MINUTES:
            return None
        minute = now.replace(second=0, microsecond=0)
        end = minute + timedelta(seconds=self.seconds)
        if now >= end:
            return None
        return end + timedelta(seconds=rng.uniform(0, self.jitter))
