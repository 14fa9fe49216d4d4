"""calltrail-report render | totals | chain: the reports from the command line (thin over reports.api).

Exit codes: 0 done, 2 a bad filter or option (the message names it), 1 anything else refused or
failed (permission, database). A progress bar goes to stderr while rows are written, when stderr
is a terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from ingest.cli import get_config
from ingest.errors import CalltrailError
from reports.errors import ReportFilterError
from reports.filters import ReportRequest, parse_filters

T = TypeVar("T")


class FilterUsageError(click.ClickException):
    """A bad filter value: printed as `Error: FIELD: why`, exit code 2."""

    exit_code = 2


def run_report(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine, turning filter errors into exit code 2 and other Calltrail errors into 1."""
    try:
        return asyncio.run(_call(factory))
    except ReportFilterError as exc:
        raise FilterUsageError(str(exc)) from exc
    except CalltrailError as exc:
        raise click.ClickException(str(exc)) from exc


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


async def _connect(ctx: click.Context) -> Any:
    from ingest import pg, store

    target = await asyncio.to_thread(pg.resolve, get_config(ctx).dsn)
    return await store.connect(target.dsn)


def filter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The seed's filters as options, shared by render and totals."""
    options = [
        click.option("--period", help="today, yesterday, this_week, last_week, this_month, last_month, this_season,"
                                      " last_season, this_year, last_year, or year/season/month with --year"),
        click.option("--year", help="Year in the report's calendar (e.g. 1405), for --period year|season|month."),
        click.option("--season", help="Season 1-4 (Jalali: 1 is spring) of --year."),
        click.option("--month", help="Month 1-12 of --year."),
        click.option("--from", "date_from", help="First day, e.g. 1405/09/01 (Jalali) or 2026-11-01 (Gregorian)."),
        click.option("--to", "date_to", help="Last day (inclusive); default today when --from is given."),
        click.option("--by", help="Breakdown: day, month, season or year [default: day, month past 2 months]."),
        click.option("--agent", help="Only calls of this agent (username)."),
        click.option("--type", "call_type", help="all, incoming, outgoing, missed, internal; comma-separated"
                                                 " to combine (e.g. all,internal) [default: all]."),
        click.option("--branch", help="Only this branch (name)."),
        click.option("--system", help="Only this telephone system (name); must be in --branch when both are given."),
        click.option("--calendar", help="jalali or gregorian [default: jalali for fa, gregorian for en]."),
        click.option("--tz", help="Time zone of dates and buckets [default: Asia/Tehran]."),
        click.option("--lang", help="fa or en [default: fa]."),
        click.option("--format", "out_format", help="pdf, xlsx, csv or html [default: pdf, or from -o's suffix]."),
        click.option("--company", default=lambda: os.environ.get("CALLTRAIL_COMPANY", ""),
                     help="Company name for the header [default: $CALLTRAIL_COMPANY]."),
        click.option("--as", "as_user", help="Act as this user (their roles apply) [default: the built-in"
                                             " administrator]."),
        click.option("-o", "--output", required=True, help="Output file, or - for standard output."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _filters(params: dict[str, Any]) -> dict[str, object]:
    names = {"period": "period", "year": "year", "season": "season", "month": "month", "date_from": "from",
             "date_to": "to", "by": "by", "agent": "agent", "call_type": "type", "branch": "branch",
             "system": "system", "calendar": "calendar", "tz": "tz", "lang": "lang", "out_format": "format",
             "company": "company", "sort": "sort"}
    values = {names[k]: v for k, v in params.items() if k in names and v not in (None, "")}
    if "format" not in values and params.get("output") not in (None, "-"):
        suffix = Path(params["output"]).suffix.lower().lstrip(".")
        if suffix in ("pdf", "xlsx", "csv", "html", "htm"):
            values["format"] = "html" if suffix == "htm" else suffix
    return values


def _request(params: dict[str, Any]) -> ReportRequest:
    try:
        return parse_filters(_filters(params))
    except ReportFilterError as exc:
        raise FilterUsageError(str(exc)) from exc


@contextmanager
def _output(path: str) -> Iterator[BinaryIO]:
    """Standard output, or a file written in full before it replaces `path` (no half files)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    descriptor, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _progress(total: int) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    if total < 2000 or not sys.stderr.isatty():
        return None, lambda: None
    bar = click.progressbar(length=total, file=sys.stderr, label="rows")
    bar.__enter__()
    return bar.update, lambda: bar.__exit__(None, None, None)


@click.command("render")
@filter_options
@click.pass_context
def render_command(ctx: click.Context, /, **params: Any) -> None:
    """The call-details report (the seed): rows, totals per bucket and for the period, chart."""
    from reports import api, render

    request = _request(params)

    async def go() -> int:
        conn = await _connect(ctx)
        try:
            # A large CSV export is formatted by a few connections at once (render/csv_parts.py).
            async with api.open_report(conn, request, params["as_user"], connect=lambda: _connect(ctx)) as document:
                progress, done = _progress(document.grand.calls)
                try:
                    with _output(params["output"]) as out:
                        await render.write(document, out, progress=progress)
                finally:
                    done()
                return document.grand.calls
        finally:
            await conn.close()

    calls = run_report(go)
    if params["output"] != "-":
        click.echo(f"{params['output']}: {calls} calls, {request.first_day} to {request.last_day}", err=True)


@click.command("totals")
@click.argument("kind", type=click.Choice(["agent", "date", "number"]))
@filter_options
@click.option("--sort", help="For totals by number: number, calls or talk [default: number].")
@click.pass_context
def totals_command(ctx: click.Context, /, kind: str, **params: Any) -> None:
    """The sibling reports: totals by agent, by date (per --by bucket) or by phone number."""
    from reports import api, render

    request = _request(params)

    async def go() -> None:
        conn = await _connect(ctx)
        try:
            document = await api.totals_report(conn, request, kind, params["as_user"])  # type: ignore[arg-type]
            with _output(params["output"]) as out:
                await render.write(document, out)
        finally:
            await conn.close()

    run_report(go)


@click.command("chain")
@click.argument("call_id")
@click.option("--system", help="Telephone system name, when the call id exists on several.")
@click.option("--lang", default="fa", show_default=True, help="fa or en.")
@click.option("--calendar", help="jalali or gregorian [default: by language].")
@click.option("--tz", help="Time zone [default: Asia/Tehran].")
@click.option("--format", "out_format", type=click.Choice(["text", "json", "html", "pdf"]), default="text",
              show_default=True)
@click.option("--as", "as_user", help="Act as this user [default: the built-in administrator].")
@click.option("-o", "--output", default="-", show_default=True, help="Output file, or - for standard output.")
@click.pass_context
def chain_command(ctx: click.Context, call_id: str, system: str | None, lang: str, calendar: str | None,
                  tz: str | None, out_format: str, as_user: str | None, output: str) -> None:
    """One call's full transfer chain: who rang, who answered, who transferred to whom."""
    from reports import api, render
    from reports.render.chain_text import chain_json, chain_text

    async def go() -> None:
        conn = await _connect(ctx)
        try:
            document = await api.chain_report(conn, call_id, as_user, system=system, lang=lang,
                                              calendar=calendar, tz=tz)
        finally:
            await conn.close()
        with _output(output) as out:
            if out_format == "text":
                out.write(chain_text(document).encode("utf-8"))
            elif out_format == "json":
                out.write((json.dumps(chain_json(document), ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
            else:
                await render.write(document, out, out_format)

    run_report(go)


COMMANDS = (render_command, totals_command, chain_command)
