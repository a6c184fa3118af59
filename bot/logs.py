"""The server's log: one line per event an operator cares about, as text or as JSON lines.

Standard library logging only. Both formats stamp each record in the configured time zone
with its offset (``2026-05-01 09:30:00.123+08:00``), so machines on UTC and operators in
Shanghai read the same time. Libraries that narrate routine work (APScheduler logs two lines
per job run, about two a second on an idle server; Alembic's migration context; aiohttp's
access log, which nginx keeps anyway) are held at WARNING unless ``--log-level debug``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Literal, TextIO
from zoneinfo import ZoneInfo

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Loggers that narrate routine work; raised to WARNING unless the level is debug.
CHATTY = ("apscheduler", "alembic.runtime.migration", "aiohttp.access")


def local_time(record: logging.LogRecord, zone: ZoneInfo) -> str:
    """The record's time in ``zone``, to the millisecond, with the offset."""
    stamp = datetime.fromtimestamp(record.created, zone)
    return stamp.isoformat(sep=" ", timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message``, then the exception text if any."""

    def __init__(self, zone: ZoneInfo) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return local_time(record, self._zone)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and, when the
    record carries one, ``exception`` (the formatted traceback as one string)."""

    def __init__(self, zone: ZoneInfo) -> None:
        super().__init__()
        self._zone = zone

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": local_time(record, self._zone).replace(" ", "T"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    *,
    log_format: LogFormat = "text",
    level: str = "info",
    zone: ZoneInfo,
    stream: TextIO | None = None,
) -> None:
    """Send every record to ``stream`` (stderr) in ``log_format``, replacing earlier setup."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter(zone) if log_format == "json" else TextFormatter(zone)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    quiet = logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
