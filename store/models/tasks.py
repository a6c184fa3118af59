"""Staff tasks: what a nudge asks of a staff member, and what became of it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class TaskState(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    SNOOZED = "snoozed"
    SKIPPED = "skipped"  # "not relevant"
    EXPIRED = "expired"
    REASSIGNED = "reassigned"


class Task(Base):
    """A follow-up for a staff member about a customer (or a group), with a suggested script.

    ``origin`` says why (``playbook:onboarding:step:ask``, ``campaign:7``, ``alert:...``);
    ``enrollment_id`` links it to the playbook run that may wait on it.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_staff_state", "staff_userid", "state"),
        Index("ix_tasks_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    staff_userid: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="SET NULL"), default=None
    )
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="SET NULL"), default=None
    )
    step_index: Mapped[int | None] = mapped_column(default=None)
    origin: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    script: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalate_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    state: Mapped[TaskState] = mapped_column(str_enum(TaskState), default=TaskState.OPEN)
    #: Every change: [{"at": iso, "state": ..., "by": userid, "note": ...}].
    history: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: Follow-ups (``sop.tasks``): until when a snoozed task sleeps; when the overdue reminder
    #: reaches the staff member (after quiet hours); when and to whom it was escalated.
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    escalated_to: Mapped[str | None] = mapped_column(String(64), default=None)
