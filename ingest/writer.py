"""Commits one system's finished calls and journal checkpoint to PostgreSQL, in batches, forever.

Each batch is one transaction holding the calls and, when the batch empties the queue, the
checkpoint computed when it was cut (see ingest/pipeline.py). The journal is fsynced up to that
point first. When PostgreSQL is unreachable the batch goes back to the head of the queue, the
outage is logged once (and its end once), and the daemon keeps journaling; a batch PostgreSQL
rejects for its content is split to find the call at fault, which is logged and set aside in
`rejected.jsonl` beside the journal so one bad call never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ingest import store
from ingest.journal import Position
from ingest.pipeline import SystemPipeline
from ingest.records import CallRecord

log = logging.getLogger(__name__)

BATCH = 500
# The shortest time between two writes: how long a finished call may wait for others to share its
# statement (it adds at most this much to the hang-up to commit delay).
LINGER = 0.05


class DatabaseState:
    """Whether PostgreSQL answers, shared by every system's writer; logs each change once."""

    def __init__(self) -> None:
        self.up: bool | None = None
        self.down_since: float | None = None

    def failed(self, exc: BaseException) -> None:
        """A write failed for lack of a server."""
        if self.up is not False:
            log.warning("PostgreSQL unreachable (%s): calls wait in memory and in the journal; retrying",
                        exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))
            self.down_since = time.monotonic()
        self.up = False

    def worked(self, waiting: int) -> None:
        """A write succeeded."""
        if self.up is False:
            outage = time.monotonic() - (self.down_since or time.monotonic())
            log.info("PostgreSQL reachable again after %.0f s; catching up (%d call(s) waiting)", outage, waiting)
        self.up = True
        self.down_since = None


