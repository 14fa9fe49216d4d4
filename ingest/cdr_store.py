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
timestamps than the insert itself. The values are `store.call_row`'s; the fast path encodes them
itself in COPY's binary format (BinaryBatch: recurring values encoded once, whole seconds as
integral numerics), which costs the importer markedly less than asyncpg's per-value encoding of
records did (bench/RESULTS.md); the careful path keeps asyncpg's (BatchRows: ints for whole seconds, 3-place
Decimals otherwise, as asyncpg would expand a float into the Decimal of its binary expansion).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

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
# Encoded fields of recurring values (extensions, names, numbers, seconds), kept between batches.
_CACHE: dict[Any, bytes] = {}
_CACHE_LIMIT = 20_000  # a few MiB; the values that recur most (extensions, seconds) are few
_UNIQUE_VIOLATION = "23505"  # unique_violation


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">i").pack
_INT8 = struct.Struct(">iq").pack  # (8, value): a field's length and an int8 or a timestamptz
_INT4 = struct.Struct(">ii").pack
_ARRAY = struct.Struct(">iiiiii").pack  # length, 1 dimension, no nulls, element type, size, lower bound
_TEXT_OID = 25
_EMPTY_ARRAY = struct.pack(">iiii", 12, 0, 0, _TEXT_OID)
_TRUE, _FALSE = _INT4(1, 0)[:4] + b"\x01", _INT4(1, 0)[:4] + b"\x00"
_CALL_FIELDS = struct.pack(">h", 1 + len(CALL_COLUMNS))
_SEGMENT_FIELDS = struct.pack(">h", len(SEGMENT_COLUMNS))
_RING_FIELDS = struct.pack(">h", len(RING_COLUMNS))

# store._register_unmapped's statement, for many rows: extensions seen on the wire that no assignment
# covers.
_UNMAPPED_MANY = """
INSERT INTO unmapped_extensions AS u (system_id, extension, first_seen, last_seen, call_count)
SELECT $1, v.extension, min(v.first_seen), max(v.last_seen), sum(v.calls)::bigint
FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])
    AS v(extension, first_seen, last_seen, calls)
WHERE NOT EXISTS (SELECT 1 FROM extension_assignments a
                  WHERE a.system_id = $1 AND a.extension = v.extension
                    AND a.valid_from <= v.last_seen AND (a.valid_to IS NULL OR a.valid_to > v.last_seen))
GROUP BY v.extension
ON CONFLICT (system_id, extension) DO UPDATE SET
    first_seen = least(u.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
    call_count = u.call_count + EXCLUDED.call_count
"""
# One batch's extension: first and last call start, and the number of calls.
Seen = tuple[str, datetime, datetime, int]


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
            count_seen(self.seen, {*agents, *rang}, start)


def count_seen(seen: dict[str, tuple[datetime, datetime, int]], extensions: Iterable[str], start: datetime) -> None:
    """Add a call starting at `start` to each extension's first and last call start and call count."""
    for extension in extensions:
        known = seen.get(extension)
        seen[extension] = (start, start, 1) if known is None else (
            min(known[0], start), max(known[1], start), known[2] + 1)


def _numeric(value: int | Decimal) -> bytes:
    """A non-negative int or 3-place Decimal as a binary numeric field (the column's typmod rounds it)."""
    thousandths = value * 1000 if isinstance(value, int) else int(value * 1000)
    whole, fraction = divmod(thousandths, 1000)
    groups: list[int] = []
    while whole:
        whole, group = divmod(whole, 10000)
        groups.insert(0, group)
    weight = len(groups) - 1
    if fraction:
        groups.append(fraction * 10)  # base-10000 digit after the point: .123 -> 1230
    while groups and groups[-1] == 0:
        groups.pop()
    body = struct.pack(f">hhhh{len(groups)}h", len(groups), weight if groups else 0, 0, 3 if fraction else 0, *groups)
    return _LENGTH(len(body)) + body


