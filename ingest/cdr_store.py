"""Bulk writes for the history import: new calls by COPY, existing ones left alone.

`store.store_calls` upserts one statement per batch, fine for the daemon's trickle but not for a
year of history. Here the ids of a batch's new calls are drawn from the `calls` sequence and the
calls, their segments and their ring attempts are COPYed straight into their tables, in one
transaction. The caller has already left out the calls that are stored; should one be stored
meanwhile (the daemon, a second import), the COPY fails on the unique key and the batch is written
again through a staging table with INSERT ... ON CONFLICT DO NOTHING, so a second import adds
nothing and calls the daemon stored from AMI are never overwritten by the coarser CDR view.
The columns and values are `store.call_row`'s (the test suite checks they agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ingest import store
from ingest.records import CallRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

    import asyncpg

CALL_COLUMNS: tuple[str, ...] = (
    "system_id", "call_id", "linkedids", "direction", "status", "reason", "caller", "caller_name", "callee",
    "external_number", "start_time", "answer_time", "end_time", "wait_seconds", "talk_seconds", "duration_seconds",
    "transfer_count", "agents", "rang", "recovered", "source",
)
SEGMENT_COLUMNS = ["call_pk", "seq", "extension", "began_by", "ring_start", "answer_time", "end_time", "talk_seconds",
                   "channel"]
RING_COLUMNS = ["call_pk", "seq", "extension", "start_time", "end_time", "outcome"]
_STAGE = "calltrail_cdr_stage"
_UNIQUE_VIOLATION = "23505"


def seconds_value(value: float) -> int | Decimal:
    """A numeric(12, 3) value as asyncpg encodes it cheaply: whole seconds as int, else a 3-place Decimal.

    asyncpg turns a float into a Decimal of its exact binary expansion (dozens of digits) before
    encoding it; CDR times are whole seconds, and an int costs a fraction of that.
    """
    rounded = round(value, 3)
    whole = int(rounded)
    return whole if whole == rounded else Decimal(f"{rounded:.3f}")


def call_values(system_id: int, record: CallRecord, source: str) -> tuple[Any, ...]:
    """`store.call_row` with cheaply encoded numerics (the same values in the database)."""
    segments = record.segments
    if record.rang:
        rang = list(dict.fromkeys(a.extension for a in record.rang))
    else:
        rang = []
    return (
        system_id, record.call_id, list(record.linkedids or (record.call_id,)), record.direction,
        record.status, record.reason, record.caller, record.caller_name, record.callee,
        record.external_number, record.start, record.answer, record.end,
        seconds_value(record.wait_seconds), seconds_value(record.talk_seconds) if segments else 0,
        seconds_value(record.duration_seconds), record.transfer_count, [s.extension for s in segments], rang,
        record.recovered, source,
    )


async def prepare(conn: asyncpg.Connection) -> None:
    """Create this session's staging table (once per connection), for batches that meet a stored call."""
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE calls INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


async def existing_calls(conn: asyncpg.Connection, system_id: int, call_ids: Sequence[str]) -> dict[str, str]:
    """call_id -> source of the calls among `call_ids` that are already stored."""
    rows = await conn.fetch("SELECT call_id, source FROM calls WHERE system_id = $1 AND call_id = ANY($2)",
                            system_id, list(call_ids))
    return {r["call_id"]: r["source"] for r in rows}


async def insert_new_calls(
    conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord], *, source: str = "cdr"
) -> int:
    """Insert the calls not stored yet (one transaction, distinct call ids); returns how many were new."""
    if not records:
        return 0
    rows = [call_values(system_id, r, source) for r in records]
    try:
        async with conn.transaction():
            await _relax_commit(conn)
            ids: list[int] = await conn.fetchval(
                "SELECT array_agg(nextval(pg_get_serial_sequence('calls', 'id'))) FROM generate_series(1, $1)",
                len(rows))
            await conn.copy_records_to_table("calls", records=[(pk, *row) for pk, row in zip(ids, rows, strict=True)],
                                             columns=["id", *CALL_COLUMNS])
            await _copy_details(conn, system_id, dict(zip((r.call_id for r in records), ids, strict=True)), records)
        return len(records)
    except store.DATA_ERRORS as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        # Stored meanwhile by someone else: this batch goes the careful way.
        return await _insert_via_stage(conn, system_id, records, rows)


async def _insert_via_stage(conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord],
                            rows: list[tuple[Any, ...]]) -> int:
    await prepare(conn)
    async with conn.transaction():
        await _relax_commit(conn)
        await conn.copy_records_to_table(_STAGE, records=rows, columns=list(CALL_COLUMNS))
        columns = ", ".join(CALL_COLUMNS)
        inserted = await conn.fetch(
            f"INSERT INTO calls ({columns}) SELECT {columns} FROM {_STAGE}"
            " ON CONFLICT (system_id, call_id) DO NOTHING RETURNING id, call_id"
        )
        pks = {r["call_id"]: r["id"] for r in inserted}
        new = [r for r in records if r.call_id in pks]
        await _copy_details(conn, system_id, pks, new)
    return len(new)


async def _relax_commit(conn: asyncpg.Connection) -> None:
    # Not waiting for each batch's WAL flush: a crash loses at most the last batches, which
    # running the (idempotent) import again adds back.
    await conn.execute("SET LOCAL synchronous_commit TO off")


async def _copy_details(conn: asyncpg.Connection, system_id: int, pks: Mapping[str, int],
                        new: Sequence[CallRecord]) -> None:
    """The segments and ring attempts of the calls just inserted, and the unmapped extensions they show."""
    await conn.copy_records_to_table(
        "call_segments",
        records=[(pks[r.call_id], seq, s.extension, s.began_by, s.ring_start, s.answer, s.end,
                  seconds_value(s.talk_seconds), s.channel) for r in new for seq, s in enumerate(r.segments, start=1)],
        columns=SEGMENT_COLUMNS,
    )
    await conn.copy_records_to_table(
        "call_ring_attempts",
        records=[(pks[r.call_id], seq, a.extension, a.start, a.end, a.outcome)
                 for r in new for seq, a in enumerate(r.rang, start=1)],
        columns=RING_COLUMNS,
    )
    # The same bookkeeping as the daemon's writes: extensions nobody is assigned to.
    await store._register_unmapped(conn, system_id, new)
