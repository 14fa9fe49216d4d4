"""Reading Asterisk's own CSV files: the CDR Master.csv (cdr_csv) and the CEL file (cel_custom).

Master.csv has no header and a fixed column order: accountcode, src, dst, dcontext, clid, channel,
dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags, then
uniqueid and userfield (when logged), then peeraccount, linkedid and sequence with
`newcdrcolumns=yes`. A file with a header row (exports from other tools) is read by its names.
Times are the PBX's local time; they become UTC datetimes here. Rows are streamed, never loaded.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from ingest.errors import InputFileError

CDR_COLUMNS: tuple[str, ...] = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "start",
    "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
    "peeraccount", "linkedid", "sequence",
)
CEL_COLUMNS: tuple[str, ...] = (
    "eventtype", "eventtime", "cidname", "cidnum", "ani", "rdnis", "dnid", "exten", "context", "channel",
    "appname", "appdata", "amaflags", "accountcode", "uniqueid", "linkedid", "peer", "userfield", "userdeftype",
    "eventextra",
)
# Column names used by other exporters (FreePBX's cdr table, CSV dumps of cdr_adaptive_odbc).
_ALIASES = {"calldate": "start", "answer_time": "answer", "end_time": "end", "start_time": "start"}
# CDR rows without these are unusable (a call needs a channel and times).
_NEEDED = ("channel", "start", "end")


@dataclass(slots=True)
class CdrRow:
    """One CDR line: one leg between `channel` (party A) and `dstchannel` (party B)."""

    line: int
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    billsec: int
    disposition: str
    uniqueid: str
    linkedid: str
    accountcode: str = ""


@dataclass(slots=True)
class CelRow:
    """One CEL line: a channel event (CHAN_START, ANSWER, BRIDGE_ENTER, BLINDTRANSFER, HANGUP...)."""

    event: str
    time: datetime
    exten: str
    context: str
    channel: str
    uniqueid: str
    linkedid: str
    peer: str
    extra: str

    def extra_field(self, name: str) -> str:
        """A key of the JSON `eventextra` (hangupsource, dialstatus, bridge_id...), '' when absent."""
        if not self.extra.startswith("{"):
            return ""
        try:
            value = json.loads(self.extra).get(name, "")
        except (ValueError, AttributeError):
            return ""
        return str(value)


# The seconds of a 'YYYY-MM-DD HH:MM:SS' string, for LocalTimes' per-minute cache.
_SECONDS = {f"{second:02d}": timedelta(seconds=second) for second in range(60)}
_CACHE_LIMIT = 200_000


class LocalTimes:
    """Local wall-clock strings of one time zone -> UTC datetimes, caching the offset per hour.

    Parsing is the import's hottest step (three times a row), so the UTC time of each minute is
    cached too: a string of a cached minute costs a dict lookup and one addition.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[str, timedelta] = {}
        self._minutes: dict[str, datetime] = {}

    def parse(self, text: str) -> datetime | None:
        """UTC datetime of `text` ('2024-03-20 08:15:00', fractions allowed), None when empty."""
        if not text:
            return None
        if len(text) == 19:
            minute = self._minutes.get(text[:17])
            second = _SECONDS.get(text[17:])
            if minute is not None and second is not None:
                return minute + second
        return self._parse(text)

    def _parse(self, text: str) -> datetime:
        hour = text[:13]
        offset = self._offsets.get(hour)
        local = datetime.fromisoformat(text)
        if local.tzinfo is not None:
            return local.astimezone(UTC)
        if offset is None:
            # Ambiguous local times (the DST fall-back hour) take the first occurrence, as zoneinfo does.
            offset = local.replace(minute=0, second=0, microsecond=0, tzinfo=self.zone).utcoffset() or timedelta()
            if len(self._offsets) > 50_000:
                self._offsets.clear()
            self._offsets[hour] = offset
        found = (local - offset).replace(tzinfo=UTC)
        second = _SECONDS.get(text[17:]) if len(text) == 19 and text[16] == ":" else None
        if second is not None:
            # Every second of this minute is this minute's UTC time plus the seconds (same hour, same offset).
            if len(self._minutes) >= _CACHE_LIMIT:
                self._minutes.clear()
            self._minutes[text[:17]] = found - second
        return found


