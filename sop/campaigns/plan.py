"""``campaign plan``: what a start would do, computed with the fan-out's own decisions, writing
nothing.

The audience is streamed in the same keyset batches and decided by the same
:func:`~sop.campaigns.eligibility.decide_batch`, so the counts are the ones a start would write
(minus whatever changes in between). A plan is refused, with the reason, when nobody would
receive anything or when a sample render breaks a platform limit (the payload builders raise
``ValueError`` naming the limit) or a template fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sop.audience.describe import describe
from sop.campaigns.content import Composer
from sop.campaigns.eligibility import Decision, decide_batch
from sop.campaigns.model import Campaign
from sop.rendering.renderer import Renderer, RenderError
from sop.settings import SopSettings


@dataclass(frozen=True)
class Sample:
    variant: str
    recipient: str
    owner: str
    text: str


@dataclass
class Plan:
    campaign: Campaign
    audience: str
    matched: int = 0
    included: int = 0
    #: (owner, channel) -> recipients.
    by_owner: Counter[tuple[str, str]] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


async def make_plan(
    session: AsyncSession,
    campaign: Campaign,
    *,
    renderer: Renderer,
    settings: SopSettings,
    zone_default: str,
    now: datetime,
    batch_size: int = 1000,
) -> Plan:
    if campaign.channel == "group_mass":
        target = campaign.groups
        names = ", ".join([*(target.owners if target else []), *(target.names if target else [])])
        shown = f"groups of {names}" if names else "every customer group"
    else:
        shown = describe(campaign.audience)
    plan = Plan(campaign, shown)
    firsts: dict[str, Decision] = {}
    cursor: int | None = None
    cap = settings.frequency_cap
    while True:
        batch = await decide_batch(
            session, campaign, after_id=cursor, limit=batch_size, cap=cap, now=now
        )
        if not batch:
            break
        for decision in batch:
            plan.matched += 1
            if decision.excluded is not None:
                plan.excluded[decision.excluded] += 1
                continue
            plan.included += 1
            plan.variants[decision.variant] += 1
            plan.by_owner[(decision.owner or "-", campaign.channel)] += 1
            firsts.setdefault(decision.variant, decision)
        cursor = batch[-1].position
    if plan.included == 0:
        why = "the audience matches nobody" if plan.matched == 0 else "every match is excluded"
        plan.refusals.append(f"campaign {campaign.name!r} has no recipient: {why}")
    composer = Composer(campaign, renderer, campaign.schedule.zone(zone_default))
    for variant in sorted(firsts):
        await _sample(session, plan, composer, firsts[variant], now)
    return plan


async def _sample(
    session: AsyncSession, plan: Plan, composer: Composer, decision: Decision, now: datetime
) -> None:
    campaign = plan.campaign
    owner = decision.owner or ""
    try:
        if campaign.is_mass:
            payload = await composer.mass_payload(
                session,
                owner=owner,
                variant=decision.variant,
                addresses=[decision.address or "sample"],
                now=now,
            )
            text = str((payload.get("text") or {}).get("content", ""))
        else:
            assert decision.customer_id is not None
            text = await composer.personal_text(
                session,
                customer_id=decision.customer_id,
                owner=decision.owner,
                variant=decision.variant,
                now=now,
            )
    except (ValueError, RenderError) as exc:
        plan.refusals.append(f"variant {decision.variant!r}: {exc}")
        return
    plan.samples.append(Sample(decision.variant, decision.recipient, owner, text))
