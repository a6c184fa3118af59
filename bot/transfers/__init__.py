"""The transfer poller: makes the platform calls of recorded transfer jobs and follows them
until every customer and group is final."""

from bot.transfers.poller import PollReport, TransferPoller

__all__ = ["PollReport", "TransferPoller"]
