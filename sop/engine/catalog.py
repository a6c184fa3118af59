"""The playbooks the engine runs, each tied to the stored version new enrollments take.

A running enrollment must keep the definition it started with, even after an operator edits
the file: so every distinct definition is stored once as a :class:`PlaybookVersion` row
(identified by the digest of its canonical JSON) and enrollments point at that row. Loading
an unchanged file reuses its row; a changed one gets the next version number. Several
processes may load the same files at the same time; the unique ``(name, digest)`` and
``(name, version)`` keys decide, and a loser re-reads what the winner stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sop.playbooks.model import Playbook
from store.models import PlaybookVersion

#: Attempts to store one definition while other processes race for the same version number.
REGISTER_ATTEMPTS = 5


@dataclass(frozen=True)
class CatalogEntry:
    """A loaded playbook and the stored version new enrollments take."""

    playbook: Playbook
    version_id: int
    version: int
    digest: str

    @property
    def name(self) -> str:
        return self.playbook.name


def definition_of(playbook: Playbook) -> dict[str, Any]:
    """The JSON form stored in ``playbook_versions.definition`` (reads back with
    ``Playbook.model_validate``)."""
    return playbook.model_dump(mode="json", by_alias=True)


def digest_of(playbook: Playbook) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace): equal definitions, equal
    digests, whatever the YAML's key order, comments or layout."""
    canonical = json.dumps(
        definition_of(playbook), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Catalog:
    """The current playbooks by name, an index by trigger event, and old versions on demand.

    Immutable once built: a reload builds a new catalog (through :func:`register`) and the
    engine swaps it in, so a subscriber never sees half a reload.
    """

    def __init__(self, entries: Sequence[CatalogEntry] = ()) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._versions: dict[int, Playbook] = {e.version_id: e.playbook for e in entries}
        by_event: dict[str, list[CatalogEntry]] = {}
        for entry in self._entries.values():
            event = entry.playbook.trigger.event
            if entry.playbook.enabled and event is not None:
                by_event.setdefault(event, []).append(entry)
        self._by_event = {name: tuple(found) for name, found in by_event.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> CatalogEntry | None:
        return self._entries.get(name)

    def latest(self, name: str) -> CatalogEntry:
        """The current version of playbook ``name``; a KeyError lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none loaded"
            raise KeyError(f"no playbook named {name!r} (playbooks: {known})") from None

    def active(self) -> list[CatalogEntry]:
        """The enabled playbooks, by name."""
        return [self._entries[n] for n in self.names() if self._entries[n].playbook.enabled]

    def by_event(self, event_name: str) -> tuple[CatalogEntry, ...]:
        """The enabled playbooks triggered by ``event_name`` (``customer_added``, ...)."""
        return self._by_event.get(event_name, ())

    async def get_version(self, session: AsyncSession, version_id: int) -> Playbook:
        """The definition an enrollment runs: current versions from memory, older ones read
        back from their stored JSON once and kept."""
        cached = self._versions.get(version_id)
        if cached is not None:
            return cached
        row = await session.get(PlaybookVersion, version_id)
        if row is None:
            raise LookupError(
                f"playbook version {version_id} is not in playbook_versions; an enrollment"
                " points at a version that was deleted: restore it or cancel the enrollment"
            )
        try:
            playbook = Playbook.model_validate(row.definition)
        except ValueError as exc:
            raise ValueError(
                f"stored playbook version {version_id} ({row.name} v{row.version}) no longer"
                f" validates against the playbook model: {exc}"
            ) from exc
        self._versions[version_id] = playbook
        return playbook


async def register(
    session: AsyncSession,
    playbooks: Mapping[str, Playbook],
    *,
    now: datetime,
    sources: Mapping[str, str] | None = None,
) -> Catalog:
    """Store each definition that is new and build the catalog of the latest versions.

    ``playbooks`` maps names to loaded playbooks (the key must equal ``playbook.name``);
    ``sources`` optionally maps names to the file each came from, kept on new rows for
    operators. Writes go through the caller's transaction (each insert in a SAVEPOINT).
    """
    entries: list[CatalogEntry] = []
    for name, playbook in sorted(playbooks.items()):
        if name != playbook.name:
            raise ValueError(
                f"playbook registered as {name!r} is named {playbook.name!r}: register it"
                " under its own name"
            )
        source = (sources or {}).get(name, "")
        row = await _stored_version(session, playbook, now=now, source=source)
        entries.append(CatalogEntry(playbook, row.id, row.version, row.digest))
    return Catalog(entries)


async def _stored_version(
    session: AsyncSession, playbook: Playbook, *, now: datetime, source: str
) -> PlaybookVersion:
    digest = digest_of(playbook)
    for _ in range(REGISTER_ATTEMPTS):
        existing = await session.scalar(
            select(PlaybookVersion).where(
                PlaybookVersion.name == playbook.name, PlaybookVersion.digest == digest
            )
        )
        if existing is not None:
            return existing
        latest = await session.scalar(
            select(func.max(PlaybookVersion.version)).where(PlaybookVersion.name == playbook.name)
        )
        row = PlaybookVersion(
            name=playbook.name,
            version=(latest or 0) + 1,
            digest=digest,
            definition=definition_of(playbook),
            source=source,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            continue  # another process stored this digest or took this number: look again
        return row
    raise RuntimeError(
        f"could not store a version of playbook {playbook.name!r} after {REGISTER_ATTEMPTS}"
        " attempts: other processes keep registering new definitions of it at the same time"
    )
