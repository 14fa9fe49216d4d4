"""calltrail-report: the command line of the report side (thin click commands)."""

from __future__ import annotations

from pathlib import Path

import click

from ingest import __version__
from ingest.cli import setup_logging

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="calltrail-report")
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
    """Calltrail reports: the call-details report and its siblings, from the calls in PostgreSQL.

    Reports are filtered by period, agent, call type, branch and telephone system, broken down by
    day, month, season or year in the Jalali or Gregorian calendar, and written as PDF, XLSX, CSV
    or HTML. The database is $CALLTRAIL_DSN (or `dsn` in the config file), else the embedded one.
    """
    ctx.ensure_object(dict)
    setup_logging(verbose)
