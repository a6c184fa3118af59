"""Hot reload of cron campaigns: an operator adds, edits or removes a campaign file (or a
template) and the running server's campaign jobs follow within seconds, without a restart.

A reload is all or nothing: if any campaign file has errors they are logged (``file:line:col``
as the loader gives them) and the current jobs run on; otherwise the scheduler's campaign jobs
become exactly the valid cron campaigns (an unchanged cron keeps its job and next run).
"""

from __future__ import annotations

import logging

from bot.file_watch import FileWatch
from sop.campaigns.cron import CampaignScheduler, CampaignStarter, load_cron_campaigns

log = logging.getLogger(__name__)


class CampaignReloader(FileWatch):
    """Re-syncs ``scheduler``'s campaign jobs when the campaign files or the templates change;
    ``starter`` (its settings name the folders) starts the runs of the reloaded campaigns."""

    what = "campaigns"
    kept = "the current cron campaign jobs"

    def __init__(
        self,
        *,
        starter: CampaignStarter,
        scheduler: CampaignScheduler,
        every_seconds: float = 2.0,
    ) -> None:
        settings = starter.settings
        super().__init__([*settings.campaigns, settings.templates], every_seconds)
        self._starter = starter
        self._scheduler = scheduler

    async def reload(self) -> bool:
        loaded = load_cron_campaigns(self._starter)
        if loaded.errors:
            return self.refuse(loaded.errors)
        self.errors = []
        self._scheduler.sync_campaign_jobs(loaded.jobs)
        log.info("cron campaigns reloaded: %s", ", ".join(loaded.names) or "none")
        return True
