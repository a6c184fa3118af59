"""An inbox row's payload to a typed platform message: the processor's first step.

The row's ``source`` names the parser (``wecom:<app>``, ``mp:<account>``, ``aibot:<bot>``;
``archive:<corp>`` later); ``content_type`` says how to read the payload. An unknown type is
an :class:`~bot.processing.messages.UnknownMessage`, never an exception; only a payload that
cannot be read at all (broken XML, JSON that is not an object) raises :class:`PayloadError`.
"""

from __future__ import annotations

import json
from typing import Any

from bot.processing.aibot_messages import parse_aibot
from bot.processing.app_messages import parse_app_payload
from bot.processing.messages import PlatformMessage, UnknownMessage
from bot.processing.xmldict import PayloadError, xml_to_dict

__all__ = ["PayloadError", "load_payload", "parse_payload"]


def load_payload(content_type: str, payload: str) -> dict[str, Any]:
    """The payload as a dict: XML (safely) or JSON."""
    if content_type == "xml":
        return xml_to_dict(payload)
    if content_type == "json":
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise PayloadError(f"payload is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PayloadError(f"JSON payload is a {type(data).__name__}, not an object")
        return data
    raise PayloadError(f"unknown content_type {content_type!r}: expected 'xml' or 'json'")


def parse_payload(source: str, content_type: str, payload: str) -> PlatformMessage:
    platform = source.partition(":")[0]
    data = load_payload(content_type, payload)
    if platform in ("wecom", "mp"):
        return parse_app_payload(platform, data)
    if platform == "aibot":
        return parse_aibot(data)
    return UnknownMessage(route=f"{platform or 'unknown'}:unknown", raw=data)
