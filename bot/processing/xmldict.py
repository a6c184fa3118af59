"""Callback XML to a plain dict, safely: no DTD, no entities, no external references.

The plaintext of a callback has already passed the signature check, but it is still input
from the network, so it goes through defusedxml. The dict has the shape xmltodict gives
(what wechatpy's message classes read): a leaf is its text (None when empty), an element
with children is a dict, and a repeated child becomes a list.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring


class PayloadError(ValueError):
    """A payload that cannot be read at all (not XML / not a JSON object)."""


def xml_to_dict(payload: str) -> dict[str, Any]:
    """The children of the root element (``<xml>``) as a dict."""
    try:
        root = fromstring(payload, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # defusedxml raises ParseError or its own DefusedXmlException
        raise PayloadError(f"payload is not acceptable XML: {type(exc).__name__}: {exc}") from exc
    value = _convert(root)
    return value if isinstance(value, dict) else {}


def _convert(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text if element.text else None
    result: dict[str, Any] = {}
    for child in children:
        value = _convert(child)
        if child.tag in result:
            existing = result[child.tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[child.tag] = [existing, value]
        else:
            result[child.tag] = value
    return result
