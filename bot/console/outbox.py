"""``scrm outbox``: what the toolkit is sending, and the operator's hand on it.

``resend`` is how an ``uncertain`` customer message goes out again after a person checked
that the customer really did not get it; the sender never does that by itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from bot.console.context import config_of, open_sessions, run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from store.models import OutboxRow

    Operation = Callable[[AsyncSession, Iterable[int], datetime], Awaitable[dict[int, str]]]

STATES = ["pending", "sending", "sent", "failed", "uncertain", "expired", "cancelled"]


@click.group()
def outbox() -> None:
    """Outgoing messages: list, show, resend, cancel."""


@outbox.command("ls")
@click.option("--state", type=click.Choice(STATES), help="Only rows in this state.")
@click.option("--channel", help="Only rows of this channel (wecom_app, wecom_welcome, ...).")
@click.option("--limit", default=50, show_default=True, help="How many rows, newest first.")
@click.pass_context
def outbox_ls(ctx: click.Context, state: str | None, channel: str | None, limit: int) -> None:
    """List outbox rows, newest first, with the count per state."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import func, select

    from sop.delivery.messages import summarize
    from store.models import OutboxRow, OutboxState

    async def fetch() -> tuple[list[OutboxRow], dict[str, int]]:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
            if state:
                query = query.where(OutboxRow.state == OutboxState(state))
            if channel:
                query = query.where(OutboxRow.channel == channel)
            rows = list((await session.scalars(query)).all())
            counts = await session.execute(
                select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
            )
            return rows, {str(s): n for s, n in counts.all()}

    rows, counts = run(fetch())
    table = Table("id", "channel", "recipient", "state", "due (UTC)", "tries", "message / error")
    for row in rows:
        detail = row.last_error if row.state in ("failed", "uncertain", "expired") else None
        table.add_row(
            str(row.id),
            row.channel,
            row.recipient,
            str(row.state),
            f"{row.due_at:%Y-%m-%d %H:%M:%S}",
            str(row.attempts),
            (detail or summarize(row.payload))[:80],
        )
    console = Console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox is empty")


@outbox.command("show")
@click.argument("row_id", type=int)
@click.pass_context
def outbox_show(ctx: click.Context, row_id: int) -> None:
    """Show one row: addressing, state, the platform's answer and the payload."""
    from store.models import OutboxRow

    async def fetch() -> OutboxRow | None:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            return await session.get(OutboxRow, row_id)

    row = run(fetch())
    if row is None:
        raise click.ClickException(f"no outbox row {row_id}")
    _echo_row(row)


def _echo_row(row: OutboxRow) -> None:
    def when(value: object) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else "-"

    lines = [
        ("id", str(row.id)),
        ("key", row.idempotency_key),
        ("channel", row.channel),
        ("recipient", row.recipient),
        ("customer", str(row.customer_id or "-")),
        ("state", str(row.state)),
        ("due", when(row.due_at)),
        ("expires", when(row.expires_at)),
        ("attempts", str(row.attempts)),
        ("errcode", str(row.last_errcode if row.last_errcode is not None else "-")),
        ("error", row.last_error or "-"),
        ("sent", when(row.sent_at)),
        ("created", when(row.created_at)),
        ("updated", when(row.updated_at)),
        ("platform", json.dumps(row.platform_ids, ensure_ascii=False)),
    ]
    for name, value in lines:
        click.echo(f"{name + ':':<11}{value}")
    click.echo("payload:\n" + json.dumps(row.payload, ensure_ascii=False, indent=2))


@outbox.command("resend")
@click.argument("row_ids", type=int, nargs=-1, required=True)
@click.pass_context
def outbox_resend(ctx: click.Context, row_ids: tuple[int, ...]) -> None:
    """Queue failed, uncertain, expired or cancelled rows again (never sent ones)."""
    from sop.delivery.operations import resend

    _apply(ctx, resend, row_ids)


@outbox.command("cancel")
@click.argument("row_ids", type=int, nargs=-1, required=True)
@click.pass_context
def outbox_cancel(ctx: click.Context, row_ids: tuple[int, ...]) -> None:
    """Withdraw pending rows before they are sent."""
    from sop.delivery.operations import cancel

    _apply(ctx, cancel, row_ids)


def _apply(ctx: click.Context, operation: Operation, row_ids: tuple[int, ...]) -> None:
    from sop.clock import SystemClock

    async def go() -> dict[int, str]:
        async with open_sessions(config_of(ctx)) as sessions, sessions.begin() as session:
            return await operation(session, row_ids, SystemClock().now())

    for row_id, outcome in run(go()).items():
        click.echo(f"{row_id}: {outcome}")
