"""A fake Asterisk AMI server on 127.0.0.1 that replays recorded traces, for tests and demos.

It greets like Asterisk, accepts `Login` (plain or MD5 challenge), answers `Ping`, `Logoff` and
`CoreShowChannels` (from the channels its replayed events created), and streams the events of
`ami.log` traces, as recorded or time-compressed (`speed`), at a steady rate (`rate`), or as fast as
it can (`filtered` leaves out what deploy/manager.conf.snippet's event filters drop: the stream a
production PBX sends). Events go out in batches, one write each. Switches make it misbehave the
ways a real network and PBX do:

- `drop_after`: after N events, send half of the next message and close the socket;
  `lost_on_drop` events are then skipped (they happened while nobody listened), else the stream
  resumes where it stopped;
- `stall_after`/`stall_seconds`: go silent (no events, no replies) like a half-open connection;
- `split_utf8`: cut messages across TCP writes in the middle of multi-byte characters;
- `garbage_every`: send invalid bytes (alone, or glued in front of the next message);
- `reject_login`: answer every login `Authentication failed` and close, after `login_delay`;
- `hold_after`: stop sending after N events (connections stay answered) until `release()`.

Run it alone for a demo: `python -m ingest.testing.fake_asterisk TRACE_DIR... --port 5038`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from ingest.testing.trace_stream import FILTERED, NOW, ChannelTracker, TraceStream

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# Events per write when streaming as fast as possible (about 60 KB: one socket buffer's worth).
BATCH = 128
GARBAGE = b"\x00\xff\xfe garbage \xc3(\r\nno colon here"


class FakeAsterisk:
    """The server; `start()` then connect to `port`. Counters tell tests what happened."""

    def __init__(
        self,
        traces: Sequence[Path],
        *,
        username: str = "calltrail",
        secret: str = "secret",  # noqa: S107 - a test server's well-known password
        speed: float | None = None,
        rate: float | None = None,
        loops: int = 1,
        restamp: bool = False,
        filtered: bool = False,
        caller_names: dict[str, str] | None = None,
        drop_after: Sequence[int] = (),
        lost_on_drop: int = 0,
        stall_after: int | None = None,
        stall_seconds: float = 0.0,
        split_utf8: bool = False,
        garbage_every: int = 0,
        reject_login: bool = False,
        hold_after: int | None = None,
        login_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.stream = TraceStream(
            traces, loops=loops, restamp=restamp, caller_names=caller_names,
            exclude=FILTERED if filtered else frozenset(),
        )
        self.username, self.secret = username, secret
        self.speed, self.rate = speed, rate
        self.drop_after = sorted(drop_after)
        self.lost_on_drop = lost_on_drop
        self.stall_after, self.stall_seconds = stall_after, stall_seconds
        self.split_utf8, self.garbage_every = split_utf8, garbage_every
        self.reject_login, self.login_delay = reject_login, login_delay
        self.hold_after = hold_after
        self.gate = asyncio.Event()
        self.gate.set()
        self.host, self.port = host, port
        self.tracker = ChannelTracker()
        self._loop = self._index = 0
        self._values = self.stream.values(0)
        self._server: asyncio.Server | None = None
        self._sender: asyncio.Task[None] | None = None
        self._stalled: asyncio.StreamWriter | None = None
        self._writers: dict[asyncio.StreamWriter, asyncio.Lock] = {}
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._started_at: float | None = None
        self._first_stamp: float | None = None
        # Counters for tests.
        self.sent = 0
        self.garbage_sent = 0
        self.connections = 0
        self.logins = 0
        self.failed_logins = 0
        self.pings = 0
        self.core_show_channels = 0
        self.actions: list[dict[str, str]] = []  # the actions received, as parsed (the first 1,000)
        self.finished = asyncio.Event()

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, then `self.port` holds it)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every client."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeAsterisk:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._clients.add(writer)
        lock = asyncio.Lock()
        writer.write(BANNER)
        challenge = ""
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if self._stalled is writer:
                    continue  # a stalled session answers nothing (a new session is served)
                action = dict(
                    line.split(": ", 1) for line in raw.decode("utf-8", "replace").split("\r\n") if ": " in line
                )
                if len(self.actions) < 1000:  # a demo may run for days: keep the first ones only
                    self.actions.append(action)
                name = action.get("Action", "").lower()
                action_id = action.get("ActionID", "")
                if name == "challenge":
                    challenge = str(secrets.randbelow(10**9))
                    await self._write(writer, lock, _reply(action_id, Challenge=challenge))
                elif name == "login":
                    if not await self._login(writer, lock, action, action_id, challenge):
                        return
                elif self._sender is None or writer not in self._writers:
                    await self._write(writer, lock, _reply(action_id, "Error", Message="Permission denied"))
                elif name == "ping":
                    self.pings += 1
                    await self._write(writer, lock, _reply(action_id, Ping="Pong", Timestamp=f"{time.time():.6f}"))
                elif name == "coreshowchannels":
                    self.core_show_channels += 1
                    await self._write(writer, lock, self.tracker.reply(action_id, time.time()).encode())
                elif name == "logoff":
                    await self._write(writer, lock, _reply(action_id, "Goodbye", Message="Thanks for all the fish."))
                    return
                else:
                    await self._write(writer, lock, _reply(action_id, "Error", Message="Invalid/unknown command"))
        finally:
            self._writers.pop(writer, None)
            self._clients.discard(writer)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def release(self) -> None:
        """Resume a stream held by `hold_after`."""
        self.gate.set()

    async def _login(
        self, writer: asyncio.StreamWriter, lock: asyncio.Lock, action: dict[str, str], action_id: str, challenge: str
    ) -> bool:
        if action.get("AuthType", "").lower() == "md5":
            good_secret = action.get("Key") == hashlib.md5((challenge + self.secret).encode()).hexdigest()  # noqa: S324 - AMI's own scheme
        else:
            good_secret = action.get("Secret") == self.secret
        if self.reject_login or action.get("Username") != self.username or not good_secret:
            self.failed_logins += 1
            await asyncio.sleep(self.login_delay)  # Asterisk waits too, against password guessing
            await self._write(writer, lock, _reply(action_id, "Error", Message="Authentication failed"))
            return False
        self.logins += 1
        await self._write(writer, lock, _reply(action_id, Message="Authentication accepted"))
        await self._write(
            writer, lock, b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 1\r\nLastReload: 1\r\n"
            b"Status: Fully Booted\r\n\r\n",
        )
        # One client streams at a time: a new login takes the stream over from a stale connection.
        if self._sender is not None:
            self._sender.cancel()
        self._writers = {writer: lock}
        self._sender = asyncio.create_task(self._send_events(writer, lock))
        return True

    async def _write(self, writer: asyncio.StreamWriter, lock: asyncio.Lock, data: bytes) -> None:
        async with lock:
            writer.write(data)
            await writer.drain()

    def _more(self) -> bool:
        return self._loop < self.stream.loops and bool(self.stream.templates)

    def _advance(self, now: float | None) -> bytes:
        """Render the next event (stamped `now` when restamping), mark it happened, and return it."""
        template = self.stream.templates[self._index]
        data = template.render(self._values)
        # The PBX's channel table follows what happened, sent or lost, never what is still to come.
        if template.uniqueid is not None:
            uniqueid = self._values[template.uniqueid] if isinstance(template.uniqueid, int) else template.uniqueid
            stamp = now if now is not None else self.stream.stamp(template, self._loop)
            self.tracker.see(template.name, uniqueid, data, stamp)
        self._index += 1
        if self._index == len(self.stream.templates):
            self._index = 0
            self._loop += 1
            stamp_now = self._values[NOW]
            self._values = self.stream.values(self._loop)
            self._values[NOW] = stamp_now
        return data

    def _due(self, limit: int) -> tuple[int, float]:
        """How many of the next `limit` events are due now, and if none, how long until the first is."""
        now = time.monotonic()
        templates = self.stream.templates
        if self._started_at is None:
            self._started_at = now
            self._first_stamp = self.stream.stamp(templates[self._index], self._loop)
        if self.rate:
            due = int((now - self._started_at) * self.rate) + 1 - self.sent
            return (min(limit, due), 0.0) if due > 0 else (0, self._started_at + self.sent / self.rate - now)
        if not self.speed:
            return limit, 0.0
        assert self._first_stamp is not None
        count = 0
        while count < limit:
            index = self._index + count
            loop = self._loop + index // len(templates)
            if loop >= self.stream.loops:
                break
            stamp = self.stream.stamp(templates[index % len(templates)], loop)
            wait = self._started_at + (stamp - self._first_stamp) / self.speed - now
            if wait > 0:
                return (count, 0.0) if count else (0, wait)
            count += 1
        return count, 0.0

    def _limit(self) -> int:
        """The most events the next write may hold: it stops short of the next scripted misbehaviour."""
        limit = 1 if self.split_utf8 or self.garbage_every else BATCH
        for threshold in (self.drop_after[0] if self.drop_after else None, self.stall_after, self.hold_after):
            if threshold is not None and threshold > self.sent:
                limit = min(limit, threshold - self.sent)
        return limit

    async def _send_events(self, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        try:
            while self._more():
                if writer.is_closing():
                    return  # the client is gone: what is pending goes to the next session
                if self.hold_after is not None and self.sent >= self.hold_after:
                    self.hold_after = None
                    self.gate.clear()
                if not self.gate.is_set():
                    async with lock:
                        await writer.drain()
                    await self.gate.wait()
                    continue
                if self.drop_after and self.sent >= self.drop_after[0]:
                    self.drop_after.pop(0)
                    data = self.stream.templates[self._index].render(self._values)
                    await self._write(writer, lock, data[: len(data) // 2])
                    for _ in range(self.lost_on_drop):  # the half-sent event first
                        self._advance(None)
                        if not self._more():
                            break
                    writer.close()
                    return
                if self.stall_after is not None and self.sent >= self.stall_after:
                    self.stall_after = None
                    self._stalled = writer
                    await asyncio.sleep(self.stall_seconds)
                    self._stalled = None
                count, wait = self._due(self._limit())
                if not count:
                    await asyncio.sleep(wait)
                    continue
                async with lock:
                    # Rendered and written with no await between: a CoreShowChannels answer never
                    # lands between events the channel table has already seen.
                    now = time.time() if self.stream.restamp else None
                    if now is not None:
                        self._values[NOW] = b"%.6f" % now
                    parts = []
                    for _ in range(count):
                        parts.append(self._advance(now))
                        if not self._more():
                            break
                    data = b"".join(parts)
                    if self.garbage_every and self.sent and self.sent % self.garbage_every == 0:
                        self.garbage_sent += 1
                        # Alternate: garbage as its own "message", or glued in front of a real one.
                        data = GARBAGE + (b"\r\n\r\n" + data if self.garbage_sent % 2 else data)
                    if self.split_utf8:
                        await _write_split(writer, data)
                    else:
                        writer.write(data)
                    self.sent += len(parts)
                    await writer.drain()  # back-pressure: wait while the client reads slower than we write
                await asyncio.sleep(0)  # like Asterisk, answer actions while streaming
            async with lock:
                await writer.drain()
            self.finished.set()
        except (ConnectionError, OSError):
            return


async def _write_split(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write `data` in pieces cut right after the first byte of every multi-byte character."""
    cuts = [i + 1 for i, byte in enumerate(data) if byte >= 0xC0]
    if not cuts:
        cuts = [len(data) // 2]
    start = 0
    for cut in [*cuts, len(data)]:
        writer.write(data[start:cut])
        await writer.drain()
        start = cut
        if cut < len(data):
            # Give the reader a chance to see this piece as its own read.
            await asyncio.sleep(0.001)


def _reply(action_id: str, response: str = "Success", **fields: str) -> bytes:
    lines = [f"Response: {response}", f"ActionID: {action_id}", *(f"{k}: {v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake Asterisk until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("traces", nargs="+", type=Path, help="trace folders (holding ami.log) or ami.log files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--username", default="calltrail")
    parser.add_argument("--secret", default="secret")
    parser.add_argument(
        "--speed", type=float, default=None, help="time compression factor (default: as fast as possible)",
    )
    parser.add_argument("--rate", type=float, default=None, help="steady events per second")
    parser.add_argument("--loops", type=int, default=1, help="replay the traces this many times, with fresh ids")
    parser.add_argument("--restamp", action="store_true", help="stamp events with the time they are sent")
    parser.add_argument(
        "--filtered", action="store_true",
        help="leave out the events the event filters of deploy/manager.conf.snippet drop (a production stream)",
    )
    args = parser.parse_args(argv)

    async def serve() -> None:
        fake = FakeAsterisk(
            args.traces, username=args.username, secret=args.secret, speed=args.speed, rate=args.rate,
            loops=args.loops, restamp=args.restamp, filtered=args.filtered, host=args.host, port=args.port,
        )
        await fake.start()
        print(f"fake Asterisk listening on {args.host}:{fake.port} ({len(fake.stream)} events)", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
