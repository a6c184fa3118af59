"""Sample ``template_card_event`` callbacks: a staff member pressed a button on an app card.

The shape of the WeCom document's sample (DOC 90240, 模板卡片事件推送), with the ids as
parameters; sign it with :func:`bot.callback.samples.sign_wecom` like any app callback.
"""

from __future__ import annotations

from bot.callback.samples import _cdata


def template_card_event_xml(
    *,
    corp_id: str,
    user_id: str,
    agent_id: int,
    task_id: str,
    event_key: str,
    response_code: str,
    create_time: int,
    card_type: str = "button_interaction",
) -> str:
    """``user_id`` pressed the button ``event_key`` on the card ``task_id``."""
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata(user_id)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType>"
        f"<Event>{_cdata('template_card_event')}</Event>"
        f"<EventKey>{_cdata(event_key)}</EventKey>"
        f"<TaskId>{_cdata(task_id)}</TaskId>"
        f"<CardType>{_cdata(card_type)}</CardType>"
        f"<ResponseCode>{_cdata(response_code)}</ResponseCode>"
        f"<AgentID>{agent_id}</AgentID></xml>"
    )
