"""The audit log: every step of a handover, written in the transaction that takes the step.

Rows are never updated. ``subject`` names what the step was done to (``staff:zhangsan``,
``customer:wm...``, ``group:wr...``, ``task:42``, ``enrollment:7``, ``job:3``) so an operator
can ask "what happened to this customer" as easily as "what did this job do".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AuditEntry

ACTOR_LIMIT = 64


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit row to the session (flushed and committed with the caller's work)."""
    if not actor or not action or not subject:
        raise ValueError(
            f"audit entry needs an actor, an action and a subject: got actor={actor!r}"
            f" action={action!r} subject={subject!r}"
        )
    entry = AuditEntry(
        at=at,
        actor=actor[:ACTOR_LIMIT],
        action=action,
        subject=subject[:128],
        detail=dict(detail or {}),
    )
    session.add(entry)
    return entry


async def entries(
    session: AsyncSession,
    *,
    subject: str | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """The log in order, optionally of one subject or one action."""
    query = select(AuditEntry).order_by(AuditEntry.at, AuditEntry.id).limit(limit)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list((await session.scalars(query)).all())
