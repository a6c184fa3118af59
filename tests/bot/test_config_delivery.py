"""The ``delivery:`` section: sender settings, limits over the documented ones, rush, tags."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import ConfigError, parse_config
from sop.delivery.ratelimit import DOCUMENTED, Rate


def test_defaults_are_the_documented_limits_with_rush_avoidance_on() -> None:
    delivery = parse_config({}, environ={}).delivery
    settings = delivery.sender_settings()

    assert (settings.batch_size, settings.concurrency) == (100, 16)
    assert dict(settings.limits.rates) == dict(DOCUMENTED)
    assert settings.rush is not None
    assert (settings.rush.seconds, settings.rush.jitter) == (5.0, 10.0)
    assert delivery.tag_group == "SCRM"


def test_limits_override_by_scope_and_an_empty_list_unlimits_one() -> None:
    config = parse_config(
        {
            "delivery": {
                "batch_size": 50,
                "concurrency": 4,
                "limits": {
                    "member:message/send": [{"limit": 20, "per": "1m"}],
                    "api:externalcontact/mark_tag": [],
                },
                "avoid_rush": None,
                "tag_group": "自动标签",
            }
        },
        environ={},
    )
    settings = config.delivery.sender_settings()

    assert (settings.batch_size, settings.concurrency, settings.rush) == (50, 4, None)
    limits = settings.limits
    assert limits.for_scope("member:message/send") == (Rate(20, timedelta(minutes=1)),)
    assert limits.for_scope("api:externalcontact/mark_tag") == ()
    assert limits.for_scope("api:message/send") == DOCUMENTED["api"]
    assert config.delivery.tag_group == "自动标签"


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"limits": {"members": [{"limit": 1, "per": "1m"}]}}, "delivery.limits.members"),
        ({"limits": {"api": [{"limit": 0, "per": "1m"}]}}, "greater than or equal to 1"),
        ({"limits": {"api": [{"limit": 5, "per": "soon"}]}}, "a duration such as 30m"),
        ({"concurrency": 0}, "delivery.concurrency"),
        ({"avoid_rush": {"seconds": 60}}, "delivery.avoid_rush.seconds"),
        ({"batchsize": 10}, "delivery.batchsize: Extra inputs are not permitted"),
    ],
)
def test_mistakes_name_the_key(section: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as error:
        parse_config({"delivery": section}, environ={})
    assert says in str(error.value)
