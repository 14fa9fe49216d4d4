"""A finished call's state -> its CallRecord: numbers, direction, status, missed reason, segments."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.callstate import DIAL_OUTCOMES, Call
from ingest.config import SystemConfig
from ingest.numbers import normalize_number
from ingest.records import CallRecord, Direction, Reason, RingAttempt, Segment, Status

# What the last ring says about a call nobody answered.
_MISSED_BY_OUTCOME: dict[str, Reason] = {
    "cancelled": "abandoned",
    "no_answer": "no_answer",
    "answered_elsewhere": "no_answer",
    "busy": "busy",
    "rejected": "rejected",
    "failed": "failed",
    "answered": "unknown",
}
# Hangup causes of the caller's own channel that mean the network failed the call.
_FAILURE_CAUSES = frozenset({"1", "3", "27", "34", "38", "41", "42", "44", "47", "58", "88"})


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def numbers(call: Call, direction: Direction) -> tuple[str, str, str]:
    """(caller, callee, caller name) as the outside world sees them: the DID or the dialled number."""
    first = call.first
    if first is None:
        return "", "", ""
    if direction == "incoming":
        return first.caller, first.exten, first.caller_name
    caller = first.extension or first.caller
    callee = first.exten
    if not callee and direction == "outgoing":
        leg = call.trunk_leg
        callee = call.dialled or (leg.exten or leg.caller if leg is not None else "")
    elif not callee:
        callee = call.dialled or next((a.extension for a in call.attempts.values()), "")
    return caller, callee, first.caller_name


def reason(call: Call, direction: Direction) -> Reason:
    """Why nobody answered: abandoned, no answer, busy, rejected, failed, voicemail or IVR."""
    if direction == "incoming" and call.voicemail:
        return "voicemail"
    if direction == "outgoing" and call.trunk_status:
        outcome = DIAL_OUTCOMES.get(call.trunk_status, "failed")
        # Outgoing calls are never "abandoned": the far end did not answer in time.
        return "no_answer" if outcome in ("cancelled", "answered") else _MISSED_BY_OUTCOME[outcome]
    if call.abandoned:
        return "abandoned"
    ended = [a for a in call.attempts.values() if a.outcome is not None]
    if ended:
        last = max(ended, key=lambda a: a.end if a.end is not None else a.start)
        assert last.outcome is not None
        if call.queue and last.outcome == "cancelled":
            # A queue cancels its members when it times out; a caller quitting is QueueCallerAbandon.
            return "no_answer"
        why = _MISSED_BY_OUTCOME[last.outcome]
        return "no_answer" if why == "abandoned" and direction != "incoming" else why
    if call.queue:
        return "no_answer"
    if direction == "incoming" and call.pbx_answered:
        return "ivr"
    cause = call.first.cause if call.first is not None else ""
    if cause == "17":
        return "busy"
    if cause == "21":
        return "rejected"
    if cause in _FAILURE_CAUSES:
        return "failed"
    return "abandoned" if direction == "incoming" else "no_answer"


def build_record(call: Call, system: SystemConfig, *, recovered: bool = False) -> CallRecord:
    """The CallRecord of `call`; turns and rings still open end at the call's last event."""
    start, end = call.start, max(call.start, call.last)

    def clamp(t: float) -> float:
        # Out-of-order events must not put a segment outside its call.
        return min(max(t, start), end)

    segments = tuple(
        Segment(
            extension=turn.extension,
            began_by=turn.began_by,
            ring_start=_when(clamp(turn.ring_start)) if turn.ring_start is not None else None,
            answer=_when(clamp(turn.answer)),
            end=_when(clamp(max(turn.answer, turn.end if turn.end is not None else end))),
            channel=turn.channel,
        )
        for turn in call.segments
    )
    rang = tuple(
        RingAttempt(
            extension=a.extension,
            start=_when(clamp(a.start)),
            end=_when(clamp(a.end if a.end is not None else end)),
            outcome=a.outcome or "cancelled",
        )
        for a in sorted(call.attempts.values(), key=lambda a: a.start)
    )
    direction = call.direction
    status: Status = "answered" if segments else "missed" if direction == "incoming" else "unanswered"
    caller, callee, caller_name = numbers(call, direction)
    outside = caller if direction == "incoming" else callee if direction == "outgoing" else None
    extra: dict[str, object] = {"queue": call.queue} if call.queue else {}
    return CallRecord(
        system=system.name,
        call_id=call.call_id,
        direction=direction,
        status=status,
        reason=None if segments else reason(call, direction),
        caller=caller,
        callee=callee,
        start=_when(start),
        end=_when(end),
        answer=segments[0].answer if segments else None,
        caller_name=caller_name or None,
        external_number=normalize_number(outside, system) if outside else None,
        linkedids=tuple(call.linkedids),
        segments=segments,
        rang=rang,
        recovered=recovered,
        extra=extra,
    )
