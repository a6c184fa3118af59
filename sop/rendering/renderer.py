"""Render message bodies in an immutable Jinja2 sandbox.

Playbooks are written by operators, not developers, and their templates see customer data:
the sandbox refuses attribute access to internals (``__class__``, ``mro``) and any method that
mutates a value, and ``StrictUndefined`` turns a missing variable into an error instead of a
message that says "Hello ," to a customer. Autoescape is off: these are chat messages, not
HTML. ``None`` renders as an empty string, so ``{{ customer.remark or customer.name }}`` reads
naturally and a customer never receives the word "None".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sop.playbooks.model import Content

#: Inline bodies compiled and kept; the library's files are cached by Jinja2 itself.
INLINE_CACHE_SIZE = 1024


class RenderError(Exception):
    """A template that could not be rendered, naming the template and the cause."""


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def describe(content: Content) -> str:
    """``template 'welcome.j2'`` or ``inline text``: where a body comes from, for messages."""
    return f"template {content.template!r}" if content.template else "inline text"


class Renderer:
    """Compiles each body once and renders it with a context from :func:`build_context`."""

    def __init__(self, templates: str | Path | None = None) -> None:
        #: The template library folder (``sop.templates``); None: ``template:`` never resolves.
        self.folder = Path(templates) if templates is not None else None
        self.environment = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(self.folder) if self.folder is not None else None,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_blank_none,
            auto_reload=True,
        )
        self._inline: dict[str, Template] = {}

    def library(self) -> list[str]:
        """Names of the templates in the library folder (for "did you mean")."""
        if self.folder is None or not self.folder.is_dir():
            return []
        return self.environment.list_templates(extensions=["j2", "txt", "jinja", "jinja2"])

    def source(self, name: str) -> str:
        """A library template's text; raises ``jinja2.TemplateNotFound``."""
        loader = self.environment.loader
        if loader is None:
            from jinja2 import TemplateNotFound

            raise TemplateNotFound(name)
        text, _filename, _uptodate = loader.get_source(self.environment, name)
        return text

    def template(self, content: Content) -> Template:
        """The compiled template of a body; raises Jinja2's ``TemplateError`` subclasses."""
        if content.template is not None:
            return self.environment.get_template(content.template)
        text = content.text or ""
        compiled = self._inline.get(text)
        if compiled is None:
            if len(self._inline) >= INLINE_CACHE_SIZE:
                self._inline.pop(next(iter(self._inline)))
            compiled = self._inline[text] = self.environment.from_string(text)
        return compiled

    def render(self, content: Content, context: Mapping[str, Any]) -> str:
        """The message text, trimmed; raises :class:`RenderError` (never a Jinja2 error)."""
        try:
            text = self.template(content).render(dict(context))
        except SecurityError as exc:
            raise RenderError(f"{describe(content)}: unsafe access refused: {exc}") from exc
        except TemplateError as exc:
            raise RenderError(f"{describe(content)}: {exc.message or exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(f"{describe(content)}: {type(exc).__name__}: {exc}") from exc
        text = text.strip()
        if not text:
            raise RenderError(f"{describe(content)} rendered an empty message")
        return text
