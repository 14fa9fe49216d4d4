"""store_calls writes a whole batch in one statement: every column, re-stores, unmapped and checkpoint."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest import store
from ingest.config import SystemConfig
from ingest.records import CallRecord, RingAttempt, Segment

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
AWKWARD = ('q"uote', "back\\slash", "comma,brace{}", "NULL", "", "علی رضایی")


def call(call_id: str, *agents: str, rang: tuple[str, ...] = (), minutes: int = 0) -> CallRecord:
    """An incoming call answered by `agents` in turn (missed when none), `rang` ringing first."""
    start = T0 + timedelta(minutes=minutes)
    segments = tuple(
        Segment(ext, "answered" if n == 0 else "blind_transfer", start + timedelta(seconds=10 * n),
                start + timedelta(seconds=10 * n + 2), start + timedelta(seconds=10 * n + 10), channel=f"PJSIP/{ext}-1")
        for n, ext in enumerate(agents)
    )
    attempts = tuple(
        RingAttempt(ext, start, start + timedelta(seconds=2), "answered" if ext in agents else "no_answer")
        for ext in rang or agents
    )
    end = start + timedelta(seconds=10 * max(1, len(agents)))
    return CallRecord(
        system="test", call_id=call_id, direction="incoming", status="answered" if agents else "missed",
        reason=None if agents else "abandoned", caller="09121234567", callee="02191001000", start=start,
        answer=segments[0].answer if segments else None, end=end, external_number="+989121234567",
        linkedids=(call_id,), segments=segments, rang=attempts,
    )


async def rows(db: asyncpg.Connection, sql: str) -> list[tuple[object, ...]]:
    """The query's rows as tuples."""
    return [tuple(r) for r in await db.fetch(sql)]


