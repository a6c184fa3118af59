from __future__ import annotations

from store.models import RefreshRequest, Staff
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_directory_changes(harness: Harness) -> None:
    await harness.feed(
        samples.event(
            "change_contact",
            ChangeType="create_user",
            UserID="wangwu",
            Name="王五",
            Department="1,2",
            MainDepartment=2,
            Status=1,
        ),
        samples.event("change_contact", ChangeType="delete_user", UserID="wangwu"),
        samples.event("change_contact", ChangeType="create_party", Id=2, Name="销售部"),
    )
    staff = await harness.one(Staff, userid="wangwu")
    assert (staff.name, staff.departments, staff.main_department, staff.status) == (
        "王五",
        [1, 2],
        2,
        5,
    )
    assert [(r.kind, r.key) for r in await harness.all(RefreshRequest)] == [("staff", "wangwu")]
    assert [e.kind for e in await harness.timeline()] == ["directory_changed"] * 3
