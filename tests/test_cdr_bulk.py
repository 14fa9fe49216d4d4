"""import-cdr's fast paths store exactly what the plain path stores: --bulk (one transaction, upkeep at
the end), grouping in a second process, and the binary COPY encoding of cdr_store."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from test_cdr_import import _COMPARED, run_cli

from ingest import cdr_bulk, cdr_import, cdr_store, store
from ingest.config import SystemConfig
from ingest.errors import DatabaseError, InputFileError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cdr_synth import write_master_csv

# A bad line, a call id used twice (a PBX restart), and a row of the first call arriving far too late.
_ODD_ROWS = (
    '"","09121110000","02191001000","from-trunk","""" <09121110000>","PJSIP/trunk-00000100","PJSIP/101-00000101",'
    '"Dial","PJSIP/101,20","{day} 10:00:00","{day} 10:00:05","{day} 10:01:00",60,55,"ANSWERED","DOCUMENTATION",'
    '"1714557600.1",""\n'
)
_UPKEEP = """
SELECT (SELECT array_agg(indexdef ORDER BY indexname) FROM pg_indexes
        WHERE tablename IN ('calls', 'call_segments', 'call_ring_attempts')) AS indexes,
       (SELECT array_agg(pg_get_constraintdef(oid) ORDER BY conname) FROM pg_constraint
        WHERE conrelid IN ('calls'::regclass, 'call_segments'::regclass, 'call_ring_attempts'::regclass)) AS keys,
       (SELECT array_agg(tgrelid::regclass::text || '.' || tgname::text || tgenabled::text
                       ORDER BY tgrelid::regclass::text, tgname) FROM pg_trigger
        WHERE tgrelid IN ('calls'::regclass, 'call_segments'::regclass, 'call_ring_attempts'::regclass)
          AND NOT tgisinternal) AS triggers
"""
_ROLLUP = """SELECT day, direction, status, calls, talk_seconds, wait_seconds, transfers FROM report_daily_totals
             WHERE system_id = $1 ORDER BY day, direction, status"""
_UNMAPPED = """SELECT extension, first_seen, last_seen, call_count FROM unmapped_extensions
               WHERE system_id = $1 ORDER BY 1"""


def _master(tmp_path: Path, rows: int) -> Path:
    text = io.StringIO()
    write_master_csv(text, rows)
    path = tmp_path / "Master.csv"
    path.write_text(_ODD_ROWS.format(day="2024-03-19") + text.getvalue() + "not,a,cdr,line\n"
                    + _ODD_ROWS.format(day="2024-03-21"), encoding="utf-8")
    return path


async def _stored(conn: asyncpg.Connection, name: str) -> dict[str, Any]:
    system_id = await conn.fetchval("SELECT id FROM telephone_systems WHERE name = $1", name)
    return {
        "calls": [dict(r) for r in await conn.fetch(_COMPARED, system_id)],
        "rollup": [dict(r) for r in await conn.fetch(_ROLLUP, system_id)],
        "unmapped": [dict(r) for r in await conn.fetch(_UNMAPPED, system_id)],
    }


def _summary(stats: cdr_import.ImportStats) -> tuple[Any, ...]:
    return stats.rows_read, stats.calls_built, stats.calls_stored, stats.calls_present, dict(stats.skipped)


@pytest.mark.asyncio
async def test_bulk_and_parallel_store_what_the_plain_path_stores(db: asyncpg.Connection, tmp_path: Path) -> None:
    """Same file, four ways, each into its own system: same calls, segments, ring attempts, rollup, unmapped
    extensions and counts; after --bulk the indexes, keys and triggers are as before; re-importing adds nothing."""
    master = _master(tmp_path, 6000)
    upkeep = dict(await db.fetchrow(_UPKEEP))
    ways = {"plain": (False, False), "parallel": (False, True), "bulk": (True, False), "bulk-parallel": (True, True)}
    # Extension 120 gets its user half way through the file: unmapped until then, for every batch before.
    user = await db.fetchval("INSERT INTO users (username) VALUES ('agent120') RETURNING id")
    for name in ways:
        system_id = await store.ensure_system(db, SystemConfig(name=name, timezone="Asia/Tehran"))
        await db.execute("INSERT INTO extension_assignments (system_id, extension, user_id, valid_from) "
                         "VALUES ($1, '120', $2, '2024-03-20 07:00+00')", system_id, user)
    results = {}
    for name, (bulk, parallel) in ways.items():
        stats = await cdr_import.import_cdr(db, SystemConfig(name=name, timezone="Asia/Tehran"), master,
                                            bulk=bulk, parallel=parallel)
        results[name] = _summary(stats)
        assert dict(await db.fetchrow(_UPKEEP)) == upkeep, name
    plain = await _stored(db, "plain")
    assert len(plain["calls"]) > 4000
    assert plain["rollup"]
    assert plain["unmapped"]
    [agent120] = [r for r in plain["unmapped"] if r["extension"] == "120"]
    assert agent120["last_seen"] < datetime(2024, 3, 20, 7, 5, tzinfo=UTC)
    assert results["plain"][3] == 1
    assert results["plain"][4] == {"4 columns instead of 18": 1}
    for name in ways:
        assert results[name] == results["plain"], name
        assert await _stored(db, name) == plain, name
    # The rollup rebuilt at the end of --bulk equals what the statement triggers add up batch by batch.
    again = await cdr_import.import_cdr(db, SystemConfig(name="bulk-parallel", timezone="Asia/Tehran"), master,
                                        bulk=True, parallel=True)
    assert (again.calls_stored, again.calls_present) == (0, results["plain"][2] + 1)
    assert await _stored(db, "bulk-parallel") == plain


