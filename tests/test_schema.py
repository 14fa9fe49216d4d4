"""schema.sql itself: constraints reject impossible rows, the idempotent key holds, init is repeatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest import store
from ingest.config import SystemConfig
from ingest.records import CallRecord, RingAttempt, Segment

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def answered_call(call_id: str = "1795687394.123") -> CallRecord:
    """An incoming call answered by 101 then blind-transferred to 102."""
    return CallRecord(
        system="test", call_id=call_id, direction="incoming", status="answered", reason=None,
        caller="09121234567", callee="02191001000", start=T0, answer=T0 + timedelta(seconds=5),
        end=T0 + timedelta(seconds=65), external_number="+989121234567", linkedids=(call_id,),
        segments=(
            Segment("101", "answered", T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=30)),
            Segment("102", "blind_transfer", T0 + timedelta(seconds=30), T0 + timedelta(seconds=35),
                    T0 + timedelta(seconds=65)),
        ),
        rang=(RingAttempt("101", T0, T0 + timedelta(seconds=5), "answered"),
              RingAttempt("102", T0 + timedelta(seconds=30), T0 + timedelta(seconds=35), "answered")),
    )


async def test_store_is_idempotent_on_system_and_call_id(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    record = answered_call()
    assert await store.store_calls(db, system_id, [record]) == 1
    assert await store.store_calls(db, system_id, [record]) == 1
    assert await db.fetchval("SELECT count(*) FROM calls") == 1
    assert await db.fetchval("SELECT count(*) FROM call_segments") == 2
    assert await db.fetchval("SELECT count(*) FROM call_ring_attempts") == 2
    row = await db.fetchrow("SELECT transfer_count, talk_seconds, agents FROM calls")
    assert row["transfer_count"] == 2
    assert float(row["talk_seconds"]) == 55.0
    assert row["agents"] == ["101", "102"]
    # Unmapped extensions are counted once per call, not once per store.
    counts = dict(await db.fetch("SELECT extension, call_count FROM unmapped_extensions"))
    assert counts == {"101": 1, "102": 1}


async def test_same_call_id_on_two_systems_is_two_calls(db: asyncpg.Connection) -> None:
    first = await store.ensure_system(db, SystemConfig(name="a"))
    second = await store.ensure_system(db, SystemConfig(name="b", branch="other"))
    await store.store_calls(db, first, [answered_call()])
    await store.store_calls(db, second, [answered_call()])
    assert await db.fetchval("SELECT count(*) FROM calls") == 2


async def test_unique_key_rejects_a_plain_duplicate(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    await store.store_calls(db, system_id, [answered_call()])
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO calls (system_id, call_id, direction, status, reason, start_time, end_time,"
            " wait_seconds, talk_seconds, duration_seconds, transfer_count)"
            " VALUES ($1, '1795687394.123', 'incoming', 'missed', 'abandoned', now(), now(), 0, 0, 0, 0)",
            system_id,
        )


BAD_CALLS = {
    "unknown direction": "'sideways', 'missed', 'abandoned', 0, 0, 0",
    "negative wait": "'incoming', 'missed', 'abandoned', -1, 0, 0",
    "missed outgoing": "'outgoing', 'missed', 'no_answer', 0, 0, 0",
    "missed with talk time": "'incoming', 'missed', 'abandoned', 0, 5, 0",
    "missed with transfers": "'incoming', 'missed', 'abandoned', 0, 0, 1",
    "answered without transfer count": "'incoming', 'answered', NULL, 0, 5, 0",
    "missed without reason": "'incoming', 'missed', NULL, 0, 0, 0",
    "unknown reason": "'incoming', 'missed', 'bored', 0, 0, 0",
}


@pytest.mark.parametrize("values", BAD_CALLS.values(), ids=list(BAD_CALLS))
async def test_constraints_reject_impossible_calls(db: asyncpg.Connection, values: str) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO calls (system_id, call_id, direction, status, reason, wait_seconds, talk_seconds,"
            f" transfer_count, start_time, end_time, duration_seconds) VALUES ($1, 'x', {values},"
            " now(), now(), 0)",
            system_id,
        )


async def test_end_before_start_is_rejected(db: asyncpg.Connection) -> None:
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO calls (system_id, call_id, direction, status, reason, wait_seconds, talk_seconds,"
            " transfer_count, start_time, end_time, duration_seconds) VALUES ($1, 'x', 'incoming', 'missed',"
            " 'abandoned', 0, 0, 0, now(), now() - interval '1 second', 0)",
            system_id,
        )


async def test_bad_roles_numbers_and_assignment_periods_are_rejected(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO users (username, roles) VALUES ('x', ARRAY['janitor'])")
    user_id = await db.fetchval("INSERT INTO users (username, roles) VALUES ('ali', ARRAY['agent']) RETURNING id")
    system_id = await store.ensure_system(db, SystemConfig(name="test"))
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO extension_assignments (system_id, extension, user_id, valid_from, valid_to)"
            " VALUES ($1, '101', $2, now(), now() - interval '1 day')",
            system_id, user_id,
        )
    identity = await db.fetchval("INSERT INTO identities (kind, name) VALUES ('person', 'x') RETURNING id")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO identity_numbers (identity_id, number_e164) VALUES ($1, '09121234567')", identity)


async def test_init_schema_twice_changes_nothing(db: asyncpg.Connection) -> None:
    version = store.schema_file_version()
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    triggers = "SELECT array_agg(tgname ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal"
    keys = "SELECT array_agg(conname ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"
    before = [await db.fetchval(q) for q in (tables, triggers, keys)]
    applied_at = await db.fetchval("SELECT applied_at FROM schema_version")
    assert await store.init_schema(db) == (version, version)
    assert await store.init_schema(db) == (version, version)
    assert [await db.fetchval(q) for q in (tables, triggers, keys)] == before
    assert await db.fetchval("SELECT applied_at FROM schema_version") == applied_at
    assert await db.fetchval("SELECT count(*) FROM schema_version") == 1
