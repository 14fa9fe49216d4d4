"""The report functions every front end calls (the CLI now, the web app later): no logic elsewhere.

    request = parse_filters({"period": "this_month", "by": "day", "format": "xlsx"})
    async with open_report(pool, request, "sara") as document:     # streams rows
        await render.write(document, out)
    document = await produce(pool, request, actor, limit=50)       # one page, rows in memory
    sums = await totals_report(pool, request, "agent", actor)       # the sibling reports
    chain = await chain_report(pool, "1795687394.123", actor)

`source` is an asyncpg connection or pool; `user` an `Actor`, a username, or None for the built-in
administrator. Every function checks the permission rule before reading any call, and reads in one
read-only repeatable-read transaction, so the totals and the rows of a report agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from reports import data
from reports.context import (
    AssignmentBook,
    BucketTotals,
    CallRow,
    ChainDocument,
    ChainTurn,
    Header,
    ReportDocument,
    RowBuilder,
    Totals,
    TotalsDocument,
    TotalsLine,
    agent_extensions,
    iterate,
    kind_of,
)
from reports.errors import ReportFilterError, ReportNotFoundError
from reports.filters import ALL_TYPES, ReportRequest, parse_filters
from reports.permissions import Actor, load_actor, require_report_access
from reports.text import Formatter, half_up

__all__ = ["chain_report", "open_report", "parse_filters", "produce", "totals_report"]

User = Actor | str | None


@asynccontextmanager
async def _reading(source: Any, user: User) -> AsyncIterator[tuple[Any, Actor]]:
    """A connection in a read-only snapshot, after the permission check."""
    async with data.acquire(source) as conn:
        who = user if isinstance(user, Actor) else await load_actor(conn, user)
        require_report_access(who)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn, who


def _filters(request: ReportRequest, scope: data.Scope, fmt: Formatter, *, sort: bool = False,
             breakdown: bool = True) -> list[tuple[str, str]]:
    everything = fmt.t("all")
    comma = "، " if fmt.rtl else ", "
    types = everything if request.types == ALL_TYPES else comma.join(fmt.t(f"kind.{t}") for t in request.types)
    # Totals by agent or by number have one line per agent or number: no breakdown by date.
    shown = [(fmt.t("filter.by"), fmt.t(f"bd.{request.breakdown}"))] if breakdown else []
    shown += [
        (fmt.t("filter.agent"), scope.agent.name if scope.agent else everything),
        (fmt.t("filter.type"), types),
        (fmt.t("filter.branch"), (scope.branch[1] or scope.branch[0]) if scope.branch else everything),
        (fmt.t("filter.system"), scope.system.label if scope.system else everything),
        (fmt.t("filter.calendar"), fmt.t(f"calendar.{request.calendar}")),
        (fmt.t("filter.tz"), request.timezone),
    ]
    if sort:
        shown.append((fmt.t("filter.sort"), fmt.t(f"sort.{request.sort}")))
    return shown


def _header(request: ReportRequest, scope: data.Scope, who: Actor, fmt: Formatter, title: str,
            now: datetime | None, *, sort: bool = False, breakdown: bool = True) -> Header:
    return Header(
        title=title,
        company=request.company,
        made_at=(now or datetime.now(UTC)).astimezone(request.zone),
        made_by=fmt.t("builtin_admin") if who.builtin else who.name,
        first_day=request.first_day,
        last_day=request.last_day,
        filters=tuple(_filters(request, scope, fmt, sort=sort, breakdown=breakdown)),
    )


async def _document(conn: Any, request: ReportRequest, who: Actor, now: datetime | None,
                    limit: int | None, offset: int, stream: bool) -> ReportDocument:
    scope = await data.resolve(conn, request)
    fmt = Formatter(request.lang, request.calendar)
    use_rollup = data.rollup_applies(request, scope)
    found = await data.totals(conn, request, scope, use_rollup=use_rollup)
    buckets = tuple(
        BucketTotals(b, fmt.digits(b.label(request.lang)), Totals.from_record(found.get(b.index)))
        for b in request.buckets
    )
    rows: AsyncIterable[CallRow]
    if stream:
        builder = RowBuilder(request, scope.by_id(), AssignmentBook(await data.assignments(conn, scope.system_ids)),
                             next_number=offset + 1)

        async def streamed() -> AsyncIterator[CallRow]:
            # Read when iterated only: a CSV export has the server write the rows instead (render/csv.py).
            identities = await data.identities_in_period(conn, request, scope)
            async for row in builder.stream(data.details_stream(conn, request, scope), identities):
                yield row

        rows = data.StreamedRows(streamed(), conn, request, scope)
    else:
        page = await data.details_page(conn, request, scope, limit=limit, offset=offset)
        # Only the assignments of this page's agents: a page names a few dozen of them.
        book = AssignmentBook(await data.assignments_of(conn, agent_extensions(page)))
        builder = RowBuilder(request, scope.by_id(), book, next_number=offset + 1)
        rows = iterate([builder.build(r) for r in page])
    title = fmt.t("title.details", by=fmt.t(f"by.{request.breakdown}"))
    return ReportDocument(
        request=request, header=_header(request, scope, who, fmt, title, now), buckets=buckets,
        grand=Totals.from_record(found.get(None)), rows=rows, fmt=fmt, rollup_used=use_rollup,
    )


@asynccontextmanager
async def open_report(source: Any, request: ReportRequest, user: User = None, *, now: datetime | None = None,
                      connect: Callable[[], Awaitable[Any]] | None = None) -> AsyncIterator[ReportDocument]:
    """The call-details report with its rows streamed from the database while the block runs.

    `connect` opens another connection to the same database: a large CSV export then runs on several
    at once (a pool's own connections are used without it).
    """
    async with _reading(source, user) as (conn, who):
        document = await _document(conn, request, who, now, None, 0, stream=True)
        if isinstance(document.rows, data.StreamedRows):
            document.rows.spare = data.spare_connections(source, connect)
        yield document


async def produce(source: Any, request: ReportRequest, user: User = None, *, now: datetime | None = None,
                  limit: int | None = None, offset: int = 0) -> ReportDocument:
    """The call-details report with its rows (or one page of them) in memory."""
    async with _reading(source, user) as (conn, who):
        return await _document(conn, request, who, now, limit, offset, stream=False)


async def totals_report(source: Any, request: ReportRequest, by: Literal["agent", "date", "number"],
                        user: User = None, *, now: datetime | None = None) -> TotalsDocument:
    """A sibling report: totals by agent, by date (the request's breakdown) or by phone number."""
    if by not in ("agent", "date", "number"):
        raise ReportFilterError("by", f"totals are by agent, date or number, not {by!r}")
    async with _reading(source, user) as (conn, who):
        scope = await data.resolve(conn, request)
        fmt = Formatter(request.lang, request.calendar)
        lines: list[TotalsLine] = []
        if by == "agent":
            for r in await data.agent_totals(conn, request, scope):
                lines.append(TotalsLine(r["name"] or "", r["username"] or "", Totals.from_record(r)))
            title = fmt.t("title.agent")
        elif by == "number":
            for r in await data.number_totals(conn, request, scope):
                key = r["dialled"] or r["number_key"] or fmt.t("unknown_number")
                lines.append(TotalsLine(key, "، ".join(r["identity_names"] or ()), Totals.from_record(r)))
            title = fmt.t("title.number")
        else:
            found = await data.totals(conn, request, scope)
            for b in request.buckets:
                if b.index in found and found[b.index]["calls"]:
                    lines.append(TotalsLine(b.label(request.lang), "", Totals.from_record(found[b.index])))
            title = fmt.t("title.date", by=fmt.t(f"by.{request.breakdown}"))
        header = _header(request, scope, who, fmt, title, now, sort=by == "number", breakdown=by == "date")
    return TotalsDocument(by=by, request=request, header=header, lines=tuple(lines), fmt=fmt)


def _turns(rows: list[data.Record], zone: Any, rings: bool) -> tuple[ChainTurn, ...]:
    turns = []
    for r in rows:
        if rings:
            start, answer, end, how = r["start_time"], None, r["end_time"], r["outcome"]
            ring = (end - start).total_seconds() if end else None
            talk = None
        else:
            start, answer, end, how = r["ring_start"], r["answer_time"], r["end_time"], r["began_by"]
            ring = (answer - start).total_seconds() if start else None
            talk = r["talk_seconds"]
        turns.append(ChainTurn(
            seq=r["seq"], extension=r["extension"], agent=r["agent_name"], how=how,
            start=start.astimezone(zone) if start else None, answer=answer.astimezone(zone) if answer else None,
            end=end.astimezone(zone) if end else None,
            ring_seconds=None if ring is None else half_up(ring, 3), talk_seconds=talk,
        ))
    return tuple(turns)


async def chain_report(source: Any, call_id: str, user: User = None, *, system: str | None = None,
                       lang: str = "fa", calendar: str | None = None, tz: str | None = None,
                       company: str = "", now: datetime | None = None) -> ChainDocument:
    """One call's full transfer chain; ReportNotFoundError when unknown, ReportFilterError when ambiguous."""
    values: dict[str, object] = {"lang": lang, "calendar": calendar, "tz": tz, "period": "today", "company": company}
    request = parse_filters({k: v for k, v in values.items() if v is not None})
    fmt = Formatter(request.lang, request.calendar)
    async with _reading(source, user) as (conn, who):
        found = await data.chain(conn, call_id, system)
    if not found:
        where = f" on telephone system {system!r}" if system else ""
        raise ReportNotFoundError(f"there is no call {call_id!r}{where}")
    if len(found) > 1:
        names = ", ".join(call["system_name"] for call, _, _ in found)
        raise ReportFilterError("system", f"call {call_id!r} exists on several telephone systems ({names}):"
                                          " choose one")
    call, segments, rings = found[0]
    zone = request.zone
    header = Header(title=fmt.t("title.chain"), company=company, made_at=(now or datetime.now(UTC)).astimezone(zone),
                    made_by=fmt.t("builtin_admin") if who.builtin else who.name,
                    first_day=call["start_time"].astimezone(zone).date(),
                    last_day=call["end_time"].astimezone(zone).date(), filters=())
    return ChainDocument(
        header=header, call_id=call["call_id"], system=call["system_title"] or call["system_name"],
        kind=kind_of(call["direction"], call["status"]), reason=call["reason"], caller=call["caller"],
        callee=call["callee"], start=call["start_time"].astimezone(zone), end=call["end_time"].astimezone(zone),
        wait_seconds=call["wait_seconds"], talk_seconds=call["talk_seconds"], transfer_count=call["transfer_count"],
        turns=_turns(segments, zone, rings=False), rings=_turns(rings, zone, rings=True), fmt=fmt,
    )
