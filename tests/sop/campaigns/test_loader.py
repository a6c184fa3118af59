"""Campaign files: the examples load; mistakes are located like playbook errors."""

from __future__ import annotations

from pathlib import Path

from sop.campaigns.loader import load_campaigns
from tests.sop.campaigns.world import TEMPLATES

REPO = Path(__file__).resolve().parents[3]


def test_the_repository_examples_load() -> None:
    result = load_campaigns([REPO / "campaigns"], templates=TEMPLATES)
    assert result.errors == []
    assert sorted(result.campaigns) == ["vip_follow_up", "vip_launch", "weekly_group_tip"]


def test_errors_name_file_line_key_and_suggest(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "name: typo\nchannel: mass\ncontent: {text: hi}\nthrottle: {per_minit: 5}\n",
        encoding="utf-8",
    )
    personal = tmp_path / "personal.yaml"
    personal.write_text(
        "name: personal\nchannel: mass\ncontent: {text: '{{ customer.name }}'}\n",
        encoding="utf-8",
    )
    result = load_campaigns([typo, personal], templates=TEMPLATES)
    assert [str(e) for e in result.errors] == [
        f"{personal}:3:11: content->text: template line 1: 'customer' is never set here: a"
        " mass message has one content for all recipients of a staff member: use owner, now"
        " and playbook (the campaign's name), or choose channel staff_task for a personal"
        " script",
        f"{typo}:4:12: throttle->per_minit: 'per_minit' is not a valid key (did you mean"
        " 'per_minute'?)",
    ]


def test_rules_across_keys(tmp_path: Path) -> None:
    bad = tmp_path / "split.yaml"
    bad.write_text(
        "name: split\nchannel: mp\nvariants:\n"
        "  - {name: a, split: 60, text: x}\n  - {name: a, split: 30, text: y}\n",
        encoding="utf-8",
    )
    messages = [e.message for e in load_campaigns([bad], templates=TEMPLATES).errors]
    assert messages == [
        "an mp campaign needs 'account' (the config's name)",
        "the splits add up to 90, not 100",
        "variant 'a' is named twice",
    ]
