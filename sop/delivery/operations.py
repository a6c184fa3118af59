"""What an operator may do to outbox rows: send again, or withdraw.

Kept apart from the command line so the console, the web UI and tests share one set of rules:
a row is sent again only from a state where the toolkit stopped trying (failed, uncertain,
expired, cancelled) and only while its window is open; a sent row is never sent again; a row
is cancelled only before a sender has taken it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import OutboxRow, OutboxState

RESENDABLE = frozenset(
    {OutboxState.FAILED, OutboxState.UNCERTAIN, OutboxState.EXPIRED, OutboxState.CANCELLED}
)


async def resend(session: AsyncSession, row_ids: Iterable[int], now: datetime) -> dict[int, str]:
    """Queue rows again, due now, with a fresh retry budget; what happened to each id."""
    report: dict[int, str] = {}
    for row_id in row_ids:
        row = await session.get(OutboxRow, row_id, with_for_update=True)
        if row is None:
            report[row_id] = "no such outbox row"
        elif row.state not in RESENDABLE:
            report[row_id] = f"not resent: it is {row.state}" + (
                " (sent rows are never sent twice)" if row.state is OutboxState.SENT else ""
            )
        elif row.expires_at is not None and row.expires_at <= now:
            report[row_id] = f"not resent: its window closed at {row.expires_at.isoformat()}"
        else:
            previous = row.state
            row.state = OutboxState.PENDING
            row.due_at = now
            row.attempts = 0
            row.lease_until = None
            row.attempted_at = None
            row.settle_at = None
            row.last_error = f"queued again by an operator (was {previous}): {row.last_error}"
            row.updated_at = now
            report[row_id] = f"queued again (was {previous})"
    return report


async def cancel(session: AsyncSession, row_ids: Iterable[int], now: datetime) -> dict[int, str]:
    """Withdraw pending rows; what happened to each id."""
    report: dict[int, str] = {}
    for row_id in row_ids:
        row = await session.get(OutboxRow, row_id, with_for_update=True)
        if row is None:
            report[row_id] = "no such outbox row"
        elif row.state is not OutboxState.PENDING:
            report[row_id] = f"not cancelled: it is {row.state}, only pending rows can be"
        else:
            row.state = OutboxState.CANCELLED
            row.updated_at = now
            report[row_id] = "cancelled"
    return report
