"""Helpers for the daemon tests: the traces, their expected calls, a daemon run in-process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from ingest.config import Config, DaemonConfig, SystemConfig
from ingest.daemon import Daemon

TRACES = Path(__file__).parent / "fixtures" / "ami-traces"
ALL_TRACES = sorted(
    [d for d in TRACES.iterdir() if (d / "ami.log").exists()]
    + [d for d in (TRACES / "local-channels").iterdir() if (d / "ami.log").exists()]
)
# Fast reconnects and pings, so outage tests take seconds.
FAST_AMI = {"backoff_initial": 0.05, "backoff_max": 0.5, "login_backoff": 1.0, "login_timeout": 2.0}


def expected_calls(traces: list[Path]) -> dict[str, dict[str, Any]]:
    """Linkedid of each call of `traces` -> its expected.json entry."""
    calls: dict[str, dict[str, Any]] = {}
    for trace in traces:
        for call in json.loads((trace / "expected.json").read_text(encoding="utf-8"))["calls"]:
            calls[call["observed"]["linkedid"]] = call
    return calls


def make_config(tmp_path: Path, port: int, dsn: str, **daemon: Any) -> Config:
    """One system pointing at the fake Asterisk on `port`, journaling under `tmp_path`."""
    system = SystemConfig(name="pbx1", branch="tehran", host="127.0.0.1", port=port,
                          username="calltrail", secret="secret")
    settings = replace(DaemonConfig(metrics="", checkpoint_interval=0.5), **daemon)
    return Config(dsn=dsn, journal_dir=tmp_path / "journal", systems=(system,), daemon=settings)


@asynccontextmanager
async def running(config: Config, **ami: float) -> AsyncIterator[Daemon]:
    """A daemon running in this event loop; stopped (and its exit code checked) on exit."""
    daemon = Daemon(config, install_signals=False, ami_options={**FAST_AMI, **ami})
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.stop.set()
        code = await asyncio.wait_for(task, 30)
        assert code == 0


async def stored_calls(dsn: str) -> dict[str, asyncpg.Record]:
    """Every stored call by call id."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT * FROM calls ORDER BY start_time")
    finally:
        await conn.close()
    return {row["call_id"]: row for row in rows}


async def wait_for_calls(dsn: str, count: int, timeout: float = 30.0) -> dict[str, asyncpg.Record]:
    """Poll until at least `count` calls are stored; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        calls = await stored_calls(dsn)
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        await asyncio.sleep(0.1)


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll a no-argument predicate until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def assert_matches_expected(calls: dict[str, asyncpg.Record], expected: dict[str, dict[str, Any]]) -> None:
    """Exactly the expected calls, each with the expected direction, answer, agents and transfer count."""
    assert set(calls) == set(expected)
    for call_id, want in expected.items():
        row = calls[call_id]
        assert row["direction"] == want["direction"], call_id
        assert (row["status"] == "answered") == want["answered"], call_id
        assert list(row["agents"]) == want["agents"], call_id
        assert row["transfer_count"] == want["transfer_count"], call_id
