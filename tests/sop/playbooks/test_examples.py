"""The example playbooks in playbooks/ load clean and every message renders on a sample."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sop.playbooks.loader import load_playbooks
from sop.rendering import Renderer, sample_context

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = {
    "onboarding",
    "keyword_reply",
    "complaint_alert",
    "group_welcome",
    "birthday",
    "reengagement",
}


def test_the_examples_load_clean() -> None:
    result = load_playbooks([REPO / "playbooks"], templates=REPO / "templates")
    assert [str(e) for e in result.errors] == []
    assert set(result.playbooks) == EXAMPLES


def test_every_example_message_renders_on_the_sample_context() -> None:
    renderer = Renderer(REPO / "templates")
    result = load_playbooks([REPO / "playbooks"], renderer=renderer)
    now = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
    for name, playbook in result.playbooks.items():
        context = sample_context(playbook_name=name, now=now, zone=ZoneInfo("Asia/Shanghai"))
        for step in playbook.steps:
            content = step.send or (step.nudge.script if step.nudge else None)
            if content is not None:
                text = renderer.render(content, context)
                assert "张" in text or "李顾问" in text or "价格" in text, (name, text)