class RowError(ValueError):
    """A CDR line that cannot be used; `reason` is the short text counted in the import summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def count_lines(lines: Iterable[str], progress: Callable[[int], None] | None) -> Iterable[str]:
    """`lines`, reporting the characters read to `progress` every 64 KiB or so (`lines` itself without one)."""
    if progress is None:
        return lines  # no generator in between: it would cost a call per line
    return _counted(lines, progress)


def _counted(lines: Iterable[str], progress: Callable[[int], None]) -> Iterator[str]:
    pending = 0
    for line in lines:
        pending += len(line)
        if pending >= 65536:
            progress(pending)
            pending = 0
        yield line
    progress(pending)


def _columns(first: list[str], path: str) -> tuple[tuple[str, ...], bool]:
    """The column names of a CDR file and whether its first row is a header."""
    lowered = [c.strip().lower() for c in first]
    if "channel" in lowered and ("start" in lowered or "calldate" in lowered):
        return tuple(_ALIASES.get(c, c) for c in lowered), True
    count = len(first)
    if count >= 21:
        return CDR_COLUMNS[:21], False
    if count in (16, 17, 18):
        return CDR_COLUMNS[:count], False
    raise InputFileError(f"not an Asterisk CDR CSV: {count} columns (expected 16-18 or 21)", path=path, line=1)


def read_cdr(lines: Iterable[str], path: str, times: LocalTimes) -> Iterator[CdrRow | RowError]:
    """CDR rows of a Master.csv; unusable lines come as RowError (counted, not fatal)."""
    reader = csv.reader(lines)
    try:
        first = next(reader, None)
    except csv.Error as exc:  # a runaway quoted field, say
        raise InputFileError(f"unreadable CSV: {exc}", path=path, line=1) from exc
    if first is None:
        return
    names, has_header = _columns(first, path)
    index = {name: i for i, name in enumerate(names)}
    missing = [n for n in _NEEDED if n not in index]
    if missing:
        raise InputFileError(f"no {', '.join(missing)} column", path=path, line=1)
    width = len(names)
    # Absent columns read the empty cell appended at index `width`.
    pick = itemgetter(*(index.get(n, width) for n in CDR_COLUMNS))
    if not has_header:
        yield _row(first, 1, width, pick, times)
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            yield _row(cells, number, width, pick, times)
    except csv.Error as exc:
        raise InputFileError(f"unreadable CSV: {exc}", path=path, line=number + 1) from exc


def _row(cells: list[str], line: int, width: int, pick: Callable[[list[str]], tuple[str, ...]],
         times: LocalTimes) -> CdrRow | RowError:
    if len(cells) < width:
        if not cells:
            return RowError("empty line")
        return RowError(f"{len(cells)} columns instead of {width}")
    if len(cells) == width:
        cells.append("")
    else:
        cells[width:] = [""]
    (accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, _duration,
     billsec, disposition, _ama, uniqueid, _userfield, _peeraccount, linkedid, _sequence) = pick(cells)
    if not channel:
        return RowError("no channel")
    try:
        start_time = times.parse(start)
        end_time = times.parse(end) or start_time
        answer_time = times.parse(answer)
    except ValueError:
        return RowError("bad start/answer/end time")
    if start_time is None or end_time is None:
        return RowError("no start time")
    if end_time < start_time:
        end_time = start_time
    if answer_time is not None:
        # A hand-edited or clock-jumped row must still give a consistent leg.
        if answer_time < start_time:
            answer_time = start_time
        elif answer_time > end_time:
            answer_time = end_time
    # Positional: keyword arguments cost measurably at millions of rows.
    return CdrRow(line, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start_time, answer_time,
                  end_time, _billsec(billsec), disposition.upper(), uniqueid, linkedid,
                  accountcode)


def _billsec(text: str) -> int:
    """The billed seconds: up to 18 ASCII digits (no other digit forms, no absurd lengths), else 0."""
    return int(text) if len(text) <= 18 and text.isascii() and text.isdigit() else 0


def read_cel(lines: Iterable[str], path: str, times: LocalTimes) -> Iterator[CelRow]:
    """CEL rows of a cel_custom CSV in the README's column order; unusable lines are skipped."""
    reader = csv.reader(lines)
    for number, cells in enumerate(reader, start=1):
        if len(cells) < 16:
            if number == 1 and cells:
                raise InputFileError(f"not a CEL CSV: {len(cells)} columns (expected 20)", path=path, line=1)
            continue
        if number == 1 and cells[0].strip().lower() in ("eventtype", "event"):
            continue
        try:
            when = times.parse(cells[1])
        except ValueError:
            continue
        if when is None:
            continue
        extra = cells[19] if len(cells) > 19 else ""
        yield CelRow(event=cells[0], time=when, exten=cells[7], context=cells[8], channel=cells[9],
                     uniqueid=cells[14], linkedid=cells[15], peer=cells[16], extra=extra)
