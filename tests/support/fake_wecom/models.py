"""The objects the fake corp holds, each able to render itself as the platform does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def epoch(when: datetime) -> int:
    return int(when.timestamp())


@dataclass
class AppToken:
    """An access token the fake issued for one secret."""

    value: str
    secret: str
    expires_at: datetime
    revoked: bool = False


@dataclass
class Staff:
    userid: str
    name: str
    department: list[int]
    main_department: int
    position: str = ""
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 left
    gender: str = "0"
    alias: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "userid": self.userid,
            "name": self.name,
            "department": list(self.department),
            "order": [0 for _ in self.department],
            "position": self.position,
            "gender": self.gender,
            "is_leader_in_dept": [0 for _ in self.department],
            "direct_leader": [],
            "avatar": f"https://wework.qpic.cn/fake/{self.userid}/0",
            "thumb_avatar": f"https://wework.qpic.cn/fake/{self.userid}/100",
            "alias": self.alias,
            "status": self.status,
            "main_department": self.main_department,
            "open_userid": f"wo{self.userid}",
        }


@dataclass
class Department:
    id: int
    name: str
    parentid: int = 0
    leaders: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "name_en": "",
            "department_leader": list(self.leaders),
            "parentid": self.parentid,
            "order": 100000000,
        }


@dataclass
class Tag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "create_time": self.create_time,
            "order": self.order,
            "deleted": self.deleted,
        }


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    deleted: bool = False
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class Follow:
    """One staff member's relation to a customer (an entry of ``follow_user``)."""

    userid: str
    createtime: int
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    state: str | None = None
    add_way: int = 1
    oper_userid: str | None = None
    remark_mobiles: list[str] = field(default_factory=list)


@dataclass
class Customer:
    external_userid: str
    name: str
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    avatar: str = ""
    unionid: str | None = None
    corp_name: str | None = None
    position: str | None = None
    follows: dict[str, Follow] = field(default_factory=dict)

    def contact_to_api(self) -> dict[str, Any]:
        contact: dict[str, Any] = {
            "external_userid": self.external_userid,
            "name": self.name,
            "type": self.type,
            "avatar": self.avatar,
            "gender": self.gender,
        }
        if self.unionid is not None:
            contact["unionid"] = self.unionid
        if self.type == 2:
            contact["corp_name"] = self.corp_name or ""
            contact["position"] = self.position or ""
        return contact


@dataclass
class GroupMember:
    userid: str
    type: int  # 1 staff, 2 external contact
    join_time: int
    join_scene: int = 1  # 1 invited directly, 2 by link, 3 by QR code
    invitor: str | None = None
    group_nickname: str = ""
    name: str = ""
    unionid: str | None = None

    def to_api(self, need_name: bool) -> dict[str, Any]:
        member: dict[str, Any] = {
            "userid": self.userid,
            "type": self.type,
            "join_time": self.join_time,
            "join_scene": self.join_scene,
            "group_nickname": self.group_nickname,
        }
        if self.invitor is not None:
            member["invitor"] = {"userid": self.invitor}
        if need_name:
            member["name"] = self.name
        if self.type == 2 and self.unionid is not None:
            member["unionid"] = self.unionid
        return member


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    version: int = 1

    def to_api(self, need_name: bool) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "name": self.name,
            "owner": self.owner,
            "create_time": self.create_time,
            "notice": self.notice,
            "member_list": [m.to_api(need_name) for m in self.members.values()],
            "admin_list": [{"userid": userid} for userid in self.admins],
            "member_version": f"{self.version:032x}",
        }
