"""The assembler's working state for open calls: channels, ring attempts, turns and the call.

Mutable, slot-only classes (thousands of calls are open at once and every event touches them);
times are epoch seconds as floats until `ingest.summary` builds the CallRecord. Pure: no IO.
"""

from __future__ import annotations

from ingest.records import Direction, RingOutcome, SegmentStart

# DialEnd's DialStatus -> what became of that ring.
DIAL_OUTCOMES: dict[str, RingOutcome] = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "cancelled",
    "CHANUNAVAIL": "failed",
    "CONGESTION": "failed",
}
# Hangup causes of a ringing extension that say more than a plain CANCEL (or than nothing).
RING_CAUSES: dict[str, RingOutcome] = {
    "26": "answered_elsewhere", "21": "rejected", "17": "busy", "18": "no_answer", "19": "no_answer",
    "34": "failed", "41": "failed",
}


class Channel:
    """One channel of an open call."""

    __slots__ = (
        "alive", "bridge", "call", "caller", "caller_name", "cause", "changed", "drives", "exten",
        "extension", "linkedid", "name", "pair", "partner", "uniqueid", "up",
    )

    def __init__(self, uniqueid: str, name: str, linkedid: str, call: Call, extension: str | None) -> None:
        self.uniqueid = uniqueid
        self.name = name
        self.linkedid = linkedid
        self.call = call
        # The extension this channel stands for; None for a trunk (an outside party).
        self.extension = extension
        # For Local channels: the pair's common name and the other half once seen.
        self.pair = ""
        self.partner: Channel | None = None
        self.bridge: str | None = None
        self.up = False
        # A Local half that dials or queues is plumbing, not a party.
        self.drives = False
        self.alive = True
        self.caller = ""
        self.caller_name = ""
        self.exten = ""
        self.cause = ""
        # Timestamp of the last bridge change, to drop stale repeats of older bridge events.
        self.changed = 0.0


class Attempt:
    """One extension ringing for the call."""

    __slots__ = ("end", "extension", "outcome", "start", "uniqueid")

    def __init__(self, uniqueid: str, extension: str, start: float) -> None:
        self.uniqueid = uniqueid
        self.extension = extension
        self.start = start
        self.end: float | None = None
        self.outcome: RingOutcome | None = None

    def ended(self, outcome: RingOutcome, t: float) -> None:
        """Record how the ring ended; a later answer wins over an earlier guess."""
        if self.outcome is None or (outcome == "answered" and self.outcome != "answered"):
            self.outcome = outcome
            self.end = t

    def hung_up(self, cause: str, t: float) -> None:
        """The ringing channel went away with Hangup `cause`."""
        by_cause = RING_CAUSES.get(cause)
        if self.outcome is None:
            self.outcome = by_cause or "cancelled"
        elif self.outcome == "cancelled" and by_cause in ("answered_elsewhere", "rejected"):
            # DialEnd says CANCEL for both; only the cause tells "picked up by another member".
            self.outcome = by_cause
        if self.end is None:
            self.end = t


class Turn:
    """A segment while it is being built: one agent connected to the call's outside party."""

    __slots__ = ("answer", "began_by", "channel", "end", "extension", "party", "provisional", "ring_start")

    def __init__(
        self, extension: str, began_by: SegmentStart, ring_start: float | None, answer: float, party: Channel
    ) -> None:
        self.extension = extension
        self.began_by: SegmentStart = began_by
        self.ring_start = ring_start
        self.answer = answer
        self.end: float | None = None
        self.party = party
        self.channel = party.name
        # Connected to a Local pair taken for a phone: dropped if the pair turns out to be plumbing.
        self.provisional = bool(party.pair)

    def follow(self, party: Channel) -> None:
        """The same extension is now reached through `party` (a device replacing its Local pair)."""
        self.party = party
        self.channel = party.name
        self.provisional = self.provisional and bool(party.pair)


