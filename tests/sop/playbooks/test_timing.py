"""The timing rules: examples an operator would check by hand, then properties over many
zones, bases, delays and quiet hours (hypothesis)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sop.playbooks.durations import parse_after, parse_local_datetime
from sop.playbooks.model import After, QuietHours
from sop.playbooks.timing import (
    anniversary_on,
    in_quiet_hours,
    local_instants,
    next_local_time,
    step_due_at,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
#: Zones without daylight saving, including a west-of-UTC one and a half-hour offset.
FIXED = ["Asia/Shanghai", "UTC", "Etc/GMT+5", "Asia/Kolkata"]
#: Zones with daylight saving, including Lord Howe's half-hour shift.
SHIFTING = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"]


def after(text: str) -> After:
    delay, at = parse_after(text)
    return After(delay=delay, at=at)


def quiet(start: str, end: str) -> QuietHours:
    return QuietHours.model_validate({"start": start, "end": end})


def local(zone: ZoneInfo, text: str) -> datetime:
    """``local(SHANGHAI, "2026-05-01 09:00")``: a wall-clock time in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def due(
    base: datetime,
    *,
    rule: After | None = None,
    at: datetime | None = None,
    zone: ZoneInfo = SHANGHAI,
    hours: QuietHours | None = None,
) -> datetime:
    return step_due_at(base=base, after=rule, at=at, zone=zone, quiet=hours)


# --- examples --------------------------------------------------------------------------


def test_no_timing_is_the_base_in_utc() -> None:
    base = local(SHANGHAI, "2026-05-01 09:00")
    result = due(base)
    assert result == base
    assert result.tzinfo is UTC


def test_after_adds_elapsed_time() -> None:
    assert due(local(SHANGHAI, "2026-05-01 09:00"), rule=after("2h")) == local(
        SHANGHAI, "2026-05-01 11:00"
    )


def test_days_with_clock_is_that_many_calendar_days_later_at_the_time() -> None:
    base = local(SHANGHAI, "2026-05-01 09:00")
    assert due(base, rule=after("1d at 10:00")) == local(SHANGHAI, "2026-05-02 10:00")
    late = local(SHANGHAI, "2026-05-01 23:30")  # "the next morning", not 34.5 hours later
    assert due(late, rule=after("1d at 10:00")) == local(SHANGHAI, "2026-05-02 10:00")
    assert due(late, rule=after("2d at 08:00")) == local(SHANGHAI, "2026-05-03 08:00")
    assert due(base, rule=after("2h at 10:00")) == local(SHANGHAI, "2026-05-02 10:00")
    assert due(base, rule=after("at 10:00")) == local(SHANGHAI, "2026-05-01 10:00")


def test_the_clock_time_itself_counts_as_at_or_after() -> None:
    base = local(SHANGHAI, "2026-05-01 10:00")
    assert due(base, rule=after("1d at 10:00")) == local(SHANGHAI, "2026-05-02 10:00")


def test_month_end_rolls_into_the_next_month() -> None:
    base = local(SHANGHAI, "2026-01-31 08:00")
    assert due(base, rule=after("1d at 10:00")) == local(SHANGHAI, "2026-02-01 10:00")
    year_end = local(SHANGHAI, "2026-12-31 23:00")
    assert due(year_end, rule=after("at 10:00")) == local(SHANGHAI, "2027-01-01 10:00")


def test_local_clock_is_read_in_the_playbook_zone_not_utc() -> None:
    # 20:00 UTC is already 04:00 the next day in Shanghai.
    base = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)
    assert due(base, rule=after("at 10:00")) == local(SHANGHAI, "2026-05-02 10:00")
    kolkata = ZoneInfo("Asia/Kolkata")
    assert due(base, rule=after("at 10:00"), zone=kolkata) == local(kolkata, "2026-05-02 10:00")


def test_fixed_date_time_is_local_and_runs_now_when_past() -> None:
    at = parse_local_datetime("2026-12-01 09:00")
    base = local(SHANGHAI, "2026-11-01 12:00")
    assert due(base, at=at) == local(SHANGHAI, "2026-12-01 09:00")
    past = local(SHANGHAI, "2026-12-02 12:00")
    assert due(past, at=at) == past