class BinaryBatch:
    """The COPY (binary format) data of one batch: calls (id first, then CALL_COLUMNS), segments, ring
    attempts; and per extension the first and last call start and the call count (for unmapped_extensions).

    The same values as BatchRows, encoded here: asyncpg's per-value encoding of records was the
    import's largest single cost. Repeated values (extensions, names, numbers, seconds) are encoded once.
    """

    def __init__(self, ids: Sequence[int], system_id: int, records: Sequence[CallRecord], source: str,
                 cache: dict[Any, bytes]) -> None:
        calls: list[bytes] = [_HEADER]
        segments: list[bytes] = [_HEADER]
        rings: list[bytes] = [_HEADER]
        self.seen: dict[str, tuple[datetime, datetime, int]] = {}
        seen = self.seen
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        system = _INT8(8, system_id)
        kind = text(source, cache)
        zero = seconds_field(0, cache)
        epoch, micro = _PG_EPOCH, _MICROSECOND
        # `get(value) or text(value, cache)`: a dict lookup for the values seen before (an encoded field
        # is never empty), a call only for new ones.
        get = cache.get
        for pk, record in zip(ids, records, strict=True):
            key = _INT8(8, pk)
            start, end, answer = record.start, record.end, record.answer
            agents: list[str] = []
            talk = 0.0
            for seq, s in enumerate(record.segments, start=1):
                seconds = s.talk_seconds
                talk += seconds
                extension = s.extension
                agents.append(extension)
                segments += (_SEGMENT_FIELDS, key, _INT4(4, seq), get(extension) or text(extension, cache),
                             get(s.began_by) or text(s.began_by, cache),
                             _NULL if s.ring_start is None else _INT8(8, (s.ring_start - epoch) // micro),
                             _INT8(8, (s.answer - epoch) // micro), _INT8(8, (s.end - epoch) // micro),
                             get((seconds,)) or seconds_field(seconds, cache), unique_text(s.channel))
            rang: dict[str, None] = {}
            for seq, a in enumerate(record.rang, start=1):
                extension = a.extension
                rang[extension] = None
                rings += (_RING_FIELDS, key, _INT4(4, seq), get(extension) or text(extension, cache),
                          _INT8(8, (a.start - epoch) // micro),
                          _NULL if a.end is None else _INT8(8, (a.end - epoch) // micro),
                          get(a.outcome) or text(a.outcome, cache))
            wait = ((answer if answer is not None else end) - start).total_seconds()
            duration = (end - start).total_seconds()
            reason, name, external = record.reason, record.caller_name, record.external_number
            caller, callee = record.caller, record.callee
            chain, ringing = tuple(agents), tuple(rang)
            calls += (
                _CALL_FIELDS, key, system, unique_text(record.call_id),
                text_array(record.linkedids or (record.call_id,)),
                get(record.direction) or text(record.direction, cache),
                get(record.status) or text(record.status, cache),
                _NULL if reason is None else get(reason) or text(reason, cache),
                get(caller) or text(caller, cache), _NULL if name is None else get(name) or text(name, cache),
                get(callee) or text(callee, cache),
                _NULL if external is None else get(external) or text(external, cache),
                _INT8(8, (start - epoch) // micro),
                _NULL if answer is None else _INT8(8, (answer - epoch) // micro), _INT8(8, (end - epoch) // micro),
                (get((wait,)) or seconds_field(wait, cache)) if wait > 0 else zero,
                (get((talk,)) or seconds_field(talk, cache)) if agents else zero,
                (get((duration,)) or seconds_field(duration, cache)) if duration > 0 else zero,
                _INT4(4, record.transfer_count), get(chain) or array_field(chain, cache),
                get(ringing) or array_field(ringing, cache), _TRUE if record.recovered else _FALSE, kind,
            )
            count_seen(seen, {*agents, *rang} if len(agents) + len(rang) > 1 else agents or rang, start)
        calls.append(_TRAILER)
        segments.append(_TRAILER)
        rings.append(_TRAILER)
        self.calls = b"".join(calls)
        self.segments = b"".join(segments) if len(segments) > 2 else b""
        self.rings = b"".join(rings) if len(rings) > 2 else b""


def text(value: str, cache: dict[Any, bytes]) -> bytes:
    """A text field, from `cache` when the value was encoded before (values that recur)."""
    found = cache.get(value)
    if found is None:
        data = value.encode()
        found = cache[value] = _LENGTH(len(data)) + data
    return found


def unique_text(value: str) -> bytes:
    """A text field of a value that seldom recurs (call ids, channel names)."""
    data = value.encode()
    return _LENGTH(len(data)) + data


def text_array(values: Sequence[str]) -> bytes:
    """A one-dimensional text[] field."""
    items = [value.encode() for value in values]
    body = b"".join([_LENGTH(len(item)) + item for item in items])
    return _ARRAY(20 + len(body), 1, 0, _TEXT_OID, len(items), 1) + body


def array_field(values: tuple[str, ...], cache: dict[Any, bytes]) -> bytes:
    """A text[] field of extensions (a call's agents or the extensions that rang), cached by value."""
    found = cache[values] = text_array(values) if values else _EMPTY_ARRAY
    return found


def seconds_field(value: float, cache: dict[Any, bytes]) -> bytes:
    """A numeric(12, 3) field of seconds, as seconds_value rounds them (cached: CDR seconds are whole)."""
    key = (value,)  # not the str/int keys of the text cache
    found = cache.get(key)
    if found is None:
        found = cache[key] = _numeric(seconds_value(value))
    return found


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
    conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord], *, source: str = "cdr",
    unmapped: list[Seen] | None = None,
) -> int:
    """Insert the calls not stored yet (one transaction; distinct call ids); returns how many were new.

    With `unmapped`, the batch's extensions are added to that list for `register_unmapped` instead of
    being registered now (a --bulk load: upserting the same rows once per batch in one transaction
    leaves a version of each row per batch, which every later upsert walks through).
    """
    if not records:
        return 0
    try:
        async with conn.transaction():
            await _relax_commit(conn)
            data = BinaryBatch(await _new_ids(conn, len(records)), system_id, records, source, _CACHE)
            await _copy_batch(conn, data.calls, data.segments, data.rings)
            await _unmapped(conn, system_id, data.seen, unmapped)
        return len(records)
    except store.DATA_ERRORS as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
    # Some are stored already (a second import, the daemon): this batch goes the careful way.
    await prepare(conn)
    async with conn.transaction():
        await _relax_commit(conn)
        # Emptied here too: in a --bulk load's single transaction ON COMMIT comes only at the end.
        await conn.execute(f"TRUNCATE {_STAGE}")
        staged = BatchRows([0] * len(records), system_id, records, source).calls
        await conn.copy_records_to_table(_STAGE, records=[row[1:] for row in staged], columns=list(CALL_COLUMNS))
        columns = ", ".join(CALL_COLUMNS)
        inserted = await conn.fetch(
            f"INSERT INTO calls ({columns}) SELECT {columns} FROM {_STAGE}"
            " ON CONFLICT (system_id, call_id) DO NOTHING RETURNING id, call_id"
        )
        pks = {r["call_id"]: r["id"] for r in inserted}
        new = [r for r in records if r.call_id in pks]
        rows = BatchRows([pks[r.call_id] for r in new], system_id, new, source)
        await _write_details(conn, rows)
        await _unmapped(conn, system_id, rows.seen, unmapped)
    return len(new)


class Encoded(Protocol):
    """A batch of calls the compiled builder has derived (ingest._cdrbuild.Batch), encoded on demand."""

    @property
    def call_ids(self) -> list[str]: ...

    def encode(self, ids: Sequence[int], system_id: int, source: str,
               keep: Sequence[int] | None = None) -> tuple[bytes, bytes, bytes]: ...

    def seen(self, keep: Sequence[int] | None = None) -> dict[str, tuple[datetime, datetime, int]]: ...


async def insert_encoded(conn: asyncpg.Connection, system_id: int, batch: Encoded, keep: Sequence[int], *,
                         careful: list[bool], source: str = "cdr", unmapped: list[Seen] | None = None,
                         seen_every: int = 0, drawing: asyncio.Lock | None = None) -> int:
    """Insert the calls of `batch` at the indices `keep` (distinct call ids) that are not stored yet; how many were.

    Optimistic like insert_new_calls: one COPY per table. When a call is stored already the transaction
    fails on the unique key; then the stored ones are looked up and left out, and `careful[0]` is set so
    that later batches look first (a second import of the same file meets nothing but stored calls).
    `seen_every`: the batch's extensions are registered per run of that many calls (by index), each run
    checked against the assignments at its own last call, as batches of that size would be. `drawing`,
    shared by writers on several connections, keeps each batch's ids one unbroken range (the server's
    check of the details then needs no lookups: schema.sql, calls_detail_check).
    """
    for _attempt in range(5):
        if careful[0] and keep:
            present = await existing_calls(conn, system_id, [batch.call_ids[i] for i in keep])
            keep = [i for i in keep if batch.call_ids[i] not in present]
        if not keep:
            return 0
        try:
            async with conn.transaction():
                await _relax_commit(conn)
                async with drawing or contextlib.nullcontext():
                    ids = await _new_ids(conn, len(keep))
                await _copy_batch(conn, *batch.encode(ids, system_id, source, keep))
                seen: list[Seen] = []
                for run in _runs(keep, seen_every):
                    seen.extend((ext, first, last, count) for ext, (first, last, count) in batch.seen(run).items())
                if unmapped is not None:
                    unmapped.extend(seen)
                else:
                    await register_unmapped(conn, system_id, seen)  # one statement for all runs
            return len(keep)
        except store.DATA_ERRORS as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            careful[0] = True  # and again: another writer stored one of them meanwhile
    raise RuntimeError("calls kept appearing while this batch was written")  # pragma: no cover


def _runs(keep: Sequence[int], every: int) -> list[Sequence[int]]:
    """`keep` cut where the index enters the next run of `every` (all of it when `every` is 0)."""
    if every <= 0:
        return [keep]
    runs: dict[int, list[int]] = {}
    for index in keep:
        runs.setdefault(index // every, []).append(index)
    return list(runs.values())


async def _new_ids(conn: asyncpg.Connection, count: int) -> list[int]:
    """`count` ids drawn from the calls sequence (not necessarily consecutive: the daemon draws too)."""
    ids: list[int] = await conn.fetchval(
        "SELECT array_agg(nextval(pg_get_serial_sequence('calls', 'id'))) FROM generate_series(1, $1)", count)
    return ids


async def _copy_batch(conn: asyncpg.Connection, calls: bytes, segments: bytes, rings: bytes) -> None:
    """A batch's binary COPY data into its three tables, calls first (the details' checks need them)."""
    await _copy(conn, "calls", calls, ["id", *CALL_COLUMNS])
    await _copy(conn, "call_segments", segments, SEGMENT_COLUMNS)
    await _copy(conn, "call_ring_attempts", rings, RING_COLUMNS)


async def _copy(conn: asyncpg.Connection, table: str, data: bytes, columns: Sequence[str]) -> None:
    if data:
        # A memoryview: asyncpg would take bytes for a file name.
        await conn.copy_to_table(table, source=memoryview(data), columns=list(columns), format="binary")


async def _relax_commit(conn: asyncpg.Connection) -> None:
    # Not waiting for each batch's WAL flush: a crash loses at most the last batches, which
    # running the (idempotent) import again adds back.
    # jit off: the triggers' queries over a batch's rows would be compiled anew for every batch.
    await conn.execute("SET LOCAL synchronous_commit TO off; SET LOCAL jit TO off")


async def _write_details(conn: asyncpg.Connection, rows: BatchRows) -> None:
    """The segments and ring attempts of the calls just inserted."""
    if rows.segments:
        await conn.copy_records_to_table("call_segments", records=rows.segments, columns=SEGMENT_COLUMNS)
    if rows.rings:
        await conn.copy_records_to_table("call_ring_attempts", records=rows.rings, columns=RING_COLUMNS)


async def _unmapped(conn: asyncpg.Connection, system_id: int, seen: dict[str, tuple[datetime, datetime, int]],
                    deferred: list[Seen] | None) -> None:
    """Register the extensions a batch showed (`seen`), or keep them in `deferred` for later."""
    rows = [(ext, first, last, count) for ext, (first, last, count) in seen.items()]
    if deferred is not None:
        deferred.extend(rows)
    else:
        await register_unmapped(conn, system_id, rows)  # one statement, not one per extension


async def register_unmapped(conn: asyncpg.Connection, system_id: int, deferred: Sequence[Seen]) -> None:
    """Register the extensions of many batches in one statement, as the batches one by one would have.

    Each batch's row is checked against the assignments at its own last call, as store's statement does; the
    rows that pass are merged (earliest first seen, latest last seen, counts added) like its upserts.
    """
    if not deferred:
        return
    extensions, firsts, lasts, counts = zip(*deferred, strict=True)
    await conn.execute(_UNMAPPED_MANY, system_id, list(extensions), list(firsts), list(lasts), list(counts))
