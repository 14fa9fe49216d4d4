"""The local append-only event journal: every relevant event is written here before it is assembled.

One directory per telephone system holds numbered segment files (`00000001.ami`, ...). A record is
one AMI message, verbatim, followed by a blank line, so a segment is itself a valid AMI trace
(`calltrail-ingest replay` reads it). A `Position` is (segment, byte offset of a record); the
daemon stores the position from which a replay rebuilds every open call (the checkpoint) in
PostgreSQL, in the same transaction as the calls it finishes.

Writes are buffered and fsynced in batches (`sync`), always before a checkpoint that points past
them is committed. A record cut short by a crash is truncated when the journal is opened.
Segments rotate at `segment_bytes`; `release(checkpoint)` deletes the oldest segments wholly
before the checkpoint while the journal is over `max_bytes`. Segments at or after the checkpoint
are never deleted (they are the backlog a replay needs), even over budget: that is reported.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

log = logging.getLogger(__name__)

SEPARATOR = b"\r\n\r\n"
_SEGMENT = re.compile(r"^(\d{8})\.ami$")


class Position(NamedTuple):
    """Where a record starts: segment number and byte offset (ordered; a tuple, cheap to make)."""

    segment: int
    offset: int

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The inverse of str(); ValueError when malformed."""
        segment, _, offset = text.partition(":")
        return cls(int(segment), int(offset))


class Journal:
    """Segment files of one telephone system; `open()` before use, `close()` after."""

    def __init__(self, directory: Path, *, segment_bytes: int = 64 << 20, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self._file: BinaryIO | None = None
        self._segment = 0
        self._offset = 0
        self._synced = Position(0, 0)
        self._sizes: dict[int, int] = {}
        self._warned_over_budget = False

    # Setup -------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory, cut a torn last record, and position at the end."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sizes = {n: self._path(n).stat().st_size for n in self._segments()}
        if self._sizes:
            last = max(self._sizes)
            self._sizes[last] = self._truncate_torn(self._path(last))
            self._segment = last
        else:
            self._segment = 1
            self._sizes[1] = 0
        self._offset = self._sizes[self._segment]
        self._file = open(self._path(self._segment), "ab")  # noqa: SIM115 - lives as long as the journal
        self._synced = self.end

    def close(self) -> None:
        """Flush, fsync and close the current segment."""
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:08d}.ami"

    def _segments(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _SEGMENT.match(p.name)))

    @staticmethod
    def _truncate_torn(path: Path) -> int:
        data = path.read_bytes()
        keep = data.rfind(SEPARATOR) + len(SEPARATOR) if SEPARATOR in data else 0
        if keep != len(data):
            log.warning("journal %s: cutting %d bytes of a record torn by a crash", path, len(data) - keep)
            with open(path, "r+b") as handle:
                handle.truncate(keep)
        return keep

    # Writing -----------------------------------------------------------------------------------

    @property
    def end(self) -> Position:
        """Where the next record will start."""
        return Position(self._segment, self._offset)

    def append(self, text: str) -> Position:
        """Append one message (without its blank line); returns where it starts."""
        assert self._file is not None, "journal not open"
        position = Position(self._segment, self._offset)
        data = text.encode("utf-8") + SEPARATOR
        self._file.write(data)
        self._offset += len(data)
        if self._offset >= self.segment_bytes:
            self._rotate()
        return position

    def _rotate(self) -> None:
        assert self._file is not None
        self.sync()
        self._file.close()
        self._sizes[self._segment] = self._offset
        self._segment += 1
        self._offset = 0
        self._sizes[self._segment] = 0
        self._file = open(self._path(self._segment), "ab")  # noqa: SIM115
        self._synced = self.end

    def flush(self) -> int | None:
        """Hand buffered records to the OS; returns the fd to fsync (None when nothing is new)."""
        if self._file is None or self._synced == self.end:
            return None
        self._file.flush()
        return self._file.fileno()

    def sync(self) -> None:
        """Flush and fsync now (the daemon runs `os.fsync(flush())` in a thread instead)."""
        fd = self.flush()
        if fd is not None:
            os.fsync(fd)
        self._synced = self.end

    def mark_synced(self, position: Position) -> None:
        """Record that everything before `position` is on disk (after a threaded fsync)."""
        self._synced = max(self._synced, position)

    @property
    def synced(self) -> Position:
        """Everything before this position is on disk."""
        return self._synced

    # Reading and retention ---------------------------------------------------------------------

    def records(self, start: Position | None = None) -> Iterator[tuple[Position, str, Position]]:
        """(position, text, position after it) of every record from `start` (None: the oldest) on."""
        if self._file is not None:
            self._file.flush()
        segments = self._segments()
        if start is None:
            start = Position(segments[0], 0) if segments else self.end
        segments = [n for n in segments if n >= start.segment]
        if segments and segments[0] > start.segment:
            log.warning("journal %s: segment %d of the checkpoint is gone; replaying from segment %d",
                        self.directory, start.segment, segments[0])
            start = Position(segments[0], 0)
        for segment in segments:
            data = self._path(segment).read_bytes()
            offset = start.offset if segment == start.segment else 0
            while True:
                end = data.find(SEPARATOR, offset)
                if end < 0:
                    break
                following = end + len(SEPARATOR)
                yield Position(segment, offset), data[offset:end].decode("utf-8", "replace"), Position(
                    segment, following
                )
                offset = following

    def backlog_bytes(self, checkpoint: Position) -> int:
        """Bytes journaled at or after `checkpoint`: what a replay would read."""
        total = 0
        for segment, size in self._segment_sizes().items():
            if segment > checkpoint.segment:
                total += size
            elif segment == checkpoint.segment:
                total += max(0, size - checkpoint.offset)
        return total

    @property
    def size_bytes(self) -> int:
        """Bytes in all segments."""
        return sum(self._segment_sizes().values())

    def _segment_sizes(self) -> dict[int, int]:
        # The current segment's size is its write offset, kept apart so `append` stays cheap.
        if self._file is not None:
            self._sizes[self._segment] = self._offset
        return self._sizes

    def release(self, checkpoint: Position) -> int:
        """Delete the oldest segments wholly before `checkpoint` while over budget; returns how many."""
        deleted = 0
        for segment in sorted(self._segment_sizes()):
            if self.size_bytes <= self.max_bytes or segment >= checkpoint.segment:
                break
            self._path(segment).unlink(missing_ok=True)
            del self._sizes[segment]
            deleted += 1
        over = self.size_bytes > self.max_bytes
        if over and not self._warned_over_budget:
            log.warning(
                "journal %s: %d MiB still needed for replay exceeds the %d MiB budget (is PostgreSQL down?); "
                "keeping it", self.directory, self.size_bytes >> 20, self.max_bytes >> 20,
            )
        self._warned_over_budget = over
        return deleted
