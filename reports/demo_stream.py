"""The demo's AMI traffic: the shipped recorded traces, copied into months of calls.

Each copy of a trace is one call of the demo, placed at a working-hours time of a past day in
Tehran: its `Timestamp`s are shifted there, and every `Uniqueid`/`Linkedid` gets an epoch part
of its own (`DEMO_EPOCH + copy number`, the recorded sequence part kept), so copies never share a
call. The ids depend only on the copy number, never on the date, so running the demo again
stores the same calls again (the store's upsert replaces them) instead of adding new ones.
Copies are written one after another in time order and never overlap, which keeps channel
names and bridge ids (left as recorded) unique among the channels alive at any moment.
The events the AMI user of `deploy/manager.conf.snippet` would never receive are left out
(`FILTERED`), as a production PBX set up by the README sends them.

The mix favours answered incoming calls, as in a real call centre, and still has every
scenario: transfers, queues, ring groups, IVR, missed, busy, outgoing and internal calls.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.errors import InputFileError
from ingest.testing.trace_stream import FILTERED

DEMO_EPOCH = 1_600_000_000
ZONE = ZoneInfo("Asia/Tehran")
# Weight of each shipped trace in the mix (folder name -> relative share).
MIX: dict[str, int] = {
    "01_inbound_answered": 26, "02_inbound_noanswer": 5, "03_inbound_abandoned": 6, "04_inbound_busy": 3,
    "05_outbound_answered": 12, "06_outbound_noanswer": 4, "07_internal": 5, "08_blind_transfer": 8,
    "09_attended_transfer": 6, "11_queue_ringall": 6, "12_ring_group": 6, "16_ivr_abandon": 4,
    "local-11_queue_ringall": 5, "local-12_ring_group": 4,
}
_ID_KEY = re.compile(r"(?i)(uniqueid|linkedid)$")
_ID_VALUE = re.compile(r"^(\d+)\.(\d+)$")
# Working hours of the demo call centre (local time) and the least gap between two calls.
_OPENS, _CLOSES = 8 * 3600, 17 * 3600
_GAP = 90.0


def traces_dir() -> Path:
    """The folder of the shipped traces (inside the installed package)."""
    folder = Path(str(resources.files("reports").joinpath("demo_data", "traces")))
    if not folder.is_dir():
        raise InputFileError("the demo's recorded traces are not installed (reinstall calltrail)",
                             path=str(folder))
    return folder


@dataclass(frozen=True)
class Trace:
    """One recorded scenario: its event messages cut around their ids and times, and its calls."""

    name: str
    # Per message: literal text pieces, and between each two pieces a hole: a Timestamp (its
    # recorded value) or an id (its recorded sequence part).
    templates: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...]
    calls: tuple[dict[str, Any], ...]
    first_timestamp: float


def _template(message: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    parts: list[str] = []
    holes: list[tuple[str, str]] = []
    literal: list[str] = []
    for line in message.split("\r\n"):
        key, sep, value = line.partition(": ")
        id_match = _ID_VALUE.match(value) if sep and _ID_KEY.search(key) else None
        if sep and (key == "Timestamp" or id_match):
            literal.append(key + sep)
            parts.append("\r\n".join(literal))
            literal = [""]
            holes.append(("ts", value) if key == "Timestamp" else ("id", value.partition(".")[2]))
        else:
            literal.append(line)
    parts.append("\r\n".join(literal))
    return tuple(parts), tuple(holes)


def load_traces(folder: Path | None = None) -> list[Trace]:
    """Every shipped trace, in folder-name order, without the events our AMI user never receives."""
    root = folder or traces_dir()
    traces = []
    for directory in sorted(p for p in root.iterdir() if (p / "ami.log").is_file()):
        text = (directory / "ami.log").read_bytes().decode("utf-8")
        messages = [m.strip("\r\n") for m in text.split("\r\n\r\n")]
        kept = [m for m in messages if m.startswith("Event: ") and m[7:].partition("\r")[0] not in FILTERED]
        templates = tuple(_template(m) for m in kept)
        stamps = [float(v) for _, holes in templates for kind, v in holes if kind == "ts"]
        if not stamps:
            raise InputFileError("a trace without Timestamp headers", path=str(directory / "ami.log"))
        expected = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
        traces.append(Trace(directory.name, templates, tuple(expected["calls"]), min(stamps)))
    if not traces:
        raise InputFileError("no recorded traces found", path=str(root))
    return traces


@dataclass(frozen=True)
class DemoCall:
    """One call of the demo: which trace, which copy, when it starts."""

    copy: int
    trace: Trace
    start: datetime

    def call_id(self, recorded: str) -> str:
        """The demo's id for a recorded Uniqueid/Linkedid."""
        return f"{DEMO_EPOCH + self.copy}.{recorded.rpartition('.')[2]}"


def schedule(traces: Sequence[Trace], calls: int, first_day: date, last_day: date, seed: int = 1405) -> list[DemoCall]:
    """`calls` copies of `traces` (weighted by MIX) at working hours between the two days, in time order."""
    if last_day < first_day:
        raise ValueError("the demo's period ends before it starts")
    rng = random.Random(seed)
    by_name = {t.name: t for t in traces}
    names = [n for n in MIX if n in by_name] or list(by_name)
    weights = [MIX.get(n, 1) for n in names]
    # Every scenario at least once, then the weighted mix; the order is shuffled by time below.
    picks = names[: min(calls, len(names))] + rng.choices(names, weights, k=max(0, calls - len(names)))
    days = [first_day + timedelta(days=d) for d in range((last_day - first_day).days + 1)]
    # Friday is the weekend in Iran, Thursday a half day: fewer calls there.
    day_weights = [0.15 if d.weekday() == 4 else 0.5 if d.weekday() == 3 else 1.0 for d in days]
    starts: list[datetime] = []
    for _ in picks:
        day = rng.choices(days, day_weights)[0]
        second = rng.uniform(_OPENS, _CLOSES)
        starts.append(datetime.combine(day, time(), ZONE) + timedelta(seconds=second))
    starts.sort()
    for i in range(1, len(starts)):
        # Keep copies apart, so one call's channels are gone before the next one's appear.
        starts[i] = max(starts[i], starts[i - 1] + timedelta(seconds=_GAP))
    rng.shuffle(picks)
    return [DemoCall(i, by_name[name], start.astimezone(UTC)) for i, (name, start) in enumerate(zip(picks, starts,
                                                                                                  strict=True))]


def messages(call: DemoCall) -> Iterator[str]:
    """The copy's event messages: ids made its own, timestamps moved to its start."""
    shift = call.start.timestamp() - call.trace.first_timestamp
    epoch = DEMO_EPOCH + call.copy
    for parts, holes in call.trace.templates:
        out = [parts[0]]
        for (kind, value), text in zip(holes, parts[1:], strict=True):
            out.append(f"{float(value) + shift:.6f}" if kind == "ts" else f"{epoch}.{value}")
            out.append(text)
        yield "".join(out)


def write_stream(calls: Sequence[DemoCall], path: Path) -> int:
    """Write every copy's messages as one AMI trace file (CRLF, blank line after each); returns the count."""
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as out:
        for call in calls:
            for message in messages(call):
                out.write(message + "\r\n\r\n")
                count += 1
    return count


def expected_calls(calls: Sequence[DemoCall]) -> dict[str, dict[str, Any]]:
    """Call id -> the trace's expected.json entry for it (direction, answered, agents, transfers)."""
    expected: dict[str, dict[str, Any]] = {}
    for call in calls:
        for entry in call.trace.calls:
            expected[call.call_id(entry["observed"]["linkedid"])] = entry
    return expected
