"""Who gets a campaign: the batch read's exclusions, owners and keyset paging, both backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, text
from sqlalchemy.orm import ORMExecuteState

from sop.campaigns.eligibility import Decision, decide_batch
from sop.campaigns.model import Campaign
from sop.settings import FrequencyCap
from store.models import MpFollower
from tests.sop.campaigns.world import campaign, seed, touch
from tests.support.clock import ManualClock
from tests.support.database import Database, open_database
from tests.support.engine_factories import add_customer, add_tag, follow, tag_customer

CAP = FrequencyCap(messages=2, per=timedelta(days=1))


async def decide_all(
    db: Database, clock: ManualClock, definition: Campaign, *, limit: int = 500
) -> list[Decision]:
    """Every decision of the audience, read in keyset batches of ``limit``."""
    found: list[Decision] = []
    cursor: int | None = None
    async with db.sessions() as session:
        while batch := await decide_batch(
            session, definition, after_id=cursor, limit=limit, cap=CAP, now=clock.now()
        ):
            found.extend(batch)
            cursor = batch[-1].position
    return found


def reasons(decisions: list[Decision]) -> dict[int | None, str | None]:
    return {d.customer_id: d.excluded for d in decisions}


async def test_exclusions_take_the_first_reason_that_applies(
    db: Database, clock: ManualClock
) -> None:
    ids = await seed(db, clock)
    clock.advance(timedelta(days=2))
    await touch(db, ids["opted"], clock)  # opted out and messaged: opted_out wins
    await touch(db, ids["wm000"], clock)  # messaged within 7 days
    for _ in range(2):  # messaged within 7 days and capped: messaged_recently wins
        await touch(db, ids["wm001"], clock)
    clock.advance(timedelta(hours=1))
    definition = campaign(audience={"tags": {"any": ["VIP"]}, "exclude_messaged_within": "7d"})
    found = reasons(await decide_all(db, clock, definition))
    assert found[ids["opted"]] == "opted_out"
    assert found[ids["orphan"]] == "no_owner"
    assert found[ids["wm000"]] == "messaged_recently"
    assert found[ids["wm001"]] == "messaged_recently"
    assert found[ids["wm002"]] is None
    # Without the window, two touches within the cap's day are a cap; one is not.
    capped = reasons(await decide_all(db, clock, campaign()))
    assert (capped[ids["wm000"]], capped[ids["wm001"]]) == (None, "capped")
    # A campaign that opts out of the cap ignores the ledger.
    uncapped = reasons(await decide_all(db, clock, campaign(frequency_cap=False)))
    assert uncapped[ids["wm001"]] is None


async def test_the_sender_is_the_oldest_active_owner_among_the_audience_owners(
    db: Database, clock: ManualClock
) -> None:
    ids = await seed(db, clock)
    async with db.sessions.begin() as session:  # wm000 (zhangsan's) also follows lisi, later
        await follow(session, ids["wm000"], "lisi", added_at=clock.now() + timedelta(hours=1))
    everyone = {d.customer_id: d.owner for d in await decide_all(db, clock, campaign())}
    assert everyone[ids["wm000"]] == "zhangsan"
    lisi = campaign(audience={"tags": {"any": ["VIP"]}, "owner": {"staff": ["lisi"]}})
    theirs = {d.customer_id: d.owner for d in await decide_all(db, clock, lisi)}
    assert theirs[ids["wm000"]] == "lisi"
    assert set(theirs.values()) == {"lisi"}


async def test_official_account_recipients_need_an_open_48_hour_window(
    db: Database, clock: ManualClock
) -> None:
    now = clock.now()
    async with db.sessions.begin() as session:
        vip = await add_tag(session, "VIP", now=now)
        people = {}
        for name in ("recent", "stale", "silent", "left", "stranger"):
            customer = await add_customer(session, f"wm{name}", now=now)
            await tag_customer(session, customer.id, vip, now=now)
            people[name] = customer.id
        last = {"recent": timedelta(hours=3), "stale": timedelta(hours=49), "silent": None}
        for name, ago in (*last.items(), ("left", timedelta(hours=1))):
            session.add(
                MpFollower(
                    account="news",
                    openid=f"o{name}",
                    customer_id=people[name],
                    subscribed=name != "left",
                    last_message_at=now - ago if ago is not None else None,
                )
            )
    decisions = await decide_all(db, clock, campaign(channel="mp", account="news"))
    found = {d.customer_id: (d.address, d.excluded) for d in decisions}
    assert found == {
        people["recent"]: ("orecent", None),
        people["stale"]: ("ostale", "outside_48h_window"),
        people["silent"]: ("osilent", "outside_48h_window"),
        people["left"]: (None, "not_a_follower"),
        people["stranger"]: (None, "not_a_follower"),
    }


async def test_keyset_batches_cover_the_audience_once_in_id_order(
    db: Database, clock: ManualClock
) -> None:
    await seed(db, clock, vips=10)
    whole = await decide_all(db, clock, campaign())
    paged = await decide_all(db, clock, campaign(), limit=3)
    assert [d.recipient for d in paged] == [d.recipient for d in whole]
    ids = [d.position for d in whole]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 12  # 10 VIPs, opted, orphan


async def test_only_the_decision_read_is_planned_for_its_parameters(
    postgres_url: str, clock: ManualClock
) -> None:
    """PostgreSQL: the read runs under force_custom_plan; the rest of the batch's
    transaction (the inserts) is back to the configured mode."""
    db = await open_database("postgres", postgres_url)
    try:
        await _check_plan_mode(db, clock)
    finally:
        await db.engine.dispose()


async def _check_plan_mode(db: Database, clock: ManualClock) -> None:
    await seed(db, clock)
    async with db.sessions.begin() as session:
        seen: list[str] = []

        @event.listens_for(session.sync_session, "do_orm_execute")
        def note(state: ORMExecuteState) -> None:
            if "customers.external_userid" in str(state.statement):
                mode = state.session.execute(text("SHOW plan_cache_mode")).scalar_one()
                seen.append(str(mode))

        await decide_batch(session, campaign(), after_id=None, limit=10, cap=CAP, now=clock.now())
        after = await session.scalar(text("SHOW plan_cache_mode"))
    assert seen == ["force_custom_plan"]
    assert after == "auto"
