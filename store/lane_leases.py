"""Which lanes of a partitioned queue this process may work on, agreed through the database.

The inbox is split into lanes (``store.models.inbox.LANES``); rows of one lane must be processed
in order, by one processor at a time, while different lanes go to different processes. On
PostgreSQL each processor keeps one connection on which it holds session-level advisory locks:
a shared "member" lock (so every processor can count the others in ``pg_locks``) and an
exclusive lock per lane it owns. Each takes its fair share (lanes / members, rounded up) of the
free lanes and gives back what exceeds it, so lanes spread out as processes come and go. A
process that dies, even by SIGKILL, loses its connection and with it its locks at once: the
survivors take its lanes at their next rebalance, and its uncommitted batch was rolled back, so
the rows are still pending in order.

SQLite has a single writer, so its processor simply owns every lane (:class:`AllLanes`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Protocol

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import Integer

from store.transient import describe

log = logging.getLogger(__name__)

#: The first key of every advisory lock taken here (``classid`` in ``pg_locks``).
NAMESPACE = 0x5C4D
#: The second key of the shared lock every member holds; lanes are 0 to ``lanes - 1``.
MEMBER = 1_000_000
#: How often a processor looks at the others (seconds); also the longest a dead processor's
#: lanes wait for a new owner.
REBALANCE_SECONDS = 2.0

_MEMBERS_AND_TAKEN = text(
    """
    SELECT count(*) FILTER (WHERE objid = :member AND mode = 'ShareLock'),
           coalesce(array_agg(objid::int) FILTER (
               WHERE objid <> :member AND mode = 'ExclusiveLock'), '{}')
    FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND classid = :namespace AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)
_TRY_LOCK = text(
    "SELECT lane FROM unnest(:lanes) AS lane WHERE pg_try_advisory_lock(:namespace, lane)"
).bindparams(bindparam("lanes", type_=ARRAY(Integer)))
_UNLOCK = text(
    "SELECT count(*) FROM unnest(:lanes) AS lane WHERE pg_advisory_unlock(:namespace, lane)"
).bindparams(bindparam("lanes", type_=ARRAY(Integer)))
_UNLOCK_ALL = text("SELECT pg_advisory_unlock_all()")
_JOIN = text("SELECT pg_advisory_lock_shared(:namespace, :member)")


class LaneSource(Protocol):
    async def current(self) -> frozenset[int] | None:
        """The lanes this process owns now (None: all of them); empty while it owns none."""
        ...

    async def close(self) -> None:
        """Give every lane back (a graceful stop): the others take them at once."""
        ...


class AllLanes:
    """Every lane, for a database with one writer (SQLite)."""

    async def current(self) -> frozenset[int] | None:
        return None

    async def close(self) -> None:
        return None


class AdvisoryLaneLeases:
    """A fair share of the lanes, held as PostgreSQL advisory locks on one connection."""

    def __init__(
        self,
        engine: AsyncEngine,
        lanes: int,
        *,
        rebalance_seconds: float = REBALANCE_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._lanes = lanes
        self._every = rebalance_seconds
        # Start looking for free lanes at a different place in each process, so that two
        # processes rebalancing at once rarely reach for the same lane.
        start = (rng or random.Random()).randrange(lanes)
        self._preference = [(start + i) % lanes for i in range(lanes)]
        self._connection: AsyncConnection | None = None
        self._held: set[int] = set()
        self._next_rebalance = 0.0

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    async def current(self) -> frozenset[int] | None:
        if time.monotonic() >= self._next_rebalance:
            await self.rebalance()
        return frozenset(self._held)

    async def rebalance(self) -> None:
        """Take free lanes up to the fair share, or give back what exceeds it."""
        self._next_rebalance = time.monotonic() + self._every
        try:
            connection = await self._connect()
            params = {"namespace": NAMESPACE, "member": MEMBER}
            members, taken = (await connection.execute(_MEMBERS_AND_TAKEN, params)).one()
            share = math.ceil(self._lanes / max(1, members))
            if len(self._held) > share:
                extra = sorted(self._held)[share:]
                await connection.execute(_UNLOCK, {"namespace": NAMESPACE, "lanes": extra})
                self._held.difference_update(extra)
                log.info("gave back %d inbox lanes (%d processors)", len(extra), members)
            elif len(self._held) < share:
                busy = set(taken)
                free = [lane for lane in self._preference if lane not in busy]
                wanted = free[: share - len(self._held)]
                if wanted:
                    got = await connection.execute(
                        _TRY_LOCK, {"namespace": NAMESPACE, "lanes": wanted}
                    )
                    new = set(got.scalars().all())
                    self._held.update(new)
                    if new:
                        log.info(
                            "took %d inbox lanes, holding %d of %d (%d processors)",
                            len(new),
                            len(self._held),
                            self._lanes,
                            members,
                        )
        except Exception as error:
            await self._lost(error)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._held.clear()
        if connection is not None:
            try:
                await connection.execute(_UNLOCK_ALL)
                # Not back to the pool: the session and whatever it might still hold end here.
                await connection.invalidate()
                await connection.close()
            except Exception as error:
                log.info("closing the lane connection: %s", describe(error))

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            try:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(_JOIN, {"namespace": NAMESPACE, "member": MEMBER})
            except BaseException:
                await connection.close()
                raise
            self._connection = autocommit
        return self._connection

    async def _lost(self, error: BaseException) -> None:
        """The connection failed: its locks are gone (or will be), so own nothing until a
        new connection takes lanes again."""
        if self._held:
            log.warning(
                "lost the inbox lane connection (%s): processing pauses until lanes are taken "
                "again",
                describe(error),
            )
        connection, self._connection = self._connection, None
        self._held.clear()
        self._next_rebalance = time.monotonic() + min(self._every, 1.0)
        if connection is not None:
            try:
                await connection.invalidate()
                await connection.close()
            except Exception as close_error:
                log.debug("invalidating the lane connection: %s", describe(close_error))


def lane_source(engine: AsyncEngine, lanes: int) -> LaneSource:
    """Advisory-lock leases on PostgreSQL, every lane on SQLite."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLaneLeases(engine, lanes)
    return AllLanes()
