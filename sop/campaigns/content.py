"""Rendered bodies and platform payloads of a campaign, for plan samples and the fan-out.

A mass message is rendered once per (staff member, variant) with a context without a
customer (the platform sends one content to all of them); Official Account messages and staff
scripts are rendered per customer with :func:`sop.rendering.build_context`. Payloads are built
by :mod:`sop.delivery.messages`, whose builders raise ``ValueError`` naming the platform
limit a body breaks (text bytes, attachments, recipients per call).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.campaigns.model import Campaign
from sop.delivery import messages
from sop.playbooks.model import Content
from sop.rendering.context import build_context
from sop.rendering.renderer import Renderer
from store.models import Staff

Payload = dict[str, Any]
#: WeCom app text messages (the staff task card's description is shorter still).
TEXT_BYTES = 2048


class Composer:
    """Renders one campaign's variants; ``zone`` is the campaign's time zone."""

    def __init__(self, campaign: Campaign, renderer: Renderer, zone: ZoneInfo) -> None:
        self.campaign = campaign
        self.renderer = renderer
        self.zone = zone
        self._contents = {name: content for name, _split, content in campaign.bodies()}
        self._owner_names: dict[str, str] = {}

    def content(self, variant: str) -> Content:
        return self._contents[variant]

    async def owner_context(
        self, session: AsyncSession, owner: str, now: datetime
    ) -> dict[str, Any]:
        """The context of a mass message: its sender, the time, the campaign's name."""
        name = self._owner_names.get(owner)
        if name is None:
            name = await session.scalar(select(Staff.name).where(Staff.userid == owner)) or ""
            self._owner_names[owner] = name
        return {
            "customer": None,
            "owner": {"userid": owner, "name": name},
            "group": None,
            "playbook": {"name": self.campaign.name},
            "event": None,
            "now": now.astimezone(self.zone),
        }

    async def mass_payload(
        self,
        session: AsyncSession,
        *,
        owner: str,
        variant: str,
        addresses: Sequence[str],
        now: datetime,
    ) -> Payload:
        """One ``add_msg_template`` body for ``owner``'s recipients in ``variant``."""
        content = self.content(variant)
        text = self.renderer.render(content, await self.owner_context(session, owner, now))
        if self.campaign.channel == "group_mass":
            return messages.mass_to_groups(
                sender=owner, chat_ids=addresses, content=text, attachments=content.attachments
            )
        return messages.mass_to_customers(
            sender=owner, external_userids=addresses, content=text, attachments=content.attachments
        )

    async def personal_text(
        self,
        session: AsyncSession,
        *,
        customer_id: int,
        owner: str | None,
        variant: str,
        now: datetime,
    ) -> str:
        """The body for one customer (an Official Account message, a staff script)."""
        context = await build_context(
            session,
            customer_id=customer_id,
            staff_userid=owner,
            playbook_name=self.campaign.name,
            now=now,
            zone=self.zone,
        )
        text = self.renderer.render(self.content(variant), context)
        size = len(text.encode("utf-8"))
        if size > TEXT_BYTES:
            raise ValueError(
                f"campaign {self.campaign.name!r} variant {variant!r}: the text is {size} bytes"
                f" in UTF-8, a text message takes at most {TEXT_BYTES}: shorten it"
            )
        return text
