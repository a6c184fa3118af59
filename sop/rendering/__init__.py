"""Message templates (话术库): a Jinja2 sandbox, the documented context, checks at load."""

from sop.rendering.check import check_content
from sop.rendering.context import CONTEXT_SCHEMA, build_context, sample_context
from sop.rendering.renderer import Renderer, RenderError

__all__ = [
    "CONTEXT_SCHEMA",
    "RenderError",
    "Renderer",
    "build_context",
    "check_content",
    "sample_context",
]
