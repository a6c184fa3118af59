"""Mass messages (企业群发) after the platform accepted them: the job and each recipient's fate.

``add_msg_template`` only creates a task: nothing reaches a customer until the sending staff
member confirms it in their client, and then each recipient may still be refused (no longer a
contact, over the receiving limit). One :class:`MassJob` per accepted outbox row follows the
task until every :class:`MassRecipient` has a final status; campaigns count those by
``outbox_id``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, UTCDateTime, str_enum


class MassStatus(enum.StrEnum):
    PENDING = "pending"  # the staff member has not sent it (yet)
    SENT = "sent"  # delivered (send_result status 1)
    NOT_A_CONTACT = "not_a_contact"  # not (or no longer) the sender's contact (fail_list, 2)
    LIMIT_REACHED = "limit_reached"  # received another mass message within the limit (3)
    NOT_CONFIRMED = "not_confirmed"  # the staff member did not send it before the horizon
    FAILED = "failed"  # the results could not be read before the horizon
    WITHDRAWN = "withdrawn"  # the run was cancelled before the staff member sent it


#: Statuses a recipient never leaves.
MASS_FINAL = frozenset(set(MassStatus) - {MassStatus.PENDING})


class MassJob(Base):
    """One accepted ``add_msg_template`` call: the task to watch until it is settled.

    ``next_poll_at`` is when the collector looks again (backing off); ``finished_at`` is set
    once no recipient is pending. ``staff_status`` is the sender's task status as last read
    (0 not sent, 2 sent). ``withdraw_requested_at`` is set when the campaign run was cancelled:
    the collector then cancels the task on the platform unless the staff member sent it.
    """

    __tablename__ = "mass_jobs"
    __table_args__ = (Index("ix_mass_jobs_due", "finished_at", "next_poll_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox.id", ondelete="CASCADE"), unique=True
    )
    msgid: Mapped[str] = mapped_column(String(128), unique=True)
    sender: Mapped[str] = mapped_column(String(64))
    chat_type: Mapped[str] = mapped_column(String(8))  # single | group
    summary: Mapped[str] = mapped_column(Text, default="")
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime)
    polls: Mapped[int] = mapped_column(default=0)
    reminders: Mapped[int] = mapped_column(default=0)
    staff_status: Mapped[int | None] = mapped_column(default=None)
    staff_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    withdraw_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_errcode: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MassRecipient(Base):
    """One customer (``chat_type`` single) or group (group) of a mass message, and its fate."""

    __tablename__ = "mass_recipients"
    __table_args__ = (
        UniqueConstraint("job_id", "recipient"),
        Index("ix_mass_recipients_outbox_status", "outbox_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("mass_jobs.id", ondelete="CASCADE"))
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    msgid: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(128))  # external_userid or chat_id
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True, default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[MassStatus] = mapped_column(str_enum(MassStatus), default=MassStatus.PENDING)
    send_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
