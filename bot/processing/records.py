"""The rows a batch of inbox rows works on, as plain objects whose changes the batch writes.

A handler changes a record like an ORM object (``follow.state = FollowState.REMOVED``); the
record tells the batch (:class:`store.batch.Batch`) it is dirty and how to undo the change if
the row fails. At the flush only the columns that changed are written, one ``executemany`` per
set of changed columns, in id order (the lock order concurrent processors share on
PostgreSQL). A record made by a row (``id`` None until then) is inserted at the flush as it
is by then, with the row's other deferred writes. No ORM: loading, tracking and flushing ORM
objects cost more than the statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import Connection, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from store.batch import Batch
from store.bulk import Bulk
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    FollowState,
    GroupMember,
    MpFollower,
    RemovedBy,
    Staff,
)


class RecordUpdate:
    """The deferred ``UPDATE`` of one table's changed records, by ``key`` (``id``, or the
    natural key of rows a batch may make without reading their id back)."""

    def __init__(self, table: Table, order: int, key: tuple[str, ...] = ("id",)) -> None:
        self.table = table
        self.order = order
        self.key = key
        self._statements: dict[frozenset[str], Bulk] = {}

    def write(self, connection: Connection, records: list[Record]) -> None:
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for record in records:
            changed = frozenset(record._changed)
            if not changed:
                continue
            record._changed.clear()
            row = {f"v_{name}": getattr(record, name) for name in changed | set(self.key)}
            groups.setdefault(changed, []).append(row)
        for changed, rows in groups.items():
            self._statement(changed).execute(connection, rows)

    def _statement(self, changed: frozenset[str]) -> Bulk:
        statement = self._statements.get(changed)
        if statement is None:
            c = self.table.c
            where = [c[name] == bindparam(f"v_{name}", type_=c[name].type) for name in self.key]
            values = {name: bindparam(f"v_{name}", type_=c[name].type) for name in sorted(changed)}
            statement = self._statements[changed] = Bulk(
                update(self.table).where(*where).values(values)
            )
        return statement


class RecordInsert:
    """The deferred ``INSERT`` of records a batch's rows made. Should another processor have
    inserted the row meanwhile, the columns this batch changed are written over it
    (``ON CONFLICT ... DO UPDATE``), as an update after losing the race would."""

    def __init__(self, record: type[Record], order: int) -> None:
        self.record = record
        self.key = record.updates.key
        self.order = order
        self._statements: dict[tuple[str, frozenset[str]], Bulk] = {}

    def write(self, connection: Connection, records: list[Record]) -> None:
        fields = self.record.fields()
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for record in records:
            groups.setdefault(frozenset(record._changed), []).append(
                {name: getattr(record, name) for name in fields}
            )
            record._changed.clear()
            object.__setattr__(record, "_stored", True)
        for changed, rows in groups.items():
            self._statement(connection.dialect.name, changed).execute(connection, rows)

    def _statement(self, dialect: str, changed: frozenset[str]) -> Bulk:
        statement = self._statements.get((dialect, changed))
        if statement is None:
            table = self.record.table
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            values = {n: bindparam(n, type_=table.c[n].type) for n in self.record.fields()}
            made = insert(table).values(values)
            upsert = (
                made.on_conflict_do_update(
                    index_elements=list(self.key),
                    set_={name: made.excluded[name] for name in sorted(changed)},
                )
                if changed
                else made.on_conflict_do_nothing(index_elements=list(self.key))
            )
            statement = self._statements[(dialect, changed)] = Bulk(upsert)
        return statement


class Record:
    """A row read for the batch, or made by one of its rows (written with the batch's other
    deferred writes; ``id`` None, as it is never read back: such tables update by natural
    key); ``id`` and the columns in ``__slots__`` of the subclass."""

    __slots__ = ("_batch", "_changed", "_stored", "id")
    table: ClassVar[Table]
    updates: ClassVar[RecordUpdate]
    inserts: ClassVar[RecordInsert]
    id: int | None
    _batch: Batch
    _changed: set[str]
    _stored: bool

    def __init__(self, batch: Batch, row: Mapping[Any, Any]) -> None:
        object.__setattr__(self, "_batch", batch)
        object.__setattr__(self, "_changed", set())
        object.__setattr__(self, "_stored", row["id"] is not None)
        object.__setattr__(self, "id", row["id"])
        for name in self.fields():
            object.__setattr__(self, name, row[name])

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return cast(tuple[str, ...], cls.__slots__)

    @classmethod
    def columns(cls) -> list[Any]:
        return [cls.table.c.id, *(cls.table.c[name] for name in cls.fields())]

    def __setattr__(self, name: str, value: Any) -> None:
        old = getattr(self, name)
        if old == value and type(old) is type(value):
            return
        self._set(name, value)
        self._batch.on_undo(lambda: self._set(name, old))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        self._changed.add(name)
        if self._stored:  # else its insert is still to come, and takes it as it is
            updates = self.updates
            key = (
                self.id if updates.key == ("id",) else tuple(getattr(self, k) for k in updates.key)
            )
            self._batch.mark(updates, key, self)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.fields())
        return f"{type(self).__name__}(id={self.id}, {values})"


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


class CustomerRecord(Record):
    __slots__ = ("external_userid", "unionid", "opted_out_at", "last_interaction_at")
    table = _table(Customer)
    updates = RecordUpdate(table, order=10)
    id: int
    external_userid: str | None
    unionid: str | None
    opted_out_at: datetime | None
    last_interaction_at: datetime | None


class StaffRecord(Record):
    __slots__ = (
        "userid",
        "name",
        "position",
        "status",
        "departments",
        "main_department",
        "synced_at",
    )
    table = _table(Staff)
    updates = RecordUpdate(table, order=11)
    id: int
    userid: str
    name: str | None
    position: str | None
    status: int | None
    departments: list[int]
    main_department: int | None
    synced_at: datetime | None


class FollowRecord(Record):
    """A staff member's relationship with a customer (``customer_staff``)."""

    __slots__ = (
        "customer_id",
        "staff_userid",
        "state",
        "channel_state",
        "added_at",
        "removed_at",
        "removed_by",
        "transfer_fail_reason",
    )
    table = _table(CustomerStaff)
    updates = RecordUpdate(table, order=22, key=("customer_id", "staff_userid"))
    customer_id: int
    staff_userid: str
    state: FollowState
    channel_state: str | None
    added_at: datetime | None
    removed_at: datetime | None
    removed_by: RemovedBy | None
    transfer_fail_reason: str | None


