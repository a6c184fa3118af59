"""Corp tag names to WeCom tag ids, creating the tags that do not exist yet.

The toolkit speaks of tags by name (``"group/name"`` or ``"name"``); ``mark_tag`` takes ids.
The library is read with ``get_corp_tag_list`` and kept for ``fresh_for`` on the clock; a
missing tag to add is created with ``add_corp_tag`` (a bare name in the default group), one
call per group, and the answer goes straight into the cached library. Another process may
create the same tag at the same moment: the platform then answers 40071 (name exists), and the
library is read again and the name resolved once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.delivery.messages import split_tag_name

#: add_corp_tag: "the tag name already exists" (in that group).
TAG_NAME_EXISTS = 40071


class AmbiguousTag(ValueError):
    """A bare tag name that several groups hold, none of them the default group."""


@dataclass
class _Group:
    group_id: str
    tags: dict[str, str] = field(default_factory=dict)  # name -> tag id


class TagLibrary:
    def __init__(
        self,
        client: WecomClient,
        clock: Clock,
        *,
        default_group: str,
        fresh_for: timedelta = timedelta(minutes=1),
    ) -> None:
        self._client = client
        self._clock = clock
        self.default_group = default_group
        self._fresh_for = fresh_for
        self._groups: dict[str, _Group] | None = None
        self._read_at: datetime | None = None
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Read the library again next time (a tag was deleted on the platform)."""
        self._groups = None

    async def ids(self, names: Sequence[str], *, create: bool) -> list[str]:
        """The tag ids of ``names``; missing ones created when ``create``, else left out."""
        if not names:
            return []
        async with self._lock:
            groups = await self._current()
            missing = self._missing(groups, names)
            if missing and create:
                try:
                    await self._create(groups, missing)
                except WecomApiError as exc:
                    if exc.errcode != TAG_NAME_EXISTS:
                        raise
                    groups = await self._read()  # created meanwhile by another process
                    await self._create(groups, self._missing(groups, names))
            found = (self._find(groups, name) for name in names)
            return list(dict.fromkeys(tag_id for tag_id in found if tag_id is not None))

    async def _current(self) -> dict[str, _Group]:
        now = self._clock.now()
        stale = self._read_at is None or now - self._read_at >= self._fresh_for
        if self._groups is None or stale:
            return await self._read()
        return self._groups

    async def _read(self) -> dict[str, _Group]:
        groups: dict[str, _Group] = {}
        for entry in await self._client.get_corp_tags():
            self._merge(groups, entry)
        self._groups, self._read_at = groups, self._clock.now()
        return groups

    def _missing(self, groups: dict[str, _Group], names: Sequence[str]) -> dict[str, list[str]]:
        """Tags to create, by group name."""
        missing: dict[str, list[str]] = {}
        for name in names:
            if self._find(groups, name) is None:
                group, tag = split_tag_name(name)
                wanted = missing.setdefault(group or self.default_group, [])
                if tag not in wanted:
                    wanted.append(tag)
        return missing

    async def _create(self, groups: dict[str, _Group], missing: dict[str, list[str]]) -> None:
        for group_name, tags in missing.items():
            known = groups.get(group_name)
            if known is not None:
                created = await self._client.add_corp_tag(tags, group_id=known.group_id)
            else:
                created = await self._client.add_corp_tag(tags, group_name=group_name)
            created.setdefault("group_name", group_name)
            self._merge(groups, created)

    def _find(self, groups: dict[str, _Group], name: str) -> str | None:
        group_name, tag = split_tag_name(name)
        if group_name is not None:
            group = groups.get(group_name)
            return None if group is None else group.tags.get(tag)
        default = groups.get(self.default_group)
        if default is not None and tag in default.tags:
            return default.tags[tag]
        holders = sorted(g for g, group in groups.items() if tag in group.tags)
        if len(holders) > 1:
            raise AmbiguousTag(
                f"tag {tag!r} exists in several groups ({', '.join(holders)}) and not in the"
                f" default group {self.default_group!r}: write it as 'group/{tag}'"
            )
        return groups[holders[0]].tags[tag] if holders else None

    @staticmethod
    def _merge(groups: dict[str, _Group], entry: dict[str, Any]) -> None:
        if entry.get("deleted"):
            return
        group = groups.setdefault(str(entry["group_name"]), _Group(str(entry["group_id"])))
        for tag in entry.get("tag", []):
            if not tag.get("deleted"):
                group.tags[str(tag["name"])] = str(tag["id"])
