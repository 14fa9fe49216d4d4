"""`import-cdr --bulk`: a whole history load in one transaction, with the calls tables' upkeep set aside.

Storing a call costs the server more in upkeep than in the rows themselves: every calls row
enters five secondary indexes (two of them GIN), every statement writing segments and ring attempts
checks their calls exist (a statement trigger, one join: schema.sql, "Links between the calls
tables"), and every batch folds into the report rollup. For a new installation loading months of
history at once, doing that upkeep once at the end is cheaper: here the secondary indexes of calls,
call_segments and call_ring_attempts are dropped, the detail tables' link checks and the rollup's
insert trigger are disabled, and at the end the indexes are built again in one pass each, every
segment and ring attempt is checked against calls (one anti-join per table: a detail without its
call fails the whole load) and the system's rollup recomputed from its calls.

All of it in ONE transaction holding an exclusive lock on the three tables. That is what makes it
safe: DDL is transactional in PostgreSQL, so an error or a crash rolls everything back (indexes,
triggers, and the calls loaded: nothing is half done), and no one else can write or read the
tables meanwhile, so the daemon's calls can neither miss an index nor the rollup: its writes wait
until the import commits (it keeps its journal and its queue), and so do reports. The unique keys
(calls' (system_id, call_id), the detail tables' primary keys) stay, so the daemon's ON CONFLICT
upserts and this import's own idempotence work as always. Dropping indexes and disabling triggers
needs the database user that owns the tables (not a superuser); the measured gains are in
bench/RESULTS.md.
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
# The detail tables' statement triggers checking that each row's call exists (schema.sql).
DETAIL_CHECKS = (("call_segments", "call_segments_call_check"), ("call_ring_attempts", "call_ring_attempts_call_check"))
# How long to wait for a report or the daemon to finish with the tables before giving up.
LOCK_WAIT = "15s"
# bench/import.py --keep-keys turns this off (the checks then run per statement, as outside --bulk)
# to measure what they cost.
DISABLE_DETAIL_CHECKS = True
_LOCK_NOT_AVAILABLE = "55P03"
_INSUFFICIENT_PRIVILEGE = "42501"


@dataclass
class BulkLoad:
    """What was set aside for the load, to be put back by `finish`."""

    transaction: Transaction
    indexes: list[tuple[str, str]] = field(default_factory=list)  # name, CREATE INDEX statement
    detail_checks: list[tuple[str, str]] = field(default_factory=list)  # table, trigger disabled
    rollup_trigger: bool = False
    ended: bool = False  # committed or rolled back (by `finish`, whose caller may still call `abort`)


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
        if DISABLE_DETAIL_CHECKS:
            for table, trigger in DETAIL_CHECKS:
                if await conn.fetchval("SELECT true FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2"
                                       " AND tgenabled <> 'D'", table, trigger):
                    load.detail_checks.append((table, trigger))
        load.rollup_trigger = bool(await conn.fetchval(
            "SELECT true FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND tgname = $1 AND tgenabled <> 'D'",
            ROLLUP_TRIGGER))
        for name, _ in load.indexes:
            await conn.execute(f"DROP INDEX {name}")
        for table, trigger in load.detail_checks:
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
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
    log.info("bulk load: %d indexes and %d link checks set aside until the end", len(load.indexes),
             len(load.detail_checks))
    return load


async def finish(conn: asyncpg.Connection, load: BulkLoad, system_id: int) -> None:
    """Put the upkeep back (indexes, link checks, rollup) and commit the load.

    A segment or ring attempt without its call (which the disabled checks would have refused) rolls
    the whole load back with a DatabaseError.
    """
    started = time.perf_counter()
    try:
        for _, definition in load.indexes:
            await conn.execute(definition)
        for table, trigger in load.detail_checks:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
            # The whole table, as validating a foreign key did (one anti-join; no one else can write it).
            orphan = await conn.fetchval(
                f"SELECT d.call_pk FROM {table} d WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = d.call_pk)"
                " LIMIT 1")
            if orphan is not None:
                raise DatabaseError(f"--bulk: {table} has rows for call_pk {orphan}, which is not in calls; "
                                    "the whole load was rolled back")
        if load.rollup_trigger:
            await conn.execute(f"ALTER TABLE calls ENABLE TRIGGER {ROLLUP_TRIGGER}")
            await conn.execute("SELECT report_rollup_rebuild($1)", system_id)
    except BaseException:
        load.ended = True
        await load.transaction.rollback()
        raise
    load.ended = True
    await load.transaction.commit()
    log.info("bulk load: indexes, link checks and rollup restored in %.1f s", time.perf_counter() - started)


async def abort(load: BulkLoad) -> None:
    """Roll the whole load back (indexes and triggers come back as they were); nothing once `finish` ended it."""
    if not load.ended:
        load.ended = True
        await load.transaction.rollback()
