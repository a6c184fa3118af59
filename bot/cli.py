"""The ``scrm`` command line. Heavy imports happen inside commands, so ``scrm --help`` is quick."""

from __future__ import annotations

from pathlib import Path

import click

from bot.console import (
    campaign,
    context,
    database,
    demo,
    inbox,
    outbox,
    playbook,
    server,
    simulate,
    staff,
    timeline,
)

DEFAULT_CONFIG = "config.yaml"


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="SCRM_CONFIG",
    help=f"Configuration file (default: ./{DEFAULT_CONFIG} when present, else built-in defaults).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """SCRM operations toolkit for WeCom and WeChat."""
    if config_path is None and Path(DEFAULT_CONFIG).is_file():
        config_path = DEFAULT_CONFIG
    ctx.obj = context.CliState(config_path)


main.add_command(server.serve)
main.add_command(database.db)
main.add_command(inbox.inbox)
main.add_command(outbox.outbox)
main.add_command(simulate.simulate)
main.add_command(timeline.customers)
main.add_command(timeline.timeline)
main.add_command(demo.demo)
main.add_command(playbook.playbook)
main.add_command(campaign.campaign)
main.add_command(staff.staff)
main.add_command(staff.report)


if __name__ == "__main__":
    main()
