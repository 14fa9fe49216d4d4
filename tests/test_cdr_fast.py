"""The compiled CDR import engine (ingest/cdr_fast.py over the Cython modules) stores exactly what the
Python engine stores: one connection or two, a first import or a repeated or partial one, and --bulk."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from conftest import with_database
from test_cdr_bulk import _master, _stored, _summary
from test_cdr_import import run_cli

from ingest import cdr_fast, cdr_import
from ingest.config import SystemConfig
from ingest.errors import ConfigError


def _system(name: str) -> SystemConfig:
    return SystemConfig(name=name, timezone="Asia/Tehran")


def test_the_compiled_engine_is_built() -> None:
    """The test environment builds it (`pip install -e .`); without it these tests would test nothing."""
    assert cdr_fast.available()


@pytest.mark.asyncio
async def test_compiled_engine_stores_what_the_python_engine_stores(db: asyncpg.Connection, db_dsn: str,
                                                                    tmp_path: Path) -> None:
    """Same file: Python engine, compiled over one connection, compiled over two, compiled --bulk: the same
    calls, segments, ring attempts, rollup, unmapped extensions and counts; a second run adds nothing."""
    master = _master(tmp_path, 9000)
    second = await asyncpg.connect(db_dsn)
    try:
        ways: dict[str, tuple[str, list[asyncpg.Connection], bool]] = {
            "python": ("python", [], False), "compiled": ("compiled", [], False),
            "compiled-2": ("compiled", [second], False), "compiled-bulk": ("compiled", [second], True),
        }
        summaries = {}
        for name, (engine, more, bulk) in ways.items():
            stats = await cdr_import.import_cdr(db, _system(name), master, engine=engine, more=more, bulk=bulk,
                                                parallel=False if engine == "python" else None)
            summaries[name] = _summary(stats)
        stored = {name: await _stored(db, name) for name in ways}
        again = await cdr_import.import_cdr(db, _system("compiled-2"), master, engine="compiled", more=[second])
    finally:
        await second.close()
    reference = stored["python"]
    assert len(reference["calls"]) > 6000
    for name in ways:
        assert summaries[name] == summaries["python"], name
        assert stored[name] == reference, name
    rows_read, _built, calls_stored, calls_present, skipped = summaries["python"]
    assert (again.rows_read, again.calls_stored, dict(again.skipped)) == (rows_read, 0, skipped)
    assert again.calls_present == calls_stored + calls_present


@pytest.mark.asyncio
async def test_compiled_import_completes_a_partial_one(db: asyncpg.Connection, db_dsn: str, tmp_path: Path) -> None:
    """A file whose first part is stored already (an interrupted import, or the daemon's calls): two writers
    store the rest, each call once, and the result is what one import of the whole file stores."""
    master = _master(tmp_path, 6000)
    lines = master.read_text(encoding="utf-8").splitlines(keepends=True)
    first_part = tmp_path / "first.csv"
    first_part.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    second = await asyncpg.connect(db_dsn)
    try:
        await cdr_import.import_cdr(db, _system("partial"), first_part, engine="python")
        before = await db.fetchval("SELECT count(*) FROM calls")
        stats = await cdr_import.import_cdr(db, _system("partial"), master, engine="compiled", more=[second])
        whole_stats = await cdr_import.import_cdr(db, _system("whole"), master, engine="compiled")
    finally:
        await second.close()
    assert before > 1000
    # Every call of the first part met again and left alone (plus the file's own repeated call id).
    assert stats.calls_present == before + whole_stats.calls_present
    assert stats.calls_stored == whole_stats.calls_stored - before
    partial, whole = await _stored(db, "partial"), await _stored(db, "whole")
    # The same calls; those cut by the end of the first part keep the legs they had then.
    assert [c["call_id"] for c in partial["calls"]] == [c["call_id"] for c in whole["calls"]]
    assert [u["extension"] for u in partial["unmapped"]] == [u["extension"] for u in whole["unmapped"]]


@pytest.mark.asyncio
async def test_engine_choices_are_checked(db: asyncpg.Connection, tmp_path: Path) -> None:
    master = _master(tmp_path, 100)
    with pytest.raises(ConfigError, match="CEL"):
        await cdr_import.import_cdr(db, _system("x"), master, engine="compiled", cel_path=master)
    with pytest.raises(ConfigError, match="engine"):
        await cdr_import.import_cdr(db, _system("x"), master, engine="fortran")


def test_cli_engine_and_writers(db_dsn: str, tmp_path: Path) -> None:
    """`--engine compiled` with `--cel` is a clear error, no traceback; `--writers 2` imports."""
    master = _master(tmp_path, 2000)
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--engine", "compiled", "--cel",
                     str(master), str(master))
    assert result.exit_code != 0
    assert "CEL" in result.output
    assert "Traceback" not in result.output
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--writers", "2", "--no-progress",
                     str(master))
    assert result.exit_code == 0, result.output
    assert "calls stored: " in result.output
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--writers", "9", str(master))
    assert result.exit_code == 2
    assert "--writers" in result.output


_RUN = 5000  # multiple of 1000: the grouper's expiry checks come every 1000 rows


def _leg(number: int, uniqueid: str, start: str, end: str) -> str:
    """One answered inbound CDR row on 2024-03-20 (local times HH:MM:SS), its channels numbered `number`."""
    return (f'"","0912{number:07d}","02191001000","from-trunk","""" <0912{number:07d}>",'
            f'"PJSIP/trunk-{2 * number:08x}","PJSIP/101-{2 * number + 1:08x}","Dial","PJSIP/101,20",'
            f'"2024-03-20 {start}","2024-03-20 {start}","2024-03-20 {end}",60,60,"ANSWERED","DOCUMENTATION",'
            f'"{uniqueid}",""\n')


