"""Callback XML to a plain dict, safely: no DTD (so no entities), no external references.

The plaintext of a callback has already passed the signature check, but it is still input
from the network: a document type declaration, an entity declaration or an external
reference stops the parse (what defusedxml forbids with ``forbid_dtd``, ``forbid_entities``
and ``forbid_external``). The dict is built by expat's callbacks directly, without an element
tree in between (a third of the cost, and parsing is most of what a simple row costs), in the
shape xmltodict gives (what wechatpy's message classes read): a leaf is its text (None when
empty), an element with children is a dict of them (its own text ignored), and a repeated
child becomes a list.
"""

from __future__ import annotations

import pyexpat
from typing import Any, NoReturn


class PayloadError(ValueError):
    """A payload that cannot be read at all (not XML / not a JSON object)."""


class ForbiddenXml(ValueError):
    """A DTD, an entity or an external reference in a callback."""


def _forbidden(*_args: object) -> NoReturn:
    raise ForbiddenXml("DTDs, entities and external references are not accepted")


class _Builder:
    """expat's handlers for one document; ``root`` is the top element's value."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        # Per open element: [tag, its children (None while it has none), its text parts].
        self.stack: list[list[Any]] = []
        self.root: Any = None

    def start(self, tag: str, _attributes: object) -> None:
        self.stack.append([_name(tag), None, []])

    def end(self, _tag: str) -> None:
        tag, children, text = self.stack.pop()
        if children is None:
            joined = "".join(text)
            value: Any = joined if joined else None
        else:
            value = children
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        siblings = parent[1]
        if siblings is None:
            siblings = parent[1] = {}
        if tag not in siblings:
            siblings[tag] = value
        elif isinstance(siblings[tag], list):
            siblings[tag].append(value)
        else:
            siblings[tag] = [siblings[tag], value]

    def text(self, data: str) -> None:
        if self.stack and self.stack[-1][1] is None:
            self.stack[-1][2].append(data)


def _name(tag: str) -> str:
    """``{namespace}local`` for a namespaced tag, as ElementTree spells it."""
    return "{" + tag if "}" in tag else tag


def xml_to_dict(payload: str) -> dict[str, Any]:
    """The children of the root element (``<xml>``) as a dict."""
    parser = pyexpat.ParserCreate(None, "}")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbidden
    parser.EntityDeclHandler = _forbidden
    parser.UnparsedEntityDeclHandler = _forbidden
    parser.ExternalEntityRefHandler = _forbidden
    builder = _Builder()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.text
    try:
        parser.Parse(payload, True)
    except (pyexpat.ExpatError, ForbiddenXml) as exc:
        raise PayloadError(f"payload is not acceptable XML: {type(exc).__name__}: {exc}") from exc
    return builder.root if isinstance(builder.root, dict) else {}
