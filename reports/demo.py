"""`calltrail-report demo`: the whole product, end to end, on one machine with nothing configured.

1. the embedded PostgreSQL (or `--dsn`), schema applied (`db init`);
2. the demo directory (`demo_data/directory.yaml`) through the directory importer, and the demo
   manager's password;
3. months of calls made from the shipped recorded traces (`reports.demo_stream`), streamed by the
   fake Asterisk on 127.0.0.1 over TCP to the real daemon (`ingest.daemon.Daemon`, in this
   process), until every call is stored; then checked against the traces' expected calls;
4. the call-details report (Persian, Jalali, by month) as PDF and XLSX in the output folder.

Running it again stores the same calls again (same ids: the upsert replaces them) and rewrites
the files. The demo's own system starts its ingestion afresh each run: its journal folder and
checkpoint are reset, so an interrupted earlier run cannot leave half a call behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ingest import pg, store
from ingest.config import Config, DaemonConfig, SystemConfig
from ingest.errors import CalltrailError
from reports import calendar as cal
from reports import demo_stream
from reports.directory import Directory

log = logging.getLogger(__name__)

MANAGER = "demo"
MANAGER_PASSWORD = "calltrail-demo"  # noqa: S105 - the demo's published password, printed by the demo
COMPANY = "شرکت نمایشی کال‌ترِیل"
DEFAULT_CALLS = 400
INGEST_TIMEOUT = 120.0

Say = Callable[[str], None]
Progress = Callable[[int, int], None]


class DemoError(CalltrailError):
    """The demo could not finish (the message says which step and why)."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does: where its files, database and working data go, and how many calls."""

    out_dir: Path = Path("calltrail-demo")
    data_dir: Path | None = None  # the embedded server's root; None: Calltrail's per-user data directory
    dsn: str | None = None  # a PostgreSQL server to use instead of the embedded one
    calls: int = DEFAULT_CALLS
    today: date | None = None  # the last day of the demo's period is the day before


@dataclass
class DemoResult:
    """What the demo did, for its closing summary (and for tests)."""

    database: str
    dsn: str
    first_day: date
    last_day: date
    events: int = 0
    calls: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    missed: int = 0
    transferred: int = 0
    mismatches: list[str] = field(default_factory=list)
    files: list[tuple[Path, int]] = field(default_factory=list)
    seconds: float = 0.0
    ingest_seconds: float = 0.0


def directory_file() -> Path:
    """The shipped demo directory (YAML, read by the ordinary directory importer)."""
    return Path(str(resources.files("reports").joinpath("demo_data", "directory.yaml")))


def read_directory() -> Directory:
    """The demo directory, checked like any import."""
    from reports import directory_files
    from reports.directory import check_records

    return check_records(directory_files.read_paths([directory_file()]))


def system_config(directory: Directory, *, port: int = 5038, secret: str = "") -> SystemConfig:
    """The daemon's view of the demo directory's telephone system (the same rules, one source)."""
    entry = directory.systems[0]
    settings = entry.settings
    return SystemConfig(
        name=entry.name, branch=entry.branch or "demo", host="127.0.0.1", port=port, username="calltrail",
        secret=secret, extension_from=settings.get("extension_from", "endpoint"),
        extension_pattern=settings.get("extension_pattern", SystemConfig.extension_pattern),
        trunks=tuple(settings.get("trunk_patterns", ())), inbound_contexts=tuple(settings.get("inbound_contexts", ())),
        country_code=settings.get("country_code", "98"), city_code=settings.get("city_code", "21"),
        outgoing_prefix=settings.get("outgoing_prefix", ""), timezone=settings.get("timezone", "Asia/Tehran"),
    )


def demo_period(today: date) -> tuple[date, date]:
    """From the first day of the Jalali month two months back to yesterday."""
    this_month = cal.bucket_start(today, "month", "jalali")
    return cal.add_months(this_month, -2, "jalali"), today - timedelta(days=1)


