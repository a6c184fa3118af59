"""The background loops' shared shape: passes, idle waits that a wake ends, failures retried."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sop.loops import run_until_stopped

log = logging.getLogger("tests.loops")


async def test_a_wake_ends_the_idle_wait_and_a_failing_pass_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wake, stopping, passed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    passes: list[int] = []

    async def one_pass() -> None:
        passes.append(len(passes))
        passed.set()
        if len(passes) == 1:
            raise RuntimeError("database went away")
        if len(passes) == 3:
            stopping.set()

    loop = asyncio.create_task(
        run_until_stopped(one_pass, wake, stopping, idle_seconds=3600, log=log, what="test")
    )
    for _ in range(2):  # each pass is followed by an hour's idle wait unless woken
        await asyncio.wait_for(passed.wait(), timeout=5)
        passed.clear()
        await asyncio.sleep(0.01)  # the loop is in its idle wait now
        wake.set()
    await asyncio.wait_for(loop, timeout=5)
    assert passes == [0, 1, 2]
    [record] = [r for r in caplog.records if r.name == "tests.loops"]
    assert record.getMessage() == "test pass failed; trying again shortly"
    assert record.exc_info is not None


async def test_stopping_ends_the_idle_wait_at_once() -> None:
    wake, stopping = asyncio.Event(), asyncio.Event()
    ran = asyncio.Event()

    async def one_pass() -> None:
        ran.set()

    loop = asyncio.create_task(
        run_until_stopped(one_pass, wake, stopping, idle_seconds=3600, log=log, what="test")
    )
    await asyncio.wait_for(ran.wait(), timeout=5)
    stopping.set()
    await asyncio.wait_for(loop, timeout=5)
