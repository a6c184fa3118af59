"""Audience conditions, shared by playbooks (``audience``, ``if``) and campaigns.

Every field is optional and all given fields must hold (AND). Within a field, lists read
naturally: ``tags.any`` is OR, ``tags.all`` is AND, ``tags.none`` is NOT ANY. An empty
``Audience()`` matches every customer; opted-out customers are excluded from marketing by the
engine and campaigns, not here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sop.playbooks.durations import parse_duration


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Names = list[Annotated[str, Field(min_length=1)]]


class Strict(BaseModel):
    """Frozen, and unknown keys are errors (a misspelt key must never be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TagCondition(Strict):
    """Tag names (as in WeCom: ``group/tag`` or just ``tag`` when the name is unique)."""

    all: Names = []
    any: Names = []
    none: Names = []


class OwnerCondition(Strict):
    """The customer is followed (actively) by one of these staff, or by staff in these
    departments (WeCom department ids)."""

    staff: Names = []
    department: list[int] = []


class GroupCondition(Strict):
    """Membership of customer groups, by group name or chat id."""

    any: Names = []
    none: Names = []


class LastInteraction(Strict):
    """``before: 30d``: the last interaction is more than 30 days ago (or there is none);
    ``after: 7d``: within the last 7 days."""

    before: Duration | None = None
    after: Duration | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> LastInteraction:
        if self.before is None and self.after is None:
            raise ValueError("give 'before' and/or 'after', e.g. before: 30d")
        return self


class Audience(Strict):
    tags: TagCondition | None = None
    owner: OwnerCondition | None = None
    #: Channel codes (the ``State`` of the contact way the customer was added through).
    channel: Names = []
    groups: GroupCondition | None = None
    #: Custom fields that must equal these values (``customers.custom_fields``).
    fields: dict[str, str | int | float | bool] = {}
    last_interaction: LastInteraction | None = None

    @property
    def is_everyone(self) -> bool:
        return self == Audience()
