"""Load campaign files into :class:`Campaign` models, with the playbooks' located errors.

The machinery is the playbook loader's (:mod:`sop.playbooks.yaml_marks` for positions,
:mod:`sop.playbooks.diagnostics` for pydantic errors rewritten with "did you mean",
:class:`PlaybookError` for ``file:line:column: key->path: message``, and
:func:`sop.rendering.check_content` for templates); only what a campaign is differs. A mass
message has one content for every recipient of a staff member, so its templates may not use
``customer``: that is an error at load, not a surprise at send time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sop.campaigns.model import Campaign, campaign_errors, content_paths
from sop.playbooks.diagnostics import Finding, describe, field_keys
from sop.playbooks.errors import PlaybookError, PlaybookLoadError, format_path
from sop.playbooks.loader import yaml_files
from sop.playbooks.model import KeyPath
from sop.playbooks.yaml_marks import Marks, YamlError, load_yaml
from sop.rendering.check import check_content
from sop.rendering.renderer import Renderer

_NO_EVENT = "a campaign is not triggered by an event"
_NO_GROUP = "only group_mass campaigns are about a group, and they have one content for all"
_ONE_CONTENT = (
    "a mass message has one content for all recipients of a staff member: use owner, now"
    " and playbook (the campaign's name), or choose channel staff_task for a personal script"
)


@dataclass
class CampaignLoad:
    """The valid campaigns by name, the file each came from, and every error, sorted."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    errors: list[PlaybookError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_campaigns(
    paths: Iterable[str | Path],
    *,
    templates: str | Path | None = None,
    renderer: Renderer | None = None,
) -> CampaignLoad:
    """Load campaign files and folders; ``templates`` is the template library folder."""
    renderer = renderer or Renderer(templates)
    result = CampaignLoad()
    for path in yaml_files(paths, result.errors):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(PlaybookError(str(path), 0, 0, "", f"cannot read: {exc}"))
            continue
        campaign, errors, marks = parse_campaign(text, str(path), renderer)
        result.errors.extend(errors)
        if campaign is None:
            continue
        first = result.sources.get(campaign.name)
        if first is not None:
            where = marks.key(("name",))
            result.errors.append(
                PlaybookError(
                    str(path),
                    where.line,
                    where.column,
                    "name",
                    f"campaign name {campaign.name!r} is already used by {first}",
                )
            )
            continue
        result.campaigns[campaign.name] = campaign
        result.sources[campaign.name] = path
    result.errors.sort()
    return result


def parse_campaign(
    text: str, file: str, renderer: Renderer
) -> tuple[Campaign | None, list[PlaybookError], Marks]:
    """One campaign from YAML text; None when there is any error."""
    try:
        data, marks, duplicates = load_yaml(text)
    except YamlError as exc:
        error = PlaybookError(file, exc.where.line, exc.where.column, "", exc.message)
        return None, [error], Marks()
    findings = [Finding(d.path, d.where, d.message) for d in duplicates]
    campaign: Campaign | None = None
    if not isinstance(data, dict):
        keys = ", ".join(field_keys(Campaign))
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        findings.append(Finding((), marks.value(()), f"expected a mapping ({keys}), got {got}"))
    else:
        try:
            campaign = Campaign.model_validate(data)
        except ValidationError as exc:
            findings.extend(describe(exc, data, marks, Campaign))
        else:
            findings.extend(_rules(campaign, marks))
            findings.extend(_templates(campaign, marks, renderer))
    errors = sorted(
        PlaybookError(
            file, f.where.line, f.where.column, format_path(f.path, marks.sequences), f.message
        )
        for f in findings
    )
    return (None if errors else campaign), errors, marks


def _rules(campaign: Campaign, marks: Marks) -> Iterator[Finding]:
    for path, message in campaign_errors(campaign):
        where = marks.value(path) if path in marks.values else marks.key(path)
        yield Finding(path, where, message)


def unavailable_names(campaign: Campaign) -> dict[str, str]:
    """Context names a campaign's templates may not use, with the reason."""
    missing = {"event": _NO_EVENT, "group": _NO_GROUP}
    if campaign.is_mass:
        missing["customer"] = _ONE_CONTENT
    return missing


def _templates(campaign: Campaign, marks: Marks, renderer: Renderer) -> Iterator[Finding]:
    unavailable = unavailable_names(campaign)
    for path, content in content_paths(campaign):
        key: KeyPath = (*path, "template" if content.template is not None else "text")
        for problem in check_content(renderer, content, unavailable=unavailable):
            yield Finding(key, marks.key(key), problem)


def require(result: CampaignLoad) -> dict[str, Campaign]:
    """The campaigns, or :class:`PlaybookLoadError` with every error."""
    if result.errors:
        raise PlaybookLoadError(result.errors)
    return result.campaigns