class GroupRecord(Record):
    __slots__ = ("chat_id", "name", "member_version", "dismissed_at")
    table = _table(CustomerGroup)
    updates = RecordUpdate(table, order=13)
    id: int
    chat_id: str
    name: str | None
    member_version: str | None
    dismissed_at: datetime | None


class MemberRecord(Record):
    __slots__ = (
        "group_id",
        "member_userid",
        "member_type",
        "customer_id",
        "joined_at",
        "join_scene",
        "left_at",
        "quit_scene",
    )
    table = _table(GroupMember)
    updates = RecordUpdate(table, order=24, key=("group_id", "member_userid"))
    group_id: int
    member_userid: str
    member_type: int | None
    customer_id: int | None
    joined_at: datetime | None
    join_scene: int | None
    left_at: datetime | None
    quit_scene: int | None


class FollowerRecord(Record):
    """An Official Account follower (``mp_followers``)."""

    __slots__ = (
        "account",
        "openid",
        "customer_id",
        "subscribed",
        "subscribe_scene",
        "subscribed_at",
        "unsubscribed_at",
        "last_message_at",
    )
    table = _table(MpFollower)
    updates = RecordUpdate(table, order=15)
    id: int
    account: str
    openid: str
    customer_id: int
    subscribed: bool
    subscribe_scene: str | None
    subscribed_at: datetime | None
    unsubscribed_at: datetime | None
    last_message_at: datetime | None


FollowRecord.inserts = RecordInsert(FollowRecord, order=21)
MemberRecord.inserts = RecordInsert(MemberRecord, order=23)
