"""`calltrail-report demo`: see Calltrail work end to end on this machine (thin over reports.demo)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ingest.cli import run_async


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("calltrail-demo"),
              show_default=True, help="Folder for the reports it renders.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the embedded PostgreSQL and the demo's journal live "
                   "[default: $CALLTRAIL_DATA_DIR or ~/.local/share/calltrail].")
@click.option("--dsn", default=None, help="Use this PostgreSQL server instead of the embedded one.")
@click.option("--calls", type=click.IntRange(14, 5000), default=400, show_default=True,
              help="How many calls to make from the recorded traces.")
@click.option("--serve", is_flag=True, help="Then open the web app, logged in as the demo manager (Ctrl-C ends).")
@click.option("--listen", default="127.0.0.1:0", show_default=True, metavar="HOST:PORT",
              help="Where --serve listens (port 0: a free one).")
def demo(out_dir: Path, data_dir: Path | None, dsn: str | None, calls: int, serve: bool, listen: str) -> None:
    """Run the whole product on this machine with nothing configured.

    Starts the embedded PostgreSQL, imports a demo directory (a branch, a telephone system, agents
    and CRM identities with Persian names), has a fake Asterisk replay real recorded AMI traces as
    months of calls to the real ingestion daemon over TCP, then renders the call-details report as
    PDF and XLSX (Persian, Jalali) into --out. Running it again stores the same calls again.
    """
    from reports import demo as demo_mod

    sock = None
    if serve:
        from reports.demo_web import listen_socket

        try:
            # Bound now, so a port in use fails before the demo's work, not after it.
            sock = listen_socket(listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from exc
    options = demo_mod.DemoOptions(out_dir=out_dir, data_dir=data_dir, dsn=dsn, calls=calls)
    bar = _Bar()
    runner = demo_mod.Demo(options, say=bar.say, progress=bar.update)
    result = run_async(runner.run)
    bar.close()
    click.echo("")
    for line in demo_mod.summary(result):
        click.echo(line)
    if result.mismatches:
        for line in result.mismatches[:10]:
            click.echo(f"  differs: {line}", err=True)
        raise click.ClickException(f"{len(result.mismatches)} stored calls differ from the traces' expected calls")
    if sock is not None:
        from reports.demo_web import serve_demo

        serve_demo(result.dsn, sock, demo_mod.MANAGER, demo_mod.MANAGER_PASSWORD, echo=click.echo)
    else:
        click.echo(f"see the reports in the web app: calltrail-report demo --serve "
                   f"(user {demo_mod.MANAGER}, password {demo_mod.MANAGER_PASSWORD})")


class _Bar:
    """Step lines, and a stored-calls counter that redraws in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.open = False
        self.last_shown = -1

    def say(self, line: str) -> None:
        """One step line (ends an in-place counter first)."""
        self.close()
        click.echo(line)

    def update(self, stored: int, total: int) -> None:
        """The stored-calls counter: in place on a terminal, else at every quarter."""
        if self.tty:
            click.echo(f"\r        calls stored: {stored}/{total}", nl=False, err=True)
            self.open = True
        elif stored * 4 // total > self.last_shown:
            self.last_shown = stored * 4 // total
            click.echo(f"        calls stored: {stored}/{total}")

    def close(self) -> None:
        """End the in-place counter line."""
        if self.open:
            click.echo("", err=True)
            self.open = False
