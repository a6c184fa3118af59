"""Department leaders from the WeCom directory, for task escalation (``sop.tasks.managers``).

``user/get`` gives a member's departments (main department first); ``department/get`` gives
a department's ``department_leader`` list and its ``parentid``. Reads only; the caller keeps
the answers for a while, so an escalation round costs a few calls, not one per task.
"""

from __future__ import annotations

from bot.wecom import WecomClient


class WecomLeaders:
    """:class:`sop.tasks.managers.LeaderDirectory` over the WeCom API."""

    def __init__(self, client: WecomClient) -> None:
        self._client = client

    async def departments_of(self, userid: str) -> list[int]:
        user = await self._client.get_user(userid)
        departments = [int(d) for d in user.get("department") or []]
        main = user.get("main_department")
        if main is not None and int(main) in departments:
            departments.remove(int(main))
            departments.insert(0, int(main))
        return departments

    async def department(self, department_id: int) -> tuple[list[str], int | None]:
        payload = await self._client.call(
            "GET", "department/get", params={"id": str(department_id)}
        )
        department = payload.get("department") or {}
        leaders = [str(u) for u in department.get("department_leader") or []]
        parent = department.get("parentid")
        parent_id = int(parent) if parent not in (None, "", 0, "0") else None
        return leaders, parent_id if parent_id != department_id else None
