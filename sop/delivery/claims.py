"""The sender's statements on the outbox table: recover lapsed leases, claim due rows, release.

Claiming a row is not attempting it: a claimed row is ``sending`` under a lease with
``attempted_at`` still empty, and waits in the sender's queue until :mod:`.attempts` marks it
just before its request may leave. So when a lease lapses (the sender crashed or hung), a row
never attempted simply goes back to ``pending``; only an attempted one may have reached the
platform, and only an attempted customer message becomes ``uncertain``.

Rows whose window closes soon (a welcome code lives 20 seconds) are claimed first, ahead of
any backlog: one small query on a partial index (``ix_outbox_pending_expires_at``: pending
rows with a window, so the bulk never touches it) before the claim by ``due_at``.

On PostgreSQL several senders claim side by side: ``FOR UPDATE SKIP LOCKED`` gives each one
rows the others are not taking. On SQLite the transaction begins ``IMMEDIATE`` (see
:mod:`store.db`), so one writer at a time claims and the lock is simply not rendered.
Everything here is Core, a statement per kind of change rather than one per row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    TextualSelect,
    Update,
    any_,
    bindparam,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.delivery.channel import OutboxMessage
from store.liveness import claimed_by_the_dead
from store.models import OutboxRow, OutboxState

UNCERTAIN_AFTER_CRASH = (
    "the sender stopped while sending (lease lapsed at {lease}); the platform may or may "
    "not have delivered it. Check with the recipient, then `scrm outbox resend {id}` if not"
)
SETTLING_AFTER_CRASH = (
    "the sender stopped while sending (lease lapsed at {lease}); asking the platform what"
    " became of it"
)

OUTBOX = OutboxRow.metadata.tables[OutboxRow.__tablename__]
_C = OUTBOX.c
URGENT_INDEX = "ix_outbox_pending_expires_at"
#: One row's new values, by primary key (``b_id``): executemany, one statement per kind.
_BY_ID = update(OUTBOX).where(_C.id == bindparam("b_id"))
_CLAIM_COLUMNS = (
    _C.id,
    _C.idempotency_key,
    _C.channel,
    _C.recipient,
    _C.payload,
    _C.attempts,
    _C.due_at,
    _C.expires_at,
    _C.customer_id,
    _C.last_errcode,
)


async def update_each(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """``UPDATE outbox SET <keys> WHERE id = b_id`` for each dict (all with the same keys)."""
    if rows:
        await connection.execute(_BY_ID, list(rows))


def ids_in(name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``id`` among the ids bound as ``name``: on PostgreSQL ``= ANY(array)``, one statement
    text for any number of ids (asyncpg prepares each distinct text once per connection);
    elsewhere an expanding ``IN``."""
    if postgres:
        return _C.id == any_(bindparam(name, type_=ARRAY(_C.id.type)))
    return _C.id.in_(bindparam(name, expanding=True))


def is_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


@dataclass
class Recovered:
    """What :func:`recover_lapsed` did, by row id."""

    uncertain: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    #: Claimed but never attempted: back to pending, no attempt counted.
    released: list[int] = field(default_factory=list)
    #: The earliest ``settle_at`` given to a row made uncertain, if any.
    settle_at: datetime | None = None


