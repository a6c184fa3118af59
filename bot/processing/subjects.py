"""Who and what a batch of messages names, collected before any of them is handled.

Each handler family says what its messages name (``router.on(..., names=...)``); the batch
gathers it for all its rows, and :class:`~bot.processing.roster.Roster` looks it all up (or
creates it) in one statement per table. A handler asking for something nobody named still
gets it, one statement later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.processing.messages import PlatformMessage, is_external_id


@dataclass
class Subjects:
    customers: set[str] = field(default_factory=set)  # external_userid
    staff: set[str] = field(default_factory=set)  # userid
    follows: set[tuple[str, str]] = field(default_factory=set)  # (external_userid, userid)
    groups: set[str] = field(default_factory=set)  # chat_id
    members: set[tuple[str, str]] = field(default_factory=set)  # (chat_id, member userid)
    followers: set[tuple[str, str, str | None]] = field(default_factory=set)  # account, openid

    def customer(self, userid: str | None) -> None:
        """``userid`` if it is a customer's (external) id."""
        if userid and is_external_id(userid):
            self.customers.add(userid)


#: What a handler family's messages name: ``names(source, message, subjects)``.
Names = Callable[[str, PlatformMessage, Subjects], None]
