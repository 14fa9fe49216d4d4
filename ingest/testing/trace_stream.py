"""Recorded AMI traces as an endless stream of events, for the fake Asterisk.

A trace is an `ami.log` as recorded (banner, login reply, events). Looping a trace N times needs
fresh call identities each time, or the daemon would see the same call N times: every
`*Uniqueid`/`*Linkedid` value is rewritten per loop (the epoch part shifted, the sequence part
offset) and every `Timestamp` shifted by the loop's time offset, or set to the sending time when
`restamp` is on (a live PBX stamps events as it emits them).

The stream must never be what a benchmark measures, so each message is compiled once into a bytes
%-format whose slots index one list of values per loop (its ids, formatted once per loop, and the
timestamps): rendering an event is one `%` and one `itemgetter` call.

`ChannelTracker` follows the channels the stream has created and not yet hung up, so the fake
server can answer `CoreShowChannels` the way Asterisk does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

_ID_KEY = re.compile(r"(?i)(uniqueid|linkedid)$")
_ID_VALUE = re.compile(r"^(\d+)\.(\d+)$")
# Offsets a loop adds to an id's sequence part: far above any counter in one recording.
_SEQUENCE_STRIDE = 1_000_000
# What the AMI user of deploy/manager.conf.snippet never receives: its event filters drop these, and
# its read classes (call, agent, dialplan, system) leave out cdr, cel and security events.
FILTERED = frozenset({
    "VarSet", "RTCPSent", "RTCPReceived", "DeviceStateChange", "DialState", "NewConnectedLine", "HangupRequest",
    "SoftHangupRequest", "Cdr", "CEL", "SuccessfulAuth",
})
NOW = 0  # the slot of the sending time (restamp), in every loop's values


def read_blocks(path: Path) -> list[str]:
    """The event messages of a recorded `ami.log`, verbatim, without their blank line."""
    text = path.read_bytes().decode("utf-8")
    blocks = [b.strip("\r\n") for b in text.split("\r\n\r\n")]
    return [b for b in blocks if b.startswith("Event: ")]


@dataclass(frozen=True, slots=True)
class Template:
    """One message compiled to a bytes %-format (ending in its blank line) and the slots it fills."""

    name: str
    fmt: bytes
    slots: Callable[[list[bytes]], tuple[bytes, ...]]
    stamp: float | None  # recorded Timestamp
    uniqueid: int | str | None  # the channel it is about: a slot, or a value not rewritten

    def render(self, values: list[bytes]) -> bytes:
        """The message, blank line included, with the ids and times of `values`."""
        return self.fmt % self.slots(values)


def _getter(indexes: list[int]) -> Callable[[list[bytes]], tuple[bytes, ...]]:
    if not indexes:
        return lambda values: ()
    if len(indexes) == 1:
        index = indexes[0]
        return lambda values: (values[index],)
    return itemgetter(*indexes)


class TraceStream:
    """Events of one or more traces, looped `loops` times with fresh ids each loop."""

    def __init__(
        self,
        traces: Sequence[Path],
        *,
        loops: int = 1,
        restamp: bool = False,
        caller_names: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        self.loops = loops
        self.restamp = restamp
        self._ids: dict[tuple[int, int], int] = {}  # (epoch, sequence) -> slot
        self._stamps: dict[float, int] = {}  # recorded timestamp -> slot (when not restamped)
        self.templates: list[Template] = []
        for trace in traces:
            path = trace / "ami.log" if trace.is_dir() else trace
            for block in read_blocks(path):
                if block[len("Event: "):].partition("\r\n")[0] not in exclude:
                    self.templates.append(self._compile(block, caller_names or {}))
        stamps = [t.stamp for t in self.templates if t.stamp is not None]
        self.first_timestamp = min(stamps) if stamps else 0.0
        # A loop starts one second after the previous one ends, so calls never overlap.
        self.period = math.ceil(max(stamps) - self.first_timestamp) + 1 if stamps else 1

    def _compile(self, block: str, caller_names: Mapping[str, str]) -> Template:
        lines = block.split("\r\n")
        if caller_names:
            numbers = {line[len("CallerIDNum: "):] for line in lines if line.startswith("CallerIDNum: ")}
            for number in numbers & set(caller_names):
                lines = [
                    f"CallerIDName: {caller_names[number]}"
                    if line in ("CallerIDName: <unknown>", "CallerIDName: ")
                    else line
                    for line in lines
                ]
        out: list[str] = []
        indexes: list[int] = []
        stamp: float | None = None
        uniqueid: int | str | None = None
        for position, line in enumerate(lines):
            key, sep, value = line.partition(": ")
            id_match = _ID_VALUE.match(value) if sep and _ID_KEY.search(key) else None
            if id_match:
                ident = (int(id_match.group(1)), int(id_match.group(2)))
                slot = self._ids.setdefault(ident, 1 + len(self._ids) + len(self._stamps))
                out.append(f"{key}: %b")
                indexes.append(slot)
                if key == "Uniqueid" and position:
                    uniqueid = slot
            elif sep and key == "Timestamp":
                stamp = float(value)
                slot = NOW if self.restamp else self._stamps.setdefault(stamp, 1 + len(self._ids) + len(self._stamps))
                out.append("Timestamp: %b")
                indexes.append(slot)
            else:
                if key == "Uniqueid" and sep and position:
                    uniqueid = value
                out.append(line.replace("%", "%%"))
        fmt = ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")
        return Template(lines[0][len("Event: "):], fmt, _getter(indexes), stamp, uniqueid)

    def __len__(self) -> int:
        return len(self.templates) * self.loops

    def values(self, loop: int) -> list[bytes]:
        """The slot values of loop number `loop` (0 keeps the recorded ids); slot NOW is the caller's."""
        shift = loop * self.period
        values = [b""] * (1 + len(self._ids) + len(self._stamps))
        for (epoch, sequence), slot in self._ids.items():
            text = f"{epoch + shift}.{sequence + loop * _SEQUENCE_STRIDE}" if loop else f"{epoch}.{sequence}"
            values[slot] = text.encode()
        for stamp, slot in self._stamps.items():
            values[slot] = f"{stamp + shift:.6f}".encode()
        return values

    def stamp(self, template: Template, loop: int) -> float:
        """The recorded time of `template` shifted to loop `loop` (pacing of time-compressed replays)."""
        return (self.first_timestamp if template.stamp is None else template.stamp) + loop * self.period

    def messages(self, now: float = 0.0) -> Iterator[bytes]:
        """Every message of every loop (restamped ones all stamped `now`), blank line included."""
        stamp = f"{now:.6f}".encode()
        for loop in range(self.loops):
            values = self.values(loop)
            values[NOW] = stamp
            for template in self.templates:
                yield template.render(values)


