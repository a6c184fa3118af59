"""``preview``: the real engine over simulated days, for a real customer copied out of the
database or for a sample one, writing nothing to the source database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.engine.preview import PreviewResult, run_preview
from sop.engine.preview_seed import copy_customer, sample_customer
from sop.playbooks.model import Playbook
from sop.rendering import Renderer
from sop.settings import SopSettings
from store.models import Enrollment, OutboxRow, Task
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff, add_tag, playbook, tag_customer

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SETTINGS = SopSettings(templates=str(REPO / "templates"), frequency_cap=None)


def follow_up() -> Playbook:
    return playbook(
        "follow_up",
        steps=[
            {"id": "ask", "nudge": {"script": {"text": "问候 {{ customer.name }}"}, "due": "4h"}},
            {"id": "wait", "wait_for_reply": {"timeout": "2d", "on_timeout": "chase"}},
            {"id": "thanks", "tag": "已回复"},
            {"stop": True},
            {"id": "chase", "after": "1d at 10:00", "nudge": {"script": {"text": "再联系一次"}}},
        ],
    )


async def test_no_reply_takes_the_timeout_branch_over_simulated_days() -> None:
    book = follow_up()

    async def seed(session: AsyncSession) -> int:
        return await sample_customer(session, book, now=START)

    result = await run_preview(
        book,
        seed=seed,
        renderer=Renderer(SETTINGS.templates),
        settings=SETTINGS,
        zone_default="Asia/Shanghai",
        start=START,
        days=7,
    )
    assert result.enrolled
    assert [(line.step_id, line.outcome) for line in result.lines] == [
        ("ask", "done"),
        ("wait", "waiting"),
        ("wait", "timeout"),
        ("chase", "done"),
    ]
    assert result.lines[-1].at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 2d, then 10:00
    assert [task.script for task in result.tasks] == ["问候 张三", "再联系一次"]
    assert result.state == "completed"


async def test_a_reply_moves_the_customer_on() -> None:
    book = follow_up()

    async def seed(session: AsyncSession) -> int:
        return await sample_customer(session, book, now=START)

    result = await run_preview(
        book,
        seed=seed,
        renderer=Renderer(SETTINGS.templates),
        settings=SETTINGS,
        zone_default="Asia/Shanghai",
        start=START,
        replies=[timedelta(hours=3)],
    )
    steps = [(line.step_id, line.outcome) for line in result.lines]
    assert ("wait", "reply") in steps and ("thanks", "done") in steps
    assert "chase" not in {line.step_id for line in result.lines}
    assert [m.channel for m in result.messages] == ["wecom_app", "wecom_tag"]


async def test_a_real_customer_is_copied_and_the_source_is_untouched(db: Database) -> None:
    book = playbook(
        "vip_only",
        audience={"tags": {"all": ["VIP"]}},
        steps=[
            {"nudge": {"script": {"text": "{{ customer.name }}: {{ customer.tags | join(',') }}"}}}
        ],
    )
    async with db.sessions.begin() as session:
        await add_staff(session, "lisi", now=START, name="李四")
        customer = await add_customer(session, "wmVip", now=START, owner="lisi", name="王先生")
        tag = await add_tag(session, "VIP", now=START)
        await tag_customer(session, customer.id, tag, now=START)
        plain = await add_customer(session, "wmPlain", now=START, owner="lisi")

    async def preview_of(ref: str) -> PreviewResult:
        async def seed(target: AsyncSession) -> int:
            async with db.sessions() as source:
                return await copy_customer(source, target, ref)

        return await run_preview(
            book,
            seed=seed,
            renderer=Renderer(SETTINGS.templates),
            settings=SETTINGS,
            zone_default="Asia/Shanghai",
            start=START,
        )

    vip = await preview_of("wmVip")
    assert [task.script for task in vip.tasks] == ["王先生: VIP"]
    assert [task.staff_userid for task in vip.tasks] == ["lisi"]
    other = await preview_of(str(plain.id))
    assert not other.enrolled and "audience" in other.skip
    async with db.sessions() as session:
        for table in (Enrollment, OutboxRow, Task):
            assert await session.scalar(select(func.count()).select_from(table)) == 0
