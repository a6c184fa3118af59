"""A run's results per variant, and its recipients one a line (for ``--csv``).

Read from ``campaign_recipients`` after :func:`sop.campaigns.results.collect`: one grouped
query per run, whatever the audience's size. Rates are over the recipients messaged
(``included``) for ``reached``, and over those reached for ``replied`` and ``converted``,
so a variant that reaches fewer people is not credited with their silence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import CampaignRecipient, CampaignRun

#: The CSV's columns, in order.
CSV_COLUMNS = (
    "recipient",
    "customer_id",
    "group_id",
    "address",
    "owner",
    "variant",
    "excluded",
    "outcome",
    "reached_at",
    "replied_at",
    "converted_at",
)


@dataclass
class VariantResult:
    """The counts of one variant of a run."""

    variant: str
    recipients: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    reached: int = 0
    replied: int = 0
    converted: int = 0

    @property
    def included(self) -> int:
        return self.recipients - sum(self.excluded.values())

    @property
    def sent(self) -> int:
        return self.outcomes.get("sent", 0)

    @property
    def reach_rate(self) -> float | None:
        return self.reached / self.included if self.included else None

    @property
    def reply_rate(self) -> float | None:
        return self.replied / self.reached if self.reached else None

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.reached if self.reached else None


@dataclass
class RunReport:
    run: CampaignRun
    variants: dict[str, VariantResult]

    @property
    def total(self) -> VariantResult:
        """Every variant added up (``variant`` is ``all``)."""
        total = VariantResult("all")
        for result in self.variants.values():
            total.recipients += result.recipients
            total.excluded.update(result.excluded)
            total.outcomes.update(result.outcomes)
            total.reached += result.reached
            total.replied += result.replied
            total.converted += result.converted
        return total


async def find_run(session: AsyncSession, name: str, number: int | None = None) -> CampaignRun:
    """Run ``number`` of campaign ``name`` (default: the latest); LookupError says why."""
    statement = select(CampaignRun).where(CampaignRun.campaign == name)
    if number is not None:
        statement = statement.where(CampaignRun.number == number)
    run = await session.scalar(statement.order_by(CampaignRun.number.desc()).limit(1))
    if run is None:
        which = f"run {number}" if number is not None else "any run"
        raise LookupError(f"campaign {name!r} has no {which}: see `scrm campaign status {name}`")
    return run


async def run_report(session: AsyncSession, run: CampaignRun) -> RunReport:
    recipient = CampaignRecipient
    rows = await session.execute(
        select(
            recipient.variant,
            recipient.excluded,
            recipient.outcome,
            func.count(),
            func.count(recipient.reached_at),
            func.count(recipient.replied_at),
            func.count(recipient.converted_at),
        )
        .where(recipient.run_id == run.id)
        .group_by(recipient.variant, recipient.excluded, recipient.outcome)
    )
    variants: dict[str, VariantResult] = {}
    for variant, excluded, outcome, count, reached, replied, converted in rows.all():
        result = variants.setdefault(variant, VariantResult(variant))
        result.recipients += count
        if excluded is not None:
            result.excluded[excluded] += count
            continue
        result.outcomes[outcome or "not_collected"] += count
        result.reached += reached
        result.replied += replied
        result.converted += converted
    return RunReport(run, dict(sorted(variants.items())))


async def recipient_lines(
    session: AsyncSession, run_id: int, *, chunk: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Every recipient of the run as a CSV row, streamed in id order."""
    after = 0
    while True:
        rows = (
            await session.scalars(
                select(CampaignRecipient)
                .where(CampaignRecipient.run_id == run_id, CampaignRecipient.id > after)
                .order_by(CampaignRecipient.id)
                .limit(chunk)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield {column: _cell(getattr(row, column)) for column in CSV_COLUMNS}
        after = rows[-1].id


def _cell(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value
