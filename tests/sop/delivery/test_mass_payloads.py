"""Mass-message payloads: add_msg_template's shape, and the platform's limits checked up front."""

from __future__ import annotations

import pytest

from sop.delivery import messages

LINK = {"msgtype": "link", "link": {"title": "新品", "url": "https://example.com"}}


def test_customers_payload_has_the_platform_shape() -> None:
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmA", "wmB"], content="你好", attachments=[LINK]
    )

    assert payload == {
        "chat_type": "single",
        "sender": "zhangsan",
        "text": {"content": "你好"},
        "attachments": [LINK],
        "external_userid": ["wmA", "wmB"],
    }
    assert messages.mass_recipients(payload) == ["wmA", "wmB"]
    assert messages.summarize(payload) == "你好"


def test_groups_payload_preselects_groups_only_when_given() -> None:
    chosen = messages.mass_to_groups(sender="zhangsan", chat_ids=["wrA"], content="群公告")
    open_choice = messages.mass_to_groups(sender="zhangsan", content="群公告")

    assert chosen["chat_type"] == "group"
    assert chosen["chat_id_list"] == ["wrA"]
    assert "chat_id_list" not in open_choice
    assert messages.mass_recipients(open_choice) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": "长" * 1334}, "at most 4000"),
        ({"content": "", "attachments": [LINK] * 10}, "at most 9"),
        ({"content": ""}, "neither text nor attachments"),
        ({"content": "x", "attachments": [{"msgtype": "voice"}]}, "attachment 0"),
        ({"content": "x", "sender": ""}, "needs a sender"),
        ({"content": "x", "external_userids": []}, "names no customer"),
        ({"content": "x", "external_userids": ["wm"] * 10_001}, "at most 10000"),
    ],
)
def test_customers_payload_refuses_what_the_platform_would(
    kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"sender": "zhangsan", "external_userids": ["wmA"], **kwargs}
    with pytest.raises(ValueError, match=message):
        messages.mass_to_customers(**arguments)  # type: ignore[arg-type]


def test_text_of_exactly_4000_bytes_is_allowed() -> None:
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmA"], content="长" * 1333 + "a"
    )
    assert len(payload["text"]["content"].encode()) == 4000


def test_too_many_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 2000"):
        messages.mass_to_groups(sender="zhangsan", chat_ids=["wr"] * 2001, content="x")
