"""Marking a batch's inbox rows done (one statement) or failed (each with its error).

Each mark checks the row is still pending: a row another processor finished meanwhile makes
the batch fail instead of processing it twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.bulk import in_list
from store.models import InboxRow, InboxState

_columns = InboxRow.__table__.c
#: Built once (with bound parameters): building a statement costs more than running it.
_FAILED = (
    update(InboxRow)
    .where(InboxRow.id == bindparam("row_id"), InboxRow.state == InboxState.PENDING)
    .values(
        state=InboxState.FAILED,
        error=bindparam("new_error", type_=_columns.error.type),
        attempts=InboxRow.attempts + 1,
        processed_at=bindparam("now", type_=_columns.processed_at.type),
    )
    .execution_options(synchronize_session=False)
)
_DONE = {
    postgres: update(InboxRow)
    .where(in_list(_columns.id, "ids", postgres=postgres), InboxRow.state == InboxState.PENDING)
    .values(
        state=InboxState.DONE,
        error=None,
        attempts=InboxRow.attempts + 1,
        processed_at=bindparam("now", type_=_columns.processed_at.type),
    )
    .execution_options(synchronize_session=False)
    for postgres in (False, True)
}


async def mark(
    session: AsyncSession, done: list[int], failed: list[tuple[int, str]], now: datetime
) -> None:
    """``done`` rows done, ``failed`` rows failed with their error text."""
    if done:
        postgres = session.get_bind().dialect.name == "postgresql"
        result = await session.execute(_DONE[postgres], {"ids": done, "now": now})
        if result.rowcount != len(done):  # type: ignore[attr-defined]
            raise RuntimeError(
                f"inbox rows {done[0]}..{done[-1]} are no longer all pending; "
                "not processing them again"
            )
    for row_id, error in failed:
        params = {"row_id": row_id, "new_error": error, "now": now}
        result = await session.execute(_FAILED, params)
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"inbox row {row_id} is no longer pending; not processing it again")
