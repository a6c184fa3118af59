"""The naive way to run the bench playbook: one APScheduler job per step, for comparison.

What a developer without the engine would write: APScheduler 3 with its
``SQLAlchemyJobStore`` on the same database, each due step a date-triggered job
(:func:`run_step`) whose function makes the step's writes in one transaction (the outbox row
of the ``tag`` or mass ``send`` and the send's marketing touch, the step-run trace, the
enrollment's ``seq`` and ``waiting``: the floor's statements, :mod:`bench.engine_floor`) and
then schedules the next step as a new job (due at once, or the reply timeout two days
later). The job table stands for the agenda: the job that ran is deleted and the next one
inserted, as the engine closes its row and inserts the next. The message is formatted, not
rendered, and no customer context or cap is read: the jobs do less than the engine's steps.

Settings: APScheduler's defaults (a ``BackgroundScheduler``, its pool of 10 worker threads),
except ``misfire_grace_time=None``, which such a developer has to find: by default a job more
than a second late is skipped, and a backlog is nothing but late jobs.

Why it is slow: every pass of the scheduler reads *all* due jobs from the table and unpickles
them, submits them, then deletes them one by one, each in a transaction of its own; a job's
next step is another insert in another transaction (so a crash between the step's writes and
its next job loses or repeats a step: nothing ties them together). Per step that is three
commits and a share of every pass's full read of the backlog, against the engine's one
commit per ``batch`` steps and a claim that reads only what it takes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.engine_floor import BUMP, OUTBOX, REPLY_TIMEOUT, TOUCH, TRACE, writes
from bench.engine_timing import peak_rss_mib
from store.db import normalize_url, sqlite_path

#: The job function's state in this process (APScheduler stores the function by reference).
_STATE: dict[str, Any] = {}
_ENROLLMENT = """
SELECT e.staff_userid, c.id, c.external_userid, c.name
FROM enrollments e JOIN customers c ON c.id = e.customer_id WHERE e.id = $1 {lock}
"""
LAST_STEP = 2


def _engine(url: str) -> Any:
    """A synchronous SQLAlchemy engine on the bench database, as APScheduler 3 needs."""
    from sqlalchemy import create_engine, event

    path = sqlite_path(url)
    if path is None:
        sync = normalize_url(url).set(drivername="postgresql+psycopg")
        return create_engine(sync, pool_size=12)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    return engine


def _sql(sql: str, postgres: bool) -> str:
    sql = sql.replace("{lock}", "FOR UPDATE OF e" if postgres else "")
    return re.sub(r"\$\d+", "%s" if postgres else "?", sql)


def _value(value: Any, postgres: bool) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime) and not postgres:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def run_step(enrollment_id: int, seq: int, index: int, due_at: datetime) -> None:
    """One step of the bench playbook: its writes in one transaction, then its next job."""
    engine, postgres = _STATE["engine"], _STATE["postgres"]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        found = conn.exec_driver_sql(_sql(_ENROLLMENT, postgres), (enrollment_id,)).one()
        row = (None, enrollment_id, seq, index, due_at, *found)
        for sql, args in writes(row, now):
            if sql in (OUTBOX, TOUCH, TRACE, BUMP):  # the agenda's two are the job table's
                values = tuple(_value(v, postgres) for v in args)
                conn.exec_driver_sql(_sql(sql, postgres), values)
    last = index == LAST_STEP
    run_date = now + REPLY_TIMEOUT if last else now
    next_args = (enrollment_id, seq + 1, index if last else index + 1, run_date)
    _add(_STATE["scheduler"], next_args, run_date)
    _STATE["done"]()


def _add(scheduler: Any, args: tuple[Any, ...], run_date: datetime) -> None:
    enrollment_id, seq = args[0], args[1]
    scheduler.add_job(
        run_step,
        "date",
        run_date=run_date,
        args=args,
        id=f"bench:{enrollment_id}:{seq}",
        misfire_grace_time=None,
        coalesce=False,
    )


def measure(url: str, *, first: int, count: int, steps: int) -> dict[str, Any]:
    """Run enrollments ``first`` .. ``first + count - 1`` (each with its first step due)
    through APScheduler until ``steps`` steps ran; the rate and this process's peak RSS."""
    # The toolkit keeps APScheduler to sop/engine/scheduler.py; this is the comparison.
    from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
    from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
        BackgroundScheduler,
    )

    engine = _engine(url)
    postgres = sqlite_path(url) is None
    workers = 10  # APScheduler's default pool
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": ThreadPoolExecutor(workers)},
        timezone=UTC,
    )
    finished, lock, ran = threading.Event(), threading.Lock(), [0]

    def done() -> None:
        with lock:
            ran[0] += 1
            if ran[0] >= steps:
                finished.set()

    _STATE.update(engine=engine, postgres=postgres, scheduler=scheduler, done=done)
    scheduler.start(paused=True)
    try:
        due = datetime.now(UTC) - timedelta(seconds=1)
        for enrollment_id in range(first, first + count):
            _add(scheduler, (enrollment_id, 1, 0, due), due)
        started = time.perf_counter()
        scheduler.resume()
        if not finished.wait(timeout=3600):
            raise TimeoutError(f"APScheduler ran {ran[0]} of {steps} steps in an hour")
        seconds = time.perf_counter() - started
    finally:
        scheduler.shutdown(wait=True)
        engine.dispose()
    return {
        "steps": ran[0],
        "seconds": seconds,
        "rate": ran[0] / seconds,
        "workers": workers,
        "rss": peak_rss_mib(),
    }
