"""Shared fixtures: a real PostgreSQL for every database test, never a mock.

`CALLTRAIL_TEST_DSN` picks a server (it must allow CREATE DATABASE); otherwise a throwaway
embedded PostgreSQL is started for the session in a temporary directory. The schema is loaded
once into a template database, and every test gets its own database cloned from it, dropped
afterwards. No server is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings

from ingest import pg, store

# CI machines are small and shared: judge properties by their outcome, never by wall time.
settings.register_profile(
    "calltrail", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("calltrail")

FIXTURES = Path(__file__).parent / "fixtures"
TRACES = FIXTURES / "ami-traces"


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a maintenance database on the test server (started here when needed)."""
    configured = os.environ.get("CALLTRAIL_TEST_DSN")
    if configured:
        yield configured
        return
    directory = Path(tempfile.mkdtemp(prefix="calltrail-test-pg-"))
    try:
        target = pg.start_embedded(directory)
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"no PostgreSQL for the tests: set CALLTRAIL_TEST_DSN or fix the embedded server: {exc}")
    yield with_database(target.dsn, "postgres")
    pg.stop_embedded(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database holding schema.sql, cloned by every test."""
    name = f"calltrail_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def build() -> None:
        await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}"')
        conn = await store.connect(with_database(pg_admin_dsn, name))
        try:
            await store.init_schema(conn)
        finally:
            await conn.close()

    _run(build())
    yield name
    _run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_dsn(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """DSN of a fresh database with the schema, dropped after the test."""
    name = f"calltrail_t_{uuid.uuid4().hex[:12]}"
    _run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield with_database(pg_admin_dsn, name)
    _run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An open connection to the test's own database."""
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()
