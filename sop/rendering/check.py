"""Check a message body when its playbook loads, not when the message is due.

Compiling catches syntax errors and unknown filters; walking the template's AST catches
variables the context does not have (``{{ custmer.name }}``) and attributes a documented
object does not have (``{{ customer.nmae }}``, ``customer['nmae']``), each with the template's
own line and the closest valid name. Templates pulled in with ``include``/``import`` are
checked too. A name the trigger can never set (``group`` in an onboarding playbook) is reported,
since a strict sandbox would fail on it at send time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from jinja2 import TemplateNotFound, TemplateSyntaxError, meta, nodes

from sop.playbooks.errors import suggest
from sop.playbooks.model import Content, Trigger
from sop.rendering.context import CONTEXT_SCHEMA
from sop.rendering.renderer import Renderer

_GROUP_EVENTS = ("joined_group", "left_group")


def unavailable_names(trigger: Trigger) -> dict[str, str]:
    """Context names that are always None for this trigger, with the reason."""
    missing: dict[str, str] = {}
    event = trigger.event
    group_message = event == "message_received" and trigger.chat != "private"
    if event not in _GROUP_EVENTS and not group_message:
        missing["group"] = "only joined_group, left_group and group message triggers have a group"
    if event != "message_received":
        missing["event"] = "only message_received triggers have an event (keyword, text)"
    return missing


def check_content(
    renderer: Renderer,
    content: Content,
    *,
    unavailable: Mapping[str, str] | None = None,
    schema: Mapping[str, frozenset[str] | None] = CONTEXT_SCHEMA,
) -> list[str]:
    """Problems of one body, one message each (``template line 2: unknown variable ...``,
    ``template footer.j2 line 1: ...`` for a library file)."""
    checker = _Checker(renderer, schema, unavailable or {})
    if content.template is not None:
        checker.library(content.template)
    else:
        checker.source(content.text or "", name=None, prefix="template ")
    return checker.problems


class _Checker:
    def __init__(
        self,
        renderer: Renderer,
        schema: Mapping[str, frozenset[str] | None],
        unavailable: Mapping[str, str],
    ) -> None:
        self.renderer = renderer
        self.schema = schema
        self.unavailable = unavailable
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def library(self, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        try:
            text = self.renderer.source(name)
        except TemplateNotFound:
            self.problems.append(self._not_found(name))
            return
        self.source(text, name=name, prefix=f"template {name} ")

    def _not_found(self, name: str) -> str:
        folder = self.renderer.folder
        if folder is None:
            return f"no template {name!r}: no template folder is configured (sop.templates)"
        if not folder.is_dir():
            return f"no template {name!r}: the template folder {str(folder)!r} does not exist"
        return f"no template {name!r} in {str(folder)!r}{suggest(name, self.renderer.library())}"

    def source(self, text: str, name: str | None, prefix: str) -> None:
        environment = self.renderer.environment
        try:
            tree = environment.parse(text, name=name)
            environment.compile(tree, name=name)
        except TemplateSyntaxError as exc:
            self.problems.append(f"{prefix}line {exc.lineno}: {exc.message}")
            return
        found = sorted([*self._names(tree), *self._attributes(tree)])
        self.problems.extend(f"{prefix}line {line}: {message}" for line, message in found)
        for included in meta.find_referenced_templates(tree):
            if included is not None:
                self.library(included)

    def _names(self, tree: nodes.Template) -> Iterator[tuple[int, str]]:
        known = list(self.schema)
        for name in sorted(meta.find_undeclared_variables(tree)):
            line = _first_line(tree, name)
            if name in self.unavailable:
                yield line, f"{name!r} is never set here: {self.unavailable[name]}"
            elif name not in self.schema:
                hint = suggest(name, known) or f"; the context has {', '.join(known)}"
                yield line, f"unknown variable {name!r}{hint}"

    def _attributes(self, tree: nodes.Template) -> Iterator[tuple[int, str]]:
        assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            assert isinstance(node, nodes.Getattr | nodes.Getitem)
            target = node.node
            if not isinstance(target, nodes.Name) or target.name in assigned:
                continue
            attributes = self.schema.get(target.name)
            attribute = _attribute(node)
            if attributes is None or attribute is None or attribute in attributes:
                continue
            hint = suggest(attribute, attributes) or f"; it has {', '.join(sorted(attributes))}"
            yield node.lineno, f"{target.name} has no {attribute!r}{hint}"


def _attribute(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _first_line(tree: nodes.Template, name: str) -> int:
    return next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), 1)
