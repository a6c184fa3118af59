"""The process's background loops: started side by side, each reporting to its own
:class:`~sop.loop_status.LoopStatus`, and stopped within a deadline.

Stopping is cooperative first: the loops see ``stopping`` (set by the composition root), stop
claiming, give back or finish what they hold and return. Whatever still runs at the deadline
is cancelled; its transaction rolls back and its leases lapse, so another worker (or the next
start) takes the work up again: the same path as a killed process, which loses nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from sop.loop_status import LoopStatus, start_reporting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loop:
    """A named background loop; ``run`` makes its coroutine (which returns once stopping)."""

    name: str
    run: Callable[[], Coroutine[Any, Any, object]]


class Background:
    def __init__(self, loops: Sequence[Loop]) -> None:
        self._loops = list(loops)
        self.statuses = {loop.name: LoopStatus(loop.name) for loop in self._loops}
        self._tasks: dict[str, asyncio.Task[object]] = {}

    @property
    def names(self) -> list[str]:
        return [loop.name for loop in self._loops]

    def start(self) -> None:
        for loop in self._loops:
            self._tasks[loop.name] = start_reporting(self.statuses[loop.name], loop.run())

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def ended(self) -> list[str]:
        """Loops whose task has ended (before a stop, that is a bug: health says so)."""
        return [name for name, task in self._tasks.items() if task.done()]

    async def wait(self, seconds: float) -> list[str]:
        """Wait up to ``seconds`` for every loop to return; cancel the rest and return their
        names. A loop that ended with an error is logged."""
        tasks = list(self._tasks.values())
        if not tasks:
            return []
        began = asyncio.get_running_loop().time()
        for name, task in self._tasks.items():
            task.add_done_callback(functools.partial(_stopped, name, began))
        _done, pending = await asyncio.wait(tasks, timeout=max(seconds, 0.0))
        cut = [name for name, task in self._tasks.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for name, task in self._tasks.items():
            if not task.cancelled() and task.exception() is not None:
                log.error("%s loop ended with an error", name, exc_info=task.exception())
        return cut


def _stopped(name: str, began: float, _task: asyncio.Task[object]) -> None:
    elapsed = asyncio.get_running_loop().time() - began
    log.debug("%s loop stopped after %.2f s", name, elapsed)
