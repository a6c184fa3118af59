"""Who a staff member's manager is, for escalations and the weekly digest.

Configured first (``sop.tasks.escalation``: ``managers`` by staff member, then
``by_department``), then the department leader WeCom knows (a :class:`LeaderDirectory`,
implemented in ``bot`` over ``user/get`` and ``department/get``), then ``default``. A member
who leads their own department is escalated to the leader of the parent department.
Directory answers are kept for ``fresh_for``: one escalation round asks once per member.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sop.clock import Clock
from sop.settings import TaskEscalation

log = logging.getLogger(__name__)


class LeaderDirectory(Protocol):
    async def departments_of(self, userid: str) -> list[int]:
        """The member's departments, main department first."""
        ...

    async def department(self, department_id: int) -> tuple[list[str], int | None]:
        """The department's leaders (userids) and its parent (None at the top)."""
        ...


class Managers:
    def __init__(
        self,
        settings: TaskEscalation,
        clock: Clock,
        directory: LeaderDirectory | None = None,
        *,
        fresh_for: timedelta = timedelta(hours=1),
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._directory = directory if settings.from_directory else None
        self._fresh_for = fresh_for
        self._cache: dict[str, tuple[datetime, str | None]] = {}

    async def manager_of(self, userid: str) -> str | None:
        configured = self._settings.managers.get(userid)
        if configured:
            return configured
        now = self._clock.now()
        cached = self._cache.get(userid)
        if cached is not None and now - cached[0] < self._fresh_for:
            return cached[1]
        found = await self._look_up(userid)
        self._cache[userid] = (now, found)
        return found

    async def managers_of(self, userids: Sequence[str]) -> dict[str, str | None]:
        return {userid: await self.manager_of(userid) for userid in dict.fromkeys(userids)}

    async def _look_up(self, userid: str) -> str | None:
        departments: list[int] = []
        if self._directory is not None or self._settings.by_department:
            departments = await self._departments(userid)
        for department in departments:
            if department in self._settings.by_department:
                return self._settings.by_department[department]
        if self._directory is not None and departments:
            leader = await self._leader_above(userid, departments[0])
            if leader:
                return leader
        return self._settings.default

    async def _departments(self, userid: str) -> list[int]:
        if self._directory is None:
            return []
        try:
            return await self._directory.departments_of(userid)
        except Exception as exc:  # noqa: BLE001 - a directory failure must not stop escalation
            log.warning("departments of %s could not be read (%s): using the default", userid, exc)
            return []

    async def _leader_above(self, userid: str, department: int | None) -> str | None:
        assert self._directory is not None
        seen: set[int] = set()
        while department is not None and department not in seen:
            seen.add(department)
            try:
                leaders, parent = await self._directory.department(department)
            except Exception as exc:  # noqa: BLE001
                log.warning("department %s could not be read (%s)", department, exc)
                return None
            others = [leader for leader in leaders if leader != userid]
            if others:
                return others[0]
            department = parent
        return None
