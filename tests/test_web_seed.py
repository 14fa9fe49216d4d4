"""Shared data and helpers of the web tests (no tests here): a seeded database, users of every role,
calls in Farvardin 1403, and an app + client factory."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from starlette.applications import Starlette

from ingest import store
from ingest.config import SystemConfig
from ingest.records import CallRecord, RingAttempt, Segment
from reports import users
from reports.web import WebSettings, create_app

PASSWORD = "correct horse battery"
# username -> (full name, roles, active)
USERS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "admin": ("مدیر سامانه", ("admin",), True),
    "sales": ("سارا فروش", ("sales_manager",), True),
    "crm": ("کاوه مشتری", ("crm_manager",), True),
    "support": ("پری پشتیبان", ("support_manager",), True),
    "agent101": ("علی رضایی", ("agent",), True),
    "agent102": ("مریم کریمی", ("agent",), True),
    "former": ("مدیر پیشین", ("sales_manager",), False),
}
MANAGERS = ("admin", "sales", "crm", "support")
# Farvardin 1403 = 2024-03-20 .. 2024-04-19 (Tehran, UTC+03:30 all month).
MONTH_START = datetime(2024, 3, 20, 6, 0, tzinfo=UTC)


def t(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A UTC instant `day` days into Farvardin 1403."""
    return MONTH_START + timedelta(days=day, hours=hour - 6, minutes=minute, seconds=second)


def seed_calls() -> list[CallRecord]:
    """Calls on tehran-main: a transferred incoming call, a missed one, an outgoing and an internal one."""
    start = t(0, 10)
    transferred = CallRecord(
        system="tehran-main", call_id="1710900000.10", direction="incoming", status="answered", reason=None,
        caller="09121234567", callee="02188000000", start=start, answer=start + timedelta(seconds=8),
        end=start + timedelta(seconds=200), external_number="+989121234567",
        segments=(
            Segment("101", "answered", start + timedelta(seconds=2), start + timedelta(seconds=8),
                    start + timedelta(seconds=60)),
            Segment("102", "blind_transfer", start + timedelta(seconds=60), start + timedelta(seconds=65),
                    start + timedelta(seconds=200)),
        ),
        rang=(
            RingAttempt("101", start + timedelta(seconds=2), start + timedelta(seconds=8), "answered"),
            RingAttempt("102", start + timedelta(seconds=60), start + timedelta(seconds=65), "answered"),
        ),
    )
    missed_start = t(1, 11)
    missed = CallRecord(
        system="tehran-main", call_id="1710990000.20", direction="incoming", status="missed", reason="abandoned",
        caller="09351112222", callee="02188000000", start=missed_start, end=missed_start + timedelta(seconds=30),
        external_number="+989351112222",
        rang=(RingAttempt("101", missed_start + timedelta(seconds=1), missed_start + timedelta(seconds=30),
                          "cancelled"),),
    )
    out_start = t(1, 12)
    outgoing = CallRecord(
        system="tehran-main", call_id="1710993600.30", direction="outgoing", status="answered", reason=None,
        caller="102", callee="09121234567", start=out_start, answer=out_start + timedelta(seconds=5),
        end=out_start + timedelta(seconds=65), external_number="+989121234567",
        segments=(Segment("09121234567", "answered", out_start, out_start + timedelta(seconds=5),
                          out_start + timedelta(seconds=65)),),
    )
    internal_start = t(2, 9)
    internal = CallRecord(
        system="tehran-main", call_id="1711080000.40", direction="internal", status="answered", reason=None,
        caller="101", callee="102", start=internal_start, answer=internal_start + timedelta(seconds=3),
        end=internal_start + timedelta(seconds=33),
        segments=(Segment("102", "answered", internal_start, internal_start + timedelta(seconds=3),
                          internal_start + timedelta(seconds=33)),),
    )
    return [transferred, missed, outgoing, internal]


async def seed(dsn: str) -> None:
    """Branches, systems, users of every role, extension assignments, calls and ingest state."""
    conn = await asyncpg.connect(dsn)
    try:
        main_id = await store.ensure_system(conn, SystemConfig(name="tehran-main", branch="tehran"))
        await store.ensure_system(conn, SystemConfig(name="tehran-sales", branch="tehran"))
        await store.ensure_system(conn, SystemConfig(name="shiraz-1", branch="shiraz"))
        await conn.execute("UPDATE branches SET title = 'تهران' WHERE name = 'tehran'")
        await conn.execute("UPDATE branches SET title = 'شیراز' WHERE name = 'shiraz'")
        await conn.execute("UPDATE telephone_systems SET title = 'مرکز تهران' WHERE name = 'tehran-main'")
        for username, (full_name, roles, active) in USERS.items():
            await users.add_user(conn, username, full_name=full_name, roles=roles, password=PASSWORD)
            if not active:
                await users.set_active(conn, username, False)
        for extension, username in (("101", "agent101"), ("102", "agent102")):
            await conn.execute(
                """INSERT INTO extension_assignments (system_id, extension, user_id, valid_from)
                   SELECT $1, $2, id, '2020-01-01' FROM users WHERE username = $3""",
                main_id, extension, username,
            )
        await conn.execute(
            "INSERT INTO identities (kind, name, profile_url) VALUES ('person', 'هاشمی', 'https://crm.example/p/1')"
        )
        await conn.execute(
            """INSERT INTO identity_numbers (identity_id, number_e164)
               SELECT id, '+989121234567' FROM identities WHERE name = 'هاشمی'"""
        )
        await store.store_calls(conn, main_id, seed_calls())
        await conn.execute(
            """INSERT INTO ingest_state (system_id, last_event_at, last_call_stored_at, calls_stored, checkpoint)
               VALUES ($1, $2, $2, 4, 'journal-0001:4096')""",
            main_id, t(2, 9, 1),
        )
    finally:
        await conn.close()


def seeded_database(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """A database cloned from the schema template, seeded; dropped afterwards (for module fixtures)."""
    name = f"calltrail_web_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    dsn = with_database(pg_admin_dsn, name)
    try:
        asyncio.run(seed(dsn))
        yield dsn
    finally:
        asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def make_app(database: str | asyncpg.Pool, **settings: object) -> Starlette:
    """The web app over a DSN or pool with test settings (fixed secret, Persian by default)."""
    values: dict[str, object] = {"secret_key": "test-secret-key-0123456789", "company_name": "تجارت الکترونیک اول"}
    values.update(settings)
    return create_app(database, WebSettings(**values))  # type: ignore[arg-type]


@asynccontextmanager
async def web_client(
    dsn: str, base_url: str = "http://testserver", address: str = "127.0.0.1", **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a fresh app (fresh throttle) over its own pool on `dsn`."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        # The throttle lives in the database: a fresh app starts without the failures of earlier tests.
        await pool.execute("DELETE FROM web_login_failures")
        app = make_app(pool, **settings)
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
    finally:
        await pool.close()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def post_login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Post the login form (after fetching it for its CSRF token)."""
    page = await client.get("/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text)}
    )


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> None:
    """Log `username` in through the form, asserting it worked."""
    response = await post_login(client, username, password)
    assert response.status_code == 303, response.text
