"""Bulk writes for the history import: new calls by COPY, stored ones left alone.

`store.store_calls` upserts a batch in one statement, fine for the daemon's trickle but not for a
year of history. Here the ids of a batch's calls are drawn from the `calls` sequence and the
calls, their segments and their ring attempts are COPYed straight into their tables, in one
transaction: optimistically, as a fresh import meets no stored call. When one is stored already
(a second import, the daemon), the COPY fails on the unique key and the batch is written again
through a staging table with INSERT ... ON CONFLICT DO NOTHING. So a second import adds nothing,
and calls the daemon stored from AMI are never overwritten by the coarser CDR view.

Measured alternatives (bench/RESULTS.md, "## CDR import"): staging everything and inserting with
one statement cost the server twice the CPU; COPY in text format cost it more to parse the
timestamps than the insert itself. The values are `store.call_row`'s, cheaper to encode: asyncpg
turns a float into the Decimal of its binary expansion before encoding it as numeric, so whole
seconds (all of a CDR's) go as ints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ingest import store
from ingest.records import CallRecord

if TYPE_CHECKING:
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
_UNIQUE_VIOLATION = "23505"  # unique_violation
# store._register_unmapped's statement: extensions seen on the wire that no assignment covers.
_UNMAPPED = """
INSERT INTO unmapped_extensions AS u (system_id, extension, first_seen, last_seen, call_count)
SELECT $1, $2, $3, $4, $5
WHERE NOT EXISTS (SELECT 1 FROM extension_assignments a
                  WHERE a.system_id = $1 AND a.extension = $2
                    AND a.valid_from <= $4 AND (a.valid_to IS NULL OR a.valid_to > $4))
ON CONFLICT (system_id, extension) DO UPDATE SET
    first_seen = least(u.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
    call_count = u.call_count + EXCLUDED.call_count
"""


def seconds_value(value: float) -> int | Decimal:
    """A numeric(12, 3) number of seconds, rounded as `store.call_row` rounds it: an int when whole."""
    rounded = round(value, 3)
    whole = int(rounded)
    return whole if whole == rounded else Decimal(f"{rounded:.3f}")


class BatchRows:
    """The rows one batch of calls writes: calls (id first, then CALL_COLUMNS), segments, ring attempts,
    and per extension the first and last call start and the call count (for unmapped_extensions)."""

    def __init__(self, ids: Sequence[int], system_id: int, records: Sequence[CallRecord], source: str) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.segments: list[tuple[Any, ...]] = []
        self.rings: list[tuple[Any, ...]] = []
        self.seen: dict[str, tuple[datetime, datetime, int]] = {}
        # One pass per call, computing what store.call_row's properties would compute again and again.
        for pk, record in zip(ids, records, strict=True):
            start, end, answer = record.start, record.end, record.answer
            agents: list[str] = []
            talk = 0.0
            for seq, s in enumerate(record.segments, start=1):
                seconds = s.talk_seconds
                talk += seconds
                agents.append(s.extension)
                self.segments.append((pk, seq, s.extension, s.began_by, s.ring_start, s.answer, s.end,
                                      seconds_value(seconds), s.channel))
            rang: dict[str, None] = {}
            for seq, a in enumerate(record.rang, start=1):
                rang[a.extension] = None
                self.rings.append((pk, seq, a.extension, a.start, a.end, a.outcome))
            wait = ((answer if answer is not None else end) - start).total_seconds()
            duration = (end - start).total_seconds()
            self.calls.append((
                pk, system_id, record.call_id, list(record.linkedids or (record.call_id,)), record.direction,
                record.status, record.reason, record.caller, record.caller_name, record.callee,
                record.external_number, start, answer, end, seconds_value(wait) if wait > 0 else 0,
                seconds_value(talk) if agents else 0, seconds_value(duration) if duration > 0 else 0,
                record.transfer_count, agents, list(rang), record.recovered, source,
            ))
            for extension in {*agents, *rang}:
                known = self.seen.get(extension)
                self.seen[extension] = (start, start, 1) if known is None else (
                    min(known[0], start), max(known[1], start), known[2] + 1)


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
    """Insert the calls not stored yet (one transaction; distinct call ids); returns how many were new."""
    if not records:
        return 0
    try:
        async with conn.transaction():
            await _relax_commit(conn)
            ids: list[int] = await conn.fetchval(
                "SELECT array_agg(nextval(pg_get_serial_sequence('calls', 'id'))) FROM generate_series(1, $1)",
                len(records))
            rows = BatchRows(ids, system_id, records, source)
            await conn.copy_records_to_table("calls", records=rows.calls, columns=["id", *CALL_COLUMNS])
            await _write_details(conn, system_id, rows)
        return len(records)
    except store.DATA_ERRORS as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
    # Some are stored already (a second import, the daemon): this batch goes the careful way.
    await prepare(conn)
    async with conn.transaction():
        await _relax_commit(conn)
        staged = BatchRows([0] * len(records), system_id, records, source).calls
        await conn.copy_records_to_table(_STAGE, records=[row[1:] for row in staged], columns=list(CALL_COLUMNS))
        columns = ", ".join(CALL_COLUMNS)
        inserted = await conn.fetch(
            f"INSERT INTO calls ({columns}) SELECT {columns} FROM {_STAGE}"
            " ON CONFLICT (system_id, call_id) DO NOTHING RETURNING id, call_id"
        )
        pks = {r["call_id"]: r["id"] for r in inserted}
        new = [r for r in records if r.call_id in pks]
        await _write_details(conn, system_id, BatchRows([pks[r.call_id] for r in new], system_id, new, source))
    return len(new)


async def _relax_commit(conn: asyncpg.Connection) -> None:
    # Not waiting for each batch's WAL flush: a crash loses at most the last batches, which
    # running the (idempotent) import again adds back.
    await conn.execute("SET LOCAL synchronous_commit TO off")


async def _write_details(conn: asyncpg.Connection, system_id: int, rows: BatchRows) -> None:
    """The segments and ring attempts of the calls just inserted, and the unmapped extensions they show."""
    if rows.segments:
        await conn.copy_records_to_table("call_segments", records=rows.segments, columns=SEGMENT_COLUMNS)
    if rows.rings:
        await conn.copy_records_to_table("call_ring_attempts", records=rows.rings, columns=RING_COLUMNS)
    if rows.seen:
        await conn.executemany(
            _UNMAPPED, [(system_id, ext, first, last, count) for ext, (first, last, count) in rows.seen.items()])
