"""A scripted customer journey as signed callbacks: what `scrm simulate` and `scrm demo` send.

It needs no WeCom account: the callbacks are signed and encrypted with the configured tokens and
keys exactly as the platform would, so the server cannot tell them from real ones.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.callback import samples
from bot.callback.samples import SignedRequest
from bot.config import Config

DEMO_STAFF = "zhangsan"
DEMO_CUSTOMER = "wmDemoCustomer0000000000000001"
DEMO_GROUP = "wrDemoGroup00000000000000000001"
DEMO_CHANNEL_STATE = "spring_fair_qr"


@dataclass(frozen=True)
class Step:
    label: str
    request: SignedRequest


def journey(
    config: Config,
    now: datetime,
    *,
    customer: str = DEMO_CUSTOMER,
    staff: str = DEMO_STAFF,
    group: str = DEMO_GROUP,
) -> list[Step]:
    """The callbacks of one customer's first minutes, for whatever endpoints ``config`` has."""
    steps: list[Step] = []
    at = int(now.timestamp()) - 300  # the journey spans the last five minutes
    corp = config.wecom.corp_id

    def nonce() -> str:
        return secrets.token_hex(5)

    if config.wecom.apps:
        app = config.wecom.apps[0]
        added = samples.customer_added_xml(
            corp_id=corp,
            user_id=staff,
            external_user_id=customer,
            state=DEMO_CHANNEL_STATE,
            welcome_code=secrets.token_hex(8),
            create_time=at,
        )
        joined = samples.group_join_xml(
            corp_id=corp,
            chat_id=group,
            member_ids=[customer],
            create_time=at + 60,
        )
        staff_msg = samples.staff_text_xml(
            corp_id=corp,
            user_id=staff,
            agent_id=app.agent_id or 0,
            content="tasks",
            msg_id=at * 1000 + secrets.randbelow(1000),
            create_time=at + 90,
        )
        steps += [
            Step(
                f"customer {customer} adds {staff} through channel QR '{DEMO_CHANNEL_STATE}'",
                samples.sign_wecom(app, corp, added, timestamp=at, nonce=nonce()),
            ),
            Step(
                f"customer joins group {group} by QR code",
                samples.sign_wecom(app, corp, joined, timestamp=at + 60, nonce=nonce()),
            ),
            Step(
                f"staff {staff} writes 'tasks' to the app",
                samples.sign_wecom(app, corp, staff_msg, timestamp=at + 90, nonce=nonce()),
            ),
        ]
    if config.wecom.aibots:
        bot = config.wecom.aibots[0]
        mention = samples.aibot_text_json(
            msg_id=secrets.token_hex(8),
            aibot_id=bot.name,
            user_id=customer,
            content="@helper 请问团购活动什么时候开始?",
            chat_id=group,
        )
        steps.append(
            Step(
                "customer @-mentions the AI bot in the group",
                samples.sign_aibot(bot, mention, timestamp=at + 120, nonce=nonce()),
            )
        )
    if config.mp:
        account = config.mp[0]
        openid = "oDemoFollower000000000000001"
        text = samples.mp_text_xml(
            account_id=f"gh_{account.name}",
            openid=openid,
            content="你好,想了解会员权益",
            msg_id=at * 1000 + 7,
            create_time=at + 180,
        )
        signed = samples.sign_mp(
            account,
            text,
            timestamp=at + 180,
            nonce=nonce(),
            openid=openid,
            safe=account.encoding_aes_key is not None,
            to_user=f"gh_{account.name}",
        )
        steps.append(Step(f"a follower writes to Official Account '{account.name}'", signed))
    return steps