class CallWriter:
    """The batch loop of one system: pending calls and checkpoints into PostgreSQL."""

    def __init__(
        self,
        pipeline: SystemPipeline,
        pool: object,
        system_id: int,
        db: DatabaseState,
        *,
        checkpoint_interval: float = 2.0,
        linger: float = LINGER,
        observe_latency: Callable[[float], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.pool = pool
        self.system_id = system_id
        self.db = db
        self.checkpoint_interval = checkpoint_interval
        self.linger = linger
        self.observe_latency = observe_latency
        self.checkpoint: Position | None = None
        self.stored = 0
        self.stopping = False
        self._failures = 0
        # The writer keeps one connection: a pool release costs a reset round trip per batch.
        self._conn: Any = None

    async def run(self) -> None:
        """Write whenever calls are ready, and the checkpoint at least every `checkpoint_interval`."""
        pipeline = self.pipeline
        ready = pipeline.records_ready
        started = 0.0
        while not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), self.checkpoint_interval)
            while not self.stopping:
                # Writes start at most every `linger` seconds (unless a full batch waits): the calls
                # finishing meanwhile share one statement and one journal fsync instead of one each.
                delay = started + self.linger - time.monotonic()
                if delay > 0 and 0 < len(pipeline.pending) < BATCH:
                    await asyncio.sleep(delay)
                ready.clear()
                started = time.monotonic()
                if not await self.write_once() or not pipeline.pending:
                    break

    async def stop(self) -> None:
        """Let the loop finish its current write and end (cancelling mid-query is slow in asyncpg)."""
        self.stopping = True
        self.pipeline.records_ready.set()

    async def close(self) -> None:
        """Give the connection back to the pool (after the last write)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)  # type: ignore[attr-defined]

    async def write_once(self) -> bool:
        """Commit one batch (and the checkpoint when it empties the queue); False when the write failed."""
        pipeline = self.pipeline
        if not pipeline.live:
            return True
        pending = pipeline.pending
        batch = pending[:BATCH]
        checkpoint: Position | None = None
        if len(pending) <= BATCH:
            mark = pipeline.low_water()
            if batch or mark != self.checkpoint:
                checkpoint = mark
        if not batch and checkpoint is None:
            return True
        del pending[: len(batch)]
        started = time.perf_counter()
        try:
            await self._sync_journal()
            # A batch that does not empty the queue re-commits the last checkpoint (harmless), so
            # ingest_state still counts its calls.
            await self._store(batch, checkpoint if checkpoint is not None else self.checkpoint)
        except store.RETRYABLE_ERRORS as exc:
            pending[:0] = batch
            self._drop_connection()
            self.db.failed(exc)
            self._failures += 1
            await asyncio.sleep(min(10.0, 0.25 * 2 ** min(self._failures, 6)) * (0.75 + random.random() / 4))
            return False
        except store.DATA_ERRORS as exc:
            if not batch:  # only the checkpoint: a bug, not bad data; do not spin on it
                log.error("system %s: cannot save the journal checkpoint: %s", pipeline.system.name, exc)
                await asyncio.sleep(self.checkpoint_interval)
                return False
            await self._isolate(batch, exc)
            return True
        except BaseException:
            # Cancelled mid-write (shutdown): the batch goes back; storing it again is harmless.
            pending[:0] = batch
            self._drop_connection()
            raise
        self._failures = 0
        self.db.worked(len(pending))
        if self.observe_latency is not None:
            self.observe_latency(time.perf_counter() - started)
        self._stored(batch)
        if checkpoint is not None:
            self.checkpoint = checkpoint
            pipeline.journal.release(checkpoint)
        return True

    async def _sync_journal(self) -> None:
        journal = self.pipeline.journal
        end = journal.end
        if journal.synced >= end:
            return
        fd = journal.flush()
        if fd is not None:
            await asyncio.to_thread(os.fsync, fd)
        journal.mark_synced(end)

    async def _store(self, batch: list[CallRecord], checkpoint: Position | None) -> None:
        last = self.pipeline.last_event_time
        if self._conn is None:
            self._conn = await self.pool.acquire()  # type: ignore[attr-defined]
        await store.store_calls(
            self._conn, self.system_id, batch, source="ami",
            checkpoint=str(checkpoint) if checkpoint is not None else None,
            last_event_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
        )

    def _drop_connection(self) -> None:
        """Close a connection that failed or was interrupted mid-query (its state is unknown).

        Terminating hands its slot back to the pool, which opens a fresh one on the next acquire.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    def _stored(self, batch: list[CallRecord]) -> None:
        self.stored += len(batch)
        name = self.pipeline.system.name
        for record in batch:
            agents = ",".join(record.agents) or "-"
            log.info(
                "stored call %s: system %s, %s, %s, agents %s, transfers %d%s",
                record.call_id, name, record.direction, record.status, agents, record.transfer_count,
                ", recovered after an AMI outage" if record.recovered else "",
                extra={
                    "system": name, "call_id": record.call_id, "direction": record.direction,
                    "status": record.status, "agents": agents, "transfer_count": record.transfer_count,
                },
            )

    async def _isolate(self, batch: list[CallRecord], exc: BaseException) -> None:
        """Store the calls one by one; set aside those PostgreSQL refuses."""
        log.warning("system %s: PostgreSQL refused a batch of %d call(s) (%s); storing them one by one",
                    self.pipeline.system.name, len(batch), exc)
        for index, record in enumerate(batch):
            try:
                await self._store([record], None)
            except store.RETRYABLE_ERRORS as error:
                self.pipeline.pending[:0] = batch[index:]
                self._drop_connection()
                self.db.failed(error)
                return
            except store.DATA_ERRORS as error:
                self._reject(record, error)
            else:
                self._stored([record])

    def _reject(self, record: CallRecord, error: BaseException) -> None:
        path = self.pipeline.journal.directory / "rejected.jsonl"
        log.error("system %s: call %s refused by PostgreSQL (%s); kept in %s",
                  self.pipeline.system.name, record.call_id, error, path)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"error": str(error), "call": record.to_json()}, ensure_ascii=False) + "\n")
