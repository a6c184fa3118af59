"""The shape every background loop shares: run a pass, then idle until woken, stopped or
``idle_seconds`` have passed; a failing pass is logged and tried again after the idle wait.

The engine, the sender, the mass-result collector and the transfer poller all run this way
(the composition root, ``bot/server.py``, sets ``wake`` when there is work for them). A pass
that failed for a transient database reason (a deadlock, a restart: :mod:`store.transient`) is
logged in one line, without a traceback: the next pass is the retry. Each pass is reported
to the loop's :class:`sop.loop_status.LoopStatus` (the health endpoint shows it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sop.loop_status import note_failure, note_pass
from store.transient import describe, is_transient


async def run_until_stopped(
    one_pass: Callable[[], Awaitable[object]],
    wake: asyncio.Event,
    stopping: asyncio.Event,
    *,
    idle_seconds: float,
    log: logging.Logger,
    what: str,
) -> None:
    """``one_pass`` until ``stopping`` is set, idling ``idle_seconds`` (or until ``wake``)
    between passes; a failure is logged as ``what`` with ``log``."""
    while not stopping.is_set():
        try:
            await one_pass()
            note_pass()
        except Exception as error:
            note_failure(error)
            if is_transient(error):
                log.warning("%s pass interrupted: %s; trying again shortly", what, describe(error))
            else:
                log.exception("%s pass failed; trying again shortly", what)
        wake.clear()
        await idle(wake, stopping, idle_seconds)


async def idle(wake: asyncio.Event, stopping: asyncio.Event, seconds: float) -> None:
    """Wait until ``wake`` or ``stopping`` is set, or ``seconds`` have passed."""
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopper.cancel()
