"""The WeCom events wechatpy 1.8.18 does not know, as typed messages parsed from the XML dict.

Customer contact (DOC 92130), customer groups, the corp tag library, template card presses
(DOC 90240) and directory changes. Field names follow the documentation; anything a field
does not name stays in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.processing.messages import PlatformMessage, epoch_to_utc


@dataclass(frozen=True, kw_only=True)
class ExternalContactEvent(PlatformMessage):
    """``change_external_contact``: a staff member's relationship with a customer changed."""

    change_type: str
    userid: str = ""
    external_userid: str = ""
    state: str | None = None  # the channel code's state, for channel attribution
    welcome_code: str | None = None
    change_source: str | None = None  # Source, e.g. DELETE_BY_TRANSFER
    fail_reason: str | None = None  # transfer_fail: customer_refused, customer_limit_exceed

    def summary(self) -> str:
        return f"{self.change_type}: {self.userid} / {self.external_userid}"


@dataclass(frozen=True, kw_only=True)
class ExternalChatEvent(PlatformMessage):
    """``change_external_chat``: a customer group was created, changed or dismissed."""

    change_type: str  # create, update, dismiss
    chat_id: str
    update_detail: str | None = None  # add_member, del_member, change_owner, ...
    join_scene: int | None = None  # 0 invited by a member, 3 scanned the group QR code
    quit_scene: int | None = None  # 0 left, 1 removed by the owner
    mem_change_cnt: int | None = None
    members: tuple[str, ...] = ()
    last_mem_ver: str | None = None
    cur_mem_ver: str | None = None

    def summary(self) -> str:
        detail = f" {self.update_detail}" if self.update_detail else ""
        who = f" {', '.join(self.members)}" if self.members else ""
        return f"group {self.change_type}{detail}{who}"


@dataclass(frozen=True, kw_only=True)
class ExternalTagEvent(PlatformMessage):
    """``change_external_tag``: the corp tag library changed."""

    change_type: str  # create, update, delete, shuffle
    tag_id: str | None = None  # Id: a tag or a tag group id, see tag_type
    tag_type: str | None = None  # tag, tag_group
    strategy_id: str | None = None

    def summary(self) -> str:
        return f"tag library {self.change_type} {self.tag_type or ''} {self.tag_id or ''}".strip()


@dataclass(frozen=True, kw_only=True)
class SelectedItem:
    question_key: str
    option_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TemplateCardEvent(PlatformMessage):
    """A button on a template card was pressed (WeCom app or AI bot)."""

    event_key: str
    task_id: str
    card_type: str | None = None
    response_code: str | None = None
    agent_id: int | None = None
    selected_items: tuple[SelectedItem, ...] = ()

    def summary(self) -> str:
        return f"pressed {self.event_key} on card {self.task_id}"


@dataclass(frozen=True, kw_only=True)
class ContactChangeEvent(PlatformMessage):
    """``change_contact``: the staff directory changed (create_user, update_user, ...)."""

    change_type: str
    userid: str | None = None
    new_userid: str | None = None
    name: str | None = None
    departments: tuple[int, ...] = ()
    main_department: int | None = None
    position: str | None = None
    status: int | None = None

    def summary(self) -> str:
        return f"directory {self.change_type} {self.userid or ''}".strip()


# --- parsing -----------------------------------------------------------------------------------


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _members(value: Any) -> tuple[str, ...]:
    """MemChangeList: ``<Item>`` children, or (as some samples show) one comma-joined text."""
    if isinstance(value, Mapping):
        return tuple(str(item) for item in _list(value.get("Item")) if item)
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return ()


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    parts = str(value).split(",")
    return tuple(int(part) for part in parts if part.strip().lstrip("-").isdigit())


def _common(route: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "route": route,
        "sender": str(data.get("FromUserName") or ""),
        "created_at": epoch_to_utc(data.get("CreateTime")),
        "raw": data,
    }


def parse_external_contact(route: str, data: Mapping[str, Any]) -> ExternalContactEvent:
    return ExternalContactEvent(
        **_common(route, data),
        change_type=str(data.get("ChangeType") or ""),
        userid=str(data.get("UserID") or ""),
        external_userid=str(data.get("ExternalUserID") or ""),
        state=_str(data, "State"),
        welcome_code=_str(data, "WelcomeCode"),
        change_source=_str(data, "Source"),
        fail_reason=_str(data, "FailReason"),
    )


def parse_external_chat(route: str, data: Mapping[str, Any]) -> ExternalChatEvent:
    return ExternalChatEvent(
        **_common(route, data),
        change_type=str(data.get("ChangeType") or ""),
        chat_id=str(data.get("ChatId") or ""),
        update_detail=_str(data, "UpdateDetail"),
        join_scene=_int(data, "JoinScene"),
        quit_scene=_int(data, "QuitScene"),
        mem_change_cnt=_int(data, "MemChangeCnt"),
        members=_members(data.get("MemChangeList")),
        last_mem_ver=_str(data, "LastMemVer"),
        cur_mem_ver=_str(data, "CurMemVer"),
    )


def parse_external_tag(route: str, data: Mapping[str, Any]) -> ExternalTagEvent:
    return ExternalTagEvent(
        **_common(route, data),
        change_type=str(data.get("ChangeType") or ""),
        tag_id=_str(data, "Id"),
        tag_type=_str(data, "TagType"),
        strategy_id=_str(data, "StrategyId"),
    )


def _selected_items(value: Any) -> tuple[SelectedItem, ...]:
    items: list[SelectedItem] = []
    container = value.get("SelectedItem") if isinstance(value, Mapping) else None
    for item in _list(container):
        if not isinstance(item, Mapping):
            continue
        options = item.get("OptionIds")
        ids = _list(options.get("OptionId")) if isinstance(options, Mapping) else []
        items.append(
            SelectedItem(
                question_key=str(item.get("QuestionKey") or ""),
                option_ids=tuple(str(option) for option in ids if option is not None),
            )
        )
    return tuple(items)


def parse_template_card(route: str, data: Mapping[str, Any]) -> TemplateCardEvent:
    return TemplateCardEvent(
        **_common(route, data),
        event_key=str(data.get("EventKey") or ""),
        task_id=str(data.get("TaskId") or ""),
        card_type=_str(data, "CardType"),
        response_code=_str(data, "ResponseCode"),
        agent_id=_int(data, "AgentID"),
        selected_items=_selected_items(data.get("SelectedItems")),
    )


def parse_contact_change(route: str, data: Mapping[str, Any]) -> ContactChangeEvent:
    return ContactChangeEvent(
        **_common(route, data),
        change_type=str(data.get("ChangeType") or ""),
        userid=_str(data, "UserID"),
        new_userid=_str(data, "NewUserID"),
        name=_str(data, "Name"),
        departments=_ints(data.get("Department")),
        main_department=_int(data, "MainDepartment"),
        position=_str(data, "Position"),
        status=_int(data, "Status"),
    )
