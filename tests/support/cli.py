"""The ``scrm`` command in a process of its own, as an operator runs it.

Tests of commands go through a real process so they see what an operator sees: the exit
status, stdout and stderr, the configuration and environment handling. ``SCRM_*`` variables
of the test run are not inherited (a developer's shell must not change a test's outcome).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRM = [sys.executable, "-m", "bot.cli"]


def run_scrm(
    *args: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``scrm ARGS`` in ``cwd`` with ``env`` added; never raises on a non-zero exit."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    environ["PYTHONPATH"] = str(REPO)
    environ["COLUMNS"] = "200"
    environ.update(env or {})
    return subprocess.run(
        [*SCRM, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
