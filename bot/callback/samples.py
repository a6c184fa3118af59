"""Correctly signed and encrypted sample callbacks, as the platforms would send them.

Used by the tests, ``scrm simulate`` and the ingest bench: build a plaintext (the shapes follow
the platforms' published samples, ids are parameters), then sign it for an endpoint, which gives
a ``SignedRequest`` any HTTP client can send.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from bot.callback.crypto import CallbackCipher, signature_of
from bot.config import AiBot, MpAccount, WecomApp


@dataclass(frozen=True)
class SignedRequest:
    """One HTTP request to a callback endpoint."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}{self.path}?{urlencode(self.query)}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.body else {}


def _cdata(value: object) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _path(base: str, name: str, named: bool) -> str:
    return f"{base}/{name}" if named else base


# -- signing ----------------------------------------------------------------------------------


def sign_wecom(
    app: WecomApp,
    corp_id: str,
    plaintext_xml: str,
    *,
    timestamp: int | str,
    nonce: str,
    named: bool = True,
) -> SignedRequest:
    """A POST to ``/wecom/callback[/{app}]`` carrying ``plaintext_xml`` encrypted for ``app``."""
    cipher = CallbackCipher.wecom(app.token, app.encoding_aes_key, corp_id)
    sealed = cipher.seal(plaintext_xml, timestamp=str(timestamp), nonce=nonce)
    agent = "" if app.agent_id is None else str(app.agent_id)
    body = (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<Encrypt>{_cdata(sealed.encrypt)}</Encrypt>"
        f"<AgentID>{_cdata(agent)}</AgentID></xml>"
    )
    query = {"msg_signature": sealed.signature, "timestamp": str(timestamp), "nonce": nonce}
    return SignedRequest(
        "POST", _path("/wecom/callback", app.name, named), query, body.encode(), "text/xml"
    )


def verify_wecom(
    app: WecomApp, corp_id: str, echo: str, *, timestamp: int | str, nonce: str, named: bool = True
) -> SignedRequest:
    """The URL check WeCom sends when an app's callback URL is saved."""
    cipher = CallbackCipher.wecom(app.token, app.encoding_aes_key, corp_id)
    return _encrypted_echo(
        cipher, _path("/wecom/callback", app.name, named), echo, timestamp, nonce
    )


def sign_aibot(
    bot: AiBot, plaintext_json: str, *, timestamp: int | str, nonce: str, named: bool = True
) -> SignedRequest:
    """A POST to ``/wecom/aibot[/{bot}]``: ``{"encrypt": ...}`` with an empty receive id."""
    cipher = CallbackCipher.aibot(bot.token, bot.encoding_aes_key)
    sealed = cipher.seal(plaintext_json, timestamp=str(timestamp), nonce=nonce)
    query = {"msg_signature": sealed.signature, "timestamp": str(timestamp), "nonce": nonce}
    body = json.dumps({"encrypt": sealed.encrypt}).encode()
    return SignedRequest(
        "POST", _path("/wecom/aibot", bot.name, named), query, body, "application/json"
    )


def verify_aibot(
    bot: AiBot, echo: str, *, timestamp: int | str, nonce: str, named: bool = True
) -> SignedRequest:
    cipher = CallbackCipher.aibot(bot.token, bot.encoding_aes_key)
    return _encrypted_echo(cipher, _path("/wecom/aibot", bot.name, named), echo, timestamp, nonce)


def _encrypted_echo(
    cipher: CallbackCipher, path: str, echo: str, timestamp: int | str, nonce: str
) -> SignedRequest:
    sealed = cipher.seal(echo, timestamp=str(timestamp), nonce=nonce)
    query = {
        "msg_signature": sealed.signature,
        "timestamp": str(timestamp),
        "nonce": nonce,
        "echostr": sealed.encrypt,
    }
    return SignedRequest("GET", path, query, b"", "")


