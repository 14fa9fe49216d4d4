"""AMI messages -> immutable events. No IO: the replay command and the live daemon feed text in.

Two inputs share one result type, `Event`:

- AMI wire text (`AmiParser`): an optional `Asterisk Call Manager/x.y` banner, then messages of
  `Key: Value` lines (split at the first `": "`, CRLF or LF) each ended by a blank line. Keys that
  repeat (`ChanVariable`) keep every value in `Event.lists`.
- JSON lines (`JsonLinesParser`): one flat object of AMI headers per line, as `Event.to_json` writes.

Speed matters (the assembler's budget is 100,000 events/s on one core, and plain splitting costs
most of it), so events a call never needs (`IGNORED_EVENTS`: VarSet, RTCP, CEL, ...) are recognised
from their first line and dropped before their headers are split. A malformed message yields a
`ParseError` carrying its text, is counted, and never stops the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.errors import ParseError

# Events call assembly never looks at: dropped unparsed. A production AMI event filter drops them too.
IGNORED_EVENTS: frozenset[str] = frozenset(
    {
        "VarSet", "Newexten", "RTCPSent", "RTCPReceived", "DeviceStateChange", "CEL", "Cdr",
        "ExtensionStatus", "PresenceStateChange", "PeerStatus", "ContactStatus", "Registry",
        "NewAccountCode", "DTMFBegin", "DTMFEnd", "DialState", "HangupRequest", "SoftHangupRequest",
        "MusicOnHoldStart", "MusicOnHoldStop", "QueueMemberStatus", "QueueMemberAdded",
        "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPenalty", "QueueMemberRinginuse",
        "SuccessfulAuth", "ChallengeSent", "InvalidPassword", "RequestBadFormat", "ChallengeResponseFailed",
        "AorDetail", "ContactStatusDetail", "EndpointDetail", "AuthDetail", "TransportDetail",
        "NewConnectedLine", "MessageWaiting", "DeviceStateListComplete",
    }
)
# A Newexten is noise except when a caller reaches voicemail (a missed call's reason).
_VOICEMAIL_MARK = "\nApplication: VoiceMail"
_BANNER = "Asterisk Call Manager/"


@dataclass(frozen=True, slots=True)
class Event:
    """One AMI event: its name, its `Timestamp` (epoch seconds, None when absent) and its headers.

    `headers` holds the first value of every key; `lists` holds every value of keys that repeated.
    """

    name: str
    timestamp: float | None
    headers: Mapping[str, str]
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        """The first value of header `key`, or `default`."""
        return self.headers.get(key, default)

    def get_all(self, key: str) -> tuple[str, ...]:
        """Every value of header `key`, in order (empty when absent)."""
        if key in self.lists:
            return self.lists[key]
        value = self.headers.get(key)
        return () if value is None else (value,)

    def to_json(self) -> dict[str, str | list[str]]:
        """A flat JSON-ready dict of the headers (repeated keys as lists), as JSON lines store it."""
        out: dict[str, str | list[str]] = dict(self.headers)
        for key, values in self.lists.items():
            out[key] = list(values)
        return out


# Timestamps outside [1970, 5138) cannot become datetimes: they are corrupt, not events.
_LATEST_TIMESTAMP = 1e11


def _timestamp(raw: str | None, text: str) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ParseError(f"bad Timestamp {raw!r}", text) from None
    if not 0.0 <= value < _LATEST_TIMESTAMP:  # also false for NaN
        raise ParseError(f"Timestamp out of range: {raw!r}", text)
    return value


def event_from_mapping(headers: Mapping[str, Any], text: str = "") -> Event:
    """An Event from a dict of AMI headers (a JSON line, a panoramisk Message); ParseError if invalid."""
    flat: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key, value in headers.items():
        if not isinstance(key, str):
            raise ParseError("header names must be strings", text)
        if isinstance(value, list | tuple):
            values = tuple("" if v is None else str(v) for v in value)
            if not values:
                continue
            flat[key] = values[0]
            if len(values) > 1:
                lists[key] = values
        elif isinstance(value, dict):
            raise ParseError(f"header {key!r} holds an object", text)
        else:
            flat[key] = "" if value is None else str(value)
    name = flat.get("Event", "")
    if not name:
        raise ParseError("message has no Event header", text or json.dumps(flat)[:500])
    return Event(name, _timestamp(flat.get("Timestamp"), text), flat, lists)


class AmiParser:
    """Incremental parser of raw AMI text: `feed` chunks as they arrive, `close` at end of input.

    Counters: `events` (every event seen, ignored ones included), `ignored`, `malformed` and
    `responses` (action replies such as the login response, which are not events).
    """

    def __init__(self, ignored: frozenset[str] = IGNORED_EVENTS) -> None:
        self._ignored = ignored
        self._buffer = ""
        self.events = 0
        self.ignored = 0
        self.malformed = 0
        self.responses = 0

    def feed(self, text: str) -> list[Event | ParseError]:
        """Parse every complete message in `text` (plus what earlier calls left pending)."""
        data = self._buffer + text if self._buffer else text
        if "\r" in data:
            # A CR at the very end may be half of a CRLF split across chunks: keep it for later.
            tail = "\r" if data.endswith("\r") else ""
            data = (data[:-1] if tail else data).replace("\r\n", "\n")
        else:
            tail = ""
        end = data.rfind("\n\n")
        if end < 0:
            self._buffer = data + tail
            return []
        self._buffer = data[end + 2 :] + tail
        out: list[Event | ParseError] = []
        ignored = self._ignored
        skipped = 0
        for block in data[:end].split("\n\n"):
            # Most messages are noise: recognise them from the first line, inline (no call).
            if block.startswith("Event: "):
                name = block[7 : block.find("\n")]
                if name in ignored and (name != "Newexten" or _VOICEMAIL_MARK not in block):
                    skipped += 1
                    continue
            if block:
                self._parse(block, out)
        self.events += skipped
        self.ignored += skipped
        return out

    def close(self) -> list[Event | ParseError]:
        """Parse what is left at end of input (a last message without its blank line)."""
        rest, self._buffer = self._buffer.replace("\r\n", "\n").strip("\n"), ""
        out: list[Event | ParseError] = []
        if rest:
            self._parse(rest, out)
        return out

    def parse_message(self, text: str) -> Event | None:
        """Parse one whole message; None when it is ignored or not an event, ParseError if malformed."""
        out: list[Event | ParseError] = []
        self._parse(text.replace("\r\n", "\n").strip("\n"), out)
        if not out:
            return None
        if isinstance(out[0], ParseError):
            raise out[0]
        return out[0]

    def _parse(self, block: str, out: list[Event | ParseError]) -> None:
        if not block or block[0] == "\n":
            block = block.lstrip("\n")
            if not block:
                return
        if block.startswith("Event: "):
            newline = block.find("\n")
            name = block[7:newline] if newline > 0 else block[7:]
            if name in self._ignored and not (name == "Newexten" and _VOICEMAIL_MARK in block):
                self.events += 1
                self.ignored += 1
                return
        elif block.startswith(_BANNER):
            # The banner line is glued to the first reply (no blank line between them).
            block = block.partition("\n")[2]
            if not block:
                return
            self._parse(block, out)
            return
        lines = block.split("\n")
        try:
            headers: dict[str, str] = dict([line.split(": ", 1) for line in lines])
        except ValueError:
            headers = {}
        lists: dict[str, tuple[str, ...]] = {}
        if len(headers) != len(lines):
            try:
                headers, lists = self._slow_split(lines, block)
            except ParseError as exc:
                self.malformed += 1
                out.append(exc)
                return
        kind = headers.get("Event")
        if kind is None:
            if "Response" in headers:
                self.responses += 1
                return
            self.malformed += 1
            out.append(ParseError("message has no Event or Response header", block))
            return
        self.events += 1
        if kind in self._ignored and not (kind == "Newexten" and headers.get("Application") == "VoiceMail"):
            self.ignored += 1
            return
        if not kind:
            self.malformed += 1
            out.append(ParseError("empty Event name", block))
            return
        try:
            timestamp = _timestamp(headers.get("Timestamp"), block)
        except ParseError as exc:
            self.malformed += 1
            out.append(exc)
            return
        out.append(Event(kind, timestamp, headers, lists))

    @staticmethod
    def _slow_split(lines: list[str], block: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        # Rare path: repeated keys, `Key:` with no space, blank lines inside a message.
        headers: dict[str, str] = {}
        lists: dict[str, list[str]] = {}
        for line in lines:
            if not line:
                continue
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key:
                raise ParseError(f"line without 'Key: Value': {line[:80]!r}", block)
            if value.startswith(" "):
                value = value[1:]
            if key in headers:
                lists.setdefault(key, [headers[key]]).append(value)
            else:
                headers[key] = value
        return headers, {k: tuple(v) for k, v in lists.items()}


class JsonLinesParser:
    """Incremental parser of JSON lines, one flat object of AMI headers per line."""

    def __init__(self, ignored: frozenset[str] = IGNORED_EVENTS) -> None:
        self._ignored = ignored
        self._buffer = ""
        self.events = 0
        self.ignored = 0
        self.malformed = 0
        self.responses = 0

    def feed(self, text: str) -> list[Event | ParseError]:
        """Parse every complete line in `text`."""
        data = self._buffer + text
        end = data.rfind("\n")
        if end < 0:
            self._buffer = data
            return []
        self._buffer = data[end + 1 :]
        out: list[Event | ParseError] = []
        for line in data[:end].split("\n"):
            self._parse(line, out)
        return out

    def close(self) -> list[Event | ParseError]:
        """Parse a last line without its newline."""
        rest, self._buffer = self._buffer, ""
        out: list[Event | ParseError] = []
        self._parse(rest, out)
        return out

    def _parse(self, line: str, out: list[Event | ParseError]) -> None:
        line = line.strip()
        if not line:
            return
        try:
            raw = json.loads(line)
        except ValueError as exc:
            self.malformed += 1
            out.append(ParseError(f"not JSON: {exc}", line))
            return
        if not isinstance(raw, dict):
            self.malformed += 1
            out.append(ParseError("a JSON line must hold one object", line))
            return
        if "Event" not in raw and "Response" in raw:
            self.responses += 1
            return
        try:
            event = event_from_mapping(raw, line)
        except ParseError as exc:
            self.malformed += 1
            out.append(exc)
            return
        self.events += 1
        if event.name in self._ignored and not (
            event.name == "Newexten" and event.get("Application") == "VoiceMail"
        ):
            self.ignored += 1
            return
        out.append(event)


Parser = AmiParser | JsonLinesParser