async def recover_lapsed(
    connection: AsyncConnection,
    now: datetime,
    resendable: Collection[str],
    settle_after: Mapping[str, timedelta],
    *,
    me: int | None = None,
    reclaim_own: bool = False,
) -> Recovered:
    """Rows left ``sending`` past their lease, or claimed by a process that stopped beating
    (:mod:`store.liveness`; not this one, ``me``), or, with ``reclaim_own``, by this process
    in an earlier drain that failed half way, put back in order.

    Never attempted: ``pending`` again. Attempted, on a channel in ``resendable`` (staff
    nudges, at-least-once): sent again. Attempted otherwise (customer-facing, or a channel
    this sender does not know): ``uncertain``, to be settled after ``settle_after[channel]``
    where that channel can ask the platform, else left for a person.
    """
    lapsed = (
        await connection.execute(
            select(_C.id, _C.channel, _C.lease_until, _C.attempted_at)
            .where(_C.state == OutboxState.SENDING, _lapsed(now, me, reclaim_own))
            .with_for_update(skip_locked=True)
        )
    ).all()
    done = Recovered()
    released: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    uncertain: list[dict[str, Any]] = []
    for row_id, channel, lease, attempted_at in lapsed:
        if attempted_at is None:
            released.append(
                {
                    "b_id": row_id,
                    "state": OutboxState.PENDING,
                    "lease_until": None,
                    "updated_at": now,
                }
            )
            done.released.append(row_id)
        elif channel in resendable:
            again.append(
                {
                    "b_id": row_id,
                    "state": OutboxState.PENDING,
                    "due_at": now,
                    "lease_until": None,
                    "attempted_at": None,
                    "last_error": f"resent: the sender stopped while sending (lease {lease})",
                    "updated_at": now,
                }
            )
            done.resent.append(row_id)
        else:
            wait = settle_after.get(channel)
            settle_at = None if wait is None else now + wait
            template = UNCERTAIN_AFTER_CRASH if settle_at is None else SETTLING_AFTER_CRASH
            uncertain.append(
                {
                    "b_id": row_id,
                    "state": OutboxState.UNCERTAIN,
                    "lease_until": None,
                    "settle_at": settle_at,
                    "last_error": template.format(lease=lease, id=row_id),
                    "updated_at": now,
                }
            )
            done.uncertain.append(row_id)
            if settle_at is not None and (done.settle_at is None or settle_at < done.settle_at):
                done.settle_at = settle_at
    await update_each(connection, released)
    await update_each(connection, again)
    await update_each(connection, uncertain)
    return done


def _lapsed(now: datetime, me: int | None, reclaim_own: bool) -> ColumnElement[bool]:
    dead = claimed_by_the_dead(_C.claimed_by, now)
    if me is None:
        return or_(_C.lease_until < now, dead)
    if reclaim_own:
        return or_(_C.lease_until < now, dead, _C.claimed_by == me)
    return or_(_C.lease_until < now, dead & (_C.claimed_by != me))


def _claim(*, urgent: bool) -> Select[Any]:
    due = (
        _C.due_at <= bindparam("now"),
        _C.channel.in_(bindparam("channels", expanding=True)),
    )
    if urgent:
        # The state as a literal and expires_at set: the partial index's own predicate, so
        # the planner (and a prepared statement's generic plan) can use it.
        pending = _C.state == literal_column("'pending'")
        window = (_C.expires_at.is_not(None), _C.expires_at <= bindparam("soon"))
        query = select(*_CLAIM_COLUMNS).where(pending, *due, *window)
        query = query.order_by(_C.expires_at, _C.id)
    else:
        later = or_(_C.expires_at.is_(None), _C.expires_at > bindparam("soon"))
        query = select(*_CLAIM_COLUMNS).where(_C.state == OutboxState.PENDING, *due, later)
        query = query.order_by(_C.due_at, _C.id)
    return query.limit(bindparam("limit")).with_for_update(skip_locked=True)


def _sqlite_urgent() -> TextualSelect:
    """The urgent claim for SQLite, naming its index: without statistics SQLite would rather
    walk ``(state, due_at)``, that is all of a backlog. (No row lock to take: the claim's
    ``BEGIN IMMEDIATE`` made it the only writer.)"""
    columns = ", ".join(column.name for column in _CLAIM_COLUMNS)
    when = _C.due_at.type
    return (
        text(
            f"SELECT {columns} FROM outbox INDEXED BY {URGENT_INDEX}"
            " WHERE state = 'pending' AND due_at <= :now AND channel IN :channels"
            " AND expires_at IS NOT NULL AND expires_at <= :soon"
            " ORDER BY expires_at, id LIMIT :limit"
        )
        .bindparams(
            bindparam("now", type_=when),
            bindparam("soon", type_=when),
            bindparam("channels", expanding=True),
        )
        .columns(*_CLAIM_COLUMNS)
    )


