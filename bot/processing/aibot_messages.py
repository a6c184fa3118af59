"""The AI bot's JSON callbacks (DOC 100719 / 101033) as typed messages.

The bot receives @-mentions in group chats and direct chats: text, image, mixed (text and
images), voice (already transcribed), file and video; ``stream`` callbacks only ask for the
next chunk of a streamed answer; ``event`` carries enter_chat, template_card_event,
feedback_event. ``chatid`` is only present in group chats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.processing.messages import PlatformMessage, UnknownMessage, epoch_to_utc
from bot.processing.wecom_events import SelectedItem, TemplateCardEvent


@dataclass(frozen=True, kw_only=True)
class AibotMessage(PlatformMessage):
    msg_type: str
    msg_id: str | None = None
    aibot_id: str | None = None
    chat_id: str | None = None
    chat_type: str = "single"
    sender_corp_id: str | None = None
    content: str = ""  # text, voice transcript, the text parts of a mixed message
    urls: tuple[str, ...] = ()  # images / file / video (encrypted with the bot's AES key)
    quote: str | None = None
    response_url: str | None = None

    @property
    def text(self) -> str:
        if self.content:
            return self.content
        return f"[{self.msg_type}]"

    def summary(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class AibotEvent(PlatformMessage):
    """enter_chat, feedback_event and other bot events; ``detail`` is the event's object."""

    event_type: str
    msg_id: str | None = None
    aibot_id: str | None = None
    chat_id: str | None = None
    chat_type: str = "single"
    detail: Mapping[str, Any] | None = None

    def summary(self) -> str:
        return f"bot {self.event_type}"


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _content_of(msg_type: str, data: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The readable text and the media URLs of a message (or of a quoted one)."""
    body = _obj(data.get(msg_type))
    if msg_type in ("text", "voice"):
        return str(body.get("content") or ""), ()
    if msg_type == "mixed":
        texts: list[str] = []
        urls: list[str] = []
        for item in body.get("msg_item") or []:
            item_type = str(_obj(item).get("msgtype") or "")
            text, item_urls = _content_of(item_type, _obj(item))
            if text:
                texts.append(text)
            urls.extend(item_urls)
        return " ".join(texts), tuple(urls)
    url = body.get("url")
    return "", (str(url).strip(),) if url else ()


def parse_aibot(data: Mapping[str, Any]) -> PlatformMessage:
    msg_type = str(data.get("msgtype") or "")
    sender = _obj(data.get("from"))
    common: dict[str, Any] = {
        "sender": str(sender.get("userid") or ""),
        "created_at": epoch_to_utc(data.get("create_time")),
        "raw": data,
    }
    ids: dict[str, Any] = {
        "msg_id": data.get("msgid"),
        "aibot_id": data.get("aibotid"),
        "chat_id": data.get("chatid"),
        "chat_type": str(data.get("chattype") or "single"),
    }
    if not msg_type:
        return UnknownMessage(route="aibot:unknown", **common)
    if msg_type == "event":
        event = _obj(data.get("event"))
        event_type = str(event.get("eventtype") or "")
        detail = _obj(event.get(event_type))
        route = f"aibot:event:{event_type}"
        if event_type == "template_card_event":
            return _card(route, common, detail)
        return AibotEvent(route=route, **common, **ids, event_type=event_type, detail=detail)
    content, urls = _content_of(msg_type, data)
    quote = _obj(data.get("quote"))
    quoted = _content_of(str(quote.get("msgtype") or ""), quote)[0] if quote else None
    return AibotMessage(
        route=f"aibot:msg:{msg_type}",
        **common,
        **ids,
        msg_type=msg_type,
        sender_corp_id=sender.get("corpid"),
        content=content,
        urls=urls,
        quote=quoted or None,
        response_url=data.get("response_url"),
    )


def _card(route: str, common: dict[str, Any], detail: Mapping[str, Any]) -> TemplateCardEvent:
    selected = _obj(detail.get("selected_items")).get("selected_item") or []
    items = tuple(
        SelectedItem(
            question_key=str(_obj(item).get("question_key") or ""),
            option_ids=tuple(
                str(option) for option in _obj(_obj(item).get("option_ids")).get("option_id") or []
            ),
        )
        for item in selected
    )
    return TemplateCardEvent(
        route=route,
        **common,
        event_key=str(detail.get("event_key") or detail.get("eventkey") or ""),
        task_id=str(detail.get("task_id") or ""),
        card_type=detail.get("card_type") or detail.get("cardtype"),
        selected_items=items,
    )
