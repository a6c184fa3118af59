"""``scrm playbook preview`` as an operator runs it: a real process on the repository's
examples, printing the simulated run and writing nothing."""

from __future__ import annotations

from pathlib import Path

from tests.bot.console.test_playbook_command import REPO, scrm


def test_onboarding_for_a_sample_customer_shows_each_step_and_what_it_would_send(
    tmp_path: Path,
) -> None:
    done = scrm(
        "--config",
        str(REPO / "config.yaml"),
        "playbook",
        "preview",
        "onboarding",
        "--sample",
        "--start",
        "2026-11-23 15:00",
        "--reply-after",
        "1d",
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "preview onboarding, from Mon 11-23 15:00 (Asia/Shanghai)" in out
    assert "wecom_welcome" in out  # the welcome message at once
    assert "Tue 11-24 10:00" in out  # the nudge the next morning
    assert "reply" in out and "enrollment: completed" in out
    assert not list(tmp_path.iterdir())


def test_unknown_playbook_and_missing_choice_are_explained() -> None:
    config = str(REPO / "config.yaml")
    unknown = scrm("--config", config, "playbook", "preview", "nope", "--sample", cwd=REPO)
    assert unknown.returncode == 1
    assert "no valid playbook named 'nope' (playbooks: birthday, complaint_alert" in unknown.stderr
    neither = scrm("--config", config, "playbook", "preview", "onboarding", cwd=REPO)
    assert neither.returncode == 2
    assert "give exactly one of --customer ID or --sample" in neither.stderr
