"""Dispatch a parsed message to the one handler registered for its route.

Handlers are registered per route key (``wecom:msg:text``,
``wecom:event:change_external_contact:add_external_contact``); a key also matches every
longer route below it, so ``wecom:event:change_external_chat:update`` takes
``...:update:add_member`` unless a more specific handler exists. Routers nest with
:meth:`Router.include_router` (one router per handler family); a route nobody handles goes
to the fallback, and so does every :class:`UnknownMessage` whatever its route. Registering
a key twice is an error at construction, not a silent override. A registration may say what
its messages name (``names``: customers, staff, groups...), so a batch can look all of it up
before its rows are handled (:mod:`bot.processing.prepare`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage, UnknownMessage
from bot.processing.subjects import Names

M = TypeVar("M", bound=PlatformMessage)
Handler = Callable[[HandlerContext, M], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    key: str
    message_type: type[PlatformMessage]
    handler: Callable[[HandlerContext, Any], Awaitable[None]]
    router: str
    names: Names | None = None

    @property
    def name(self) -> str:
        return f"{self.router}.{getattr(self.handler, '__name__', repr(self.handler))}"


class DuplicateRouteError(ValueError):
    pass


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: dict[str, Registration] = {}
        self._fallback: Registration | None = None

    def on(
        self, message_type: type[M], *keys: str, names: Names | None = None
    ) -> Callable[[Handler[M]], Handler[M]]:
        """Register the decorated handler for ``keys``; it receives ``message_type``.

        ``names(source, message, subjects)`` adds what such a message names to ``subjects``.
        """
        if not keys:
            raise ValueError(f"router {self.name!r}: on({message_type.__name__}) needs a key")

        def register(handler: Handler[M]) -> Handler[M]:
            for key in keys:
                self._add(Registration(key, message_type, handler, self.name, names))
            return handler

        return register

    def fallback(
        self, handler: Handler[PlatformMessage], names: Names | None = None
    ) -> Handler[PlatformMessage]:
        """The handler of every route nothing else takes (there is one per tree)."""
        if self._fallback is not None:
            raise DuplicateRouteError(
                f"router {self.name!r} already has the fallback {self._fallback.name}"
            )
        self._fallback = Registration("*", PlatformMessage, handler, self.name, names)
        return handler

    def include_router(self, router: Router) -> Router:
        for registration in router._routes.values():
            self._add(registration)
        if router._fallback is not None:
            if self._fallback is not None:
                raise DuplicateRouteError(
                    f"router {router.name!r} brings a fallback but {self.name!r} already has "
                    f"{self._fallback.name}"
                )
            self._fallback = router._fallback
        return router

    def _add(self, registration: Registration) -> None:
        existing = self._routes.get(registration.key)
        if existing is not None:
            raise DuplicateRouteError(
                f"route {registration.key!r} is registered twice: {existing.name} and "
                f"{registration.name}; remove one of them"
            )
        self._routes[registration.key] = registration

    @property
    def keys(self) -> list[str]:
        return sorted(self._routes)

    def resolve(self, route: str) -> Registration | None:
        """The handler for ``route``: exact key, then each shorter prefix, then the fallback."""
        key = route
        while key:
            registration = self._routes.get(key)
            if registration is not None:
                return registration
            key = key.rpartition(":")[0]
        return self._fallback

    def registration_for(self, message: PlatformMessage) -> Registration | None:
        """The registration :meth:`dispatch` runs for ``message`` (unknown: the fallback)."""
        if isinstance(message, UnknownMessage):
            return self._fallback
        return self.resolve(message.route)

    async def dispatch(self, context: HandlerContext, message: PlatformMessage) -> str:
        """Run the handler of ``message.route``; returns the handler's name for the trace."""
        registration = self.registration_for(message)
        if registration is None:
            raise LookupError(
                f"router {self.name!r} has no handler for {message.route!r} and no fallback"
            )
        if not isinstance(message, registration.message_type):
            raise TypeError(
                f"handler {registration.name} for {registration.key!r} expects "
                f"{registration.message_type.__name__}, got {type(message).__name__} "
                f"(route {message.route!r})"
            )
        await registration.handler(context, message)
        return registration.name
