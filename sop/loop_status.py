"""What each background loop last did, for the health endpoint: when its last pass finished and
its last error.

The loops report without knowing who listens: the composition root starts each loop in a
context that carries its :class:`LoopStatus` (:func:`start_reporting`), and the loop calls
:func:`note_pass` / :func:`note_failure` after each pass. Outside such a context (tests, tools)
the calls do nothing. A context variable rather than a global: two runtimes in one process
(tests of several workers) keep their statuses apart.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from store.transient import describe

T = TypeVar("T")

_current: contextvars.ContextVar[LoopStatus | None] = contextvars.ContextVar(
    "scrm_loop_status", default=None
)


@dataclass
class LoopStatus:
    """One loop's record, in wall-clock time (the process's, not an injected clock's)."""

    name: str
    passes: int = 0
    last_pass_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def passed(self) -> None:
        self.passes += 1
        self.last_pass_at = datetime.now(UTC)

    def failed(self, error: BaseException | str) -> None:
        """A failed pass: the error in one line (no SQL, no traceback)."""
        self.last_error = error if isinstance(error, str) else describe(error)
        self.last_error_at = datetime.now(UTC)


def start_reporting(status: LoopStatus, loop: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``loop`` as a task whose :func:`note_pass` / :func:`note_failure` go to ``status``."""
    context = contextvars.copy_context()
    context.run(_current.set, status)
    return asyncio.get_running_loop().create_task(loop, name=status.name, context=context)


def current() -> LoopStatus | None:
    """The status the running loop reports to, if any."""
    return _current.get()


def note_pass() -> None:
    status = _current.get()
    if status is not None:
        status.passed()


def note_failure(error: BaseException | str) -> None:
    status = _current.get()
    if status is not None:
        status.failed(error)
