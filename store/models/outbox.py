"""The outbox: every message the toolkit will send, written in the transaction that decides it.

A row is created together with the change that causes it (an enrollment step, a campaign, a
welcome for a new customer) and sent later by the sender, so a crash between the decision and
the send loses nothing and a retried transaction adds nothing: ``idempotency_key`` is unique
and chosen by the creator (``enrollment:42:step:3``, ``campaign:7:wmAbc``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class OutboxState(enum.StrEnum):
    PENDING = "pending"  # waiting for due_at (or for a retry after a transient error)
    SENDING = "sending"  # claimed by a sender until lease_until; attempted_at once tried
    SENT = "sent"
    FAILED = "failed"  # the platform refused it, or transient errors outlasted the retries
    UNCERTAIN = "uncertain"  # a customer message whose send may or may not have happened;
    # settle_at set: the sender will ask the platform; unset: a person has to check
    EXPIRED = "expired"  # its window passed before it could be sent (welcome code, 48 h)
    CANCELLED = "cancelled"  # an operator or the engine withdrew it


#: States a row never leaves by itself (an uncertain row with ``settle_at`` may still be
#: settled by the sender, when the platform can tell what happened).
FINAL_STATES = frozenset(
    {
        OutboxState.SENT,
        OutboxState.FAILED,
        OutboxState.UNCERTAIN,
        OutboxState.EXPIRED,
        OutboxState.CANCELLED,
    }
)


#: The rows the sender may claim ahead of the rest (see ``sop.delivery.claims``).
PENDING_WITH_WINDOW = "state = 'pending' AND expires_at IS NOT NULL"


class OutboxRow(Base):
    """One message to send through one channel to one recipient.

    ``recipient`` is what the channel addresses (a staff userid, an external userid, an
    openid); ``payload`` is the channel's message body. ``expires_at``, when set, is the end
    of the window in which the message may go out at all. ``platform_ids`` keeps what the
    platform answered (``msgid``, ``response_code``, ...), for later updates and audits.

    A claimed row (``sending``) is only *attempted* once ``attempted_at`` is set, just before
    its request may leave the sender: a row claimed but never attempted goes back to
    ``pending`` when its lease lapses, and only an attempted customer message can become
    ``uncertain``. ``settle_at`` is when the sender next asks the platform what became of an
    uncertain row (None: nothing to ask, a person decides).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due_at", "state", "due_at"),
        # Only rows that can be urgent: the bulk (no window) never touches it.
        Index(
            "ix_outbox_pending_expires_at",
            "expires_at",
            sqlite_where=text(PENDING_WITH_WINDOW),
            postgresql_where=text(PENDING_WITH_WINDOW),
        ),
        Index("ix_outbox_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    state: Mapped[OutboxState] = mapped_column(str_enum(OutboxState), default=OutboxState.PENDING)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    settle_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    last_errcode: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    platform_ids: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
