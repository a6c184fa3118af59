"""The processes at work on this database, each with a heartbeat: who is alive, who is not.

Work a process claimed (an outbox row being sent) names the process's ``token``; when the
process stops beating (a SIGKILL, a dead machine), the others take that work back within
seconds instead of waiting out a lease of minutes. The rows also tell an operator what runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, UTCDateTime


class ProcessRow(Base):
    __tablename__ = "processes"
    __table_args__ = (Index("ix_processes_seen_at", "seen_at"),)

    token: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    role: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
