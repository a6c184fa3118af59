"""The one-line summary an operator reads in plans and previews."""

from __future__ import annotations

from datetime import timedelta

from sop.audience.describe import describe, span
from sop.audience.model import Audience


def test_empty_audience_is_every_customer() -> None:
    assert describe(Audience()) == "every customer"


def test_every_condition_in_the_order_of_the_yaml() -> None:
    audience = Audience.model_validate(
        {
            "tags": {"all": ["等级/VIP", "新客"], "any": ["A"], "none": ["B", "C", "D"]},
            "owner": {"staff": ["zhangsan", "lisi"], "department": [3]},
            "channel": ["expo"],
            "groups": {"any": ["G1"], "none": ["wrOgC3"]},
            "fields": {"vip": True, "city": "上海", "level": 3},
            "last_interaction": {"before": "30d", "after": "2w"},
        }
    )
    assert describe(audience) == (
        "tagged 等级/VIP and 新客; tagged A; not tagged B, C or D; "
        "owned by zhangsan or lisi or staff of department 3; added through channel expo; "
        "in group G1; not in group wrOgC3; "
        'field city = "上海"; field level = 3; field vip = true; '
        "last interaction more than 30d ago or never; last interaction within 2w"
    )


def test_owner_without_names_is_any_staff_member() -> None:
    assert describe(Audience.model_validate({"owner": {}})) == "owned by any staff member"
    several = Audience.model_validate({"owner": {"department": [1, 2]}})
    assert describe(several) == "owned by staff of departments 1 or 2"


def test_spans_read_like_the_yaml() -> None:
    assert span(timedelta(days=14)) == "2w"
    assert span(timedelta(days=10)) == "10d"
    assert span(timedelta(days=1, hours=2, minutes=30)) == "1d 2h 30m"
    assert span(timedelta(seconds=45)) == "45s"
    assert span(timedelta(0)) == "0s"
