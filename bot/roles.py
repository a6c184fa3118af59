"""What one ``scrm serve`` process runs: callbacks (``web``), background work (``worker``) or
both (``all``, the default), and the combinations that cannot work.

Any number of each may share one PostgreSQL database; the database is the only coordinator
(row locks, unique keys, ``SKIP LOCKED``), so no process is special. A ``web`` process only
stores callbacks in the inbox and answers; the processor, the engine, the scheduler, the
sender and the collectors run in ``worker`` (or ``all``) processes.
"""

from __future__ import annotations

from enum import StrEnum

from bot.config import Config
from store.db import is_sqlite, sqlite_path


class Role(StrEnum):
    ALL = "all"
    WEB = "web"
    WORKER = "worker"

    @property
    def takes_callbacks(self) -> bool:
        return self is not Role.WORKER

    @property
    def runs_work(self) -> bool:
        return self is not Role.WEB

    @property
    def meaning(self) -> str:
        return {
            Role.ALL: "callbacks and background work",
            Role.WEB: "callbacks only",
            Role.WORKER: "background work only",
        }[self]


class RoleError(Exception):
    """This role cannot work with this configuration; the message says why and what to do."""


def has_endpoints(config: Config) -> bool:
    return bool(config.wecom.apps or config.wecom.aibots or config.mp)


def check_role(role: Role, config: Config) -> list[str]:
    """Refuse a combination that can never work (:class:`RoleError`); return the notes the
    start-up summary should carry about what this role leaves to other processes."""
    url = config.database_url
    if role is not Role.ALL and is_sqlite(url) and sqlite_path(url) is None:
        raise RoleError(
            f"--role {role} needs a database other processes can open, and an in-memory"
            " SQLite database is private to this process: use a SQLite file or PostgreSQL,"
            " or run --role all"
        )
    if role is Role.WEB and not has_endpoints(config):
        raise RoleError(
            "--role web with no wecom.apps, wecom.aibots or mp configured: there is no"
            " callback endpoint to serve; configure them, or run --role worker"
        )
    notes: list[str] = []
    if role is Role.WEB:
        notes.append(
            "no worker in this process: callbacks are stored in the inbox and answered, and"
            " wait there until a `scrm serve --role worker` (or --role all) on the same"
            " database processes them; without one no playbook runs and nothing is sent"
        )
        if is_sqlite(url):
            path = sqlite_path(url)
            notes.append(f"SQLite: the worker must run on this machine, on the same file {path}")
    if role is Role.WORKER:
        notes.append(
            "no callback endpoints in this process (only /healthz and /readyz): the platforms"
            " must reach a `scrm serve --role web` (or --role all) on the same database"
        )
    if role.takes_callbacks and not has_endpoints(config):
        notes.append("no wecom.apps, wecom.aibots or mp configured: no callback is accepted")
    return notes