@pytest.mark.asyncio
async def test_bulk_rolls_everything_back_when_it_fails(db: asyncpg.Connection, tmp_path: Path) -> None:
    """An import that fails half way under --bulk leaves nothing: no calls, and the indexes, keys and trigger back."""
    master = _master(tmp_path, 4000)
    await cdr_import.import_cdr(db, SystemConfig(name="before", timezone="UTC"), master, parallel=False)
    upkeep = dict(await db.fetchrow(_UPKEEP))
    rollup = [dict(r) for r in await db.fetch("SELECT * FROM report_daily_totals ORDER BY 1, 2, 3, 4")]
    seen = 0

    def interrupt(characters: int) -> None:
        nonlocal seen
        seen += characters
        if seen > 400_000:  # after some batches were written
            raise KeyboardInterrupt

    for parallel in (False, True):
        with pytest.raises(KeyboardInterrupt):
            await cdr_import.import_cdr(db, SystemConfig(name="failed", timezone="UTC"), master, bulk=True,
                                        parallel=parallel, progress=interrupt)
        seen = 0
        assert await db.fetchval("SELECT count(*) FROM calls c JOIN telephone_systems s ON s.id = c.system_id "
                                 "WHERE s.name = 'failed'") == 0
        assert dict(await db.fetchrow(_UPKEEP)) == upkeep
        assert [dict(r) for r in await db.fetch("SELECT * FROM report_daily_totals ORDER BY 1, 2, 3, 4")] == rollup
    # The tables are usable as before (no lock left, no transaction open).
    assert not db.is_in_transaction()
    stats = await cdr_import.import_cdr(db, SystemConfig(name="failed", timezone="UTC"), master, bulk=True)
    assert stats.calls_stored > 0


_ORPHAN = """INSERT INTO call_ring_attempts (call_pk, seq, extension, start_time, outcome)
             VALUES ($1, 1, '101', now(), 'no_answer')"""
_CALL = """INSERT INTO calls (system_id, call_id, direction, status, reason, start_time, end_time, wait_seconds,
                              talk_seconds, duration_seconds, transfer_count)
           VALUES ($1, 'x', 'incoming', 'missed', 'abandoned', now(), now(), 0, 0, 0, 0) RETURNING id"""


@pytest.mark.asyncio
async def test_bulk_checks_every_detail_has_its_call(db: asyncpg.Connection, tmp_path: Path) -> None:
    """With the detail tables' link checks off during the load, the end of the load finds a ring attempt without
    its call and rolls everything back; with them kept on (--keep-keys) the orphan is refused at once."""
    master = _master(tmp_path, 1200)
    upkeep = dict(await db.fetchrow(_UPKEEP))
    system_id = await store.ensure_system(db, SystemConfig(name="s", timezone="UTC"))
    load = await cdr_bulk.begin(db)
    assert [t for _, t in load.detail_checks] == ["call_segments_call_check", "call_ring_attempts_call_check"]
    await db.execute(_ORPHAN, 424242)  # accepted for now: the check is off
    await db.execute(_CALL, system_id)
    with pytest.raises(DatabaseError, match="call_ring_attempts has rows for call_pk 424242"):
        await cdr_bulk.finish(db, load, system_id)
    await cdr_bulk.abort(load)  # as import_cdr does when finish fails: harmless, the error above stands
    assert not db.is_in_transaction()
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
    assert await db.fetchval("SELECT count(*) FROM call_ring_attempts") == 0
    assert dict(await db.fetchrow(_UPKEEP)) == upkeep
    # --keep-keys: the checks stay on (and find this transaction holds calls exclusively: no row locks).
    cdr_bulk.DISABLE_DETAIL_CHECKS = False
    try:
        load = await cdr_bulk.begin(db)
        assert load.detail_checks == []
        async with db.transaction():  # a savepoint, as each batch of the import is
            pk = await db.fetchval(_CALL, system_id)
            await db.execute(_ORPHAN, pk)
        # The call is not locked row by row: the load holds the calls tables exclusively.
        assert await db.fetchval("SELECT xmax::text FROM calls WHERE id = $1", pk) == "0"
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with db.transaction():
                await db.execute(_ORPHAN, 424242)
        await cdr_bulk.abort(load)
    finally:
        cdr_bulk.DISABLE_DETAIL_CHECKS = True
    assert dict(await db.fetchrow(_UPKEEP)) == upkeep
    # A sound load passes the end check.
    stats = await cdr_import.import_cdr(db, SystemConfig(name="s", timezone="UTC"), master, bulk=True)
    assert stats.calls_stored > 0
    assert await db.fetchval("SELECT count(*) FROM call_segments") > 0
    assert dict(await db.fetchrow(_UPKEEP)) == upkeep


