"""Campaign moves for the end-to-end world: tag customers, start a run, confirm mass sends,
collect and report, as an operator's commands and the staff's clients would."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from sop.campaigns import control
from sop.campaigns.fanout import Fanout
from sop.campaigns.model import Campaign
from sop.campaigns.report import RunReport, find_run, run_report
from sop.campaigns.results import collect
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import Customer, Tag
from tests.support.e2e import REPO, ZONE, World
from tests.support.engine_factories import add_tag, tag_customer


async def tag_all(world: World, tag: str, customer_ids: Iterable[int]) -> None:
    """Put ``tag`` (created the first time) on customers, as an operator's import would."""
    async with world.runtime.sessions.begin() as session:
        row = await session.scalar(select(Tag).where(Tag.name == tag))
        if row is None:
            row = await add_tag(session, tag, now=world.now)
        for customer_id in customer_ids:
            await tag_customer(session, customer_id, row, now=world.now)


async def vips(world: World, people: dict[str, str]) -> None:
    """Customers (external userid -> owning staff) added through WeCom, then tagged VIP."""
    for external_userid, staff in people.items():
        await world.customer_adds(external_userid, staff=staff)
    await world.settle()
    async with world.runtime.sessions() as session:
        ids = await session.scalars(
            select(Customer.id).where(Customer.external_userid.in_(list(people)))
        )
        found = list(ids)
    await tag_all(world, "VIP", found)


async def start(world: World, campaign: Campaign, *, settings: SopSettings | None = None) -> int:
    """``scrm campaign start``: a new run, fanned out (with the world's ``sop`` settings
    unless given); its id."""
    async with world.runtime.sessions.begin() as session:
        run = await control.create_run(session, campaign, now=world.now, zone_default=ZONE)
        run_id = run.id
    sop = settings or world.runtime.config.sop
    renderer = Renderer(REPO / "templates")
    await Fanout(world.runtime.sessions, renderer, sop, world.clock, ZONE).run(run_id)
    return run_id


def confirm_all(world: World) -> None:
    """Every staff member sends every mass message waiting in their client."""
    for message in world.wecom.mass.messages.values():
        for userid, task in message.tasks.items():
            if task.status == 0:
                world.wecom.confirm_mass(message.msgid, userid)


async def report(world: World, name: str) -> RunReport:
    """``scrm campaign report NAME``: collect the latest run's outcomes, then report."""
    async with world.runtime.sessions.begin() as session:
        run = await find_run(session, name)
        await collect(session, run.id, now=world.now)
    async with world.runtime.sessions() as session:
        return await run_report(session, run)
