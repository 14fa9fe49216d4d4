"""`calltrail-report directory ...`: import, export, and list unmapped extensions (thin commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ingest.errors import InputFileError
from ingest.numbers import NumberPlan
from reports import directory_db, directory_files
from reports.cli_users import run_with_connection
from reports.directory import KINDS, check_records


@click.group("directory")
def directory() -> None:
    """Branches, telephone systems, users, extension assignments and CRM identities.

    Files are CSV (one per kind: branches.csv, systems.csv, users.csv, extensions.csv,
    identities.csv, or a folder of them; UTF-8; lists separated by ';') or one YAML or TOML file
    with a list per kind. Export a directory to see the format.
    """


@directory.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=True, dir_okay=True))
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="What a CSV file holds, when its name does not say.")
@click.option("--dry-run", is_flag=True, help="Show what would change, write nothing.")
@click.option("--country-code", default=None, help="Country code for identities' numbers [default: first system's].")
@click.option("--city-code", default=None, help="City code for identities' local numbers [default: first system's].")
@click.pass_context
def directory_import(
    ctx: click.Context, paths: tuple[Path, ...], kind: str | None, dry_run: bool, country_code: str | None,
    city_code: str | None,
) -> None:
    """Upsert PATHS into the directory in one transaction; nothing is written if any entry is bad."""
    if (country_code is None) != (city_code is None):
        raise click.UsageError("give both --country-code and --city-code, or neither")
    plan = None
    if country_code is not None and city_code is not None:
        if not country_code.isdigit() or not city_code.isdigit():
            raise click.UsageError("--country-code and --city-code are digits, like 98 and 21")
        plan = NumberPlan(country_code=country_code.lstrip("0"), city_code=city_code.lstrip("0"))
    try:
        entries = check_records(directory_files.read_paths(paths, kind))
    except InputFileError as exc:
        raise click.ClickException(str(exc)) from exc
    report = run_with_connection(
        ctx, lambda conn: directory_db.apply_directory(conn, entries, dry_run=dry_run, number_plan=plan)
    )
    if dry_run:
        for line in report.lines:
            click.echo(line)
    for kind_name in KINDS:
        counts = report.counts.get(kind_name)
        if counts:
            summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
            click.echo(f"{kind_name}: {summary or 'nothing'}")
    if not report.counts:
        click.echo("nothing to import")
    click.echo("dry run: nothing written" if dry_run else ("imported" if report.changed else "no changes"))


@directory.command("export")
@click.argument("output", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(directory_files.FORMATS), default=None,
              help="csv (a folder of files), yaml or toml [default: from OUTPUT's extension, else csv].")
@click.pass_context
def directory_export(ctx: click.Context, output: Path, fmt: str | None) -> None:
    """Write the whole directory to OUTPUT (a folder for CSV; a file, or - for stdout, for YAML/TOML)."""
    fmt = fmt or directory_files.format_of(output)
    if fmt == "csv" and str(output) == "-":
        raise click.UsageError("CSV export writes a folder of files: give a folder name")
    data = run_with_connection(ctx, directory_db.export_directory)
    if fmt == "csv":
        for path in directory_files.write_csv_folder(output, data):
            click.echo(f"wrote {path}", err=True)
        return
    text = directory_files.to_yaml(data) if fmt == "yaml" else directory_files.to_toml(data)
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@directory.command("unmapped")
@click.option("--system", default=None, help="Only this telephone system.")
@click.pass_context
def directory_unmapped(ctx: click.Context, system: str | None) -> None:
    """Extensions seen on the wire that no user is assigned to: first/last seen and call counts."""
    rows = run_with_connection(ctx, lambda conn: directory_db.unmapped_extensions(conn, system))
    if not rows:
        click.echo("every extension seen is assigned to a user")
        return
    click.echo("system\textension\tfirst seen\tlast seen\tcalls")
    for row in rows:
        click.echo(f"{row.system}\t{row.extension}\t{row.first_seen.isoformat(timespec='seconds')}\t"
                   f"{row.last_seen.isoformat(timespec='seconds')}\t{row.call_count}")
