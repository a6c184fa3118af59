"""A small world for campaign tests: two staff members, VIP customers, one opted out, one
without an owner, and a campaign built from the same dictionaries the YAML holds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sop.campaigns.fanout import Fanout
from sop.campaigns.model import Campaign
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import CampaignRecipient, MarketingTouch, OutboxRow
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff, add_tag, tag_customer

ZONE = "Asia/Shanghai"
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def campaign(name: str = "vip", **fields: Any) -> Campaign:
    fields.setdefault("channel", "mass")
    fields.setdefault("audience", {"tags": {"any": ["VIP"]}})
    if "variants" not in fields:
        fields.setdefault("content", {"text": "新品上线，{{ owner.name }} 为您预留了名额"})
    return Campaign.model_validate({"name": name, **fields})


async def seed(db: Database, clock: ManualClock, vips: int = 6) -> dict[str, int]:
    """``vips`` VIP customers alternating between zhangsan and lisi, plus ``opted`` (VIP,
    opted out), ``orphan`` (VIP, no owner) and ``plain`` (not VIP)."""
    now = clock.now()
    ids: dict[str, int] = {}
    async with db.sessions.begin() as session:
        await add_staff(session, "zhangsan", now=now, name="张三")
        await add_staff(session, "lisi", now=now, name="李四")
        vip = await add_tag(session, "VIP", now=now)
        for index in range(vips):
            owner = "zhangsan" if index % 2 == 0 else "lisi"
            customer = await add_customer(session, f"wm{index:03d}", now=now, owner=owner)
            await tag_customer(session, customer.id, vip, now=now)
            ids[f"wm{index:03d}"] = customer.id
        opted = await add_customer(
            session, "wmOpted", now=now, owner="zhangsan", opted_out_at=now - timedelta(days=1)
        )
        orphan = await add_customer(session, "wmOrphan", now=now)
        plain = await add_customer(session, "wmPlain", now=now, owner="lisi")
        for customer in (opted, orphan):
            await tag_customer(session, customer.id, vip, now=now)
        ids |= {"opted": opted.id, "orphan": orphan.id, "plain": plain.id}
    return ids


def fanout(db: Database, clock: ManualClock, **settings: Any) -> Fanout:
    batch = settings.pop("batch_size", 500)
    return Fanout(
        db.sessions,
        Renderer(TEMPLATES),
        SopSettings(**settings),
        clock,
        ZONE,
        batch_size=batch,
    )


async def outbox_rows(db: Database) -> list[OutboxRow]:
    async with db.sessions() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def recipients(db: Database) -> list[CampaignRecipient]:
    async with db.sessions() as session:
        query = select(CampaignRecipient).order_by(CampaignRecipient.id)
        return list((await session.scalars(query)).all())


async def touch(db: Database, customer_id: int, clock: ManualClock) -> None:
    async with db.sessions.begin() as session:
        session.add(MarketingTouch(customer_id=customer_id, at=clock.now(), source="playbook:x"))
