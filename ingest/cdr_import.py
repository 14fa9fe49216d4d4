"""History import: Asterisk's Master.csv (and optionally its CEL file) -> calls in PostgreSQL.

Streaming in flat memory. cdr_csv writes a row when its leg ends, so a call's rows are near each
other in the file. Rows are joined into calls by what they share (linkedid, uniqueid, or a channel
name alive at the time: that joins transfer legs when the CSV has no linkedid column), and a call
is finished once the file has moved `window` past its last row's end; only calls inside that
window are held. A row that still arrives for a finished call is skipped and counted ("raise
--window"). The CEL file, when given, is read alongside, in step with the CDR's clock.

Parsing runs in a worker thread while the previous batch is written, so the importer's Python
overlaps with the server's inserts; large files without CEL are grouped by a second process
(cdr_parallel), so two cores work on the Python side. `bulk` loads the whole file in one
transaction with the tables' upkeep done once at the end (cdr_bulk). Rows and calls are many, so
the per-row code is written for speed; bench/RESULTS.md ("## CDR import") has where the time goes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest import cdr_store
from ingest.cdr_calls import CallBuilder
from ingest.cdr_csv import CdrRow, CelRow, LocalTimes, RowError, count_lines, read_cdr, read_cel
from ingest.config import SystemConfig
from ingest.errors import ConfigError, DatabaseError, InputFileError
from ingest.records import CallRecord

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=3)
BATCH_CALLS = 2000
# The compiled engine's batches: fewer per-transaction costs on the server (bench/RESULTS.md). A multiple
# of BATCH_CALLS: extensions are registered per BATCH_CALLS calls, as the Python engine does.
FAST_BATCH_CALLS = 3 * BATCH_CALLS
_HEX = frozenset("0123456789abcdefABCDEF")
_SLACK = timedelta(seconds=1)
_UNIQUEID = re.compile(r"^(.*)\.(\d+)$")


@dataclass
class ImportStats:
    """What an import did: rows read and skipped (by reason), calls built and stored."""

    rows_read: int = 0
    cel_rows: int = 0
    calls_built: int = 0
    calls_stored: int = 0
    calls_replaced: int = 0
    calls_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # The grouping process's CPU seconds and peak memory, when there was one (cdr_parallel).
    helper_cpu_seconds: float = 0.0
    helper_peak_rss_mib: float = 0.0

    @property
    def rows_skipped(self) -> int:
        """Rows that went into no call."""
        return sum(self.skipped.values())


class _Group:
    __slots__ = ("alive", "keys", "max_end", "rows")

    def __init__(self, row: CdrRow, keys: list[str]) -> None:
        self.rows: list[CdrRow] = [row]
        # A list, not a set: a key seen twice is harmless where keys are used, and the row's list is reused.
        self.keys: list[str] = keys
        self.max_end = row.end
        self.alive = True


def _channel_key(channel: str) -> str | None:
    """The key joining rows that share a live channel: its (Local pair's) name, if it has a unique suffix."""
    if channel.startswith("Local/"):
        channel = channel.rpartition(";")[0] or channel
    suffix = channel[channel.rfind("-") + 1:]
    # Only names with a unique suffix (PJSIP/101-0000002a); DAHDI/1-1 style names repeat.
    if len(suffix) >= 4 and _HEX.issuperset(suffix):
        return "C" + channel
    return None


class Grouper:
    """Joins CDR rows into calls within a bounded time window.

    Called for every row, so written for speed: most rows start a call or join exactly one.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.index: dict[str, _Group] = {}
        self.heap: list[tuple[datetime, int, _Group]] = []
        self.finished: OrderedDict[str, datetime] = OrderedDict()
        self._seq = itertools.count()
        self.open_rows = 0

    @staticmethod
    def keys(row: CdrRow) -> list[str]:
        """What a row shares with the other rows of its call."""
        keys = []
        if row.linkedid:
            keys.append("L" + row.linkedid)
        if row.uniqueid:
            keys.append("U" + row.uniqueid)
        if row.channel:
            key = _channel_key(row.channel)
            if key is not None:
                keys.append(key)
        if row.dstchannel:
            key = _channel_key(row.dstchannel)
            if key is not None:
                keys.append(key)
        return keys

    def add(self, row: CdrRow) -> bool:
        """Put `row` into its call; False when its call was already finished (a late row)."""
        keys = self.keys(row)
        index = self.index
        target: _Group | None = None
        groups: list[_Group] | None = None  # only when the row joins two or more calls
        for key in keys:
            group = index.get(key)
            # A channel name joins rows only while that channel lives: names repeat after a restart.
            if group is None or (key[0] == "C" and row.start > group.max_end + _SLACK):
                continue
            if target is None:
                target = group
            elif group is not target:
                if groups is None:
                    groups = [target]
                if group not in groups:
                    groups.append(group)
        if target is None:
            finished = self.finished
            for key in keys:
                if key[0] != "C" and key in finished:
                    return False
            target = _Group(row, keys)
            for key in keys:
                index[key] = target
            self.open_rows += 1
            heapq.heappush(self.heap, (target.max_end, next(self._seq), target))
            return True
        if groups is not None:
            groups.sort(key=lambda g: len(g.rows), reverse=True)
            target = groups[0]
            before = target.max_end
            for other in groups[1:]:
                target.rows.extend(other.rows)
                for key in other.keys:
                    index[key] = target
                target.keys.extend(other.keys)
                if other.max_end > target.max_end:
                    target.max_end = other.max_end
                other.alive = False
        else:
            before = target.max_end
        target.rows.append(row)
        self.open_rows += 1
        for key in keys:
            index[key] = target
        target.keys.extend(keys)
        if row.end > target.max_end:
            target.max_end = row.end
        if target.max_end != before:
            # The call's older heap entries are now stale; this one stands for it.
            heapq.heappush(self.heap, (target.max_end, next(self._seq), target))
        return True

    def expired(self, clock: datetime | None) -> Iterator[list[CdrRow]]:
        """Calls whose last row ended more than `window` before `clock` (all of them when None)."""
        limit = None if clock is None else clock - self.window
        heap, index, finished = self.heap, self.index, self.finished
        while heap and (limit is None or heap[0][0] < limit):
            max_end, _, group = heapq.heappop(heap)
            if not group.alive or max_end != group.max_end:
                continue  # merged into another call, or extended: a newer entry stands for it
            group.alive = False
            for key in group.keys:
                if index.get(key) is group:
                    del index[key]
                if key[0] != "C":  # only linkedids and uniqueids mark a late row (see add)
                    finished[key] = max_end
            self.open_rows -= len(group.rows)
            yield group.rows
        if limit is not None:
            oldest = limit - self.window
            while finished and next(iter(finished.values())) < oldest:
                finished.popitem(last=False)


class CelFeed:
    """The CEL file read in step with the CDR: uniqueid -> linkedid, and events per linkedid."""

    def __init__(self, rows: Iterator[CelRow], window: timedelta) -> None:
        self.rows = rows
        self.window = window
        self.pending: CelRow | None = None
        self.linkedid_of: dict[str, tuple[str, datetime]] = {}
        self.events: dict[str, list[CelRow]] = {}
        self.count = 0

    def advance(self, until: datetime) -> None:
        """Read every CEL row up to `until`."""
        while True:
            row = self.pending if self.pending is not None else next(self.rows, None)
            self.pending = None
            if row is None:
                return
            if row.time > until:
                self.pending = row
                return
            self.count += 1
            if row.linkedid:
                self.linkedid_of[row.uniqueid] = (row.linkedid, row.time)
                self.events.setdefault(row.linkedid, []).append(row)

    def take(self, linkedids: set[str]) -> list[CelRow]:
        """The events of these linkedids, forgotten here."""
        events: list[CelRow] = []
        for linkedid in linkedids:
            events.extend(self.events.pop(linkedid, ()))
        return events

    def prune(self, clock: datetime) -> None:
        """Forget what no open call can need any more (calls with CEL rows but no CDR rows)."""
        limit = clock - 2 * self.window
        self.events = {k: v for k, v in self.events.items() if v[-1].time >= limit}
        self.linkedid_of = {k: v for k, v in self.linkedid_of.items() if v[1] >= limit}


def call_identity(rows: list[CdrRow]) -> tuple[str, tuple[str, ...]]:
    """The call id (Linkedid of the first channel) and every Linkedid of the call."""
    if len(rows) == 1:  # most calls
        root = rows[0]
        linkedids: tuple[str, ...] = (root.linkedid,) if root.linkedid else ()
    else:
        root = min(rows, key=lambda r: (r.start, r.line))
        linkedids = tuple(sorted({r.linkedid for r in rows if r.linkedid}))
    if root.linkedid:
        return root.linkedid, linkedids
    if linkedids:
        return linkedids[0], linkedids
    if root.uniqueid:
        match = _UNIQUEID.match(root.uniqueid) if root.channel.startswith("Local/") else None
        if match and root.channel.endswith(";2"):
            # An originated Local pair: its ;1 half (uniqueid one less) has no CDR row but is the Linkedid.
            return f"{match.group(1)}.{int(match.group(2)) - 1}", ()
        return root.uniqueid, ()
    return f"cdr-{root.channel}-{int(root.start.timestamp())}", ()


def group_rows(
    items: Iterable[CdrRow | RowError], path: str, stats: ImportStats, grouper: Grouper, *,
    cel: CelFeed | None = None, late: list[int] | None = None,
) -> Iterator[list[CdrRow]]:
    """The rows of each finished call, in the order calls finish; counts rows read and skipped into `stats`.

    `late`, when given, gets the line numbers of the rows skipped as late legs.
    """
    clock: datetime | None = None
    since_expiry = 0
    for item in items:
        stats.rows_read += 1
        if isinstance(item, RowError):
            if stats.rows_read == 1 and item.reason != "empty line":
                raise InputFileError(f"not an Asterisk CDR line: {item.reason}", path=path, line=1)
            stats.skipped[item.reason] += 1
            continue
        clock = item.end if clock is None else max(clock, item.end)
        if cel is not None:
            cel.advance(clock + _SLACK)
            if not item.linkedid and item.uniqueid in cel.linkedid_of:
                item.linkedid = cel.linkedid_of[item.uniqueid][0]
        if not grouper.add(item):
            stats.skipped["late leg of a call already stored (raise --window)"] += 1
            if late is not None:
                late.append(item.line)
        since_expiry += 1
        if since_expiry >= 1000:
            since_expiry = 0
            yield from grouper.expired(clock)
            if cel is not None and stats.rows_read % 100_000 < 1000:
                cel.prune(clock)
    if cel is not None:
        cel.advance(datetime.max.replace(tzinfo=UTC))
        stats.cel_rows = cel.count
    yield from grouper.expired(None)


class CallMaker:
    """Builds the CallRecord of each group of rows (with its CEL events); counts calls that cannot be built."""

    def __init__(self, system: SystemConfig, path: str, stats: ImportStats, cel: CelFeed | None = None) -> None:
        self.builder = CallBuilder(system)
        self.path = path
        self.stats = stats
        self.cel = cel

    def build(self, rows: list[CdrRow]) -> CallRecord | None:
        """The call of `rows`, None (logged and counted) when it cannot be built."""
        call_id, linkedids = call_identity(rows)
        cel = self.cel
        events = cel.take({r.linkedid for r in rows if r.linkedid} | {call_id}) if cel is not None else []
        try:
            record = self.builder.build(rows, events, call_id, linkedids)
        except (ValueError, AssertionError) as exc:
            log.warning("%s:%d: call %s could not be built: %s", self.path, rows[0].line, call_id, exc)
            self.stats.skipped["call could not be built"] += len(rows)
            return None
        self.stats.calls_built += 1
        return record


def zone_of(system: SystemConfig) -> ZoneInfo:
    """The system's time zone; a ConfigError naming the setting when it is unknown."""
    try:
        return ZoneInfo(system.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"systems.{system.name}.timezone: unknown time zone {system.timezone!r}") from exc


def produce_calls(
    cdr_lines: Iterable[str], cdr_path: str, system: SystemConfig, stats: ImportStats, *,
    cel_lines: Iterable[str] | None = None, cel_path: str = "", window: timedelta = DEFAULT_WINDOW,
    batch_size: int = BATCH_CALLS,
) -> Iterator[list[CallRecord]]:
    """Batches of finished calls from the CDR (and CEL) lines; counts into `stats` as it goes."""
    zone = zone_of(system)
    cel = CelFeed(read_cel(cel_lines, cel_path, LocalTimes(zone)), window) if cel_lines is not None else None
    maker = CallMaker(system, cdr_path, stats, cel)
    batch: list[CallRecord] = []
    for rows in group_rows(read_cdr(cdr_lines, cdr_path, LocalTimes(zone)), cdr_path, stats, Grouper(window),
                           cel=cel):
        record = maker.build(rows)
        if record is not None:
            batch.append(record)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


async def system_from_db(conn: asyncpg.Connection, name: str) -> SystemConfig | None:
    """A telephone system as the directory stores it, as a SystemConfig."""
    row = await conn.fetchrow(
        """SELECT s.*, b.name AS branch FROM telephone_systems s JOIN branches b ON b.id = s.branch_id
           WHERE s.name = $1""", name)
    if row is None:
        return None
    return SystemConfig(
        name=row["name"], branch=row["branch"], host=row["ami_host"] or "127.0.0.1", port=row["ami_port"],
        extension_from=row["extension_from"], extension_pattern=row["extension_pattern"],
        trunks=tuple(row["trunk_patterns"]), inbound_contexts=tuple(row["inbound_contexts"]),
        country_code=row["country_code"], city_code=row["city_code"], outgoing_prefix=row["outgoing_prefix"],
        timezone=row["timezone"],
    )


def open_text(path: Path) -> TextIO:
    """A CSV file opened for reading as csv.reader wants it; an InputFileError when it cannot be."""
    try:
        # errors="replace": one bad byte in a year of CDRs must not stop the import.
        return path.open("r", encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror}", path=str(path)) from exc


async def import_cdr(
    conn: asyncpg.Connection, system: SystemConfig, cdr_path: Path, *, cel_path: Path | None = None,
    window: timedelta = DEFAULT_WINDOW, replace: bool = False, progress: Callable[[int], None] | None = None,
    bulk: bool = False, parallel: bool | None = None, engine: str = "auto",
    more: Sequence[asyncpg.Connection] = (),
) -> ImportStats:
    """Import one Master.csv (and its CEL file) for `system`; safe to run again (adds nothing).

    `engine`: "compiled" (cdr_fast: the Cython reader and builder), "python" (this module), or "auto":
    compiled when it is built and neither a CEL file nor `replace` is given. `more`: further connections
    to the same database; the compiled engine writes batches over all of them at once (not with `bulk`).
    `bulk`: one transaction with the tables' upkeep done once at the end (cdr_bulk). `parallel`
    (Python engine): group the rows in a second process (cdr_parallel); by default for large files.
    """
    from ingest import cdr_bulk, cdr_fast, cdr_parallel, store

    if engine not in ("auto", "compiled", "python"):
        raise ConfigError(f"engine: {engine!r} is not one of auto, compiled, python")
    # What only the Python engine does: CEL, --replace, and (asked for explicitly) the grouping process.
    eligible = cel_path is None and not replace and not parallel
    if engine == "compiled":
        if not eligible:
            raise ConfigError("the compiled importer reads no CEL file, does not --replace and needs no grouping "
                              "process: use --engine python")
        cdr_fast.require()
    compiled = engine == "compiled" or (engine == "auto" and eligible and cdr_fast.available())
    if compiled:
        parallel = False
    else:
        if engine == "auto" and eligible:
            log.info("the compiled CDR importer is not built (reinstall with a C compiler: `pip install -e .`); "
                     "using the Python engine, about five times slower")
        if parallel is None:
            size = (await asyncio.to_thread(cdr_path.stat)).st_size
            parallel = cel_path is None and size >= cdr_parallel.MIN_PARALLEL_BYTES
        elif parallel and cel_path is not None:
            raise ConfigError("a CEL file is read in one process: import it without parallel grouping")
    system_id = await store.ensure_system(conn, system)
    run_id = await conn.fetchval("INSERT INTO import_runs (system_id, source_file) VALUES ($1, $2) RETURNING id",
                                 system_id, str(cdr_path))
    await cdr_store.prepare(conn)
    stats = ImportStats()
    load = await cdr_bulk.begin(conn) if bulk else None
    deferred: list[cdr_store.Seen] | None = [] if bulk else None
    try:
        if compiled:
            await cdr_fast.import_file([conn] if bulk else [conn, *more], system, system_id, cdr_path, stats,
                                       window=window, batch_size=FAST_BATCH_CALLS, seen_every=BATCH_CALLS,
                                       progress=progress, deferred=deferred)
        else:
            await _import_python(conn, system, system_id, cdr_path, cel_path, stats, window=window, replace=replace,
                                 progress=progress, parallel=parallel, deferred=deferred)
        if load is not None:
            await cdr_store.register_unmapped(conn, system_id, deferred or [])
            await cdr_bulk.finish(conn, load, system_id)
            load = None
    finally:
        if load is not None:
            await cdr_bulk.abort(load)
    await conn.execute(
        """UPDATE import_runs SET finished_at = now(), rows_read = $2, calls_stored = $3, rows_skipped = $4
           WHERE id = $1""", run_id, stats.rows_read, stats.calls_stored + stats.calls_replaced, stats.rows_skipped)
    log.info("imported %s: %d rows, %d calls stored, %d already present, %d rows skipped", cdr_path,
             stats.rows_read, stats.calls_stored, stats.calls_present, stats.rows_skipped)
    if parallel:
        log.info("the grouping process used %.1f s of CPU and at most %.0f MiB", stats.helper_cpu_seconds,
                 stats.helper_peak_rss_mib)
    return stats


async def _import_python(conn: asyncpg.Connection, system: SystemConfig, system_id: int, cdr_path: Path,
                         cel_path: Path | None, stats: ImportStats, *, window: timedelta, replace: bool,
                         progress: Callable[[int], None] | None, parallel: bool,
                         deferred: list[cdr_store.Seen] | None) -> None:
    """The Python engine: rows grouped here (or in a grouping process), calls built and written batch by batch."""
    from ingest import cdr_parallel

    with open_text(cdr_path) as cdr_file, (open_text(cel_path) if cel_path is not None else nullcontext()) as cel:
        if parallel:
            batches = cdr_parallel.parallel_calls(cdr_path, system, stats, window=window,
                                                  batch_size=BATCH_CALLS, progress=progress)
        else:
            batches = produce_calls(
                count_lines(cdr_file, progress), str(cdr_path), system, stats,
                cel_lines=iter(cel) if cel is not None else None, cel_path=str(cel_path or ""), window=window,
            )
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                # Parse the next batch in a thread while the previous one is being written.
                batch = await asyncio.to_thread(next, batches, None)
                if writing is not None:
                    await writing
                if batch is None:
                    break
                writing = asyncio.create_task(_write(conn, system_id, batch, stats, replace, deferred))
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
            close = getattr(batches, "close", None)
            if close is not None:
                # Ends the grouping process when the import failed half way. Not while a thread
                # is still inside the generator (cancelled by Ctrl-C): the daemonic process then
                # ends with this one.
                with suppress(ValueError):
                    close()


async def _write(conn: asyncpg.Connection, system_id: int, batch: list[CallRecord], stats: ImportStats,
                 replace: bool, unmapped: list[cdr_store.Seen] | None) -> None:
    from ingest import store

    calls: list[CallRecord] = []
    seen: set[str] = set()
    for record in batch:
        if record.call_id in seen:
            # The same call id twice in one file (a PBX restart reusing ids): the first one stands.
            stats.calls_present += 1
            continue
        seen.add(record.call_id)
        calls.append(record)
    if replace:
        present = await cdr_store.existing_calls(conn, system_id, [r.call_id for r in calls])
        again = [r for r in calls if present.get(r.call_id) == "cdr"]
        if again:
            # Only calls this import wrote before are rewritten; the daemon's (AMI) calls never are.
            stats.calls_replaced += await store.store_calls(conn, system_id, again, source="cdr")
        stats.calls_present += sum(1 for r in calls if r.call_id in present) - len(again)
        calls = [r for r in calls if r.call_id not in present]
    try:
        stored = await cdr_store.insert_new_calls(conn, system_id, calls, source="cdr", unmapped=unmapped)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) is None:
            raise
        # A server-side refusal (a constraint, the connection): name the calls, not a traceback.
        first = min(calls, key=lambda r: r.start)
        raise DatabaseError(f"storing {len(calls)} calls from {first.start.isoformat()} (call {first.call_id}) "
                            f"failed: {exc}") from exc
    stats.calls_stored += stored
    # The calls stored before (by an earlier import or the daemon) are the ones the insert left out.
    stats.calls_present += len(calls) - stored
