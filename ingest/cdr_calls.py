"""One call from its CDR rows (and CEL events, when given): direction, status, agents, transfers.

Pure functions, no IO. A CDR row is one leg between party A (`channel`) and party B
(`dstchannel`). The call's first row gives its first party; an outside first party makes it
incoming. The agents are the extensions that answered legs whose other side was the outside
party (the "anchor": the caller for incoming and internal calls, the trunk for outgoing ones),
followed through Local channel pairs. What CDRs cannot tell, CEL can:

- an attended transfer's consultation legs belong to the call (CEL LinkedID; without CEL, legs
  sharing a channel name are joined, which finds the usual `*2` feature-code transfer);
- whether a transfer was blind or attended (BLINDTRANSFER / ATTENDEDTRANSFER events);
- when a transfer target really answered (its BRIDGE_ENTER; the CDR says when the leg began);
- why a missed call ended (the caller's HANGUP dialstatus: CANCEL, NOANSWER, BUSY);
- the DID of an incoming call whose `dst` was overwritten by a transfer or is an IVR's `s`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from ingest.cdr_csv import CdrRow, CelRow
from ingest.channels import PartyRules, dialled_number, parse_channel_name
from ingest.config import SystemConfig
from ingest.numbers import normalize_number
from ingest.records import CallRecord, Direction, Reason, RingAttempt, RingOutcome, Segment, SegmentStart, Status

_CLID = re.compile(r'^\s*"?(.*?)"?\s*<([^>]*)>\s*$')
_SLACK = timedelta(seconds=1)
_DIALSTATUS_REASON: dict[str, Reason] = {
    "CANCEL": "abandoned", "NOANSWER": "no_answer", "BUSY": "busy", "CHANUNAVAIL": "failed",
    "CONGESTION": "failed",
}
_DISPOSITION_REASON: dict[str, Reason] = {
    "NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed", "CONGESTION": "failed",
}


def _row_order(row: CdrRow) -> tuple[datetime, int]:
    return row.start, row.line


def pair_of(channel: str) -> str:
    """The party a channel stands for: a Local pair's common name, else the channel itself."""
    if channel.startswith("Local/"):
        return channel.rpartition(";")[0] or channel
    return channel


@dataclass(slots=True)
class _Leg:
    """A leg joining the anchor to an agent: the CDR row, and the inner row behind a Local pair."""

    extension: str
    row: CdrRow
    agent_channel: str
    end: datetime
    inner: CdrRow | None = None
    answer: datetime | None = None
    began_by: SegmentStart = "answered"


_CACHE_LIMIT = 100_000
_T = TypeVar("_T")


def _channel_key(channel: str) -> str:
    """What of a channel name decides whom it stands for: the name without its unique suffix.

    `parse_channel_name` keeps only the endpoint (`PJSIP/101-0000002a` -> `101`, a Local pair's
    `exten@context`), so names that differ only in the suffix (and a Local pair's half) stand for
    the same party; names without a suffix are their own key.
    """
    slash = channel.find("/")
    if slash < 0:
        return channel
    if channel.startswith("Local/"):
        semi = channel.rfind(";")
        if semi >= 0:
            channel = channel[:semi]
    cut = channel.rfind("-")
    return channel[:cut] if cut > slash + 1 else channel


