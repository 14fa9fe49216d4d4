"""`import-cdr --bulk`: a whole history load in one transaction, with the calls tables' upkeep set aside.

Storing a call costs the server more in upkeep than in the rows themselves: every calls row
enters five secondary indexes (two of them GIN), every segment and ring attempt has its foreign
key checked by a trigger, one lookup each, and every batch folds into the report rollup. For a
new installation loading months of history at once, doing that upkeep once at the end is
cheaper: here the secondary indexes of calls, call_segments and call_ring_attempts and the
detail tables' foreign keys to calls are dropped, the rollup's insert trigger is disabled, and
at the end the indexes are built again in one pass each, the foreign keys added back (checked
by one join each) and the system's rollup recomputed from its calls.

All of it in ONE transaction holding an exclusive lock on the three tables. That is what makes it
safe: DDL is transactional in PostgreSQL, so an error or a crash rolls everything back (indexes,
keys, trigger, and the calls loaded: nothing is half done), and no one else can write or read the
tables meanwhile, so the daemon's calls can neither miss an index nor the rollup: its writes wait
until the import commits (it keeps its journal and its queue), and so do reports. The unique keys
(calls' (system_id, call_id), the detail tables' primary keys) stay, so the daemon's ON CONFLICT
upserts and this import's own idempotence work as always. Dropping indexes and keys needs the
database user that owns the tables (not a superuser); the measured gains are in bench/RESULTS.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest.errors import DatabaseError

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.transaction import Transaction

log = logging.getLogger(__name__)

TABLES = ("calls", "call_segments", "call_ring_attempts")
ROLLUP_TRIGGER = "report_rollup_insert"
# How long to wait for a report or the daemon to finish with the tables before giving up.
LOCK_WAIT = "15s"
# bench/import.py --keep-keys turns this off to measure what the foreign-key checks cost.
DROP_FOREIGN_KEYS = True
_LOCK_NOT_AVAILABLE = "55P03"
_INSUFFICIENT_PRIVILEGE = "42501"


@dataclass
class BulkLoad:
    """What was set aside for the load, to be put back by `finish`."""

    transaction: Transaction
    indexes: list[tuple[str, str]] = field(default_factory=list)  # name, CREATE INDEX statement
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)  # table, name, definition
    rollup_trigger: bool = False


async def begin(conn: asyncpg.Connection) -> BulkLoad:
    """Open the load's transaction, lock the calls tables and set their upkeep aside."""
    transaction = conn.transaction()
    await transaction.start()
    load = BulkLoad(transaction)
    try:
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
        await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
        await conn.execute("SET LOCAL lock_timeout TO DEFAULT")
        # Indexes that back no constraint (the unique keys stay: ON CONFLICT needs them).
        rows = await conn.fetch(
            """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
               FROM pg_index i
               WHERE i.indrelid = ANY($1::regclass[]) AND NOT i.indisunique AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
               ORDER BY 1""", list(TABLES))
        load.indexes = [(r["name"], r["definition"]) for r in rows]
        rows = await conn.fetch(
            """SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition
               FROM pg_constraint
               WHERE contype = 'f' AND confrelid = 'calls'::regclass AND conrelid = ANY($1::regclass[])
               ORDER BY 1, 2""", list(TABLES))
        load.foreign_keys = [(r["table_name"], r["conname"], r["definition"]) for r in rows if DROP_FOREIGN_KEYS]
        load.rollup_trigger = bool(await conn.fetchval(
            "SELECT true FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND tgname = $1 AND tgenabled <> 'D'",
            ROLLUP_TRIGGER))
        for name, _ in load.indexes:
            await conn.execute(f"DROP INDEX {name}")
        for table, name, _ in load.foreign_keys:
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        if load.rollup_trigger:
            await conn.execute(f"ALTER TABLE calls DISABLE TRIGGER {ROLLUP_TRIGGER}")
    except Exception as exc:
        await transaction.rollback()
        state = getattr(exc, "sqlstate", None)
        if state == _LOCK_NOT_AVAILABLE:
            raise DatabaseError(f"--bulk: the calls tables stayed in use for {LOCK_WAIT} (a report or the daemon "
                                "writing); try again, or import without --bulk") from exc
        if state == _INSUFFICIENT_PRIVILEGE:
            raise DatabaseError(f"--bulk needs the database user that owns the calls tables: {exc}") from exc
        raise
    log.info("bulk load: %d indexes and %d foreign keys set aside until the end", len(load.indexes),
             len(load.foreign_keys))
    return load


async def finish(conn: asyncpg.Connection, load: BulkLoad, system_id: int) -> None:
    """Put the upkeep back (indexes, foreign keys, rollup) and commit the load."""
    started = time.perf_counter()
    try:
        for _, definition in load.indexes:
            await conn.execute(definition)
        for table, name, definition in load.foreign_keys:
            await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        if load.rollup_trigger:
            await conn.execute(f"ALTER TABLE calls ENABLE TRIGGER {ROLLUP_TRIGGER}")
            await conn.execute("SELECT report_rollup_rebuild($1)", system_id)
    except BaseException:
        await load.transaction.rollback()
        raise
    await load.transaction.commit()
    log.info("bulk load: indexes, foreign keys and rollup restored in %.1f s", time.perf_counter() - started)


async def abort(load: BulkLoad) -> None:
    """Roll the whole load back (indexes, keys and trigger come back as they were)."""
    await load.transaction.rollback()