def test_quiet_hours_move_to_their_end_across_midnight() -> None:
    night = quiet("22:00", "08:00")
    evening = local(SHANGHAI, "2026-05-01 23:00")
    assert due(evening, hours=night) == local(SHANGHAI, "2026-05-02 08:00")
    early = local(SHANGHAI, "2026-05-02 03:00")
    assert due(early, hours=night) == local(SHANGHAI, "2026-05-02 08:00")
    assert due(local(SHANGHAI, "2026-05-02 08:00"), hours=night) == local(
        SHANGHAI, "2026-05-02 08:00"
    )
    assert due(local(SHANGHAI, "2026-05-01 22:00"), hours=night) == local(
        SHANGHAI, "2026-05-02 08:00"
    )
    assert due(local(SHANGHAI, "2026-05-01 21:59"), hours=night) == local(
        SHANGHAI, "2026-05-01 21:59"
    )


def test_quiet_hours_within_a_day_and_equal_bounds() -> None:
    lunch = quiet("12:00", "13:30")
    assert due(local(SHANGHAI, "2026-05-01 12:10"), hours=lunch) == local(
        SHANGHAI, "2026-05-01 13:30"
    )
    never = quiet("09:00", "09:00")
    base = local(SHANGHAI, "2026-05-01 09:00")
    assert due(base, hours=never) == base
    assert not in_quiet_hours(base, SHANGHAI, never)
    assert not in_quiet_hours(base, SHANGHAI, None)


def test_quiet_hours_apply_after_the_clock_rule() -> None:
    rule = after("1d at 07:00")
    base = local(SHANGHAI, "2026-05-01 06:00")
    assert due(base, rule=rule, hours=quiet("22:00", "08:00")) == local(
        SHANGHAI, "2026-05-02 08:00"
    )


def test_naive_base_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="base must be timezone-aware"):
        due(datetime(2026, 5, 1, 9, 0))  # noqa: DTZ001


# --- daylight saving (America/New_York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00)


def test_a_skipped_local_time_resolves_to_the_jump() -> None:
    assert local_instants(datetime(2026, 3, 8, 2, 30), NEW_YORK) == [  # noqa: DTZ001
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    ]
    base = local(NEW_YORK, "2026-03-08 00:00")
    assert due(base, rule=after("at 02:30"), zone=NEW_YORK) == local(NEW_YORK, "2026-03-08 03:00")


def test_a_repeated_local_time_takes_the_first_occurrence_not_before_the_base() -> None:
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert local_instants(datetime(2026, 11, 1, 1, 30), NEW_YORK) == [first, second]  # noqa: DTZ001
    midnight = local(NEW_YORK, "2026-11-01 00:00")
    assert due(midnight, rule=after("at 01:30"), zone=NEW_YORK) == first
    between = first + timedelta(minutes=10)
    assert due(between, rule=after("at 01:30"), zone=NEW_YORK) == second


def test_one_day_is_twenty_four_hours_across_a_change() -> None:
    base = local(NEW_YORK, "2026-03-07 12:00")
    elapsed = base.astimezone(UTC) + timedelta(
        hours=24
    )  # aware arithmetic in one zone is wall time
    assert due(base, rule=after("1d"), zone=NEW_YORK) == elapsed
    assert due(base, rule=after("1d"), zone=NEW_YORK).astimezone(NEW_YORK).hour == 13


def test_quiet_hours_ending_in_a_skipped_hour_end_at_the_jump() -> None:
    hours = quiet("22:00", "02:30")
    base = local(NEW_YORK, "2026-03-08 01:00")
    assert due(base, zone=NEW_YORK, hours=hours) == local(NEW_YORK, "2026-03-08 03:00")


# --- anniversaries -----------------------------------------------------------------------


def test_leap_day_birthdays_fall_on_the_28th_in_common_years() -> None:
    assert anniversary_on(2027, 2, 29) == date(2027, 2, 28)
    assert anniversary_on(2028, 2, 29) == date(2028, 2, 29)
    assert anniversary_on(2100, 2, 29) == date(2100, 2, 28)
    assert anniversary_on(2000, 2, 29) == date(2000, 2, 29)
    assert anniversary_on(2027, 12, 31) == date(2027, 12, 31)


def test_an_impossible_day_is_refused() -> None:
    with pytest.raises(ValueError, match="04-31 is not a day of the year"):
        anniversary_on(2027, 4, 31)