_SNAPSHOT_KEYS = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
    "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid",
)


class ChannelTracker:
    """The channels alive after the events seen so far, as `CoreShowChannels` lists them.

    `see` only files each event's text under its channel (it runs for every event streamed); the
    texts are parsed when `reply` is asked for, which is rare.
    """

    def __init__(self) -> None:
        self._events: dict[bytes | str, list[bytes]] = {}
        self._created: dict[bytes | str, float] = {}

    def see(self, name: str, uniqueid: bytes | str, message: bytes, stamp: float) -> None:
        """Update the channel table with one event about channel `uniqueid`."""
        if name == "Hangup":
            if self._events.pop(uniqueid, None) is not None:
                del self._created[uniqueid]
            return
        events = self._events.get(uniqueid)
        if events is not None:
            events.append(message)
        elif name == "Newchannel":
            self._events[uniqueid] = [message]
            self._created[uniqueid] = stamp

    def _snapshots(self) -> list[tuple[str, dict[str, str], float]]:
        out = []
        for uniqueid, messages in self._events.items():
            channel = {"BridgeId": "", "Application": "", "ApplicationData": ""}
            for message in messages:
                lines = message.decode("utf-8").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines if ": " in line)
                name = headers.get("Event", "")
                channel.update({k: headers[k] for k in _SNAPSHOT_KEYS if k in headers})
                if name == "BridgeEnter":
                    channel["BridgeId"] = headers.get("BridgeUniqueid", "")
                elif name == "BridgeLeave":
                    channel["BridgeId"] = ""
                elif name == "Newexten":
                    channel["Application"] = headers.get("Application", "")
                    channel["ApplicationData"] = headers.get("AppData", "")
            key = uniqueid.decode() if isinstance(uniqueid, bytes) else uniqueid
            out.append((key, channel, self._created[uniqueid]))
        return out

    @property
    def channels(self) -> dict[str, dict[str, str]]:
        """Uniqueid -> the channel's CoreShowChannel fields, from the events seen about it."""
        return {uniqueid: channel for uniqueid, channel, _ in self._snapshots()}

    def reply(self, action_id: str, now: float) -> str:
        """The full CoreShowChannels answer (response, one event per channel, completion)."""
        out = [
            f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n"
            "Message: Channels will follow\r\n\r\n"
        ]
        snapshots = self._snapshots()
        for _, channel, created in snapshots:
            seconds = max(0, int(now - created))
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            fields = "".join(f"{k}: {v}\r\n" for k, v in channel.items())
            out.append(f"Event: CoreShowChannel\r\nActionID: {action_id}\r\n{fields}Duration: {duration}\r\n\r\n")
        out.append(
            f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
            f"ListItems: {len(snapshots)}\r\n\r\n"
        )
        return "".join(out)
