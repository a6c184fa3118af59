"""Rate limits shared by every sender process, with the database as the coordinator.

Several senders (one per ``serve`` process, see ARCHITECTURE.md "Scale") spend the same
budgets: the corp's calls of an API, a staff member's 30 app messages a minute. Each sender
reserves what its batch will send inside the transaction that claims the rows, so the
reservation commits or vanishes together with the claim:

1. the budgets the batch touches are locked: on PostgreSQL a transaction-scoped advisory lock
   per budget, taken in one statement in a fixed order (no deadlocks); on SQLite the claim's
   ``BEGIN IMMEDIATE`` already makes it the only writer;
2. what each budget has spent in each of its windows is summed in one statement; the rows
   are granted or deferred in claim order as :class:`~sop.delivery.ratelimit.RateLimiter`
   would, all or nothing per row; only a window that is full has its buckets read, to tell
   when it frees up;
3. the grants are added to the current buckets (one upsert statement), and now and then the
   expired buckets are deleted.

A bucket spans 1/60 of its window and counts whole until its latest spend leaves the window:
never more than ``limit`` sends in any window (a send may be refused a little early, never let
through), at most 61 rows per budget and window. Sends of one claim share one instant, so a
member's 30 sends of one batch are free again exactly one minute later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Insert, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.delivery.channel import RateKey
from sop.delivery.ratelimit import Rate, RateLimits
from store.models import RateSpend

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BUCKETS_PER_WINDOW = 60
#: The first key of PostgreSQL's two-key advisory locks: "rate budgets" (0x5CB0), so these
#: locks never meet another part's.
ADVISORY_CLASS = 0x5CB0
_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(:cls, k)) FROM unnest(CAST(:ks AS integer[]))"
    " WITH ORDINALITY AS t(k, n)"
)
RATE_SPENDS = RateSpend.metadata.tables[RateSpend.__tablename__]
_T = RATE_SPENDS.c


class BucketWindow:
    """One budget's window of one rate during one claim: the sends the live buckets hold
    (``counted``) and those granted in this claim (at its instant)."""

    def __init__(self, rate: Rate, counted: int = 0) -> None:
        self.rate = rate
        self.counted = counted
        self.granted = 0
        #: ``(last_at, spent)`` of the live buckets, read only once the window is full.
        self.buckets: list[tuple[datetime, int]] | None = None

    @property
    def full(self) -> bool:
        return self.counted + self.granted >= self.rate.limit

    def free_at(self, now: datetime) -> datetime:
        """When enough sends will have left the window for one more (needs ``buckets``)."""
        assert self.buckets is not None, "read the buckets of a full window first"
        live = sorted([*self.buckets, (now, self.granted)])
        must_leave = self.counted + self.granted - self.rate.limit + 1
        for last_at, spent in live:
            must_leave -= spent
            if must_leave <= 0:
                return last_at + self.rate.per
        return now + self.rate.per  # the limit was lowered below what is already spent

    def bucket_of(self, now: datetime) -> datetime:
        width = self.rate.per / BUCKETS_PER_WINDOW
        return EPOCH + ((now - EPOCH) // width) * width


Budget = tuple[str, str]
Windows = dict[Budget, list[BucketWindow]]


class SharedRateLimiter:
    """Reserves sends against the budgets in ``rate_spends``, inside the caller's transaction."""

    def __init__(self, limits: RateLimits, *, prune_every: timedelta = timedelta(minutes=1)):
        self._limits = limits
        self._prune_every = prune_every
        self._pruned_at: datetime | None = None

    @property
    def limits_anything(self) -> bool:
        """False when every scope is unlimited: then a claim need not ask for budgets."""
        return any(self._limits.rates.values())

    async def reserve(
        self, connection: AsyncConnection, wanted: Sequence[Sequence[RateKey]], now: datetime
    ) -> list[datetime | None]:
        """For each row's budgets: None (reserved: one send spent from each), or the
        earliest time worth asking again (nothing spent)."""
        budgets = {
            (k.scope, k.key): rates
            for keys in wanted
            for k in keys
            if (rates := self._limits.for_scope(k.scope))
        }
        if not budgets:
            return [None] * len(wanted)
        await _lock(connection, sorted(budgets))
        windows = await _counted(connection, budgets, now)
        answers: list[datetime | None] = []
        for keys in wanted:
            mine = [(k, w) for k in keys for w in windows.get((k.scope, k.key), ())]
            full = [(k, w) for k, w in mine if w.full]
            if full:
                for key, window in full:
                    if window.buckets is None:
                        window.buckets = await _buckets(connection, key, window.rate, now)
                answers.append(max(w.free_at(now) for _, w in full))
                continue
            for _, window in mine:
                window.granted += 1
            answers.append(None)
        await _add(connection, windows, now)
        if self._pruned_at is None or now - self._pruned_at >= self._prune_every:
            await connection.execute(delete(RATE_SPENDS).where(_T.expires_at <= now))
            self._pruned_at = now
        return answers


