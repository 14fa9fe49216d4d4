"""The report side's database access: the only module here importing asyncpg.

Runs the named queries of `reports/queries/` with their `$n` parameters and returns plain records.
Totals come from the per-day rollup (`report_daily_totals`) when the filters allow, otherwise from
`calls`; both queries return the same columns, keyed by bucket (None: the whole period).
"""

from __future__ import annotations

import asyncio
import csv
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import asyncpg

from reports.errors import ReportFilterError
from reports.filters import ReportRequest

log = logging.getLogger(__name__)

# asyncpg ships no type information: its objects are Any to mypy, named here for readers.
Connection: TypeAlias = Any
Pool: TypeAlias = Any
Record = Mapping[str, Any]
QUERIES = Path(__file__).resolve().parent / "queries"
# COPY chunks (about 64 KiB each) waiting to be read: bounds memory when the reader is slower.
COPY_QUEUE = 16
# Seconds to wait for a spare pooled connection (a parallel export), and what a snapshot id looks like.
SPARE_WAIT = 0.5
SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")
T = TypeVar("T")


@asynccontextmanager
async def acquire(source: Connection | Pool) -> AsyncIterator[Connection]:
    """A connection from a pool (released afterwards), or the connection itself."""
    if isinstance(source, asyncpg.Pool):
        async with source.acquire() as conn:
            yield conn
    else:
        yield source


@cache
def query(name: str) -> str:
    """The text of `reports/queries/<name>.sql`."""
    return (QUERIES / f"{name}.sql").read_text(encoding="utf-8")


@cache
def copy_query(name: str) -> str:
    """The text of a query run by COPY, without its comment lines.

    COPY takes no parameters, so asyncpg writes their values into the statement's text wherever `$n`
    appears, in comments too: a value with a line break (a system's title) would end the comment.
    """
    return "\n".join(line for line in query(name).splitlines() if not line.lstrip().startswith("--"))


@dataclass(frozen=True)
class SystemInfo:
    """A telephone system and its branch."""

    id: int
    name: str
    title: str
    timezone: str
    branch_id: int
    branch_name: str
    branch_title: str

    @property
    def label(self) -> str:
        """The title when there is one, else the name."""
        return self.title or self.name


@dataclass(frozen=True)
class AgentInfo:
    """The user chosen in the agent filter."""

    id: int
    username: str
    name: str


@dataclass(frozen=True)
class Scope:
    """The request's names resolved against the database."""

    systems: tuple[SystemInfo, ...]
    agent: AgentInfo | None = None
    branch: tuple[str, str] | None = None
    system: SystemInfo | None = None

    @property
    def system_ids(self) -> list[int]:
        """Ids of the telephone systems whose calls are reported."""
        return [s.id for s in self.systems]

    def by_id(self) -> dict[int, SystemInfo]:
        """The chosen systems by id."""
        return {s.id: s for s in self.systems}


async def user_by_name(conn: Connection, username: str) -> Record | None:
    """One user row (id, username, name, roles, active), or None."""
    row: Record | None = await conn.fetchrow(query("user_by_name"), username)
    return row


async def resolve(conn: Connection, request: ReportRequest) -> Scope:
    """Check the agent, branch and system names; ReportFilterError names the bad one."""
    rows = await conn.fetch(query("scope_systems"))
    systems = [SystemInfo(**dict(r)) for r in rows]
    branch: tuple[str, str] | None = None
    if request.branch is not None:
        in_branch = [s for s in systems if request.branch in (s.branch_name, s.branch_title)]
        if not in_branch:
            branches = ", ".join(sorted({s.branch_name for s in systems})) or "none"
            raise ReportFilterError("branch", f"there is no branch {request.branch!r} (known: {branches})")
        branch = (in_branch[0].branch_name, in_branch[0].branch_title)
        systems = in_branch
    system: SystemInfo | None = None
    if request.system is not None:
        matching = [s for s in systems if request.system in (s.name, s.title)]
        if not matching:
            everywhere = [s for s in rows if request.system in (s["name"], s["title"])]
            if everywhere and branch is not None:
                raise ReportFilterError("system", f"telephone system {request.system!r} is not in branch"
                                                  f" {request.branch!r} (it is in {everywhere[0]['branch_name']!r})")
            known = ", ".join(s.name for s in systems) or "none"
            raise ReportFilterError("system", f"there is no telephone system {request.system!r} (known: {known})")
        system = matching[0]
        systems = [system]
    agent: AgentInfo | None = None
    if request.agent is not None:
        row = await user_by_name(conn, request.agent)
        if row is None:
            raise ReportFilterError("agent", f"there is no user {request.agent!r}")
        agent = AgentInfo(id=row["id"], username=row["username"], name=row["name"])
    return Scope(systems=tuple(systems), agent=agent, branch=branch, system=system)


