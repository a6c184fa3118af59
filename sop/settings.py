"""The engine's settings, as the ``sop:`` section of the configuration holds them.

Defined here, not in ``bot.config``, because ``sop`` must not import ``bot``; the bot's
configuration embeds this model and hands it to the engine.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from sop.audience.model import Duration, Names, Strict


class OptOut(Strict):
    """Words that opt a customer out of (or back into) every marketing playbook and campaign.

    A message equal to one of them (trimmed, case-insensitive) counts; a sentence that merely
    contains "stop" does not.
    """

    keywords: Names = ["退订", "TD", "STOP"]
    opt_in_keywords: Names = ["订阅", "START"]
    confirmation: str = "您已退订，将不再收到营销消息。回复“订阅”可重新接收。"
    opt_in_confirmation: str = "您已重新订阅，感谢关注！"


class FrequencyCap(Strict):
    """At most ``messages`` marketing messages per customer in any ``per`` window, counted
    over every playbook and campaign together."""

    messages: int = Field(default=2, ge=1)
    per: Duration = timedelta(days=1)


class SopSettings(Strict):
    #: Playbook files or folders of ``*.yaml`` files, relative to the working directory.
    playbooks: list[str] = ["playbooks"]
    #: The message template library (话术库) that ``template:`` names resolve in.
    templates: str = "templates"
    tick_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    opt_out: OptOut = OptOut()
    frequency_cap: FrequencyCap | None = FrequencyCap()
