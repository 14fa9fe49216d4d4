"""PostgreSQL on the ingest side: the only module here importing asyncpg.

Connects (to the configured DSN or the embedded server), applies schema.sql, and stores finished
calls idempotently on (telephone system, call id): storing a call again replaces its row, its
segments and its ring attempts, never duplicates them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from ingest.config import SystemConfig
from ingest.errors import DatabaseError
from ingest.records import CallRecord

log = logging.getLogger(__name__)

# Lock key so two `db init` runs never apply the schema at the same time.
_SCHEMA_LOCK = 0x43414C4C  # "CALL"

# Errors meaning "the server is not there (now)": worth a retry, not a crash.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
)
# Worth a retry later: no server, or no answer in time.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, TimeoutError)
# Errors about what was sent (a constraint, a bad value): retrying the same data cannot help.
DATA_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError,)


def schema_sql() -> str:
    """The text of schema.sql (installed beside the package, or in the source tree)."""
    source_tree = Path(__file__).resolve().parent.parent / "schema.sql"
    if source_tree.exists():
        return source_tree.read_text(encoding="utf-8")
    return resources.files("ingest").joinpath("schema.sql").read_text(encoding="utf-8")


def schema_file_version() -> int:
    """The version number schema.sql sets."""
    text = schema_sql()
    marker = "INSERT INTO schema_version (singleton, version) VALUES (true, "
    return int(text[text.index(marker) + len(marker):].split(")", 1)[0])


async def connect(dsn: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """Open one connection, turning failures into a DatabaseError that names the server."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=timeout)
    except (*CONNECTION_ERRORS, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {_where(dsn)}: {exc}") from exc
    return conn


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A connection pool, with the same error translation as `connect`."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=10.0)
    except (*CONNECTION_ERRORS, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {_where(dsn)}: {exc}") from exc
    assert pool is not None
    return pool


def _where(dsn: str) -> str:
    from ingest.config import redact_dsn

    return redact_dsn(dsn)


@dataclass(frozen=True)
class SchemaStatus:
    """What `db status` reports."""

    server_version: str
    database: str
    schema_version: int | None
    calls: int | None


async def init_schema(conn: asyncpg.Connection) -> tuple[int | None, int]:
    """Apply schema.sql; returns (version before, version after). Safe to run again."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        before = await _schema_version(conn)
        await conn.execute(schema_sql())
        after = await _schema_version(conn)
    assert after is not None
    return before, after


async def _schema_version(conn: asyncpg.Connection) -> int | None:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return None
    version: int | None = await conn.fetchval("SELECT version FROM schema_version")
    return version


async def schema_status(conn: asyncpg.Connection) -> SchemaStatus:
    """Server version, database name, schema version and call count."""
    version = await _schema_version(conn)
    calls = await conn.fetchval("SELECT count(*) FROM calls") if version is not None else None
    return SchemaStatus(
        server_version=str(await conn.fetchval("SHOW server_version")),
        database=str(await conn.fetchval("SELECT current_database()")),
        schema_version=version,
        calls=calls,
    )


async def ensure_system(conn: asyncpg.Connection, system: SystemConfig) -> int:
    """The id of `system` in telephone_systems, creating it (and its branch) when new."""
    system_id: int | None = await conn.fetchval(
        "SELECT id FROM telephone_systems WHERE name = $1", system.name
    )
    if system_id is not None:
        return system_id
    async with conn.transaction():
        branch_id = await conn.fetchval(
            "INSERT INTO branches (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
            " RETURNING id",
            system.branch,
        )
        system_id = await conn.fetchval(
            """INSERT INTO telephone_systems (branch_id, name, ami_host, ami_port, country_code, city_code,
                   outgoing_prefix, timezone, extension_from, extension_pattern, trunk_patterns,
                   inbound_contexts)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
               RETURNING id""",
            branch_id, system.name, system.host, system.port, system.country_code, system.city_code,
            system.outgoing_prefix, system.timezone, system.extension_from, system.extension_pattern,
            list(system.trunks), list(system.inbound_contexts),
        )
    assert system_id is not None
    return system_id


_UPSERT_CALL = """
INSERT INTO calls (system_id, call_id, linkedids, direction, status, reason, caller, caller_name, callee,
                   external_number, start_time, answer_time, end_time, wait_seconds, talk_seconds,
                   duration_seconds, transfer_count, agents, rang, recovered, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (system_id, call_id) DO UPDATE SET
    linkedids = EXCLUDED.linkedids, direction = EXCLUDED.direction, status = EXCLUDED.status,
    reason = EXCLUDED.reason, caller = EXCLUDED.caller, caller_name = EXCLUDED.caller_name,
    callee = EXCLUDED.callee, external_number = EXCLUDED.external_number,
    start_time = EXCLUDED.start_time, answer_time = EXCLUDED.answer_time, end_time = EXCLUDED.end_time,
    wait_seconds = EXCLUDED.wait_seconds, talk_seconds = EXCLUDED.talk_seconds,
    duration_seconds = EXCLUDED.duration_seconds, transfer_count = EXCLUDED.transfer_count,
    agents = EXCLUDED.agents, rang = EXCLUDED.rang, recovered = EXCLUDED.recovered,
    source = EXCLUDED.source, stored_at = now()
RETURNING id, (xmax = 0) AS inserted
"""


def call_row(system_id: int, record: CallRecord, source: str) -> tuple[Any, ...]:
    """The `calls` row of one record, in _UPSERT_CALL's parameter order."""
    return (
        system_id, record.call_id, list(record.linkedids or (record.call_id,)), record.direction,
        record.status, record.reason, record.caller, record.caller_name, record.callee,
        record.external_number, record.start, record.answer, record.end,
        round(record.wait_seconds, 3), round(record.talk_seconds, 3), round(record.duration_seconds, 3),
        record.transfer_count, list(record.agents), list(record.rang_extensions), record.recovered, source,
    )


# The whole batch in ONE statement (one round trip between BEGIN and COMMIT): the calls are
# upserted from parallel arrays, and the CTEs chained on their RETURNING write the segments and ring
# attempts, drop the surplus turns of a call stored again, register unmapped extensions (for calls
# seen the first time only) and advance the checkpoint. Sibling CTEs never touch the same row: the
# upserts write seq 1..n, the deletes seq > n. Text arrays (linkedids, agents, rang) travel as array
# literals because unnest cannot take ragged arrays. Measured against per-call round trips and COPY
# into a staging table in bench/store_write.py (results in bench/RESULTS.md, "## Daemon").
_STORE_BATCH = """
WITH input AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
                         $16::float8[], $17::float8[], $18::float8[], $19::int[], $20::text[], $21::text[],
                         $22::bool[], $23::int[], $24::int[], $25::text[])
        AS u(call_id, linkedids, direction, status, reason, caller, caller_name, callee, start_time,
             answer_time, end_time, wait_seconds, talk_seconds, duration_seconds, transfer_count, agents,
             rang, recovered, segment_count, ring_count, external_number)
),
c AS (
    INSERT INTO calls AS t (system_id, call_id, linkedids, direction, status, reason, caller, caller_name,
                            callee, external_number, start_time, answer_time, end_time, wait_seconds,
                            talk_seconds, duration_seconds, transfer_count, agents, rang, recovered, source)
    SELECT $1, i.call_id, i.linkedids::text[], i.direction, i.status, i.reason, i.caller, i.caller_name,
           i.callee, i.external_number, i.start_time, i.answer_time, i.end_time, i.wait_seconds,
           i.talk_seconds, i.duration_seconds, i.transfer_count, i.agents::text[], i.rang::text[],
           i.recovered, $2
    FROM input i
    ON CONFLICT (system_id, call_id) DO UPDATE SET
        linkedids = EXCLUDED.linkedids, direction = EXCLUDED.direction, status = EXCLUDED.status,
        reason = EXCLUDED.reason, caller = EXCLUDED.caller, caller_name = EXCLUDED.caller_name,
        callee = EXCLUDED.callee, external_number = EXCLUDED.external_number,
        start_time = EXCLUDED.start_time, answer_time = EXCLUDED.answer_time, end_time = EXCLUDED.end_time,
        wait_seconds = EXCLUDED.wait_seconds, talk_seconds = EXCLUDED.talk_seconds,
        duration_seconds = EXCLUDED.duration_seconds, transfer_count = EXCLUDED.transfer_count,
        agents = EXCLUDED.agents, rang = EXCLUDED.rang, recovered = EXCLUDED.recovered,
        source = EXCLUDED.source, stored_at = now()
    RETURNING t.id, t.call_id, (t.xmax = 0) AS inserted
),
segments AS (
    INSERT INTO call_segments AS s (call_pk, seq, extension, began_by, ring_start, answer_time, end_time,
                                    talk_seconds, channel)
    SELECT c.id, u.seq, u.extension, u.began_by, u.ring_start, u.answer_time, u.end_time, u.talk_seconds,
           u.channel
    FROM unnest($26::text[], $27::int[], $28::text[], $29::text[], $30::timestamptz[], $31::timestamptz[],
                $32::timestamptz[], $33::float8[], $34::text[])
        AS u(call_id, seq, extension, began_by, ring_start, answer_time, end_time, talk_seconds, channel)
    JOIN c USING (call_id)
    ON CONFLICT (call_pk, seq) DO UPDATE SET
        extension = EXCLUDED.extension, began_by = EXCLUDED.began_by, ring_start = EXCLUDED.ring_start,
        answer_time = EXCLUDED.answer_time, end_time = EXCLUDED.end_time,
        talk_seconds = EXCLUDED.talk_seconds, channel = EXCLUDED.channel
),
surplus_segments AS (
    DELETE FROM call_segments s USING c JOIN input i USING (call_id)
    WHERE NOT c.inserted AND s.call_pk = c.id AND s.seq > i.segment_count
),
rings AS (
    INSERT INTO call_ring_attempts AS r (call_pk, seq, extension, start_time, end_time, outcome)
    SELECT c.id, u.seq, u.extension, u.start_time, u.end_time, u.outcome
    FROM unnest($35::text[], $36::int[], $37::text[], $38::timestamptz[], $39::timestamptz[], $40::text[])
        AS u(call_id, seq, extension, start_time, end_time, outcome)
    JOIN c USING (call_id)
    ON CONFLICT (call_pk, seq) DO UPDATE SET
        extension = EXCLUDED.extension, start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
        outcome = EXCLUDED.outcome
),
surplus_rings AS (
    DELETE FROM call_ring_attempts r USING c JOIN input i USING (call_id)
    WHERE NOT c.inserted AND r.call_pk = c.id AND r.seq > i.ring_count
),
seen AS (
    -- Only calls seen for the first time count, so storing a call again counts nothing twice.
    SELECT e.extension, min(i.start_time) AS first_seen, max(i.start_time) AS last_seen, count(*) AS calls
    FROM c JOIN input i USING (call_id),
         LATERAL (SELECT DISTINCT unnest(i.agents::text[] || i.rang::text[])) AS e(extension)
    WHERE c.inserted
    GROUP BY e.extension
),
unmapped AS (
    INSERT INTO unmapped_extensions AS u (system_id, extension, first_seen, last_seen, call_count)
    SELECT $1, seen.extension, seen.first_seen, seen.last_seen, seen.calls FROM seen
    WHERE NOT EXISTS (SELECT 1 FROM extension_assignments a
                      WHERE a.system_id = $1 AND a.extension = seen.extension
                        AND a.valid_from <= seen.last_seen AND (a.valid_to IS NULL OR a.valid_to > seen.last_seen))
    ON CONFLICT (system_id, extension) DO UPDATE SET
        first_seen = least(u.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
        call_count = u.call_count + EXCLUDED.call_count
),
state AS (
    INSERT INTO ingest_state AS s (system_id, checkpoint, calls_stored, last_event_at, last_call_stored_at,
                                   updated_at)
    SELECT $1, $3, n.new, $4, CASE WHEN n.new > 0 THEN now() END, now()
    FROM (SELECT count(*) AS new FROM c WHERE c.inserted) n
    WHERE $3::text IS NOT NULL
    ON CONFLICT (system_id) DO UPDATE SET
        checkpoint = EXCLUDED.checkpoint,
        calls_stored = s.calls_stored + EXCLUDED.calls_stored,
        last_event_at = coalesce(EXCLUDED.last_event_at, s.last_event_at),
        last_call_stored_at = coalesce(EXCLUDED.last_call_stored_at, s.last_call_stored_at),
        updated_at = now()
)
SELECT count(*) FROM c
"""


def _text_array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of `items` (every element quoted, so no value needs care)."""
    return "{" + ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items) + "}"


def _batch_arguments(records: Sequence[CallRecord]) -> list[Any]:
    """_STORE_BATCH's arrays, from $5 on: the calls, then their segments, then their ring attempts."""
    calls: list[list[Any]] = [[] for _ in range(21)]
    segments: list[list[Any]] = [[] for _ in range(9)]
    rings: list[list[Any]] = [[] for _ in range(6)]
    for r in records:
        agents = r.agents
        row = (
            r.call_id, _text_array(r.linkedids or (r.call_id,)), r.direction, r.status, r.reason, r.caller,
            r.caller_name, r.callee, r.start, r.answer, r.end, round(r.wait_seconds, 3),
            round(r.talk_seconds, 3), round(r.duration_seconds, 3), r.transfer_count, _text_array(agents),
            _text_array(r.rang_extensions), r.recovered, len(r.segments), len(r.rang), r.external_number,
        )
        for column, value in zip(calls, row, strict=True):
            column.append(value)
        for seq, s in enumerate(r.segments, start=1):
            turn = (r.call_id, seq, s.extension, s.began_by, s.ring_start, s.answer, s.end, round(s.talk_seconds, 3),
                    s.channel)
            for column, value in zip(segments, turn, strict=True):
                column.append(value)
        for seq, a in enumerate(r.rang, start=1):
            for column, value in zip(rings, (r.call_id, seq, a.extension, a.start, a.end, a.outcome), strict=True):
                column.append(value)
    return [*calls, *segments, *rings]


async def store_calls(
    conn: asyncpg.Connection,
    system_id: int,
    records: Sequence[CallRecord],
    *,
    source: str = "ami",
    checkpoint: str | None = None,
    last_event_at: datetime | None = None,
) -> int:
    """Store `records` in one statement and transaction, idempotently; returns how many were written.

    With `checkpoint`, the system's journal checkpoint advances in the same statement, so it can
    never get ahead of the calls it vouches for.
    """
    if not records:
        if checkpoint is not None:
            await save_checkpoint(conn, system_id, checkpoint, last_event_at=last_event_at)
        return 0
    # One row per call: a batch may finish the same call twice (a replay), the last one wins.
    records = list({record.call_id: record for record in records}.values())
    arguments = _batch_arguments(records)
    # In a transaction although one statement is atomic: alone, it would be committed even when the
    # connection drops while it runs, and the caller would retry calls that are already stored.
    # Harmless (the write is idempotent) but it blurs "pending" and "stored"; this way only a
    # connection lost during COMMIT leaves the outcome unknown.
    async with conn.transaction():
        written: int = await conn.fetchval(_STORE_BATCH, system_id, source, checkpoint, last_event_at, *arguments)
    return written


async def save_checkpoint(
    conn: asyncpg.Connection, system_id: int, checkpoint: str, *, calls: int = 0,
    last_event_at: datetime | None = None,
) -> None:
    """Record the journal position a replay starts from, and the daemon's progress, for one system."""
    await conn.execute(
        """INSERT INTO ingest_state AS s (system_id, checkpoint, calls_stored, last_event_at,
                                          last_call_stored_at, updated_at)
           VALUES ($1, $2, $3::bigint, $4, CASE WHEN $3::bigint > 0 THEN now() END, now())
           ON CONFLICT (system_id) DO UPDATE SET
               checkpoint = EXCLUDED.checkpoint,
               calls_stored = s.calls_stored + EXCLUDED.calls_stored,
               last_event_at = coalesce(EXCLUDED.last_event_at, s.last_event_at),
               last_call_stored_at = coalesce(EXCLUDED.last_call_stored_at, s.last_call_stored_at),
               updated_at = now()""",
        system_id, checkpoint, calls, last_event_at,
    )


async def load_checkpoint(conn: asyncpg.Connection, system_id: int) -> str | None:
    """The system's journal checkpoint, None before the daemon's first commit."""
    value: str | None = await conn.fetchval("SELECT checkpoint FROM ingest_state WHERE system_id = $1", system_id)
    return value


async def stored_linkedids(
    conn: asyncpg.Connection, system_id: int, linkedids: Sequence[str], since: datetime
) -> set[str]:
    """Which of `linkedids` belong to calls already stored (started after `since`, or by call id)."""
    if not linkedids:
        return set()
    rows = await conn.fetch(
        """SELECT l FROM calls, unnest(linkedids) AS l
           WHERE system_id = $1 AND (call_id = ANY($2::text[]) OR (start_time >= $3 AND linkedids && $2::text[]))""",
        system_id, list(linkedids), since,
    )
    wanted = set(linkedids)
    return {row["l"] for row in rows if row["l"] in wanted}


async def _register_unmapped(conn: asyncpg.Connection, system_id: int, records: Iterable[CallRecord]) -> None:
    """Record extensions seen on the wire that no assignment covers at the call's time."""
    seen: dict[str, tuple[datetime, datetime, int]] = {}
    for record in records:
        for extension in {*record.agents, *record.rang_extensions}:
            first, last, count = seen.get(extension, (record.start, record.start, 0))
            seen[extension] = (min(first, record.start), max(last, record.start), count + 1)
    if not seen:
        return
    await conn.executemany(
        """INSERT INTO unmapped_extensions AS u (system_id, extension, first_seen, last_seen, call_count)
           SELECT $1, $2, $3, $4, $5
           WHERE NOT EXISTS (SELECT 1 FROM extension_assignments a
                             WHERE a.system_id = $1 AND a.extension = $2
                               AND a.valid_from <= $4 AND (a.valid_to IS NULL OR a.valid_to > $4))
           ON CONFLICT (system_id, extension) DO UPDATE SET
               first_seen = least(u.first_seen, EXCLUDED.first_seen),
               last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
               call_count = u.call_count + EXCLUDED.call_count""",
        [(system_id, ext, first, last, count) for ext, (first, last, count) in seen.items()],
    )
