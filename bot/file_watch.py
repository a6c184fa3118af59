"""Hot reload's common part: poll the watched files' modification times and sizes, reload when
they change, and on a file that does not load keep what runs and say why.

Polling is cheap, works on every platform and with editors that replace files; the
subclasses (:mod:`bot.playbook_reload`, :mod:`bot.campaign_reload`) say what a reload does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

from sop.loop_status import note_failure, note_pass

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Iterable[str | Path]) -> Fingerprint:
    """Every file under ``paths`` with its mtime and size."""
    found: list[tuple[str, int, int]] = []
    for path in paths:
        root = Path(path)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            with contextlib.suppress(OSError):
                stat = file.stat()
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class FileWatch(ABC):
    """Calls :meth:`reload` when a file under ``paths`` is added, changed or removed."""

    #: What is reloaded, for the log ("playbooks").
    what: str = "files"
    #: What stays when a reload is refused or fails, for the log.
    kept: str = "the last good versions"

    def __init__(self, paths: Iterable[str | Path], every_seconds: float) -> None:
        self._paths = list(paths)
        self._every = every_seconds
        self._seen = fingerprint(self._paths)
        #: The errors that kept the last reload from taking effect (empty when it did).
        self.errors: list[str] = []

    @abstractmethod
    async def reload(self) -> bool:
        """Load the files again and put them in effect: False when refused (see :meth:`refuse`)."""

    def refuse(self, errors: Iterable[object]) -> bool:
        """Keep what runs: remember and log the located ``errors``; False."""
        self.errors = [str(error) for error in errors]
        note_failure(f"{self.what} do not load, kept {self.kept}: {'; '.join(self.errors)}")
        log.error(
            "%s changed but do not load; keeping %s:\n  %s",
            self.what,
            self.kept,
            "\n  ".join(self.errors),
        )
        return False

    async def check(self) -> bool | None:
        """Reload if anything changed: True reloaded, False refused (what runs is kept),
        None nothing changed."""
        current = fingerprint(self._paths)
        if current == self._seen:
            return None
        self._seen = current
        return await self.reload()

    async def run_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.check()
                note_pass()
            except Exception as error:
                note_failure(error)
                log.exception("%s reload failed; keeping %s", self.what, self.kept)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._every)
