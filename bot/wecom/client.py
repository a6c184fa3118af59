"""The async WeCom API client: the only place in the toolkit that knows WeCom's HTTP API.

Methods return the payloads as the platform gives them (plain dicts, documented per method),
so callers can map what they need without this package chasing every field WeCom adds.
Retries are bounded: a refused token is replaced and the call sent once more; nothing else is
retried here. Transient failures raise :class:`~bot.wecom.errors.TransientWecomError` for the
caller to schedule again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.wecom.errors import (
    CREDENTIAL_ERRCODES,
    TOKEN_ERRCODES,
    WecomApiError,
    WecomCredentialsError,
)
from bot.wecom.tokens import AccessTokenCache, FetchedToken
from bot.wecom.transport import Payload, request_json
from sop.clock import Clock

#: 84061 "not external contact": what externalcontact/list answers for a staff member
#: without customers.
NOT_EXTERNAL_CONTACT = 84061
#: The transfer APIs take at most 100 customers (or groups) a call.
TRANSFER_BATCH = 100


class WecomClient:
    """Calls the WeCom API with one app's credential (corp id + secret).

    ``credential`` names the token in the ``access_tokens`` table: give every app its own
    (``wecom:<corp_id>:<app name>``) and create one client per credential per process.
    The aiohttp session belongs to the caller, who closes it.
    """

    def __init__(
        self,
        *,
        base_url: str,
        corp_id: str,
        secret: str,
        credential: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        http: aiohttp.ClientSession,
        timeout: float = 10.0,
    ) -> None:
        self._base_url = base_url.rstrip("/") + "/cgi-bin/"
        self._corp_id = corp_id
        self._secret = secret
        self._http = http
        self._timeout = timeout
        self.credential = credential
        self.tokens = AccessTokenCache(
            credential=credential, fetch=self._fetch_token, sessions=sessions, clock=clock
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Payload:
        """Call ``/cgi-bin/<path>`` with the access token; the payload of a successful answer.

        On 40014/42001 the token is dropped, a new one fetched and the call sent once more.
        """
        api = path.strip("/")
        return await self.tokens.call_with_token(
            lambda token: self._send(method, api, token, params, json), refused=_token_refused
        )

    async def get_external_contact(self, external_userid: str) -> Payload:
        """``externalcontact/get``: the whole payload, ``external_contact`` + ``follow_user``."""
        return await self.call(
            "GET", "externalcontact/get", params={"external_userid": external_userid}
        )

    async def list_external_contacts(self, userid: str) -> list[str]:
        """``externalcontact/list``: the external userids of a staff member's customers."""
        try:
            payload = await self.call("GET", "externalcontact/list", params={"userid": userid})
        except WecomApiError as exc:
            if exc.errcode == NOT_EXTERNAL_CONTACT:
                return []
            raise
        return [str(item) for item in payload.get("external_userid", [])]

    async def get_group_chat(self, chat_id: str) -> dict[str, Any]:
        """``externalcontact/groupchat/get`` with member names: the ``group_chat`` object."""
        payload = await self.call(
            "POST", "externalcontact/groupchat/get", json={"chat_id": chat_id, "need_name": 1}
        )
        group: dict[str, Any] = payload["group_chat"]
        return group

    async def get_user(self, userid: str) -> Payload:
        """``user/get``: the staff member's fields (userid, name, department, ...)."""
        return await self.call("GET", "user/get", params={"userid": userid})

    async def get_corp_tags(
        self, tag_ids: list[str] | None = None, group_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """``externalcontact/get_corp_tag_list``: the ``tag_group`` list, each with its tags.

        Neither filter: every tag. Both: the platform filters by ``group_ids`` only.
        """
        body: dict[str, list[str]] = {}
        if tag_ids:
            body["tag_id"] = tag_ids
        if group_ids:
            body["group_id"] = group_ids
        payload = await self.call("POST", "externalcontact/get_corp_tag_list", json=body)
        groups: list[dict[str, Any]] = payload.get("tag_group", [])
        return groups

    async def add_msg_template(self, body: dict[str, Any]) -> Payload:
        """``externalcontact/add_msg_template``: ``msgid`` and ``fail_list`` (the recipients
        that cannot receive it: not a contact of the sender, unknown)."""
        return await self.call("POST", "externalcontact/add_msg_template", json=body)

    async def get_groupmsg_list_v2(self, body: dict[str, Any]) -> Payload:
        """``externalcontact/get_groupmsg_list_v2``: one page of ``group_msg_list``.

        ``body`` holds chat_type, start_time, end_time (at most a month apart) and the
        optional creator, filter_type, limit (<= 100) and cursor.
        """
        return await self.call("POST", "externalcontact/get_groupmsg_list_v2", json=body)

    async def get_groupmsg_task(
        self, msgid: str, *, cursor: str = "", limit: int = 1000
    ) -> Payload:
        """``externalcontact/get_groupmsg_task``: one page of ``task_list`` (per staff member:
        userid, status 0 not sent / 2 sent, send_time) and ``next_cursor``."""
        body: dict[str, Any] = {"msgid": msgid, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        return await self.call("POST", "externalcontact/get_groupmsg_task", json=body)

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, cursor: str = "", limit: int = 1000
    ) -> Payload:
        """``externalcontact/get_groupmsg_send_result``: one page of ``send_list`` (per
        recipient: external_userid or chat_id, status 0 not sent / 1 sent / 2 not a contact /
        3 over the receiving limit, send_time) and ``next_cursor``."""
        body: dict[str, Any] = {"msgid": msgid, "userid": userid, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        return await self.call("POST", "externalcontact/get_groupmsg_send_result", json=body)

    async def remind_groupmsg_send(self, msgid: str) -> None:
        """``externalcontact/remind_groupmsg_send``: notify the staff again (3 times a day)."""
        await self.call("POST", "externalcontact/remind_groupmsg_send", json={"msgid": msgid})

    async def cancel_groupmsg_send(self, msgid: str) -> None:
        """``externalcontact/cancel_groupmsg_send``: withdraw what the staff has not sent."""
        await self.call("POST", "externalcontact/cancel_groupmsg_send", json={"msgid": msgid})

    async def add_corp_tag(
        self, names: Sequence[str], *, group_id: str = "", group_name: str = ""
    ) -> dict[str, Any]:
        """``externalcontact/add_corp_tag``: new tags ``names`` in the group ``group_id``, or
        in the group called ``group_name`` (created when there is none); the ``tag_group``
        with the new tags and their ids."""
        body: dict[str, Any] = {"tag": [{"name": name} for name in names]}
        if group_id:
            body["group_id"] = group_id
        else:
            body["group_name"] = group_name
        payload = await self.call("POST", "externalcontact/add_corp_tag", json=body)
        group: dict[str, Any] = payload["tag_group"]
        return group

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> None:
        """``externalcontact/mark_tag``: add and remove corp tags (by id) on the customer
        ``external_userid`` as staff member ``userid`` sees them."""
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add),
            "remove_tag": list(remove),
        }
        await self.call("POST", "externalcontact/mark_tag", json=body)

    async def update_template_card(
        self,
        *,
        agent_id: int,
        response_code: str,
        userids: Sequence[str] = (),
        template_card: dict[str, Any] | None = None,
        replace_name: str | None = None,
    ) -> Payload:
        """``message/update_template_card``: replace a sent card by ``template_card``, or only
        turn its buttons into one grey ``replace_name`` label (after a press).

        ``response_code`` comes from the send's answer or from the press callback; the
        platform takes each one once, within 72 hours. ``userids`` narrows the update to some
        of the card's recipients (default: all).
        """
        if (template_card is None) == (replace_name is None):
            raise ValueError(
                f"update_template_card({response_code!r}) takes exactly one of template_card"
                " (a new card) and replace_name (the pressed button's new label)"
            )
        body: dict[str, Any] = {"agentid": agent_id, "response_code": response_code}
        if userids:
            body["userids"] = list(userids)
        if template_card is not None:
            body["template_card"] = template_card
        else:
            body["button"] = {"replace_name": replace_name}
        return await self.call("POST", "message/update_template_card", json=body)

    async def transfer_customers(
        self,
        handover_userid: str,
        takeover_userid: str,
        external_userids: Sequence[str],
        *,
        resigned: bool,
        message: str | None = None,
    ) -> list[dict[str, Any]]:
        """Start handing customers over: ``externalcontact/resigned/transfer_customer``
        (离职继承, the member left) or ``externalcontact/transfer_customer`` (在职继承, with
        the optional ``transfer_success_msg`` ``message``). At most 100 customers a call.

        The ``customer`` list: per customer its ``errcode``; 0 means the platform started
        the handover (it takes over after 24 hours), not that it succeeded.
        """
        if not 1 <= len(external_userids) <= TRANSFER_BATCH:
            raise ValueError(
                f"transfer_customer takes 1-{TRANSFER_BATCH} customers a call, got"
                f" {len(external_userids)}: split the list"
            )
        body: dict[str, Any] = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": list(external_userids),
        }
        if not resigned and message:
            body["transfer_success_msg"] = message
        api = (
            "externalcontact/resigned/transfer_customer"
            if resigned
            else ("externalcontact/transfer_customer")
        )
        payload = await self.call("POST", api, json=body)
        customers: list[dict[str, Any]] = payload.get("customer", [])
        return customers

    async def transfer_result(
        self, handover_userid: str, takeover_userid: str, *, resigned: bool, cursor: str = ""
    ) -> Payload:
        """One page of a handover's outcome: ``customer`` (external_userid, status 1 done /
        2 waiting / 3 refused by the customer / 4 the successor is at the customer limit /
        5 no transfer record, takeover_time) and ``next_cursor``."""
        body: dict[str, Any] = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
        }
        if cursor:
            body["cursor"] = cursor
        api = (
            "externalcontact/resigned/transfer_result"
            if resigned
            else ("externalcontact/transfer_result")
        )
        return await self.call("POST", api, json=body)

    async def transfer_group_chats(
        self, chat_ids: Sequence[str], new_owner: str, *, resigned: bool
    ) -> list[dict[str, Any]]:
        """Give groups a new owner: ``externalcontact/groupchat/transfer`` (the owner left) or
        ``externalcontact/groupchat/onjob_transfer``; at most 100 a call. Takes effect at
        once; the ``failed_chat_list`` (chat_id, errcode, errmsg) names the groups that
        did not move."""
        if not 1 <= len(chat_ids) <= TRANSFER_BATCH:
            raise ValueError(
                f"groupchat transfer takes 1-{TRANSFER_BATCH} groups a call, got {len(chat_ids)}"
            )
        api = (
            "externalcontact/groupchat/transfer"
            if resigned
            else ("externalcontact/groupchat/onjob_transfer")
        )
        body = {"chat_id_list": list(chat_ids), "new_owner": new_owner}
        payload = await self.call("POST", api, json=body)
        failed: list[dict[str, Any]] = payload.get("failed_chat_list", [])
        return failed

    async def get_unassigned_list(self, *, cursor: str = "", page_size: int = 1000) -> Payload:
        """``externalcontact/get_unassigned_list``: one page of ``info`` (handover_userid,
        external_userid, dimission_time) of departed members' customers not yet assigned,
        ``is_last`` and ``next_cursor``."""
        body: dict[str, Any] = {"page_size": page_size}
        if cursor:
            body["cursor"] = cursor
        return await self.call("POST", "externalcontact/get_unassigned_list", json=body)

    async def _send(
        self,
        method: str,
        api: str,
        token: str,
        params: dict[str, str] | None,
        json: Any,
    ) -> Payload:
        return await request_json(
            self._http,
            method,
            self._base_url + api,
            api=api,
            params={**params, "access_token": token} if params else {"access_token": token},
            json=json,
            time_limit=self._timeout,
        )

    async def _fetch_token(self) -> FetchedToken:
        try:
            payload = await request_json(
                self._http,
                "GET",
                self._base_url + "gettoken",
                api="gettoken",
                params={"corpid": self._corp_id, "corpsecret": self._secret},
                time_limit=self._timeout,
            )
        except WecomApiError as exc:
            if exc.errcode in CREDENTIAL_ERRCODES:
                raise WecomCredentialsError(
                    "gettoken",
                    exc.errcode,
                    exc.errmsg,
                    credential=f"{self.credential} (corp id {self._corp_id})",
                ) from exc
            raise
        token = payload.get("access_token")
        expires_in = payload.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WecomApiError(
                "gettoken", None, f"no access_token/expires_in in the answer: {sorted(payload)}"
            )
        return FetchedToken(token, expires_in)


def _token_refused(exc: Exception) -> bool:
    """40014/42001: the token was refused, so a new one is worth one more try."""
    return isinstance(exc, WecomApiError) and exc.errcode in TOKEN_ERRCODES
