"""The server's log formats: JSON lines that parse, local times with the offset, and the
libraries that narrate routine work held back unless the level is debug."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from bot.logs import CHATTY, setup_logging

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CHATTY}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_json_lines_carry_time_level_logger_message_and_exception(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging(log_format="json", level="info", zone=ZONE, stream=out)
    log = logging.getLogger("bot.example")
    log.info("sent %d messages to %s", 3, "张三")
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("pass failed")
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert first["level"] == "INFO" and first["logger"] == "bot.example"
    assert first["message"] == "sent 3 messages to 张三"
    assert first["time"].endswith("+08:00") and "T" in first["time"]
    assert "exception" not in first
    assert second["message"] == "pass failed"
    assert "ValueError: bad value" in second["exception"]


def test_text_lines_are_local_time_level_logger_message(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging(log_format="text", level="info", zone=ZONE, stream=out)
    logging.getLogger("bot.example").warning("careful")
    line = out.getvalue().strip()
    assert line.endswith(" WARNING bot.example careful")
    assert "+08:00 " in line


def test_scheduler_chatter_is_held_back_unless_debug(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging(log_format="text", level="info", zone=ZONE, stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "Event.set"')
    logging.getLogger("apscheduler.executors.default").error("Job raised an exception")
    assert "Running job" not in out.getvalue()
    assert "Job raised an exception" in out.getvalue()

    setup_logging(log_format="text", level="debug", zone=ZONE, stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "Event.set"')
    assert "Running job" in out.getvalue()


def test_an_unknown_level_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging(level="loud", zone=ZONE)
