"""Fixtures shared by the whole suite: real databases on both backends, a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.clock import ManualClock
from tests.support.database import (
    REQUIRE_POSTGRES,
    Database,
    PostgresServer,
    make_sqlite_template,
    open_database,
    postgres_database,
    sqlite_copy,
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from postgres_database()


def _postgres_url(request: pytest.FixtureRequest) -> str:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if server.url is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"SCRM_REQUIRE_POSTGRES is set but {server.reason}")
        pytest.skip(server.reason)
    return server.url


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL database, for tests that only make sense there."""
    return _postgres_url(request)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
) -> str:
    """The URL of a migrated, empty database on each backend, private to this test."""
    if request.param == "sqlite":
        return sqlite_copy(sqlite_template, tmp_path)
    return _postgres_url(request)


@pytest.fixture
async def db(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Database]:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    database = await open_database(backend, database_url)
    try:
        yield database
    finally:
        await database.engine.dispose()


@pytest.fixture
async def postgres_db(postgres_url: str) -> AsyncIterator[Database]:
    """The session's PostgreSQL database, emptied, for tests that only make sense there."""
    database = await open_database("postgres", postgres_url)
    try:
        yield database
    finally:
        await database.engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
