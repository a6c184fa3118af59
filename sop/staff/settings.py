"""The ``staff:`` section of the configuration: who inherits a departing member's customers.

Defined here, not in ``bot.config``, because ``sop`` must not import ``bot``; the bot's
configuration embeds this model and hands it to the departure subscriber and the poller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pydantic import Field, field_validator

from sop.audience.model import Duration, Strict

UserId = str

#: transfer_success_msg: the platform takes at most 200 characters.
MESSAGE_LIMIT = 200


class Successor(Strict):
    """Who inherits: the entry of the leaver's department (main department first, then the
    others in order), else ``default``; nobody configured means an operator decides
    (``scrm staff transfer FROM TO``)."""

    default: UserId | None = Field(default=None, min_length=1, max_length=64)
    by_department: dict[int, UserId] = {}

    def for_member(self, main_department: int | None, departments: Sequence[int]) -> str | None:
        ordered = [main_department, *departments] if main_department is not None else departments
        for department in ordered:
            if department is not None and department in self.by_department:
                return self.by_department[department]
        return self.default


class StaffSettings(Strict):
    successor: Successor = Successor()
    #: 在职继承 only: what the platform sends the customer once the transfer is done
    #: (None: the platform's own text). 离职继承 sends nothing.
    handover_message: str | None = Field(default=None, max_length=MESSAGE_LIMIT)
    #: How often waiting transfers are polled (transfer_result); the platform takes over
    #: 24 hours after submission unless the customer refuses.
    poll_every: Duration = timedelta(hours=1)
    #: A customer the platform still reports as waiting (or does not report) this long after
    #: submission is recorded as failed (``no_result``), for an operator to look at.
    give_up_after: Duration = timedelta(days=3)
    #: Tell the successor what they inherited (an app message).
    notify_successor: bool = True

    @field_validator("poll_every", "give_up_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration such as 1h or 3d, got {value}")
        return value
