"""The web app's own small queries (pickers, log-in, operations), over an asyncpg pool.

Report data never comes from here: the report functions of `reports` produce it, and users come
from `reports.users`. These are the lookups a form needs (branches, systems, user search) and
the ingestion status for the admin page, each a named SQL file in `sql/` with $n parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import asyncpg

from ingest.errors import DatabaseError

log = logging.getLogger(__name__)


@cache
def sql(name: str) -> str:
    """The text of sql/<name>.sql."""
    return resources.files("reports.web").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


async def create_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool for the web app; a clear error when the server is not there."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=10.0)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(f"the web app cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


def _like_pattern(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_users(conn: asyncpg.Connection, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Active users matching `query` in user name or full name."""
    rows = await conn.fetch(sql("search_users"), _like_pattern(query.strip()), limit)
    return [{"id": r["id"], "username": r["username"], "full_name": r["full_name"]} for r in rows]


async def branches(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every branch: id, name and display title."""
    rows = await conn.fetch(sql("branches"))
    return [{"id": r["id"], "name": r["name"], "title": r["title"] or r["name"]} for r in rows]


async def systems(conn: asyncpg.Connection, branch_id: int | None = None) -> list[dict[str, Any]]:
    """Telephone systems of one branch (or all): id, name, title, branch id."""
    rows = await conn.fetch(sql("systems"), branch_id)
    return [
        {"id": r["id"], "name": r["name"], "title": r["title"] or r["name"], "branch_id": r["branch_id"]}
        for r in rows
    ]


@dataclass(frozen=True)
class SystemStatus:
    """One telephone system's ingestion status, from the database."""

    id: int
    name: str
    title: str
    branch: str
    timezone: str
    last_event_at: datetime | None
    last_call_stored_at: datetime | None
    calls_stored: int
    calls_today: int
    checkpoint: str | None


async def ingest_status(conn: asyncpg.Connection) -> list[SystemStatus]:
    """Every telephone system with its ingest_state row and today's call count."""
    rows = await conn.fetch(sql("ingest_status"))
    return [
        SystemStatus(
            id=r["id"],
            name=r["name"],
            title=r["title"] or r["name"],
            branch=r["branch_title"],
            timezone=r["timezone"],
            last_event_at=r["last_event_at"],
            last_call_stored_at=r["last_call_stored_at"],
            calls_stored=r["calls_stored"],
            calls_today=r["calls_today"],
            checkpoint=r["checkpoint"],
        )
        for r in rows
    ]


async def login_wait(conn: asyncpg.Connection, keys: list[str], max_failures: int, window_seconds: float,
                     now: datetime | None = None) -> float | None:
    """Seconds until every key in `keys` may try to log in again, or None when all may now."""
    wait: float | None = await conn.fetchval(sql("login_wait"), keys, max_failures, window_seconds, now)
    return wait


async def record_login_failure(conn: asyncpg.Connection, keys: list[str], window_seconds: float,
                               now: datetime | None = None) -> None:
    """One failed log-in for each key; failures older than the window are deleted on the way."""
    await conn.execute(sql("login_failed"), keys, window_seconds, now)


async def forget_login_failures(conn: asyncpg.Connection, key: str) -> None:
    """Delete the failures counted against `key`."""
    await conn.execute("DELETE FROM web_login_failures WHERE key = $1", key)


async def login_throttle_ready(conn: asyncpg.Connection) -> bool:
    """True when the database has the login throttle's table (schema version 3 and later)."""
    return bool(await conn.fetchval("SELECT to_regclass('web_login_failures') IS NOT NULL"))
