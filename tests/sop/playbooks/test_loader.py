"""The loader's errors: located at file:line:column, with the key path and a suggestion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sop.playbooks.errors import PlaybookError, PlaybookLoadError
from sop.playbooks.loader import load_playbooks, parse_playbook, require
from sop.rendering.renderer import Renderer

HEAD = """\
name: onboarding
trigger:
  event: customer_added
steps:
"""


def check(text: str, templates: Path | None = None) -> list[str]:
    _playbook, errors = parse_playbook(textwrap.dedent(text), "p.yaml", Renderer(templates))
    return [str(error) for error in errors]


def test_a_valid_playbook_loads_with_parsed_timing() -> None:
    text = HEAD + '  - send: {channel: welcome, text: "你好 {{ customer.name }}"}\n'
    text += "  - after: 1d at 10:00\n    nudge: {script: {text: hi}, due: 30m}\n"
    playbook, errors = parse_playbook(text, "p.yaml", Renderer())
    assert errors == []
    assert playbook is not None
    after = playbook.steps[1].after
    assert after is not None
    assert (after.delay.days, str(after.at)) == (1, "10:00:00")


def test_a_misspelt_key_is_located_and_suggests_the_right_one() -> None:
    text = HEAD + "  - send: {channel: welcome, text: hi}\n  - goto: 1\n    afterr: 2h\n"
    assert check(text) == [
        "p.yaml:7:5: steps->2->afterr: 'afterr' is not a valid key (did you mean 'after'?)"
    ]


def test_a_word_from_another_language_suggests_ours() -> None:
    text = HEAD + "  - dealy: 2h\n    stop: true\n"
    assert check(text) == [
        "p.yaml:5:5: steps->1->dealy: 'dealy' is not a valid key (did you mean 'after'?)"
    ]


def test_a_key_with_no_close_match_lists_the_valid_ones() -> None:
    errors = check(HEAD + "  - stop: true\nzzz: 1\n")
    assert errors == [
        "p.yaml:6:1: zzz: 'zzz' is not a valid key; valid keys: name, description, enabled, "
        "marketing, timezone, quiet_hours, catch_up, reentry, trigger, audience, exit, goal, steps"
    ]


def test_every_error_of_a_file_at_once_sorted_by_line() -> None:
    text = """\
    name: bad name
    trigger:
      event: customer_addd
    quiet_hours: {start: "25:00", end: "08:00"}
    steps:
      - after: 2x
        stop: true
      - wait_for_reply: {timout: 2d}
    """
    assert check(text) == [
        "p.yaml:1:7: name: expected letters, digits, '_' or '-' (at most 64), got 'bad name'",
        "p.yaml:3:10: trigger->event: expected one of customer_added, message_received, "
        "joined_group, left_group, tag_added, tag_removed, customer_removed, "
        "got 'customer_addd' (did you mean 'customer_added'?)",
        "p.yaml:4:22: quiet_hours->start: expected a time of day HH:MM (00:00-23:59), got '25:00'",
        "p.yaml:6:12: steps->1->after: expected a duration (30m, 2h, 1d), optionally with a "
        "time of day: '1d at 10:00', got '2x'",
        "p.yaml:8:5: steps->2->wait_for_reply: 'timeout' is required",
        "p.yaml:8:22: steps->2->wait_for_reply->timout: 'timout' is not a valid key "
        "(did you mean 'timeout'?)",
    ]


def test_a_duplicate_key_names_both_lines() -> None:
    text = HEAD + "  - stop: true\nname: again\n"
    assert check(text) == ["p.yaml:6:1: name: duplicate key 'name' (first written on line 1)"]


def test_bad_durations_and_an_int_without_unit() -> None:
    text = HEAD + "  - wait_for_reply: {timeout: 3 days}\n  - after: 5\n    stop: true\n"
    text += "reentry: sometimes\n"
    assert check(text) == [
        "p.yaml:5:31: steps->1->wait_for_reply->timeout: expected a duration such as 30m, "
        "2h, 1d or 2w, got '3 days'",
        "p.yaml:6:12: steps->2->after: give a unit: '5s', '5m' or '5h'",
        "p.yaml:8:10: reentry: expected 'never' or 'always' or a duration such as 2h, "
        "got 'sometimes'",
    ]


def test_a_goto_to_a_missing_step() -> None:
    text = HEAD + "  - id: first\n    tag: vip\n  - goto: frist\n"
    assert check(text) == [
        "p.yaml:7:11: steps->2->goto: no step with id 'frist' (steps: first, 2)"
    ]


def test_a_filter_on_the_wrong_event() -> None:
    text = HEAD.replace("customer_added", "joined_group") + "  - stop: true\n"
    text = text.replace("  event: joined_group\n", "  event: joined_group\n  keywords: [hi]\n")
    assert check(text) == [
        "p.yaml:4:13: trigger->keywords: 'keywords' does not apply to joined_group "
        "(filters: groups)"
    ]


def test_a_welcome_message_must_come_first() -> None:
    text = HEAD + "  - tag: new\n  - send: {channel: welcome, text: hi}\n"
    assert check(text) == [
        "p.yaml:6:21: steps->2->send->channel: a welcome message must be the first step and "
        "go at once (the WelcomeCode is valid for 20 seconds)"
    ]


def test_a_union_error_reads_as_one() -> None:
    assert check(HEAD + "  - stop: [1]\n") == [
        "p.yaml:5:11: steps->1->stop: expected a valid boolean or a valid string, got a list"
    ]


def test_a_yaml_syntax_error_has_its_line() -> None:
    errors = check(HEAD + "  - send: {channel: welcome\n  - stop: true\n")
    assert errors == [
        "p.yaml:6:9: YAML syntax error: while parsing a flow mapping, expected ',' or '}', "
        "but got ':'"
    ]


def test_times_of_day_and_no_are_not_yaml_1_1_numbers_or_booleans() -> None:
    text = HEAD.replace("customer_added", "message_received") + "  - stop: true\n"
    text = text.replace("steps:", "quiet_hours: {start: 22:00, end: 8:00}\nsteps:")
    text = text.replace(
        "  event: message_received\n", "  event: message_received\n  keywords: [no, TD]\n"
    )
    playbook, errors = parse_playbook(text, "p.yaml", Renderer())
    assert errors == []
    assert playbook is not None
    assert playbook.quiet_hours is not None
    assert str(playbook.quiet_hours.start) == "22:00:00"
    assert playbook.trigger.keywords == ["no", "TD"]


def test_an_empty_file_and_a_list() -> None:
    assert check("") == [
        "p.yaml:1:1: expected a mapping (name, description, enabled, marketing, timezone, "
        "quiet_hours, catch_up, reentry, trigger, audience, exit, goal, steps), got an empty file"
    ]
    assert check("- a\n")[0].endswith("got a list")


def test_template_errors_are_located_at_the_key(tmp_path: Path) -> None:
    (tmp_path / "hello.j2").write_text("你好 {{ owner.nmae }}\n", encoding="utf-8")
    text = HEAD + (
        "  - send:\n"
        "      channel: welcome\n"
        "      text: |\n"
        "        你好 {{ customer.name }}\n"
        "        {{ custmer.name }}\n"
        "  - nudge: {script: {text: '{% if %}'}}\n"
        "  - nudge: {script: {template: hello.j2}}\n"
        "  - nudge: {script: {template: helo.j2}}\n"
    )
    assert check(text, tmp_path) == [
        "p.yaml:7:7: steps->1->send->text: template line 2: unknown variable 'custmer' "
        "(did you mean 'customer'?)",
        "p.yaml:10:22: steps->2->nudge->script->text: template line 1: Expected an expression, "
        "got 'end of statement block'",
        "p.yaml:11:22: steps->3->nudge->script->template: template hello.j2 line 1: "
        "owner has no 'nmae' (did you mean 'name'?)",
        f"p.yaml:12:22: steps->4->nudge->script->template: no template 'helo.j2' in "
        f"{str(tmp_path)!r} (did you mean 'hello.j2'?)",
    ]


def test_a_variable_the_trigger_never_sets() -> None:
    text = HEAD + "  - nudge: {script: {text: '{{ event.text }}'}}\n"
    assert check(text) == [
        "p.yaml:5:22: steps->1->nudge->script->text: template line 1: 'event' is never set "
        "here: only message_received triggers have an event (keyword, text)"
    ]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_folders_missing_paths_and_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEAD + "  - stop: true\n")
    write(tmp_path, "b.yml", "description: x\n" + HEAD + "  - stop: true\n")
    write(tmp_path, "c.yaml", HEAD.replace("onboarding", "other") + "  - stop: true\n")
    write(tmp_path, "notes.txt", "not a playbook")
    result = load_playbooks([tmp_path, tmp_path / "missing"])
    assert sorted(result.playbooks) == ["onboarding", "other"]
    assert result.sources["onboarding"] == tmp_path / "a.yaml"
    assert result.errors == [
        PlaybookError(
            str(tmp_path / "b.yml"),
            2,
            1,
            "name",
            f"playbook name 'onboarding' is already used by {tmp_path / 'a.yaml'}",
        ),
        PlaybookError(str(tmp_path / "missing"), 0, 0, "", "no such file or folder"),
    ]
    assert str(result.errors[1]) == f"{tmp_path / 'missing'}: no such file or folder"
    with pytest.raises(PlaybookLoadError, match="already used by"):
        require(result)


def test_an_invalid_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", "name: bad\n")
    write(tmp_path, "good.yaml", HEAD + "  - stop: true\n")
    result = load_playbooks([tmp_path])
    assert list(result.playbooks) == ["onboarding"]
    bad = tmp_path / "bad.yaml"
    assert [str(e) for e in result.errors] == [
        f"{bad}:1:1: 'steps' is required",
        f"{bad}:1:1: 'trigger' is required",
    ]
