"""Every refresh kind: a new kind is one sync module and one line here."""

from __future__ import annotations

from bot.processing.sync import customers, groups, staff, tags
from bot.processing.sync.base import Sync

SYNCS: dict[str, Sync] = {
    sync.kind: sync for sync in (customers.SYNC, groups.SYNC, staff.SYNC, tags.SYNC)
}
