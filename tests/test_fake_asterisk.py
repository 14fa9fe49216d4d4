"""The fake Asterisk itself, read by a raw socket: the exact bytes it streams, filtering, looping, pacing."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import pytest
from daemon_kit import ALL_TRACES, TRACES, wait_until

from ingest.testing.fake_asterisk import FakeAsterisk
from ingest.testing.trace_stream import FILTERED, TraceStream, read_blocks

pytestmark = pytest.mark.asyncio
TRACE = TRACES / "01_inbound_answered"


async def login(port: int, *, md5: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and log in (plain, or MD5 challenge); returns the streams, past the FullyBooted event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
    if md5:
        writer.write(b"Action: Challenge\r\nActionID: c1\r\nAuthType: MD5\r\n\r\n")
        challenge = re.search(r"Challenge: (\S+)", (await reader.readuntil(b"\r\n\r\n")).decode())
        assert challenge is not None
        key = hashlib.md5((challenge.group(1) + "secret").encode()).hexdigest()
        writer.write(f"Action: Login\r\nActionID: l1\r\nUsername: calltrail\r\nAuthType: MD5\r\nKey: {key}\r\n\r\n"
                     .encode())
    else:
        writer.write(b"Action: Login\r\nActionID: l1\r\nUsername: calltrail\r\nSecret: secret\r\n\r\n")
    assert b"Authentication accepted" in await reader.readuntil(b"\r\n\r\n")
    booted = await reader.readuntil(b"\r\n\r\n")
    assert booted.startswith(b"Event: FullyBooted\r\n")
    return reader, writer


async def read_all(reader: asyncio.StreamReader, fake: FakeAsterisk) -> bytes:
    """Everything streamed until the fake says it is done (and the socket has caught up)."""
    await asyncio.wait_for(fake.finished.wait(), 30)
    data = b""
    while True:
        try:
            data += await asyncio.wait_for(reader.read(1 << 20), 0.3)
        except TimeoutError:
            return data


def recorded(trace_dirs: list[Path], exclude: frozenset[str] = frozenset()) -> bytes:
    """The traces' event messages as recorded, each with its blank line."""
    blocks = [b for t in trace_dirs for b in read_blocks(t / "ami.log")]
    return b"".join(b.encode() + b"\r\n\r\n" for b in blocks if b[7:].partition("\r")[0] not in exclude)


async def test_streams_the_recorded_bytes_exactly() -> None:
    async with FakeAsterisk(ALL_TRACES) as fake:
        reader, writer = await login(fake.port)
        data = await read_all(reader, fake)
        writer.close()
    assert data == recorded(ALL_TRACES)
    assert fake.sent == len(fake.stream) == data.count(b"\r\n\r\n")


async def test_filtered_leaves_out_what_manager_conf_drops() -> None:
    async with FakeAsterisk(ALL_TRACES, filtered=True) as fake:
        reader, writer = await login(fake.port, md5=True)
        data = await read_all(reader, fake)
        writer.close()
    assert data == recorded(ALL_TRACES, FILTERED)
    names = set(re.findall(rb"(?m)^Event: (\w+)\r$", data))
    assert not names & {n.encode() for n in FILTERED}
    assert {b"Newchannel", b"Hangup", b"BridgeEnter", b"DialBegin"} <= names


async def test_loops_get_fresh_ids_and_restamped_times() -> None:
    before = time.time()
    async with FakeAsterisk([TRACE], loops=3, restamp=True) as fake:
        reader, writer = await login(fake.port)
        data = await read_all(reader, fake)
        writer.close()
    messages = data.split(b"\r\n\r\n")[:-1]
    assert len(messages) == 3 * len(read_blocks(TRACE / "ami.log"))
    linkedids = {m.group(1) for m in re.finditer(rb"\r\nLinkedid: (\S+)", data)}
    assert len(linkedids) == 3  # one call per loop, each its own
    stamps = [float(s) for s in re.findall(rb"\r\nTimestamp: (\S+)", data)]
    assert stamps
    assert all(before <= s <= time.time() for s in stamps)


async def test_core_show_channels_lists_the_channels_alive_mid_stream() -> None:
    blocks = read_blocks(TRACE / "ami.log")
    bridged = next(i for i, b in enumerate(blocks) if b.startswith("Event: BridgeEnter\r"))
    async with FakeAsterisk([TRACE], hold_after=bridged + 1) as fake:
        reader, writer = await login(fake.port)
        await wait_until(lambda: not fake.gate.is_set(), 10)
        streamed = await _drain(reader)
        writer.write(b"Action: CoreShowChannels\r\nActionID: r1\r\n\r\n")
        reply = (await _drain(reader, until=b"CoreShowChannelsComplete")).decode()
        fake.release()
        writer.close()
    alive = {m.group(1) for m in re.finditer(r"Event: Newchannel\r\n(?:.*\r\n)*?Uniqueid: (\S+)", "\r\n\r\n".join(
        blocks[: bridged + 1]))} - {m.group(1) for m in re.finditer(
            r"Event: Hangup\r\n(?:.*\r\n)*?Uniqueid: (\S+)", "\r\n\r\n".join(blocks[: bridged + 1]))}
    assert streamed.count(b"\r\n\r\n") == bridged + 1
    listed = set(re.findall(r"Event: CoreShowChannel\r\nActionID: r1\r\n(?:.*\r\n)*?Uniqueid: (\S+)", reply))
    assert alive
    assert listed == alive
    assert f"ListItems: {len(alive)}\r\n" in reply


async def test_steady_rate_is_kept() -> None:
    stream = TraceStream(ALL_TRACES)
    async with FakeAsterisk(ALL_TRACES, rate=2000) as fake:
        reader, writer = await login(fake.port)
        started = time.monotonic()
        data = await read_all(reader, fake)
        elapsed = time.monotonic() - started - 0.3
        writer.close()
    assert data.count(b"\r\n\r\n") == len(stream)
    # 2069 events at 2000/s: about one second, never much faster (it may be slower on a busy machine).
    assert elapsed >= len(stream) / 2000 * 0.9


async def _drain(reader: asyncio.StreamReader, until: bytes | None = None) -> bytes:
    data = b""
    while until is None or until not in data or not data.endswith(b"\r\n\r\n"):
        try:
            data += await asyncio.wait_for(reader.read(1 << 20), 0.3)
        except TimeoutError:
            if until is None:
                return data
    return data
