"""Typed platform messages: what a parsed inbox row is, before any handler looks at it.

Every message carries its ``route`` (``<platform>:msg:<type>`` or
``<platform>:event:<event>[:<change type>[:<detail>]]``), which the router dispatches on,
the ``sender`` (FromUserName / from.userid; ``sys`` for system events), the platform's time
and the raw dict, so nothing the platform sent is lost even when a class does not name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: External user ids (customers) start with these; staff userids never do.
EXTERNAL_ID_PREFIXES = ("wm", "wo")


def is_external_id(userid: str | None) -> bool:
    return bool(userid) and str(userid).startswith(EXTERNAL_ID_PREFIXES)


def epoch_to_utc(value: Any) -> datetime | None:
    """A platform timestamp (seconds, as int or string) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True, kw_only=True)
class PlatformMessage:
    """What every message and event has."""

    route: str
    sender: str = ""
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def platform(self) -> str:
        return self.route.split(":", 1)[0]

    def summary(self) -> str:
        """One human line for the timeline."""
        return self.route


@dataclass(frozen=True, kw_only=True)
class UnknownMessage(PlatformMessage):
    """A payload no parser knows: kept whole, shown on the timeline as ``raw``."""

    def summary(self) -> str:
        return f"unrecognised {self.route.replace(':', ' ')}"


# --- messages to a WeCom app or an Official Account (same XML vocabulary) --------------------


@dataclass(frozen=True, kw_only=True)
class AppMessage(PlatformMessage):
    msg_type: str
    msg_id: str | None = None
    agent_id: int | None = None

    @property
    def text(self) -> str:
        """The message as text, for the timeline and ``MessageReceived.text``."""
        return f"[{self.msg_type}]"

    def summary(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class TextMessage(AppMessage):
    content: str = ""

    @property
    def text(self) -> str:
        return self.content


@dataclass(frozen=True, kw_only=True)
class ImageMessage(AppMessage):
    pic_url: str | None = None
    media_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class VoiceMessage(AppMessage):
    media_id: str | None = None
    format: str | None = None
    recognition: str | None = None

    @property
    def text(self) -> str:
        return f"[voice] {self.recognition}" if self.recognition else "[voice]"


@dataclass(frozen=True, kw_only=True)
class VideoMessage(AppMessage):
    media_id: str | None = None
    thumb_media_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileMessage(AppMessage):
    media_id: str | None = None
    title: str | None = None

    @property
    def text(self) -> str:
        return f"[file] {self.title}" if self.title else "[file]"


@dataclass(frozen=True, kw_only=True)
class LocationMessage(AppMessage):
    latitude: float | None = None
    longitude: float | None = None
    scale: int | None = None
    label: str | None = None

    @property
    def text(self) -> str:
        return f"[location] {self.label or f'{self.latitude},{self.longitude}'}"


@dataclass(frozen=True, kw_only=True)
class LinkMessage(AppMessage):
    title: str | None = None
    description: str | None = None
    url: str | None = None
    pic_url: str | None = None

    @property
    def text(self) -> str:
        return f"[link] {self.title or self.url or ''}".rstrip()


# --- app events ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AppEvent(PlatformMessage):
    event: str
    agent_id: int | None = None
    event_key: str = ""

    def summary(self) -> str:
        return f"{self.event} {self.event_key}".rstrip()


@dataclass(frozen=True, kw_only=True)
class SubscribeEvent(AppEvent):
    """A member follows the WeCom app, or a user follows the Official Account.

    ``scene`` is the QR scene of an Official Account follow (``qrscene_`` stripped).
    """

    scene: str | None = None
    ticket: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnsubscribeEvent(AppEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class EnterAgentEvent(AppEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ClickEvent(AppEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ViewEvent(AppEvent):
    """A menu link was opened; ``event_key`` is the URL."""
