"""CallRecord and Segment: the contract shared by the assembler, the writer and the reports.

A record is immutable and complete: everything the database and the report need about one call.
Times are timezone-aware UTC datetimes. Derived figures (agents, transfer count, wait, talk,
duration) are properties computed from the segments, so they can never disagree with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Direction = Literal["incoming", "outgoing", "internal"]
Status = Literal["answered", "missed", "unanswered"]
# Why a call was not answered. None for answered calls.
Reason = Literal[
    "abandoned", "no_answer", "busy", "rejected", "failed", "voicemail", "ivr", "unknown"
]
# How a segment (a turn) began.
SegmentStart = Literal["answered", "queue", "blind_transfer", "attended_transfer", "pickup"]
# What became of one ring attempt on an extension.
RingOutcome = Literal[
    "answered", "no_answer", "busy", "cancelled", "answered_elsewhere", "rejected", "failed"
]

DIRECTIONS: tuple[str, ...] = ("incoming", "outgoing", "internal")
STATUSES: tuple[str, ...] = ("answered", "missed", "unanswered")
REASONS: tuple[str, ...] = (
    "abandoned", "no_answer", "busy", "rejected", "failed", "voicemail", "ivr", "unknown"
)
SEGMENT_STARTS: tuple[str, ...] = ("answered", "queue", "blind_transfer", "attended_transfer", "pickup")
RING_OUTCOMES: tuple[str, ...] = (
    "answered", "no_answer", "busy", "cancelled", "answered_elsewhere", "rejected", "failed"
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Segment:
    """One turn: one agent (or, for outgoing calls, the far party) connected to the caller."""

    extension: str
    began_by: SegmentStart
    ring_start: datetime | None
    answer: datetime
    end: datetime
    channel: str = ""

    @property
    def talk_seconds(self) -> float:
        """Seconds connected in this turn."""
        return max(0.0, (self.end - self.answer).total_seconds())

    @property
    def ring_seconds(self) -> float:
        """Seconds this turn's extension rang before answering (0 when unknown)."""
        if self.ring_start is None:
            return 0.0
        return max(0.0, (self.answer - self.ring_start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "extension": self.extension,
            "began_by": self.began_by,
            "ring_start": _iso(self.ring_start),
            "answer": _iso(self.answer),
            "end": _iso(self.end),
            "talk_seconds": round(self.talk_seconds, 3),
            "channel": self.channel,
        }


@dataclass(frozen=True, slots=True)
class RingAttempt:
    """One extension ringing for this call, and how it ended."""

    extension: str
    start: datetime
    end: datetime | None
    outcome: RingOutcome

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "extension": self.extension,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished call, as stored and reported.

    `call_id` is the Linkedid of the call's first channel (for a merged attended transfer, the
    older of the two). `linkedids` lists every Linkedid that was merged into this call.
    `caller`/`callee` are the outside-facing numbers as seen on the wire (the DID or the dialled
    number, never `s`); `external_number` is the outside party's number in E.164, None for
    internal calls or when it cannot be normalised.
    """

    system: str
    call_id: str
    direction: Direction
    status: Status
    reason: Reason | None
    caller: str
    callee: str
    start: datetime
    end: datetime
    answer: datetime | None = None
    caller_name: str | None = None
    external_number: str | None = None
    linkedids: tuple[str, ...] = ()
    segments: tuple[Segment, ...] = ()
    rang: tuple[RingAttempt, ...] = ()
    # True when the call was closed by reconciliation after an AMI outage (times approximate).
    recovered: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def agents(self) -> tuple[str, ...]:
        """Extensions that answered, in order (the transfer chain)."""
        return tuple(s.extension for s in self.segments)

    @property
    def rang_extensions(self) -> tuple[str, ...]:
        """Distinct extensions that rang, in first-ring order."""
        seen: dict[str, None] = {}
        for attempt in self.rang:
            seen.setdefault(attempt.extension, None)
        return tuple(seen)

    @property
    def transfer_count(self) -> int:
        """PRODUCT.md's rule: 0 when not answered, else 1 + completed transfers that were answered."""
        if self.status != "answered":
            return 0
        return max(1, len(self.segments))

    @property
    def wait_seconds(self) -> float:
        """From the call's start to the first answer, or to the end when nobody answered."""
        until = self.answer if self.answer is not None else self.end
        return max(0.0, (until - self.start).total_seconds())

    @property
    def talk_seconds(self) -> float:
        """Sum of the segments' connected time."""
        return sum(s.talk_seconds for s in self.segments)

    @property
    def duration_seconds(self) -> float:
        """From the first channel to the last hang-up."""
        return max(0.0, (self.end - self.start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """The `replay --json` object: one finished call."""
        return {
            "system": self.system,
            "call_id": self.call_id,
            "linkedids": list(self.linkedids),
            "direction": self.direction,
            "status": self.status,
            "reason": self.reason,
            "caller": self.caller,
            "caller_name": self.caller_name,
            "callee": self.callee,
            "external_number": self.external_number,
            "agents": list(self.agents),
            "rang": list(self.rang_extensions),
            "transfer_count": self.transfer_count,
            "start": _iso(self.start),
            "answer": _iso(self.answer),
            "end": _iso(self.end),
            "wait_seconds": round(self.wait_seconds, 3),
            "talk_seconds": round(self.talk_seconds, 3),
            "duration_seconds": round(self.duration_seconds, 3),
            "recovered": self.recovered,
            "segments": [s.to_json() for s in self.segments],
            "ring_attempts": [r.to_json() for r in self.rang],
        }
