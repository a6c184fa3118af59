"""Fan a run out: stream its audience in keyset batches into recipients and outbox rows.

Each batch is one transaction that locks the run row, decides the batch
(:func:`sop.campaigns.eligibility.decide_batch`), inserts one ``campaign_recipients`` row per
recipient, the outbox rows (``campaign:<run>:<recipient>``; for mass messages one row per
owning staff member and variant per batch, ``campaign:<run>:<owner>:<batch>[:<variant>]``,
since ``add_msg_template`` takes one content per sender), the frequency-cap ledger rows, and
advances the run's ``cursor``. A crash loses at most the batch in flight, which the next
:func:`fan_out` redoes from the cursor; recipient rows are the gate (only recipients whose
row is new get a message) and outbox keys are unique, so nobody is messaged twice.

The run stops fanning out as soon as it is not ``running`` (paused or cancelled): pausing
waits for the batch in flight to commit (the row lock), then holds its rows.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.campaigns.bulk import insert_ignoring, insert_outbox, insert_rows, outbox_values
from sop.campaigns.content import Composer
from sop.campaigns.eligibility import Decision, decide_batch
from sop.campaigns.model import DEFAULT_VARIANT, Campaign
from sop.campaigns.slots import Slots
from sop.campaigns.tasks import task_rows
from sop.clock import Clock
from sop.delivery import messages
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import CampaignRecipient, CampaignRun, MarketingTouch, RunState
from store.transient import retry_transient

log = logging.getLogger(__name__)


@dataclass
class Fanout:
    """What a fan-out needs; ``batch_size`` recipients per transaction."""

    sessions: async_sessionmaker[AsyncSession]
    renderer: Renderer
    settings: SopSettings
    clock: Clock
    zone_default: str
    batch_size: int = 500

    async def run(self, run_id: int) -> int:
        """Fan out ``run_id`` from its cursor until done, paused or cancelled; the number
        of batches written."""
        written = 0
        composers: dict[str, Composer] = {}  # one per run: its staff names are read once
        while await retry_transient(
            lambda: self._next_batch(run_id, composers),
            what=f"campaign run {run_id} fan-out",
            log=log,
        ):
            written += 1
        return written

    async def _next_batch(self, run_id: int, composers: dict[str, Composer]) -> bool:
        """One batch in its own transaction; False when there is nothing (more) to do here.

        A transient database error rolls the whole batch back (cursor included), so
        running it again is exactly the same batch.
        """
        async with self.sessions.begin() as session:
            run = await session.scalar(
                select(CampaignRun)
                .where(
                    CampaignRun.id == run_id,
                    CampaignRun.state == RunState.RUNNING,
                    CampaignRun.fanned_out_at.is_(None),
                )
                .with_for_update(skip_locked=True)
            )
            if run is None:
                return False  # finished, paused, cancelled, or another process has it
            return await self._batch(session, run, composers)

    async def _batch(
        self, session: AsyncSession, run: CampaignRun, composers: dict[str, Composer]
    ) -> bool:
        campaign = Campaign.model_validate(run.definition)
        zone = campaign.schedule.zone(self.zone_default)
        composer = composers.get(campaign.name)
        if composer is None:
            composer = composers[campaign.name] = Composer(campaign, self.renderer, zone)
        now = self.clock.now()
        decisions = await decide_batch(
            session,
            campaign,
            after_id=run.cursor,
            limit=self.batch_size,
            cap=self.settings.frequency_cap,
            now=now,
        )
        if not decisions:
            run.fanned_out_at = run.updated_at = now
            return False
        writer = _BatchWriter(session, run, campaign, composer, now)
        await writer.write(decisions, Slots(run, campaign, zone))
        run.cursor = decisions[-1].position
        run.batches += 1
        run.updated_at = now
        return True


class _BatchWriter:
    def __init__(
        self,
        session: AsyncSession,
        run: CampaignRun,
        campaign: Campaign,
        composer: Composer,
        now: datetime,
    ) -> None:
        self.session = session
        self.run = run
        self.campaign = campaign
        self.composer = composer
        self.now = now

    def key(self, decision: Decision) -> str:
        if not self.campaign.is_mass:
            return f"campaign:{self.run.id}:{decision.recipient}"
        suffix = "" if decision.variant == DEFAULT_VARIANT else f":{decision.variant}"
        return f"campaign:{self.run.id}:{decision.owner}:{self.run.batches + 1}{suffix}"

    async def write(self, decisions: list[Decision], slots: Slots) -> None:
        keys = {d.recipient: self.key(d) for d in decisions if d.excluded is None}
        rows = [self._recipient_row(d, keys.get(d.recipient)) for d in decisions]
        new = set(
            await insert_ignoring(
                self.session,
                CampaignRecipient,
                rows,
                conflict=["run_id", "recipient"],
                returning="recipient",
            )
        )
        fresh = [d for d in decisions if d.recipient in new]
        included = [d for d in fresh if d.excluded is None]
        if self.campaign.is_mass:
            outbox = await self._mass(included, keys, slots)
        else:
            outbox = await self._personal(included, keys, slots)
        await insert_outbox(self.session, outbox)
        if self.campaign.frequency_cap and self.campaign.channel != "group_mass":
            source = f"campaign:{self.campaign.name}:{self.run.id}"
            touches = [
                {"customer_id": d.customer_id, "at": self.now, "source": source} for d in included
            ]
            await insert_rows(self.session, MarketingTouch, touches)
        self._count(fresh)

    def _recipient_row(self, decision: Decision, key: str | None) -> dict[str, Any]:
        return {
            "run_id": self.run.id,
            "recipient": decision.recipient,
            "customer_id": decision.customer_id,
            "group_id": decision.group_id,
            "address": decision.address,
            "variant": decision.variant,
            "owner": decision.owner,
            "outbox_key": key,
            "excluded": decision.excluded,
            "created_at": self.now,
        }

    async def _mass(
        self, included: list[Decision], keys: dict[str, str], slots: Slots
    ) -> list[dict[str, Any]]:
        by_key: dict[str, list[Decision]] = defaultdict(list)
        for decision in included:
            by_key[keys[decision.recipient]].append(decision)
        rows = []
        for key, group in by_key.items():
            owner, variant = group[0].owner, group[0].variant
            assert owner is not None
            payload = await self.composer.mass_payload(
                self.session,
                owner=owner,
                variant=variant,
                addresses=[d.address for d in group if d.address],
                now=self.now,
            )
            rows.append(
                outbox_values(
                    key=key,
                    channel=messages.MASS,
                    recipient=owner,
                    payload=payload,
                    due_at=slots.take(),
                    now=self.now,
                )
            )
        return rows

    async def _personal(
        self, included: list[Decision], keys: dict[str, str], slots: Slots
    ) -> list[dict[str, Any]]:
        texts = []
        for decision in included:
            assert decision.customer_id is not None
            texts.append(
                await self.composer.personal_text(
                    self.session,
                    customer_id=decision.customer_id,
                    owner=decision.owner,
                    variant=decision.variant,
                    now=self.now,
                )
            )
        if self.campaign.channel == "staff_task":
            return await task_rows(
                self.session,
                run=self.run,
                campaign=self.campaign,
                included=included,
                scripts=texts,
                keys=keys,
                slots=slots,
                now=self.now,
            )
        assert self.campaign.account is not None
        channel = messages.mp_channel(self.campaign.account)
        return [
            outbox_values(
                key=keys[decision.recipient],
                channel=channel,
                recipient=decision.address or "",
                payload=messages.text(text),
                due_at=slots.take(),
                now=self.now,
                customer_id=decision.customer_id,
            )
            for decision, text in zip(included, texts, strict=True)
        ]

    def _count(self, fresh: list[Decision]) -> None:
        counts = dict(self.run.counts or {})
        excluded = Counter(counts.get("excluded") or {})
        variants = Counter(counts.get("variants") or {})
        owners = Counter(counts.get("owners") or {})
        for decision in fresh:
            if decision.excluded is not None:
                excluded[decision.excluded] += 1
            else:
                variants[decision.variant] += 1
                owners[decision.owner or ""] += 1
        counts["recipients"] = int(counts.get("recipients") or 0) + len(fresh)
        counts["included"] = sum(variants.values())
        counts["excluded"] = dict(excluded)
        counts["variants"] = dict(variants)
        counts["owners"] = dict(owners)
        self.run.counts = counts