class Call:
    """Everything known about one open call (one or more merged Linkedids)."""

    __slots__ = (
        "abandoned", "anchor_override", "attempts", "call_id", "channels", "current", "dialled", "first",
        "last", "linkedids", "live", "pbx_answered", "pending", "queue", "segments", "start", "trunk_leg",
        "trunk_status", "voicemail",
    )

    def __init__(self, linkedid: str, start: float) -> None:
        self.call_id = linkedid
        self.linkedids = [linkedid]
        self.channels: dict[str, Channel] = {}
        self.live = 0
        self.first: Channel | None = None
        # For a call from an extension: the outside leg it dialled (makes it outgoing).
        self.trunk_leg: Channel | None = None
        self.anchor_override: Channel | None = None
        self.start = start
        self.last = start
        self.segments: list[Turn] = []
        self.current: Turn | None = None
        self.attempts: dict[str, Attempt] = {}
        # How the next segment begins (set by a transfer, a queue or a pickup before it connects).
        self.pending: SegmentStart | None = None
        self.queue = ""
        self.abandoned = False
        self.voicemail = False
        self.pbx_answered = False
        self.trunk_status = ""
        self.dialled = ""

    @property
    def anchor(self) -> Channel | None:
        """The outside-facing party whose connections make the segments."""
        if self.anchor_override is not None:
            return self.anchor_override
        first = self.first
        if first is None or first.extension is None:
            return first
        return self.trunk_leg or first

    @property
    def direction(self) -> Direction:
        """incoming when the first party is outside; outgoing when an extension reached a trunk."""
        if self.first is None or self.first.extension is None:
            return "incoming"
        return "outgoing" if self.trunk_leg is not None else "internal"

    def age(self) -> tuple[float, int, int, str]:
        """Sort key, oldest call first (Linkedids look like [system-]epoch.sequence)."""
        head, _, seq = self.call_id.rpartition(".")
        sec = head.rpartition("-")[2]
        if sec.isdigit() and seq.isdigit():
            return (self.start, int(sec), int(seq), self.call_id)
        return (self.start, 0, 0, self.call_id)

    def connect(self, found: list[Channel], alone: bool, t: float) -> None:
        """Update the turns from the parties `found` connected to the anchor at time `t`."""
        if t > self.last:
            # Bridge events without a channel (BridgeMerge, BridgeDestroy) still move the call on.
            self.last = t
        current = self.current
        if current is not None:
            for party in found:
                if party is current.party or party.extension == current.extension:
                    if current.provisional and not party.pair:
                        current.follow(party)
                    return
            if alone and current.party.alive:
                # The caller waits alone in the bridge (held while the agent consults): still theirs.
                return
            current.end = t
            self.current = None
        anchor = self.anchor
        for party in found:
            if party.extension is not None and party is not anchor:
                self._open_turn(party, party.extension, t)
                return

    def _open_turn(self, party: Channel, extension: str, t: float) -> None:
        last = self.segments[-1] if self.segments else None
        if last is not None and last.extension == extension:
            # Back to the same agent (Local optimisation, parking, hold): the same turn goes on.
            last.end = None
            last.follow(party)
            self.current = last
            return
        ring_start = max(
            (a.start for a in self.attempts.values() if a.extension == extension and a.start <= t), default=None
        )
        turn = Turn(extension, self.pending or "answered", ring_start, t, party)
        self.pending = None
        self.segments.append(turn)
        self.current = turn

    def unplug(self, half: Channel) -> None:
        """`half` of a Local pair dials or queues: it and its partner are plumbing, not a phone."""
        half.drives = True
        pair = {half, half.partner} if half.partner is not None else {half}
        for ch in pair:
            self.attempts.pop(ch.uniqueid, None)
        current = self.current
        if current is not None and current.provisional and current.party in pair:
            self.segments.remove(current)
            self.current = None

    def absorb(self, other: Call) -> None:
        """Take over `other`'s channels and Linkedids (it merged into this call)."""
        for uid, ch in other.channels.items():
            ch.call = self
            self.channels[uid] = ch
        self.live += other.live
        self.linkedids += [linkedid for linkedid in other.linkedids if linkedid not in self.linkedids]
        for uid, attempt in other.attempts.items():
            self.attempts.setdefault(uid, attempt)
        self.last = max(self.last, other.last)
        self.queue = self.queue or other.queue
        self.abandoned = self.abandoned or other.abandoned
        self.voicemail = self.voicemail or other.voicemail
        # `other`'s own turns were a consultation between extensions, not turns of this call.
