"""Campaign benchmark: an audience planned, rendered and enqueued, against its floor.

Run ``python -m bench.campaign`` (a smoke run, under a minute) or ``python -m bench.campaign
--customers 100000`` (the issue's size). For each database (a SQLite file under a temporary
folder, and PostgreSQL when it answers at 127.0.0.1:5432, in a scratch database created and
dropped here) and each audience size (10,000 and ``--customers``; only ``--customers`` when
smaller), three fresh child processes (:mod:`bench.campaign_child`):

1. seed the customers (all tagged ``VIP``, one in 50 opted out) with raw bulk inserts;
2. plan the mass campaign to them (streamed, writes nothing), then ``start`` it: create the
   run and fan it out in batches (render one content per owner and batch, insert the
   recipient rows, mass outbox rows and frequency-cap ledger);
3. the floor: the same recipient, outbox and ledger rows inserted again with bare Core
   executemany INSERTs, one transaction per batch.

It prints seconds, rows per second and the peak RSS of each child, the ratio fan-out rows/s
over floor rows/s (goal: at least 0.5), and the fan-out's peak RSS at each size: memory must
not grow with the audience (batches are streamed, nothing is held across them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.campaign_child import main as child_main
from bench.common import postgres_available, run, scratch_postgres

SMALL = 10_000
GOAL = 0.5


def child(kind: str, url: str, customers: int, batch: int) -> dict[str, Any]:
    """Run one job of :mod:`bench.campaign_child` in a fresh process; its JSON answer."""
    command = [
        sys.executable, "-m", "bench.campaign", "--child", kind, "--url", url,
        "--customers", str(customers), "--batch", str(batch),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench child {kind} failed ({done.returncode}):\n{done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@contextmanager
def database(backend: str, folder: Path, customers: int) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'campaign_{customers}.db'}"
    else:
        with scratch_postgres("bench_campaign") as url:
            yield url


def measure(backend: str, folder: Path, customers: int, batch: int) -> dict[str, Any]:
    with database(backend, folder, customers) as url:
        seeded = child("seed", url, customers, batch)
        fanned = child("fanout", url, customers, batch)
        floor = child("floor", url, customers, batch)
    rate = fanned["rows"] / fanned["seconds"]
    floor_rate = floor["rows"] / floor["seconds"]
    with_plan = fanned["rows"] / (fanned["seconds"] + fanned["plan_seconds"]) / floor_rate
    lines = [
        f"{backend:<8} {customers:>7} customers: seed {seeded['seconds']:6.1f} s;"
        f" plan {fanned['plan_seconds']:6.2f} s"
        f" ({fanned['included']} of {fanned['matched']} included)",
        f"{'':<8} start+fan-out {fanned['seconds']:7.2f} s, {fanned['rows']} rows"
        f" ({fanned['recipients']} recipients + {fanned['outbox']} outbox"
        f" + {fanned['touches']} ledger)"
        f" = {rate:8.0f} rows/s, peak RSS {fanned['peak_rss_mib']:6.1f} MiB",
        f"{'':<8} floor         {floor['seconds']:7.2f} s, {floor['rows']} rows"
        f" = {floor_rate:8.0f} rows/s, peak RSS {floor['peak_rss_mib']:6.1f} MiB",
        f"{'':<8} ratio fan-out / floor {rate / floor_rate:5.2f} (goal >= {GOAL});"
        f" with the plan {with_plan:5.2f}",
    ]
    print("\n".join(lines), flush=True)
    return {"rss": fanned["peak_rss_mib"], "ratio": rate / floor_rate}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__)
    parser.add_argument("--customers", type=int, default=4_000, help="the largest audience")
    parser.add_argument("--batch", type=int, default=500, help="recipients per fan-out batch")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", choices=["seed", "fanout", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run(child_main(args.child, args.url, args.customers, args.batch))
        return
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and (why := postgres_available()) is not None:
        print(f"PostgreSQL skipped: {why}")
        backends.remove("postgres")
    sizes = [SMALL, args.customers] if args.customers > SMALL else [args.customers]
    with tempfile.TemporaryDirectory(prefix="bench_campaign_") as folder:
        for backend in backends:
            found = [measure(backend, Path(folder), size, args.batch) for size in sizes]
            if len(found) == 2:
                growth = found[1]["rss"] / found[0]["rss"]
                print(
                    f"{backend:<8} fan-out peak RSS {found[0]['rss']:.1f} MiB at {sizes[0]},"
                    f" {found[1]['rss']:.1f} MiB at {sizes[1]}: x{growth:.2f}\n",
                    flush=True,
                )


if __name__ == "__main__":
    main()
