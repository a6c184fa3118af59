from __future__ import annotations

import pytest

from sop.events import StaffAction
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


@pytest.mark.parametrize(
    ("event", "key"),
    [
        ("subscribe", ""),
        ("unsubscribe", ""),
        ("enter_agent", ""),
        ("click", "m1"),
        ("view", "http://v"),
    ],
)
async def test_staff_actions(harness: Harness, event: str, key: str) -> None:
    fields = {"EventKey": key} if key else {}
    await harness.feed(samples.event(event, sender="zhangsan", AgentID=1000002, **fields))
    (action,) = harness.published(StaffAction)
    assert (action.staff_userid, action.action, action.key) == ("zhangsan", event, key)
    (entry,) = await harness.timeline()
    assert (entry.kind, entry.staff_userid) == ("staff_action", "zhangsan")
