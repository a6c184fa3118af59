"""The few ways operators write time in a playbook: ``2h``, ``1d at 10:00``, ``2026-12-01 09:00``.

Parsed once at load into typed values, so the engine and the timing rules never see strings
and a typo is reported with the playbook's file and line rather than at 3 a.m.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_AFTER_AT = re.compile(r"^\s*(?:(?P<delay>\d+\s*[smhdw])\s+)?at\s+(?P<clock>\S+)\s*$")

_ISO_CLOCK = re.compile(r"^\d\d:\d\d:\d\d$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")

DURATION_HINT = "a duration such as 30m, 2h, 1d or 2w"
AFTER_HINT = "a duration (30m, 2h, 1d), optionally with a time of day: '1d at 10:00'"
AT_HINT = "a local date and time 'YYYY-MM-DD HH:MM'"


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``3d``, ``1w`` -> timedelta; ValueError names the format."""
    match = _DURATION.match(str(text))
    if match is None and str(text).startswith("P"):
        return _iso_duration(str(text))
    if match is None:
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{_UNITS[unit]: amount})


def parse_clock(text: str) -> time:
    """``9:00`` / ``21:30`` -> time."""
    match = _CLOCK.match(str(text).strip())
    if match is None and _ISO_CLOCK.match(str(text).strip()):
        return time.fromisoformat(str(text).strip())
    if match is None:
        raise ValueError(f"expected a time of day HH:MM (00:00-23:59), got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_after(text: str) -> tuple[timedelta, time | None]:
    """``2h`` -> (2h, None); ``1d at 10:00`` -> (1d, 10:00); ``at 10:00`` -> (0, 10:00).

    With a time of day the step runs at the first such local time at or after base + delay.
    """
    value = str(text)
    match = _AFTER_AT.match(value)
    if match is not None:
        delay = match.group("delay")
        return (parse_duration(delay) if delay else timedelta(0)), parse_clock(
            match.group("clock")
        )
    try:
        return parse_duration(value), None
    except ValueError:
        raise ValueError(f"expected {AFTER_HINT}, got {text!r}") from None


def parse_local_datetime(text: str) -> datetime:
    """``2026-12-01 09:00`` -> naive local datetime (the playbook's time zone applies)."""
    try:
        value = datetime.strptime(str(text).strip(), "%Y-%m-%d %H:%M")  # noqa: DTZ007
    except ValueError:
        if "T" in str(text):  # the JSON form a stored playbook version holds
            return datetime.fromisoformat(str(text))

        raise ValueError(f"expected {AT_HINT}, got {text!r}") from None
    return value


def _iso_duration(text: str) -> timedelta:
    """``P1DT2H`` (what pydantic writes for a timedelta in JSON): stored versions read back."""
    match = _ISO_DURATION.match(text)
    if match is None or text in ("P", "PT"):
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
