"""Settling an uncertain mass message: did ``add_msg_template`` create it after all?

The platform keeps every mass message a corp created and lets us list them
(``get_groupmsg_list_v2``, DOC 93338: by chat type and creation time, at most a month at a
time; messages created through the API are ``create_type`` 0, "企业发表"), see whose task
each is (``get_groupmsg_task``) and, for messages to customers, which customers each task
holds (``get_groupmsg_send_result``, every target listed with its status from creation on).
An uncertain row is looked for among the messages created since shortly before its attempt:

- one message with the row's content, a task for the row's sender and (to customers) only
  recipients of the row, that no other outbox row has claimed: it was created; the row is
  ``sent`` with that msgid and its results are followed like any other (a job is recorded);
- none: the attempt never created it; the row is sent again;
- several: a person has to tell them apart.

A request that timed out may still be executing on the platform, and its list may lag
behind: the first look waits ``SETTLE_AFTER`` (the sender's lease has passed already for
rows left by a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.wecom import WecomApiError, WecomClient
from sop.delivery.channel import OutboxMessage, Settlement, Verdict
from sop.delivery.messages import mass_recipients
from store.models import MassJob

SETTLE_AFTER = timedelta(minutes=2)
#: Clocks differ: look from a little before the attempt.
SKEW = timedelta(minutes=5)
#: ``get_groupmsg_list_v2`` spans at most a month.
LIST_SPAN = timedelta(days=30)
API_CREATED = 0


@dataclass(frozen=True)
class Created:
    """The mass message an uncertain attempt created, and whom the sender's task holds."""

    msgid: str
    held: list[str]


async def find_created(
    client: WecomClient,
    sessions: async_sessionmaker[AsyncSession],
    message: OutboxMessage,
    attempted_at: datetime,
    now: datetime,
) -> tuple[Settlement, Created | None]:
    """What became of ``message``'s ``add_msg_template``: the settlement, and the message it
    created, if it did."""
    if now - attempted_at > LIST_SPAN:
        return (
            Settlement(
                Verdict.UNKNOWN,
                f"attempted at {attempted_at.isoformat()}, longer ago than WeCom's mass message"
                " list reaches back (a month): look in the admin console (客户群发)",
            ),
            None,
        )
    payload = dict(message.payload)
    sender = str(payload.get("sender") or "")
    chat_type = str(payload.get("chat_type") or "single")
    try:
        listed = await _listed(client, chat_type, attempted_at - SKEW, now)
        known = await _known_msgids(sessions, [str(m.get("msgid")) for m in listed])
        found: list[Created] = []
        for entry in listed:
            msgid = str(entry.get("msgid") or "")
            if not msgid or msgid in known or not _same_content(entry, payload):
                continue
            held = await _held_by(client, msgid, sender, chat_type)
            if held is None:
                continue
            if chat_type == "single" and not set(held) <= set(mass_recipients(payload)):
                continue
            found.append(Created(msgid, held))
    except WecomApiError as exc:
        verdict = Verdict.RETRY if exc.transient else Verdict.UNKNOWN
        return Settlement(
            verdict, f"mass message list not readable: {exc}", errcode=exc.errcode
        ), None
    since = (attempted_at - SKEW).isoformat()
    if not found:
        return (
            Settlement(
                Verdict.NOT_SENT,
                f"WeCom lists no mass message with this content for {sender} created since"
                f" {since}: the attempt never created it",
            ),
            None,
        )
    if len(found) > 1:
        ids = ", ".join(f.msgid for f in found)
        return (
            Settlement(
                Verdict.UNKNOWN,
                f"WeCom lists {len(found)} mass messages with this content for {sender} since"
                f" {since} that no outbox row claims ({ids}): tell them apart in the admin"
                " console (客户群发)",
            ),
            None,
        )
    return (
        Settlement(
            Verdict.SENT,
            f"the attempt created mass message {found[0].msgid} (found in get_groupmsg_list_v2)",
            {"msgid": found[0].msgid},
        ),
        found[0],
    )


async def _listed(
    client: WecomClient, chat_type: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Every API-created mass message of ``chat_type`` created between the two times."""
    body: dict[str, Any] = {
        "chat_type": chat_type,
        "start_time": int(since.timestamp()),
        "end_time": int(until.timestamp()),
        "filter_type": API_CREATED,
        "limit": 100,
    }
    found: list[dict[str, Any]] = []
    while True:
        page = await client.get_groupmsg_list_v2(body)
        found += [
            m
            for m in page.get("group_msg_list") or []
            if int(m.get("create_type", API_CREATED)) == API_CREATED
        ]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return found
        body["cursor"] = cursor


async def _known_msgids(
    sessions: async_sessionmaker[AsyncSession], msgids: Sequence[str]
) -> set[str]:
    """The msgids some outbox row already owns (its job records it)."""
    if not msgids:
        return set()
    async with sessions() as session:
        found = await session.scalars(select(MassJob.msgid).where(MassJob.msgid.in_(msgids)))
        return set(found.all())


def _same_content(entry: dict[str, Any], payload: dict[str, Any]) -> bool:
    text = (entry.get("text") or {}).get("content") or ""
    wanted = (payload.get("text") or {}).get("content") or ""
    kinds = [a.get("msgtype") for a in entry.get("attachments") or []]
    wanted_kinds = [a.get("msgtype") for a in payload.get("attachments") or []]
    return text == wanted and kinds == wanted_kinds


async def _held_by(
    client: WecomClient, msgid: str, sender: str, chat_type: str
) -> list[str] | None:
    """The recipients ``sender``'s task of ``msgid`` holds; None when it has no such task."""
    cursor = ""
    tasks: list[str] = []
    while True:
        page = await client.get_groupmsg_task(msgid, cursor=cursor)
        tasks += [str(t.get("userid")) for t in page.get("task_list") or []]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            break
    if sender not in tasks:
        return None
    key = "chat_id" if chat_type == "group" else "external_userid"
    held: list[str] = []
    cursor = ""
    while True:
        page = await client.get_groupmsg_send_result(msgid, sender, cursor=cursor)
        held += [str(item.get(key)) for item in page.get("send_list") or [] if item.get(key)]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return held
