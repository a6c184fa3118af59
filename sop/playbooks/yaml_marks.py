"""YAML that remembers where every key and value was written.

Validation errors are only useful to an operator when they point at a line, so the loader
composes the node tree itself (PyYAML's ``SafeLoader``), builds plain Python data from it and
keeps the position of every key and value under its key path. Two YAML 1.1 traps are closed on
the way: ``10:00`` is a string here (PyYAML reads it as the base-60 integer 600) and only
``true``/``false`` are booleans (``no``, ``on``, ``TD`` stay words). A key written twice is an
error naming both lines, never a silent overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sop.playbooks.model import KeyPath


@dataclass(frozen=True, order=True)
class Position:
    """1-based line and column."""

    line: int
    column: int


def position(mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


@dataclass
class Marks:
    """Where each key path was written: its key (``dealy:``) and its value."""

    keys: dict[KeyPath, Position] = field(default_factory=dict)
    values: dict[KeyPath, Position] = field(default_factory=dict)
    #: Paths whose value is a YAML sequence (their int parts are list positions).
    sequences: set[KeyPath] = field(default_factory=set)

    def key(self, path: KeyPath) -> Position:
        """The position of the longest written prefix of ``path`` (its key)."""
        for end in range(len(path), 0, -1):
            found = self.keys.get(path[:end])
            if found is not None:
                return found
        return self.values.get((), Position(1, 1))

    def value(self, path: KeyPath) -> Position:
        """The position of the value at the longest written prefix of ``path``."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)


class YamlError(Exception):
    """A document that is not valid YAML (or not valid for us), with its position."""

    def __init__(self, message: str, where: Position, path: KeyPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.path = path


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-like scalars: no sexagesimal numbers, no yes/no/on/off
    booleans, no implicit dates (``at:`` parses its own format and names it on error)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # PyYAML's per-class registry, refilled below


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def load_yaml(text: str) -> tuple[Any, Marks, list[YamlError]]:
    """Parse one YAML document into plain data, the marks of every key path, and the keys
    written twice (the first value is kept, so the rest of the file is still checked).

    Raises :class:`YamlError` for a syntax error or an unsafe tag.
    """
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise YamlError(_yaml_message(exc), position(exc.problem_mark)) from None
        marks = Marks()
        if node is None:
            return None, marks, []
        marks.values[()] = position(node.start_mark)
        builder = _Builder(loader, marks)
        return builder.build(node, ()), marks, builder.duplicates
    finally:
        loader.dispose()


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "YAML syntax error: " + ", ".join(parts)


class _Builder:
    def __init__(self, loader: _Loader, marks: Marks) -> None:
        self.loader = loader
        self.marks = marks
        self.active: set[int] = set()
        self.duplicates: list[YamlError] = []

    def build(self, node: Node, path: KeyPath) -> Any:
        if id(node) in self.active:
            raise YamlError("a YAML alias refers to itself", position(node.start_mark))
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                self.marks.sequences.add(path)
                return self._sequence(node, path)
            return self._scalar(node)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            where = exc.problem_mark or node.start_mark
            raise YamlError(f"YAML: {exc.problem}", position(where)) from None

    def _sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            item_path = (*path, index)
            self.marks.keys[item_path] = self.marks.values[item_path] = position(item.start_mark)
            items.append(self.build(item, item_path))
        return items

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise YamlError("a key must be a plain word", position(key_node.start_mark))
            key = self._scalar(key_node)
            key_path = (*path, key)
            if key in result:
                first = self.marks.keys[key_path]
                self.duplicates.append(
                    YamlError(
                        f"duplicate key {key!r} (first written on line {first.line})",
                        position(key_node.start_mark),
                        key_path,
                    )
                )
                continue
            self.marks.keys[key_path] = position(key_node.start_mark)
            self.marks.values[key_path] = position(value_node.start_mark)
            result[key] = self.build(value_node, key_path)
        return result
