"""The compiled history import: Master.csv -> calls in PostgreSQL without Python per row.

The same work as cdr_import's Python path (which stays the reference, and the path for a CEL file
or --replace), done by two Cython modules: `_cdrgroup` reads the file and joins rows into calls,
`_cdrbuild` derives each call and encodes the batch in COPY's binary format. Their output is
byte-for-byte the Python path's (tests/test_cdrcore_*.py). Here they are driven: batches are
produced in a worker thread while earlier ones are written, over one or more connections (each
batch is its own transaction, so two connections keep two server processes busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import cdr_store
from ingest.cdr_calls import CallBuilder
from ingest.cdr_csv import LocalTimes
from ingest.config import SystemConfig
from ingest.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    import asyncpg

    from ingest._cdrbuild import Batch
    from ingest.cdr_import import ImportStats


SWITCH_INTERVAL = 0.0002  # seconds; see import_file
GC_THRESHOLDS = (100_000, 20, 100)  # during an import; see import_file


def available() -> bool:
    """Whether the compiled modules are built (`pip install -e .` builds them)."""
    try:
        from ingest import _cdrbuild, _cdrgroup  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """A ConfigError when the compiled importer was asked for but is not built."""
    if not available():
        raise ConfigError("the compiled CDR importer is not built: reinstall with `pip install -e .` "
                          "(it needs a C compiler), or import with --engine python")


class Produced:
    """The compiled pipeline over one file: batches of built calls, and the reader's counters (`groups`)."""

    def __init__(self, path: Path, system: SystemConfig, window: timedelta, batch_size: int,
                 stats: ImportStats) -> None:
        from ingest import _cdrbuild, _cdrgroup
        from ingest.cdr_import import zone_of

        times = LocalTimes(zone_of(system))
        self.groups = _cdrgroup.Groups(str(path), times.zone, window.total_seconds(), times.parse)
        builder = _cdrbuild.Builder(CallBuilder(system))
        # Groups yields the calls finished at each expiry check, a list at a time.
        self.batches: Iterator[Batch] = builder.batches(itertools.chain.from_iterable(self.groups), batch_size, stats,
                                                        str(path))

    def next_batch(self) -> Batch | None:
        return next(self.batches, None)


async def import_file(
    conns: Sequence[asyncpg.Connection], system: SystemConfig, system_id: int, path: Path, stats: ImportStats, *,
    window: timedelta, batch_size: int, seen_every: int, progress: Callable[[int], None] | None,
    deferred: list[cdr_store.Seen] | None,
) -> None:
    """Import `path` for `system` over `conns` (one transaction per batch on each).

    `seen_every` and `deferred`: see cdr_store.insert_encoded.
    """
    produced = Produced(path, system, window, batch_size, stats)
    free: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    careful = [False]  # set once a batch met stored calls: later batches check first (a second import)
    drawing = asyncio.Lock()  # one writer at a time draws its batch's ids: each batch one unbroken range
    # The batches being written, with their call ids: a batch sharing a call id with one of them (the
    # same id twice in a file: a PBX restart) waits for it, so that the first one stands, as in order.
    writing: list[tuple[set[str], asyncio.Task[None]]] = []

    async def write(conn: asyncpg.Connection, batch: Batch, keep: list[int]) -> None:
        try:
            await _write(conn, system_id, batch, keep, stats, careful, deferred, seen_every, drawing)
        finally:
            free.put_nowait(conn)

    async def settle(tasks: Sequence[asyncio.Task[None]]) -> None:
        """Wait for `tasks`; raise the first error among the batches written so far."""
        if tasks:
            await asyncio.wait(tasks)
        for _, task in writing:
            if task.done():
                task.result()

    reported = 0
    # The producing thread holds the GIL while it builds; the event loop needs it for each of a
    # batch's round trips. The default 5 ms switch interval left the connections idle between them.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Millions of short-lived rows: the default thresholds ran a collection every 700 of them.
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        while True:
            batch = await asyncio.to_thread(produced.next_batch)
            if progress is not None:
                done = produced.groups.bytes_read
                progress(done - reported)
                reported = done
            if batch is None:
                break
            keep, ids = _first_of_each(batch.call_ids)
            # The same call id twice in one batch (a PBX restart reusing ids): the first one stands.
            stats.calls_present += batch.count - len(keep)
            await settle([task for earlier, task in writing if not task.done() and not earlier.isdisjoint(ids)])
            conn = await free.get()  # at most one batch per connection in memory, besides the one built
            await settle(())
            writing = [(earlier, task) for earlier, task in writing if not task.done()]
            writing.append((ids, asyncio.create_task(write(conn, batch, keep))))
        await settle([task for _, task in writing])
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        for _, task in writing:
            task.cancel()
        await asyncio.gather(*(task for _, task in writing), return_exceptions=True)
        with contextlib.suppress(ValueError):  # a thread may still be inside the generator (Ctrl-C)
            close = getattr(produced.batches, "close", None)
            if close is not None:
                close()
    groups = produced.groups
    stats.rows_read += groups.rows_read
    stats.skipped.update(groups.skipped)


def _first_of_each(call_ids: Sequence[str]) -> tuple[list[int], set[str]]:
    """The indices of each call id's first occurrence, and the set of the ids."""
    keep: list[int] = []
    seen: set[str] = set()
    for index, call_id in enumerate(call_ids):
        if call_id not in seen:
            seen.add(call_id)
            keep.append(index)
    return keep, seen


async def _write(conn: asyncpg.Connection, system_id: int, batch: Batch, keep: list[int], stats: ImportStats,
                 careful: list[bool], deferred: list[cdr_store.Seen] | None, seen_every: int,
                 drawing: asyncio.Lock) -> None:
    try:
        stored = await cdr_store.insert_encoded(conn, system_id, batch, keep, careful=careful, unmapped=deferred,
                                                seen_every=seen_every, drawing=drawing)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) is None:
            raise
        first = batch.call_ids[keep[0]] if keep else "?"
        raise DatabaseError(f"storing {len(keep)} calls (from call {first}) failed: {exc}") from exc
    stats.calls_stored += stored
    stats.calls_present += len(keep) - stored
