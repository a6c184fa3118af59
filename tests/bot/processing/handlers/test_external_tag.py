from __future__ import annotations

from datetime import UTC, datetime

from store.models import RefreshRequest, Tag
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


def tag_event(change_type: str, tag_id: str, tag_type: str = "tag") -> str:
    return samples.event(
        "change_external_tag", Id=tag_id, TagType=tag_type, ChangeType=change_type
    )


async def test_changes_request_one_library_refresh_and_deletes_apply_at_once(
    harness: Harness,
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with harness.db.sessions.begin() as session:
        session.add_all(
            [
                Tag(
                    platform_id="etA",
                    group_platform_id="etG1",
                    group_name="g1",
                    name="a",
                    created_at=now,
                ),
                Tag(
                    platform_id="etB",
                    group_platform_id="etG2",
                    group_name="g2",
                    name="b",
                    created_at=now,
                ),
                Tag(
                    platform_id="etC",
                    group_platform_id="etG2",
                    group_name="g2",
                    name="c",
                    created_at=now,
                ),
            ]
        )
    await harness.feed(
        tag_event("create", "etNew"),
        tag_event("update", "etA"),
        tag_event("delete", "etA"),
        tag_event("delete", "etG2", "tag_group"),
        samples.event("change_external_tag", ChangeType="shuffle", Id="etG1", StrategyId=2),
    )
    assert [(r.kind, r.key) for r in await harness.all(RefreshRequest)] == [("tag", "*")]
    deleted = {t.platform_id: t.deleted_at is not None for t in await harness.all(Tag)}
    assert deleted == {"etA": True, "etB": True, "etC": True}
    assert [e.kind for e in await harness.timeline()] == ["tag_library_changed"] * 5
    assert harness.events == []
