"""Load playbook files into :class:`Playbook` models, or say exactly what is wrong and where.

Every problem of a file is reported at once, each located at a line and column: YAML syntax,
duplicate keys, unknown or misspelt keys, bad values, rules across keys
(:func:`reference_errors`) and message templates (compiled and checked against the documented
context). An invalid file yields no playbook but never stops the others from loading; whether
to start anyway is the caller's decision (``serve`` refuses, a hot reload keeps the last good
version).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sop.playbooks.diagnostics import Finding, describe, field_keys
from sop.playbooks.errors import PlaybookError, PlaybookLoadError, format_path
from sop.playbooks.model import Content, KeyPath, Playbook, reference_errors
from sop.playbooks.yaml_marks import Marks, Position, YamlError, load_yaml
from sop.rendering.check import check_content, unavailable_names
from sop.rendering.renderer import Renderer

SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    """The valid playbooks by name, the file each came from, and every error, sorted."""

    playbooks: dict[str, Playbook] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    errors: list[PlaybookError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_playbooks(
    paths: Iterable[str | Path],
    *,
    templates: str | Path | None = None,
    renderer: Renderer | None = None,
) -> LoadResult:
    """Load files and folders (``*.yaml``/``*.yml`` directly inside); ``templates`` is the
    library folder that ``template:`` names resolve in (or pass a ready ``renderer``)."""
    renderer = renderer or Renderer(templates)
    result = LoadResult()
    for path in yaml_files(paths, result.errors):
        playbook, errors = load_file(path, renderer)
        result.errors.extend(errors)
        if playbook is None:
            continue
        first = result.sources.get(playbook.name)
        if first is not None:
            where = _name_position(path)
            result.errors.append(
                PlaybookError(
                    str(path),
                    where.line,
                    where.column,
                    "name",
                    f"playbook name {playbook.name!r} is already used by {first}",
                )
            )
            continue
        result.playbooks[playbook.name] = playbook
        result.sources[playbook.name] = path
    result.errors.sort()
    return result


def yaml_files(paths: Iterable[str | Path], errors: list[PlaybookError]) -> Iterator[Path]:
    """The YAML files of ``paths`` (folders: their ``*.yaml``/``*.yml`` in name order); a
    missing path is an error. Shared with the campaign loader."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            yield path
        else:
            errors.append(PlaybookError(str(path), 0, 0, "", "no such file or folder"))


def load_file(path: Path, renderer: Renderer) -> tuple[Playbook | None, list[PlaybookError]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [PlaybookError(str(path), 0, 0, "", f"cannot read: {exc}")]
    return parse_playbook(text, str(path), renderer)


def parse_playbook(
    text: str, file: str, renderer: Renderer
) -> tuple[Playbook | None, list[PlaybookError]]:
    """One playbook from YAML text; ``file`` names it in errors. The playbook is None when
    there is any error."""
    try:
        data, marks, duplicates = load_yaml(text)
    except YamlError as exc:
        return None, [PlaybookError(file, exc.where.line, exc.where.column, "", exc.message)]
    findings = [Finding(d.path, d.where, d.message) for d in duplicates]
    playbook: Playbook | None = None
    if not isinstance(data, dict):
        keys = ", ".join(field_keys(Playbook))
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        findings.append(Finding((), marks.value(()), f"expected a mapping ({keys}), got {got}"))
    else:
        try:
            playbook = Playbook.model_validate(data)
        except ValidationError as exc:
            findings.extend(describe(exc, data, marks, Playbook))
        else:
            findings.extend(_rules(playbook, marks))
            findings.extend(_templates(playbook, marks, renderer))
    errors = sorted(
        PlaybookError(
            file, f.where.line, f.where.column, format_path(f.path, marks.sequences), f.message
        )
        for f in findings
    )
    return (None if errors else playbook), errors


def _rules(playbook: Playbook, marks: Marks) -> Iterator[Finding]:
    for path, message in reference_errors(playbook):
        yield Finding(path, _at(marks, path), message)


def _at(marks: Marks, path: KeyPath) -> Position:
    return marks.value(path) if path in marks.values else marks.key(path)


def _contents(playbook: Playbook) -> Iterator[tuple[KeyPath, Content]]:
    for index, step in enumerate(playbook.steps):
        if step.send is not None:
            yield ("steps", index, "send"), step.send
        if step.nudge is not None:
            yield ("steps", index, "nudge", "script"), step.nudge.script


def _templates(playbook: Playbook, marks: Marks, renderer: Renderer) -> Iterator[Finding]:
    unavailable = unavailable_names(playbook.trigger)
    for path, content in _contents(playbook):
        key: KeyPath = (*path, "template" if content.template is not None else "text")
        for problem in check_content(renderer, content, unavailable=unavailable):
            yield Finding(key, marks.key(key), problem)


def _name_position(path: Path) -> Position:
    try:
        _data, marks, _dups = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlError):
        return Position(1, 1)
    return marks.key(("name",))


def require(result: LoadResult) -> dict[str, Playbook]:
    """The playbooks, or :class:`PlaybookLoadError` with every error (for ``serve``)."""
    if result.errors:
        raise PlaybookLoadError(result.errors)
    return result.playbooks
