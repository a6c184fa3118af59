"""Database errors that a retry can cure, and the retry itself.

Several processes on one PostgreSQL database will now and then meet a deadlock or a
serialization failure, lose a connection, or find the server restarting; SQLite answers a
writer that waited too long with "database is locked". None of these says anything about the
work: the transaction was rolled back as a whole and running it again is correct. Every loop
that writes (processor, engine, sender, collectors, fan-out, inbox writer) retries them, so a
row ends ``failed`` only for an error that a retry cannot fix (a constraint violation, a bug).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc

T = TypeVar("T")

#: SQLSTATE classes and codes after which running the transaction again is correct.
#: 08: connection exception; 40001: serialization failure; 40P01: deadlock; 55P03: lock not
#: available; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now (a restart);
#: 53300: too many connections.
_TRANSIENT_CLASSES = ("08",)
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
#: SQLite's primary result codes: SQLITE_BUSY and SQLITE_LOCKED (extended codes share them in
#: their low byte).
_SQLITE_BUSY_CODES = frozenset({5, 6})


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind ``error`` (SQLAlchemy-wrapped or raw asyncpg), if any."""
    for candidate in _chain(error):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


def is_transient(error: BaseException) -> bool:
    """True when running the failed transaction again may well succeed."""
    for candidate in _chain(error):
        if isinstance(candidate, sa_exc.DBAPIError) and candidate.connection_invalidated:
            return True
        if isinstance(candidate, sqlite3.Error):
            code = getattr(candidate, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_BUSY_CODES:
                return True
            if "database is locked" in str(candidate):
                return True
        if isinstance(candidate, ConnectionError | TimeoutError):
            return True
        name, text = type(candidate).__name__, str(candidate).lower()
        if name in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "connection" in text and "closed" in text
        ):
            return True
        if name == "InternalClientError" and "another operation" in text:
            return True  # asyncpg's state after a connection was cut mid-statement
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str) and (
            code in _TRANSIENT_CODES or code.startswith(_TRANSIENT_CLASSES)
        ):
            return True
    return False


def describe(error: BaseException) -> str:
    """A one-line reason for a log: the SQLSTATE or driver error, without the SQL."""
    for candidate in _chain(error):
        if isinstance(candidate, sa_exc.StatementError) and candidate.orig is not None:
            continue
        text = str(candidate).strip().splitlines()[0] if str(candidate).strip() else ""
        code = getattr(candidate, "sqlstate", None)
        name = type(candidate).__name__
        return f"{name} ({code}): {text}" if code else f"{name}: {text}"
    return type(error).__name__


def _chain(error: BaseException) -> list[BaseException]:
    """``error``, what it wraps (``orig``) and what caused it, each once."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        candidate = pending.pop(0)
        if candidate is None or any(candidate is s for s in seen):
            continue
        seen.append(candidate)
        orig = getattr(candidate, "orig", None)
        pending += [
            orig if isinstance(orig, BaseException) else None,
            candidate.__cause__,
            candidate.__context__,
        ]
    return seen


@dataclass(frozen=True)
class Backoff:
    """How a transient failure is retried: ``attempts`` tries in all, waits doubling from
    ``first`` up to ``most`` seconds, each with up to half of it added at random (two
    processes that deadlocked must not retry in lockstep)."""

    attempts: int = 6
    first: float = 0.02
    most: float = 2.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        base = min(self.most, self.first * 2.0 ** (failures - 1))
        jitter: float = (rng or random).uniform(0, base / 2)
        return base + jitter


DEFAULT_BACKOFF = Backoff()


async def retry_transient(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> T:
    """Run ``attempt`` (one whole transaction) until it succeeds, retrying transient errors.

    Other errors, and a transient one that outlasts ``backoff.attempts``, are raised.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as error:
            failures += 1
            if not is_transient(error) or failures >= backoff.attempts:
                raise
            wait = backoff.delay(failures)
            log.info(
                "%s: %s; trying again in %.0f ms (attempt %d of %d)",
                what,
                describe(error),
                wait * 1000,
                failures + 1,
                backoff.attempts,
            )
            await asyncio.sleep(wait)
