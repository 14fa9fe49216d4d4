"""Bulk writes for the history import: new calls by COPY, existing ones left alone.

`store.store_calls` upserts one statement per batch, fine for the daemon's trickle but not for a
year of history. Here the ids of a batch's new calls are drawn from the `calls` sequence and the
calls, their segments and their ring attempts are COPYed straight into their tables, in one
transaction. The caller has already left out the calls that are stored; should one be stored
meanwhile (the daemon, a second import), the COPY fails on the unique key and the batch is written
again through a staging table with INSERT ... ON CONFLICT DO NOTHING, so a second import adds
nothing and calls the daemon stored from AMI are never overwritten by the coarser CDR view.

The rows travel in COPY's text format, written here: asyncpg's binary encoding of the same rows
(text arrays, floats into numeric) cost about three times as much client CPU, and the client is
the import's bottleneck. The columns and values are `store.call_row`'s (the tests check they agree).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

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
_UNIQUE_VIOLATION = "23505"
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = ("\\", "\t", "\n", "\r", '"')


def text_field(value: str | None) -> str:
    """A text value in COPY's text format."""
    if value is None:
        return _NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def array_field(items: Sequence[str]) -> str:
    """A text[] value in COPY's text format (every element quoted, so none needs more care)."""
    if not items:
        return "{}"
    body = '","'.join(items)
    if any(special in body for special in _SPECIAL):
        quoted = ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
        return ("{" + quoted + "}").translate(_COPY_ESCAPES)
    return '{"' + body + '"}'


def time_field(value: datetime | None) -> str:
    """A timestamptz in COPY's text format (ISO 8601 with its offset)."""
    return _NULL if value is None else value.isoformat()


def seconds_field(value: float) -> str:
    """A numeric(12, 3) number of seconds, rounded as `store.call_row` rounds it."""
    rounded = round(value, 3)
    whole = int(rounded)
    return str(whole) if whole == rounded else f"{rounded:.3f}"


def call_line(system_id: int, record: CallRecord, source: str) -> str:
    """The `calls` row of one record (CALL_COLUMNS) as a line of COPY text, without its newline."""
    segments = record.segments
    start, end, answer = record.start, record.end, record.answer
    wait = ((answer if answer is not None else end) - start).total_seconds()
    duration = (end - start).total_seconds()
    rang = list(dict.fromkeys([a.extension for a in record.rang])) if record.rang else []
    return "\t".join((
        str(system_id), text_field(record.call_id), array_field(record.linkedids or (record.call_id,)),
        record.direction, record.status, record.reason or _NULL, text_field(record.caller),
        text_field(record.caller_name), text_field(record.callee), text_field(record.external_number),
        start.isoformat(), time_field(answer), end.isoformat(), seconds_field(wait if wait > 0 else 0.0),
        seconds_field(record.talk_seconds) if segments else "0", seconds_field(duration if duration > 0 else 0.0),
        str(record.transfer_count), array_field([s.extension for s in segments]), array_field(rang),
        "t" if record.recovered else "f", source,
    ))


def detail_lines(pks: Mapping[str, int], records: Sequence[CallRecord]) -> tuple[list[str], list[str]]:
    """The call_segments and call_ring_attempts rows of `records` as lines of COPY text."""
    segments: list[str] = []
    rings: list[str] = []
    for record in records:
        pk = str(pks[record.call_id])
        for seq, s in enumerate(record.segments, start=1):
            segments.append("\t".join((
                pk, str(seq), text_field(s.extension), s.began_by, time_field(s.ring_start), s.answer.isoformat(),
                s.end.isoformat(), seconds_field(s.talk_seconds), text_field(s.channel),
            )))
        for seq, a in enumerate(record.rang, start=1):
            rings.append("\t".join((
                pk, str(seq), text_field(a.extension), a.start.isoformat(), time_field(a.end), a.outcome,
            )))
    return segments, rings


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
    lines = [call_line(system_id, r, source) for r in records]
    try:
        async with conn.transaction():
            await _relax_commit(conn)
            ids: list[int] = await conn.fetchval(
                "SELECT array_agg(nextval(pg_get_serial_sequence('calls', 'id'))) FROM generate_series(1, $1)",
                len(lines))
            await _copy(conn, "calls", [f"{pk}\t{line}" for pk, line in zip(ids, lines, strict=True)],
                        ["id", *CALL_COLUMNS])
            await _copy_details(conn, system_id, dict(zip((r.call_id for r in records), ids, strict=True)), records)
        return len(records)
    except store.DATA_ERRORS as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
    # Stored meanwhile by someone else: this batch goes the careful way.
    await prepare(conn)
    async with conn.transaction():
        await _relax_commit(conn)
        await _copy(conn, _STAGE, lines, list(CALL_COLUMNS))
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


async def _copy(conn: asyncpg.Connection, table: str, lines: list[str], columns: list[str]) -> None:
    if not lines:
        return
    data = ("\n".join(lines) + "\n").encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await conn.copy_to_table(table, source=chunks(), columns=columns, format="text")


async def _copy_details(conn: asyncpg.Connection, system_id: int, pks: Mapping[str, int],
                        new: Sequence[CallRecord]) -> None:
    """The segments and ring attempts of the calls just inserted, and the unmapped extensions they show."""
    segments, rings = detail_lines(pks, new)
    await _copy(conn, "call_segments", segments, SEGMENT_COLUMNS)
    await _copy(conn, "call_ring_attempts", rings, RING_COLUMNS)
    # The same bookkeeping as the daemon's writes: extensions nobody is assigned to.
    await store._register_unmapped(conn, system_id, new)
