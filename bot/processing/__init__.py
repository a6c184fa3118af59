"""Inbox processing: parse each stored callback, route it to its handler, keep the model and
the timeline current, publish domain events; and the refresh queue that fetches details.

Flow: :class:`InboxProcessor` claims a batch -> :mod:`~bot.processing.prepare` parses it
(:func:`parse_payload`) and reads what it names (:class:`~bot.processing.roster.Roster`) ->
each row through the :class:`Router` (built by :func:`build_router`) -> handlers ->
``sop.events.EventBus``, as a unit of the batch (:mod:`store.batch`); handlers ask for details
with ``HandlerContext.refresh`` (:func:`request_refresh` outside a batch), which the
:class:`Refresher` fetches through a :class:`DirectoryApi`.
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
