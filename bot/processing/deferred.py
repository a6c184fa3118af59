"""The timeline entries an inbox row defers to its batch's flush (refresh requests:
:class:`bot.processing.refresh_queue.RefreshUpsert`).

One prebuilt Core statement run as one ``executemany`` for the whole batch
(:class:`store.batch.Batch`); a row that fails takes its own entries with it.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert

from store.bulk import Bulk
from store.models import Interaction

_TIMELINE = cast(Table, Interaction.__table__)
_COLUMNS = (
    "customer_id",
    "group_id",
    "staff_userid",
    "direction",
    "kind",
    "summary",
    "data",
    "source",
    "inbox_id",
    "seq",
    "occurred_at",
    "recorded_at",
)


class TimelineInsert:
    """``INSERT INTO interactions`` for every entry the batch's rows recorded, in order."""

    order = 50

    def __init__(self) -> None:
        c = _TIMELINE.c
        self._statement = Bulk(
            insert(_TIMELINE).values(
                {name: bindparam(name, type_=c[name].type) for name in _COLUMNS}
            )
        )

    def write(self, connection: Connection, items: list[dict[str, Any]]) -> None:
        self._statement.execute(connection, items)


TIMELINE = TimelineInsert()
