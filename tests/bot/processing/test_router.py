from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.context import HandlerContext
from bot.processing.handlers.registry import build_router
from bot.processing.messages import PlatformMessage, TextMessage, UnknownMessage
from bot.processing.router import DuplicateRouteError, Router
from sop.events import DomainEvent
from tests.support.clock import ManualClock


async def _no_publish(event: DomainEvent) -> None:
    raise AssertionError("not expected")


def _context() -> HandlerContext:
    clock = ManualClock()
    return HandlerContext(
        session=AsyncSession(),
        clock=clock,
        inbox_id=1,
        source="wecom:sales",
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        publish=_no_publish,
    )


def _text(route: str = "wecom:msg:text") -> TextMessage:
    return TextMessage(route=route, msg_type="text", content="hi")


def _recording_router(seen: list[str]) -> Router:
    router = Router("test")

    @router.on(TextMessage, "wecom:msg:text")
    async def exact(ctx: HandlerContext, message: TextMessage) -> None:
        seen.append("exact")

    @router.on(PlatformMessage, "wecom:event:change_external_chat:update")
    async def prefix(ctx: HandlerContext, message: PlatformMessage) -> None:
        seen.append("prefix")

    @router.fallback
    async def fallback(ctx: HandlerContext, message: PlatformMessage) -> None:
        seen.append("fallback")

    return router


async def test_exact_then_prefix_then_fallback() -> None:
    seen: list[str] = []
    router = _recording_router(seen)
    ctx = _context()
    await router.dispatch(ctx, _text())
    await router.dispatch(
        ctx, UnknownMessage(route="wecom:event:change_external_chat:update:add_member")
    )
    await router.dispatch(
        ctx, PlatformMessage(route="wecom:event:change_external_chat:update:add_member")
    )
    await router.dispatch(ctx, PlatformMessage(route="wecom:event:change_external_chat:create"))
    assert seen == ["exact", "fallback", "prefix", "fallback"]


async def test_included_routers_and_duplicates() -> None:
    seen: list[str] = []
    root = Router("root")
    root.include_router(_recording_router(seen))
    await root.dispatch(_context(), _text())
    assert seen == ["exact"]
    with pytest.raises(DuplicateRouteError, match="'wecom:msg:text' is registered twice"):
        root.include_router(_recording_router(seen))


async def test_wrong_message_type_is_a_wiring_error() -> None:
    router = _recording_router([])
    message = PlatformMessage(route="wecom:msg:text")
    with pytest.raises(TypeError, match="expects TextMessage, got PlatformMessage"):
        await router.dispatch(_context(), message)


async def test_no_handler_and_no_fallback() -> None:
    with pytest.raises(LookupError, match="no handler for 'x:y'"):
        await Router("empty").dispatch(_context(), PlatformMessage(route="x:y"))


def test_registry_covers_every_family() -> None:
    router = build_router()
    for route in (
        "wecom:msg:text",
        "wecom:msg:link",
        "wecom:event:enter_agent",
        "wecom:event:change_external_contact:transfer_fail",
        "wecom:event:change_external_chat:update:del_member",
        "wecom:event:change_external_tag:shuffle",
        "wecom:event:template_card_event",
        "wecom:event:change_contact:delete_user",
        "aibot:msg:mixed",
        "aibot:event:feedback_event",
        "mp:event:subscribe",
        "mp:msg:voice",
    ):
        registration = router.resolve(route)
        assert registration is not None and registration.key != "*", route
    fallback = router.resolve("wecom:event:change_external_contact:new_kind")
    assert fallback is not None and fallback.name == "unknown.raw"
