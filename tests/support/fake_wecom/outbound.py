"""What the fake corp sent on the apps' behalf: app messages, welcome messages, and the rules.

Tests assert on :attr:`Outbound.deliveries` (what a person would really have received) rather
than on calls: a message the platform accepted but silently dropped (over a member's 30 a
minute) is a delivery with ``dropped`` set, which is exactly what the sender must avoid.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: Per receiving member: 30 app messages a minute and 1000 an hour; beyond that the platform
#: answers ok and delivers nothing.
MEMBER_LIMITS = ((30, timedelta(minutes=1)), (1000, timedelta(hours=1)))
WELCOME_CODE_VALIDITY = timedelta(seconds=20)


@dataclass
class Delivery:
    api: str  # "message/send" or "externalcontact/send_welcome_msg"
    to: str  # the staff userid, or the customer's external userid for a welcome
    body: dict[str, Any]
    at: datetime
    msgid: str = ""
    dropped: bool = False

    @property
    def msgtype(self) -> str:
        return str(self.body.get("msgtype", "welcome"))


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass
class Outbound:
    agents: set[int] = field(default_factory=lambda: {1000002})
    deliveries: list[Delivery] = field(default_factory=list)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    member_limits: tuple[tuple[int, timedelta], ...] = MEMBER_LIMITS
    welcome_validity: timedelta = WELCOME_CODE_VALIDITY
    _received: defaultdict[str, deque[datetime]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: Response codes a button press issued (``template_card_event``'s ResponseCode), by the
    #: msgid of the card pressed: ``message/update_template_card`` takes them like the send's.
    press_codes: dict[str, str] = field(default_factory=dict)

    def new_msgid(self) -> str:
        return f"fakeMsg{next(self._ids):020d}"

    def press(self, msgid: str) -> str:
        """A press on the card sent as ``msgid``: the callback's fresh ResponseCode."""
        code = f"fakePress{next(self._ids):012d}"
        self.press_codes[code] = msgid
        return code

    def over_member_limit(self, userid: str, now: datetime) -> bool:
        """Count one app message to ``userid``; True when it exceeds a member limit."""
        if not self.member_limits:
            return False
        times = self._received[userid]
        longest = max(per for _, per in self.member_limits)
        while times and times[0] <= now - longest:
            times.popleft()
        over = any(
            sum(1 for t in times if t > now - per) >= limit for limit, per in self.member_limits
        )
        if not over:
            times.append(now)
        return over

    def delivered_to(self, who: str) -> list[Delivery]:
        """What ``who`` really received (dropped messages left out)."""
        return [d for d in self.deliveries if d.to == who and not d.dropped]

    @property
    def dropped(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.dropped]