class Demo:
    """One run of the demo; `run()` does every step and returns the figures."""

    def __init__(self, options: DemoOptions, say: Say, progress: Progress | None = None) -> None:
        self.options = options
        self.say_line = say
        self.progress = progress
        self.started = time.monotonic()
        root = (options.data_dir or pg.data_dir()).expanduser().resolve()
        self.root = root
        self.work = root / "demo"

    def say(self, message: str) -> None:
        """One progress line, stamped with the seconds since the start."""
        self.say_line(f"[{time.monotonic() - self.started:5.1f}s] {message}")

    async def run(self) -> DemoResult:
        """Every step, in order."""
        options = self.options
        today = options.today or datetime.now(demo_stream.ZONE).date()
        first_day, last_day = demo_period(today)
        target = await self._database()
        result = DemoResult(database=self._describe(target), dsn=target.dsn, first_day=first_day, last_day=last_day)
        conn = await store.connect(target.dsn)
        try:
            before, after = await store.init_schema(conn)
            self.say("schema " + ("created" if before is None else f"at version {after}"))
            directory = await self._directory(conn)
            system = system_config(directory)
            system_id = await store.ensure_system(conn, system)
            # The demo system's ingestion starts afresh: no checkpoint into a journal that is gone.
            await conn.execute("DELETE FROM ingest_state WHERE system_id = $1", system_id)
            calls = demo_stream.schedule(demo_stream.load_traces(), options.calls, first_day, last_day)
            expected = demo_stream.expected_calls(calls)
            stream = self.work / "stream.ami"
            result.events = await asyncio.to_thread(demo_stream.write_stream, calls, stream)
            # The demo system holds exactly this run's calls: an earlier run with another --calls
            # (or period) made calls this one does not, and they would be counted twice otherwise.
            status = await conn.execute("DELETE FROM calls WHERE system_id = $1 AND NOT (call_id = ANY($2::text[]))",
                                        system_id, sorted(expected))
            stale = int(status.split()[-1])
            if stale:
                self.say(f"removed {stale} calls of an earlier demo run that this run does not make")
            self.say(f"{len(calls)} calls made from {len({c.trace.name for c in calls})} recorded traces "
                     f"({result.events:,} AMI events, {cal.format_date(first_day, 'jalali')} to "
                     f"{cal.format_date(last_day, 'jalali')})")
            since = await conn.fetchval("SELECT clock_timestamp()")
            ingest_started = time.monotonic()
            await self._ingest(conn, target.dsn, system, system_id, stream, expected, since)
            result.ingest_seconds = time.monotonic() - ingest_started
            await self._check(conn, system_id, expected, result)
        finally:
            await conn.close()
        await self._render(target.dsn, first_day, last_day, system.name, result)
        result.seconds = time.monotonic() - self.started
        return result

    # Steps -----------------------------------------------------------------------------------------

    async def _database(self) -> pg.DatabaseTarget:
        if self.options.dsn:
            self.say("using the PostgreSQL server given with --dsn")
            return pg.DatabaseTarget(dsn=self.options.dsn)
        self.say(f"starting the embedded PostgreSQL in {self.root / 'pg'}")
        return await asyncio.to_thread(pg.start_embedded, self.root)

    @staticmethod
    def _describe(target: pg.DatabaseTarget) -> str:
        from ingest.config import redact_dsn

        if target.embedded:
            return f"embedded PostgreSQL, data in {target.embedded_dir}"
        return f"PostgreSQL at {redact_dsn(target.dsn)}"

    async def _directory(self, conn: Any) -> Directory:
        from reports import directory_db, users

        directory = read_directory()
        report = await directory_db.apply_directory(conn, directory)
        await users.set_password(conn, MANAGER, MANAGER_PASSWORD)
        added = sum(c.get("added", 0) for c in report.counts.values())
        self.say(f"demo directory imported from {directory_file().name}: {len(directory.users)} users, "
                 f"{len(directory.extensions)} extensions, {len(directory.identities)} identities "
                 f"({added} new rows)")
        return directory

    async def _ingest(self, conn: Any, dsn: str, system: SystemConfig, system_id: int, stream: Path,
                      expected: dict[str, Any], since: datetime) -> None:
        from ingest.daemon import Daemon
        from ingest.testing.fake_asterisk import FakeAsterisk

        journal = self.work / "journal"
        shutil.rmtree(journal, ignore_errors=True)
        secret = secrets.token_hex(12)
        wanted = sorted(expected)
        # The PBX holds its calls until the daemon is live, as in production, where the daemon runs
        # before the calls happen: on start-up the daemon skips events of calls already stored (its
        # crash recovery), which would skip this run's copies of the calls a previous run stored.
        async with FakeAsterisk([stream], secret=secret, hold_after=0) as fake:
            self.say(f"fake Asterisk listening on 127.0.0.1:{fake.port}; starting the calltrail-ingest daemon")
            config = Config(dsn=dsn, journal_dir=journal, systems=(
                replace(system, port=fake.port, secret=secret),
            ), daemon=DaemonConfig(metrics="", checkpoint_interval=0.5))
            daemon = Daemon(config, install_signals=False)
            task = asyncio.create_task(daemon.run())
            try:
                deadline = time.monotonic() + INGEST_TIMEOUT
                while not (daemon.views and all(v.writer is not None for v in daemon.views)):
                    await asyncio.sleep(0.05)
                    if task.done():
                        task.result()
                        raise DemoError("the daemon stopped while starting")
                    if time.monotonic() > deadline:
                        raise DemoError("the daemon did not start in time; run with -v to see its log")
                self.say("daemon live: the fake Asterisk replays the calls over TCP")
                fake.release()
                stored = 0
                while stored < len(wanted):
                    await asyncio.sleep(0.25)
                    if task.done():
                        task.result()  # raises what stopped it
                        raise DemoError("the daemon stopped before every call was stored")
                    if time.monotonic() > deadline:
                        raise DemoError(f"only {stored} of {len(wanted)} calls were stored after "
                                        f"{INGEST_TIMEOUT:.0f} s; run with -v to see the daemon's log")
                    stored = await conn.fetchval(
                        "SELECT count(*) FROM calls WHERE system_id = $1 AND call_id = ANY($2::text[])"
                        " AND stored_at >= $3", system_id, wanted, since)
                    if self.progress is not None:
                        self.progress(stored, len(wanted))
            finally:
                daemon.stop.set()
                code = await asyncio.wait_for(task, 60)
        if code != 0:
            raise DemoError(f"the daemon exited with code {code}")
        self.say(f"daemon stored {len(wanted)} calls ({fake.sent:,} events over TCP) and stopped cleanly")

    async def _check(self, conn: Any, system_id: int, expected: dict[str, Any], result: DemoResult) -> None:
        rows = await conn.fetch(
            "SELECT call_id, direction, status, agents, transfer_count FROM calls"
            " WHERE system_id = $1 AND call_id = ANY($2::text[])", system_id, sorted(expected))
        for row in rows:
            want = expected[row["call_id"]]
            got = (row["direction"], row["status"] == "answered", list(row["agents"]), row["transfer_count"])
            if got != (want["direction"], want["answered"], want["agents"], want["transfer_count"]):
                result.mismatches.append(f"{row['call_id']} ({want['id']}): stored {got}")
            kind = row["direction"] if row["status"] == "answered" or row["direction"] != "incoming" else "missed"
            result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
            result.answered += row["status"] == "answered"
            result.missed += row["direction"] == "incoming" and row["status"] != "answered"
            result.transferred += row["transfer_count"] > 1
        result.calls = len(rows)
        if result.mismatches:
            self.say(f"WARNING: {len(result.mismatches)} calls differ from the traces' expected calls")
        else:
            self.say(f"all {len(rows)} stored calls match the traces' expected calls "
                     "(direction, answered, agents, transfer count)")

    async def _render(self, dsn: str, first_day: date, last_day: date, system: str, result: DemoResult) -> None:
        from reports import api, render

        out_dir = self.options.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        conn = await store.connect(dsn)
        try:
            for fmt in ("pdf", "xlsx"):
                request = api.parse_filters({
                    "from": cal.format_date(first_day, "jalali"), "to": cal.format_date(last_day, "jalali"),
                    "by": "month", "type": "all,internal", "system": system, "lang": "fa", "calendar": "jalali",
                    "format": fmt, "company": COMPANY,
                })
                path = out_dir / f"call-details.{fmt}"
                self.say(f"rendering the call-details report as {fmt.upper()}")
                async with api.open_report(conn, request, MANAGER) as document:

                    async def write(out: Any, document: Any = document) -> None:
                        await render.write(document, out)

                    await _write_atomically(path, write)
                result.files.append((path.resolve(), path.stat().st_size))
        finally:
            await conn.close()


async def _write_atomically(path: Path, write: Callable[[Any], Any]) -> None:
    """Write through a temporary file in the same folder, so a failed run leaves no half file."""
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            await write(handle)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def summary(result: DemoResult) -> list[str]:
    """The closing lines: database, calls by kind, files with sizes, time taken."""
    kinds = ", ".join(f"{result.by_kind.get(k, 0)} {k}" for k in ("incoming", "missed", "outgoing", "internal"))
    lines = [
        f"database: {result.database}",
        f"calls stored: {result.calls} ({kinds}); answered {result.answered}, missed {result.missed}, "
        f"transferred {result.transferred}",
        f"ingestion: {result.events:,} AMI events in {result.ingest_seconds:.1f} s over TCP",
    ]
    for path, size in result.files:
        lines.append(f"wrote {path} ({size / 1024:,.0f} KiB)")
    lines.append(f"done in {result.seconds:.1f} s")
    return lines
