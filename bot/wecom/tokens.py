"""The access token of one credential: cached in memory, shared through the database.

WeCom limits gettoken calls and gives every token about two hours, so every process of the
toolkit should use the same token: the ``access_tokens`` table is the shared place. A process
reads the table before it calls gettoken, refreshes a few minutes before expiry, and lets one
coroutine at a time fetch (an ``asyncio.Lock``); the others wait and take its result. Across
processes two may fetch at the same moment; that is harmless, since the platform returns the
same token while it is valid, and the later write wins.

A refresh near expiry may bring back the same token with little time left. Such a token is
used as it is until it expires, fetching again at most once a ``refetch_interval``, so a token
nearing its end never turns into a gettoken per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from store.models import AccessToken

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_MARGIN = timedelta(minutes=5)
REFETCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class FetchedToken:
    """What gettoken answered."""

    token: str
    expires_in: int


@dataclass(frozen=True)
class CachedToken:
    token: str
    expires_at: datetime
    fetched_at: datetime

    def usable(self, now: datetime, margin: timedelta, refetch_interval: timedelta) -> bool:
        """Valid, and either far from expiry or fetched so recently that fetching is futile."""
        if now >= self.expires_at:
            return False
        return now < self.expires_at - margin or now < self.fetched_at + refetch_interval


class AccessTokenCache:
    """Hands out the current token of ``credential``; ``fetch`` calls gettoken.

    Create one per credential per process: the lock that keeps gettoken single lives here.
    """

    def __init__(
        self,
        *,
        credential: str,
        fetch: Callable[[], Awaitable[FetchedToken]],
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        refresh_margin: timedelta = REFRESH_MARGIN,
        refetch_interval: timedelta = REFETCH_INTERVAL,
    ) -> None:
        self.credential = credential
        self._fetch = fetch
        self._sessions = sessions
        self._clock = clock
        self._margin = refresh_margin
        self._refetch_interval = refetch_interval
        self._cached: CachedToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A token to call the API with; calls gettoken at most once."""
        cached = self._cached
        if cached is not None and self._usable(cached):
            return cached.token
        async with self._lock:
            cached = self._cached
            if cached is not None and self._usable(cached):
                return cached.token
            stored = await self._load()
            if stored is not None and self._usable(stored):
                self._cached = stored
                return stored.token
            fresh = await self._refresh()
            self._cached = fresh
            return fresh.token

    async def invalidate(self, token: str) -> None:
        """Forget ``token`` after the platform refused it, unless it was already replaced."""
        async with self._lock:
            if self._cached is not None and self._cached.token == token:
                self._cached = None
            async with self._sessions.begin() as session:
                await session.execute(
                    delete(AccessToken).where(
                        AccessToken.credential == self.credential, AccessToken.token == token
                    )
                )

    async def call_with_token(
        self,
        send: Callable[[str], Awaitable[T]],
        *,
        refused: Callable[[Exception], bool],
    ) -> T:
        """``send(token)``; if the platform refused the token, replace it and send once more.

        Bounded on purpose: a second refusal is the caller's error, never a loop.
        """
        token = await self.get()
        try:
            return await send(token)
        except Exception as exc:
            if not refused(exc):
                raise
        await self.invalidate(token)
        return await send(await self.get())

    def _usable(self, cached: CachedToken) -> bool:
        return cached.usable(self._clock.now(), self._margin, self._refetch_interval)

    async def _load(self) -> CachedToken | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(AccessToken).where(AccessToken.credential == self.credential)
            )
        if row is None:
            return None
        return CachedToken(row.token, row.expires_at, row.fetched_at)

    async def _refresh(self) -> CachedToken:
        fetched = await self._fetch()
        now = self._clock.now()
        cached = CachedToken(fetched.token, now + timedelta(seconds=fetched.expires_in), now)
        log.info(
            "fetched access token for %s, valid for %s s", self.credential, fetched.expires_in
        )
        await self._store(cached)
        return cached

    async def _store(self, cached: CachedToken) -> None:
        async with self._sessions.begin() as session:
            values = {
                "credential": self.credential,
                "token": cached.token,
                "expires_at": cached.expires_at,
                "fetched_at": cached.fetched_at,
            }
            changes = {k: v for k, v in values.items() if k != "credential"}
            if session.get_bind().dialect.name == "postgresql":
                pg = postgresql_insert(AccessToken).values(values)
                await session.execute(
                    pg.on_conflict_do_update(index_elements=["credential"], set_=changes)
                )
            else:
                lite = sqlite_insert(AccessToken).values(values)
                await session.execute(
                    lite.on_conflict_do_update(index_elements=["credential"], set_=changes)
                )
