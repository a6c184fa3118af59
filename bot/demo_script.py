"""The demo's customer story, scene by scene, as signed callbacks at simulated times.

Two customers meet the example playbooks (playbooks/): 李女士 adds the account manager 张三
through the expo channel QR code (welcome message, a follow-up task the next morning, her
reply moves her on, then a complaint that alerts her owner), and 王先生 asks the Official
Account for a price (automatic answer) and later unsubscribes (opt-out, one confirmation).
Each scene is a callback the platform would send, signed and encrypted with the configured
keys, at an offset from the start of the story.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.callback import samples
from bot.callback.samples import SignedRequest
from bot.config import Config

STAFF = "zhangsan"
CUSTOMER = "wmDemoCustomer0000000000000001"
GROUP = "wrDemoGroup00000000000000000001"
CHANNEL_STATE = "expo2026"  # the channel code playbooks/onboarding.yaml listens to
FOLLOWER = "oDemoFollower000000000000001"
ACCOUNT = "news"  # playbooks/keyword_reply.yaml answers through this Official Account


@dataclass(frozen=True)
class Scene:
    """At ``at`` (simulated), ``label`` happens: ``request`` is the callback, if any."""

    at: datetime
    label: str
    request: SignedRequest | None = None
    #: A follower message also opens the Official Account's 48-hour window on the fake.
    mp_openid: str | None = None


def _next_local(start: datetime, days: int, hour: int, minute: int, config: Config) -> datetime:
    local = start.astimezone(config.zone) + timedelta(days=days)
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0)


def story(config: Config, start: datetime, *, welcome_code: str) -> list[Scene]:
    """The scenes in order; ``config`` gives the endpoints' keys, ``welcome_code`` is the
    one the platform hands out with the add event."""
    app, bot, account = config.wecom.apps[0], config.wecom.aibots[0], config.mp[0]
    corp = config.wecom.corp_id
    next_morning = _next_local(start, 1, 10, 0, config)
    scenes: list[Scene] = []

    def wecom(at: datetime, label: str, xml: Callable[[int], str]) -> None:
        stamp = int(at.timestamp())
        request = samples.sign_wecom(app, corp, xml(stamp), timestamp=stamp, nonce=_nonce())
        scenes.append(Scene(at, label, request))

    def to_bot(at: datetime, label: str, text: str) -> None:
        stamp = int(at.timestamp())
        body = samples.aibot_text_json(
            msg_id=secrets.token_hex(8), aibot_id=bot.name, user_id=CUSTOMER, content=text
        )
        request = samples.sign_aibot(bot, body, timestamp=stamp, nonce=_nonce())
        scenes.append(Scene(at, label, request))

    def to_account(at: datetime, label: str, text: str) -> None:
        stamp = int(at.timestamp())
        xml = samples.mp_text_xml(
            account_id=f"gh_{account.name}",
            openid=FOLLOWER,
            content=text,
            msg_id=stamp * 1000 + secrets.randbelow(1000),
            create_time=stamp,
        )
        request = samples.sign_mp(
            account,
            xml,
            timestamp=stamp,
            nonce=_nonce(),
            openid=FOLLOWER,
            safe=account.encoding_aes_key is not None,
            to_user=f"gh_{account.name}",
        )
        scenes.append(Scene(at, label, request, mp_openid=FOLLOWER))

    wecom(
        start,
        f"李女士 scans the expo QR code '{CHANNEL_STATE}' and adds {STAFF}",
        lambda t: samples.customer_added_xml(
            corp_id=corp,
            user_id=STAFF,
            external_user_id=CUSTOMER,
            state=CHANNEL_STATE,
            welcome_code=welcome_code,
            create_time=t,
        ),
    )
    wecom(
        start + timedelta(minutes=2),
        "李女士 joins the customer group by its QR code",
        lambda t: samples.group_join_xml(
            corp_id=corp, chat_id=GROUP, member_ids=[CUSTOMER], create_time=t
        ),
    )
    to_account(
        start + timedelta(minutes=5),
        "王先生 asks the Official Account: 请问价格多少？",
        "请问价格多少？",
    )
    scenes.append(Scene(next_morning, "the next morning, 10:00"))
    to_bot(
        next_morning + timedelta(hours=2),
        "李女士 answers: 好的，请把入门指南发我",
        "好的，请把入门指南发我",
    )
    to_bot(
        next_morning + timedelta(hours=5),
        "李女士 complains: 我要投诉，快递一周还没到",
        "我要投诉，快递一周还没到",
    )
    to_account(next_morning + timedelta(hours=6), "王先生 writes 退订", "退订")
    scenes.append(Scene(next_morning + timedelta(hours=8), "the afternoon: escalations due"))
    return scenes


def _nonce() -> str:
    return secrets.token_hex(5)
