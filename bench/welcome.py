"""Welcome benchmark: from a customer's add callback to the welcome message sent, under load.

Run ``python -m bench.welcome`` (options: ``--help``). The welcome message is the customer's
first touch, and WeCom's welcome code is good for 20 seconds: the path from an
``add_external_contact`` callback through the inbox, the onboarding playbook's first step and
the sender to ``send_welcome_msg`` must not queue behind other work. So this starts real
``scrm serve`` processes (one on SQLite; one and three on PostgreSQL, in a scratch database)
against the fake WeCom in this process, sends a burst of ``--burst`` other callbacks (staff
writing to the app, customers joining groups, their details changing) as fast as the servers
take them, with ``--adds`` customers added through the ``expo2026`` channel code spread
evenly through the burst, and prints p50/p99/max of callback-to-welcome, and how many
welcomes missed their window. Goal: p99 under 5 s on one process and on three.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.common import postgres_available, run, scratch_postgres
from bench.engine_timing import percentile
from bot.callback.samples import (
    contact_changed_xml,
    customer_added_xml,
    group_join_xml,
    staff_text_xml,
)
from store.db import create_engine
from store.migrate import upgrade
from tests.support.cluster import APP, Platform, cluster, write_config
from tests.support.fake_wecom import FakeWecom, running_fake_wecom

STAFF = 20
GROUPS = 30
PLAYBOOK = """\
name: onboarding
marketing: false
reentry: never
trigger: {event: customer_added, channel: [expo2026]}
steps:
  - id: welcome
    send: {channel: welcome, template: onboarding_welcome.j2}
  - id: first_call
    nudge: {title: 新客户首次跟进, script: {template: onboarding_follow_up.j2}, due: 4h}
"""


@dataclass(frozen=True)
class Result:
    label: str
    adds: int
    burst: int
    seconds: float
    latencies: list[float]

    @property
    def missed(self) -> int:
        return self.adds - len(self.latencies)

    def line(self) -> str:
        if not self.latencies:
            return f"{self.label:<24} no welcome sent ({self.adds} adds)"
        return (
            f"{self.label:<24} {self.burst} callbacks + {self.adds} adds in {self.seconds:.1f} s; "
            f"callback -> welcome p50 {percentile(self.latencies, 0.5):.2f} s, "
            f"p99 {percentile(self.latencies, 0.99):.2f} s, max {max(self.latencies):.2f} s, "
            f"{self.missed} missed the 20 s window"
        )


def staff_of(n: int) -> str:
    return f"staff{n % STAFF:02d}"


def customer_of(n: int) -> str:
    return f"wmWelcome{n:06d}AAAAAAAAAA"


def other_callbacks(fake: FakeWecom, count: int, rng: random.Random) -> list[str]:
    now = int(time.time())
    callbacks = []
    for m in range(count):
        kind = m % 4
        if kind < 2:
            callbacks.append(
                staff_text_xml(
                    corp_id=fake.corp_id,
                    user_id=staff_of(rng.randrange(STAFF)),
                    agent_id=APP.agent_id or 0,
                    content=f"第{m}条",
                    msg_id=50_000_000 + m,
                    create_time=now,
                )
            )
        elif kind == 2:
            callbacks.append(
                group_join_xml(
                    corp_id=fake.corp_id,
                    chat_id=f"wrWelcomeGroup{m % GROUPS:03d}",
                    member_ids=[f"wmMember{m:07d}"],
                    create_time=now,
                )
            )
        else:
            callbacks.append(
                contact_changed_xml(
                    corp_id=fake.corp_id,
                    change_type="edit_external_contact",
                    user_id=staff_of(m),
                    external_user_id=f"wmOther{m % 500:05d}AAAAAAAAAA",
                    create_time=now,
                )
            )
    return callbacks


async def measure(
    label: str, database_url: str, processes: int, *, adds: int, burst: int, folder: Path
) -> Result:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    playbooks = folder / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "onboarding.yaml").write_text(PLAYBOOK, encoding="utf-8")
    rng = random.Random(3)
    async with running_fake_wecom() as fake, aiohttp.ClientSession() as http:
        for n in range(STAFF):
            fake.add_staff(staff_of(n), f"员工{n}")
        for g in range(GROUPS):
            fake.add_group(f"wrWelcomeGroup{g:03d}", f"群{g}", owner=staff_of(g))
        for n in range(adds):
            fake.add_customer(customer_of(n), f"客户{n}", follow=[staff_of(n)])
        config = write_config(
            folder,
            database_url=database_url,
            corp_id=fake.corp_id,
            api_base_url=fake.base_url,
            playbooks=playbooks,
        )
        others = other_callbacks(fake, burst, rng)
        sent_at: dict[str, datetime] = {}
        with cluster(folder, config, ["all"] * processes) as running:
            await running.start(http)
            platform = Platform(running, http, fake.corp_id, rng=rng, duplicate_share=0)

            async def add(n: int) -> None:
                customer = customer_of(n)
                code = fake.add_welcome_code(customer, staff_of(n))
                sent_at[customer] = datetime.now(UTC)
                await platform.send(
                    customer_added_xml(
                        corp_id=fake.corp_id,
                        user_id=staff_of(n),
                        external_user_id=customer,
                        state="expo2026",
                        welcome_code=code,
                        create_time=int(time.time()),
                    )
                )

            started = time.perf_counter()
            every = max(1, burst // max(1, adds))
            jobs: list[asyncio.Future[object]] = []
            for m, callback in enumerate(others):
                jobs.append(asyncio.ensure_future(platform.send(callback)))
                if m % every == 0 and m // every < adds:
                    jobs.append(asyncio.ensure_future(add(m // every)))
                if m % 64 == 0:
                    await asyncio.sleep(0)
            await asyncio.gather(*jobs)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(_welcomed(fake)) < len(sent_at):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            seconds = time.perf_counter() - started
            await running.stop()
        welcomed = _welcomed(fake)
        latencies = [
            (welcomed[customer] - sent).total_seconds()
            for customer, sent in sent_at.items()
            if customer in welcomed
        ]
    return Result(label, len(sent_at), burst, seconds, latencies)


def _welcomed(fake: FakeWecom) -> dict[str, datetime]:
    return {
        d.to: d.at
        for d in fake.outbound.deliveries
        if d.api == "externalcontact/send_welcome_msg" and not d.dropped
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    args = parser.parse_args(argv)
    print(f"{args.burst} other callbacks with {args.adds} customers added among them")
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory(prefix="scrm-welcome-") as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            result = run(
                measure(
                    "sqlite, 1 process",
                    url,
                    1,
                    adds=args.adds,
                    burst=args.burst,
                    folder=Path(folder),
                )
            )
            print(result.line(), flush=True)
    if args.backend in ("postgres", "all"):
        problem = postgres_available()
        if problem is not None:
            print(f"postgres skipped: not reachable at 127.0.0.1:5432 ({problem})")
            return
        for processes in (1, 3):
            with (
                scratch_postgres("scrm_bench_welcome") as url,
                tempfile.TemporaryDirectory(prefix="scrm-welcome-") as folder,
            ):
                label = f"postgres, {processes} process{'es' if processes > 1 else ''}"
                result = run(
                    measure(
                        label,
                        url,
                        processes,
                        adds=args.adds,
                        burst=args.burst,
                        folder=Path(folder),
                    )
                )
                print(result.line(), flush=True)


if __name__ == "__main__":
    main()
