"""One job's platform calls: submit its pending items in batches of 100, read the results.

Each function calls the API first and writes what it answered in one transaction after,
so no transaction is held open across an HTTP call. The reasons written for failures are
the platform's words where it has them (status 3 ``customer_refused``, status 4
``customer_limit_exceed``: the FailReason values of the ``transfer_fail`` callback), else
a name for the errcode.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.processing import refresh_queue
from bot.wecom import WecomApiError, WecomClient
from bot.wecom.client import TRANSFER_BATCH
from sop.clock import Clock
from sop.staff import results
from store.models import (
    TransferItem,
    TransferItemKind,
    TransferItemState,
    TransferJob,
    TransferMode,
)

DONE, WAITING, REFUSED, LIMIT_REACHED, NO_RECORD = 1, 2, 3, 4, 5
STATUS_REASONS = {
    REFUSED: "customer_refused",
    LIMIT_REACHED: "customer_limit_exceed",
    NO_RECORD: "no_transfer_record",
}
ERRCODE_REASONS = {
    40096: "unknown_customer",
    84061: "not_a_contact",
    40100: "already_in_transfer",
    40129: "transferred_too_often",
    40050: "unknown_group",
    90500: "owner_not_resigned",
}


def reason_for(errcode: int | None) -> str:
    if errcode is None:
        return "no_answer"
    return ERRCODE_REASONS.get(errcode, f"errcode_{errcode}")


def _chunks(items: Sequence[TransferItem]) -> list[list[TransferItem]]:
    return [list(items[i : i + TRANSFER_BATCH]) for i in range(0, len(items), TRANSFER_BATCH)]


async def _items(session: AsyncSession, ids: Sequence[int]) -> list[TransferItem]:
    rows = await session.scalars(select(TransferItem).where(TransferItem.id.in_(ids)))
    return sorted(rows, key=lambda item: item.id)


async def submit_customers(
    sessions: async_sessionmaker[AsyncSession],
    client: WecomClient,
    clock: Clock,
    job: TransferJob,
    pending: Sequence[TransferItem],
) -> None:
    """``transfer_customer`` for the pending customers; each becomes waiting or failed.

    A transient error leaves the chunk pending and raises (the job is tried again later);
    any other error fails the chunk with its errcode: the request cannot succeed as it is.
    """
    resigned = job.mode is TransferMode.RESIGNED
    for chunk in _chunks(pending):
        subjects = [item.subject for item in chunk]
        try:
            answer = await client.transfer_customers(
                job.handover_userid,
                job.takeover_userid,
                subjects,
                resigned=resigned,
                message=job.message,
            )
        except WecomApiError as exc:
            if exc.transient:
                raise
            async with sessions.begin() as session:
                fresh = await session.get(TransferJob, job.id)
                assert fresh is not None
                for item in await _items(session, [i.id for i in chunk]):
                    await results.customer_failed(
                        session,
                        fresh,
                        item,
                        reason=reason_for(exc.errcode),
                        errcode=exc.errcode,
                        detail=str(exc),
                        now=clock.now(),
                    )
            continue
        codes = {str(entry.get("external_userid")): entry.get("errcode") for entry in answer}
        async with sessions.begin() as session:
            fresh = await session.get(TransferJob, job.id)
            assert fresh is not None
            now = clock.now()
            for item in await _items(session, [i.id for i in chunk]):
                code = codes.get(item.subject)
                if code == 0:
                    item.state, item.status = TransferItemState.WAITING, WAITING
                    item.submitted_at, item.updated_at = now, now
                else:
                    errcode = code if isinstance(code, int) else None
                    await results.customer_failed(
                        session,
                        fresh,
                        item,
                        reason=reason_for(errcode),
                        errcode=errcode,
                        detail="refused by transfer_customer"
                        if errcode is not None
                        else "missing from the transfer_customer answer",
                        now=now,
                    )


async def submit_groups(
    sessions: async_sessionmaker[AsyncSession],
    client: WecomClient,
    clock: Clock,
    job: TransferJob,
    pending: Sequence[TransferItem],
) -> None:
    """``groupchat/transfer`` (or ``onjob_transfer``): groups move at once or fail."""
    resigned = job.mode is TransferMode.RESIGNED
    for chunk in _chunks(pending):
        failed: dict[str, tuple[int | None, str]] = {}
        try:
            answer = await client.transfer_group_chats(
                [item.subject for item in chunk], job.takeover_userid, resigned=resigned
            )
            for entry in answer:
                code = entry.get("errcode")
                failed[str(entry.get("chat_id"))] = (
                    code if isinstance(code, int) else None,
                    str(entry.get("errmsg", "")),
                )
        except WecomApiError as exc:
            if exc.transient:
                raise
            failed = {item.subject: (exc.errcode, str(exc)) for item in chunk}
        async with sessions.begin() as session:
            fresh = await session.get(TransferJob, job.id)
            assert fresh is not None
            now = clock.now()
            for item in await _items(session, [i.id for i in chunk]):
                if item.subject in failed:
                    errcode, errmsg = failed[item.subject]
                    results.group_failed(
                        session,
                        fresh,
                        item,
                        errcode=errcode,
                        reason=f"{reason_for(errcode)}: {errmsg}",
                        now=now,
                    )
                else:
                    await results.group_transferred(session, fresh, item, now=now)


async def poll_results(
    sessions: async_sessionmaker[AsyncSession],
    client: WecomClient,
    clock: Clock,
    job: TransferJob,
    waiting: Sequence[TransferItem],
    *,
    give_up_after: timedelta,
) -> None:
    """Read every page of ``transfer_result`` and settle the waiting customers it decides;
    one still waiting past ``give_up_after`` fails as ``no_result``."""
    resigned = job.mode is TransferMode.RESIGNED
    statuses: dict[str, tuple[int, int]] = {}
    cursor = ""
    while True:
        page = await client.transfer_result(
            job.handover_userid, job.takeover_userid, resigned=resigned, cursor=cursor
        )
        for entry in page.get("customer", []):
            statuses[str(entry.get("external_userid"))] = (
                int(entry.get("status", 0)),
                int(entry.get("takeover_time") or 0),
            )
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            break
    async with sessions.begin() as session:
        fresh = await session.get(TransferJob, job.id)
        assert fresh is not None
        now = clock.now()
        for item in await _items(session, [i.id for i in waiting]):
            status, takeover_time = statuses.get(item.subject, (0, 0))
            takeover_at = datetime.fromtimestamp(takeover_time, UTC) if takeover_time else None
            if status == DONE:
                await results.customer_transferred(
                    session, fresh, item, takeover_at=takeover_at, now=now
                )
                await refresh_queue.request_refresh(
                    session, refresh_queue.CUSTOMER, item.subject, clock
                )
            elif status in STATUS_REASONS:
                await results.customer_failed(
                    session, fresh, item, reason=STATUS_REASONS[status], status=status, now=now
                )
            elif item.submitted_at is not None and now - item.submitted_at >= give_up_after:
                await results.customer_failed(
                    session,
                    fresh,
                    item,
                    reason="no_result",
                    status=status or None,
                    detail=f"still not final {give_up_after} after it was submitted",
                    now=now,
                )
            else:
                item.status, item.takeover_at, item.updated_at = status or None, takeover_at, now


def split(items: Sequence[TransferItem]) -> dict[str, list[TransferItem]]:
    """Pending customers, pending groups and waiting customers of a job."""
    parts: dict[str, list[TransferItem]] = {"customers": [], "groups": [], "waiting": []}
    for item in items:
        if item.state is TransferItemState.PENDING:
            parts["groups" if item.kind is TransferItemKind.GROUP else "customers"].append(item)
        elif item.state is TransferItemState.WAITING:
            parts["waiting"].append(item)
    return parts
