"""Callbacks about one subject share a lane, whichever shape they come in."""

from __future__ import annotations

import zlib

from bot.callback import samples
from bot.callback.lanes import ROUTINE, URGENT, lane_of, priority_of
from store.models.inbox import LANES

CORP = "ww0corp"


def _alice_added() -> str:
    return samples.customer_added_xml(
        corp_id=CORP,
        user_id="zhangsan",
        external_user_id="wmAlice",
        state="expo2026",
        welcome_code="W1",
        create_time=1,
    )


def _lane(subject: str) -> int:
    return zlib.crc32(subject.encode()) % LANES


def test_an_external_contact_event_goes_by_its_customer() -> None:
    added = _alice_added()
    assert lane_of("xml", added) == _lane("wmAlice")


def test_a_group_event_goes_by_its_group() -> None:
    joined = samples.group_join_xml(
        corp_id=CORP, chat_id="wrGroup1", member_ids=["wmAlice", "wmBob"], create_time=1
    )
    assert lane_of("xml", joined) == _lane("wrGroup1")


def test_an_app_message_goes_by_its_staff_member() -> None:
    text = samples.staff_text_xml(
        corp_id=CORP, user_id="lisi", agent_id=1000002, content="done 4", msg_id=1, create_time=1
    )
    assert lane_of("xml", text) == _lane("lisi")


def test_official_account_messages_go_by_their_follower_in_either_format() -> None:
    xml = samples.mp_text_xml(
        account_id="gh_1", openid="oFollower", content="价格", msg_id=1, create_time=1
    )
    pushed = samples.mp_text_json(
        account_id="gh_1", openid="oFollower", content="价格", msg_id=1, create_time=1
    )
    assert lane_of("xml", xml) == lane_of("json", pushed) == _lane("oFollower")


def test_ai_bot_mentions_go_by_their_chat_else_their_sender() -> None:
    in_group = samples.aibot_text_json(
        msg_id="m1", aibot_id="b", user_id="lisi", content="hi", chat_id="wrChat"
    )
    direct = samples.aibot_text_json(msg_id="m2", aibot_id="b", user_id="lisi", content="hi")
    assert lane_of("json", in_group) == _lane("wrChat")
    assert lane_of("json", direct) == _lane("lisi")


def test_a_plain_value_without_cdata_counts_the_same() -> None:
    assert lane_of("xml", "<xml><ChatId> wrGroup1 </ChatId></xml>") == _lane("wrGroup1")


def test_a_payload_without_a_subject_is_lane_zero() -> None:
    assert lane_of("xml", "<xml><MsgType>event</MsgType></xml>") == 0
    assert lane_of("json", '{"msgtype": "stream"}') == 0
    assert lane_of("xml", "<xml><ChatId>unterminated") == 0


def test_contact_events_are_urgent_and_the_rest_routine() -> None:
    added = _alice_added()
    joined = samples.group_join_xml(
        corp_id=CORP, chat_id="wrGroup1", member_ids=["wmAlice"], create_time=1
    )
    mention = samples.aibot_text_json(msg_id="m1", aibot_id="b", user_id="lisi", content="hi")
    assert priority_of("xml", added) == URGENT
    assert priority_of("xml", joined) == ROUTINE
    assert priority_of("json", mention) == ROUTINE
