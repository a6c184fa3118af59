"""The engine's durable state: playbook versions, enrollments, the agenda of due steps, a
trace of every step run, cron fires taken once, and the marketing-touch ledger.

The engine's own tables are the truth; APScheduler only decides when to look at them. Each
agenda row is one step execution for one enrollment (``seq`` counts executions, so a ``goto``
loop revisiting a step gets a new row), claimed and completed in the same
transaction as the outbox rows and tasks the step creates: a step runs once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class PlaybookVersion(Base):
    """One version of a playbook definition, kept as long as enrollments may point to it.

    A changed file gets a new version (``digest`` of its canonical JSON); running enrollments
    keep theirs, new ones take the latest.
    """

    __tablename__ = "playbook_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        UniqueConstraint("name", "digest"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    digest: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(Json)
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnrollmentState(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # ran off the end or reached ``stop``
    EXITED = "exited"  # an exit criterion held (replied, tagged, left, opted out)
    CANCELLED = "cancelled"  # an operator or a transfer ended it
    FAILED = "failed"  # a step raised: kept with the error for an operator


class Waiting(enum.StrEnum):
    NONE = "none"
    REPLY = "reply"  # wait_for_reply: a message from the customer resumes it
    TASK = "task"  # a nudge with ``wait: true``: the task's end resumes it


class Enrollment(Base):
    """One customer (or group) going through one playbook version."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_customer_state", "customer_id", "state"),
        Index("ix_enrollments_playbook_state", "playbook", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Unique per enrolling occurrence (``onboarding:c42:inbox:1001``), so a reprocessed
    #: callback or a retried cron fire does not enroll twice.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    playbook: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("playbook_versions.id"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="CASCADE"), default=None
    )
    staff_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[EnrollmentState] = mapped_column(
        str_enum(EnrollmentState), default=EnrollmentState.ACTIVE
    )
    waiting: Mapped[Waiting] = mapped_column(str_enum(Waiting), default=Waiting.NONE)
    #: What the trigger carried (welcome code, the message said, the group), for templates.
    context: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    #: Executions so far; the next agenda row gets ``seq + 1``.
    seq: Mapped[int] = mapped_column(default=0)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str | None] = mapped_column(Text, default=None)
    goal_met_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgendaState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # claimed until lease_until (by earlier releases; now released)
    DONE = "done"
    SKIPPED = "skipped"  # late beyond the catch-up policy, or the enrollment ended
    CANCELLED = "cancelled"  # superseded (a reply came before the timeout, ...)


class AgendaKind(enum.StrEnum):
    STEP = "step"  # run the step at ``step_index``
    REPLY_TIMEOUT = "reply_timeout"  # wait_for_reply at ``step_index`` timed out
    TASK_TIMEOUT = "task_timeout"  # the nudge task at ``step_index`` was not finished in time


#: The condition of ``ix_agenda_first_steps``; a query that spells it out literally (not
#: with bound parameters) may use the index on both backends.
FIRST_STEP_PENDING = "state = 'pending' AND seq = 1 AND kind = 'step'"


class AgendaItem(Base):
    """A due step execution."""

    __tablename__ = "agenda"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "seq"),
        Index("ix_agenda_state_due_at", "state", "due_at"),
        #: Pending first steps only: the engine claims those that just fell due first.
        Index(
            "ix_agenda_first_steps",
            "due_at",
            sqlite_where=text(FIRST_STEP_PENDING),
            postgresql_where=text(FIRST_STEP_PENDING),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    seq: Mapped[int]
    step_index: Mapped[int]
    kind: Mapped[AgendaKind] = mapped_column(str_enum(AgendaKind), default=AgendaKind.STEP)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[AgendaState] = mapped_column(str_enum(AgendaState), default=AgendaState.PENDING)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StepRun(Base):
    """The trace an operator reads: which step ran, when, what it rendered, what it decided."""

    __tablename__ = "step_runs"
    __table_args__ = (Index("ix_step_runs_enrollment_id", "enrollment_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    seq: Mapped[int]
    step_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: done, skipped_late, capped, opted_out, branch, failed, ...
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class CronFire(Base):
    """A scheduled fire taken once, whichever process saw it first."""

    __tablename__ = "cron_fires"
    __table_args__ = (UniqueConstraint("job", "fire_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: For fan-outs that stream an audience: the last customer id done, to resume after a crash.
    cursor: Mapped[int | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class MarketingTouch(Base):
    """A marketing message decided for a customer: the ledger the frequency cap counts,
    shared by every playbook and campaign."""

    __tablename__ = "marketing_touches"
    __table_args__ = (Index("ix_marketing_touches_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(200))
