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


# Directory and user administration live in their own modules (issue 6).
from reports.cli_directory import directory  # noqa: E402
from reports.cli_users import users  # noqa: E402

main.add_command(directory)
main.add_command(users)

# The reports themselves: render, totals, chain (issue 5).
from reports.cli_report import COMMANDS as _REPORT_COMMANDS  # noqa: E402

for _command in _REPORT_COMMANDS:
    main.add_command(_command)

# The web app (issue 7).
from reports.web.cli import serve  # noqa: E402

main.add_command(serve)

# The end-to-end demo (issue 8).
from reports.cli_demo import demo  # noqa: E402

main.add_command(demo)
