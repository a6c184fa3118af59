"""Hot reload of playbooks: an operator edits a YAML file or a template and the running server
picks it up within seconds, or keeps the last good version and logs why not.

A changed playbook is registered as a new version (``sop.engine.catalog.register``): new
enrollments take it, running ones keep theirs. Changes are seen by polling
(:class:`bot.file_watch.FileWatch`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.file_watch import FileWatch
from sop.clock import Clock
from sop.engine.catalog import Catalog, register
from sop.playbooks.loader import LoadResult, load_playbooks
from sop.rendering import Renderer

log = logging.getLogger(__name__)


class PlaybookReloader(FileWatch):
    """Reloads the playbooks when their files or the templates change.

    ``on_reloaded`` receives the new catalog (the composition root swaps it in and re-syncs
    the scheduler's cron jobs).
    """

    what = "playbooks"

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
        super().__init__([*playbooks, templates], every_seconds)
        self._playbooks = playbooks
        self._templates = templates
        self._sessions = sessions
        self._clock = clock
        self._on_reloaded = on_reloaded

    def _load(self) -> LoadResult:
        present = [p for p in self._playbooks if Path(p).exists()]
        return load_playbooks(present, renderer=Renderer(self._templates))

    async def reload(self) -> bool:
        loaded = self._load()
        if loaded.errors:
            return self.refuse(loaded.errors)
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