class _Memo(dict[str, _T]):
    """A bounded cache of `compute(key)`: a hit is a plain dict lookup, a miss computes and keeps the value."""

    def __init__(self, compute: Callable[[str], _T]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> _T:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[key] = self.compute(key)
        return value


class CallBuilder:
    """Derives CallRecords for one telephone system; keeps its party rules' caches between calls."""

    def __init__(self, system: SystemConfig) -> None:
        self.system = system
        self.rules = PartyRules(system)
        # Bounded caches of the per-leg decisions: the same phones, trunks and callers recur all day.
        self._extensions: dict[tuple[str, str, str], str | None] = {}
        self._numbers: _Memo[str | None] = _Memo(lambda number: normalize_number(number, system))
        self._names: _Memo[str | None] = _Memo(_caller_name)
        self._extension_numbers: _Memo[bool] = _Memo(self.rules.is_extension_number)

    def extension(self, channel: str, callerid: str = "", accountcode: str = "", context: str = "") -> str | None:
        """The extension `channel` stands for, or None for an outside party (or no channel)."""
        if not channel:
            return None
        source = self.system.extension_from
        candidate = "" if source == "endpoint" else callerid if source == "callerid" else accountcode
        key = (_channel_key(channel), candidate, context)
        try:
            return self._extensions[key]
        except KeyError:
            if len(self._extensions) >= _CACHE_LIMIT:
                self._extensions.clear()
            found = self._extensions[key] = self.rules.extension_of(parse_channel_name(channel), callerid,
                                                                   accountcode, context)
            return found

    def _a_party(self, row: CdrRow) -> str | None:
        return self.extension(row.channel, row.src, row.accountcode, row.dcontext)

    def is_extension_number(self, number: str) -> bool:
        """`PartyRules.is_extension_number`, cached."""
        return self._extension_numbers[number]

    def normalize(self, number: str) -> str | None:
        """`normalize_number` for this system, cached (a miss costs phonenumbers' validation)."""
        return self._numbers[number]

    def caller_name(self, clid: str) -> str | None:
        """The name part of a CDR clid (`"Name" <number>`), cached."""
        return self._names[clid]

    def build(self, rows: Sequence[CdrRow], cel: Sequence[CelRow], call_id: str,
              linkedids: tuple[str, ...]) -> CallRecord:
        """The CallRecord of one call's CDR rows (in any order) and its CEL events (maybe none)."""
        rows = sorted(rows, key=_row_order) if len(rows) > 1 else list(rows)
        root = rows[0]
        by_pair: dict[str, list[CdrRow]] = {}
        for row in rows:
            by_pair.setdefault(pair_of(row.channel), []).append(row)
        caller_extension = self._a_party(root)
        root_pair = pair_of(root.channel)
        b_parties: dict[int, tuple[str | None, CdrRow | None]] = {}  # party B of each row, worked out once
        trunk_rows = [r for r in rows if r.dstchannel and pair_of(r.channel) == root_pair
                      and self._b_party(r, by_pair, b_parties)[0] is None]
        direction: Direction
        if caller_extension is None:
            direction = "incoming"
        elif trunk_rows or (len(root.dst) > 5 and root.dst.isdigit() and not self.is_extension_number(root.dst)):
            direction = "outgoing"
        else:
            direction = "internal"
        anchor = {pair_of(trunk_rows[0].dstchannel)} if direction == "outgoing" and trunk_rows else {root_pair}
        legs, rings = self._legs(rows, anchor, by_pair, b_parties)
        events = _CelIndex(cel) if cel else _NO_EVENTS
        segments = self._segments(legs, rows, events) if legs else []
        start = root.start
        end = max([r.end for r in rows]) if len(rows) > 1 else root.end
        answer = segments[0].answer if segments else None
        status: Status = "answered" if segments else ("missed" if direction == "incoming" else "unanswered")
        reason = None if segments else self._reason(direction, root, rows, rings, trunk_rows, events)
        caller, caller_name = root.src, self.caller_name(root.clid)
        if direction == "outgoing":
            first = trunk_rows[0] if trunk_rows else root
            callee = first.dst if first.dst not in ("", "s") else dialled_number(first.lastdata)
            external = self.normalize(callee) if callee else None
        else:
            callee = self._callee(root, rows, events, direction)
            external = self.normalize(caller) if direction == "incoming" and caller else None
        # The agent who dials out does not ring: outgoing calls have no ring attempts.
        ring_attempts = self._ring_attempts(legs, rings, segments, reason) if direction != "outgoing" else []
        return CallRecord(
            system=self.system.name, call_id=call_id, direction=direction, status=status, reason=reason,
            caller=caller, callee=callee, start=start, end=end if end > start else start, answer=answer,
            caller_name=caller_name, external_number=external, linkedids=linkedids, segments=tuple(segments),
            rang=tuple(ring_attempts),
        )

    def _b_party(self, row: CdrRow, by_pair: dict[str, list[CdrRow]],
                 memo: dict[int, tuple[str | None, CdrRow | None]]) -> tuple[str | None, CdrRow | None]:
        """Party B's extension, following a Local pair to the row that dialled on from its other half."""
        found = memo.get(id(row))
        if found is None:
            found = memo[id(row)] = self._find_b_party(row, by_pair)
        return found

    def _find_b_party(self, row: CdrRow, by_pair: dict[str, list[CdrRow]]) -> tuple[str | None, CdrRow | None]:
        if not row.dstchannel:
            return None, None
        if row.dstchannel.startswith("Local/"):
            for inner in by_pair.get(pair_of(row.dstchannel), ()):
                if inner is not row and inner.dstchannel:
                    extension = self.extension(inner.dstchannel)
                    if extension is not None:
                        return extension, inner
        return self.extension(row.dstchannel), None

    def _legs(self, rows: Sequence[CdrRow], anchor: set[str], by_pair: dict[str, list[CdrRow]],
              b_parties: dict[int, tuple[str | None, CdrRow | None]]) -> tuple[list[_Leg], list[_Leg]]:
        """Answered legs between the anchor and an agent, and the legs that only rang."""
        answered: list[_Leg] = []
        rang: list[_Leg] = []
        for row in rows:
            if pair_of(row.channel) in anchor:
                extension, inner = self._b_party(row, by_pair, b_parties)
                agent_channel = inner.dstchannel if inner is not None else row.dstchannel
            elif row.dstchannel and pair_of(row.dstchannel) in anchor:
                extension, inner, agent_channel = self._a_party(row), None, row.channel
            else:
                continue
            if extension is None:
                continue
            leg = _Leg(extension, row, agent_channel, row.end, inner)
            took = row.disposition == "ANSWERED" and row.answer is not None
            if took and inner is not None and (inner.disposition != "ANSWERED" or inner.answer is None):
                took = False  # the Local half answered, the phone behind it did not
            (answered if took else rang).append(leg)
        return answered, rang

    def _segments(self, legs: list[_Leg], rows: Sequence[CdrRow], events: _CelIndex) -> list[Segment]:
        for leg in legs:
            assert leg.row.answer is not None
            leg.answer = leg.row.answer
            if leg.inner is not None and leg.inner.answer is not None:
                leg.answer = max(leg.answer, leg.inner.answer)
            if leg.row.lastapp.lower() == "queue":
                leg.began_by = "queue"
                # The caller was answered by the queue; members stop ringing when one answers.
                others = [r.end for r in rows if r.lastapp.lower() == "queue" and r.disposition != "ANSWERED"
                          and r.channel == leg.row.channel and leg.row.start <= r.end <= leg.row.end]
                if others:
                    leg.answer = max(leg.answer, max(others))
            connected = events.bridge_enter(leg.agent_channel, leg.row.start)
            if connected is not None and leg.answer <= connected <= leg.row.end:
                leg.answer = connected
        legs.sort(key=lambda leg: (leg.answer or leg.row.start, leg.row.line))
        merged: list[_Leg] = []
        for leg in legs:
            if merged and merged[-1].extension == leg.extension and leg.answer is not None \
                    and leg.answer <= merged[-1].end + _SLACK:
                merged[-1].end = max(merged[-1].end, leg.end)  # one turn written as two rows (hold, park)
                continue
            if merged:
                leg.began_by, completed = self._transfer_kind(merged[-1], leg, rows, events)
                if completed is not None and leg.answer is not None and leg.answer <= completed <= leg.end:
                    # The previous agent's turn (with the caller on hold) lasts until the transfer completes.
                    merged[-1].end = max(merged[-1].end, completed)
                    leg.answer = completed
            merged.append(leg)
        segments = []
        for leg in merged:
            assert leg.answer is not None
            ring_start = leg.inner.start if leg.inner is not None else leg.row.start
            segments.append(Segment(leg.extension, leg.began_by, min(ring_start, leg.answer), leg.answer,
                                    max(leg.end, leg.answer), leg.agent_channel))
        return segments

    def _transfer_kind(self, previous: _Leg, leg: _Leg, rows: Sequence[CdrRow],
                       events: _CelIndex) -> tuple[SegmentStart, datetime | None]:
        """How the turn after `previous` began, and when an attended transfer completed.

        CEL says it; else a consultation leg from the previous agent to the new one means an
        attended transfer, completed when that leg ended (the caller was on hold until then).
        """
        kind, when = events.transfer_by(previous.agent_channel)
        if kind is not None:
            return kind, when
        if leg.began_by == "queue":
            return "queue", None
        target = {pair_of(leg.row.dstchannel), pair_of(leg.agent_channel)}
        for row in rows:
            if row.channel == previous.agent_channel and pair_of(row.dstchannel) in target:
                return "attended_transfer", row.end
        return "blind_transfer", None

    def _reason(self, direction: Direction, root: CdrRow, rows: Sequence[CdrRow], rings: list[_Leg],
                trunk_rows: list[CdrRow], events: _CelIndex) -> Reason:
        """Why nobody answered."""
        if direction != "incoming":
            dialled = trunk_rows or [leg.row for leg in rings] or [root]
            dispositions = {r.disposition for r in dialled}
            for disposition in ("BUSY", "FAILED", "CONGESTION"):
                if dispositions == {disposition}:
                    return _DISPOSITION_REASON[disposition]
            return "no_answer"
        dialstatus = events.dialstatus(root.channel)
        if dialstatus in _DIALSTATUS_REASON and not any(r.lastapp.lower() == "voicemail" for r in rows):
            return _DIALSTATUS_REASON[dialstatus]
        if rings:
            dispositions = {leg.row.disposition for leg in rings}
            if dispositions == {"BUSY"}:
                return "busy"
            if dispositions <= {"FAILED", "CONGESTION"}:
                return "failed"
            last = max(leg.row.end for leg in rings)
            ring_rows = {id(leg.row) for leg in rings}
            after = [r for r in rows
                     if id(r) not in ring_rows and r.channel == root.channel and r.start >= last - _SLACK]
            if any(r.lastapp.lower() == "voicemail" for r in after):
                return "voicemail"
            # The dialplan went on after the ringing: the caller was still there (timeout).
            return "no_answer" if after else ("busy" if "BUSY" in dispositions else "abandoned")
        if any(r.lastapp.lower() == "voicemail" for r in rows):
            return "voicemail"
        if any(r.lastapp.lower() == "queue" for r in rows):
            return "abandoned"
        if any(r.answer is not None for r in rows):
            return "ivr"  # answered by the PBX (menu, announcement) but never by an agent
        if root.disposition in ("BUSY", "FAILED", "CONGESTION"):
            return _DISPOSITION_REASON[root.disposition]
        return "abandoned"  # the caller hung up before anything answered or rang

    def _callee(self, root: CdrRow, rows: Sequence[CdrRow], events: _CelIndex, direction: Direction) -> str:
        """The number the caller dialled (an incoming call's DID), never `s`."""
        if direction == "internal":
            return root.dst
        dialled = events.first_exten(root.channel)
        if dialled and dialled != "s":
            return dialled
        for row in rows:
            if row.dst and row.dst != "s" and not self.is_extension_number(row.dst):
                return row.dst
        return root.dst if root.dst != "s" else ""

    def _ring_attempts(self, answered: list[_Leg], rang: list[_Leg], segments: list[Segment],
                       reason: Reason | None) -> list[RingAttempt]:
        attempts: list[tuple[datetime, int, RingAttempt]] = []
        for leg in answered:
            start = leg.inner.start if leg.inner is not None else leg.row.start
            answer = leg.answer or leg.row.start
            attempts.append((start, leg.row.line, RingAttempt(leg.extension, min(start, answer), answer, "answered")))
        for leg in rang:
            start = leg.inner.start if leg.inner is not None else leg.row.start
            outcome: RingOutcome
            if leg.row.disposition == "BUSY":
                outcome = "busy"
            elif leg.row.disposition in ("FAILED", "CONGESTION"):
                outcome = "failed"
            elif any(start - _SLACK <= s.answer <= leg.row.end + _SLACK for s in segments):
                outcome = "answered_elsewhere"
            else:
                outcome = "cancelled" if reason == "abandoned" else "no_answer"
            attempts.append((start, leg.row.line, RingAttempt(leg.extension, start, max(leg.row.end, start),
                                                              outcome)))
        attempts.sort(key=lambda a: (a[0], a[1]))
        return [a[2] for a in attempts]


def _caller_name(clid: str) -> str | None:
    match = _CLID.match(clid)
    if match is None:
        return None
    name = match.group(1).strip().strip('"').strip()
    return name or None


class _CelIndex:
    """The CEL events of one call, looked up by channel."""

    by_channel: dict[str, list[CelRow]]

    def __init__(self, events: Sequence[CelRow]) -> None:
        self.by_channel: dict[str, list[CelRow]] = {}
        for event in events:
            self.by_channel.setdefault(event.channel, []).append(event)

    def bridge_enter(self, channel: str, after: datetime) -> datetime | None:
        """When `channel` first entered a bridge at or after `after`."""
        for event in self.by_channel.get(channel, ()):
            if event.event == "BRIDGE_ENTER" and event.time >= after - _SLACK:
                return event.time
        return None

    def transfer_by(self, channel: str) -> tuple[SegmentStart | None, datetime | None]:
        """The kind of transfer `channel` (the transferring agent) made, and when an attended one completed."""
        for event in self.by_channel.get(channel, ()):
            if event.event == "BLINDTRANSFER":
                return "blind_transfer", None
            if event.event == "ATTENDEDTRANSFER":
                return "attended_transfer", event.time
        return None, None

    def dialstatus(self, channel: str) -> str:
        """The DIALSTATUS the channel hung up with ('' when unknown)."""
        for event in self.by_channel.get(channel, ()):
            if event.event == "HANGUP":
                return event.extra_field("dialstatus")
        return ""

    def first_exten(self, channel: str) -> str:
        """The extension the channel was created for (an incoming call's DID)."""
        for event in self.by_channel.get(channel, ()):
            if event.event == "CHAN_START":
                return event.exten
        return ""


_NO_EVENTS = _CelIndex(())
