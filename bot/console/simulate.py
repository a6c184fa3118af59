"""``scrm simulate``: send a customer journey's signed callbacks to a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.console.context import config_of, run

if TYPE_CHECKING:
    from bot.journey import Step


async def send_journey(base_url: str, steps: list[Step]) -> list[tuple[str, int, str]]:
    """POST each step to ``base_url``; returns (label, HTTP status, body) per step."""
    import aiohttp

    results: list[tuple[str, int, str]] = []
    async with aiohttp.ClientSession() as http:
        for step in steps:
            request = step.request
            async with http.request(
                request.method, request.url(base_url), data=request.body, headers=request.headers
            ) as response:
                results.append((step.label, response.status, await response.text()))
    return results


@click.command()
@click.option(
    "--url", default=None, help="The server's base URL (default: from server.host/port)."
)
@click.pass_context
def simulate(ctx: click.Context, url: str | None) -> None:
    """Send correctly signed sample callbacks (customer added by channel QR, group join, messages).

    For trying the toolkit without a WeCom account: run `scrm serve` in one terminal and this
    in another, then look at `scrm customers` and `scrm inbox ls`.
    """
    from bot.journey import journey
    from sop.clock import SystemClock

    config = config_of(ctx)
    base = url or f"http://{config.server.host}:{config.server.port}"
    steps = journey(config, SystemClock().now())
    if not steps:
        raise click.ClickException("the configuration has no apps, AI bots or Official Accounts")
    try:
        results = run(send_journey(base, steps))
    except OSError as exc:
        raise click.ClickException(
            f"cannot reach {base}: {exc}; is `scrm serve` running?"
        ) from None
    failed = 0
    for label, status, body in results:
        mark = "ok " if status == 200 else "ERR"
        failed += status != 200
        click.echo(f"{mark} {status} {label}" + (f": {body}" if status != 200 else ""))
    if failed:
        raise click.ClickException(f"{failed} callback(s) refused")
