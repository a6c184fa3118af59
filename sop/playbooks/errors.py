"""A playbook error as an operator reads it: ``onboarding.yaml:12:5: steps->2->dealy: ...``.

One shape for every kind of problem (YAML syntax, unknown keys, bad values, rules across keys,
templates, duplicate names) so ``scrm playbook check``, ``serve`` and the tests print and sort
them the same way: by file, then line, then column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from sop.playbooks.model import KeyPath


@dataclass(frozen=True, order=True)
class PlaybookError:
    """``file:line:column: key->path: message``; ``key`` is empty for file-level problems,
    ``line`` is 0 for a file that could not be read at all."""

    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def format_path(path: KeyPath, sequences: Iterable[KeyPath] = ()) -> str:
    """``("steps", 1, "dealy")`` -> ``steps->2->dealy``: list positions count from 1, as
    step ids do (the first step's id is ``1``)."""
    in_sequence = set(sequences)
    parts = []
    for index, part in enumerate(path):
        shown = part + 1 if isinstance(part, int) and path[:index] in in_sequence else part
        parts.append(str(shown))
    return "->".join(parts)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'delay'?)`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class PlaybookLoadError(Exception):
    """Raised by callers that want an exception rather than a list: all errors, one a line."""

    def __init__(self, errors: Iterable[PlaybookError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(error) for error in self.errors))
