"""Who may produce reports: admin and the three manager roles, on every path; everyone else is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import report_data

from reports import api
from reports.errors import ReportFilterError, ReportPermissionError
from reports.filters import parse_filters
from reports.permissions import BUILTIN_ADMIN, actor, require_report_access

pytestmark = pytest.mark.asyncio

REQUEST = parse_filters({"from": "1404/12/01", "to": "1405/01/31"})


async def details(conn: asyncpg.Connection, user: Any) -> object:
    return await api.produce(conn, REQUEST, user)


async def streamed(conn: asyncpg.Connection, user: Any) -> object:
    async with api.open_report(conn, REQUEST, user) as document:
        return [row async for row in document.rows]


async def by_agent(conn: asyncpg.Connection, user: Any) -> object:
    return await api.totals_report(conn, REQUEST, "agent", user)


async def by_number(conn: asyncpg.Connection, user: Any) -> object:
    return await api.totals_report(conn, REQUEST, "number", user)


async def by_date(conn: asyncpg.Connection, user: Any) -> object:
    return await api.totals_report(conn, REQUEST, "date", user)


async def chain(conn: asyncpg.Connection, user: Any) -> object:
    return await api.chain_report(conn, "c2", user)


PATHS: dict[str, Callable[[asyncpg.Connection, Any], Awaitable[object]]] = {
    "details": details, "streamed": streamed, "by_agent": by_agent, "by_number": by_number,
    "by_date": by_date, "chain": chain,
}
ALLOWED = ["boss", "sara", "reza", "maryam", None]      # None: the built-in administrator
REFUSED = {
    "ali": "user 'ali' (agent) may not produce reports: this needs the role of system administrator, "
           "sales manager, CRM manager, support manager",
    "nobody": "user 'nobody' (no role) may not produce reports",
    "former": "user 'former' is disabled and may not produce reports",
}


@pytest_asyncio.fixture
async def loaded(db: asyncpg.Connection) -> report_data.Loaded:
    return await report_data.load(db)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("username", ALLOWED)
async def test_admin_and_managers_may_produce_every_report(db: asyncpg.Connection, loaded: report_data.Loaded,
                                                          path: str, username: str | None) -> None:
    assert await PATHS[path](db, username) is not None


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("username", REFUSED)
async def test_others_are_refused_on_every_path(db: asyncpg.Connection, loaded: report_data.Loaded,
                                               path: str, username: str) -> None:
    with pytest.raises(ReportPermissionError) as caught:
        await PATHS[path](db, username)
    assert REFUSED[username] in str(caught.value)


async def test_an_unknown_acting_user_is_a_bad_option(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    with pytest.raises(ReportFilterError) as caught:
        await details(db, "mallory")
    assert caught.value.field == "as"


async def test_the_refusal_comes_before_any_filter_check(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    # A refused user learns nothing about which agents or systems exist.
    bad = parse_filters({"agent": "ghost", "system": "pbx9"})
    with pytest.raises(ReportPermissionError):
        await api.produce(db, bad, "ali")


async def test_actors_built_by_the_caller(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    manager = actor("web-user", ["crm_manager"], name="Web User")
    document = await api.produce(db, REQUEST, manager)
    assert document.header.made_by == "Web User"
    with pytest.raises(ReportPermissionError):
        await api.produce(db, REQUEST, actor("web-agent", ["agent"]))
    with pytest.raises(ReportPermissionError):
        await api.produce(db, REQUEST, actor("gone", ["admin"], active=False))


async def test_the_builtin_administrator_needs_no_user_row() -> None:
    require_report_access(BUILTIN_ADMIN)
    assert BUILTIN_ADMIN.builtin
    assert BUILTIN_ADMIN.roles == {"admin"}
