"""The engine transaction steps run in: one database transaction for the rows of a claim
(or a part of it), with what its steps write gathered and what they read shared."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from sop.engine.reads import TransactionReads
from sop.engine.writes import TransactionWrites


@dataclass(frozen=True)
class Transaction:
    """Its session (for ORM work: a nudge's task), that session's connection (for Core
    statements), the writes sent at its end and the reads its steps share."""

    session: AsyncSession
    connection: AsyncConnection
    writes: TransactionWrites
    reads: TransactionReads
