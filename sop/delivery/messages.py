"""Payloads for the channels, built the way the platform expects them.

The engine and the handlers build outbox payloads with these functions rather than by hand,
so a payload that reaches the sender already has the platform's shape; the adapters in
``bot.channels`` add the addressing (``touser``, ``agentid``) and send it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Channel names, as outbox rows carry them.
STAFF_APP = "wecom_app"  # an app message to a staff member (message/send)
WELCOME = "wecom_welcome"  # the welcome message of a new customer (send_welcome_msg)

#: A welcome code is good for 20 seconds after the add event (WECOM.md, "Sending").
WELCOME_CODE_VALIDITY = timedelta(seconds=20)

Payload = dict[str, Any]


def text(content: str) -> Payload:
    return {"msgtype": "text", "text": {"content": content}}


def markdown(content: str) -> Payload:
    return {"msgtype": "markdown", "markdown": {"content": content}}


def textcard(title: str, description: str, url: str, button_text: str = "详情") -> Payload:
    card = {"title": title, "description": description, "url": url, "btntxt": button_text}
    return {"msgtype": "textcard", "textcard": card}


@dataclass(frozen=True)
class Button:
    text: str
    key: str
    style: int = 1  # 1 blue, 2 gray, 3 red, 4 gray outlined


def button_card(
    *, task_id: str, title: str, description: str = "", buttons: Sequence[Button]
) -> Payload:
    """A ``button_interaction`` template card: a press comes back as ``template_card_event``
    with the button's key and ``task_id`` (unique per card, letters, digits and ``_-@``)."""
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": title, "desc": description},
        "task_id": task_id,
        "button_list": [{"text": b.text, "style": b.style, "key": b.key} for b in buttons],
    }
    return {"msgtype": "template_card", "template_card": card}


def welcome(welcome_code: str, content: str, attachments: Sequence[Payload] = ()) -> Payload:
    payload: Payload = {"welcome_code": welcome_code, "text": {"content": content}}
    if attachments:
        payload["attachments"] = list(attachments)
    return payload


def welcome_expires_at(added_at: datetime) -> datetime:
    """The end of the window in which the welcome for an add event at ``added_at`` can go."""
    return added_at + WELCOME_CODE_VALIDITY


def summarize(payload: Payload, limit: int = 120) -> str:
    """One line for timelines and listings: the text, title or card title of a payload."""
    kind = payload.get("msgtype", "")
    body = payload.get(kind) if kind else None
    line = ""
    if kind == "template_card" and isinstance(body, dict):
        line = str(body.get("main_title", {}).get("title", ""))
    elif isinstance(body, dict):
        line = str(body.get("content") or body.get("title") or "")
    elif isinstance(payload.get("text"), dict):
        line = str(payload["text"].get("content", ""))
    line = " ".join(line.split())
    prefix = f"[{kind}] " if kind and kind != "text" else ""
    text_line = prefix + line
    return text_line if len(text_line) <= limit else text_line[: limit - 1] + "…"