@pytest.mark.asyncio
async def test_parallel_reports_a_bad_file_as_the_plain_path_does(tmp_path: Path, db: asyncpg.Connection) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    messages = []
    for parallel in (False, True):
        with pytest.raises(InputFileError) as caught:
            await cdr_import.import_cdr(db, SystemConfig(name="s"), bad, parallel=parallel)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "bad.csv:1" in messages[0]


def test_bulk_from_the_command_line(db_dsn: str, tmp_path: Path) -> None:
    master = _master(tmp_path, 1200)
    first = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--bulk", str(master))
    assert first.exit_code == 0, first.output
    assert "calls already stored, left as they were: 1" in first.output
    second = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--bulk", str(master))
    assert "calls stored: 0" in second.output


@pytest.mark.asyncio
async def test_binary_numeric_encoding(db: asyncpg.Connection) -> None:
    """cdr_store's numeric fields read back as the values seconds_value rounds them to."""
    values = [0, 1, 9999, 10000, 10001, 123456789, 0.001, 0.5, 1.25, 9999.999, 10000.1, 86400.004, 0.0004, 12.3456]
    await db.execute("CREATE TEMP TABLE n (id bigint, v numeric(12, 3))")
    header, trailer = cdr_store._HEADER, cdr_store._TRAILER
    cache: dict[Any, bytes] = {}
    body = b"".join(b"\x00\x02" + cdr_store._INT8(8, i) + cdr_store.seconds_field(v, cache)
                    for i, v in enumerate(values))
    await db.copy_to_table("n", source=memoryview(header + body + trailer), format="binary")
    stored = [r["v"] for r in await db.fetch("SELECT v FROM n ORDER BY id")]
    assert stored == [Decimal(f"{v:.3f}") for v in values]


def test_the_grouping_process_is_spawned_cleanly(tmp_path: Path) -> None:
    """parallel_calls alone (no database): the same batches of calls as produce_calls."""
    from ingest import cdr_parallel

    master = _master(tmp_path, 3000)
    system = SystemConfig(name="s", timezone="UTC")
    plain_stats, parallel_stats = cdr_import.ImportStats(), cdr_import.ImportStats()
    with master.open(encoding="utf-8", newline="") as handle:
        plain = [c for b in cdr_import.produce_calls(handle, str(master), system, plain_stats) for c in b]
    parallel = [c for b in cdr_parallel.parallel_calls(master, system, parallel_stats, window=cdr_import.DEFAULT_WINDOW,
                                                       batch_size=500) for c in b]
    assert parallel == plain
    assert _summary(parallel_stats) == _summary(plain_stats)


def test_parallel_skips_late_rows_as_the_plain_path_does(tmp_path: Path) -> None:
    """A leg arriving after its call was finished is counted, not stored, by both paths (window of 10 minutes)."""
    from ingest import cdr_parallel

    def row(n: int, minute: int) -> str:
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
        return (f'"","0912{n:07d}","100","from-trunk","","PJSIP/trunk-{n:08x}","","Hangup","",'
                f'"{start:%Y-%m-%d %H:%M:%S}","","{start + timedelta(seconds=30):%Y-%m-%d %H:%M:%S}",30,0,'
                f'"NO ANSWER","DOCUMENTATION","{n}.1",""\n')

    master = tmp_path / "Master.csv"
    master.write_text("".join(row(n, n) for n in range(3000)) + row(2985, 2999), encoding="utf-8")
    system = SystemConfig(name="s", timezone="UTC")
    window = timedelta(minutes=10)
    plain_stats, parallel_stats = cdr_import.ImportStats(), cdr_import.ImportStats()
    with master.open(encoding="utf-8", newline="") as handle:
        plain = [c for b in cdr_import.produce_calls(handle, str(master), system, plain_stats, window=window)
                 for c in b]
    parallel = [c for b in cdr_parallel.parallel_calls(master, system, parallel_stats, window=window, batch_size=700)
                for c in b]
    assert plain_stats.skipped == {"late leg of a call already stored (raise --window)": 1}
    assert parallel == plain
    assert _summary(parallel_stats) == _summary(plain_stats)
