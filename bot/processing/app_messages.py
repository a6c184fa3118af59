"""WeCom app and Official Account payloads (the classic XML vocabulary) as typed messages.

For the types wechatpy 1.8.18 knows, its message classes read the fields (they take the dict
from :mod:`bot.processing.xmldict`); the WeCom events it does not know are parsed by
:mod:`bot.processing.wecom_events`. Anything else becomes an :class:`UnknownMessage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wechatpy import events as mp_events
from wechatpy import messages as mp_messages
from wechatpy.enterprise import events as wecom_events_wx
from wechatpy.enterprise import messages as wecom_messages_wx

from bot.processing import messages as m
from bot.processing import wecom_events as w

#: WeCom events wechatpy does not know: parser by Event, and whether ChangeType (and
#: UpdateDetail) extend the route.
_WECOM_CUSTOM: dict[str, Callable[[str, Mapping[str, Any]], m.PlatformMessage]] = {
    "change_external_contact": w.parse_external_contact,
    "change_external_chat": w.parse_external_chat,
    "change_external_tag": w.parse_external_tag,
    "template_card_event": w.parse_template_card,
    "change_contact": w.parse_contact_change,
}

_MessageBuilder = Callable[[Any, dict[str, Any]], m.AppMessage]
_EventBuilder = Callable[[Any, dict[str, Any]], m.AppEvent]


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


_MESSAGES: dict[str, _MessageBuilder] = {
    "text": lambda wx, c: m.TextMessage(**c, content=wx.content or ""),
    "image": lambda wx, c: m.ImageMessage(**c, pic_url=_opt(wx.image), media_id=_opt(wx.media_id)),
    "voice": lambda wx, c: m.VoiceMessage(
        **c, media_id=_opt(wx.media_id), format=_opt(wx.format), recognition=_opt(wx.recognition)
    ),
    "video": lambda wx, c: m.VideoMessage(
        **c, media_id=_opt(wx.media_id), thumb_media_id=_opt(wx.thumb_media_id)
    ),
    "shortvideo": lambda wx, c: m.VideoMessage(
        **c, media_id=_opt(wx.media_id), thumb_media_id=_opt(wx.thumb_media_id)
    ),
    "location": lambda wx, c: m.LocationMessage(
        **c,
        latitude=_float(wx.location_x),
        longitude=_float(wx.location_y),
        scale=_int(wx.scale),
        label=_opt(wx.label),
    ),
    "link": lambda wx, c: m.LinkMessage(
        **c,
        title=_opt(wx.title),
        description=_opt(wx.description),
        url=_opt(wx.url),
        pic_url=_opt(wx._data.get("PicUrl")),
    ),
}

_EVENTS: dict[str, _EventBuilder] = {
    "subscribe": lambda wx, c: m.SubscribeEvent(**c),
    "unsubscribe": lambda wx, c: m.UnsubscribeEvent(**c),
    "enter_agent": lambda wx, c: m.EnterAgentEvent(**c),
    "click": lambda wx, c: m.ClickEvent(**c),
    "view": lambda wx, c: m.ViewEvent(**c),
}


def parse_app_payload(platform: str, data: dict[str, Any]) -> m.PlatformMessage:
    """``platform`` is ``wecom`` (an app of the corp) or ``mp`` (an Official Account)."""
    msg_type = str(data.get("MsgType") or "").lower()
    common: dict[str, Any] = {
        "sender": str(data.get("FromUserName") or ""),
        "created_at": m.epoch_to_utc(data.get("CreateTime")),
        "raw": data,
    }
    if msg_type == "event":
        return _parse_event(platform, data, common)
    route = f"{platform}:msg:{msg_type or 'unknown'}"
    classes = wecom_messages_wx.MESSAGE_TYPES if platform == "wecom" else mp_messages.MESSAGE_TYPES
    builder = _MESSAGES.get(msg_type)
    if builder is None and msg_type == "file":
        return m.FileMessage(
            route=route,
            **common,
            msg_type=msg_type,
            msg_id=_opt(data.get("MsgId")),
            agent_id=_int(data.get("AgentID")),
            media_id=_opt(data.get("MediaId")),
            title=_opt(data.get("Title") or data.get("FileName")),
        )
    if builder is None or msg_type not in classes:
        return m.UnknownMessage(route=route, **common)
    wx = classes[msg_type](data)
    return builder(
        wx,
        {
            "route": route,
            **common,
            "msg_type": msg_type,
            "msg_id": _opt(data.get("MsgId")),
            "agent_id": _int(data.get("AgentID")),
        },
    )


def _parse_event(platform: str, data: dict[str, Any], common: dict[str, Any]) -> m.PlatformMessage:
    event = str(data.get("Event") or "").lower()
    route = f"{platform}:event:{event or 'unknown'}"
    if platform == "wecom" and event in _WECOM_CUSTOM:
        change = str(data.get("ChangeType") or "")
        if change:
            route = f"{route}:{change}"
        detail = data.get("UpdateDetail")
        if event == "change_external_chat" and detail:
            route = f"{route}:{detail}"
        return _WECOM_CUSTOM[event](route, data)
    classes = wecom_events_wx.EVENT_TYPES if platform == "wecom" else mp_events.EVENT_TYPES
    builder = _EVENTS.get(event)
    if builder is None or event not in classes:
        return m.UnknownMessage(route=route, **common)
    wx = classes[event](data)
    key = str(data.get("EventKey") or "")
    fields: dict[str, Any] = {
        "route": route,
        **common,
        "event": event,
        "agent_id": _int(data.get("AgentID")),
        "event_key": key,
    }
    if event == "subscribe":
        scene = key[len("qrscene_") :] if key.startswith("qrscene_") else None
        return m.SubscribeEvent(**fields, scene=scene, ticket=_opt(data.get("Ticket")))
    if event == "view":
        fields["event_key"] = str(wx.url or key)
    return builder(wx, fields)
