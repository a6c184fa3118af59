"""The inbox lane of a callback: which customer, group or member it is about, hashed.

Processors on several machines share the inbox by lanes (:mod:`store.lane_leases`): one lane is
processed by one processor at a time, in arrival order. So callbacks about the same subject must
land in the same lane: a customer's add, messages and deletion are never processed out of order,
even when they reach different web processes. The subject is read with a few substring searches
(about a microsecond, on the answer path); the full parse stays with the processor.

Subjects, first match wins: ``ExternalUserID`` (the customer of an external-contact event),
``ChatId`` (a customer group), ``UserID`` (a directory change), ``FromUserName`` (the staff member
of an app message or event, the follower of an Official Account); for JSON (AI bots, Official
Accounts that push JSON) ``chatid``, else ``userid``, else ``FromUserName``. A payload with none
of these goes to lane 0.
"""

from __future__ import annotations

import zlib

from store.models.inbox import LANES

_XML_SUBJECTS = ("ExternalUserID", "ChatId", "UserID", "FromUserName")
_CDATA_OPEN, _CDATA_CLOSE = "<![CDATA[", "]]>"


#: Rows are taken in ascending priority. Contact events (a customer added, changed or removed)
#: go first: the welcome message, whose code the platform honours for 20 seconds, waits on
#: the add.
URGENT, ROUTINE = 0, 1
_URGENT_MARK = "change_external_contact"


def priority_of(content_type: str, payload: str) -> int:
    """``URGENT`` for a customer's contact events, else ``ROUTINE``.

    All of one customer's contact events share a priority, so their order is kept.
    """
    return URGENT if content_type == "xml" and _URGENT_MARK in payload else ROUTINE


def lane_of(content_type: str, payload: str) -> int:
    """The lane (0 to ``LANES - 1``) of a decrypted callback."""
    subject = _json_subject(payload) if content_type == "json" else _xml_subject(payload)
    if not subject:
        return 0
    return zlib.crc32(subject.encode("utf-8")) % LANES


def _xml_subject(payload: str) -> str | None:
    for name in _XML_SUBJECTS:
        value = _xml_text(payload, name)
        if value:
            return value
    return None


def _xml_text(payload: str, name: str) -> str | None:
    start = payload.find(f"<{name}>")
    if start < 0:
        return None
    start += len(name) + 2
    end = payload.find(f"</{name}>", start)
    if end < 0:
        return None
    value = payload[start:end].strip()
    if value.startswith(_CDATA_OPEN) and value.endswith(_CDATA_CLOSE):
        value = value[len(_CDATA_OPEN) : -len(_CDATA_CLOSE)]
    return value.strip()


def _json_subject(payload: str) -> str | None:
    return (
        _json_string(payload, "chatid")
        or _json_string(payload, "userid")
        or _json_string(payload, "FromUserName")
    )


def _json_string(payload: str, key: str) -> str | None:
    """The first string value of ``key`` anywhere in ``payload`` (no escapes in ids)."""
    at = payload.find(f'"{key}"')
    if at < 0:
        return None
    colon = payload.find(":", at + len(key) + 2)
    if colon < 0:
        return None
    opening = payload.find('"', colon + 1)
    if opening < 0 or payload[colon + 1 : opening].strip():
        return None
    closing = payload.find('"', opening + 1)
    return payload[opening + 1 : closing] if closing > opening else None