def sign_mp(
    account: MpAccount,
    plaintext: str,
    *,
    timestamp: int | str,
    nonce: str,
    openid: str,
    safe: bool = False,
    to_user: str = "",
    named: bool = True,
) -> SignedRequest:
    """A POST to ``/mp/callback[/{account}]`` in plain or safe (``encrypt_type=aes``) mode.

    The envelope follows the plaintext: XML for XML, ``{"ToUserName", "Encrypt"}`` for JSON.
    """
    ts = str(timestamp)
    query = {
        "signature": signature_of(account.token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "openid": openid,
    }
    is_json = plaintext.lstrip().startswith("{")
    content_type = "application/json" if is_json else "text/xml"
    path = _path("/mp/callback", account.name, named)
    if not safe:
        return SignedRequest("POST", path, query, plaintext.encode(), content_type)
    if account.encoding_aes_key is None:
        raise ValueError(
            f"Official Account {account.name!r} has no encoding_aes_key: no safe mode"
        )
    cipher = CallbackCipher.mp(account.token, account.encoding_aes_key, account.app_id)
    sealed = cipher.seal(plaintext, timestamp=ts, nonce=nonce)
    query |= {"encrypt_type": "aes", "msg_signature": sealed.signature}
    if is_json:
        body = json.dumps({"ToUserName": to_user, "Encrypt": sealed.encrypt})
    else:
        body = (
            f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
            f"<Encrypt>{_cdata(sealed.encrypt)}</Encrypt></xml>"
        )
    return SignedRequest("POST", path, query, body.encode(), content_type)


def verify_mp(
    account: MpAccount, echostr: str, *, timestamp: int | str, nonce: str, named: bool = True
) -> SignedRequest:
    """The Official Account URL check: plain signature, echostr returned as is."""
    ts = str(timestamp)
    query = {
        "signature": signature_of(account.token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }
    return SignedRequest("GET", _path("/mp/callback", account.name, named), query, b"", "")


# -- plaintexts -------------------------------------------------------------------------------


def customer_added_xml(
    *,
    corp_id: str,
    user_id: str,
    external_user_id: str,
    state: str,
    welcome_code: str,
    create_time: int,
) -> str:
    """A customer added a staff member through a channel QR code (DOC 92130 sample shape)."""
    return contact_changed_xml(
        corp_id=corp_id,
        change_type="add_external_contact",
        user_id=user_id,
        external_user_id=external_user_id,
        create_time=create_time,
        extra=f"<State>{_cdata(state)}</State><WelcomeCode>{_cdata(welcome_code)}</WelcomeCode>",
    )


def contact_changed_xml(
    *,
    corp_id: str,
    change_type: str,
    user_id: str,
    external_user_id: str,
    create_time: int,
    extra: str = "",
) -> str:
    """A change between a staff member and a customer (``add_external_contact``,
    ``edit_external_contact``, ``del_follow_user``, ...), ids only as the platform sends them,
    then ``extra`` elements."""
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata('sys')}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType>"
        f"<Event>{_cdata('change_external_contact')}</Event>"
        f"<ChangeType>{_cdata(change_type)}</ChangeType>"
        f"<UserID>{_cdata(user_id)}</UserID>"
        f"<ExternalUserID>{_cdata(external_user_id)}</ExternalUserID>{extra}</xml>"
    )


def group_join_xml(
    *,
    corp_id: str,
    chat_id: str,
    member_ids: Sequence[str],
    create_time: int,
    join_scene: int = 3,
    last_mem_ver: str = "",
    cur_mem_ver: str = "",
) -> str:
    """Members joined a customer group (change_external_chat update add_member; 3 = QR code)."""
    items = "".join(f"<Item>{_cdata(m)}</Item>" for m in member_ids)
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata('sys')}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType>"
        f"<Event>{_cdata('change_external_chat')}</Event>"
        f"<ChatId>{_cdata(chat_id)}</ChatId>"
        f"<ChangeType>{_cdata('update')}</ChangeType>"
        f"<UpdateDetail>{_cdata('add_member')}</UpdateDetail>"
        f"<JoinScene>{join_scene}</JoinScene><QuitScene>0</QuitScene>"
        f"<MemChangeCnt>{len(member_ids)}</MemChangeCnt>"
        f"<MemChangeList>{items}</MemChangeList>"
        f"<LastMemVer>{_cdata(last_mem_ver)}</LastMemVer>"
        f"<CurMemVer>{_cdata(cur_mem_ver)}</CurMemVer></xml>"
    )


def staff_text_xml(
    *, corp_id: str, user_id: str, agent_id: int, content: str, msg_id: int, create_time: int
) -> str:
    """A staff member wrote to a self-built app (the WeCom doc's text message shape)."""
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata(user_id)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{agent_id}</AgentID></xml>"
    )


def mp_text_xml(
    *, account_id: str, openid: str, content: str, msg_id: int, create_time: int
) -> str:
    """A customer wrote to an Official Account (``account_id`` is its gh_ original id)."""
    return (
        f"<xml><ToUserName>{_cdata(account_id)}</ToUserName>"
        f"<FromUserName>{_cdata(openid)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId></xml>"
    )


def mp_text_json(
    *, account_id: str, openid: str, content: str, msg_id: int, create_time: int
) -> str:
    """The same message for an account that pushes JSON."""
    message = {
        "ToUserName": account_id,
        "FromUserName": openid,
        "CreateTime": create_time,
        "MsgType": "text",
        "Content": content,
        "MsgId": msg_id,
    }
    return json.dumps(message, ensure_ascii=False)


def aibot_text_json(
    *,
    msg_id: str,
    aibot_id: str,
    user_id: str,
    content: str,
    chat_id: str | None = None,
    response_url: str = "https://qyapi.weixin.qq.com/cgi-bin/aibot/response",
) -> str:
    """Someone @-mentioned the AI bot: in a group chat when ``chat_id`` is given, else directly."""
    message: dict[str, object] = {"msgid": msg_id, "aibotid": aibot_id}
    if chat_id is not None:
        message["chatid"] = chat_id
    message |= {
        "chattype": "single" if chat_id is None else "group",
        "from": {"userid": user_id},
        "response_url": response_url,
        "msgtype": "text",
        "text": {"content": content},
    }
    return json.dumps(message, ensure_ascii=False)
