"""The links between the calls tables (schema.sql, "Links between the calls tables"): statement triggers
keep what the version 3 foreign keys guaranteed, for every writer, and a version 3 database is upgraded in place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest import cdr_store, store
from ingest.config import SystemConfig
from ingest.records import CallRecord, RingAttempt, Segment

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
_CALL = """INSERT INTO calls (system_id, call_id, direction, status, reason, start_time, end_time, wait_seconds,
                              talk_seconds, duration_seconds, transfer_count)
           SELECT $1, c, 'incoming', 'missed', 'abandoned', now(), now(), 0, 0, 0, 0 FROM unnest($2::text[]) AS c
           RETURNING id"""
_SEGMENT = """INSERT INTO call_segments (call_pk, seq, extension, began_by, answer_time, end_time, talk_seconds)
              SELECT pk, 1, '101', 'answered', now(), now(), 0 FROM unnest($1::bigint[]) AS pk"""
_RING = """INSERT INTO call_ring_attempts (call_pk, seq, extension, start_time, outcome)
           SELECT pk, 1, '101', now(), 'no_answer' FROM unnest($1::bigint[]) AS pk"""
_DETAILS = """SELECT (SELECT array_agg(call_pk ORDER BY call_pk) FROM call_segments),
                     (SELECT array_agg(call_pk ORDER BY call_pk) FROM call_ring_attempts)"""
# What version 3 declared instead of the triggers.
_V3_KEYS = (
    ("calls", "calls_system_id_fkey", "FOREIGN KEY (system_id) REFERENCES telephone_systems(id)"),
    ("call_segments", "call_segments_call_pk_fkey", "FOREIGN KEY (call_pk) REFERENCES calls(id) ON DELETE CASCADE"),
    ("call_ring_attempts", "call_ring_attempts_call_pk_fkey",
     "FOREIGN KEY (call_pk) REFERENCES calls(id) ON DELETE CASCADE"),
)
_TRIGGERS = """SELECT array_agg(tgrelid::regclass::text || '.' || tgname ORDER BY tgrelid::regclass::text, tgname)
               FROM pg_trigger
               WHERE NOT tgisinternal AND tgfoid::regproc::text IN
                   ('calls_detail_check', 'calls_detail_update_check', 'calls_system_check', 'calls_key_update_check',
                    'calls_delete_details', 'calls_truncate_details', 'telephone_systems_calls_check',
                    'telephone_systems_truncate_calls')"""
_KEYS = """SELECT array_agg(conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
                           ORDER BY conrelid::regclass::text, conname)
           FROM pg_constraint WHERE contype = 'f'
             AND conrelid IN ('calls'::regclass, 'call_segments'::regclass, 'call_ring_attempts'::regclass)"""


async def calls(db: asyncpg.Connection, system_id: int, *call_ids: str) -> list[int]:
    """Insert minimal calls; their ids."""
    return [r["id"] for r in await db.fetch(_CALL, system_id, list(call_ids))]


async def system(db: asyncpg.Connection, name: str = "test") -> int:
    return await store.ensure_system(db, SystemConfig(name=name))


async def waiting_for_a_lock(db: asyncpg.Connection, pid: int) -> bool:
    """Whether backend `pid` waits for a lock (polled for up to 10 s)."""
    for _ in range(200):
        if await db.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize(("table", "insert"), [("call_segments", _SEGMENT), ("call_ring_attempts", _RING)])
async def test_a_detail_without_its_call_is_refused(db: asyncpg.Connection, table: str, insert: str) -> None:
    [pk] = await calls(db, await system(db), "a")
    with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
        await db.execute(insert, [pk, pk + 1000])  # one good row, one orphan: the whole statement fails
    assert caught.value.sqlstate == "23503"
    assert table in str(caught.value)
    assert f"call_pk {pk + 1000} " in str(caught.value)
    assert caught.value.table_name == table
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0
    await db.execute(insert, [pk])
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=f"call_pk {pk + 7} "):
        await db.execute(f"UPDATE {table} SET call_pk = call_pk + 7")
    # Through COPY as the importer writes: same check.
    columns = cdr_store.SEGMENT_COLUMNS if table == "call_segments" else cdr_store.RING_COLUMNS
    row = await db.fetchrow(f"SELECT {', '.join(columns)} FROM {table}")
    orphan = (pk + 5, 2, *tuple(row)[2:])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.copy_records_to_table(table, records=[orphan], columns=columns)


async def test_deleting_calls_deletes_their_details(db: asyncpg.Connection) -> None:
    system_id = await system(db)
    a, b, c, d = await calls(db, system_id, "a", "b", "c", "d")
    await db.execute(_SEGMENT, [a, b, c, d])
    await db.execute(_RING, [a, b, c, d])
    await db.execute("INSERT INTO call_segments (call_pk, seq, extension, began_by, answer_time, end_time,"
                     " talk_seconds) VALUES ($1, 2, '102', 'blind_transfer', now(), now(), 0)", b)
    assert await db.execute("DELETE FROM calls WHERE id = $1", a) == "DELETE 1"
    assert tuple(await db.fetchrow(_DETAILS)) == ([b, b, c, d], [b, c, d])
    assert await db.execute("DELETE FROM calls WHERE id = ANY($1)", [b, d]) == "DELETE 2"
    assert tuple(await db.fetchrow(_DETAILS)) == ([c], [c])
    # A statement deleting nothing, and one deleting a call without details.
    await db.execute("DELETE FROM calls WHERE id = -1")
    [e] = await calls(db, system_id, "e")
    await db.execute("DELETE FROM calls WHERE id = $1", e)
    assert tuple(await db.fetchrow(_DETAILS)) == ([c], [c])
    # TRUNCATE calls empties the details too (the key made it need CASCADE, which did the same).
    await db.execute("TRUNCATE calls")
    assert tuple(await db.fetchrow(_DETAILS)) == (None, None)
    [f] = await calls(db, system_id, "f")
    await db.execute(_SEGMENT, [f])
    await db.execute("TRUNCATE calls, call_segments, call_ring_attempts")
    assert tuple(await db.fetchrow(_DETAILS)) == (None, None)
    # Changing a call's id while details point at it is refused.
    [g] = await calls(db, system_id, "g")
    await db.execute(_RING, [g])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE calls SET id = id + 100 WHERE id = $1", g)


async def test_a_call_needs_its_telephone_system(db: asyncpg.Connection) -> None:
    system_id = await system(db)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=f"system_id {system_id + 1} ") as caught:
        await calls(db, system_id + 1, "a")
    assert caught.value.table_name == "calls"
    [pk] = await calls(db, system_id, "b")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE calls SET system_id = $1 WHERE id = $2", system_id + 1, pk)
    # One statement for two systems, one of them unknown.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("INSERT INTO calls (system_id, call_id, direction, status, reason, start_time, end_time,"
                         " wait_seconds, talk_seconds, duration_seconds, transfer_count)"
                         " SELECT s, 'c' || s, 'incoming', 'missed', 'abandoned', now(), now(), 0, 0, 0, 0"
                         " FROM unnest($1::bigint[]) AS s", [system_id, system_id + 5])
    assert await db.fetchval("SELECT count(*) FROM calls") == 1


async def test_a_telephone_system_with_calls_cannot_be_deleted(db: asyncpg.Connection) -> None:
    used, unused = await system(db, "used"), await system(db, "unused")
    [pk] = await calls(db, used, "a")
    # The rollup's own key would refuse first: without rollup rows only the calls hold the system.
    await db.execute("DELETE FROM report_daily_totals")
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="telephone_systems") as caught:
        await db.execute("DELETE FROM telephone_systems WHERE id = $1", used)
    assert caught.value.sqlstate == "23503"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE telephone_systems SET id = id + 100 WHERE id = $1", used)
    await db.execute("UPDATE telephone_systems SET title = 'renamed' WHERE id = $1", used)
    await db.execute("DELETE FROM telephone_systems WHERE id = $1", unused)
    # As with NO ACTION, the check comes after the statement: deleting the calls in the same one passes.
    await db.execute("WITH gone AS (DELETE FROM calls WHERE system_id = $1) DELETE FROM telephone_systems"
                     " WHERE id = $1", used)
    assert await db.fetchval("SELECT count(*) FROM calls WHERE id = $1", pk) == 0


async def test_the_writers_own_calls_take_no_row_lock(db: asyncpg.Connection) -> None:
    """A transaction writing calls and their details locks no calls row (one join per statement instead);
    details for a call committed earlier lock it FOR KEY SHARE, once."""
    system_id = await system(db)
    record = CallRecord(
        system="test", call_id="1.1", direction="incoming", status="answered", reason=None, caller="100",
        callee="200", start=T0, answer=T0 + timedelta(seconds=2), end=T0 + timedelta(seconds=9),
        external_number=None, segments=(Segment("101", "answered", T0, T0 + timedelta(seconds=2),
                                                T0 + timedelta(seconds=9)),),
        rang=(RingAttempt("101", T0, T0 + timedelta(seconds=2), "answered"),),
    )
    await store.store_calls(db, system_id, [record])
    assert await db.fetchval("SELECT xmax::text FROM calls") == "0"
    # (Stored again, the upsert's update keeps its own exclusive lock on the new row version.)
    await store.store_calls(db, system_id, [record])
    assert await db.fetchval("SELECT count(*) FROM call_segments") == 1
    [pk] = await calls(db, system_id, "a")
    async with db.transaction():
        await db.execute(_SEGMENT, [pk])
        me = await db.fetchval("SELECT pg_current_xact_id()::xid::text")
        assert await db.fetchval("SELECT xmax::text FROM calls WHERE id = $1", pk) == me


async def test_a_concurrent_delete_never_leaves_orphans(db: asyncpg.Connection, db_dsn: str) -> None:
    """READ COMMITTED writers and deleters of the same call, both orders: the delete waits for the writer
    and takes its details along, or the writer waits for the delete and is refused."""
    system_id = await system(db)
    a, b = await calls(db, system_id, "a", "b")
    other = await asyncpg.connect(db_dsn)
    try:
        other_pid = await other.fetchval("SELECT pg_backend_pid()")
        # 1. The writer first: its details' call is locked until it commits.
        writer = db.transaction()
        await writer.start()
        await db.execute(_SEGMENT, [a])
        delete = asyncio.create_task(other.execute("DELETE FROM calls WHERE id = $1", a))
        assert await waiting_for_a_lock(db, other_pid)
        await writer.commit()
        assert await delete == "DELETE 1"
        assert await db.fetchval("SELECT count(*) FROM call_segments") == 0
        # 2. The delete first: the writer waits for it, then finds no call.
        deleter = other.transaction()
        await deleter.start()
        await other.execute("DELETE FROM calls WHERE id = $1", b)
        my_pid = await db.fetchval("SELECT pg_backend_pid()")
        write = asyncio.create_task(db.execute(_RING, [b]))
        assert await waiting_for_a_lock(other, my_pid)
        await deleter.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await write
        assert await db.fetchval("SELECT count(*) FROM call_ring_attempts") == 0
        # 3. A new call holds its system: deleting the system waits, then sees the call.
        await db.execute("DELETE FROM report_daily_totals")
        spare = await system(db, "spare")
        writer = db.transaction()
        await writer.start()
        await calls(db, spare, "c")
        await db.execute("DELETE FROM report_daily_totals")
        drop = asyncio.create_task(other.execute("DELETE FROM telephone_systems WHERE id = $1", spare))
        assert await waiting_for_a_lock(db, other_pid)
        await writer.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await drop
    finally:
        await other.close()


async def test_a_version_3_database_is_upgraded_in_place(db: asyncpg.Connection) -> None:
    """Version 3 had foreign keys where version 4 has triggers: init_schema swaps them, keeping every row."""
    v4_triggers = await db.fetchval(_TRIGGERS)
    assert len(v4_triggers) == 10
    assert await db.fetchval(_KEYS) is None
    # Turn this database into a version 3 one: no triggers, the three keys.
    for name in v4_triggers:
        table, trigger = name.split(".")
        await db.execute(f"DROP TRIGGER {trigger} ON {table}")
    for table, name, definition in _V3_KEYS:
        await db.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    await db.execute("UPDATE schema_version SET version = 3")
    system_id = await system(db)
    a, b = await calls(db, system_id, "a", "b")
    await db.execute(_SEGMENT, [a, b])
    await db.execute(_RING, [a])
    before = {t: [tuple(r) for r in await db.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")]
              for t in ("calls", "call_segments", "call_ring_attempts", "report_daily_totals")}

    assert await store.init_schema(db) == (3, 4)
    assert await db.fetchval(_KEYS) is None
    assert await db.fetchval(_TRIGGERS) == v4_triggers
    for table, rows in before.items():
        assert [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")] == rows, table
    # And the rules hold as before.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(_SEGMENT, [b + 100])
    await db.execute("DELETE FROM calls WHERE id = $1", a)
    assert tuple(await db.fetchrow(_DETAILS)) == ([b], None)
    assert await store.init_schema(db) == (4, 4)


async def test_the_range_of_new_calls_stands_only_for_calls_still_there(db: asyncpg.Connection) -> None:
    """calls_detail_check skips its lookups for call_pks in the unbroken id range the transaction's last insert
    into calls wrote; deleting one of those calls or changing its id forgets the range, so an orphan is still
    refused, inside and outside the range."""
    system_id = await system(db)
    for forget in ("DELETE FROM calls WHERE id = $1", "UPDATE calls SET id = id + 1000000 WHERE id = $1"):
        async with db.transaction():
            ids = await calls(db, system_id, "r1", "r2", "r3")
            assert ids == list(range(ids[0], ids[0] + 3))  # one unbroken range: the fast path
            assert await db.fetchval("SELECT current_setting('calltrail.new_calls', true)") == f"{ids[0]}:{ids[2]}"
            await db.execute(_SEGMENT, ids)  # every parent in the range: accepted without lookups
            await db.execute("DELETE FROM call_segments WHERE call_pk = $1", ids[1])
            await db.execute(forget, ids[1])
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with db.transaction():
                    await db.execute(_SEGMENT, [ids[1]])  # in the old range, but gone
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with db.transaction():
                    await db.execute(_RING, [ids[2] + 50])  # outside the range, never there
            await db.execute(_RING, [ids[0], ids[2]])  # still there: accepted (by lookups now)
        await db.execute("DELETE FROM calls WHERE system_id = $1", system_id)
