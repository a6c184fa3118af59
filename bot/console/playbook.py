"""``scrm playbook``: check the playbooks before the engine runs them.

``check`` is what an operator runs after editing a YAML file (and what CI can run): every
error of every file, one a line, located at file:line:column, and a non-zero exit status
when there is any, so a broken playbook never reaches ``serve``.
"""

from __future__ import annotations

import click

from bot.console.context import config_of


@click.group()
def playbook() -> None:
    """SOP playbooks: check them."""


@playbook.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--templates",
    type=click.Path(file_okay=False),
    help="Template library folder (default: the config's sop.templates).",
)
@click.pass_context
def check(ctx: click.Context, paths: tuple[str, ...], templates: str | None) -> None:
    """Validate playbook files or folders (default: the config's sop.playbooks)."""
    from sop.playbooks.loader import load_playbooks

    settings = config_of(ctx).sop
    result = load_playbooks(paths or settings.playbooks, templates=templates or settings.templates)
    for error in result.errors:
        click.echo(str(error))
    if result.errors:
        files = len({error.file for error in result.errors})
        noun = "error" if len(result.errors) == 1 else "errors"
        click.echo(f"{len(result.errors)} {noun} in {files} file(s)")
        ctx.exit(1)
    count = len(result.playbooks)
    click.echo(f"{count} playbook{'' if count == 1 else 's'} OK")


@playbook.command("preview")
@click.argument("name")
@click.option(
    "--customer", "customer_ref", help="A customer id or external userid to preview for."
)
@click.option("--sample", is_flag=True, help="Preview for a made-up customer in the audience.")
@click.option("--days", default=14, show_default=True, help="How many days to simulate.")
@click.option(
    "--reply-after",
    "replies",
    multiple=True,
    metavar="DURATION",
    help="The customer writes this long after enrolling (e.g. 2h, 1d); repeatable.",
)
@click.option("--start", help="Local start time 'YYYY-MM-DD HH:MM' (default: now).")
@click.pass_context
def preview(  # noqa: PLR0913, PLR0917 - one parameter per option
    ctx: click.Context,
    name: str,
    customer_ref: str | None,
    sample: bool,
    days: int,
    replies: tuple[str, ...],
    start: str | None,
) -> None:
    """Run playbook NAME for one customer over simulated days and print what would happen.

    Sends nothing and writes nothing: the real engine runs in a scratch database.
    """
    from bot.console.preview_view import run_preview_command

    if (customer_ref is None) == (not sample):
        raise click.UsageError("give exactly one of --customer ID or --sample")
    run_preview_command(
        config_of(ctx),
        name,
        customer_ref=customer_ref,
        days=days,
        replies=replies,
        start=start,
    )
