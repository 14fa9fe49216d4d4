"""The daemon in-process against the fake Asterisk over real TCP and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from daemon_kit import (
    ALL_TRACES,
    TRACES,
    assert_matches_expected,
    expected_calls,
    make_config,
    running,
    stored_calls,
    wait_for_calls,
    wait_until,
)

from ingest.testing.fake_asterisk import FakeAsterisk
from ingest.testing.trace_stream import read_blocks

pytestmark = pytest.mark.asyncio


async def test_every_trace_is_stored_exactly_once(
    tmp_path: Path, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = expected_calls(ALL_TRACES)
    caplog.set_level(logging.INFO, logger="ingest")
    async with FakeAsterisk(ALL_TRACES) as fake:
        config = make_config(tmp_path, fake.port, db_dsn)
        async with running(config):
            calls = await wait_for_calls(db_dsn, len(expected))
        assert_matches_expected(calls, expected)
        assert not any(row["recovered"] for row in calls.values())
        stored_lines = [r for r in caplog.records if r.getMessage().startswith("stored call ")]
        assert sorted(r.call_id for r in stored_lines) == sorted(expected)  # type: ignore[attr-defined]
        line = next(r.getMessage() for r in stored_lines if "1795687196.106" in r.getMessage())
        assert line == "stored call 1795687196.106: system pbx1, incoming, answered, agents 101, transfers 1"

        # A restart replays from the checkpoint and stores nothing again.
        caplog.clear()
        async with running(config):
            await asyncio.sleep(1.0)
        assert not [r for r in caplog.records if r.getMessage().startswith("stored call ")]
        assert set(await stored_calls(db_dsn)) == set(expected)


async def test_ami_dropped_mid_call_several_times_loses_nothing(tmp_path: Path, db_dsn: str) -> None:
    expected = expected_calls(ALL_TRACES)
    async with FakeAsterisk(ALL_TRACES, drop_after=[40, 333, 700, 1250]) as fake:
        async with running(make_config(tmp_path, fake.port, db_dsn)) as daemon:
            calls = await wait_for_calls(db_dsn, len(expected))
            assert daemon.metrics is not None
            assert daemon.views[0].connection.stats.reconnects == 4
        assert fake.connections == 5
        assert fake.core_show_channels >= 4  # a channel list after (almost) every login: one may drop first
    assert_matches_expected(calls, expected)
    assert not any(row["recovered"] for row in calls.values())


async def test_calls_lost_in_an_outage_are_reconciled(tmp_path: Path, db_dsn: str) -> None:
    """Events missed while disconnected: the channel list after login closes the call as recovered."""
    first, second = TRACES / "01_inbound_answered", TRACES / "05_outbound_answered"
    blocks = read_blocks(first / "ami.log")
    # Cut after both parties are in the bridge (the call is answered), before anyone hangs up.
    bridged = [i for i, b in enumerate(blocks) if b.startswith("Event: BridgeEnter")][1] + 3
    fake = FakeAsterisk([first, second], drop_after=[bridged], lost_on_drop=len(blocks) - bridged)
    async with fake, running(make_config(tmp_path, fake.port, db_dsn)):
        calls = await wait_for_calls(db_dsn, 2)
    expected = expected_calls([first, second])
    assert set(calls) == set(expected)
    lost = calls["1795687196.106"]
    assert lost["recovered"] is True
    assert (lost["status"], list(lost["agents"])) == ("answered", ["101"])
    assert not any(row["recovered"] for call_id, row in calls.items() if call_id != "1795687196.106")


async def test_persian_name_split_across_writes_and_garbage(tmp_path: Path, db_dsn: str) -> None:
    trace = TRACES / "01_inbound_answered"
    name = "علی رضایی"
    async with FakeAsterisk([trace], caller_names={"09121234567": name}, split_utf8=True, garbage_every=9) as fake:
        async with running(make_config(tmp_path, fake.port, db_dsn)) as daemon:
            calls = await wait_for_calls(db_dsn, 1)
            await wait_until(fake.finished.is_set)
            garbage = daemon.views[0].connection.stats.garbage
            assert daemon.metrics is not None
            scrape = daemon.metrics.render_metrics().decode()
        assert fake.garbage_sent > 5
    assert garbage >= fake.garbage_sent
    assert 'calltrail_parse_errors_total{system="pbx1"}' in scrape
    assert_matches_expected(calls, expected_calls([trace]))
    assert calls["1795687196.106"]["caller_name"] == name


async def test_wrong_password_one_error_unhealthy_no_hot_loop(
    tmp_path: Path, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    async with FakeAsterisk([TRACES / "01_inbound_answered"], reject_login=True, login_delay=0.05) as fake:
        config = make_config(tmp_path, fake.port, db_dsn, metrics="127.0.0.1:0")
        async with running(config) as daemon:
            await asyncio.sleep(2.5)
            assert daemon.http is not None
            port = daemon.http.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            response = (await reader.read()).decode()
            writer.close()
        assert 2 <= fake.failed_logins <= 4  # retried at the login back-off, not every few ms
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "system pbx1" in message
    assert "'calltrail'" in message
    assert "login refused" in message
    assert response.startswith("HTTP/1.1 503")
    assert '"login_failed": true' in response
