"""When each outbox row of a run falls due: the throttle's even spacing, outside quiet hours.

The run row keeps the next free slot (``next_slot_at``), so the spacing carries on across
batches, restarts and a resume. A slot inside quiet hours moves to their end and the spacing
goes on from there: rows never bunch up at the end of the night.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sop.campaigns.model import Campaign
from sop.playbooks.timing import leave_quiet_hours
from store.models import CampaignRun


class Slots:
    def __init__(self, run: CampaignRun, campaign: Campaign, zone: ZoneInfo) -> None:
        self.run = run
        self.zone = zone
        self.quiet = campaign.schedule.quiet_hours
        self.interval = campaign.throttle.interval if campaign.throttle is not None else None

    def restart(self, at: datetime) -> None:
        """Start spacing again from ``at`` (a resume: held rows go out from now on)."""
        self.run.next_slot_at = at

    def take(self) -> datetime:
        """The due time of the next row."""
        slot = self.run.next_slot_at
        if self.quiet is not None:
            slot = leave_quiet_hours(slot, self.zone, self.quiet)
        self.run.next_slot_at = slot + self.interval if self.interval is not None else slot
        self.run.rows += 1
        return slot