async def test_every_column_round_trips_including_awkward_text(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    record = replace(call("1795687394.1", "101", "102"), linkedids=("1795687394.1", *AWKWARD),
                     caller_name='Ali "the" \\ رضایی', recovered=True)
    assert await store.store_calls(db, system_id, [record], source="replay") == 1
    row = await db.fetchrow("SELECT * FROM calls")
    assert row["linkedids"] == ["1795687394.1", *AWKWARD]
    assert row["caller_name"] == 'Ali "the" \\ رضایی'
    assert row["agents"] == ["101", "102"]
    assert row["rang"] == ["101", "102"]
    assert (row["direction"], row["status"], row["reason"], row["recovered"], row["source"]) == (
        "incoming", "answered", None, True, "replay")
    assert (row["start_time"], row["answer_time"], row["end_time"]) == (record.start, record.answer, record.end)
    assert [float(row[k]) for k in ("wait_seconds", "talk_seconds", "duration_seconds")] == [2.0, 16.0, 20.0]
    assert row["transfer_count"] == 2
    assert row["external_number"] == "+989121234567"
    segments = await rows(db, "SELECT seq, extension, began_by, ring_start, answer_time, end_time, "
                              "talk_seconds::float8, channel FROM call_segments ORDER BY seq")
    assert segments == [
        (n, s.extension, s.began_by, s.ring_start, s.answer, s.end, s.talk_seconds, s.channel)
        for n, s in enumerate(record.segments, start=1)
    ]
    attempts = await rows(db, "SELECT seq, extension, start_time, end_time, outcome FROM call_ring_attempts "
                              "ORDER BY seq")
    assert attempts == [(n, a.extension, a.start, a.end, a.outcome) for n, a in enumerate(record.rang, start=1)]


async def test_storing_again_replaces_turns_and_ring_attempts(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    await store.store_calls(db, system_id, [call("1.1", "101", "102", rang=("101", "103", "102")), call("1.2", "104")])
    # The same call again, finished differently: fewer turns, fewer attempts; another call gains some.
    await store.store_calls(db, system_id, [call("1.1", "105"), call("1.2", "104", "106", "107")])
    by_call = await rows(db, "SELECT c.call_id, s.seq, s.extension FROM call_segments s"
                             " JOIN calls c ON c.id = s.call_pk ORDER BY 1, 2")
    assert by_call == [("1.1", 1, "105"), ("1.2", 1, "104"), ("1.2", 2, "106"), ("1.2", 3, "107")]
    rang = await rows(db, "SELECT c.call_id, r.seq, r.extension FROM call_ring_attempts r"
                          " JOIN calls c ON c.id = r.call_pk ORDER BY 1, 2")
    assert rang == [("1.1", 1, "105"), ("1.2", 1, "104"), ("1.2", 2, "106"), ("1.2", 3, "107")]
    assert await rows(db, "SELECT call_id, agents FROM calls ORDER BY 1") == [
        ("1.1", ["105"]), ("1.2", ["104", "106", "107"])]
    # A call that became missed keeps no turn at all.
    await store.store_calls(db, system_id, [call("1.2")])
    assert await db.fetchval("SELECT count(*) FROM call_segments s JOIN calls c ON c.id = s.call_pk"
                             " WHERE c.call_id = '1.2'") == 0


async def test_a_batch_naming_a_call_twice_keeps_the_last(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    assert await store.store_calls(db, system_id, [call("1.1", "101"), call("1.2"), call("1.1", "102")]) == 2
    assert await rows(db, "SELECT call_id, agents FROM calls ORDER BY 1") == [("1.1", ["102"]), ("1.2", [])]


async def test_checkpoint_and_unmapped_count_only_calls_seen_first(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    user = await db.fetchval("INSERT INTO users (username) VALUES ('sara') RETURNING id")
    # 102 belongs to Sara from minute 30 on: before that it is unmapped, after it is not.
    await db.execute("INSERT INTO extension_assignments (system_id, extension, user_id, valid_from)"
                     " VALUES ($1, '102', $2, $3)", system_id, user, T0 + timedelta(minutes=30))
    seen_at = T0 + timedelta(hours=1)
    await store.store_calls(db, system_id, [call("1.1", "101", rang=("101", "102")), call("1.2", "102", minutes=5)],
                            checkpoint="1:100", last_event_at=seen_at)
    state = await db.fetchrow("SELECT checkpoint, calls_stored, last_event_at, last_call_stored_at FROM ingest_state")
    assert (state["checkpoint"], state["calls_stored"], state["last_event_at"]) == ("1:100", 2, seen_at)
    assert state["last_call_stored_at"] is not None
    # 1.1 again (no new count) and 1.3, whose 102 is assigned by then.
    await store.store_calls(db, system_id, [call("1.1", "101"), call("1.3", "101", "102", minutes=40)],
                            checkpoint="1:200")
    state = await db.fetchrow("SELECT checkpoint, calls_stored, last_event_at FROM ingest_state")
    assert (state["checkpoint"], state["calls_stored"], state["last_event_at"]) == ("1:200", 3, seen_at)
    unmapped = await rows(db, "SELECT extension, first_seen, last_seen, call_count FROM unmapped_extensions ORDER BY 1")
    assert unmapped == [
        ("101", T0, T0 + timedelta(minutes=40), 2),
        ("102", T0, T0 + timedelta(minutes=5), 2),
    ]
    # Without a checkpoint nothing is counted in ingest_state (the call-by-call fallback path).
    await store.store_calls(db, system_id, [call("1.4", "101")])
    assert await db.fetchval("SELECT calls_stored FROM ingest_state") == 3
    # A checkpoint alone advances too.
    assert await store.store_calls(db, system_id, [], checkpoint="2:0") == 0
    assert await db.fetchval("SELECT checkpoint FROM ingest_state") == "2:0"


async def test_a_refused_call_leaves_the_whole_batch_unwritten(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    bad = replace(call("1.2", "101"), external_number="not a number")
    with pytest.raises(asyncpg.CheckViolationError):
        await store.store_calls(db, system_id, [call("1.1", "101"), bad], checkpoint="1:1")
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
    assert await db.fetchval("SELECT count(*) FROM call_segments") == 0
    assert await db.fetchval("SELECT count(*) FROM ingest_state") == 0
    assert await db.fetchval("SELECT count(*) FROM unmapped_extensions") == 0


async def test_a_large_batch_in_one_statement(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    records = [call(f"1.{n}", *(["101", "102"] if n % 3 else []), rang=("101", "102", "103")) for n in range(500)]
    assert await store.store_calls(db, system_id, records, checkpoint="1:5") == 500
    assert await db.fetchval("SELECT count(*) FROM calls") == 500
    assert await db.fetchval("SELECT count(*) FROM call_segments") == 2 * sum(1 for n in range(500) if n % 3)
    assert await db.fetchval("SELECT count(*) FROM call_ring_attempts") == 1500
    assert await db.fetchval("SELECT calls_stored FROM ingest_state") == 500
