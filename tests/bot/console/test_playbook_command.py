"""``scrm playbook check`` as an operator runs it: a real process, its output and exit status."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cli import run_scrm

REPO = Path(__file__).resolve().parents[3]


def scrm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_scrm(*args, cwd=cwd)


def test_the_repository_examples_pass() -> None:
    done = scrm("--config", str(REPO / "config.yaml"), "playbook", "check", cwd=REPO)
    assert (done.returncode, done.stdout, done.stderr) == (0, "6 playbooks OK\n", "")


def test_errors_are_printed_one_a_line_with_a_summary(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "a.yaml").write_text(
        "name: a\ntrigger: {event: customer_added}\nsteps:\n  - dealy: 2h\n    stop: true\n"
        "  - goto: nowhere\n",
        encoding="utf-8",
    )
    (tmp_path / "playbooks" / "b.yaml").write_text(
        "name: b\ntrigger: {manual: true}\nsteps:\n  - nudge: {script: {template: x.j2}}\n",
        encoding="utf-8",
    )
    done = scrm("playbook", "check", cwd=tmp_path)  # no config: sop defaults, relative paths
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "playbooks/a.yaml:4:5: steps->1->dealy: 'dealy' is not a valid key "
        "(did you mean 'after'?)",
        "playbooks/b.yaml:4:22: steps->1->nudge->script->template: no template 'x.j2' in "
        "'templates'",
        "2 errors in 2 file(s)",
    ]


def test_explicit_paths_and_a_missing_one(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: g\ntrigger: {manual: true}\nsteps: [{stop: true}]\n", "utf-8")
    done = scrm("playbook", "check", str(good), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1 playbook OK\n")
    done = scrm("playbook", "check", str(good), "missing.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "missing.yaml: no such file or folder",
        "1 error in 1 file(s)",
    ]
