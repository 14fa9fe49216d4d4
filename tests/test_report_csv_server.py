"""The server-formatted CSV export (details_csv.sql through COPY) against the Python-formatted one.

A streamed report is written by PostgreSQL; rows in memory by render/csv.py. Both must give the
same bytes: the golden file, and each other in the other calendar, language and time zone.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import report_data

from reports import api, data, render
from reports.filters import parse_filters
from reports.render import csv_parts

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


class Connections:
    """Opens spare connections to the test database for a multi-part export, counting them."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.opened = 0

    async def __call__(self) -> asyncpg.Connection:
        self.opened += 1
        return await asyncpg.connect(self.dsn)


async def parts_csv(source: object, values: dict[str, object], connect: Connections | None = None) -> bytes:
    out = io.BytesIO()
    async with api.open_report(source, parse_filters(values), now=NOW,
                               connect=connect) as document:
        await render.write(document, out)
    return out.getvalue()


PART_FILTERS: list[dict[str, object]] = [
    FILTERS,
    {"from": "2026-02-01", "to": "2026-04-30", "calendar": "gregorian", "by": "day", "lang": "en",
     "tz": "Europe/Berlin", "company": "Acme Trading", "format": "csv"},
    {"from": "1404/12/01", "to": "1405/01/31", "by": "month", "type": "incoming,missed", "branch": "tehran",
     "format": "csv"},
    {"from": "1404/12/01", "to": "1405/01/31", "by": "year", "agent": "ali", "format": "csv"},
]


