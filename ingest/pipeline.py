"""One telephone system's path from AMI text to finished calls: journal first, then assemble.

The AMI connection's sink hands over the raw messages of each socket read as one list (`sink_many`);
`run()` (one task) takes the lists in order, drops the event kinds no call needs, appends the rest
to the journal, and only then parses and feeds them to the assembler. Finished calls wait in
`pending` for the writer.

Crash safety (why a replay neither loses nor duplicates):

- `first_seen` maps every Linkedid to the journal position of its first event. The checkpoint
  (`low_water()`) is the smallest such position among the calls still open, or the journal's end
  when none are: replaying from it through a fresh assembler rebuilds every open call from its
  first event. The writer commits it in the same transaction as every call finished before it
  was computed, so calls that started before it are all in the database.
- Those committed calls may still have events after the checkpoint (their last hang-ups), which a
  fresh assembler would mistake for new, partial calls. Before replaying, `replay()` asks the
  database which Linkedids of the replayed range belong to stored calls and skips their events.
- Until the replay has caught up with the journal's end, new events are only journaled
  (`live` is false), so a slow database at start-up loses nothing either.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.assembler import CallAssembler
from ingest.config import SystemConfig
from ingest.errors import ParseError
from ingest.events import IGNORED_EVENTS, AmiParser
from ingest.journal import Journal, Position
from ingest.records import CallRecord

log = logging.getLogger(__name__)

# Header prefixes whose Linkedid may name a call besides the event's own `Linkedid` (two-party
# events carry both parties' snapshots).
_OTHER_LINKEDID_KEYS = tuple(
    p + "Linkedid" for p in ("Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer",
                             "TransferTarget", "LocalOne", "LocalTwo", "Target")
)
_LINKEDID_TEXT = re.compile(r"Linkedid: ([^\r\n]+)")
_VOICEMAIL = "\r\nApplication: VoiceMail\r"
# Pause reading the AMI socket above this many queued messages (TCP back-pressure), resume below LOW.
# The queue holds one list per socket read; the counts are messages.
QUEUE_HIGH = 50_000
QUEUE_LOW = 10_000
_YIELD_EVERY = 4096
_LOUD_ERRORS = 5

StoredLookup = Callable[[list[str], datetime], Awaitable[set[str]]]


@dataclass
class PipelineStats:
    """Counters read by metrics and health."""

    received: int = 0
    ignored: int = 0
    journaled: int = 0
    malformed: int = 0
    replayed: int = 0
    skipped_stored: int = 0
    calls_finished: int = 0
    reconciled: int = 0


class SystemPipeline:
    """Queue -> journal -> parser -> assembler -> `pending`, for one telephone system."""

    def __init__(self, system: SystemConfig, journal: Journal) -> None:
        self.system = system
        self.journal = journal
        self.queue: deque[list[str]] = deque()
        self.queued = 0  # messages in `queue`
        self._arrived = asyncio.Event()
        self.assembler = CallAssembler(system)
        self.parser = AmiParser()
        self.stats = PipelineStats()
        self.pending: list[CallRecord] = []
        self.records_ready = asyncio.Event()
        self.first_seen: dict[str, Position] = {}
        self.skip_linkedids: set[str] = set()
        self.live = False
        self.last_event_time: float | None = None  # newest event Timestamp seen
        self._last_event_mono = time.monotonic()
        self._channel_lists: dict[str, list[str]] = {}
        self.pause_reading: Callable[[bool], None] | None = None
        self._paused = False

    # Input ---------------------------------------------------------------------------------------

    def sink(self, block: str) -> None:
        """Take one message (see `sink_many`)."""
        self.sink_many([block])

    def sink_many(self, blocks: list[str]) -> None:
        """The one sync callback the AMI connection calls per socket read, messages in wire order."""
        self.queue.append(blocks)
        self.queued += len(blocks)
        self._arrived.set()
        if not self._paused and self.pause_reading is not None and self.queued >= QUEUE_HIGH:
            self._paused = True
            log.warning("system %s: %d events queued; pausing the AMI socket", self.system.name, self.queued)
            self.pause_reading(True)

    async def run(self) -> None:
        """Consume the queue forever (one task per system)."""
        arrived = self._arrived
        queue = self.queue
        while True:
            await arrived.wait()
            arrived.clear()
            handled = 0
            while queue:
                blocks = queue.popleft()
                self.queued -= len(blocks)
                self.handle_many(blocks)
                handled += len(blocks)
                if handled >= _YIELD_EVERY and queue:
                    # A backlog (after a pause or a slow start): let the writer and the socket run too.
                    if self.pending:
                        self.records_ready.set()
                    handled = 0
                    await asyncio.sleep(0)
            if self.pending:
                self.records_ready.set()
            if self._paused and self.queued < QUEUE_LOW and self.pause_reading is not None:
                self._paused = False
                self.pause_reading(False)

    def drain(self) -> None:
        """Handle everything queued now (at shutdown, after the socket closed)."""
        queue = self.queue
        while queue:
            blocks = queue.popleft()
            self.queued -= len(blocks)
            self.handle_many(blocks)
        if self.pending:
            self.records_ready.set()

    def handle_many(self, blocks: list[str]) -> None:
        """Journal each message a call may need, then (when live) assemble it, in order."""
        append = self.journal.append
        apply = self.apply if self.live else None
        ignored = 0
        kept = 0
        try:
            for block in blocks:
                newline = block.find("\r")
                name = block[7:newline] if newline > 0 else block[7:]
                if name in IGNORED_EVENTS and not (name == "Newexten" and _VOICEMAIL in block):
                    ignored += 1
                    continue
                if "\r\nTimestamp: " not in block:
                    # Without timestampevents=yes (and in action lists) the time we got it is the best time.
                    block = f"{block}\r\nTimestamp: {time.time():.6f}"
                position = append(block)
                kept += 1
                if apply is not None:
                    apply(position, block)
        except BaseException:
            # A bug stops the daemon; what follows the failing message stays queued for the
            # shutdown drain to journal, as when messages were queued one by one.
            rest = blocks[ignored + kept:]
            if rest:
                self.queue.appendleft(rest)
                self.queued += len(rest)
            raise
        finally:
            stats = self.stats
            stats.received += ignored + kept
            stats.ignored += ignored
            stats.journaled += kept
            if kept:
                self._last_event_mono = time.monotonic()

    def apply(self, position: Position, block: str) -> None:
        """Parse and assemble one journaled message."""
        try:
            event = self.parser.parse_message(block)
        except ParseError as exc:
            self.stats.malformed += 1
            level = logging.WARNING if self.stats.malformed <= _LOUD_ERRORS else logging.DEBUG
            log.log(level, "system %s: malformed AMI message skipped (%s): %.120r", self.system.name, exc, exc.text)
            return
        if event is None:
            return
        headers = event.headers
        main = headers.get("Linkedid")
        if main is not None and main in self.skip_linkedids:
            self.stats.skipped_stored += 1
            return
        first_seen = self.first_seen
        if main and main not in first_seen:
            first_seen[main] = position
        if block.count("Linkedid: ") > 1:
            for key in _OTHER_LINKEDID_KEYS:
                linkedid = headers.get(key)
                if linkedid and linkedid not in first_seen:
                    first_seen[linkedid] = position
        if event.timestamp is not None and (self.last_event_time is None or event.timestamp > self.last_event_time):
            self.last_event_time = event.timestamp
        done = self.assembler.feed(event)
        if event.name == "CoreShowChannel":
            self._channel_lists.setdefault(headers.get("ActionID", ""), []).append(headers.get("Uniqueid", ""))
        elif event.name == "CoreShowChannelsComplete":
            live = self._channel_lists.pop(headers.get("ActionID", ""), [])
            when = datetime.fromtimestamp(event.timestamp or time.time(), UTC)
            reconciled = self.assembler.reconcile(live, when)
            self.stats.reconciled += len(reconciled)
            done = [*done, *reconciled]
        if done:
            self.stats.calls_finished += len(done)
            self.pending.extend(done)

    # Time and checkpoints ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The PBX's clock as we know it: the newest event time plus the time since it arrived."""
        if self.last_event_time is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(self.last_event_time + time.monotonic() - self._last_event_mono, UTC)

    def low_water(self) -> Position:
        """Where a replay must start to rebuild every open call (see the module docstring)."""
        mark = self.journal.end
        first_seen = self.first_seen
        for linkedids in self.assembler.open_linkedids():
            for linkedid in linkedids:
                position = first_seen.get(linkedid)
                if position is not None and position < mark:
                    mark = position
        # Linkedids first seen before the mark belong to no open call: forget them.
        self.first_seen = {k: p for k, p in first_seen.items() if p >= mark}
        return mark

    # Replay ----------------------------------------------------------------------------------------

    async def replay(self, start: Position | None, stored: StoredLookup) -> int:
        """Rebuild state from the journal since `start`, then go live; returns the events replayed."""
        origin = start
        linkedids: set[str] = set()
        earliest: float | None = None
        for _position, text, _next in self.journal.records(origin):
            linkedids.update(_LINKEDID_TEXT.findall(text))
            if earliest is None:
                stamp = text.find("\r\nTimestamp: ")
                if stamp >= 0:
                    try:
                        earliest = float(text[stamp + 13:].split("\r", 1)[0])
                    except ValueError:
                        earliest = None
        if linkedids:
            since = datetime.fromtimestamp(earliest or time.time(), UTC) - timedelta(days=1)
            self.skip_linkedids = await stored(sorted(linkedids), since)
        replayed = 0
        cursor: Position | None = origin
        while True:
            progressed = False
            for position, text, following in self.journal.records(cursor):
                self.apply(position, text)
                cursor = following
                replayed += 1
                progressed = True
                if replayed % 2000 == 0:
                    await asyncio.sleep(0)  # let the socket be read (and journaled) meanwhile
            if not progressed or (cursor is not None and cursor >= self.journal.end):
                break
        # No await since the last read: nothing was journaled in between, so going live here is exact.
        self.live = True
        self.stats.replayed += replayed
        if self.pending:
            self.records_ready.set()
        if replayed:
            log.info(
                "system %s: replayed %d journaled event(s) from %s: %d call(s) finished, %d still open, "
                "%d event(s) of stored calls skipped", self.system.name, replayed, origin or "the start",
                len(self.pending), self.assembler.open_count, self.stats.skipped_stored,
            )
        return replayed
