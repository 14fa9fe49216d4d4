"""A tiny AMI event writer for call scenarios no recording covers (tests only).

Events are built with the same field names and snapshot blocks Asterisk 13-22 sends (see
AMI-NOTES.md), so a scenario reads like the sequences there:

    sim = Sim()
    trunk = sim.channel("PJSIP/trunk", exten="02191001000", context="from-trunk", cid="09121234567")
    phone = sim.dial(trunk, "PJSIP/101")
    sim.answer(trunk, phone)
    ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.events import Event, event_from_mapping


@dataclass
class Chan:
    """One simulated channel: the snapshot fields Asterisk repeats in every channel event."""

    name: str
    uniqueid: str
    linkedid: str
    exten: str = "s"
    context: str = "internal"
    cid: str = "<unknown>"
    state: int = 0
    account: str = ""
    bridge: str = ""

    def snapshot(self, prefix: str = "") -> dict[str, str]:
        """The channel block of an event, with `prefix` (Dest, Transferer, ...)."""
        desc = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}.get(self.state, "Unknown")
        return {
            f"{prefix}Channel": self.name,
            f"{prefix}ChannelState": str(self.state),
            f"{prefix}ChannelStateDesc": desc,
            f"{prefix}CallerIDNum": self.cid,
            f"{prefix}CallerIDName": "<unknown>",
            f"{prefix}ConnectedLineNum": "<unknown>",
            f"{prefix}ConnectedLineName": "<unknown>",
            f"{prefix}Language": "en",
            f"{prefix}AccountCode": self.account,
            f"{prefix}Context": self.context,
            f"{prefix}Exten": self.exten,
            f"{prefix}Priority": "1",
            f"{prefix}Uniqueid": self.uniqueid,
            f"{prefix}Linkedid": self.linkedid,
        }


@dataclass
class Sim:
    """Writes events in order, with a clock that only moves when told."""

    now: float = 1_800_000_000.0
    events: list[Event] = field(default_factory=list)
    _ids: int = 100
    _suffix: int = 0
    _bridges: int = 0

    def wait(self, seconds: float) -> None:
        """Move the clock."""
        self.now += seconds

    def emit(self, name: str, *blocks: dict[str, str], **fields: str) -> Event:
        """Append one event made of snapshot blocks and plain fields."""
        headers: dict[str, str] = {"Event": name, "Privilege": "call,all", "Timestamp": f"{self.now:.6f}"}
        for block in blocks:
            headers.update(block)
        headers.update(fields)
        event = event_from_mapping(headers)
        self.events.append(event)
        self.now += 0.001
        return event

    def _uid(self) -> str:
        self._ids += 1
        return f"{int(self.now)}.{self._ids}"

    def channel(
        self,
        endpoint: str,
        *,
        linkedid: str | None = None,
        exten: str = "s",
        context: str = "internal",
        cid: str = "<unknown>",
        state: int = 0,
        account: str = "",
    ) -> Chan:
        """A Newchannel: `endpoint` like `PJSIP/101`; a new call unless `linkedid` is given."""
        self._suffix += 1
        uid = self._uid()
        chan = Chan(f"{endpoint}-{self._suffix:08x}", uid, linkedid or uid, exten, context, cid, state, account)
        self.emit("Newchannel", chan.snapshot())
        return chan

    def local(self, exten: str, context: str, linkedid: str, *, optimize: bool = False) -> tuple[Chan, Chan]:
        """A Local channel pair (;1 and ;2) and its LocalBridge event."""
        self._suffix += 1
        base = f"Local/{exten}@{context}-{self._suffix:08x}"
        one = Chan(f"{base};1", self._uid(), linkedid, exten, context)
        two = Chan(f"{base};2", self._uid(), linkedid, exten, context, state=4)
        self.emit("Newchannel", one.snapshot())
        self.emit("Newchannel", two.snapshot())
        self.emit(
            "LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), Context=context, Exten=exten,
            LocalOptimization="Yes" if optimize else "No",
        )
        return one, two

    def state(self, chan: Chan, state: int) -> None:
        """A Newstate (5 ringing, 6 up)."""
        chan.state = state
        self.emit("Newstate", chan.snapshot())

    def dial(self, source: Chan | None, endpoint: str, *, dial_string: str = "", cid: str = "<unknown>") -> Chan:
        """Newchannel for the callee and DialBegin from `source` (None: an originate), then ringing."""
        linkedid = source.linkedid if source is not None else None
        dest = self.channel(endpoint, linkedid=linkedid, cid=cid)
        self.dial_to(source, dest, dial_string or endpoint.rpartition("/")[2])
        return dest

    def dial_to(self, source: Chan | None, dest: Chan, dial_string: str) -> None:
        """DialBegin to an existing channel (a Local ;1), and its ringing."""
        blocks = [dest.snapshot("Dest")] + ([source.snapshot()] if source is not None else [])
        self.emit("DialBegin", *blocks, DialString=dial_string)
        if dest.state != 6:
            self.state(dest, 5)

    def dial_end(self, source: Chan | None, dest: Chan, status: str) -> None:
        """DialEnd with `status` (ANSWER, BUSY, NOANSWER, CANCEL, ...)."""
        blocks = [dest.snapshot("Dest")] + ([source.snapshot()] if source is not None else [])
        self.emit("DialEnd", *blocks, DialStatus=status)

    def bridge(self, *chans: Chan, swap: Chan | None = None) -> str:
        """BridgeCreate and a BridgeEnter for every channel; returns the bridge id."""
        self._bridges += 1
        bridge = f"bridge-{self._bridges:04d}"
        self.emit("BridgeCreate", BridgeUniqueid=bridge, BridgeType="basic", BridgeNumChannels="0")
        for chan in chans:
            self.enter(chan, bridge, swap=swap)
        return bridge

    def enter(self, chan: Chan, bridge: str, *, swap: Chan | None = None) -> None:
        """BridgeEnter (optionally replacing `swap`)."""
        chan.bridge = bridge
        extra = {"SwapUniqueid": swap.uniqueid} if swap is not None else {}
        self.emit("BridgeEnter", chan.snapshot(), BridgeUniqueid=bridge, BridgeType="basic", **extra)

    def leave(self, chan: Chan) -> None:
        """BridgeLeave from the channel's bridge."""
        self.emit("BridgeLeave", chan.snapshot(), BridgeUniqueid=chan.bridge, BridgeType="basic")
        chan.bridge = ""

    def answer(self, source: Chan | None, dest: Chan) -> str:
        """The callee answers: Newstate Up, DialEnd ANSWER, caller Up, both bridged."""
        self.state(dest, 6)
        self.dial_end(source, dest, "ANSWER")
        if source is None:
            return ""
        if source.state != 6:
            self.state(source, 6)
        return self.bridge(dest, source)

    def hangup(self, *chans: Chan, cause: str = "16") -> None:
        """Each channel leaves its bridge (if any) and hangs up."""
        for chan in chans:
            if chan.bridge:
                self.leave(chan)
            self.emit("Hangup", chan.snapshot(), Cause=cause, **{"Cause-txt": "Normal Clearing"})

    def blind_transfer(self, transferer: Chan, transferee: Chan, exten: str) -> None:
        """A BlindTransfer (REFER), then both leave the bridge and the transferer hangs up."""
        self.emit(
            "BlindTransfer", transferer.snapshot("Transferer"), transferee.snapshot("Transferee"),
            Result="Success", BridgeUniqueid=transferer.bridge, IsExternal="Yes", Context="internal",
            Extension=exten,
        )
        self.leave(transferee)
        self.hangup(transferer)
        transferee.exten = exten

    def attended_transfer(
        self, orig: Chan, second: Chan, *, transferee: Chan | None, target: Chan | None, dest_type: str = "Bridge",
        **fields: str,
    ) -> None:
        """An AttendedTransfer event (Result Success) with the given parties."""
        blocks = [orig.snapshot("OrigTransferer"), second.snapshot("SecondTransferer")]
        if transferee is not None:
            blocks.append(transferee.snapshot("Transferee"))
        if target is not None:
            blocks.append(target.snapshot("TransferTarget"))
        self.emit(
            "AttendedTransfer", *blocks, Result="Success", DestType=dest_type, IsExternal="Yes",
            OrigBridgeUniqueid=orig.bridge, SecondBridgeUniqueid=second.bridge, **fields,
        )
