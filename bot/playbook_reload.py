"""Hot reload of playbooks: an operator edits a YAML file or a template and the running server
picks it up within seconds, or keeps the last good version and logs why not.

A changed playbook is registered as a new version (``sop.engine.catalog.register``): new
enrollments take it, running ones keep theirs. Reloads are checked by polling the files'
modification times (cheap, and works on every platform and with editors that replace files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.engine.catalog import Catalog, register
from sop.playbooks.loader import LoadResult, load_playbooks
from sop.rendering import Renderer

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Iterable[str | Path]) -> Fingerprint:
    """Every playbook and template file under ``paths`` with its mtime and size."""
    found: list[tuple[str, int, int]] = []
    for path in paths:
        root = Path(path)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            with contextlib.suppress(OSError):
                stat = file.stat()
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class PlaybookReloader:
    """Reloads the playbooks when their files or the templates change.

    ``on_reloaded`` receives the new catalog (the composition root swaps it in and re-syncs
    the scheduler's cron jobs).
    """

    def __init__(  # noqa: PLR0913 - the composition root's wiring
        self,
        *,
        playbooks: list[str],
        templates: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        on_reloaded: Callable[[Catalog], None],
        every_seconds: float = 2.0,
    ) -> None:
        self._playbooks = playbooks
        self._templates = templates
        self._sessions = sessions
        self._clock = clock
        self._on_reloaded = on_reloaded
        self._every = every_seconds
        self._seen = self._fingerprint()
        #: The errors that kept the last reload from taking effect (empty when it did).
        self.errors: list[str] = []

    def _fingerprint(self) -> Fingerprint:
        return fingerprint([*self._playbooks, self._templates])

    def _load(self) -> LoadResult:
        present = [p for p in self._playbooks if Path(p).exists()]
        return load_playbooks(present, renderer=Renderer(self._templates))

    async def check(self) -> bool | None:
        """Reload if anything changed: True reloaded, False refused (last good version kept),
        None nothing changed."""
        current = self._fingerprint()
        if current == self._seen:
            return None
        self._seen = current
        loaded = self._load()
        if loaded.errors:
            self.errors = [str(error) for error in loaded.errors]
            log.error(
                "playbooks changed but do not load; keeping the last good versions:\n  %s",
                "\n  ".join(self.errors),
            )
            return False
        sources = {name: str(path) for name, path in loaded.sources.items()}
        async with self._sessions.begin() as session:
            catalog = await register(
                session, loaded.playbooks, now=self._clock.now(), sources=sources
            )
        self.errors = []
        self._on_reloaded(catalog)
        log.info(
            "playbooks reloaded: %s",
            ", ".join(f"{name} v{catalog.latest(name).version}" for name in catalog.names())
            or "none",
        )
        return True

    async def run_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("playbook reload failed; the last good versions stay")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._every)
