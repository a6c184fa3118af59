"""Preparing a claimed batch: parse every row, then read (or create) everything the rows name.

A batch replayed row by row (:class:`store.batch.Batch` ``isolated``, after its shared work
failed) skips the shared reads: each row then reads what it names in its own savepoint, so a
row whose ids the database refuses fails alone.

Done once per batch instead of once per row: the customers, staff, relationships, groups,
members and followers the rows name are looked up in one statement per table
(:class:`~bot.processing.roster.Roster`), and the event subscribers read what they need for
the batch's customers (``EventBus.prepare``: the engine's enrollments), so handlers and
subscribers mostly run without a statement of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.processing.messages import PlatformMessage
from bot.processing.parse import parse_payload
from bot.processing.roster import Roster
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from sop.engine.facts import PEOPLE
from sop.events import EventBus
from store.batch import Batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """An inbox row as the claim read it."""

    id: int
    source: str
    content_type: str
    payload: str
    received_at: datetime


@dataclass(frozen=True)
class Prepared:
    """A claimed row, parsed (``message``) or not (``error``: the row fails with it)."""

    row: Claimed
    message: PlatformMessage | None
    error: Exception | None = None


async def prepare(
    batch: Batch, rows: list[Claimed], router: Router, bus: EventBus, now: datetime
) -> tuple[list[Prepared], Roster]:
    """Parse ``rows`` and look up what they name; returns them in order, and the roster."""
    prepared: list[Prepared] = []
    subjects = Subjects()
    for row in rows:
        try:
            message = parse_payload(row.source, row.content_type, row.payload)
        except Exception as exc:
            prepared.append(Prepared(row, None, exc))
            continue
        prepared.append(Prepared(row, message))
        registration = router.registration_for(message)
        if registration is None or registration.names is None:
            continue
        try:
            registration.names(row.source, message, subjects)
        except Exception:  # the handler meets the same problem and fails the row with it
            log.debug("inbox row %s: what it names is unclear", row.id, exc_info=True)
    roster = Roster(batch, now)
    batch.state[PEOPLE] = roster
    if not batch.isolated:  # replayed row by row: each row reads what it names itself
        await roster.load(subjects)
        await bus.prepare(batch.session, roster.customer_ids())
    return prepared, roster
