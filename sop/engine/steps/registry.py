"""Which executor runs which step action, and which decides which timeout.

A new step type is one file in this package, one line here and its test file.
"""

from __future__ import annotations

from types import MappingProxyType

from sop.engine.steps.base import StepExecutor
from sop.engine.steps.condition import condition
from sop.engine.steps.goto import goto
from sop.engine.steps.nudge import nudge, task_timeout
from sop.engine.steps.send import send
from sop.engine.steps.stop import stop
from sop.engine.steps.tag import tag, untag
from sop.engine.steps.wait_for_reply import reply_timeout, wait_for_reply
from sop.playbooks.model import ACTIONS
from store.models import AgendaKind

#: Step action (``Step.action``) -> executor.
STEPS: MappingProxyType[str, StepExecutor] = MappingProxyType(
    {
        "send": send,
        "nudge": nudge,
        "tag": tag,
        "untag": untag,
        "wait_for_reply": wait_for_reply,
        "if": condition,
        "goto": goto,
        "stop": stop,
    }
)

#: Agenda rows that decide a wait rather than run a step.
TIMEOUTS: MappingProxyType[AgendaKind, StepExecutor] = MappingProxyType(
    {
        AgendaKind.REPLY_TIMEOUT: reply_timeout,
        AgendaKind.TASK_TIMEOUT: task_timeout,
    }
)

#: What a timeout row waits on: it runs only while the enrollment still waits on that.
WAITS_ON = {AgendaKind.REPLY_TIMEOUT: "reply", AgendaKind.TASK_TIMEOUT: "task"}

_missing = set(ACTIONS) - set(STEPS)
if _missing:  # pragma: no cover - a new action in the model without its executor
    raise ImportError(f"step actions without an executor: {sorted(_missing)}")