async def _lock(connection: AsyncConnection, budgets: list[Budget]) -> None:
    if connection.dialect.name != "postgresql":
        return  # SQLite: the claim's BEGIN IMMEDIATE made this transaction the only writer
    ids = sorted({_lock_id(scope, key) for scope, key in budgets})
    await connection.execute(_LOCK, {"cls": ADVISORY_CLASS, "ks": ids})


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.blake2b(f"{scope}\0{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _counted(
    connection: AsyncConnection, budgets: dict[Budget, tuple[Rate, ...]], now: datetime
) -> Windows:
    """Each budget's windows with what their live buckets hold, summed in the database."""
    windows = {budget: [BucketWindow(rate) for rate in rates] for budget, rates in budgets.items()}
    by_period = {(budget, _ms(w.rate.per)): w for budget, ws in windows.items() for w in ws}
    sums = await connection.execute(
        select(_T.scope, _T.key, _T.period_ms, func.sum(_T.spent))
        .where(
            _T.scope.in_({scope for scope, _ in budgets}),
            _T.key.in_({key for _, key in budgets}),
            _T.expires_at > now,
        )
        .group_by(_T.scope, _T.key, _T.period_ms)
    )
    for scope, key, period_ms, spent in sums.all():
        window = by_period.get(((scope, key), period_ms))
        if window is not None:
            window.counted = int(spent)
    return windows


async def _buckets(
    connection: AsyncConnection, key: RateKey, rate: Rate, now: datetime
) -> list[tuple[datetime, int]]:
    rows = await connection.execute(
        select(_T.last_at, _T.spent).where(
            _T.scope == key.scope,
            _T.key == key.key,
            _T.period_ms == _ms(rate.per),
            _T.expires_at > now,
        )
    )
    return [(last_at, spent) for last_at, spent in rows.all()]


async def _add(connection: AsyncConnection, windows: Windows, now: datetime) -> None:
    values = [
        {
            "scope": scope,
            "key": key,
            "period_ms": _ms(window.rate.per),
            "bucket": window.bucket_of(now),
            "spent": window.granted,
            "last_at": now,
            "expires_at": now + window.rate.per,
        }
        for (scope, key), ws in windows.items()
        for window in ws
        if window.granted
    ]
    if values:
        await connection.execute(_upsert(connection), values)


def _upsert(connection: AsyncConnection) -> Insert:
    """Add to a bucket, or start it; its latest spend and expiry only move forward."""
    postgres = connection.dialect.name == "postgresql"
    statement = (postgresql_insert if postgres else sqlite_insert)(RATE_SPENDS)
    later = func.greatest if postgres else func.max
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["scope", "key", "period_ms", "bucket"],
        set_={
            "spent": _T.spent + new.spent,
            "last_at": later(_T.last_at, new.last_at),
            "expires_at": later(_T.expires_at, new.expires_at),
        },
    )


def _ms(period: timedelta) -> int:
    return period // timedelta(milliseconds=1)
