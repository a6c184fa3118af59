"""What the refresher needs from the WeCom API: four reads, in the platform's JSON shapes.

:class:`bot.wecom.client.WecomClient` implements it; keeping the protocol here lets the
processing code name what it depends on and nothing more.
"""

from __future__ import annotations

from typing import Any, Protocol


class DirectoryApi(Protocol):
    async def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """``externalcontact/get``: ``{"external_contact": {...}, "follow_user": [...]}``."""
        ...

    async def get_group_chat(self, chat_id: str) -> dict[str, Any]:
        """``externalcontact/groupchat/get``: the ``group_chat`` object, with ``member_list``."""
        ...

    async def get_user(self, userid: str) -> dict[str, Any]:
        """``user/get``: userid, name, department, main_department, position, status, ..."""
        ...

    async def get_corp_tags(
        self, tag_ids: list[str] | None = None, group_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """``externalcontact/get_corp_tag_list``: the ``tag_group`` list, each with ``tag``."""
        ...
