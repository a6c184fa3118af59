"""Every handler family, in one place: a new family is one module and one line here."""

from __future__ import annotations

from bot.processing.handlers import (
    aibot,
    app_events,
    contact,
    external_chat,
    external_contact,
    external_tag,
    messages,
    mp,
    template_card,
    unknown,
)
from bot.processing.router import Router

FAMILIES = (
    messages.router,
    app_events.router,
    external_contact.router,
    external_chat.router,
    external_tag.router,
    template_card.router,
    contact.router,
    aibot.router,
    mp.router,
    unknown.router,
)


def build_router() -> Router:
    """The root router the processor dispatches through."""
    root = Router("root")
    for family in FAMILIES:
        root.include_router(family)
    return root
