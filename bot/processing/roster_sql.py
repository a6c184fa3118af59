"""The roster's statements, built once per dialect: building and cache-keying a statement
costs more than running it on SQLite.

Lookups take a list of keys (:func:`store.bulk.in_list`: one statement whatever the count);
inserts are ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` run as one ``executemany``
(SQLAlchemy's insertmanyvalues: multi-row ``VALUES``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.processing.records import (
    CustomerRecord,
    FollowerRecord,
    FollowRecord,
    GroupRecord,
    MemberRecord,
    Record,
    StaffRecord,
)
from store.bulk import in_list


def any_of(column: Any, name: str, postgres: bool) -> Any:
    return in_list(column, name, postgres=postgres)


def _param(record: type[Record], name: str) -> Any:
    return bindparam(name, type_=record.table.c[name].type)


class RosterStatements:
    def __init__(self, postgres: bool) -> None:
        insert = postgresql.insert if postgres else sqlite.insert

        def by(record: type[Record], column: str) -> Any:
            return select(*record.columns()).where(
                any_of(record.table.c[column], "keys", postgres)
            )

        def create(record: type[Record], keys: tuple[str, ...], values: tuple[str, ...]) -> Any:
            return (
                insert(record.table)
                .values({name: _param(record, name) for name in keys + values})
                .on_conflict_do_nothing(index_elements=list(keys))
                .returning(*record.columns())
            )

        self.customers = by(CustomerRecord, "external_userid")
        self.customers_by_id = by(CustomerRecord, "id")
        self.staff = by(StaffRecord, "userid")
        self.follows = by(FollowRecord, "customer_id")
        self.groups = by(GroupRecord, "chat_id")
        self.followers = by(FollowerRecord, "openid")
        self.members = by(MemberRecord, "member_userid").where(
            any_of(MemberRecord.table.c.group_id, "groups", postgres)
        )
        self.new_customers = create(
            CustomerRecord, ("external_userid",), ("created_at", "custom_fields")
        )
        self.new_staff = create(StaffRecord, ("userid",), ("created_at", "departments"))
        self.new_follows = create(FollowRecord, ("customer_id", "staff_userid"), ("state",))
        self.new_groups = create(GroupRecord, ("chat_id",), ("created_at",))
        self.new_members = create(MemberRecord, ("group_id", "member_userid"), ())
        followers = FollowerRecord.table.c
        self.follower = select(*FollowerRecord.columns()).where(
            followers.account == _param(FollowerRecord, "account"),
            followers.openid == _param(FollowerRecord, "openid"),
        )
        self.new_follower = create(
            FollowerRecord, ("account", "openid"), ("customer_id", "subscribed")
        )
        customers = CustomerRecord.table.c
        self.by_unionid = (
            select(*CustomerRecord.columns())
            .where(customers.unionid == _param(CustomerRecord, "unionid"))
            .order_by(customers.id)
            .limit(1)
        )
        self.new_customer = (
            insert(CustomerRecord.table)
            .values(
                unionid=_param(CustomerRecord, "unionid"),
                created_at=_param(CustomerRecord, "created_at"),
                custom_fields={},
            )
            .returning(*CustomerRecord.columns())
        )


_BUILT: dict[bool, RosterStatements] = {}


def statements(dialect: str) -> RosterStatements:
    postgres = dialect == "postgresql"
    built = _BUILT.get(postgres)
    if built is None:
        built = _BUILT[postgres] = RosterStatements(postgres)
    return built
