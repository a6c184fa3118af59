"""Inbox processing: parse each stored callback, route it to its handler, keep the model and
the timeline current, publish domain events; and the refresh queue that fetches details.

Flow: :class:`InboxProcessor` -> :func:`parse_payload` -> :class:`Router` (built by
:func:`build_router`) -> handlers -> ``sop.events.EventBus``; handlers ask for details with
:func:`request_refresh`, which the :class:`Refresher` fetches through a :class:`DirectoryApi`.
"""

from bot.processing.context import HandlerContext
from bot.processing.directory import DirectoryApi
from bot.processing.handlers.registry import build_router
from bot.processing.parse import PayloadError, parse_payload
from bot.processing.processor import InboxProcessor
from bot.processing.refresh_queue import request_refresh
from bot.processing.refresher import Refresher
from bot.processing.router import Router

__all__ = [
    "DirectoryApi",
    "HandlerContext",
    "InboxProcessor",
    "PayloadError",
    "Refresher",
    "Router",
    "build_router",
    "parse_payload",
    "request_refresh",
]
