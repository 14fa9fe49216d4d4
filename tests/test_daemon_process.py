"""`calltrail-ingest run` as a real process (SIGKILL, SIGTERM), and PostgreSQL going away and back."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from daemon_kit import (
    ALL_TRACES,
    assert_matches_expected,
    expected_calls,
    make_config,
    running,
    stored_calls,
    wait_for_calls,
    wait_until,
)

from ingest.testing.fake_asterisk import FakeAsterisk

pytestmark = pytest.mark.asyncio

COMMAND = str(Path(sys.executable).parent / "calltrail-ingest")


def write_config(tmp_path: Path, port: int, checkpoint_interval: float = 0.5) -> Path:
    """A TOML file like an operator's, pointing at the fake Asterisk."""
    path = tmp_path / "calltrail.toml"
    path.write_text(
        f'journal_dir = "{tmp_path / "journal"}"\n\n[daemon]\nmetrics = ""\n'
        f"checkpoint_interval = {checkpoint_interval}\n\n"
        f'[[systems]]\nname = "pbx1"\nbranch = "tehran"\nhost = "127.0.0.1"\nport = {port}\n'
        'username = "calltrail"\nsecret = "secret"\n',
        encoding="utf-8",
    )
    return path


async def start(config: Path, dsn: str, log: Path) -> asyncio.subprocess.Process:
    """The daemon as a child process, logging JSON lines to `log`."""
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            COMMAND, "-c", str(config), "run", "--log-format", "json",
            stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle,
            env={"CALLTRAIL_DSN": dsn, "PATH": "/usr/bin:/bin"},
        )


def stored_ids(log: Path) -> list[str]:
    """Call ids the process logged as stored."""
    ids = []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["message"].startswith("stored call "):
                ids.append(entry["call_id"])
    return ids


async def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(tmp_path: Path, db_dsn: str) -> None:
    expected = expected_calls(ALL_TRACES)
    async with FakeAsterisk(ALL_TRACES, hold_after=900) as fake:
        config = write_config(tmp_path, fake.port)
        first = await start(config, db_dsn, tmp_path / "first.log")
        await wait_until(lambda: not fake.gate.is_set())
        await asyncio.sleep(2.0)  # everything sent is journaled; finished calls are committed
        before = await stored_calls(db_dsn)
        assert 0 < len(before) < len(expected)
        first.kill()
        assert await first.wait() == -signal.SIGKILL

        second = await start(config, db_dsn, tmp_path / "second.log")
        await wait_until(lambda: fake.logins == 2)
        fake.release()
        calls = await wait_for_calls(db_dsn, len(expected))
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    assert_matches_expected(calls, expected)
    assert not any(row["recovered"] for row in calls.values())
    first_ids, second_ids = stored_ids(tmp_path / "first.log"), stored_ids(tmp_path / "second.log")
    assert set(first_ids) == set(before)
    assert not set(first_ids) & set(second_ids)  # nothing stored twice
    assert sorted(first_ids + second_ids) == sorted(expected)


async def test_sigterm_flushes_everything_and_exits_0(tmp_path: Path, db_dsn: str) -> None:
    expected = expected_calls(ALL_TRACES)
    async with FakeAsterisk(ALL_TRACES) as fake:
        config = write_config(tmp_path, fake.port, checkpoint_interval=60)
        process = await start(config, db_dsn, tmp_path / "daemon.log")
        await asyncio.wait_for(fake.finished.wait(), 30)
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    calls = await stored_calls(db_dsn)
    assert_matches_expected(calls, expected)
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "stopped cleanly" in log
    # No call is open at the end, so the committed checkpoint is the journal's very end.
    segment = tmp_path / "journal" / "pbx1" / "00000001.ami"
    import asyncpg

    conn = await asyncpg.connect(db_dsn)
    try:
        checkpoint = await conn.fetchval("SELECT checkpoint FROM ingest_state")
    finally:
        await conn.close()
    assert checkpoint == f"1:{segment.stat().st_size}"


class PostgresProxy:
    """A TCP proxy in front of the test server's socket, which the test can take down and bring back."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
        self.socket = next(Path(host).glob(".s.PGSQL.*")) if host.startswith("/") else None
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.database = parts.path.lstrip("/")
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    @property
    def dsn(self) -> str:
        """The DSN through the proxy."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    async def up(self) -> None:
        """Accept connections (on the same port as before)."""
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Refuse new connections and cut the open ones, like a stopped server."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.socket is not None:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.socket))
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()
                self.links.discard(dst)

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest_asyncio.fixture
async def proxy(db_dsn: str) -> AsyncIterator[PostgresProxy]:
    """A running proxy to the test database."""
    gate = PostgresProxy(db_dsn)
    await gate.up()
    yield gate
    if gate.server is not None:
        gate.server.close()
    for writer in list(gate.links):
        writer.transport.abort()


async def test_postgres_down_then_back_loses_nothing(tmp_path: Path, db_dsn: str, proxy: PostgresProxy) -> None:
    expected = expected_calls(ALL_TRACES)
    fake = FakeAsterisk(ALL_TRACES, rate=1000)
    async with fake, running(make_config(tmp_path, fake.port, proxy.dsn)) as daemon:
        await wait_until(lambda: fake.sent > 300)
        await proxy.down()
        await asyncio.wait_for(fake.finished.wait(), 30)
        await asyncio.sleep(1.0)
        during = await stored_calls(db_dsn)
        assert daemon.metrics is not None
        healthy, health = daemon.metrics.health()
        assert not healthy
        assert health["database_reachable"] is False
        # A batch whose COMMIT reply was lost may be stored and still pending (stored again later,
        # idempotently), so pending can exceed what is missing, never fall short of it.
        assert health["systems"]["pbx1"]["calls_pending"] >= len(expected) - len(during) > 0
        await proxy.up()
        calls = await wait_for_calls(db_dsn, len(expected))
        await wait_until(lambda: daemon.metrics is not None and daemon.metrics.health()[0])
    assert_matches_expected(calls, expected)
