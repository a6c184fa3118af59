"""Sliding-window limits: never more than the limit in any window, and when to come back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sop.delivery import Rate, RateKey, RateLimiter, RateLimits
from tests.support.clock import ManualClock

MEMBER = RateKey("member:message/send", "zhangsan")
API = RateKey("api:message/send", "corp")


def test_thirty_a_minute_then_the_time_the_oldest_leaves_the_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter(RateLimits())
    start = clock.now()
    for _ in range(30):
        assert limiter.acquire([MEMBER, API], clock.now()) is None
        clock.advance(1)

    assert limiter.acquire([MEMBER, API], clock.now()) == start + timedelta(minutes=1)
    clock.set(start + timedelta(minutes=1))
    assert limiter.acquire([MEMBER, API], clock.now()) is None


def test_a_refused_send_spends_no_budget() -> None:
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    limiter = RateLimiter(RateLimits({"member": (Rate(1, minute),), "api": (Rate(5, hour),)}))
    now = ManualClock().now()
    assert limiter.acquire([MEMBER, API], now) is None
    for _ in range(10):
        assert limiter.acquire([MEMBER, API], now) == now + minute

    for userid in ("a", "b", "c", "d"):  # the API's other four sends are still there
        assert limiter.acquire([RateKey("member:message/send", userid), API], now) is None
    assert limiter.acquire([RateKey("member:message/send", "e"), API], now) == now + hour


def test_an_exact_scope_wins_over_its_prefix_and_unknown_scopes_are_free() -> None:
    limits = RateLimits()
    assert limits.for_scope("member:message/send")[0].limit == 30
    assert limits.for_scope("api:externalcontact/send_welcome_msg")[0].limit == 10_000
    assert limits.for_scope("member:add_msg_template") == ()
    assert RateLimits.unlimited().for_scope("api:message/send") == ()


def test_a_rate_needs_a_positive_limit_and_period() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        Rate(0, timedelta(minutes=1))


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=200))
def test_no_window_ever_holds_more_than_the_limit(gaps: list[int]) -> None:
    limiter = RateLimiter(RateLimits({"member": (Rate(5, timedelta(seconds=30)),)}))
    clock = ManualClock()
    granted = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.acquire([MEMBER], clock.now()) is None:
            granted.append(clock.now())
    for i, start in enumerate(granted):
        inside = [t for t in granted[i:] if t < start + timedelta(seconds=30)]
        assert len(inside) <= 5
