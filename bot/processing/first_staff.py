"""Staff members a batch names, created up front in one sorted insert.

A member appears in the database the first time a callback names them. When several
processors meet the same new members in one burst (a corp's first callbacks), creating them
row by row, in the order events arrive, makes two batches wait on each other's uncommitted
members: a deadlock. Inserted first, in userid order, two batches can only wait one for the
other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.messages import is_external_id
from bot.processing.upsert import dialect_insert
from store.models import Staff

_USERID = re.compile(r"<UserID>\s*(?:<!\[CDATA\[)?([^<\]]+)")


def named_staff(payloads: Iterable[tuple[str, str]]) -> list[str]:
    """The member userids named (``UserID``) by XML payloads, sorted, without customers."""
    found: set[str] = set()
    for content_type, payload in payloads:
        if content_type != "xml":
            continue
        for match in _USERID.finditer(payload):
            userid = match.group(1).strip()
            if userid and not is_external_id(userid):
                found.add(userid)
    return sorted(found)


async def create_named_staff(
    session: AsyncSession, payloads: Iterable[tuple[str, str]], now: datetime
) -> None:
    userids = named_staff(payloads)
    if not userids:
        return
    table = cast(Table, Staff.__table__)
    insert = dialect_insert(session, table).on_conflict_do_nothing(index_elements=["userid"])
    await session.execute(
        insert, [{"userid": u, "departments": [], "created_at": now} for u in userids]
    )
