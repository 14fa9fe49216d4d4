"""`calltrail-report demo` end to end: embedded PostgreSQL, fake Asterisk, real daemon, PDF and XLSX."""

from __future__ import annotations

import asyncio
import filecmp
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openpyxl
import pytest
import uvicorn
from click.testing import CliRunner, Result
from daemon_kit import ALL_TRACES, expected_calls, wait_until
from pypdf import PdfReader

from ingest import pg
from ingest.errors import InputFileError
from reports import demo_stream
from reports.cli import main
from reports.demo import MANAGER, MANAGER_PASSWORD, Demo, DemoOptions
from reports.demo_web import demo_app, listen_socket

CALLS = 120
# Every trace's call has a Linkedid sequence part of its own, so a demo call id names its trace.
BY_SEQUENCE = {linkedid.split(".")[1]: call for linkedid, call in expected_calls(ALL_TRACES).items()}


def run_demo(*args: str) -> Result:
    """The demo command with nothing configured (no DSN, no config file)."""
    env = {"CALLTRAIL_DSN": None, "CALLTRAIL_CONFIG": None, "CALLTRAIL_DATA_DIR": None}
    return CliRunner().invoke(main, ["demo", *args], env=env, catch_exceptions=False)


def demo_calls(dsn: str) -> dict[str, asyncpg.Record]:
    """The demo system's stored calls by call id."""

    async def go() -> dict[str, asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT c.* FROM calls c JOIN telephone_systems s ON s.id = c.system_id WHERE s.name = 'demo-pbx'")
        finally:
            await conn.close()
        return {row["call_id"]: row for row in rows}

    return asyncio.run(go())


def assert_calls_match_traces(calls: dict[str, asyncpg.Record]) -> None:
    """Each stored call is what its trace's expected.json says (from the test fixtures, not the copy)."""
    for call_id, row in calls.items():
        want = BY_SEQUENCE[call_id.split(".")[1]]
        assert row["direction"] == want["direction"], call_id
        assert (row["status"] == "answered") == want["answered"], call_id
        assert list(row["agents"]) == want["agents"], call_id
        assert row["transfer_count"] == want["transfer_count"], call_id
        assert not row["recovered"], call_id


def xlsx_columns(path: Path) -> tuple[dict[str, list[Any]], list[tuple[Any, ...]]]:
    """The details sheet as header -> column values, and the totals sheet's rows."""
    book = openpyxl.load_workbook(path)
    details, totals = book.worksheets[0], book.worksheets[1]
    rows = list(details.iter_rows(values_only=True))
    header = rows[0]
    columns = {str(name): [row[i] for row in rows[1:]] for i, name in enumerate(header)}
    return columns, [r for r in totals.iter_rows(values_only=True) if any(v is not None for v in r)]


def test_demo_runs_end_to_end_twice_on_the_embedded_server(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    try:
        first = run_demo("--data-dir", str(data), "--out", str(out), "--calls", str(CALLS))
        assert first.exit_code == 0, first.output
        dsn = pg.start_embedded(data).dsn  # joins the server the demo started
        calls = demo_calls(dsn)
        assert len(calls) == CALLS
        assert_calls_match_traces(calls)
        kinds = {(r["direction"], r["status"] == "answered") for r in calls.values()}
        assert kinds >= {("incoming", True), ("incoming", False), ("outgoing", True), ("outgoing", False),
                         ("internal", True)}
        assert any(r["transfer_count"] == 2 for r in calls.values())

        output = first.output
        assert "starting the embedded PostgreSQL in " + str((data / "pg").resolve()) in output
        assert f"all {CALLS} stored calls match the traces' expected calls" in output
        assert f"calls stored: {CALLS} (" in output
        assert f"user {MANAGER}, password {MANAGER_PASSWORD}" in output
        pdf, xlsx = out / "call-details.pdf", out / "call-details.xlsx"
        assert f"wrote {pdf.resolve()} (" in output
        assert f"wrote {xlsx.resolve()} (" in output

        reader = PdfReader(pdf)
        assert len(reader.pages) >= 3
        text = "".join(page.extract_text() for page in reader.pages)
        # Agents, identities, the manager who made it, the system: Persian names from the directory.
        for word in ("رضایی", "احمدی", "کریمی", "جعفری", "موسوی", "محمدی", "نمایشی", "۱۴۰"):
            assert word in text, word

        columns, totals = xlsx_columns(xlsx)
        call_ids = next(values for name, values in columns.items() if set(values) <= set(calls))
        assert sorted(call_ids) == sorted(calls)
        agents = {v for name, values in columns.items() for v in values if isinstance(v, str) and "→" in v}
        assert "علی رضایی → رضا کریمی" in agents  # the attended transfer's chain
        assert totals[-1][1] == CALLS  # the period's grand total

        # Again: the same calls, replaced in place, nothing added; the files rewritten.
        stored_before = {k: r["stored_at"] for k, r in calls.items()}
        second = run_demo("--data-dir", str(data), "--out", str(out), "--calls", str(CALLS))
        assert second.exit_code == 0, second.output
        again = demo_calls(dsn)
        assert set(again) == set(calls)
        assert all(again[k]["stored_at"] > stored_before[k] for k in again)
        assert "removed" not in second.output
        assert xlsx_columns(xlsx)[1][-1][1] == CALLS

        # Fewer calls: the demo system holds exactly the new run's calls.
        third = run_demo("--data-dir", str(data), "--out", str(out), "--calls", "30")
        assert third.exit_code == 0, third.output
        assert len(demo_calls(dsn)) == 30
        assert "removed" in third.output
    finally:
        pg.stop_embedded(data)


def test_shipped_traces_are_the_fixtures_verbatim() -> None:
    shipped = demo_stream.traces_dir()
    for trace in ALL_TRACES:
        name = ("local-" if trace.parent.name == "local-channels" else "") + trace.name
        for file in ("ami.log", "expected.json"):
            assert filecmp.cmp(trace / file, shipped / name / file, shallow=False), f"{name}/{file}"
    assert len([p for p in shipped.iterdir() if p.is_dir()]) == len(ALL_TRACES)


def test_missing_traces_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no recorded traces found"):
        demo_stream.load_traces(tmp_path)


@pytest.mark.asyncio
async def test_serve_link_logs_the_demo_manager_in(tmp_path: Path, db_dsn: str) -> None:
    result = await Demo(DemoOptions(out_dir=tmp_path / "out", data_dir=tmp_path, dsn=db_dsn, calls=14),
                        say=lambda line: None).run()
    assert result.calls == 14
    assert not result.mismatches
    sock = listen_socket("127.0.0.1:0")
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(demo_app(db_dsn, "tok3n", MANAGER, MANAGER_PASSWORD),
                                           log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            anonymous = await client.get("/report")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"].startswith("/login")
            assert (await client.get("/demo-login/wrong")).status_code == 404
            page = await client.get("/demo-login/tok3n", follow_redirects=True)
            assert page.status_code == 200
            assert str(page.url).endswith("/report")
            assert "نگار محمدی" in page.text  # logged in as the demo manager
    finally:
        server.should_exit = True
        await task
