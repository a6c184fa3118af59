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
MP_CUSTOM = "mp"  # + ":<account>": an Official Account customer-service message (custom/send)
#: ``outbox.channel`` holds 32 characters.
CHANNEL_NAME_LIMIT = 32

#: A welcome code is good for 20 seconds after the add event (WECOM.md, "Sending").
WELCOME_CODE_VALIDITY = timedelta(seconds=20)
#: An Official Account may answer a follower for 48 hours after the follower's last message,
#: at most 5 messages in that window (WECOM.md, "Sending").
MP_REPLY_WINDOW = timedelta(hours=48)
MP_REPLY_QUOTA = 5

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


def mp_channel(account: str) -> str:
    """The channel name of rows for the Official Account named ``account`` in the config."""
    name = f"{MP_CUSTOM}:{account}"
    if len(name) > CHANNEL_NAME_LIMIT:
        raise ValueError(
            f"Official Account name {account!r} is too long for an outbox channel name"
            f" ({name!r} > {CHANNEL_NAME_LIMIT} characters): rename it in config.yaml"
            f" (mp_accounts[].name) to at most {CHANNEL_NAME_LIMIT - len(MP_CUSTOM) - 1}"
        )
    return name


def mp_window_closes_at(last_message_at: datetime) -> datetime:
    """When the reply window opened by a follower's message at ``last_message_at`` closes."""
    return last_message_at + MP_REPLY_WINDOW


def mp_news(title: str, description: str, url: str, picture_url: str = "") -> Payload:
    """A customer-service link card (``news`` with one article: the platform shows one)."""
    article = {"title": title, "description": description, "url": url, "picurl": picture_url}
    return {"msgtype": "news", "news": {"articles": [article]}}


def mp_image(media_id: str) -> Payload:
    """An image uploaded beforehand as temporary or permanent material."""
    return {"msgtype": "image", "image": {"media_id": media_id}}


def mp_miniprogram(title: str, appid: str, pagepath: str, thumb_media_id: str) -> Payload:
    page = {
        "title": title,
        "appid": appid,
        "pagepath": pagepath,
        "thumb_media_id": thumb_media_id,
    }
    return {"msgtype": "miniprogrampage", "miniprogrampage": page}


def summarize(payload: Payload, limit: int = 120) -> str:
    """One line for timelines and listings: the text, title or card title of a payload."""
    kind = payload.get("msgtype", "")
    body = payload.get(kind) if kind else None
    line = ""
    if kind == "template_card" and isinstance(body, dict):
        line = str(body.get("main_title", {}).get("title", ""))
    elif kind == "news" and isinstance(body, dict) and body.get("articles"):
        line = str(body["articles"][0].get("title", ""))
    elif isinstance(body, dict):
        line = str(body.get("content") or body.get("title") or "")
    elif isinstance(payload.get("text"), dict):
        line = str(payload["text"].get("content", ""))
    line = " ".join(line.split())
    prefix = f"[{kind}] " if kind and kind != "text" else ""
    text_line = prefix + line
    return text_line if len(text_line) <= limit else text_line[: limit - 1] + "…"
