"""The server-formatted CSV export (details_csv.sql through COPY) against the Python-formatted one.

A streamed report is written by PostgreSQL; rows in memory by render/csv.py. Both must give the
same bytes: the golden file, and each other in the other calendar, language and time zone.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import report_data

from reports import api, data, render
from reports.filters import parse_filters

pytestmark = pytest.mark.asyncio

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
NOW = datetime(2026, 4, 21, 9, 0, tzinfo=UTC)
FILTERS: dict[str, object] = {"from": "1404/12/01", "to": "1405/01/31", "calendar": "jalali", "by": "month",
                               "type": "all,internal", "company": "Acme Trading", "format": "csv"}


async def streamed_csv(conn: asyncpg.Connection, values: dict[str, object]) -> bytes:
    out = io.BytesIO()
    async with api.open_report(conn, parse_filters(values), now=NOW) as document:
        assert isinstance(document.rows, data.StreamedRows)
        await render.write(document, out)
    return out.getvalue()


async def test_server_csv_matches_the_golden_file(db: asyncpg.Connection) -> None:
    await report_data.load(db)
    content = await streamed_csv(db, FILTERS)
    assert content.decode("utf-8") == (GOLDEN / "details_fa.csv").read_bytes().decode("utf-8")


@pytest.mark.parametrize("values", [
    {"from": "2026-02-01", "to": "2026-04-30", "calendar": "gregorian", "by": "day", "lang": "en",
     "tz": "Europe/Berlin"},
    {"from": "1404/12/01", "to": "1405/01/31", "calendar": "jalali", "by": "season", "type": "missed"},
    {"from": "1404/12/01", "to": "1405/01/31", "calendar": "jalali", "by": "year", "branch": "tehran",
     "agent": "ali"},
])
async def test_server_csv_equals_python_csv(db: asyncpg.Connection, values: dict[str, object]) -> None:
    await report_data.load(db)
    request = {**values, "company": "Acme Trading", "format": "csv"}
    in_memory = await render.to_bytes(await api.produce(db, parse_filters(request), now=NOW), "csv")
    assert len(in_memory.splitlines()) > 1
    assert await streamed_csv(db, request) == in_memory