@pytest.mark.parametrize("values", PART_FILTERS)
async def test_a_export_cut_at_every_call_equals_the_one_part_export(
        db: asyncpg.Connection, db_dsn: str, values: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts cut exactly at calls' start times, between them, and empty ones: the same bytes and numbers."""
    await report_data.load(db)
    whole = await streamed_csv(db, values)
    assert len(whole.splitlines()) > 2
    starts = [r["start_time"] for r in await db.fetch("SELECT start_time FROM calls ORDER BY start_time")]
    # Every call's start, a moment after every call's start, and one cut twice (an empty part).
    cuts = sorted([*starts, *(t + timedelta(seconds=1) for t in starts), starts[3]])
    monkeypatch.setattr(csv_parts, "parts_for", lambda expected: len(cuts) + 1)
    monkeypatch.setattr(csv_parts, "cut", lambda first, last, parts: cuts)
    connections = Connections(db_dsn)
    assert await parts_csv(db, values, connections) == whole
    assert connections.opened == len(cuts)


async def test_a_pooled_export_in_parts_equals_the_one_part_export(
        db: asyncpg.Connection, db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool lends the spare connections; the period is cut in equal stretches of time."""
    await report_data.load(db)
    whole = await streamed_csv(db, FILTERS)
    monkeypatch.setattr(csv_parts, "PARTS", 3)
    monkeypatch.setattr(csv_parts, "MIN_ROWS_PER_PART", 1)
    cut = csv_parts.cut
    cuts: list[list[datetime]] = []

    def recorded(first: datetime, last: datetime, parts: int) -> list[datetime]:
        cuts.append(cut(first, last, parts))
        return cuts[-1]

    monkeypatch.setattr(csv_parts, "cut", recorded)
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=3)
    try:
        assert await parts_csv(pool, FILTERS) == whole
    finally:
        await pool.close()
    assert len(cuts) == 1
    assert len(cuts[0]) == 2


async def test_a_busy_pool_gives_fewer_parts_and_the_same_bytes(
        db: asyncpg.Connection, db_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No spare connection within the wait: the export runs on its own connection."""
    await report_data.load(db)
    whole = await streamed_csv(db, FILTERS)
    monkeypatch.setattr(csv_parts, "MIN_ROWS_PER_PART", 1)
    monkeypatch.setattr(data, "SPARE_WAIT", 0.05)
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1)
    try:
        with caplog.at_level(logging.INFO, logger="reports.render.csv_parts"):
            assert await parts_csv(pool, FILTERS) == whole
    finally:
        await pool.close()
    assert "no spare database connection" in caplog.text


async def test_a_spooled_part_is_numbered_as_it_is_copied() -> None:
    spool = io.BytesIO(b",a,b\n,c\n" + b",d\n" * 400_000)
    out = io.BytesIO()
    # 1.2 MB: more than one block read, so a line is cut across two blocks.
    assert csv_parts.copy_numbered(spool, out, 41) == 400_002
    lines = out.getvalue().split(b"\r\n")
    assert lines[:3] == [b"41,a,b", b"42,c", b"43,d"]
    assert lines[-2:] == [b"400042,d", b""]
    with pytest.raises(ValueError, match="line end"):
        csv_parts.copy_numbered(io.BytesIO(b",a\n,b"), io.BytesIO(), 1)


async def test_every_formula_start_is_neutralised_as_in_python(db: asyncpg.Connection) -> None:
    """= + - @ and tab at the start of a value get a leading quote; other first characters (Persian too) do not."""
    await report_data.load(db)
    starts = ["=1+1", "+98", "-x", "@me", "\tx", "عا", " =", "", "x=1"]
    ids = [r["id"] for r in await db.fetch("SELECT id FROM calls ORDER BY start_time, id")]
    for call, text in zip(ids, starts, strict=False):
        await db.execute("UPDATE calls SET caller_name = $2, callee = $2 WHERE id = $1", call, text)
    request = {**FILTERS, "from": "1404/11/01", "to": "1405/02/31"}
    in_memory = await render.to_bytes(await api.produce(db, parse_filters(request), now=NOW), "csv")
    assert in_memory.count(b",'") >= 2 * 5
    assert await streamed_csv(db, request) == in_memory


async def test_a_line_break_in_a_system_title_stays_a_value(db: asyncpg.Connection) -> None:
    """asyncpg writes COPY's parameters into the statement's text, comments included: none may end a comment."""
    await report_data.load(db)
    await db.execute("UPDATE telephone_systems SET title = E'مرکز\\nSELECT 1; --' WHERE name = 'tehran-main'")
    in_memory = await render.to_bytes(await api.produce(db, parse_filters(FILTERS), now=NOW), "csv")
    streamed = await streamed_csv(db, FILTERS)
    # Both paths write the line break as a space: one record per line, the same bytes.
    assert streamed == in_memory
    assert "مرکز SELECT 1; --".encode() in streamed


async def test_line_breaks_in_outside_values_become_spaces_in_both_paths(db: asyncpg.Connection) -> None:
    """A caller name or number with CR/LF (from the PBX or the CRM) stays on its call's line, as on the server."""
    await report_data.load(db)
    call = await db.fetchval("SELECT id FROM calls ORDER BY start_time, id LIMIT 1")
    await db.execute("UPDATE calls SET caller_name = E'=Ali\\r\\nReza', callee = E'\\n0912' WHERE id = $1", call)
    request = {**FILTERS, "from": "1404/11/01", "to": "1405/02/31"}
    in_memory = await render.to_bytes(await api.produce(db, parse_filters(request), now=NOW), "csv")
    streamed = await streamed_csv(db, request)
    assert streamed == in_memory
    rows = list(csv.reader(io.StringIO(in_memory.decode("utf-8-sig"))))
    assert len(rows) == in_memory.count(b"\r\n")
    assert [rows[1][4], rows[1][5]] == ["'=Ali  Reza", " 0912"]


@pytest.mark.parametrize("name", ["details_csv", "details_copy"])
async def test_copy_statements_have_no_comment_left(name: str) -> None:
    assert "--" in data.query(name)
    assert "--" not in data.copy_query(name)


async def test_agent_chains_of_every_length_as_in_python(db: asyncpg.Connection) -> None:
    """Repeated extensions, chains of one to five, across the re-assignment of 101: the server names them as Python."""
    await report_data.load(db)
    chains = [["101", "102", "101"], ["101", "101"], ["102", "103", "101", "102", "104"], ["103", "101", "103"],
              ["102", "102", "102"], ["101", "102", "103"], [], ["999", "101"]]
    ids = [r["id"] for r in await db.fetch(
        "SELECT c.id FROM calls c JOIN telephone_systems s ON s.id = c.system_id WHERE s.name = 'tehran-main'"
        " AND c.status = 'answered' ORDER BY c.start_time, c.id")]
    assert len(ids) >= 6
    for call, chain in zip(ids, chains, strict=False):
        await db.execute("UPDATE calls SET agents = $2 WHERE id = $1", call, chain)
    for values in (FILTERS, {**FILTERS, "to": "1404/12/15"}):
        in_memory = await render.to_bytes(await api.produce(db, parse_filters(values), now=NOW), "csv")
        assert await streamed_csv(db, values) == in_memory
    assert " → ".encode() in in_memory