@given(st.integers(1, 9999), st.dates())
def test_anniversaries_keep_the_day_except_the_leap_day(year: int, birthday: date) -> None:
    result = anniversary_on(year, birthday.month, birthday.day)
    assert result.year == year
    if (birthday.month, birthday.day) == (2, 29) and not calendar.isleap(year):
        assert (result.month, result.day) == (2, 28)
    else:
        assert (result.month, result.day) == (birthday.month, birthday.day)


# --- properties --------------------------------------------------------------------------

bases = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2040, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
clocks = st.builds(time, st.integers(0, 23), st.integers(0, 59))
delays = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))
rules = st.one_of(
    st.none(),
    st.builds(After, delay=delays, at=st.none() | clocks),
)
quiets = st.none() | st.builds(QuietHours, start=clocks, end=clocks)
fixed_zones = st.sampled_from(FIXED).map(ZoneInfo)
all_zones = st.sampled_from(FIXED + SHIFTING).map(ZoneInfo)


@settings(max_examples=300)
@given(bases, rules, all_zones, quiets)
def test_never_before_base_nor_inside_quiet_hours(
    base: datetime, rule: After | None, zone: ZoneInfo, hours: QuietHours | None
) -> None:
    result = due(base, rule=rule, zone=zone, hours=hours)
    assert result >= base
    assert result.tzinfo is UTC
    assert not in_quiet_hours(result, zone, hours)
    if rule is not None and not _calendar_days(rule):
        assert result >= base + rule.delay


def _calendar_days(rule: After) -> bool:
    days = timedelta(days=1)
    return rule.at is not None and rule.delay > timedelta(0) and rule.delay % days == timedelta(0)


@settings(max_examples=300)
@given(bases, delays, clocks, fixed_zones, quiets)
def test_the_clock_is_kept_unless_quiet_hours_move_it(
    base: datetime, delay: timedelta, clock: time, zone: ZoneInfo, hours: QuietHours | None
) -> None:
    result = due(base, rule=After(delay=delay, at=clock), zone=zone, hours=hours)
    wall = result.astimezone(zone).time()
    earliest = base + delay
    if hours is None or not _clock_is_quiet(clock, hours):
        assert wall == clock
        if _calendar_days(After(delay=delay, at=clock)):  # "2d at 10:00": two dates later
            later = base.astimezone(zone).date() + delay
            assert result.astimezone(zone).date() == later
        else:
            assert earliest <= result < earliest + timedelta(days=1)
    else:
        assert wall == hours.end


@settings(max_examples=300)
@given(bases, bases, rules, all_zones, quiets)
def test_monotonic_in_base(
    first: datetime,
    second: datetime,
    rule: After | None,
    zone: ZoneInfo,
    hours: QuietHours | None,
) -> None:
    early, late = sorted((first, second))
    assert due(early, rule=rule, zone=zone, hours=hours) <= due(
        late, rule=rule, zone=zone, hours=hours
    )


@settings(max_examples=200)
@given(bases, bases.map(lambda moment: moment.replace(tzinfo=None)), all_zones)
def test_fixed_date_time_is_that_local_time_or_base(
    base: datetime, at: datetime, zone: ZoneInfo
) -> None:
    result = due(base, at=at, zone=zone)
    assert result == max(base, local_instants(at, zone)[0])
    if result > base:
        wall = result.astimezone(zone).replace(tzinfo=None)
        assert wall >= at  # a skipped time lands on the jump, just after it
        if zone.key in FIXED:
            assert wall == at


@settings(max_examples=300)
@given(bases, clocks, all_zones)
def test_next_local_time_is_the_first_such_instant(
    base: datetime, clock: time, zone: ZoneInfo
) -> None:
    result = next_local_time(base, clock, zone)
    assert base <= result < base + timedelta(days=2)
    wall = result.astimezone(zone)
    # Either the wall clock shows ``clock``, or ``clock`` was skipped and this is the jump.
    assert wall.time() == clock or wall.time() > clock
    if wall.time() == clock and zone.key in FIXED:
        assert result - base < timedelta(days=1)


def _clock_is_quiet(clock: time, hours: QuietHours) -> bool:
    probe = datetime.combine(date(2026, 1, 1), clock, tzinfo=UTC)
    return in_quiet_hours(probe, ZoneInfo("UTC"), hours)
