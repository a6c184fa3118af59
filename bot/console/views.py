"""Queries and rich tables shared by the operator commands and the demo."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.models import Customer, CustomerStaff, CustomerTag, Interaction, Tag


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    staff: list[str]
    tags: list[str]


async def load_customer_rows(
    sessions: async_sessionmaker[AsyncSession], limit: int
) -> list[CustomerRow]:
    async with sessions() as session:
        found = (
            await session.scalars(
                select(Customer)
                .order_by(Customer.last_interaction_at.desc().nulls_last(), Customer.id.desc())
                .limit(limit)
            )
        ).all()
        ids = [c.id for c in found]
        links = (
            await session.execute(
                select(
                    CustomerStaff.customer_id, CustomerStaff.staff_userid, CustomerStaff.state
                ).where(CustomerStaff.customer_id.in_(ids))
            )
        ).all()
        tags = (
            await session.execute(
                select(CustomerTag.customer_id, Tag.name)
                .join(Tag, Tag.id == CustomerTag.tag_id)
                .where(CustomerTag.customer_id.in_(ids))
            )
        ).all()
    return [
        CustomerRow(
            c,
            [f"{u} ({s})" for cid, u, s in links if cid == c.id],
            sorted({name for cid, name in tags if cid == c.id}),
        )
        for c in found
    ]


def customers_table(rows: list[CustomerRow]) -> Table:
    table = Table("id", "external_userid", "name", "staff", "tags", "last interaction")
    for row in rows:
        c = row.customer
        last = f"{c.last_interaction_at:%Y-%m-%d %H:%M}Z" if c.last_interaction_at else ""
        table.add_row(
            str(c.id),
            c.external_userid or "",
            c.name or "(details pending)",
            ", ".join(row.staff),
            ", ".join(row.tags),
            last,
        )
    return table


async def load_timeline(
    sessions: async_sessionmaker[AsyncSession], customer: str, limit: int
) -> tuple[Customer, list[Interaction]] | None:
    async with sessions() as session:
        query = select(Customer).where(Customer.external_userid == customer)
        if customer.isdigit():
            query = select(Customer).where(Customer.id == int(customer))
        found = (await session.scalars(query)).one_or_none()
        if found is None:
            return None
        entries = (
            await session.scalars(
                select(Interaction)
                .where(Interaction.customer_id == found.id)
                .order_by(Interaction.occurred_at, Interaction.id)
                .limit(limit)
            )
        ).all()
    return found, list(entries)


def timeline_table(customer: Customer, entries: list[Interaction]) -> Table:
    title = f"{customer.name or customer.external_userid or customer.id} — timeline"
    table = Table("when (UTC)", "dir", "kind", "staff", "summary", title=title)
    for e in entries:
        table.add_row(
            f"{e.occurred_at:%Y-%m-%d %H:%M:%S}",
            str(e.direction),
            e.kind,
            e.staff_userid or "",
            e.summary,
        )
    return table
