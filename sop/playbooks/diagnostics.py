"""Pydantic's validation errors, rewritten for the person who wrote the YAML.

Pydantic reports ``loc`` tuples that do not always match what was written: a union adds the
member it tried (``stop -> bool``), a value parsed by a ``BeforeValidator`` reports paths
inside the parsed form (``after -> delay``). Each error is placed at the longest part of its
path that exists in the YAML, errors a union fanned out are merged into one, and every message
says what was expected, what was received and, for a misspelling, the closest valid word.
"""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sop.playbooks.errors import suggest
from sop.playbooks.model import KeyPath
from sop.playbooks.yaml_marks import Marks, Position

_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
#: Words operators reach for that the language spells differently.
SYNONYMS = {
    "delay": "after",
    "wait": "wait_for_reply",
    "when": "at",
    "message": "send",
    "task": "nudge",
    "else_": "else",
    "if_": "if",
    "events": "event",
    "keyword": "keywords",
}


@dataclass(frozen=True)
class Finding:
    """One problem at a key path, before the file name is attached."""

    path: KeyPath
    where: Position
    message: str


def describe(
    exc: ValidationError, data: Any, marks: Marks, root: type[BaseModel]
) -> list[Finding]:
    findings: list[Finding] = []
    fanned: dict[KeyPath, list[ErrorDetails]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing":
            parent = _written(loc[:-1], data)
            where = marks.key(parent) if parent else Position(1, 1)
            findings.append(Finding(parent, where, f"{loc[-1]!r} is required"))
        elif kind == "extra_forbidden":
            findings.append(Finding(loc, marks.key(loc), _unknown_key(loc, root)))
        else:
            path = _written(loc, data)
            if len(path) < len(loc) and kind != "value_error":
                fanned.setdefault(path, []).append(error)
            else:
                findings.append(Finding(path, marks.value(path), _message(error, loc, root)))
    for path, errors in fanned.items():
        if len(errors) == 1:
            message = _message(errors[0], path, root)
        else:
            wanted = dict.fromkeys(_expected(e["msg"]).removeprefix("expected ") for e in errors)
            message = f"expected {' or '.join(wanted)}{_got(errors[0]['input'], '')}"
        findings.append(Finding(path, marks.value(path), message))
    return findings


def _written(loc: Sequence[str | int], data: Any) -> KeyPath:
    """The longest prefix of ``loc`` that names something present in the YAML data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_list or (isinstance(node, dict) and part in node)):
            break
        node = node[part]
        path.append(part)
    return tuple(path)


def _unknown_key(loc: KeyPath, root: type[BaseModel]) -> str:
    key = str(loc[-1])
    valid = field_keys(model_at(root, loc[:-1]))
    hint = suggest(key, valid)
    if not hint:
        synonym = suggest(key, SYNONYMS)
        target = SYNONYMS.get(synonym.split("'")[1], "") if synonym else ""
        hint = f" (did you mean {target!r}?)" if target in valid else ""
    if hint or not valid:
        return f"{key!r} is not a valid key{hint}"
    return f"{key!r} is not a valid key; valid keys: {', '.join(valid)}"


def _message(error: ErrorDetails, loc: KeyPath, root: type[BaseModel]) -> str:
    kind, text, value = error["type"], error["msg"], error.get("input")
    if kind == "value_error":
        return text.removeprefix("Value error, ")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = suggest(value, choices) if isinstance(value, str) else ""
        return f"expected one of {', '.join(choices)}{_got(value, text)}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        keys = field_keys(model_at(root, loc))
        listed = f" with keys {', '.join(keys)}" if keys else ""
        return f"expected a mapping{listed}{_got(value, '')}"
    if kind == "string_pattern_mismatch" and _NAME_PATTERN in text:
        return f"expected letters, digits, '_' or '-' (at most 64){_got(value, '')}"
    return f"{_expected(text)}{_got(value, text)}"


def _expected(text: str) -> str:
    return re.sub(r"^Input should be ", "expected ", text).removeprefix("Value error, ")


def _got(value: Any, text: str) -> str:
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list):
        return ", got a list"
    shown = "nothing" if value is None else repr(value)
    return "" if value is not None and repr(value) in text else f", got {shown}"


def field_keys(model: type[BaseModel] | None) -> list[str]:
    """The keys a mapping of this model may hold, as written in YAML (aliases included)."""
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def model_at(root: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` (None for plain values)."""
    annotation: Any = root
    for part in path:
        if isinstance(part, int):
            annotation = _item(annotation)
            continue
        model = _model(annotation)
        if model is None:
            return None
        annotation = next(
            (
                info.annotation
                for name, info in model.model_fields.items()
                if part in (name, info.alias)
            ),
            None,
        )
    return _model(annotation)


def _members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _model(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _item(annotation: Any) -> Any:
    for member in _members(annotation):
        if get_origin(member) is list:
            return get_args(member)[0]
    return None
