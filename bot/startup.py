"""The start-up summary: what this ``scrm serve`` process is, in a few lines an operator reads
once in the log and can act on (the URLs to enter in the admin consoles, what runs here and
what is left to other processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import Config
from bot.roles import Role
from store.db import normalize_url, sqlite_path


@dataclass(frozen=True)
class Facts:
    """What the summary needs, gathered by the composition root once everything runs."""

    config: Config
    role: Role
    address: str  # where this process listens, http://host:port
    loops: list[str]
    playbooks: list[str] = field(default_factory=list)  # "onboarding v3"
    campaigns: list[str] = field(default_factory=list)  # "weekly_vip (next Mon 10:00)"
    revision: str | None = None
    notes: list[str] = field(default_factory=list)
    now: datetime | None = None


def endpoint_urls(config: Config, base: str) -> list[str]:
    """One ``kind name: URL`` per configured app, AI bot and Official Account."""
    base = base.rstrip("/")
    return [
        *(f"wecom app {app.name}: {base}/wecom/callback/{app.name}" for app in config.wecom.apps),
        *(f"AI bot {bot.name}: {base}/wecom/aibot/{bot.name}" for bot in config.wecom.aibots),
        *(f"Official Account {mp.name}: {base}/mp/callback/{mp.name}" for mp in config.mp),
    ]


def database_shown(url: str) -> str:
    """The database URL with any password hidden (a SQLite file by its path)."""
    path = sqlite_path(url)
    if path is not None:
        return f"SQLite {path.resolve()}"
    return normalize_url(url).render_as_string(hide_password=True)


def summary_lines(facts: Facts) -> list[str]:
    config, role = facts.config, facts.role
    zone = ZoneInfo(config.timezone)
    lines = [f"scrm serve: role {role} ({role.meaning})"]
    lines.append(f"listening on {facts.address} (health /healthz, readiness /readyz)")
    if role.takes_callbacks:
        base = config.server.public_url or facts.address
        urls = endpoint_urls(config, base)
        lines += [f"callback endpoint: {url}" for url in urls]
    if role.runs_work:
        lines.append(f"loops: {', '.join(facts.loops) or 'none'}")
        lines.append(f"playbooks: {', '.join(facts.playbooks) or 'none loaded'}")
        lines.append(f"cron campaigns: {', '.join(facts.campaigns) or 'none'}")
    revision = f" (schema revision {facts.revision})" if facts.revision else ""
    lines.append(f"database: {database_shown(config.database_url)}{revision}")
    clock = ""
    if facts.now is not None:
        clock = f", local time now {facts.now.astimezone(zone):%Y-%m-%d %H:%M %z}"
    lines.append(f"time zone: {config.timezone}{clock}")
    lines.append(
        f"on SIGTERM or SIGINT: stop taking work and exit within"
        f" {config.server.shutdown_seconds:g} s (server.shutdown_seconds)"
    )
    lines += [f"note: {note}" for note in facts.notes]
    return lines
