"""The fake corp's customer and group transfers (离职继承 / 在职继承).

A customer handed over (``transfer_customer``) waits (status 2) until its takeover time, 24
hours after the call, as on the platform; at that moment it is settled: 1 (the successor
now follows the customer, the handover member no longer does), 4 when the successor already
has as many customers as their limit (:meth:`FakeCorp.set_customer_limit`), or 3 when the
customer refused in the meantime (:meth:`FakeCorp.refuse_transfer`, which settles at once,
like the customer's own click). :meth:`FakeCorp.complete_transfers` brings every takeover
time forward to now. Settling happens before every request the fake serves, so
``externalcontact/get``, ``externalcontact/list`` and ``transfer_result`` always agree.

在职继承 allows each customer two transfers in 90 days (the platform's rule); a third
gets the per-customer errcode :data:`ONJOB_LIMIT` (the platform documents the rule, not the
code: the fake's choice). A customer already waiting gets 40100
(此用户的外部联系人已经在转移流程中).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tests.support.fake_wecom.models import Follow, epoch

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

TAKEOVER_DELAY = timedelta(hours=24)
ONJOB_WINDOW = timedelta(days=90)
ONJOB_PER_WINDOW = 2
DONE, WAITING, REFUSED, LIMIT_REACHED, NO_RECORD = 1, 2, 3, 4, 5
IN_TRANSFER = 40100
ONJOB_LIMIT = 40129


@dataclass
class CustomerTransfer:
    handover: str
    takeover: str
    external_userid: str
    resigned: bool
    started_at: datetime
    takeover_time: datetime
    status: int = WAITING
    refused: bool = False


@dataclass
class TransferBook:
    transfers: list[CustomerTransfer] = field(default_factory=list)
    #: Successor userid -> how many customers they may have (absent: no limit).
    limits: dict[str, int] = field(default_factory=dict)
    page_size: int = 1000

    def waiting(self, external_userid: str) -> CustomerTransfer | None:
        for record in self.transfers:
            if record.external_userid == external_userid and record.status == WAITING:
                return record
        return None

    def onjob_count(self, external_userid: str, now: datetime) -> int:
        return sum(
            1
            for r in self.transfers
            if r.external_userid == external_userid
            and not r.resigned
            and r.started_at > now - ONJOB_WINDOW
        )

    def of_pair(self, handover: str, takeover: str, resigned: bool) -> list[CustomerTransfer]:
        return [
            r
            for r in self.transfers
            if (r.handover, r.takeover, r.resigned) == (handover, takeover, resigned)
        ]


def settle(corp: FakeCorp) -> None:
    """Decide every waiting transfer whose time has come (or that the customer refused)."""
    now = corp.now()
    for record in corp.transfers.transfers:
        if record.status != WAITING:
            continue
        if record.refused:
            record.status, record.takeover_time = REFUSED, now
            continue
        if record.takeover_time > now:
            continue
        limit = corp.transfers.limits.get(record.takeover)
        if limit is not None and _customers_of(corp, record.takeover) >= limit:
            record.status = LIMIT_REACHED
            continue
        _move_follow(corp, record)
        record.status = DONE


def _customers_of(corp: FakeCorp, userid: str) -> int:
    return sum(1 for c in corp.customers.values() if userid in c.follows)


def _move_follow(corp: FakeCorp, record: CustomerTransfer) -> None:
    customer = corp.customers.get(record.external_userid)
    if customer is None:
        return
    old = customer.follows.pop(record.handover, None)
    if record.takeover in customer.follows:
        return
    customer.follows[record.takeover] = Follow(
        record.takeover,
        epoch(record.takeover_time),
        old.remark if old else "",
        old.description if old else "",
        list(old.tag_ids) if old else [],
        old.state if old else None,
        old.add_way if old else 0,
        record.takeover,
    )
