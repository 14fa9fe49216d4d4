"""`calltrail-report serve`: run the web app on uvicorn (N worker processes, behind a TLS reverse proxy).

With more than one worker, uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`) binds the
socket once and starts the workers (spawned, each with its own event loop and connection pool),
restarts a worker that dies, and stops them all on SIGTERM. Each worker builds the app from a
`WorkerApp` (pickled to it, not put in the environment): the same settings, so the same session
signing key, in every worker. Shared state lives in PostgreSQL (the login throttle); the rest is
per worker and harmless (pickers cached 30 s, the download limit split between the workers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ingest.cli import get_config, setup_logging
from ingest.config import redact_dsn
from ingest.errors import CalltrailError, DatabaseError
from reports.web.settings import WebSettings

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (loopback) as (host, port); ValueError says why not."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


async def _check_database(dsn: str) -> None:
    from reports.web import db

    pool = await db.create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            ready = await db.login_throttle_ready(conn)
    finally:
        await pool.close()
    if not ready:
        raise DatabaseError(
            "the database's schema is older than this Calltrail (no web_login_failures table): "
            "run `calltrail-ingest db init` to bring it up to date"
        )


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerApp:
    """The app factory a worker process calls (uvicorn `factory=True`); picklable, so spawn can send it."""

    dsn: str
    settings: WebSettings
    verbose: int

    def __call__(self) -> Any:
        """Configure logging like the parent did, then build the app."""
        from reports.web import create_app

        setup_logging(self.verbose)
        app = create_app(self.dsn, self.settings)
        tune_gc()
        return app


# Container objects allocated (net) before the cyclic garbage collector's youngest generation runs.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheaper for a web worker (measured in bench/RESULTS.md).

    The modules, templates and app built so far live as long as the process: frozen, full
    collections no longer walk them (~19 ms each on a loaded core, a latency spike). A report
    page allocates a few thousand containers that reference counting frees at the end of the
    request; at the default threshold (700) a young collection ran on every page (~0.17 ms) for
    nothing. Cycles are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _supervise(config: Any, sock: socket.socket) -> None:
    """Run the workers under uvicorn's supervisor; end like one uvicorn server does.

    A single server re-raises the SIGINT/SIGTERM it stopped on (systemd counts that as a clean
    stop); the supervisor returns normally both then and when a worker cannot start. Re-raise
    the signal in the first case and fail in the second, so Restart=on-failure still applies.
    """
    from uvicorn.supervisors import Multiprocess

    stopped_by: list[int] = []

    class Supervisor(Multiprocess):
        def handle_int(self) -> None:
            stopped_by.append(signal.SIGINT)
            super().handle_int()

        def handle_term(self) -> None:
            stopped_by.append(signal.SIGTERM)
            super().handle_term()

    Supervisor(config, sockets=[sock]).run()
    if not stopped_by:
        raise click.ClickException("a web worker could not start (see the log above)")
    signal.signal(stopped_by[0], signal.SIG_DFL)
    os.kill(os.getpid(), stopped_by[0])


def _verbosity() -> int:
    level = logging.getLogger().getEffectiveLevel()
    return 0 if level >= logging.WARNING else 1 if level >= logging.INFO else 2


@click.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Address to listen on; keep it on loopback behind the reverse proxy.")
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File holding the session signing key [default: $CALLTRAIL_WEB_SECRET(_FILE); "
                   "else a random key, so sessions end at restart].")
@click.option("--secure-cookies/--no-secure-cookies", default=None,
              help="Force the Secure cookie flag on or off [default: on for requests that came over TLS].")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies trusted for X-Forwarded-For/-Proto (comma-separated, or * for any).")
@click.option("--healthz-url", default=None, help="The ingest daemon's health URL, for the operations page.")
@click.option("--company", default=None, help="Company name printed in report headers [$CALLTRAIL_COMPANY].")
@click.option("--language", type=click.Choice(["fa", "en"]), default=None,
              help="Default page language [fa; $CALLTRAIL_WEB_LANGUAGE].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, envvar="CALLTRAIL_WEB_WORKERS",
              help="Worker processes [default: one per CPU; $CALLTRAIL_WEB_WORKERS].")
@click.pass_context
def serve(
    ctx: click.Context,
    listen: str,
    secret_file: Path | None,
    secure_cookies: bool | None,
    forwarded_allow_ips: str,
    healthz_url: str | None,
    company: str | None,
    language: str | None,
    workers: int | None,
) -> None:
    """Serve the web app: log in, fill in the filters, see or download the reports.

    Runs --workers processes (one per CPU by default) on HOST:PORT, plain HTTP; put nginx or
    another TLS proxy in front (deploy/nginx-calltrail.conf) and keep the port on loopback. The
    workers share the session key and the login throttle (in PostgreSQL), so any worker may answer
    any request. Without a configured secret, a random key is made at start (sessions end at restart).
    """
    import uvicorn

    from ingest import pg
    from reports.web.settings import settings_from_env

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from exc
    overrides: dict[str, object] = {
        "secure_cookies": secure_cookies, "healthz_url": healthz_url, "company_name": company,
        "default_language": language,
    }
    if secret_file is not None:
        try:
            overrides["secret_key"] = secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.ClickException(f"cannot read the secret file {secret_file}: {exc.strerror}") from exc
    try:
        settings = settings_from_env(overrides)
        target = pg.resolve(get_config(ctx).dsn)
        asyncio.run(_check_database(target.dsn))
    except CalltrailError as exc:
        raise click.ClickException(str(exc)) from exc
    if secret_file is None and not any(os.environ.get(f"CALLTRAIL_WEB_SECRET{s}") for s in ("", "_FILE")):
        log.warning("no session secret is configured: using a random one, so sessions end when the server restarts")
    count = workers or default_workers()
    if count > 1:
        # Each worker gets its share of the report files rendered at once (a big PDF takes a core
        # and over a GiB), so the whole service keeps to about the configured number; responses
        # close their connection, so each request goes to a free worker (security.py says why).
        settings = dataclasses.replace(
            settings, download_concurrency=max(1, settings.download_concurrency // count), close_connections=True
        )
    sock = _bind(host, port)
    config = uvicorn.Config(
        WorkerApp(target.dsn, settings, _verbosity()),
        factory=True,
        workers=count,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_config=None,
        access_log=logging.getLogger().isEnabledFor(logging.INFO),
        lifespan="on",
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"Calltrail web on http://{shown}:{port}/ ({count} worker{'s' if count > 1 else ''}, "
        f"database {redact_dsn(target.dsn)})",
        err=True,
    )
    if count > 1:
        _supervise(config, sock)
    else:
        uvicorn.Server(config).run(sockets=[sock])
