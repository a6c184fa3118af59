"""Realistic callback traffic for the ingest bench: what a busy corp's server receives.

Mostly customers added through the expo channel code (State ``expo2026``: the example
onboarding playbook enrolls each of them and puts its welcome step on the agenda), some through
another channel nobody's playbook watches, and for a few hundred known customers and a few dozen
staff: edits and removals, group joins (the group welcome playbook), Official Account messages
(one in eight asks the price: the keyword reply playbook), staff writing to the app and opening
it. Deterministic (seeded): two runs send the same callbacks in the same order.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from bot.callback.samples import (
    SignedRequest,
    contact_changed_xml,
    customer_added_xml,
    group_join_xml,
    sign_mp,
    sign_wecom,
    staff_text_xml,
)
from bot.config import Config, parse_config

CORP_ID = "ww0bench0corp0id"
APP = {
    "name": "bench",
    "agent_id": 1000002,
    "token": "benchToken",
    "encoding_aes_key": "J6MSm+Mxx6aK5Ty67kVGmCxvdWhn2O8x+J2L7TnSD+s",
}
MP = {
    "name": "news",
    "app_id": "wx0bench0mp0app0",
    "token": "benchMpToken",
    "encoding_aes_key": "ZoKUxOHfj7jiBFt071B7azm29bfB64y6DoWUU54ijgg",
}
STAFF = 40
CUSTOMERS = 300
FOLLOWERS = 120
GROUPS = 20
BASE_TIME = 1_700_000_000

#: Out of every 100 callbacks.
MIX = (
    ("add_expo", 60),
    ("add_other", 10),
    ("edit", 8),
    ("join_group", 8),
    ("mp_text", 8),
    ("staff_text", 3),
    ("enter_agent", 2),
    ("del_follow", 1),
)


def bench_config(database_url: str) -> Config:
    """The corp the bench plays: one WeCom app, one Official Account, the repo's playbooks."""
    return parse_config(
        {"database_url": database_url, "wecom": {"corp_id": CORP_ID, "apps": [APP]}, "mp": [MP]},
        environ={},
    )


def _xml(fields: dict[str, object]) -> str:
    inner = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>"
        for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>"


def _contact_event(change_type: str, staff: str, customer: str, at: int) -> str:
    return contact_changed_xml(
        corp_id=CORP_ID,
        change_type=change_type,
        user_id=staff,
        external_user_id=customer,
        create_time=at,
    )


def _enter_agent(staff: str, at: int) -> str:
    return _xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": staff,
            "CreateTime": at,
            "MsgType": "event",
            "Event": "enter_agent",
            "EventKey": "",
            "AgentID": APP["agent_id"],
        }
    )


def _mp_text(openid: str, content: str, msg_id: int, at: int) -> str:
    return _xml(
        {
            "ToUserName": "gh_bench0news",
            "FromUserName": openid,
            "CreateTime": at,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def customer_id(n: int) -> str:
    return f"wmRegular{n:06d}AAAAAAAA"


@dataclass(frozen=True)
class Traffic:
    """The signed requests, their plaintexts (for the floor) and how many of each kind."""

    requests: list[SignedRequest]
    kinds: list[str]
    plaintexts: list[tuple[str, str]]  # (inbox source, decrypted payload)

    def describe(self) -> str:
        counts = Counter(self.kinds)
        return ", ".join(f"{counts[kind]} {kind}" for kind, _ in MIX if counts[kind])


def make_traffic(count: int, seed: int = 2026) -> Traffic:
    """``count`` distinct signed callbacks in the proportions of :data:`MIX`, shuffled."""
    config = bench_config("sqlite://")
    app, account = config.wecom.apps[0], config.mp[0]
    rng = random.Random(seed)
    kinds = [kind for kind, share in MIX for _ in range(share)]
    requests: list[SignedRequest] = []
    plaintexts: list[tuple[str, str]] = []
    chosen: list[str] = []
    wecom_source, mp_source = f"wecom:{app.name}", f"mp:{account.name}"
    for i in range(count):
        kind = rng.choice(kinds)
        at = BASE_TIME + i // 10
        staff = f"staff{rng.randrange(STAFF):03d}"
        regular = customer_id(rng.randrange(CUSTOMERS))
        nonce = f"{i:010d}"
        if kind == "mp_text":
            openid = f"oBenchFollower{rng.randrange(FOLLOWERS):06d}"
            content = "请问价格多少" if rng.random() < 0.125 else f"你好 {i}"
            plaintext = _mp_text(openid, content, 7_000_000_000 + i, at)
            requests.append(
                sign_mp(account, plaintext, timestamp=at, nonce=nonce, openid=openid, safe=True)
            )
            plaintexts.append((mp_source, plaintext))
            chosen.append(kind)
            continue
        if kind in ("add_expo", "add_other"):
            plaintext = customer_added_xml(
                corp_id=CORP_ID,
                user_id=staff,
                external_user_id=f"wmBench{i:012d}AAAA",
                state="expo2026" if kind == "add_expo" else "web2026",
                welcome_code=f"WELCOME{i:016d}",
                create_time=at,
            )
        elif kind == "edit":
            plaintext = _contact_event("edit_external_contact", staff, regular, at)
        elif kind == "del_follow":
            plaintext = _contact_event("del_follow_user", staff, regular, at)
        elif kind == "join_group":
            chat = f"wrBenchGroup{rng.randrange(GROUPS):04d}"
            plaintext = group_join_xml(
                corp_id=CORP_ID, chat_id=chat, member_ids=[regular], create_time=at
            )
        elif kind == "staff_text":
            plaintext = staff_text_xml(
                corp_id=CORP_ID,
                user_id=staff,
                agent_id=int(str(APP["agent_id"])),
                content=f"收到 {i}",
                msg_id=8_000_000_000 + i,
                create_time=at,
            )
        else:
            plaintext = _enter_agent(staff, at)
        requests.append(sign_wecom(app, CORP_ID, plaintext, timestamp=at, nonce=nonce))
        plaintexts.append((wecom_source, plaintext))
        chosen.append(kind)
    return Traffic(requests, chosen, plaintexts)
