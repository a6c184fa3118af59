"""One line of plain words for an audience, for ``campaign plan``, previews and traces.

The operator should recognise their own YAML in it: names are quoted as written, conditions
appear in the order of the model, and an empty audience says "every customer".
"""

from __future__ import annotations

import json
from datetime import timedelta

from sop.audience.model import Audience, GroupCondition, OwnerCondition, TagCondition


def describe(audience: Audience) -> str:
    """``tagged VIP; owned by zhangsan; last interaction more than 30d ago or never``."""
    parts: list[str] = []
    if audience.tags is not None:
        parts.extend(_tags(audience.tags))
    if audience.owner is not None:
        parts.append(_owner(audience.owner))
    if audience.channel:
        parts.append(f"added through channel {_either(audience.channel)}")
    if audience.groups is not None:
        parts.extend(_groups(audience.groups))
    parts.extend(
        f"field {key} = {json.dumps(value, ensure_ascii=False)}"
        for key, value in sorted(audience.fields.items())
    )
    if (last := audience.last_interaction) is not None:
        if last.before is not None:
            parts.append(f"last interaction more than {span(last.before)} ago or never")
        if last.after is not None:
            parts.append(f"last interaction within {span(last.after)}")
    return "; ".join(parts) or "every customer"


def span(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2)`` -> ``1d 2h``: the units operators write."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    units: tuple[tuple[str, int], ...] = (
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    )
    if seconds % 604_800:  # weeks only when exact: 10d reads better than 1w 3d
        units = units[1:]
    words = []
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            words.append(f"{count}{unit}")
    return " ".join(words)


def _tags(condition: TagCondition) -> list[str]:
    parts = []
    if condition.all:
        parts.append(f"tagged {_joined(condition.all, 'and')}")
    if condition.any:
        parts.append(f"tagged {_either(condition.any)}")
    if condition.none:
        parts.append(f"not tagged {_either(condition.none)}")
    return parts


def _owner(condition: OwnerCondition) -> str:
    who = []
    if condition.staff:
        who.append(_either(condition.staff))
    if condition.department:
        word = "department" if len(condition.department) == 1 else "departments"
        who.append(f"staff of {word} {_joined([str(d) for d in condition.department], 'or')}")
    return f"owned by {' or '.join(who)}" if who else "owned by any staff member"


def _groups(condition: GroupCondition) -> list[str]:
    parts = []
    if condition.any:
        parts.append(f"in group {_either(condition.any)}")
    if condition.none:
        parts.append(f"not in group {_either(condition.none)}")
    return parts


def _either(names: list[str]) -> str:
    return _joined(names, "or")


def _joined(names: list[str], word: str) -> str:
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} {word} {names[-1]}"
