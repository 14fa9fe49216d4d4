"""One AMI connection per telephone system: the only module importing panoramisk.

panoramisk 1.4 (the only release on PyPI) has defects that lose calls; each is handled here:

1. Each TCP chunk is decoded alone with errors='ignore', so a UTF-8 character split across reads
   vanishes ("Иван" arrives as "ван"). `AmiProtocol` decodes incrementally and counts bytes that
   are not UTF-8 at all (garbage) instead of hiding them.
2. A raising callback escapes `data_received` and kills the connection: every dispatch is guarded.
3. Async callbacks finish out of order: one sync sink takes raw message text, in wire order, for
   one task to consume (`sink_many` takes every event of one read as a list: one hand-off per read).
   Plain events skip panoramisk's `Message` (building one costs more than the rest of the pipeline;
   see bench/RESULTS.md).
4. Half-open TCP is never noticed (pings are fire-and-forget): a watchdog pings with a timeout and
   aborts the transport, and an unanswered login is aborted too.
5. Only plain logins exist: `auth = "md5"` answers a `Challenge` instead (the secret never crosses
   the network), by hiding the username from panoramisk's own login.
6. A refused login raises nothing and is retried every 2 s forever: it is reported once as an
   ERROR naming the system and user, then retried with a long back-off; `healthy` turns false.
7. Reconnects come at a fixed pace: here exponential back-off with jitter.
8. The Manager must be built inside the running loop (`start()` is a coroutine).

After every login `CoreShowChannels` is written straight to the socket with an ActionID no
panoramisk action owns, so its `CoreShowChannel` events and the closing
`CoreShowChannelsComplete` reach the sink in wire order, between the events around them: the
consumer reconciles open calls at exactly the right point of the stream (and the journal
records it, so a replay reconciles the same way).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ingest.config import SystemConfig

log = logging.getLogger(__name__)

RESYNC_ACTION_PREFIX = "calltrail-resync-"
_BANNER = "Asterisk Call Manager/"
# Events panoramisk itself must see (it re-sends queued actions on FullyBooted, reconnects on Shutdown).
_MANAGER_EVENTS = ("Event: FullyBooted\r", "Event: Shutdown\r")

Sink = Callable[[str], None]
BatchSink = Callable[[list[str]], None]


class _QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """panoramisk's logger with its chatty INFO lines ("Sending awaiting actions") moved to DEBUG."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log at DEBUG instead."""
        self.debug(msg, *args, **kwargs)


_PANORAMISK_LOG = _QuietLog(logging.getLogger("ingest.ami.panoramisk"), {})


