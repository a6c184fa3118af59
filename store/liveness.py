"""This process's heartbeat in the ``processes`` table, and who else is alive.

A worker registers under a random ``token`` and beats every ``BEAT`` seconds. Work it claims
for longer than a transaction (an outbox row between its claim and its outcome) names the
token, so when the process dies without a word (SIGKILL, a lost machine) the others see its
beat stop and take that work back after ``ALIVE_WITHIN``, instead of after a lease of minutes.
A graceful stop removes the row at once. A process that was only stalled and beats again finds
its work taken over; every write it makes on that work is fenced by its token, so it cannot
act on it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Select, Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.models import ProcessRow
from store.transient import describe, retry_transient

log = logging.getLogger(__name__)

#: Seconds between beats.
BEAT = 2.0
#: A process whose last beat is older is dead: its claimed work is taken back.
ALIVE_WITHIN = timedelta(seconds=8)
#: Rows of processes gone this long are deleted (they only tell an operator what ran).
FORGET_AFTER = timedelta(days=1)

PROCESSES = cast(Table, ProcessRow.__table__)


def alive_tokens(now: datetime) -> Select[int]:
    """``SELECT token FROM processes WHERE seen_at >= now - ALIVE_WITHIN``, for ``IN``."""
    return select(PROCESSES.c.token).where(PROCESSES.c.seen_at >= now - ALIVE_WITHIN)


def claimed_by_the_dead(column: ColumnElement[int | None], now: datetime) -> ColumnElement[bool]:
    """True for work claimed by a process that no longer beats (never for unnamed work)."""
    return column.is_not(None) & column.not_in(alive_tokens(now))


class Liveness:
    """One process's row in ``processes``: register, beat, forget."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        now: Callable[[], datetime],
        *,
        role: str,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._now = now
        self._role = role
        self._rng = rng or random.Random()
        self.token = 0

    def _clock(self) -> datetime:
        return self._now()

    async def register(self) -> int:
        """Take a token of this process's own and beat once; the token."""
        for _ in range(10):
            token = self._rng.randrange(1, 2**31 - 1)
            now = self._clock()
            try:
                async with self._sessions.begin() as session:
                    session.add(
                        ProcessRow(
                            token=token,
                            host=socket.gethostname()[:255],
                            pid=os.getpid(),
                            role=self._role,
                            started_at=now,
                            seen_at=now,
                        )
                    )
            except IntegrityError:
                continue  # another process has that token: draw again
            self.token = token
            await self._forget_the_long_gone(now)
            return token
        raise RuntimeError("could not draw a process token ten times: is the table full?")

    async def beat(self) -> None:
        now = self._clock()

        async def write() -> None:
            async with self._sessions.begin() as session:
                found = await session.execute(
                    update(PROCESSES).where(PROCESSES.c.token == self.token).values(seen_at=now)
                )
                if found.rowcount == 0:  # type: ignore[attr-defined]
                    raise LookupError("this process's row is gone")

        try:
            await retry_transient(write, what="heartbeat", log=log)
        except LookupError:
            log.warning("this process was taken for dead (its row was removed): registering again")
            await self.register()

    async def run_forever(
        self,
        stopping: asyncio.Event,
        *,
        on_beat: Callable[[], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Beat every ``BEAT`` seconds until ``stopping`` (``on_beat`` / ``on_failure`` hear
        of each one). The process leaves the table (:meth:`leave`) only once its other loops
        are done with their claims."""
        while not stopping.is_set():
            try:
                await self.beat()
            except Exception as error:
                log.warning("heartbeat failed: %s", describe(error))
                if on_failure is not None:
                    on_failure(error)
            else:
                if on_beat is not None:
                    on_beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=BEAT)

    async def leave(self) -> None:
        """Remove this process's row: a graceful stop, its claims already given back."""
        if not self.token:
            return
        try:
            async with self._sessions.begin() as session:
                await session.execute(delete(PROCESSES).where(PROCESSES.c.token == self.token))
        except Exception as error:
            log.info("could not remove this process's row: %s", describe(error))

    async def _forget_the_long_gone(self, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                delete(PROCESSES).where(PROCESSES.c.seen_at < now - FORGET_AFTER)
            )
