"""The inserts an inbox row defers to its batch's flush: timeline entries and refresh requests.

Each is one prebuilt Core statement run as one ``executemany`` for the whole batch
(:class:`store.batch.Batch`); a row that fails takes its own items with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert

from bot.processing.refresh_queue import KINDS, upsert_statement
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


class RefreshUpsert:
    """The refresh queue's upsert (:mod:`bot.processing.refresh_queue`), once per object the
    batch's rows asked about (the earliest due time, the latest request: what the requests one
    by one would leave, ``version`` bumped once), in key order (the lock order concurrent
    processors share on PostgreSQL)."""

    order = 60

    def __init__(self) -> None:
        self._statements: dict[str, Bulk] = {}

    def write(self, connection: Connection, items: list[dict[str, Any]]) -> None:
        dialect = connection.dialect.name
        statement = self._statements.get(dialect)
        if statement is None:
            statement = self._statements[dialect] = Bulk(upsert_statement(dialect))
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            key = (item["kind"], item["key"])
            found = merged.get(key)
            if found is None:
                merged[key] = dict(item)
            else:
                found["due"] = min(found["due"], item["due"])
                found["now"] = max(found["now"], item["now"])
        statement.execute(connection, [merged[key] for key in sorted(merged)])


def refresh_item(kind: str, key: str, now: datetime, delay: float = 0) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown refresh kind {kind!r}: use one of {', '.join(KINDS)}")
    return {"kind": kind, "key": key, "due": now + timedelta(seconds=delay), "now": now}


TIMELINE = TimelineInsert()
REFRESH = RefreshUpsert()
