"""When a step is due: ``after:``, ``at:``, quiet hours and time zones, as pure functions.

The engine stores due times in UTC; operators think in local wall-clock time ("tomorrow at
10:00", "never at night"). Everything that converts between the two lives here, so the rules
are written once and property-tested (tests/sop/playbooks/test_timing.py) rather than spread
over the engine, the preview and campaigns.

Rules, in order:

1. ``after: 2h`` adds elapsed time to ``base`` (``1d`` is 24 real hours, also across a
   daylight-saving change); ``after: 1d at 10:00`` then moves on to the first local 10:00 at or
   after that instant.
2. ``at: 2026-12-01 09:00`` is a local date-time in the playbook's zone; if it is already past
   relative to ``base`` the step runs at ``base`` (at once) rather than being dropped.
3. Quiet hours ``[start, end)`` in local time: a due time inside them moves to the next local
   ``end``. Nothing is ever dropped or moved earlier.

Local times that do not exist (the hour skipped when clocks go forward) resolve forward to the
instant the clocks jump, the first moment the local time has reached the wanted one; local
times that occur twice (clocks go back) resolve to the first occurrence not before the
threshold. Zones without daylight saving (Asia/Shanghai, Asia/Kolkata) never meet either case.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sop.playbooks.model import After, QuietHours

#: Enough days to find a wall-clock time even where a zone skipped a whole day (Pacific/Apia
#: jumped over 2011-12-30).
_SEARCH_DAYS = 4


def step_due_at(
    *,
    base: datetime,
    after: After | None,
    at: datetime | None,
    zone: ZoneInfo,
    quiet: QuietHours | None,
) -> datetime:
    """The UTC instant a step falls due, given when the previous step ran (``base``).

    ``base`` is the previous step's run time, or the enrollment time for the first step; it
    must be timezone-aware. ``at`` (a naive local date-time in ``zone``, or an aware one) that
    is already past relative to ``base`` gives ``base``: the step runs now, it is not skipped.
    ``after: 1d at 10:00`` (a whole number of days and a time) is that many calendar days
    later at that local time (the next morning, even when ``base`` is late in the day);
    ``after: 2h at 10:00`` and ``at 10:00`` are the first such local time at or after
    ``base`` + the delay. The result is never before ``base`` and never inside quiet hours.
    """
    _require_aware(base, "base")
    if after is not None and at is not None:
        raise ValueError(f"a step has 'after' ({after!r}) or 'at' ({at!r}), not both")
    due = base.astimezone(UTC)
    if after is not None and after.at is not None and _whole_days(after.delay):
        # "1d at 10:00" is the next calendar day at 10:00, whatever the hour of base.
        day = due.astimezone(zone).date() + after.delay
        due = next_local_time(local_instant(datetime.combine(day, time(0)), zone), after.at, zone)
    elif after is not None:
        due += after.delay
        if after.at is not None:
            due = next_local_time(due, after.at, zone)
    elif at is not None:
        fixed = at.astimezone(UTC) if at.tzinfo is not None else local_instant(at, zone)
        due = max(due, fixed)
    if quiet is not None:
        due = leave_quiet_hours(due, zone, quiet)
    return due


def _whole_days(delay: timedelta) -> bool:
    return delay > timedelta(0) and delay % timedelta(days=1) == timedelta(0)


def next_local_time(after: datetime, clock: time, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` whose local wall time in ``zone`` is ``clock``
    (or, on a day that skips ``clock``, the instant the clocks jump past it); in UTC."""
    _require_aware(after, "after")
    threshold = after.astimezone(UTC)
    day = threshold.astimezone(zone).date()
    for offset in range(_SEARCH_DAYS):
        wall = datetime.combine(day + timedelta(days=offset), clock)
        for instant in local_instants(wall, zone):
            if instant >= threshold:
                return instant
    raise AssertionError(f"no local {clock} in {zone} within {_SEARCH_DAYS} days of {after}")


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive local date-time in ``zone`` as one UTC instant: the first occurrence when the
    clocks went back, the instant they jumped when they skipped it."""
    return local_instants(wall, zone)[0]


def local_instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant whose local time in ``zone`` is ``wall`` (naive), earliest first:
    one normally, two in a repeated hour, and for a skipped time the instant of the jump."""
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive local date-time, got {wall!r}")
    found = sorted(
        {
            candidate
            for fold in (0, 1)
            if _wall(candidate := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC), zone)
            == wall
        }
    )
    return found or [_jump_past(wall, zone)]


def in_quiet_hours(moment: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> bool:
    """Whether ``moment``'s local time falls in ``[start, end)``; ``start`` after ``end``
    spans midnight, ``start == end`` means no quiet hours at all."""
    _require_aware(moment, "moment")
    if quiet is None or quiet.start == quiet.end:
        return False
    local = _wall(moment, zone).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def leave_quiet_hours(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """``moment`` if it is outside quiet hours, else the next local ``end``; in UTC."""
    due = moment.astimezone(UTC)
    for _ in range(_SEARCH_DAYS):
        if not in_quiet_hours(due, zone, quiet):
            return due
        # A skipped ``end`` resolves to the jump, whose wall time may still be quiet when the
        # quiet hours are nearly a whole day; the next day's ``end`` then settles it.
        due = next_local_time(due + timedelta(microseconds=1), quiet.end, zone)
    raise AssertionError(f"cannot leave quiet hours {quiet!r} in {zone} from {moment}")


def anniversary_on(year: int, month: int, day: int) -> date:
    """The date in ``year`` of a yearly ``month``/``day`` (a birthday from a ``date_field``):
    29 February falls on 28 February in years without it, so nobody is skipped."""
    if (month, day) == (2, 29):
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(
            f"{month:02d}-{day:02d} is not a day of the year; a date field needs MM-DD"
        ) from None


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _jump_past(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clocks jump over the skipped local time ``wall``.

    Reading ``wall`` with the offsets before and after the jump brackets it; a binary search
    to the microsecond finds the first instant whose local time is past ``wall``.
    """
    low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if _wall(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return high


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC from the clock), got {value!r}")
