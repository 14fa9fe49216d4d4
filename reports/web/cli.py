"""`calltrail-report serve`: run the web app on uvicorn (one worker, behind a TLS reverse proxy)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import click

from ingest.cli import get_config
from ingest.config import redact_dsn
from ingest.errors import CalltrailError

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
    await pool.close()


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
) -> None:
    """Serve the web app: log in, fill in the filters, see or download the reports.

    Runs one process (the login throttle lives in it) on HOST:PORT, plain HTTP; put nginx or
    another TLS proxy in front (deploy/nginx-calltrail.conf) and keep the port on loopback.
    """
    import uvicorn

    from ingest import pg
    from reports.web import create_app
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
    sock = _bind(host, port)
    config = uvicorn.Config(
        create_app(target.dsn, settings),
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_config=None,
        access_log=logging.getLogger().isEnabledFor(logging.INFO),
        lifespan="on",
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Calltrail web on http://{shown}:{port}/ (database {redact_dsn(target.dsn)})", err=True)
    uvicorn.Server(config).run(sockets=[sock])
