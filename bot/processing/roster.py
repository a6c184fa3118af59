"""The customers, staff, relationships, groups, members and followers a batch names, read (or
created from ids alone) in one statement per table before any row is handled.

Tables are done one after the other (staff, customers, followers, groups, relationships,
members) and the keys of each in sorted order, so concurrent processors on PostgreSQL take
the locks of new rows in the same order. Rows start bare, as events carry ids only; the
refresher fills them in. Handlers then find them here without a statement.

A handler asking for something the batch did not name, or for a table one of the row's own
statements has since written (:meth:`store.batch.Batch.generation`), gets it from the database
inside the row's savepoint; what such a row adds here is taken out again if the row fails.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from bot.processing.messages import is_external_id
from bot.processing.record_cache import RecordCache
from bot.processing.records import (
    CustomerRecord,
    FollowerRecord,
    FollowRecord,
    GroupRecord,
    MemberRecord,
    Record,
    StaffRecord,
)
from bot.processing.roster_sql import RosterStatements, statements
from bot.processing.subjects import Subjects
from store.batch import Batch
from store.models import FollowState

R = TypeVar("R", bound=Record)


class Roster:
    """What the batch's rows name, by key; also the engine's view of the batch's people
    (:class:`sop.engine.facts.PeopleView`: opt-out, owner, group name without a statement)."""

    def __init__(self, batch: Batch, now: datetime) -> None:
        self._batch = batch
        self._now = now
        self._sql: RosterStatements = statements(batch.session.get_bind().dialect.name)
        self._customers = RecordCache(batch, CustomerRecord)  # external_userid
        self._customer_ids = RecordCache(batch, CustomerRecord)  # id
        self._staff = RecordCache(batch, StaffRecord)  # userid
        self._follows = RecordCache(batch, FollowRecord)  # (customer_id, staff_userid)
        self._follows_of: dict[int, list[FollowRecord]] = {}  # every relationship, when read
        self._groups = RecordCache(batch, GroupRecord)  # chat_id
        self._group_ids = RecordCache(batch, GroupRecord)  # id
        self._members = RecordCache(batch, MemberRecord)  # (group_id, member_userid)
        self._absent: dict[tuple[int, str], int] = {}  # members read as missing, generation
        self._followers = RecordCache(batch, FollowerRecord)  # (account, openid)

    # -- loading --------------------------------------------------------------------------------

    async def load(self, subjects: Subjects) -> None:
        """Read or create everything ``subjects`` names (in the row's savepoint, if in a row)."""
        await self._batch.run_own(self._load, subjects)

    def _load(self, conn: Connection, subjects: Subjects) -> None:
        sql, now = self._sql, self._now
        staff = sorted(subjects.staff | {userid for _, userid in subjects.follows})
        self._fetch(conn, StaffRecord, self._staff, "userid", staff, sql.staff, sql.new_staff,
                    {"created_at": now, "departments": []})  # fmt: skip
        external = sorted(subjects.customers | {ext for ext, _ in subjects.follows})
        customers = self._fetch(
            conn, CustomerRecord, self._customers, "external_userid", external, sql.customers,
            sql.new_customers, {"created_at": now, "custom_fields": {}},
        )  # fmt: skip
        for customer in customers:
            self._customer_ids.put(customer.id, customer)
        ids = {customer.id for customer in customers}
        ids |= {follower.customer_id for follower in self._load_followers(conn, subjects)}
        missing = sorted(ids - {customer.id for customer in customers})
        if missing:
            for row in conn.execute(sql.customers_by_id, {"keys": missing}):
                self._customer_ids.put(row.id, CustomerRecord(self._batch, row._mapping))
        chats = sorted(subjects.groups | {chat for chat, _ in subjects.members})
        groups = self._fetch(conn, GroupRecord, self._groups, "chat_id", chats, sql.groups,
                             sql.new_groups, {"created_at": now})  # fmt: skip
        for group in groups:
            self._group_ids.put(group.id, group)
        self._load_follows(conn, sorted(ids))
        self._load_members(conn, subjects)

    def _fetch(  # noqa: PLR0913, PLR0917 - one table's get-or-create, spelled out
        self,
        conn: Connection,
        record: type[R],
        cache: RecordCache[R],
        key: str,
        keys: list[Any],
        select_stmt: Any,
        insert_stmt: Any,
        defaults: dict[str, Any],
    ) -> list[R]:
        """Read ``keys`` (sorted) into ``cache``, insert the missing ones, read lost races
        again; returns the records read or made here."""
        keys = [k for k in keys if not cache.fresh(k)]
        if not keys:
            return []
        found: dict[Any, R] = {}
        for row in conn.execute(select_stmt, {"keys": keys}):
            found[row._mapping[key]] = record(self._batch, row._mapping)
        missing = [k for k in keys if k not in found]
        if missing:
            params = [{key: k, **defaults} for k in missing]
            for row in conn.execute(insert_stmt, params):
                found[row._mapping[key]] = record(self._batch, row._mapping)
            lost = [k for k in missing if k not in found]
            if lost:  # another processor inserted them first; its rows are committed now
                for row in conn.execute(select_stmt, {"keys": lost}):
                    found[row._mapping[key]] = record(self._batch, row._mapping)
        for k, made in found.items():
            cache.put(k, made)
        return list(found.values())

    def _load_followers(self, conn: Connection, subjects: Subjects) -> list[FollowerRecord]:
        """The followers the batch names: read together; a new one gets the customer with its
        unionid, else a new customer (new followers are rare: one at a time)."""
        wanted = {(a, o): u for a, o, u in subjects.followers if not self._followers.fresh((a, o))}
        if not wanted:
            return []
        sql, found = self._sql, []
        for row in conn.execute(sql.followers, {"keys": sorted({o for _, o in wanted})}):
            if (row.account, row.openid) in wanted:
                found.append(FollowerRecord(self._batch, row._mapping))
        known = {(f.account, f.openid) for f in found}
        for (account, openid), unionid in sorted(wanted.items()):
            if (account, openid) in known:
                continue
            customer = None
            if unionid:
                customer = conn.execute(sql.by_unionid, {"unionid": unionid}).first()
            if customer is None:
                new = {"unionid": unionid, "created_at": self._now}
                customer = conn.execute(sql.new_customer, new).one()
            values = {"account": account, "openid": openid, "customer_id": customer.id}
            made = conn.execute(sql.new_follower, [{**values, "subscribed": False}]).first()
            if made is None:  # another processor added the follower first
                made = conn.execute(sql.follower, {"account": account, "openid": openid}).one()
            found.append(FollowerRecord(self._batch, made._mapping))
        for follower in found:
            self._followers.put((follower.account, follower.openid), follower)
        return found

    def _load_follows(self, conn: Connection, customer_ids: list[int]) -> None:
        """Every relationship the batch's customers have (the owner is one of them)."""
        if not customer_ids:
            return
        previous = {cid: self._follows_of.get(cid) for cid in customer_ids}
        for cid in customer_ids:
            self._follows_of[cid] = []
        self._batch.on_undo(lambda: self._restore_follows_of(previous))
        for row in conn.execute(self._sql.follows, {"keys": customer_ids}):
            self._add_follow(FollowRecord(self._batch, row._mapping))

    def _restore_follows_of(self, previous: dict[int, list[FollowRecord] | None]) -> None:
        for cid, follows in previous.items():
            if follows is None:
                self._follows_of.pop(cid, None)
            else:
                self._follows_of[cid] = follows

    def _add_follow(self, record: FollowRecord) -> None:
        self._follows.put((record.customer_id, record.staff_userid), record)
        follows = self._follows_of.setdefault(record.customer_id, [])
        follows.append(record)
        self._batch.on_undo(lambda: follows.remove(record) if record in follows else None)

    def _load_members(self, conn: Connection, subjects: Subjects) -> None:
        """The members the batch names that exist (the others are made by their rows)."""
        keys = sorted((self._groups.get(chat).id, userid) for chat, userid in subjects.members)
        keys = [key for key in keys if not self._members.fresh(key)]
        if not keys:
            return
        params = {"keys": sorted({u for _, u in keys}), "groups": sorted({g for g, _ in keys})}
        wanted = set(keys)
        for row in conn.execute(self._sql.members, params):
            key = (row.group_id, row.member_userid)
            if key in wanted:
                self._members.put(key, MemberRecord(self._batch, row._mapping))
        generation = self._batch.generation(MemberRecord.table.name)
        for key in keys:
            if not self._members.fresh(key):
                self._absent[key] = generation

    async def _get(
        self, cache: RecordCache[R], key: Hashable, subjects: Callable[[], Subjects]
    ) -> R:
        if not cache.fresh(key):
            await self.load(subjects())
        return cache.get(key)

    # -- what handlers ask ----------------------------------------------------------------------

    async def customer(self, external_userid: str) -> CustomerRecord:
        return await self._get(
            self._customers, external_userid, lambda: Subjects(customers={external_userid})
        )

    async def customer_id_for(self, userid: str) -> int | None:
        """The customer behind a userid that may be external (``wm``/``wo``), else None."""
        if not is_external_id(userid):
            return None
        return (await self.customer(userid)).id

    async def customer_by_id(self, customer_id: int) -> CustomerRecord:
        if not self._customer_ids.fresh(customer_id):
            await self._batch.run_own(self._load_customer_id, customer_id)
        return self._customer_ids.get(customer_id)

    def _load_customer_id(self, conn: Connection, customer_id: int) -> None:
        row = conn.execute(self._sql.customers_by_id, {"keys": [customer_id]}).one()
        self._customer_ids.put(customer_id, CustomerRecord(self._batch, row._mapping))

    async def staff(self, userid: str) -> StaffRecord:
        return await self._get(self._staff, userid, lambda: Subjects(staff={userid}))

    async def follow(self, customer: CustomerRecord, staff_userid: str) -> FollowRecord:
        """The relationship; made here (inserted with the row's writes) if there is none."""
        key = (customer.id, staff_userid)
        if self._follows.fresh(key):
            return self._follows.get(key)
        if not self._follows_known(customer.id):
            await self._batch.run_own(self._load_follows, [customer.id])
            if self._follows.fresh(key):
                return self._follows.get(key)
        row = {"id": None, **dict.fromkeys(FollowRecord.fields())}
        made = FollowRecord(self._batch, {**row, "customer_id": customer.id,
                                          "staff_userid": staff_userid,
                                          "state": FollowState.ACTIVE})  # fmt: skip
        self._add_follow(made)
        self._batch.defer(FollowRecord.inserts, made)
        return made

    def _follows_known(self, customer_id: int) -> bool:
        follows = self._follows_of.get(customer_id)
        return follows is not None and all(
            self._follows.fresh((f.customer_id, f.staff_userid)) for f in follows
        )

    async def group(self, chat_id: str) -> GroupRecord:
        return await self._get(self._groups, chat_id, lambda: Subjects(groups={chat_id}))

    async def member(self, group: GroupRecord, userid: str) -> MemberRecord:
        """The member; made here (inserted with the row's writes) if there is none."""
        key = (group.id, userid)
        if self._members.fresh(key):
            return self._members.get(key)
        absent = self._absent.get(key)
        if absent != self._batch.generation(MemberRecord.table.name):
            await self.load(Subjects(members={(group.chat_id, userid)}))
            if self._members.fresh(key):
                return self._members.get(key)
        row = {"id": None, **dict.fromkeys(MemberRecord.fields())}
        made = MemberRecord(self._batch, {**row, "group_id": group.id, "member_userid": userid})
        self._members.put(key, made)
        self._batch.defer(MemberRecord.inserts, made)
        return made

    async def follower(self, account: str, openid: str, unionid: str | None) -> FollowerRecord:
        return await self._get(
            self._followers,
            (account, openid),
            lambda: Subjects(followers={(account, openid, unionid)}),
        )

    # -- what the engine asks (sop.engine.facts.PeopleView) -------------------------------------

    def customer_ids(self) -> list[int]:
        return sorted(key for key in self._customer_ids if isinstance(key, int))

    def known_customer(self, customer_id: int) -> CustomerRecord | None:
        """The customer as this batch has it; None if unknown or no longer trusted."""
        if not self._customer_ids.fresh(customer_id):
            return None
        return self._customer_ids.get(customer_id)

    def known_group(self, group_id: int) -> GroupRecord | None:
        if not self._group_ids.fresh(group_id):
            return None
        return self._group_ids.get(group_id)

    def owner(self, customer_id: int) -> tuple[bool, str | None]:
        """(known, owner): the active relationship added last, as
        :func:`sop.engine.enroll.owner_of` reads it (one made by this batch's rows has the
        highest id); not known if not read or not trusted."""
        if not self._follows_known(customer_id):
            return False, None
        follows = self._follows_of[customer_id]
        ranked = [
            (f.added_at is not None, f.added_at or self._now, f.id is None, f.id or 0, n)
            for n, f in enumerate(follows)
            if f.state == FollowState.ACTIVE
        ]
        if not ranked:
            return True, None
        return True, follows[max(ranked)[-1]].staff_userid
