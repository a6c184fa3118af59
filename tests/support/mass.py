"""Mass-message test helpers: a sender with the mass channel, a collector, and readers."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.channels.mass_message import MassMessageChannel
from bot.channels.mass_results import CollectorSettings, MassResultCollector
from bot.wecom import WecomClient
from sop.delivery import RateLimits, Sender, SenderSettings
from sop.delivery.retry import RetryPolicy
from store.models import MassJob, MassRecipient, MassStatus
from tests.support.clock import ManualClock
from tests.support.database import Database

FIRST_POLL = timedelta(minutes=5)


def mass_sender(db: Database, client: WecomClient, clock: ManualClock, **settings: Any) -> Sender:
    channel = MassMessageChannel(client, db.sessions, clock, first_poll=FIRST_POLL)
    settings.setdefault("limits", RateLimits())
    settings.setdefault("retry", RetryPolicy(max_attempts=3))
    return Sender(db.sessions, [channel], clock, SenderSettings(**settings), rng=random.Random(7))


def collector(
    db: Database, client: WecomClient, clock: ManualClock, **settings: Any
) -> MassResultCollector:
    return MassResultCollector(
        db.sessions, client, clock, CollectorSettings(**settings), rng=random.Random(7)
    )


async def jobs(db: Database) -> list[MassJob]:
    async with db.sessions() as session:
        return list((await session.scalars(select(MassJob).order_by(MassJob.id))).all())


async def fates(db: Database, outbox_id: int | None = None) -> dict[str, MassStatus]:
    """Each recipient's status (of one outbox row, or of all)."""
    query = select(MassRecipient.recipient, MassRecipient.status)
    if outbox_id is not None:
        query = query.where(MassRecipient.outbox_id == outbox_id)
    async with db.sessions() as session:
        return {r: s for r, s in (await session.execute(query)).all()}


async def recipients(db: Database) -> list[MassRecipient]:
    async with db.sessions() as session:
        query = select(MassRecipient).order_by(MassRecipient.id)
        return list((await session.scalars(query)).all())
