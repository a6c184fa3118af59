"""The sandbox: strict variables, no unsafe access, compiled once, errors as RenderError."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sop.playbooks.model import Content
from sop.rendering import Renderer, RenderError, check_content, sample_context

NOW = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


def context() -> dict[str, object]:
    return sample_context(playbook_name="demo", now=NOW, zone=ZoneInfo("Asia/Shanghai"))


def test_renders_the_documented_variables() -> None:
    text = (
        "{{ customer.remark }}/{{ customer.name }}/{{ owner.name }}/{{ playbook.name }}/"
        "{{ customer.tags | join(',') }}/{{ customer.fields.city }}/{{ now.strftime('%H:%M') }}"
    )
    rendered = Renderer().render(Content(text=text), context())
    assert rendered == "张总/张三/李顾问/demo/新客户,展会/上海/09:30"


def test_an_undefined_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(RenderError, match="'nobody' is undefined"):
        Renderer().render(Content(text="hi {{ nobody }}"), context())
    with pytest.raises(RenderError, match="has no attribute 'nmae'"):
        Renderer().render(Content(text="hi {{ customer.nmae }}"), context())


def test_none_renders_empty_and_blank_output_is_refused() -> None:
    values = {**context(), "group": None}
    assert Renderer().render(Content(text="a{{ customer.added_at and '' }}{{ None }}b"), values)
    with pytest.raises(RenderError, match="empty message"):
        Renderer().render(Content(text="{% if group %}{{ group.name }}{% endif %}  \n"), values)


@pytest.mark.parametrize(
    "text",
    [
        "{{ customer.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ customer.tags.append('x') }}",
        "{{ customer.fields.update(a=1) }}",
        "{{ now.__reduce_ex__(2) }}",
    ],
)
def test_the_sandbox_refuses_unsafe_access(text: str) -> None:
    with pytest.raises(RenderError, match="unsafe|undefined|not safely callable"):
        Renderer().render(Content(text=text), context())


def test_chat_text_is_not_html_escaped() -> None:
    values = {**context(), "event": {"keyword": "<b>", "text": "a & b"}}
    assert Renderer().render(Content(text="{{ event.text }} {{ event.keyword }}"), values) == (
        "a & b <b>"
    )


def test_inline_templates_are_compiled_once() -> None:
    renderer = Renderer()
    content = Content(text="{{ customer.name }}")
    assert renderer.template(content) is renderer.template(Content(text="{{ customer.name }}"))


def test_library_templates_and_includes(tmp_path: Path) -> None:
    (tmp_path / "sig.j2").write_text("— {{ owner.name }}\n", encoding="utf-8")
    (tmp_path / "hi.j2").write_text("你好{{ customer.name }}\n{% include 'sig.j2' %}\n", "utf-8")
    rendered = Renderer(tmp_path).render(Content(template="hi.j2"), context())
    assert rendered == "你好张三\n— 李顾问"
    with pytest.raises(RenderError, match="template 'nope.j2'"):
        Renderer(tmp_path).render(Content(template="nope.j2"), context())


def test_the_check_finds_unknown_names_attributes_and_syntax(tmp_path: Path) -> None:
    (tmp_path / "inner.j2").write_text("{{ playbook.nam }}", encoding="utf-8")
    renderer = Renderer(tmp_path)
    text = (
        "{% set who = customer.name %}{{ who.upper() }}\n"
        "{{ customer['fields'].anything }} {{ owner.userid }} {{ owner['nmae'] }}\n"
        "{% for t in customer.tags %}{{ t.x }}{% endfor %}{{ cusomer }}\n"
        "{% include 'inner.j2' %}"
    )
    assert check_content(renderer, Content(text=text)) == [
        "template line 2: owner has no 'nmae' (did you mean 'name'?)",
        "template line 3: unknown variable 'cusomer' (did you mean 'customer'?)",
        "template inner.j2 line 1: playbook has no 'nam' (did you mean 'name'?)",
    ]
    assert check_content(renderer, Content(text="{{ zzz }}")) == [
        "template line 1: unknown variable 'zzz'; the context has customer, owner, group, "
        "playbook, event, now"
    ]
    assert check_content(renderer, Content(text="{% endif %}")) == [
        "template line 1: Encountered unknown tag 'endif'."
    ]