@dataclass
class ConnectionStats:
    """What a connection has seen, read by metrics and health (plain ints: no per-event cost)."""

    events: int = 0
    garbage: int = 0
    reconnects: int = 0
    connected: bool = False
    login_failed: bool = False
    last_event_monotonic: float | None = None
    connected_since: float | None = None


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with incremental UTF-8 decoding, a fast path and guarded dispatch."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Reset per-connection state: a new socket starts with a fresh decoder and buffer."""
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._banner_seen = False

    def data_received(self, data: bytes) -> None:
        """Decode incrementally, split into messages, hand events to the sink in wire order."""
        text = self._decoder.decode(data)
        owner: AmiConnection | None = getattr(self.factory, "owner", None)
        if owner is None:  # the manager has not adopted this protocol yet: keep the text
            self._buffer += text
            return
        owner.stats.last_event_monotonic = time.monotonic()
        if "\ufffd" in text:
            owner.garbage(text.count("\ufffd"), "bytes that are not UTF-8", text)
        buffer = self._buffer + text if self._buffer else text
        if not self._banner_seen and buffer.startswith(_BANNER):
            line, sep, rest = buffer.partition("\r\n")
            if not sep:
                self._buffer = buffer
                return
            self.version = line[len(_BANNER):]
            self._banner_seen, buffer = True, rest
        end = buffer.rfind("\r\n\r\n")
        if end < 0:
            self._buffer = buffer
            return
        self._buffer = buffer[end + 4:]
        messages = buffer[:end].split("\r\n\r\n")
        # Plain events go to the sink as one list per read (one hand-off, not one per message). The
        # usual read holds nothing else: one scan for ActionID and a prefix test per message tell.
        if buffer.find("ActionID: ", 0, end) < 0:
            for block in messages:
                if not block.startswith("Event: ") or block.startswith(_MANAGER_EVENTS):
                    break
            else:
                owner.deliver(messages)
                return
        # Otherwise each message is looked at; anything that is not a plain event is flushed
        # around, so the sink still sees the wire order.
        events: list[str] = []
        for block in messages:
            if not block.startswith("Event: "):
                block = self._salvage(owner, block)
                if not block.startswith("Event: "):
                    if block:
                        if events:
                            owner.deliver(events)
                            events = []
                        self._slow_path(owner, block)
                    continue
            if ("\r\nActionID: " not in block or RESYNC_ACTION_PREFIX in block) and not block.startswith(
                _MANAGER_EVENTS
            ):
                events.append(block)
            else:
                if events:
                    owner.deliver(events)
                    events = []
                self._slow_path(owner, block)
        if events:
            owner.deliver(events)

    def _salvage(self, owner: AmiConnection, block: str) -> str:
        block = block.strip("\r\n")
        if not block or block.startswith("Response: "):
            return block
        # Garbage glued in front of a message: keep the message, count the garbage.
        start = min((i for i in (block.find("Event: "), block.find("Response: ")) if i >= 0), default=-1)
        owner.garbage(1, "malformed message", block)
        return block[start:] if start > 0 else ""

    def _slow_path(self, owner: AmiConnection, block: str) -> None:
        message = Message.from_line(block)
        if message is None:
            owner.garbage(1, "malformed message", block)
            return
        message.raw_text = block
        try:
            self.handle_message(message)
        except Exception:
            log.exception("system %s: AMI message handler failed", owner.system.name)


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager with our reconnect pacing, login-failure detection and no blind pings."""

    owner: AmiConnection
    pinger: asyncio.TimerHandle | None

    def connection_made(self, future: asyncio.Future[Any]) -> None:
        """Adopt a new socket, or schedule a retry with back-off when the connect failed."""
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.owner._connect_failed(exc)
            return
        if self.owner.system.auth != "md5":
            super().connection_made(future)
        else:
            # panoramisk logs in with the plain secret whenever it has a username: hide it for the
            # call, then log in by challenge (panoramisk 1.4 has no MD5 login of its own).
            username = self.config.pop("username")
            try:
                super().connection_made(future)
            finally:
                self.config["username"] = username
            self.authenticated = False
            challenge = self.send_action({"Action": "Challenge", "AuthType": "MD5"})
            self.authenticated_future = challenge
            challenge.add_done_callback(self._answer_challenge)
        self.protocol.log = _PANORAMISK_LOG
        self.owner._socket_open()

    def _answer_challenge(self, future: asyncio.Future[Any]) -> None:
        """Log in with Key = md5(challenge + secret): the secret never crosses the network."""
        if future.cancelled():
            return
        reply = future.result()
        challenge = reply.get("Challenge") if reply.success else None
        if not challenge:
            self.authenticated_future = None
            self.owner._login_refused(f"no MD5 challenge: {reply.get('Message') or 'refused'}")
            return
        key = hashlib.md5((challenge + self.config["secret"]).encode()).hexdigest()  # noqa: S324 - AMI's scheme
        login = self.send_action({
            "Action": "Login", "AuthType": "MD5", "Username": self.config["username"], "Key": key,
            "Events": self.config["events"],
        })
        self.authenticated_future = login
        login.add_done_callback(self.login)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Schedule a reconnect with back-off instead of panoramisk's fixed pace."""
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.owner._disconnected(exc)

    def login(self, future: asyncio.Future[Any]) -> bool:
        """panoramisk's login callback, plus reporting a refused login."""
        if future.cancelled():
            return False
        ok = bool(super().login(future))
        if ok:
            self.owner._logged_in()
        else:
            self.owner._login_refused(str(future.result().message or "authentication failed"))
        return ok

    def ping(self) -> None:
        """Disabled: panoramisk's fire-and-forget pings leak; the watchdog pings with a timeout."""


