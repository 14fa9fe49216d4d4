"""The AMI connection against the fake Asterisk: UTF-8 across reads, guarded sink, half-open watchdog."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from daemon_kit import TRACES, wait_until

from ingest.ami import AmiConnection
from ingest.config import SystemConfig
from ingest.testing.fake_asterisk import FakeAsterisk
from ingest.testing.trace_stream import read_blocks

pytestmark = pytest.mark.asyncio
TRACE = TRACES / "01_inbound_answered"


def system(port: int) -> SystemConfig:
    """The fake's system."""
    return SystemConfig(name="pbx1", port=port, username="calltrail", secret="secret")


def trace_events(name: str) -> list[str]:
    """The trace's messages of one event kind."""
    return [b for b in read_blocks(TRACE / "ami.log") if b.startswith(f"Event: {name}\r")]


async def test_utf8_split_across_reads_arrives_intact() -> None:
    name = "علی رضایی"
    got: list[str] = []
    async with FakeAsterisk([TRACE], caller_names={"09121234567": name}, split_utf8=True) as fake:
        connection = AmiConnection(system(fake.port), got.append)
        await connection.start()
        await asyncio.wait_for(fake.finished.wait(), 20)
        await wait_until(lambda: len([b for b in got if b.startswith("Event: Hangup\r")]) == 2)
        await connection.close()
    with_name = [b for b in got if f"CallerIDName: {name}\r" in b or b.endswith(f"CallerIDName: {name}")]
    assert with_name
    assert all("\ufffd" not in b for b in got)
    assert connection.stats.garbage == 0
    assert [b for b in got if b.startswith("Event: Newchannel\r")] == [
        b.replace("CallerIDName: <unknown>", f"CallerIDName: {name}") if "CallerIDNum: 09121234567" in b else b
        for b in trace_events("Newchannel")
    ]


async def test_a_raising_sink_does_not_kill_the_connection() -> None:
    got: list[str] = []

    def sink(block: str) -> None:
        got.append(block)
        if len(got) % 5 == 0:
            raise RuntimeError("handler bug")

    async with FakeAsterisk([TRACE]) as fake:
        connection = AmiConnection(system(fake.port), sink)
        await connection.start()
        await asyncio.wait_for(fake.finished.wait(), 20)
        await wait_until(lambda: sum(b.startswith("Event: Hangup\r") for b in got) == 2)
        await connection.close()
        assert fake.connections == 1
    assert sum(b.startswith("Event: Newchannel\r") for b in got) == len(trace_events("Newchannel"))


async def test_watchdog_drops_a_half_open_connection_and_nothing_is_lost() -> None:
    got: list[str] = []
    async with FakeAsterisk([TRACE], stall_after=30, stall_seconds=1.5) as fake:
        connection = AmiConnection(
            system(fake.port), got.append, ping_interval=0.3, ping_timeout=0.3, backoff_initial=0.05
        )
        await connection.start()
        await asyncio.wait_for(fake.finished.wait(), 20)
        await wait_until(lambda: sum(b.startswith("Event: Hangup\r") for b in got) == 2)
        await connection.close()
        assert fake.connections >= 2
        assert connection.stats.reconnects >= 1
    # The stalled message was never sent on the dead socket: it came once, on the new one.
    for name in ("Newchannel", "BridgeEnter", "Hangup"):
        assert sum(b.startswith(f"Event: {name}\r") for b in got) == len(trace_events(name))


async def test_md5_challenge_login_streams_and_never_sends_the_secret() -> None:
    got: list[str] = []
    async with FakeAsterisk([TRACE]) as fake:
        connection = AmiConnection(replace(system(fake.port), auth="md5"), got.append)
        await connection.start()
        await asyncio.wait_for(fake.finished.wait(), 20)
        await wait_until(lambda: sum(b.startswith("Event: Hangup\r") for b in got) == 2)
        await connection.close()
        assert (fake.logins, fake.failed_logins) == (1, 0)
    assert not connection.stats.login_failed
    assert [a["Action"] for a in fake.actions[:2]] == ["Challenge", "Login"]
    login = fake.actions[1]
    assert login["AuthType"] == "MD5"
    assert len(login["Key"]) == 32
    assert all("secret" not in action.values() and "Secret" not in action for action in fake.actions)
    assert sum(b.startswith("Event: Newchannel\r") for b in got) == len(trace_events("Newchannel"))


async def test_md5_login_with_a_wrong_secret_is_one_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    got: list[str] = []
    async with FakeAsterisk([TRACE], secret="other") as fake:
        connection = AmiConnection(replace(system(fake.port), auth="md5"), got.append, login_backoff=0.3)
        await connection.start()
        await wait_until(lambda: fake.failed_logins >= 2)
        await connection.close()
        assert fake.logins == 0
        assert fake.sent == 0
    assert got == []
    assert connection.stats.login_failed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "system pbx1" in errors[0]
    assert "login refused" in errors[0]
