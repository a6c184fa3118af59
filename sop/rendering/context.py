"""What a template sees: the documented variables, read from the store or made up for a preview.

:data:`CONTEXT_SCHEMA` is the contract with template authors (docs/playbooks.md lists the same
names): the loader checks every template against it, so ``{{ customer.nmae }}`` is an error when
the playbook loads, not when the message is due. Values are plain dicts and lists, so a
context can be logged or stored with the trace of a step run as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Select, any_, bindparam, case, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from store.models import Customer, CustomerGroup, CustomerStaff, CustomerTag, Staff, Tag
from store.models.people import FollowState

#: Top-level names and, for objects, their attributes (None: any attribute, e.g. a datetime).
CONTEXT_SCHEMA: dict[str, frozenset[str] | None] = {
    "customer": frozenset(
        {
            "id",
            "name",
            "external_userid",
            "corp_name",
            "remark",
            "tags",
            "fields",
            "added_at",
            "channel",
        }
    ),
    "owner": frozenset({"userid", "name"}),
    "group": frozenset({"name", "chat_id"}),
    "playbook": frozenset({"name"}),
    "event": frozenset({"keyword", "text"}),
    "now": None,
}


class CustomerFields(Protocol):
    """The customer's own fields a context shows: a :class:`~store.models.Customer`, or the
    values a caller already read with its own statement (the engine's step)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def external_userid(self) -> str | None: ...
    @property
    def corp_name(self) -> str | None: ...
    @property
    def custom_fields(self) -> dict[str, Any]: ...


class ContextError(LookupError):
    """The customer a step runs for does not exist (any more)."""


#: A relationship as a context shows it: staff userid, remark, added at, channel, staff name.
RelationRow = tuple[str, str | None, datetime | None, str | None, str | None]


def _relation_query(
    *, of_staff: bool
) -> Select[str, str | None, datetime | None, str | None, str | None]:
    """The customer's relationship (active first; one staff member's if ``of_staff``) with
    that staff member's name, in one statement: the columns a context shows, read with Core
    (no ORM object is needed)."""
    query = (
        select(
            CustomerStaff.staff_userid,
            CustomerStaff.remark,
            CustomerStaff.added_at,
            CustomerStaff.channel_state,
            Staff.name,
        )
        .outerjoin(Staff, Staff.userid == CustomerStaff.staff_userid)
        .where(CustomerStaff.customer_id == bindparam("customer_id"))
    )
    if of_staff:
        query = query.where(CustomerStaff.staff_userid == bindparam("staff_userid"))
    active_first = case((CustomerStaff.state == FollowState.ACTIVE, 0), else_=1)
    return query.order_by(active_first, CustomerStaff.id).limit(1)


#: Built once: a step renders many messages, and the compiled forms are cached by SQLAlchemy.
_RELATION = _relation_query(of_staff=False)
_RELATION_OF = _relation_query(of_staff=True)
_STAFF_NAME = select(Staff.name).where(Staff.userid == bindparam("userid"))
_TAGS = (
    select(Tag.name)
    .join(CustomerTag, CustomerTag.tag_id == Tag.id)
    .where(CustomerTag.customer_id == bindparam("customer_id"), Tag.deleted_at.is_(None))
    .distinct()
    .order_by(Tag.name)
)


async def build_context(
    session: AsyncSession,
    *,
    customer_id: int,
    staff_userid: str | None,
    playbook_name: str,
    now: datetime,
    zone: ZoneInfo,
    group_id: int | None = None,
    event: Mapping[str, Any] | None = None,
    customer: CustomerFields | None = None,
) -> dict[str, Any]:
    """The context for one customer; ``staff_userid`` None picks the customer's first
    active relationship. Times are aware and local to ``zone``; unknown texts are ``""``.
    ``customer``: its fields if the caller has read them already (else read here)."""
    if customer is None or customer.id != customer_id:
        customer = await session.get(Customer, customer_id)
    if customer is None:
        raise ContextError(f"no customer with id {customer_id}")
    if session.new or session.dirty:
        await session.flush()  # what the session's own queries would see (autoflush)
    connection = await session.connection()
    relation = await _relation(connection, customer_id, staff_userid)
    tags = (await connection.execute(_TAGS, {"customer_id": customer_id})).scalars().all()
    group = await session.get(CustomerGroup, group_id) if group_id is not None else None
    return await assemble_context(
        connection,
        customer,
        relation,
        list(tags),
        staff_userid=staff_userid,
        playbook_name=playbook_name,
        now=now,
        zone=zone,
        group=group,
        event=event,
    )


async def assemble_context(
    connection: AsyncConnection,
    customer: CustomerFields,
    relation: RelationRow | None,
    tags: list[str],
    *,
    staff_userid: str | None,
    playbook_name: str,
    now: datetime,
    zone: ZoneInfo,
    group: CustomerGroup | None,
    event: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The context from what was read about the customer (``relation``: the one described,
    see :func:`pick_relation`); reads the staff member's name only when ``staff_userid``
    has no relationship with the customer."""
    staff_name = relation[4] if relation is not None else None
    userid = staff_userid or (relation[0] if relation is not None else None)
    if relation is None and userid is not None:
        staff_name = (await connection.execute(_STAFF_NAME, {"userid": userid})).scalar()
    remark, added_at, channel = relation[1:4] if relation is not None else (None, None, None)
    return {
        "customer": {
            "id": customer.id,
            "name": customer.name or "",
            "external_userid": customer.external_userid or "",
            "corp_name": customer.corp_name or "",
            "remark": remark or "",
            "tags": tags,
            "fields": dict(customer.custom_fields or {}),
            "added_at": added_at.astimezone(zone) if added_at is not None else None,
            "channel": channel or "",
        },
        "owner": None if userid is None else {"userid": userid, "name": staff_name or ""},
        "group": None if group is None else {"name": group.name or "", "chat_id": group.chat_id},
        "playbook": {"name": playbook_name},
        "event": _event(event),
        "now": now.astimezone(zone),
    }


async def _relation(
    connection: AsyncConnection, customer_id: int, staff_userid: str | None
) -> RelationRow | None:
    """The relationship ``build_context`` describes: staff userid, remark, added at,
    channel and the staff member's name."""
    if staff_userid is None:
        found = await connection.execute(_RELATION, {"customer_id": customer_id})
    else:
        params = {"customer_id": customer_id, "staff_userid": staff_userid}
        found = await connection.execute(_RELATION_OF, params)
    row = found.first()
    if row is None:
        return None
    userid, remark, added_at, channel, name = row
    return userid, remark, added_at, channel, name


@dataclass(frozen=True)
class CustomerReads:
    """What a context shows of one customer besides its own fields, read for many
    customers at once (:func:`read_customers`): its relationships, active first, and its
    tags."""

    relations: tuple[RelationRow, ...]
    tags: list[str]

    def relation(self, staff_userid: str | None) -> RelationRow | None:
        """The relationship :func:`build_context` would describe for ``staff_userid``."""
        for relation in self.relations:
            if staff_userid is None or relation[0] == staff_userid:
                return relation
        return None


def _among(column: Any, *, postgres: bool) -> Any:
    """``column`` among the bound ``customer_ids``: ``= ANY(array)`` on PostgreSQL (one
    statement text, prepared once, for any number of ids), else an expanding ``IN``."""
    if postgres:
        return column == any_(bindparam("customer_ids", type_=ARRAY(BigInteger)))
    return column.in_(bindparam("customer_ids", expanding=True))


def _relations_of_many(postgres: bool) -> Any:
    return (
        select(
            CustomerStaff.customer_id,
            CustomerStaff.staff_userid,
            CustomerStaff.remark,
            CustomerStaff.added_at,
            CustomerStaff.channel_state,
            Staff.name,
        )
        .outerjoin(Staff, Staff.userid == CustomerStaff.staff_userid)
        .where(_among(CustomerStaff.customer_id, postgres=postgres))
        .order_by(
            CustomerStaff.customer_id,
            case((CustomerStaff.state == FollowState.ACTIVE, 0), else_=1),
            CustomerStaff.id,
        )
    )


def _tags_of_many(postgres: bool) -> Any:
    return (
        select(CustomerTag.customer_id, Tag.name)
        .join(Tag, CustomerTag.tag_id == Tag.id)
        .where(_among(CustomerTag.customer_id, postgres=postgres), Tag.deleted_at.is_(None))
        .distinct()
        .order_by(CustomerTag.customer_id, Tag.name)
    )


_RELATIONS_OF_MANY = {postgres: _relations_of_many(postgres) for postgres in (False, True)}
_TAGS_OF_MANY = {postgres: _tags_of_many(postgres) for postgres in (False, True)}


async def read_customers(
    connection: AsyncConnection, customer_ids: Collection[int]
) -> dict[int, CustomerReads]:
    """:class:`CustomerReads` of each of ``customer_ids`` in two statements, for callers
    that render for many customers in one transaction (the engine)."""
    if not customer_ids:
        return {}
    params = {"customer_ids": sorted(customer_ids)}
    postgres = connection.dialect.name == "postgresql"
    relations: dict[int, list[RelationRow]] = {}
    rows = await connection.execute(_RELATIONS_OF_MANY[postgres], params)
    for customer_id, userid, remark, added_at, channel, name in rows:
        relations.setdefault(customer_id, []).append((userid, remark, added_at, channel, name))
    tags: dict[int, list[str]] = {}
    for customer_id, name in await connection.execute(_TAGS_OF_MANY[postgres], params):
        tags.setdefault(customer_id, []).append(name)
    return {
        customer_id: CustomerReads(
            tuple(relations.get(customer_id, ())), tags.get(customer_id, [])
        )
        for customer_id in customer_ids
    }


def _event(event: Mapping[str, Any] | None) -> dict[str, str] | None:
    if event is None:
        return None
    return {"keyword": str(event.get("keyword") or ""), "text": str(event.get("text") or "")}


def sample_context(
    *, playbook_name: str = "sample", now: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    """A made-up customer with every variable set, for previews without a real customer."""
    local = now.astimezone(zone)
    return {
        "customer": {
            "id": 0,
            "name": "张三",
            "external_userid": "wmSAMPLE0000000000000000000000",
            "corp_name": "示例科技有限公司",
            "remark": "张总",
            "tags": ["新客户", "展会"],
            "fields": {"birthday": "05-20", "city": "上海"},
            "added_at": local,
            "channel": "sample",
        },
        "owner": {"userid": "sample_staff", "name": "李顾问"},
        "group": {"name": "示例客户群", "chat_id": "wrSAMPLE"},
        "playbook": {"name": playbook_name},
        "event": {"keyword": "价格", "text": "请问价格是多少？"},
        "now": local,
    }
