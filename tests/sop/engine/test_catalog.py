"""Playbook versions: stored once per definition, numbered per name, safe under races."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, select

from sop.engine.catalog import Catalog, definition_of, digest_of, register
from sop.playbooks.model import Playbook
from store.models import PlaybookVersion
from tests.sop.engine.conftest import wait_until_blocked
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import playbook


def _onboarding(script: str = "Hello") -> Playbook:
    return playbook(
        "onboarding",
        description="new customers",
        quiet_hours={"start": "21:00", "end": "08:00"},
        reentry="30d",
        steps=[
            {"id": "ask", "nudge": {"script": {"text": script}, "due": "2h"}},
            {"after": "1d at 10:00", "wait_for_reply": {"timeout": "2d", "on_timeout": "ask"}},
            {"if": {"tags": {"any": ["VIP"]}}, "then": "ask"},
        ],
    )


async def _versions(db: Database, name: str) -> list[tuple[int, int]]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(PlaybookVersion.id, PlaybookVersion.version)
            .where(PlaybookVersion.name == name)
            .order_by(PlaybookVersion.version)
        )
        return [(row.id, row.version) for row in rows]


def test_digest_ignores_how_the_definition_was_written() -> None:
    first = _onboarding()
    again = Playbook.model_validate(definition_of(first))
    assert again == first
    assert digest_of(again) == digest_of(first)
    assert digest_of(_onboarding("Hi")) != digest_of(first)


async def test_unchanged_definition_reuses_its_version(db: Database, clock: ManualClock) -> None:
    async with db.sessions.begin() as session:
        first = await register(session, {"onboarding": _onboarding()}, now=clock.now())
    async with db.sessions.begin() as session:
        second = await register(session, {"onboarding": _onboarding()}, now=clock.now())
    assert first.latest("onboarding").version_id == second.latest("onboarding").version_id
    assert second.latest("onboarding").version == 1
    assert len(await _versions(db, "onboarding")) == 1


async def test_changed_definition_gets_the_next_version_and_old_ones_read_back(
    db: Database, clock: ManualClock
) -> None:
    async with db.sessions.begin() as session:
        old = (await register(session, {"onboarding": _onboarding()}, now=clock.now())).latest(
            "onboarding"
        )
    async with db.sessions.begin() as session:
        catalog = await register(session, {"onboarding": _onboarding("Hi")}, now=clock.now())
    new = catalog.latest("onboarding")
    assert (new.version, old.version) == (2, 1)
    assert new.version_id != old.version_id
    async with db.sessions() as session:
        assert await catalog.get_version(session, old.version_id) == _onboarding()
        assert await catalog.get_version(session, new.version_id) is new.playbook
    fresh = Catalog()
    async with db.sessions() as session:
        assert await fresh.get_version(session, old.version_id) == _onboarding()
        await session.execute(delete(PlaybookVersion).where(PlaybookVersion.id == old.version_id))
        # Read once, then answered from memory.
        assert await fresh.get_version(session, old.version_id) == _onboarding()
        try:
            await Catalog().get_version(session, old.version_id)
        except LookupError as exc:
            assert f"playbook version {old.version_id}" in str(exc)
        else:
            raise AssertionError("a missing version must raise")


async def test_indexes_enabled_playbooks_by_event(db: Database, clock: ManualClock) -> None:
    books = {
        "onboarding": _onboarding(),
        "keywords": playbook(
            "keywords", trigger={"event": "message_received", "keywords": ["价"]}
        ),
        "paused": playbook("paused", enabled=False),
        "monthly": playbook("monthly", trigger={"schedule": {"cron": "0 10 1 * *"}}),
    }
    async with db.sessions.begin() as session:
        catalog = await register(session, books, now=clock.now())
    assert [e.name for e in catalog.by_event("customer_added")] == ["onboarding"]
    assert [e.name for e in catalog.by_event("message_received")] == ["keywords"]
    assert catalog.by_event("left_group") == ()
    assert [e.name for e in catalog.active()] == ["keywords", "monthly", "onboarding"]
    assert "paused" in catalog
    try:
        catalog.latest("onbording")
    except KeyError as exc:
        assert "onbording" in str(exc) and "onboarding" in str(exc)
    else:
        raise AssertionError("an unknown name must raise")


async def test_two_processes_registering_at_once(db: Database, clock: ManualClock) -> None:
    """Both store the same definition at the same moment: one row, both catalogs use it. A
    third, different definition racing for version 2 gets version 3."""
    async with db.sessions.begin() as session:
        await register(session, {"onboarding": _onboarding("v1")}, now=clock.now())

    async def other_process(script: str) -> Catalog:
        async with db.sessions.begin() as session:
            return await register(session, {"onboarding": _onboarding(script)}, now=clock.now())

    first_session = db.sessions()
    await first_session.begin()
    first = await register(first_session, {"onboarding": _onboarding("v2")}, now=clock.now())
    same = asyncio.create_task(other_process("v2"))
    await wait_until_blocked(db)
    await first_session.commit()
    await first_session.close()
    second = await same
    assert second.latest("onboarding").version_id == first.latest("onboarding").version_id
    assert second.latest("onboarding").version == 2

    racing_session = db.sessions()
    await racing_session.begin()
    await register(racing_session, {"onboarding": _onboarding("v3")}, now=clock.now())
    different = asyncio.create_task(other_process("v4"))
    await wait_until_blocked(db)
    await racing_session.commit()
    await racing_session.close()
    assert (await different).latest("onboarding").version == 4
    versions = await _versions(db, "onboarding")
    assert [v for _, v in versions] == [1, 2, 3, 4]
    async with db.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(PlaybookVersion))
    assert count == 4
