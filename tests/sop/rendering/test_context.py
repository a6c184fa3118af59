"""build_context reads the store: customer, relationship, owner, tags, group, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sop.playbooks.model import Content
from sop.rendering import Renderer, build_context
from sop.rendering.context import ContextError
from store.models import Customer, CustomerGroup, CustomerStaff, CustomerTag, Staff, Tag
from store.models.people import FollowState
from store.models.tags import TagSource
from tests.support.database import Database

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


async def seed(db: Database) -> tuple[int, int]:
    async with db.sessions() as session, session.begin():
        customer = Customer(
            external_userid="wmC1",
            name="王五",
            corp_name="",
            custom_fields={"city": "杭州"},
            created_at=T0,
        )
        group = CustomerGroup(chat_id="wrG1", name="新客福利群", created_at=T0)
        session.add_all([customer, group, Staff(userid="li", name="李雷", created_at=T0)])
        await session.flush()
        session.add_all(
            [
                CustomerStaff(
                    customer_id=customer.id, staff_userid="gone", state=FollowState.REMOVED
                ),
                CustomerStaff(
                    customer_id=customer.id,
                    staff_userid="li",
                    remark="王总",
                    channel_state="expo2026",
                    added_at=T0,
                ),
            ]
        )
        vip = Tag(name="VIP", group_name="等级", created_at=T0)
        old = Tag(name="旧", created_at=T0, deleted_at=T0)
        session.add_all([vip, old])
        await session.flush()
        for tag, staff in ((vip, "li"), (vip, ""), (old, "li")):
            session.add(
                CustomerTag(
                    customer_id=customer.id,
                    tag_id=tag.id,
                    staff_userid=staff,
                    source=TagSource.WECOM,
                    added_at=T0,
                )
            )
        return customer.id, group.id


async def test_the_context_of_a_customer(db: Database) -> None:
    customer_id, group_id = await seed(db)
    async with db.sessions() as session:
        context = await build_context(
            session,
            customer_id=customer_id,
            staff_userid=None,
            playbook_name="onboarding",
            now=T0,
            zone=ZONE,
            group_id=group_id,
            event={"keyword": "价格", "text": "多少钱"},
        )
    assert context["customer"] == {
        "id": customer_id,
        "name": "王五",
        "external_userid": "wmC1",
        "corp_name": "",
        "remark": "王总",
        "tags": ["VIP"],
        "fields": {"city": "杭州"},
        "added_at": T0.astimezone(ZONE),
        "channel": "expo2026",
    }
    assert context["owner"] == {"userid": "li", "name": "李雷"}
    assert context["group"] == {"name": "新客福利群", "chat_id": "wrG1"}
    assert context["event"] == {"keyword": "价格", "text": "多少钱"}
    assert context["playbook"] == {"name": "onboarding"}
    assert context["now"].utcoffset().total_seconds() == 8 * 3600
    text = "{{ customer.remark }}，{{ owner.name }}在{{ group.name }}等您（{{ now.hour }}点）"
    assert Renderer().render(Content(text=text), context) == "王总，李雷在新客福利群等您（10点）"


async def test_an_unknown_staff_member_and_no_group(db: Database) -> None:
    customer_id, _ = await seed(db)
    async with db.sessions() as session:
        context = await build_context(
            session,
            customer_id=customer_id,
            staff_userid="gone",
            playbook_name="p",
            now=T0,
            zone=ZONE,
        )
    assert context["owner"] == {"userid": "gone", "name": ""}
    assert context["customer"]["remark"] == ""
    assert context["group"] is None
    assert context["event"] is None


async def test_a_missing_customer(db: Database) -> None:
    async with db.sessions() as session:
        with pytest.raises(ContextError, match="no customer with id 404"):
            await build_context(
                session, customer_id=404, staff_userid=None, playbook_name="p", now=T0, zone=ZONE
            )