@pytest.mark.asyncio
async def test_with_two_writers_the_first_of_a_repeated_call_id_stands(db: asyncpg.Connection, db_dsn: str,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same call id twice (a PBX restart) in two calls that end up in consecutive batches, written at
    once over two connections: the later batch waits for the earlier one, so the first call stands."""
    # _RUN - 1 calls, the first of the two (finished at an expiry check), _RUN calls ending later, the second
    # (finished first at the end of the file): batches of _RUN calls are [.., first], [second, ..], and the
    # second batch's first row reaches the server before the first batch's last one, were it not held.
    rows = [_leg(n, f"1710900000.{n}", "09:00:00", "09:01:00") for n in range(1, _RUN)]
    rows.append(_leg(50000, "1710999999.7", "10:00:00", "10:01:00"))
    rows += [_leg(n, f"1710900000.{n}", "10:59:00", "11:00:00") for n in range(_RUN, 2 * _RUN)]
    rows.append(_leg(60000, "1710999999.7", "10:40:00", "10:41:00"))
    master = tmp_path / "Master.csv"
    master.write_text("".join(rows), encoding="utf-8")
    monkeypatch.setattr(cdr_import, "FAST_BATCH_CALLS", _RUN)
    second = await asyncpg.connect(db_dsn)
    try:
        for attempt in range(3):  # a race, were it not prevented: give it several chances
            name = f"restart-{attempt}"
            stats = await cdr_import.import_cdr(db, _system(name), master, engine="compiled", more=[second],
                                                window=timedelta(minutes=1))
            assert (stats.calls_built, stats.calls_stored, stats.calls_present) == (2 * _RUN + 1, 2 * _RUN, 1)
            start = await db.fetchval(
                "SELECT c.start_time FROM calls c JOIN telephone_systems s ON s.id = c.system_id "
                "WHERE s.name = $1 AND c.call_id = '1710999999.7'", name)
            assert start == datetime(2024, 3, 20, 6, 30, tzinfo=UTC)  # 10:00 in Tehran: the first one
    finally:
        await second.close()


def test_cli_creates_or_upgrades_the_schema_first(pg_admin_dsn: str, tmp_path: Path) -> None:
    """import-cdr into an empty database creates the schema (as the daemon would), then imports."""
    name = f"calltrail_import_empty_{uuid.uuid4().hex[:8]}"

    async def execute(statement: str) -> None:  # CREATE DATABASE cannot run in a transaction
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        dsn = with_database(pg_admin_dsn, name)
        result = run_cli(dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--no-progress",
                         str(_master(tmp_path, 500)))
        assert result.exit_code == 0, result.output
        assert "schema created (version 4)" in result.output
        assert int(result.output.split("calls stored: ")[1].split()[0]) > 300
        again = run_cli(dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--no-progress",
                        str(tmp_path / "Master.csv"))
        assert again.exit_code == 0, again.output
        assert "schema" not in again.output
        assert "calls stored: 0" in again.output
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