def _kinds(request: ReportRequest) -> list[str]:
    return list(request.types)


def rollup_applies(request: ReportRequest, scope: Scope) -> bool:
    """True when the per-day rollup can answer: no agent filter, and days in the systems' own zone."""
    return scope.agent is None and all(s.timezone == request.timezone for s in scope.systems)


async def totals(
    conn: Connection, request: ReportRequest, scope: Scope, *, use_rollup: bool | None = None
) -> dict[int | None, Record]:
    """Totals per bucket index (0-based; None for the whole period), from the rollup or `calls`."""
    if use_rollup is None:
        use_rollup = rollup_applies(request, scope)
    if use_rollup:
        rows = await conn.fetch(
            query("totals_rollup"), request.first_day, request.last_day + timedelta(days=1),
            scope.system_ids, _kinds(request), [b.start for b in request.buckets],
        )
    else:
        start, end = request.utc_range()
        rows = await conn.fetch(
            query("totals_raw"), start, end, scope.system_ids, scope.agent.id if scope.agent else None,
            _kinds(request), request.bucket_starts(),
        )
    log.debug("totals for %d buckets from %s", len(request.buckets), "the rollup" if use_rollup else "calls")
    return {(None if r["bucket"] is None else r["bucket"] - 1): r for r in rows}


def _filter_args(request: ReportRequest, scope: Scope) -> tuple[Any, ...]:
    start, end = request.utc_range()
    return start, end, scope.system_ids, scope.agent.id if scope.agent else None, _kinds(request)


async def details_stream(conn: Connection, request: ReportRequest, scope: Scope) -> AsyncIterator[list[str]]:
    """Every detail row in time order as text fields (details_copy.sql), streamed by COPY.

    COPY hands over CSV text in large chunks, far cheaper per row than decoding records, and the
    server keeps scanning while the rows already received are formatted (two cores at work).
    """
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=COPY_QUEUE)

    async def received(chunk: bytes) -> None:
        await chunks.put(chunk)

    async def pump() -> None:
        try:
            await conn.copy_from_query(copy_query("details_copy"), *_filter_args(request, scope), output=received,
                                       format="csv")
        finally:
            with suppress(asyncio.QueueFull):
                chunks.put_nowait(None)

    task = asyncio.create_task(pump())
    pending = b""
    try:
        while (chunk := await chunks.get()) is not None:
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut:
                # details_copy.sql makes every record one line, so a chunk can be cut at any newline.
                lines = pending[:cut].decode("utf-8").splitlines()
                pending = pending[cut:]
                for fields in csv.reader(lines):
                    yield fields
        await task
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


@dataclass
class StreamedRows(Generic[T]):
    """A report's streamed rows, with the connection and filters that let an export have the server format them.

    Iterating yields the rows as usual; a CSV export instead runs `details_csv` (nothing is read twice).
    """

    rows: AsyncIterable[T]
    conn: Connection
    request: ReportRequest
    scope: Scope
    # Opens another connection to the same database (released on exit): lets a large CSV export be
    # formatted by several server processes at once (render/csv_parts.py). None: one connection only.
    spare: Callable[[], AbstractAsyncContextManager[Connection]] | None = None

    def __aiter__(self) -> AsyncIterator[T]:
        return self.rows.__aiter__()


@dataclass(frozen=True)
class CsvTexts:
    """The words of a CSV export the server writes into the cells (details_csv.sql $8-$14)."""

    days: list[str]
    bucket_labels: list[str]
    kinds: list[str]
    reason_keys: list[str]
    reasons: list[str]


async def details_csv(conn: Connection, request: ReportRequest, scope: Scope, texts: CsvTexts,
                      output: Callable[[bytes], Awaitable[None]], *, part: tuple[datetime, datetime] | None = None,
                      first_number: int | None = 1) -> None:
    """Every detail row as a finished CSV line (details_csv.sql), COPY chunks handed to `output` as they come.

    `part` narrows the rows to the calls starting in [start, end) of the period; `first_number` is the
    number of the first row (None: the row-number cells are left empty).
    """
    systems = [s.label for s in scope.systems]
    start, end, *filters = _filter_args(request, scope)
    if part is not None:
        start, end = max(start, part[0]), min(end, part[1])
    # The lookups left per call (extensions re-assigned within the period) must use the index: with a
    # few hundred assignments the planner would scan the whole table once per call (8x slower). JIT
    # only adds seconds of compiling here (its estimate is far below the rows read). Local to the
    # report's transaction, and put back after the statement (an error ends the transaction, and the
    # settings with it).
    previous = await conn.fetchrow("SELECT current_setting('enable_seqscan') AS seqscan, current_setting('jit') AS jit")
    await conn.execute("SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)")
    await conn.copy_from_query(
        copy_query("details_csv"), start, end, *filters, request.timezone, request.first_day, texts.days,
        request.bucket_starts(), texts.bucket_labels, texts.kinds, texts.reason_keys, texts.reasons, systems,
        None if first_number is None else first_number - 1, output=output, format="csv")
    await conn.execute("SELECT set_config('enable_seqscan', $1, true), set_config('jit', $2, true)",
                       previous["seqscan"], previous["jit"])