#: The claims, built once: a statement object caches its compiled form and cache key.
_CLAIM_URGENT: dict[str, Executable] = {
    "postgresql": _claim(urgent=True),
    "sqlite": _sqlite_urgent(),
}
_CLAIM = _claim(urgent=False)


@dataclass(frozen=True)
class Claimed:
    """Rows locked by a claim: those whose window closes soon first, then the rest."""

    urgent: list[OutboxMessage]
    regular: list[OutboxMessage]

    @property
    def all(self) -> list[OutboxMessage]:
        return self.urgent + self.regular


async def claim_due(
    connection: AsyncConnection,
    now: datetime,
    channels: Collection[str],
    limit: int,
    *,
    urgent_within: timedelta,
    regular: bool = True,
) -> Claimed:
    """Lock up to ``limit`` due pending rows of ``channels``: first those expiring within
    ``urgent_within`` (soonest first), then, unless ``regular`` is false, the oldest due.

    Each message already counts the attempt it is claimed for (what :mod:`.attempts`
    writes when it is made), so the sender builds it once.
    """
    params = {"now": now, "channels": list(channels), "soon": now + urgent_within}
    urgent_claim = _CLAIM_URGENT["postgresql" if is_postgres(connection) else "sqlite"]
    urgent = _messages(await connection.execute(urgent_claim, params | {"limit": limit}))
    rest: list[OutboxMessage] = []
    if regular and len(urgent) < limit:
        left = limit - len(urgent)
        rest = _messages(await connection.execute(_CLAIM, params | {"limit": left}))
    return Claimed(urgent, rest)


def _messages(found: Any) -> list[OutboxMessage]:
    return [
        OutboxMessage(
            row_id,
            key,
            channel,
            recipient,
            payload,
            attempts + 1,
            due_at,
            expires_at,
            customer_id,
            last_errcode,
        )
        for (
            row_id,
            key,
            channel,
            recipient,
            payload,
            attempts,
            due_at,
            expires_at,
            customer_id,
            last_errcode,
        ) in found.all()
    ]


def _take(postgres: bool) -> Update:
    return (
        update(OUTBOX)
        .where(ids_in("ids", postgres=postgres))
        .values(
            state=OutboxState.SENDING,
            lease_until=bindparam("lease_until"),
            attempted_at=None,
            claimed_by=bindparam("claimed_by"),
            updated_at=bindparam("now"),
        )
    )


def _release(postgres: bool) -> Update:
    return (
        update(OUTBOX)
        .where(
            ids_in("ids", postgres=postgres),
            _C.state == OutboxState.SENDING,
            _C.attempted_at.is_(None),
            _C.lease_until.in_(bindparam("leases", expanding=True)),
        )
        .values(state=OutboxState.PENDING, lease_until=None)
    )


_TAKE = {postgres: _take(postgres) for postgres in (False, True)}
_RELEASE = {postgres: _release(postgres) for postgres in (False, True)}


async def take(
    connection: AsyncConnection,
    ids: Sequence[int],
    *,
    now: datetime,
    lease_until: datetime,
    claimed_by: int | None = None,
) -> None:
    """The claimed rows ``ids`` become ``sending`` under a lease, not yet attempted, named
    after the claiming process (``claimed_by``, its :mod:`store.liveness` token)."""
    if ids:
        statement = _TAKE[is_postgres(connection)]
        params = {"ids": list(ids), "now": now, "lease_until": lease_until}
        await connection.execute(statement, params | {"claimed_by": claimed_by})


async def release(
    connection: AsyncConnection, ids: Sequence[int], leases: Sequence[datetime]
) -> None:
    """Claimed rows this sender will not attempt after all (it is stopping) go back to
    ``pending`` at once; only rows still under one of its claims' ``leases``, so a row whose
    lease lapsed and that another sender took meanwhile is left alone."""
    if ids and leases:
        statement = _RELEASE[is_postgres(connection)]
        await connection.execute(statement, {"ids": list(ids), "leases": list(leases)})
