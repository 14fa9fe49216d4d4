"""CallAssembler: AMI events in, finished calls (CallRecord) out. Pure: no IO, no await, no clock.

How a call is followed (AMI-NOTES.md and the real traces in tests/fixtures/ami-traces):

- A call is every channel sharing a Linkedid, plus the calls merged into it: when channels of two
  calls meet in a basic bridge (Asterisk then gives them the oldest Linkedid), on an attended
  transfer (the consultation's Linkedid joins the call) and on a pickup.
- Its *anchor* is the outside-facing party: the first channel of an incoming call, the first
  outside leg an extension dialled (outgoing), or the first channel of an internal call.
- A segment is one extension connected to the anchor. Connection is read from bridge membership,
  following Local channel pairs through to the device behind them (`;1`/`;2` are plumbing; a Local
  pair whose far half answers without dialling anything *is* the phone, as on Local-emulated PBXs).
  While the anchor waits alone in its bridge (held during a consultation) the segment goes on.
- A call finishes when its last channel hangs up; `expire` and `reconcile` close calls whose
  channels were lost with an AMI outage.

Time comes only from the events' `Timestamp` header; `feed(now=...)` stands in when it is absent.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from ingest.bridges import Bridges
from ingest.callstate import DIAL_OUTCOMES, Attempt, Call, Channel
from ingest.channels import PartyRules, dialled_number, parse_channel_name
from ingest.config import SystemConfig
from ingest.events import Event
from ingest.records import CallRecord
from ingest.summary import build_record

log = logging.getLogger(__name__)

Headers = Mapping[str, str]
_UNKNOWN = ("", "<unknown>")
_NO_EXTEN = ("", "s")
# Finished calls whose identities are remembered, so late or repeated events cannot reopen them.
_GONE_MEMORY = 50_000


class CallAssembler:
    """Turns one telephone system's AMI events into finished calls."""

    def __init__(self, system: SystemConfig) -> None:
        self.system = system
        self._rules = PartyRules(system)
        self._calls: dict[str, Call] = {}  # every Linkedid, merged ones included -> its open call
        self._open: dict[str, Call] = {}  # call_id -> open call
        self._channels: dict[str, Channel] = {}
        self._bridges = Bridges()
        self._halves: dict[str, Channel] = {}  # Local pair -> the half seen first, until its partner is
        # Uniqueids and Linkedids of finished calls: late or repeated events must not reopen them.
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._clock = 0.0
        self._handlers: dict[str, Callable[[Headers, float, list[CallRecord]], None]] = {
            "Newchannel": self._on_channel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_callerid,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "Hangup": self._on_hangup,
            "BridgeCreate": self._on_bridge_create,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BridgeMerge": self._on_bridge_merge,
            "BridgeDestroy": self._on_bridge_destroy,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "LocalBridge": self._on_local_bridge,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "Pickup": self._on_pickup,
            "Newexten": self._on_voicemail,
            "CoreShowChannel": self._on_core_show_channel,
        }

    # -- public API ---------------------------------------------------------------------------

    def feed(self, event: Event, now: datetime | None = None) -> list[CallRecord]:
        """Apply one event; returns the calls it finished (usually none)."""
        handler = self._handlers.get(event.name)
        if handler is None:
            return []
        t = event.timestamp
        if t is None:
            t = now.timestamp() if now is not None else self._clock
        elif t > self._clock:
            self._clock = t
        done: list[CallRecord] = []
        handler(event.headers, t, done)
        return done

    def expire(self, now: datetime, idle: float = 0.0) -> list[CallRecord]:
        """Close calls with no event for `idle` seconds before `now` (by default every open call).

        For the end of a replay and after an AMI outage without a channel list: such calls are
        marked `recovered` and end at their last event, so no talk time is invented.
        """
        cutoff = now.timestamp() - idle
        stale = sorted((c for c in self._open.values() if c.last <= cutoff), key=Call.age)
        return [self._finish(call, recovered=True) for call in stale]

    def reconcile(self, live_uniqueids: Iterable[str], now: datetime) -> list[CallRecord]:
        """After a reconnect: channels not in `live_uniqueids` are gone; close calls left without any."""
        live = set(live_uniqueids)
        finished: list[CallRecord] = []
        for call in sorted(self._open.values(), key=Call.age):
            lost = [ch for ch in call.channels.values() if ch.alive and ch.uniqueid not in live]
            if not lost:
                continue
            for channel in lost:
                # They hung up during the outage, some time after the last event we saw.
                self._drop(channel, call.last)
            self._recompute(call, call.last)
            if call.live <= 0:
                finished.append(self._finish(call, recovered=True))
        if finished:
            log.info("reconciled after reconnect: %d call(s) closed at %s", len(finished), now.isoformat())
        return finished

    def open_calls(self) -> list[CallRecord]:
        """Snapshots of the calls still open, as they would be recorded if they ended now."""
        return [build_record(call, self.system) for call in sorted(self._open.values(), key=Call.age)]

    def open_linkedids(self) -> list[tuple[str, ...]]:
        """The Linkedids of every open call (cheap, unlike `open_calls`): for journal checkpoints."""
        return [tuple(call.linkedids) for call in self._open.values()]

    @property
    def open_count(self) -> int:
        """How many calls are open (for metrics)."""
        return len(self._open)

    # -- channels and calls --------------------------------------------------------------------

    def _channel(self, h: Headers, p: str, t: float, create: bool = True) -> Channel | None:
        uid = h.get(p + "Uniqueid")
        if not uid:
            return None
        ch = self._channels.get(uid)
        if ch is not None:
            call = ch.call
            if t > call.last:
                call.last = t
            linkedid = h.get(p + "Linkedid")
            if linkedid and linkedid != ch.linkedid:
                self._relink(ch, linkedid)
            name = h.get(p + "Channel")
            if name and name != ch.name:
                # Renamed by a masquerade (pickup): it now stands for another device.
                ch.name = name
                ch.extension = self._rules.extension_of(
                    parse_channel_name(name), h.get(p + "CallerIDNum", ""), h.get(p + "AccountCode", ""),
                    h.get(p + "Context", ""),
                )
            if not ch.caller:
                number = h.get(p + "CallerIDNum", "")
                if number not in _UNKNOWN:
                    ch.caller = number
            if not ch.exten and ch is call.first:
                # The number called, when the first channel started in `s`: the first real exten.
                exten = h.get(p + "Exten", "")
                if exten not in _NO_EXTEN:
                    ch.exten = exten
            return ch
        if not create or uid in self._gone:
            return None
        linkedid = h.get(p + "Linkedid") or uid
        if linkedid in self._gone:
            return None
        return self._new_channel(h, p, t, uid, linkedid)

    def _new_channel(self, h: Headers, p: str, t: float, uid: str, linkedid: str) -> Channel:
        call = self._calls.get(linkedid)
        if call is None:
            call = self._calls[linkedid] = self._open[linkedid] = Call(linkedid, t)
        name = h.get(p + "Channel", "")
        parsed = parse_channel_name(name)
        context = h.get(p + "Context", "")
        ch = Channel(
            uid, name, linkedid, call,
            self._rules.extension_of(parsed, h.get(p + "CallerIDNum", ""), h.get(p + "AccountCode", ""), context),
        )
        exten = h.get(p + "Exten", "")
        ch.exten = "" if exten in _NO_EXTEN else exten
        number = h.get(p + "CallerIDNum", "")
        ch.caller = "" if number in _UNKNOWN else number
        caller_name = h.get(p + "CallerIDName", "")
        ch.caller_name = "" if caller_name in _UNKNOWN else caller_name
        ch.up = h.get(p + "ChannelState") == "6"
        self._channels[uid] = ch
        call.channels[uid] = ch
        call.live += 1
        if t > call.last:
            call.last = t
        if parsed.local_pair:
            ch.pair = parsed.local_pair
            other = self._halves.pop(ch.pair, None)
            if other is not None and other is not ch:
                ch.partner, other.partner = other, ch
            else:
                self._halves[ch.pair] = ch
        first = call.first
        if first is None:
            call.first = ch
        elif (
            ch.extension is None
            and first.extension is not None
            and not call.segments
            and (call.trunk_leg is None or not call.trunk_leg.alive)
            and (not parsed.local_pair or parsed.exten.lstrip("+").isdigit())
        ):
            # An extension's call reaching an outside leg is outgoing; Local plumbing such as
            # Local/FMPR-101@... is not an outside party, a Local pair dialling a number is.
            call.trunk_leg = ch
        return ch

    def _relink(self, ch: Channel, linkedid: str) -> None:
        # Asterisk moved the channel to another Linkedid (it met an older call in a bridge).
        ch.linkedid = linkedid
        target = self._calls.get(linkedid)
        if target is None:
            if linkedid not in self._gone:
                self._calls[linkedid] = ch.call
                ch.call.linkedids.append(linkedid)
        elif target is not ch.call:
            self._merge(target, ch.call)

    def _merge(self, a: Call, b: Call) -> Call:
        if a is b:
            return a
        if b.age() < a.age():
            a, b = b, a
        log.debug("call %s merged into %s", b.call_id, a.call_id)
        a.absorb(b)
        for linkedid in b.linkedids:
            self._calls[linkedid] = a
        self._open.pop(b.call_id, None)
        return a

    def _drop(self, ch: Channel, t: float) -> list[Channel]:
        # The channel is gone: out of its bridge, its ring over, one fewer live channel.
        ch.alive = False
        call = ch.call
        call.live -= 1
        if t > call.last:
            call.last = t
        attempt = call.attempts.get(ch.uniqueid)
        if attempt is not None:
            attempt.hung_up(ch.cause, t)
        if self._halves.get(ch.pair) is ch:
            del self._halves[ch.pair]
        return self._bridges.leave(ch)

    def _finish(self, call: Call, recovered: bool = False) -> CallRecord:
        record = build_record(call, self.system, recovered=recovered)
        gone = self._gone
        for uid, ch in call.channels.items():
            if ch.bridge is not None:
                self._bridges.leave(ch)
            if self._halves.get(ch.pair) is ch:
                del self._halves[ch.pair]
            self._channels.pop(uid, None)
            gone[uid] = None
        for linkedid in call.linkedids:
            self._calls.pop(linkedid, None)
            gone[linkedid] = None
        self._open.pop(call.call_id, None)
        while len(gone) > _GONE_MEMORY:
            gone.popitem(last=False)
        return record

    # -- connections -> segments ---------------------------------------------------------------

    def _recompute(self, call: Call, t: float) -> None:
        anchor = call.anchor
        if anchor is not None and anchor.alive:
            found, alone = self._bridges.reach(anchor)
        else:
            found, alone = [], False
        call.connect(found, alone, t)

    def _touch(self, channels: Iterable[Channel], t: float) -> None:
        calls: dict[int, Call] = {}
        for ch in channels:
            calls.setdefault(id(ch.call), ch.call)
        for call in calls.values():
            if call.call_id in self._open:
                self._recompute(call, t)

    def _enter(self, ch: Channel, bridge: str, t: float) -> None:
        touched = self._bridges.enter(ch, bridge)
        if self._bridges.is_basic(bridge):
            # Asterisk gives everyone in a basic bridge the oldest Linkedid: one call.
            survivor = ch.call
            for member in self._bridges.members(bridge):
                survivor = self._merge(survivor, member.call)
        self._touch(touched, t)

    def _unplug(self, half: Channel, t: float) -> None:
        half.call.unplug(half)
        self._recompute(half.call, t)

    # -- event handlers ------------------------------------------------------------------------

    def _on_channel(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        self._channel(h, "", t)

    def _on_newstate(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        if ch is None:
            return
        up = h.get("ChannelState") == "6"
        if up == ch.up:
            return
        ch.up = up
        call = ch.call
        if up and ch is call.first:
            call.pbx_answered = True
        if ch.pair:
            self._recompute(call, t)

    def _on_callerid(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        number = h.get("CallerIDNum", "")
        if ch is not None and number not in _UNKNOWN:
            ch.caller = number

    def _on_dial_begin(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        source = self._channel(h, "", t)
        dest = self._channel(h, "Dest", t)
        if dest is None:
            return
        call = dest.call
        if source is not None:
            if source is call.first and not call.dialled:
                call.dialled = dialled_number(h.get("DialString", ""))
            if source.pair and not source.drives:
                self._unplug(source, t)
        plumbing = dest.partner is not None and dest.partner.drives
        if dest.extension is not None and dest.uniqueid not in call.attempts and not plumbing:
            call.attempts[dest.uniqueid] = Attempt(dest.uniqueid, dest.extension, t)

    def _on_dial_end(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        dest = self._channel(h, "Dest", t, create=False)
        if dest is None:
            return
        call = dest.call
        status = h.get("DialStatus", "")
        attempt = call.attempts.get(dest.uniqueid)
        if attempt is not None:
            attempt.ended(DIAL_OUTCOMES.get(status, "cancelled"), t)
        if dest is call.trunk_leg and call.trunk_status != "ANSWER":
            call.trunk_status = status

    def _on_hangup(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t, create=False)
        if ch is None or not ch.alive:
            return
        ch.cause = h.get("Cause", "")
        others = self._drop(ch, t)
        call = ch.call
        self._touch([ch, *others], t)
        if call.live <= 0 and call.call_id in self._open:
            done.append(self._finish(call))

    def _on_bridge_create(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        self._bridges.set_kind(h.get("BridgeUniqueid", ""), h.get("BridgeType", ""))

    def _on_bridge_enter(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        bridge = h.get("BridgeUniqueid", "")
        if ch is None or not bridge or not ch.alive or ch.bridge == bridge or t < ch.changed:
            return
        ch.changed = t
        self._bridges.set_kind(bridge, h.get("BridgeType", ""))
        self._enter(ch, bridge, t)

    def _on_bridge_leave(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t, create=False)
        if ch is None or ch.bridge is None or ch.bridge != h.get("BridgeUniqueid") or t < ch.changed:
            return
        ch.changed = t
        self._touch([ch, *self._bridges.leave(ch)], t)

    def _on_bridge_merge(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        source, target = h.get("FromBridgeUniqueid", ""), h.get("ToBridgeUniqueid", "")
        if not target or source == target:
            return
        for ch in self._bridges.members(source):
            self._enter(ch, target, t)

    def _on_bridge_destroy(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        bridge = h.get("BridgeUniqueid", "")
        self._touch(self._bridges.destroy(bridge), t)

    def _on_blind_transfer(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        if h.get("Result") != "Success":
            return
        transferer = self._channel(h, "Transferer", t, create=False)
        transferee = self._channel(h, "Transferee", t, create=False)
        if transferee is None and transferer is not None:
            others = [m for m in self._bridges.members(h.get("BridgeUniqueid", "")) if m is not transferer]
            transferee = others[0] if others else None
        party = transferee or transferer
        if party is None:
            return
        call = party.call
        call.pending = "blind_transfer"
        if transferer is not None and transferee is not None and transferer is call.anchor:
            # The anchor handed its partner on (an internal caller transferring): follow the partner.
            call.anchor_override = transferee

    def _on_attended_transfer(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        if h.get("Result") != "Success":
            return
        prefixes = ("OrigTransferer", "SecondTransferer", "Transferee", "TransferTarget")
        parties = [self._channel(h, prefix, t, create=False) for prefix in prefixes]
        known = [p for p in parties if p is not None]
        if not known:
            return
        call = known[0].call
        for party in known[1:]:
            call = self._merge(call, party.call)
        transferer, transferee = parties[0], parties[2]
        if transferer is not None and transferer is call.anchor and transferee is not None:
            call.anchor_override = transferee
        current = call.current
        if current is not None and (transferer is None or current.extension != transferer.extension):
            current.began_by = "attended_transfer"
        else:
            call.pending = "attended_transfer"
        self._recompute(call, t)

    def _on_local_bridge(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        one = self._channel(h, "LocalOne", t)
        two = self._channel(h, "LocalTwo", t)
        if one is not None and two is not None and one.partner is None:
            one.partner, two.partner = two, one

    def _on_queue_join(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        if ch is None:
            return
        call = ch.call
        call.queue = h.get("Queue", "") or call.queue
        if call.pending is None and call.current is None:
            call.pending = "queue"
        if ch.pair and not ch.drives:
            self._unplug(ch, t)

    def _on_queue_abandon(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        if ch is not None:
            ch.call.abandoned = True

    def _on_pickup(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        picker = self._channel(h, "", t)
        target = self._channel(h, "Target", t)
        if picker is None or target is None:
            return
        call = self._merge(target.call, picker.call)
        call.pending = "pickup"

    def _on_voicemail(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        ch = self._channel(h, "", t)
        if ch is not None and h.get("Application") == "VoiceMail":
            ch.call.voicemail = True

    def _on_core_show_channel(self, h: Headers, t: float, done: list[CallRecord]) -> None:
        # A channel listed after a reconnect: adopt it (and its bridge) if we lost track of it.
        ch = self._channel(h, "", t)
        if ch is None:
            return
        ch.up = h.get("ChannelState") == "6"
        bridge = h.get("BridgeId", "")
        if bridge and ch.bridge != bridge:
            self._enter(ch, bridge, t)
        elif not bridge and ch.bridge is not None:
            # The snapshot is the truth: it left its bridge while we were not listening.
            self._touch([ch, *self._bridges.leave(ch)], t)
