"""Customer inheritance (离职继承 / 在职继承) and the audit log of every step.

A transfer job hands one staff member's customers and groups to another through the
platform's transfer APIs. Its items are what the poller works through: a customer is
submitted (``waiting``: the platform takes over after 24 hours unless the customer refuses),
then ``transferred`` or ``failed`` with the reason; a group changes owner at once or fails.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class TransferMode(enum.StrEnum):
    RESIGNED = "resigned"  # 离职继承: the handover member has left the company
    ONJOB = "onjob"  # 在职继承: the handover member is still there


class TransferJobState(enum.StrEnum):
    RUNNING = "running"  # items to submit or to poll
    DONE = "done"  # every item is final (transferred or failed)
    CANCELLED = "cancelled"


class TransferItemKind(enum.StrEnum):
    CUSTOMER = "customer"
    GROUP = "group"


class TransferItemState(enum.StrEnum):
    PENDING = "pending"  # not submitted yet
    WAITING = "waiting"  # submitted; the platform takes over later (transfer_result status 2)
    TRANSFERRED = "transferred"
    FAILED = "failed"


#: Item states that will not change again.
ITEM_FINAL = frozenset({TransferItemState.TRANSFERRED, TransferItemState.FAILED})


class TransferJob(Base):
    """One handover from ``handover_userid`` to ``takeover_userid``."""

    __tablename__ = "transfer_jobs"
    __table_args__ = (Index("ix_transfer_jobs_state_next_check_at", "state", "next_check_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Unique per cause (``departure:zhangsan:inbox:42``, ``operator:...``): a reprocessed
    #: callback does not plan the same handover twice.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    mode: Mapped[TransferMode] = mapped_column(str_enum(TransferMode))
    handover_userid: Mapped[str] = mapped_column(String(64), index=True)
    takeover_userid: Mapped[str] = mapped_column(String(64), index=True)
    #: Who asked: ``departure`` (change_contact delete_user) or the operator's name.
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    #: 在职继承's transfer_success_msg (at most 200 characters); None: the platform's text.
    message: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[TransferJobState] = mapped_column(
        str_enum(TransferJobState), default=TransferJobState.RUNNING
    )
    #: When a poller should look at the job next (also its lease while one works on it).
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    #: Items per final state, written when the job finishes.
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TransferItem(Base):
    """One customer or group of a job, and what became of it."""

    __tablename__ = "transfer_items"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", "subject"),
        Index("ix_transfer_items_job_state", "job_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("transfer_jobs.id", ondelete="CASCADE"))
    kind: Mapped[TransferItemKind] = mapped_column(str_enum(TransferItemKind))
    #: The platform's id: external_userid of a customer, chat_id of a group.
    subject: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True, default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[TransferItemState] = mapped_column(
        str_enum(TransferItemState), default=TransferItemState.PENDING
    )
    #: transfer_result's status: 1 done, 2 waiting, 3 refused, 4 takeover at limit, 5 none.
    status: Mapped[int | None] = mapped_column(default=None)
    errcode: Mapped[int | None] = mapped_column(default=None)
    #: Why it failed, in the platform's words (customer_refused, customer_limit_exceed, ...).
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: The platform's (future, while waiting) takeover time.
    takeover_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One step an operator may need to account for: who did what to whom, and the detail."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject_at", "subject", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: ``departure``, ``poller``, an operator's name, ...
    actor: Mapped[str] = mapped_column(String(64))
    #: ``transfer_planned``, ``task_reassigned``, ``customer_transferred``, ...
    action: Mapped[str] = mapped_column(String(64))
    #: What it was done to: ``staff:zhangsan``, ``customer:wm..``, ``task:42``, ``job:3``.
    subject: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
