"""`calltrail-ingest import-cdr`: load Asterisk's CDR history (thin command over ingest.cdr_import)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ingest.errors import ConfigError

if TYPE_CHECKING:
    import asyncpg


@click.command("import-cdr")
@click.option("--system", "system_name", default=None,
              help="Telephone system the CDRs come from (its rules, codes and time zone read them).")
@click.option("--cel", "cel_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="The matching CEL CSV (cel_custom): exact transfers, linkedids and ring times.")
@click.option("--window", "window_minutes", type=click.IntRange(1, 7 * 24 * 60), default=180, show_default=True,
              help="Minutes a call stays open after its last row; raise it for calls longer than this.")
@click.option("--replace", is_flag=True, help="Rewrite calls an earlier import stored (never the daemon's).")
@click.option("--bulk", is_flag=True,
              help="For a first load of a long history: one transaction that sets the calls tables' secondary "
                   "indexes, link checks and report rollup aside and redoes them once at the end (about a third "
                   "less CPU for the database server). Holds an exclusive lock on the calls tables until it ends: "
                   "the daemon's writes and reports wait meanwhile; all or nothing (an error rolls it all back). "
                   "Needs the database user that owns the tables. See deploy/OPERATIONS.md.")
@click.option("--engine", type=click.Choice(["auto", "compiled", "python"]), default="auto", show_default=True,
              help="compiled: the built-in C reader and call builder (fast); python: the reference code, which "
                   "also reads --cel files and does --replace; auto: compiled unless --cel or --replace is given.")
@click.option("--writers", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Database connections the compiled engine writes over at once (each batch of calls is its own "
                   "transaction; two keep two server processes busy). --bulk always uses one.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
@click.argument("cdr_path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def import_cdr(
    ctx: click.Context, system_name: str | None, cel_path: Path | None, window_minutes: int, replace: bool,
    bulk: bool, engine: str, writers: int, progress: bool | None, cdr_path: Path,
) -> None:
    """Import CDR_PATH (Asterisk's Master.csv) as calls; running it again adds nothing.

    By default the compiled engine reads, groups and builds the calls and writes them over
    --writers connections. With --cel or --replace the Python engine does it; it reads files of
    16 MiB or more in two processes (one groups the rows into calls, the other builds and stores them).
    """
    from ingest import cdr_import, pg, store
    from ingest.cli import get_config, run_async

    config = get_config(ctx)
    cdr_path = cdr_path.resolve()
    show = sys.stderr.isatty() if progress is None else progress
    size = cdr_path.stat().st_size

    async def go() -> cdr_import.ImportStats:
        target = await asyncio.to_thread(pg.resolve, config.dsn)
        conn = await store.connect(target.dsn)
        more: list[asyncpg.Connection] = []
        try:
            # Create or upgrade the schema first, as the daemon does (a version 3 database would keep its
            # per-row foreign keys: correct but slow).
            before, after = await store.init_schema(conn)
            if before != after:
                click.echo(f"schema {'created' if before is None else 'upgraded'} (version {after})", err=True)
            if not bulk and engine != "python" and cel_path is None and not replace:
                more = [await store.connect(target.dsn) for _ in range(writers - 1)]
            configured = [s for s in config.systems if s.name == system_name] if system_name else list(config.systems)
            system = configured[0] if len(configured) == 1 else None
            if system is None and system_name is not None:
                system = await cdr_import.system_from_db(conn, system_name)
            if system is None:
                raise ConfigError(
                    f"no telephone system named {system_name!r} in the configuration or the directory"
                    if system_name else "choose the telephone system with --system NAME"
                )
            if not show:
                return await cdr_import.import_cdr(conn, system, cdr_path, cel_path=cel_path,
                                                   window=timedelta(minutes=window_minutes), replace=replace, bulk=bulk,
                                                   engine=engine, more=more)
            with click.progressbar(length=size, label=cdr_path.name, file=sys.stderr) as bar:
                return await cdr_import.import_cdr(conn, system, cdr_path, cel_path=cel_path,
                                                   window=timedelta(minutes=window_minutes), replace=replace,
                                                   bulk=bulk, progress=bar.update, engine=engine, more=more)
        finally:
            for extra in more:
                await extra.close()
            await conn.close()

    stats = run_async(go)
    click.echo(f"rows read: {stats.rows_read}" + (f" (CEL rows: {stats.cel_rows})" if cel_path else ""))
    click.echo(f"calls stored: {stats.calls_stored}" + (f", rewritten: {stats.calls_replaced}" if replace else ""))
    click.echo(f"calls already stored, left as they were: {stats.calls_present}")
    click.echo(f"rows skipped: {stats.rows_skipped}")
    for reason, count in stats.skipped.most_common():
        click.echo(f"  {count}\t{reason}")
