"""Recorded AMI traces as an endless stream of events, for the fake Asterisk.

A trace is an `ami.log` as recorded (banner, login reply, events). Looping a trace N times needs
fresh call identities each time, or the daemon would see the same call N times: every
`*Uniqueid`/`*Linkedid` value is rewritten per loop (the epoch part shifted, the sequence part
offset) and every `Timestamp` shifted by the loop's time offset, or set to the sending time when
`restamp` is on (a live PBX stamps events as it emits them).

`ChannelTracker` follows the channels the stream has created and not yet hung up, so the fake
server can answer `CoreShowChannels` the way Asterisk does.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_ID_KEY = re.compile(r"(?i)(uniqueid|linkedid)$")
_ID_VALUE = re.compile(r"^(\d+)\.(\d+)$")
# Offsets a loop adds to an id's sequence part: far above any counter in one recording.
_SEQUENCE_STRIDE = 1_000_000


def read_blocks(path: Path) -> list[str]:
    """The event messages of a recorded `ami.log`, verbatim, without their blank line."""
    text = path.read_bytes().decode("utf-8")
    blocks = [b.strip("\r\n") for b in text.split("\r\n\r\n")]
    return [b for b in blocks if b.startswith("Event: ")]


@dataclass(frozen=True, slots=True)
class _Template:
    """One message with its ids and timestamp cut out, ready to render for any loop."""

    name: str
    parts: tuple[str, ...]  # literal text around the holes
    holes: tuple[tuple[str, int, int, float], ...]  # (kind "id"|"ts", epoch, sequence, timestamp)


def _template(block: str, caller_names: Mapping[str, str]) -> _Template:
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
    parts: list[str] = []
    holes: list[tuple[str, int, int, float]] = []
    literal: list[str] = []
    for line in lines:
        key, sep, value = line.partition(": ")
        id_match = _ID_VALUE.match(value) if sep and _ID_KEY.search(key) else None
        if id_match:
            literal.append(key + sep)
            parts.append("\r\n".join(literal))
            literal = [""]
            holes.append(("id", int(id_match.group(1)), int(id_match.group(2)), 0.0))
        elif sep and key == "Timestamp":
            literal.append(key + sep)
            parts.append("\r\n".join(literal))
            literal = [""]
            holes.append(("ts", 0, 0, float(value)))
        else:
            literal.append(line)
    parts.append("\r\n".join(literal))
    return _Template(lines[0][len("Event: "):], tuple(parts), tuple(holes))


class TraceStream:
    """Events of one or more traces, looped `loops` times with fresh ids each loop."""

    def __init__(
        self,
        traces: Sequence[Path],
        *,
        loops: int = 1,
        restamp: bool = False,
        caller_names: Mapping[str, str] | None = None,
    ) -> None:
        self.templates: list[_Template] = []
        for trace in traces:
            path = trace / "ami.log" if trace.is_dir() else trace
            self.templates.extend(_template(b, caller_names or {}) for b in read_blocks(path))
        stamps = [h[3] for t in self.templates for h in t.holes if h[0] == "ts"]
        self.first_timestamp = min(stamps) if stamps else 0.0
        # A loop starts one second after the previous one ends, so calls never overlap.
        self.period = math.ceil(max(stamps) - self.first_timestamp) + 1 if stamps else 1
        self.loops = loops
        self.restamp = restamp

    def __len__(self) -> int:
        return len(self.templates) * self.loops

    def render(self, template: _Template, loop: int, now: float | None = None) -> str:
        """The text of `template` for loop number `loop` (0 leaves it as recorded)."""
        if not template.holes:
            return template.parts[0]
        shift = loop * self.period
        out = [template.parts[0]]
        for (kind, epoch, sequence, stamp), text in zip(template.holes, template.parts[1:], strict=True):
            if kind == "id":
                out.append(f"{epoch + shift}.{sequence + loop * _SEQUENCE_STRIDE}" if loop else f"{epoch}.{sequence}")
            elif now is not None:
                out.append(f"{now:.6f}")
            else:
                out.append(f"{stamp + shift:.6f}")
            out.append(text)
        return "".join(out)

    def events(self) -> Iterator[tuple[float, str]]:
        """(recorded time shifted by loop, message text) for every event of every loop."""
        for loop in range(self.loops):
            shift = loop * self.period
            for template in self.templates:
                stamp = next((h[3] for h in template.holes if h[0] == "ts"), self.first_timestamp)
                now = time.time() if self.restamp else None
                yield stamp + shift, self.render(template, loop, now)


_SNAPSHOT_KEYS = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
    "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid",
)


class ChannelTracker:
    """The channels alive after the events seen so far, as `CoreShowChannels` lists them."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, str]] = {}
        self._created: dict[str, float] = {}

    def see(self, text: str, stamp: float) -> None:
        """Update the channel table with one event."""
        if "\r\nUniqueid: " not in text:
            return
        headers = dict(line.split(": ", 1) for line in text.split("\r\n") if ": " in line)
        name = headers.get("Event", "")
        uniqueid = headers.get("Uniqueid", "")
        if name == "Hangup":
            self.channels.pop(uniqueid, None)
            self._created.pop(uniqueid, None)
            return
        channel = self.channels.get(uniqueid)
        if channel is None:
            if name != "Newchannel":
                return
            channel = self.channels[uniqueid] = {"BridgeId": "", "Application": "", "ApplicationData": ""}
            self._created[uniqueid] = stamp
        channel.update({k: headers[k] for k in _SNAPSHOT_KEYS if k in headers})
        if name == "BridgeEnter":
            channel["BridgeId"] = headers.get("BridgeUniqueid", "")
        elif name == "BridgeLeave":
            channel["BridgeId"] = ""
        elif name == "Newexten":
            channel["Application"] = headers.get("Application", "")
            channel["ApplicationData"] = headers.get("AppData", "")

    def reply(self, action_id: str, now: float) -> str:
        """The full CoreShowChannels answer (response, one event per channel, completion)."""
        out = [
            f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n"
            "Message: Channels will follow\r\n\r\n"
        ]
        for uniqueid, channel in self.channels.items():
            seconds = max(0, int(now - self._created.get(uniqueid, now)))
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            fields = "".join(f"{k}: {v}\r\n" for k, v in channel.items())
            out.append(f"Event: CoreShowChannel\r\nActionID: {action_id}\r\n{fields}Duration: {duration}\r\n\r\n")
        out.append(
            f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
            f"ListItems: {len(self.channels)}\r\n\r\n"
        )
        return "".join(out)