class AmiConnection:
    """Keeps one telephone system's AMI session up and feeds its events to `sink`, in order."""

    def __init__(
        self,
        system: SystemConfig,
        sink: Sink,
        *,
        sink_many: BatchSink | None = None,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        login_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        login_backoff: float = 30.0,
    ) -> None:
        self.system = system
        self.sink = sink
        self.sink_many = sink_many
        self.stats = ConnectionStats()
        self.ping_interval, self.ping_timeout, self.login_timeout = ping_interval, ping_timeout, login_timeout
        self.backoff_initial, self.backoff_max, self.login_backoff = backoff_initial, backoff_max, login_backoff
        self._manager: _Manager | None = None
        self._failures = 0
        self._socket_opened_at: float | None = None
        self._authenticated = False
        self._ever_connected = False
        self._reported_down = False
        self._resyncs = 0
        self._retry: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._paused = False
        self._garbage_logged = 0

    @property
    def where(self) -> str:
        """host:port of the AMI endpoint."""
        return f"{self.system.host}:{self.system.port}"

    async def start(self) -> None:
        """Create the Manager inside the running loop and start connecting."""
        loop = asyncio.get_running_loop()
        self._manager = _Manager(
            host=self.system.host, port=self.system.port, username=self.system.username,
            secret=self.system.secret, events="on", protocol_factory=AmiProtocol, loop=loop,
            forgetable_actions=("ping", "login", "challenge"), ping_delay=10**6, log=_PANORAMISK_LOG,
        )
        self._manager.owner = self
        self._manager.register_event("*", self._on_message)
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name=f"ami-watchdog-{self.system.name}")

    async def close(self) -> None:
        """Log off politely when possible and stop reconnecting."""
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._manager is not None and self._manager.protocol is not None:
            with contextlib.suppress(Exception):
                self._manager.protocol.transport.write(b"Action: Logoff\r\nActionID: calltrail-logoff\r\n\r\n")
            self._manager.close()
        self.stats.connected = False

    def pause_reading(self, paused: bool) -> None:
        """Stop (or restart) reading the socket: TCP back-pressure when the consumer falls behind."""
        self._paused = paused
        manager = self._manager
        transport = getattr(getattr(manager, "protocol", None), "transport", None)
        if transport is None or transport.is_closing():
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    @property
    def healthy(self) -> bool:
        """Logged in and not failing."""
        return self.stats.connected and not self.stats.login_failed

    def garbage(self, count: int, what: str, sample: str) -> None:
        """Count bytes or messages that are not AMI; log the first few, then every 1000th."""
        self.stats.garbage += count
        self._garbage_logged += 1
        if self._garbage_logged <= 5 or self._garbage_logged % 1000 == 0:
            log.warning(
                "system %s: %s from AMI (%d so far), skipped: %r",
                self.system.name, what, self.stats.garbage, sample[:120],
            )

    def deliver(self, blocks: list[str]) -> None:
        """Hand events to the sink, guarded: a failing sink drops what it failed on, never the socket."""
        self.stats.events += len(blocks)
        if self.sink_many is not None:
            try:
                self.sink_many(blocks)
            except Exception:
                log.exception("system %s: event handler failed; %d event(s) dropped", self.system.name, len(blocks))
            return
        sink = self.sink
        for block in blocks:
            try:
                sink(block)
            except Exception:
                log.exception("system %s: event handler failed; event dropped", self.system.name)

    # The sink for events panoramisk dispatches itself (FullyBooted, Shutdown, action lists).
    def _on_message(self, manager: Any, message: Any) -> None:
        raw = getattr(message, "raw_text", None)
        if raw is None:
            return
        self.deliver([raw])

    # Callbacks from _Manager -------------------------------------------------------------------

    def _socket_open(self) -> None:
        self._socket_opened_at = time.monotonic()
        self._authenticated = False

    def _logged_in(self) -> None:
        self._authenticated = True
        self._failures = 0
        self.stats.connected = True
        self.stats.connected_since = time.time()
        if self.stats.login_failed:
            log.info("system %s: AMI login as %r accepted again", self.system.name, self.system.username)
        self.stats.login_failed = False
        if not self._ever_connected:
            log.info("system %s: connected to AMI at %s as %r", self.system.name, self.where, self.system.username)
        elif self._reported_down:
            log.info("system %s: reconnected to AMI at %s", self.system.name, self.where)
        self._ever_connected = True
        self._reported_down = False
        self._request_channels()

    def _request_channels(self) -> None:
        # Written past panoramisk on purpose: see the module docstring.
        assert self._manager is not None
        self._resyncs += 1
        action = f"Action: CoreShowChannels\r\nActionID: {RESYNC_ACTION_PREFIX}{self._resyncs}\r\n\r\n"
        with contextlib.suppress(Exception):
            self._manager.protocol.transport.write(action.encode())

    def _login_refused(self, message: str) -> None:
        if not self.stats.login_failed:
            log.error(
                "system %s: AMI login refused for user %r at %s (%s): check username and secret in the "
                "configuration and manager.conf; retrying every %.0f s",
                self.system.name, self.system.username, self.where, message, self.login_backoff,
            )
        else:
            log.debug("system %s: AMI login refused again", self.system.name)
        self.stats.login_failed = True
        self._abort()
        if self._retry is not None:  # the socket closed first: retry at the login pace instead
            self._schedule_reconnect()

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.connected = False
        if not self._reported_down and not self.stats.login_failed:
            log.warning("system %s: cannot connect to AMI at %s: %s; retrying", self.system.name, self.where, exc)
            self._reported_down = True
        self._schedule_reconnect()

    def _disconnected(self, exc: BaseException | None) -> None:
        was_up = self.stats.connected
        self.stats.connected = False
        self._authenticated = False
        self._socket_opened_at = None
        if self._closing:
            return
        if was_up:
            self.stats.reconnects += 1
            why = f" ({exc})" if isinstance(exc, BaseException) else " (Asterisk shut down)" if exc else ""
            log.warning("system %s: AMI connection to %s lost%s; reconnecting", self.system.name, self.where, why)
            self._reported_down = True
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._closing:
            return
        self._failures += 1
        if self.stats.login_failed:
            delay = self.login_backoff
        else:
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
        # Full jitter on a quarter of the delay: many daemons restarting together do not stampede.
        delay = delay * (0.75 + random.random() * 0.25)
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._retry = None
        if not self._closing and self._manager is not None:
            self._manager.connect()

    def _abort(self) -> None:
        """Drop the socket at once; panoramisk then reports the loss and we reconnect."""
        manager = self._manager
        if manager is not None and manager.protocol is not None:
            transport = manager.protocol.transport
            if transport is not None and not transport.is_closing():
                transport.abort()

    async def _watch(self) -> None:
        """Ping with a timeout while logged in; abort a socket that stops answering or never logs in."""
        while True:
            await asyncio.sleep(min(self.ping_interval, self.login_timeout) / 2)
            manager = self._manager
            if manager is None or manager.protocol is None or getattr(manager.protocol, "closed", True):
                continue
            if self._paused:
                continue  # we stopped reading on purpose: silence proves nothing
            if not self._authenticated:
                opened = self._socket_opened_at
                if opened is not None and time.monotonic() - opened > self.login_timeout:
                    log.warning("system %s: no answer to the AMI login within %.0f s; reconnecting",
                                self.system.name, self.login_timeout)
                    self._socket_opened_at = None
                    self._abort()
                continue
            last = self.stats.last_event_monotonic
            if last is not None and time.monotonic() - last < self.ping_interval:
                continue  # events are flowing: the socket is alive
            try:
                await asyncio.wait_for(manager.send_action({"Action": "Ping"}), self.ping_timeout)
            except TimeoutError:
                log.warning("system %s: AMI did not answer a ping within %.0f s; dropping the connection",
                            self.system.name, self.ping_timeout)
                self._abort()
            except Exception as exc:  # a closed socket mid-ping: the loss is reported elsewhere
                log.debug("system %s: ping failed: %s", self.system.name, exc)
