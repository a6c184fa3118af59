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


#: A task card's description is short (the card is a reminder); the whole script is in the task.
TASK_CARD_DESCRIPTION = 120


def task_card(task_id: int, title: str, description: str) -> Payload:
    """The card of staff task ``task_id``: Done / Snooze 1 h / Not relevant, answered by the
    task system's ``task:<id>:done|snooze|skip`` routes. One builder for playbook ``nudge``
    steps and ``staff_task`` campaigns, so both cards press the same way."""
    if len(description) > TASK_CARD_DESCRIPTION:
        description = description[: TASK_CARD_DESCRIPTION - 1] + "…"
    return button_card(
        task_id=f"task-{task_id}",
        title=title,
        description=description,
        buttons=[
            Button("Done", f"task:{task_id}:done", 1),
            Button("Snooze 1 h", f"task:{task_id}:snooze", 2),
            Button("Not relevant", f"task:{task_id}:skip", 2),
        ],
    )


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


# --- mass messages (add_msg_template) -------------------------------------------------------

#: A mass message (企业群发, ``externalcontact/add_msg_template``): one content for many
#: customers or groups, delivered only once the sending staff member confirms it.
MASS = "wecom_mass"
#: DOC 92135: text at most 4000 bytes, at most 9 attachments, at most 10,000 customers or
#: 2,000 groups per call; text and attachments may not both be empty.
MASS_TEXT_BYTES = 4000
MASS_ATTACHMENTS = 9
MASS_CUSTOMERS = 10_000
MASS_GROUPS = 2_000
MASS_ATTACHMENT_TYPES = frozenset({"image", "link", "miniprogram", "video", "file"})


def mass_to_customers(
    *,
    sender: str,
    external_userids: Sequence[str],
    content: str,
    attachments: Sequence[Payload] = (),
) -> Payload:
    """An ``add_msg_template`` body for customers of staff member ``sender``.

    The engine puts one customer in it (the row's recipient is that external userid), a
    campaign all of one owner's customers (the row's recipient is ``sender``).
    """
    if not external_userids:
        raise ValueError(
            f"mass message from {sender!r} names no customer: give external_userids"
            " (an empty list would send to every customer of the staff member)"
        )
    _check_mass(
        "customers",
        external_userids,
        most=MASS_CUSTOMERS,
        sender=sender,
        content=content,
        attachments=attachments,
    )
    payload = _mass_body("single", sender, content, attachments)
    payload["external_userid"] = list(external_userids)
    return payload


def mass_to_groups(
    *,
    sender: str,
    chat_ids: Sequence[str] = (),
    content: str,
    attachments: Sequence[Payload] = (),
) -> Payload:
    """An ``add_msg_template`` body for customer groups owned by ``sender``.

    Without ``chat_ids`` the staff member picks the groups in their client (every group
    they own is offered); with them, those groups are preselected.
    """
    _check_mass(
        "groups",
        chat_ids,
        most=MASS_GROUPS,
        sender=sender,
        content=content,
        attachments=attachments,
    )
    payload = _mass_body("group", sender, content, attachments)
    if chat_ids:
        payload["chat_id_list"] = list(chat_ids)
    return payload


def mass_recipients(payload: Payload) -> list[str]:
    """The external userids or chat ids a mass message payload names (may be empty for
    groups: the staff member chooses)."""
    key = "chat_id_list" if payload.get("chat_type") == "group" else "external_userid"
    return [str(item) for item in payload.get(key) or []]


def _mass_body(
    chat_type: str, sender: str, content: str, attachments: Sequence[Payload]
) -> Payload:
    payload: Payload = {"chat_type": chat_type, "sender": sender}
    if content:
        payload["text"] = {"content": content}
    if attachments:
        payload["attachments"] = [dict(a) for a in attachments]
    return payload


def _check_mass(
    what: str,
    recipients: Sequence[str],
    *,
    most: int,
    sender: str,
    content: str,
    attachments: Sequence[Payload],
) -> None:
    where = f"mass message from {sender!r}"
    if not sender:
        raise ValueError("mass message needs a sender (the staff userid who confirms it)")
    if len(recipients) > most:
        raise ValueError(
            f"{where} names {len(recipients)} {what}; the platform takes at most {most}"
            " per message: split them into several rows"
        )
    if any(not r for r in recipients):
        raise ValueError(f"{where}: an empty id among the {what}")
    if not content and not attachments:
        raise ValueError(f"{where} has neither text nor attachments: give one of them")
    size = len(content.encode("utf-8"))
    if size > MASS_TEXT_BYTES:
        raise ValueError(
            f"{where}: text is {size} bytes in UTF-8, the platform takes at most"
            f" {MASS_TEXT_BYTES} (about {MASS_TEXT_BYTES // 3} Chinese characters): shorten it"
        )
    if len(attachments) > MASS_ATTACHMENTS:
        raise ValueError(
            f"{where} has {len(attachments)} attachments; the platform takes at most"
            f" {MASS_ATTACHMENTS}"
        )
    for index, attachment in enumerate(attachments):
        kind = attachment.get("msgtype")
        if kind not in MASS_ATTACHMENT_TYPES or not isinstance(attachment.get(kind), dict):
            raise ValueError(
                f"{where}: attachment {index} is {attachment!r}; expected"
                f" {{'msgtype': one of {sorted(MASS_ATTACHMENT_TYPES)}, <msgtype>: {{...}}}}"
            )


# --- corp tags mirrored to WeCom (mark_tag) -------------------------------------------------

#: Tags the toolkit put on a customer, mirrored to WeCom's corp tags (``mark_tag``); rows are
#: not customer-facing (the customer sees nothing), so a repeated mirror is harmless.
TAG = "wecom_tag"
#: The platform takes corp tag and tag group names of at most 30 characters.
TAG_NAME_LIMIT = 30


def split_tag_name(name: str) -> tuple[str | None, str]:
    """``"group/name"`` -> ``("group", "name")``; ``"name"`` -> ``(None, "name")``.

    The first ``/`` separates: a group name cannot contain one, a tag name can.
    """
    group, slash, tag = name.partition("/")
    return (group.strip(), tag.strip()) if slash else (None, name.strip())


def mark_tag(
    *,
    userid: str,
    external_userid: str,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> Payload:
    """Mirror tag changes of customer ``external_userid`` (as staff ``userid`` sees them).

    ``add`` and ``remove`` are tag NAMES, ``"group/name"`` or ``"name"``: the adapter finds
    their ids in the corp tag library and creates missing ones (a bare name in the
    configured default group, ``delivery.tag_group``).
    """
    where = f"tag change of customer {external_userid!r} by {userid!r}"
    if not userid or not external_userid:
        raise ValueError(f"{where}: both userid and external_userid are required")
    if not add and not remove:
        raise ValueError(f"{where} adds and removes nothing: give add and/or remove")
    for name in [*add, *remove]:
        group, tag = split_tag_name(name)
        parts = [tag] if group is None else [group, tag]
        if not all(parts) or any(len(part) > TAG_NAME_LIMIT for part in parts):
            raise ValueError(
                f"{where}: tag {name!r} must be 'name' or 'group/name', each part 1 to"
                f" {TAG_NAME_LIMIT} characters"
            )
    both = sorted(set(add) & set(remove))
    if both:
        raise ValueError(f"{where}: {both} both added and removed; keep one of the two")
    return {
        "userid": userid,
        "external_userid": external_userid,
        "add": list(dict.fromkeys(add)),
        "remove": list(dict.fromkeys(remove)),
    }
