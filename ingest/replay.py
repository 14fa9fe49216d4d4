"""Replay recorded AMI traces (raw AMI text or JSON lines) through the same assembler as the daemon.

`replay_json` prints one JSON object per finished call, in the order calls finish, then the calls
still open at the end of input (closed as `recovered`). `replay_to_database` stores them instead.
Either way a `ReplayStats` gives the one-line summary the command prints on stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ingest.assembler import CallAssembler
from ingest.config import Config, SystemConfig
from ingest.errors import ParseError
from ingest.events import AmiParser, Event, JsonLinesParser, Parser
from ingest.records import CallRecord

log = logging.getLogger(__name__)

CHUNK = 1 << 20
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
# Malformed messages logged at WARNING before the rest go to DEBUG, so a bad file cannot flood logs.
_LOUD_ERRORS = 5
STORE_BATCH = 500


@dataclass
class ReplayStats:
    """What a replay saw: the figures of its stderr summary line."""

    events: int = 0
    malformed: int = 0
    finished: int = 0
    still_open: int = 0

    def summary(self) -> str:
        """The one-line summary printed on stderr."""
        return (
            f"events read: {self.events}, malformed skipped: {self.malformed}, "
            f"calls finished: {self.finished}, calls still open: {self.still_open}"
        )


def parser_for(path: Path, head: str) -> Parser:
    """JSON lines for .jsonl files (or text starting with '{'), raw AMI otherwise."""
    if path.suffix.lower() in JSON_SUFFIXES or head.lstrip().startswith("{"):
        return JsonLinesParser()
    return AmiParser()


def read_events(paths: Iterable[Path], stats: ReplayStats) -> Iterator[Event]:
    """Every event of the traces in order; malformed messages are counted and skipped."""
    for path in paths:
        with path.open(encoding="utf-8", errors="replace", newline="") as stream:
            chunk = stream.read(CHUNK)
            parser = parser_for(path, chunk[:200])
            while chunk:
                yield from _events(parser.feed(chunk), stats, path)
                chunk = stream.read(CHUNK)
            yield from _events(parser.close(), stats, path)
        stats.events += parser.events


def _events(items: list[Event | ParseError], stats: ReplayStats, path: Path) -> Iterator[Event]:
    for item in items:
        if isinstance(item, ParseError):
            stats.malformed += 1
            level = logging.WARNING if stats.malformed <= _LOUD_ERRORS else logging.DEBUG
            log.log(level, "%s: skipped a malformed message (%s): %.120r", path, item, item.text)
        else:
            yield item


def replay(
    paths: Iterable[Path], system: SystemConfig, emit: Callable[[CallRecord], None]
) -> ReplayStats:
    """Feed the traces through one CallAssembler, calling `emit` for every call in finishing order."""
    stats = ReplayStats()
    assembler = CallAssembler(system)
    last: float | None = None
    for event in read_events(paths, stats):
        if event.timestamp is not None:
            last = event.timestamp
        for record in assembler.feed(event):
            stats.finished += 1
            emit(record)
    end = datetime.fromtimestamp(last, tz=UTC) if last is not None else datetime.now(tz=UTC)
    for record in assembler.expire(end):
        stats.still_open += 1
        emit(record)
    return stats


def replay_json(paths: Iterable[Path], system: SystemConfig, out: TextIO) -> ReplayStats:
    """Replay and print one JSON object per call, one per line."""

    def emit(record: CallRecord) -> None:
        out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")

    stats = replay(paths, system, emit)
    out.flush()
    return stats


async def replay_to_database(paths: Iterable[Path], config: Config, system: SystemConfig) -> ReplayStats:
    """Replay and store every call (idempotently: replaying again updates the same rows)."""
    # Imported here so that `replay --json` needs no database driver.
    from ingest import pg, store

    records: list[CallRecord] = []
    stats = replay(paths, system, records.append)
    target = await asyncio.to_thread(pg.resolve, config.dsn)
    conn = await store.connect(target.dsn)
    try:
        await store.init_schema(conn)
        system_id = await store.ensure_system(conn, system)
        for start in range(0, len(records), STORE_BATCH):
            await store.store_calls(conn, system_id, records[start : start + STORE_BATCH], source="replay")
    finally:
        await conn.close()
    log.info("stored %d call(s) for telephone system %s", len(records), system.name)
    return stats