async def details_span(conn: Connection, request: ReportRequest, scope: Scope) -> tuple[datetime, datetime] | None:
    """The first and last start time of the period's calls on the report's systems (None: no call)."""
    start, end = request.utc_range()
    row = await conn.fetchrow(query("details_span"), start, end, scope.system_ids)
    return None if row["first"] is None else (row["first"], row["last"])


async def export_snapshot(conn: Connection) -> str:
    """The id of the snapshot of `conn`'s transaction, for `in_snapshot` on other connections."""
    snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
    return snapshot


@asynccontextmanager
async def in_snapshot(conn: Connection, snapshot: str) -> AsyncIterator[Connection]:
    """A read-only transaction on `conn` that sees exactly what the exporting transaction sees."""
    if not SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # SET TRANSACTION SNAPSHOT takes no parameter; the id was checked above.
        await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield conn


def spare_connections(source: Connection | Pool,
                      connect: Callable[[], Awaitable[Connection]] | None
                      ) -> Callable[[], AbstractAsyncContextManager[Connection]] | None:
    """How to open another connection beside `source`: `connect` (closed after use), else the pool's own."""
    if connect is not None:
        opener = connect

        @asynccontextmanager
        async def opened() -> AsyncIterator[Connection]:
            conn = await opener()
            try:
                yield conn
            finally:
                await conn.close()

        return opened
    if isinstance(source, asyncpg.Pool):
        pool = source

        @asynccontextmanager
        async def borrowed() -> AsyncIterator[Connection]:
            # A busy pool is not waited for long: the export then uses fewer connections.
            async with pool.acquire(timeout=SPARE_WAIT) as conn:
                yield conn

        return borrowed
    return None


async def identities_in_period(conn: Connection, request: ReportRequest, scope: Scope) -> dict[str, Record]:
    """Identities (ids, names, urls) per outside number of the report's calls."""
    rows = await conn.fetch(query("identities_in_period"), *_filter_args(request, scope))
    return {r["number_e164"]: r for r in rows}


async def details_page(
    conn: Connection, request: ReportRequest, scope: Scope, *, limit: int | None = None, offset: int = 0
) -> list[Record]:
    """Detail rows in time order, fetched at once (a page, or a small report)."""
    rows: list[Record] = await conn.fetch(query("details"), *_filter_args(request, scope), limit, offset)
    return rows


async def assignments(conn: Connection, system_ids: list[int]) -> list[Record]:
    """Extension assignments (with user names) of the given systems."""
    rows: list[Record] = await conn.fetch(query("assignments"), system_ids)
    return rows


async def assignments_of(conn: Connection, pairs: Iterable[tuple[int, str]]) -> list[Record]:
    """Extension assignments (with user names) of the given (system id, extension) pairs only."""
    wanted = list(pairs)
    if not wanted:
        return []
    rows: list[Record] = await conn.fetch(query("assignments_of"), [s for s, _ in wanted], [e for _, e in wanted])
    return rows


async def agent_totals(conn: Connection, request: ReportRequest, scope: Scope) -> list[Record]:
    """One totals row per agent (user_id None: calls with no agent)."""
    rows: list[Record] = await conn.fetch(query("totals_by_agent"), *_filter_args(request, scope))
    return rows


async def number_totals(conn: Connection, request: ReportRequest, scope: Scope) -> list[Record]:
    """One totals row per outside number, in the request's sort order."""
    rows: list[Record] = await conn.fetch(query("totals_by_number"), *_filter_args(request, scope), request.sort)
    return rows


async def chain(conn: Connection, call_id: str, system: str | None) -> list[tuple[Record, list[Record], list[Record]]]:
    """Each call known by `call_id` (one per system), with its segments and ring attempts."""
    result: list[tuple[Record, list[Record], list[Record]]] = []
    for call in await conn.fetch(query("chain_call"), call_id, system):
        segments = await conn.fetch(query("chain_segments"), call["id"])
        rings = await conn.fetch(query("chain_rings"), call["id"])
        result.append((call, list(segments), list(rings)))
    return result
