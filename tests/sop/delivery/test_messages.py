"""Payload builders: the Official Account shapes and names the channels rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sop.delivery import messages


def test_mp_channel_names_fit_the_outbox_column() -> None:
    assert messages.mp_channel("brand") == "mp:brand"
    with pytest.raises(ValueError, match="mp_accounts\\[\\].name"):
        messages.mp_channel("a" * 30)


def test_the_reply_window_is_48_hours() -> None:
    wrote = datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert messages.mp_window_closes_at(wrote) == datetime(2026, 11, 3, 8, tzinfo=UTC)


def test_mp_payloads_have_the_platform_shape_and_a_summary() -> None:
    news = messages.mp_news("新品", "看看", "https://e.com/1", "https://e.com/p.jpg")
    assert news["news"]["articles"] == [
        {
            "title": "新品",
            "description": "看看",
            "url": "https://e.com/1",
            "picurl": "https://e.com/p.jpg",
        }
    ]
    assert messages.summarize(news) == "[news] 新品"
    assert messages.mp_image("MEDIA") == {"msgtype": "image", "image": {"media_id": "MEDIA"}}
    page = messages.mp_miniprogram("标题", "wxapp", "pages/i", "THUMB")
    assert page["msgtype"] == "miniprogrampage"
    assert page["miniprogrampage"]["pagepath"] == "pages/i"
