"""The fake corp's state and the plain methods tests and the demo seed it with.

Seeding checks references the way the platform would refuse them (a follow by an unknown
staff member, an unknown tag), so a test cannot build a world WeCom would never return.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sop.clock import Clock, SystemClock
from tests.support.fake_wecom.mass_state import MassBook, confirm_task
from tests.support.fake_wecom.models import (
    AppToken,
    Customer,
    Department,
    Follow,
    GroupChat,
    GroupMember,
    Staff,
    Tag,
    TagGroup,
    epoch,
)
from tests.support.fake_wecom.outbound import Outbound, WelcomeCode
from tests.support.fake_wecom.transfer_state import TransferBook, settle

TOKEN_LIFETIME = timedelta(seconds=7200)
T = TypeVar("T")


class FakeCorp:
    def __init__(
        self,
        *,
        corp_id: str = "ww0000fakecorp0001",
        secret: str = "fake-secret",
        clock: Clock | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.clock = clock if clock is not None else SystemClock()
        self.secrets: set[str] = {secret}
        self.tokens: dict[str, AppToken] = {}
        self.staff: dict[str, Staff] = {}
        self.customers: dict[str, Customer] = {}
        self.groups: dict[str, GroupChat] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.departments: dict[int, Department] = {}
        self.outbound = Outbound()
        self.mass = MassBook()
        self.transfers = TransferBook()
        self._ids = itertools.count(1)

    def now(self) -> datetime:
        return self.clock.now()

    def new_id(self, prefix: str) -> str:
        """A platform-looking id: 32 characters, ``wm`` customers, ``wr`` groups, ``et`` tags."""
        return f"{prefix}Fake{next(self._ids):026d}"

    # --- apps and tokens -------------------------------------------------------------------

    def add_app(self, secret: str) -> None:
        """Accept one more secret (another app of the corp), with tokens of its own."""
        self.secrets.add(secret)

    def issue_token(self, secret: str) -> AppToken:
        """The valid token of ``secret``, or a new one: the same token while it is valid."""
        now = self.now()
        for token in self.tokens.values():
            if token.secret == secret and not token.revoked and token.expires_at > now:
                return token
        token = AppToken(secrets.token_urlsafe(48), secret, now + TOKEN_LIFETIME)
        self.tokens[token.value] = token
        return token

    def expire_all_tokens(self) -> None:
        """Every token issued so far answers 42001 from now on."""
        now = self.now()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)

    def revoke_all_tokens(self) -> None:
        """Every token issued so far answers 40014, as when the platform drops them early."""
        for token in self.tokens.values():
            token.revoked = True

    # --- staff and tags ----------------------------------------------------------------------

    def add_staff(
        self,
        userid: str,
        name: str | None = None,
        *,
        department: Sequence[int] = (1,),
        position: str = "",
        status: int = 1,
        gender: str = "0",
    ) -> Staff:
        staff = Staff(userid, name or userid, list(department), department[0], position, status)
        staff.gender = gender
        self.staff[userid] = staff
        return staff

    def add_department(
        self, department_id: int, name: str, *, parent: int = 0, leaders: Sequence[str] = ()
    ) -> Department:
        """A department and its leaders (``department_leader``); leaders must be staff."""
        for userid in leaders:
            self._lookup(self.staff, userid, "staff member", "add_staff")
        department = Department(department_id, name, parent, list(leaders))
        self.departments[department_id] = department
        return department

    def add_tag_group(
        self,
        group_name: str,
        tags: Iterable[str] = (),
        *,
        group_id: str | None = None,
        order: int = 0,
    ) -> TagGroup:
        group = TagGroup(group_id or self.new_id("et"), group_name, epoch(self.now()), order)
        self.tag_groups[group.group_id] = group
        for name in tags:
            self.add_tag(group.group_id, name)
        return group

    def add_tag(
        self, group_id: str, name: str, *, tag_id: str | None = None, order: int = 0
    ) -> Tag:
        group = self._lookup(self.tag_groups, group_id, "tag group", "add_tag_group")
        tag = Tag(tag_id or self.new_id("et"), name, group_id, epoch(self.now()), order)
        self.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        return tag

    def tag_named(self, name: str) -> Tag:
        """The live tag called ``name`` (tests seed by name, the API speaks ids)."""
        for tag in self.tags.values():
            if tag.name == name and not tag.deleted:
                return tag
        raise KeyError(f"no tag named {name!r}; add it with add_tag_group or add_tag")

    def delete_tag(self, tag_id: str) -> None:
        self._lookup(self.tags, tag_id, "tag", "add_tag").deleted = True

    # --- customers ---------------------------------------------------------------------------

    def add_customer(
        self,
        external_userid: str | None = None,
        name: str = "客户",
        *,
        type: int = 1,
        gender: int = 0,
        unionid: str | None = None,
        corp_name: str | None = None,
        position: str | None = None,
        follow: Iterable[str | Follow] = (),
    ) -> Customer:
        """A customer, followed by the staff in ``follow`` (userids, or full Follow entries)."""
        customer = Customer(
            external_userid or self.new_id("wm"), name, type, gender, unionid=unionid
        )
        customer.avatar = f"https://wx.qlogo.cn/fake/{customer.external_userid}/0"
        customer.corp_name, customer.position = corp_name, position
        self.customers[customer.external_userid] = customer
        for entry in follow:
            if isinstance(entry, str):
                self.add_follow(customer.external_userid, entry)
            else:
                self._check_follow(entry)
                customer.follows[entry.userid] = entry
        return customer

    def add_follow(
        self,
        external_userid: str,
        userid: str,
        *,
        remark: str = "",
        description: str = "",
        tags: Iterable[str] = (),
        state: str | None = None,
        add_way: int = 1,
        oper_userid: str | None = None,
        createtime: datetime | None = None,
    ) -> Follow:
        """Staff ``userid`` adds the customer; ``tags`` are tag ids of the corp tag list."""
        customer = self._lookup(self.customers, external_userid, "customer", "add_customer")
        follow = Follow(
            userid,
            epoch(createtime or self.now()),
            remark,
            description,
            list(tags),
            state,
            add_way,
            oper_userid if oper_userid is not None else userid,
        )
        self._check_follow(follow)
        customer.follows[userid] = follow
        return follow

    def update_customer(self, external_userid: str, **changes: Any) -> Customer:
        customer = self._lookup(self.customers, external_userid, "customer", "add_customer")
        _apply(customer, changes, frozen={"external_userid", "follows"})
        return customer

    def update_follow(self, external_userid: str, userid: str, **changes: Any) -> Follow:
        follow = self._follow(external_userid, userid)
        _apply(follow, changes, frozen={"userid"})
        self._check_follow(follow)
        return follow

    def remove_follow(self, external_userid: str, userid: str) -> None:
        customer = self._lookup(self.customers, external_userid, "customer", "add_customer")
        self._follow(external_userid, userid)
        del customer.follows[userid]

    def remove_customer(self, external_userid: str) -> None:
        self._lookup(self.customers, external_userid, "customer", "add_customer")
        del self.customers[external_userid]

    # --- groups ------------------------------------------------------------------------------

    def add_group(
        self,
        chat_id: str | None = None,
        name: str = "",
        *,
        owner: str,
        members: Iterable[str] = (),
        admins: Iterable[str] = (),
        notice: str = "",
    ) -> GroupChat:
        """A customer group owned by staff ``owner``; members are staff userids or customers."""
        self._lookup(self.staff, owner, "staff member", "add_staff")
        group = GroupChat(chat_id or self.new_id("wr"), name, owner, epoch(self.now()), notice)
        self.groups[group.chat_id] = group
        for userid in [owner, *members]:
            if userid not in group.members:
                self.add_group_member(group.chat_id, userid, invitor=None, bump=False)
        group.admins = [
            self._lookup(self.staff, a, "staff member", "add_staff").userid for a in admins
        ]
        return group

    def add_group_member(
        self,
        chat_id: str,
        userid: str,
        *,
        join_scene: int = 1,
        invitor: str | None = None,
        group_nickname: str = "",
        bump: bool = True,
    ) -> GroupMember:
        group = self._lookup(self.groups, chat_id, "group", "add_group")
        if userid in self.staff:
            member = GroupMember(userid, 1, epoch(self.now()), join_scene, invitor, group_nickname)
            member.name = self.staff[userid].name
        else:
            customer = self._lookup(
                self.customers, userid, "staff member or customer", "add_customer"
            )
            member = GroupMember(userid, 2, epoch(self.now()), join_scene, invitor, group_nickname)
            member.name, member.unionid = customer.name, customer.unionid
        if member.invitor is None and userid != group.owner:
            member.invitor = group.owner
        group.members[userid] = member
        group.version += int(bump)
        return member

    def remove_group_member(self, chat_id: str, userid: str) -> None:
        group = self._lookup(self.groups, chat_id, "group", "add_group")
        self._lookup(group.members, userid, f"member of {chat_id}", "add_group_member")
        del group.members[userid]
        group.version += 1

    def dismiss_group(self, chat_id: str) -> None:
        self._lookup(self.groups, chat_id, "group", "add_group")
        del self.groups[chat_id]

    # --- outbound messages -------------------------------------------------------------------

    def add_welcome_code(
        self,
        external_userid: str,
        userid: str,
        *,
        code: str | None = None,
        issued_at: datetime | None = None,
    ) -> str:
        """The WelcomeCode an add event carries, good for 20 s from ``issued_at`` (now)."""
        self._lookup(self.staff, userid, "staff member", "add_staff")
        welcome = WelcomeCode(
            code or self.new_id("wc"), userid, external_userid, issued_at or self.now()
        )
        self.outbound.welcome_codes[welcome.code] = welcome
        return welcome.code

    def confirm_mass(
        self, msgid: str, userid: str | None = None, *, chat_ids: Iterable[str] | None = None
    ) -> None:
        """Staff ``userid`` (default: the message's only sender) sends mass message ``msgid``
        from their client; for groups, ``chat_ids`` are the groups they pick (default: the
        preselected ones, or every group they own)."""
        confirm_task(self, msgid, userid, None if chat_ids is None else list(chat_ids))

    # --- transfers (离职继承 / 在职继承) ---------------------------------------------------------

    def refuse_transfer(self, external_userid: str) -> None:
        """The customer refuses the waiting handover (status 3, at once)."""
        record = self.transfers.waiting(external_userid)
        if record is None:
            raise KeyError(f"fake WeCom has no waiting transfer of {external_userid!r}")
        record.refused = True
        self.settle_transfers()

    def set_customer_limit(self, userid: str, limit: int) -> None:
        """Staff ``userid`` may have at most ``limit`` customers: a takeover beyond is status 4."""
        self._lookup(self.staff, userid, "staff member", "add_staff")
        self.transfers.limits[userid] = limit

    def complete_transfers(self) -> None:
        """Every waiting handover reaches its takeover time now (instead of after 24 h)."""
        now = self.now()
        for record in self.transfers.transfers:
            record.takeover_time = min(record.takeover_time, now)
        self.settle_transfers()

    def settle_transfers(self) -> None:
        settle(self)

    # --- helpers -----------------------------------------------------------------------------

    def _follow(self, external_userid: str, userid: str) -> Follow:
        customer = self._lookup(self.customers, external_userid, "customer", "add_customer")
        return self._lookup(customer.follows, userid, f"follow of {external_userid}", "add_follow")

    def _check_follow(self, follow: Follow) -> None:
        self._lookup(self.staff, follow.userid, "staff member", "add_staff")
        for tag_id in follow.tag_ids:
            self._lookup(self.tags, tag_id, "tag", "add_tag")

    @staticmethod
    def _lookup(table: dict[str, T], key: str, what: str, how: str) -> T:
        try:
            return table[key]
        except KeyError:
            raise KeyError(f"fake WeCom has no {what} {key!r}; seed it with {how}()") from None


def _apply(target: Customer | Follow, changes: dict[str, Any], *, frozen: set[str]) -> None:
    known = {f.name for f in fields(target)} - frozen
    unknown = set(changes) - known
    if unknown:
        raise TypeError(f"cannot change {sorted(unknown)}; changeable: {sorted(known)}")
    for name, value in changes.items():
        setattr(target, name, value)
