"""Who is connected to whom: bridge membership, and the parties reached through Local pairs.

A Local pair (`;1`/`;2`) is a wire between two bridges. From a channel, the parties it talks to
are the other members of its bridge, where a Local half is followed through its partner into the
partner's bridge. A Local pair whose far half answered without dialling anything (and sits in no
bridge) is itself the party: that is how PBXs that emulate phones with Local channels look.
"""

from __future__ import annotations

from ingest.callstate import Channel

# Bridges that hold channels side by side without connecting them.
HOLDING_BRIDGES = frozenset({"holding", "parking"})


class Bridges:
    """Bridge membership of every live channel the assembler follows."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, Channel]] = {}
        self._kinds: dict[str, str] = {}  # only bridges that are not "basic"

    def members(self, bridge: str) -> list[Channel]:
        """The channels now in `bridge`, in the order they entered."""
        return list(self._members.get(bridge, {}).values())

    def set_kind(self, bridge: str, kind: str) -> None:
        """Remember a bridge's type (BridgeType) when it is not a basic two-party bridge."""
        if kind and kind != "basic" and bridge:
            self._kinds[bridge] = kind

    def is_basic(self, bridge: str) -> bool:
        """True for basic bridges, the only ones where Asterisk joins Linkedids."""
        return bridge not in self._kinds

    def enter(self, ch: Channel, bridge: str) -> list[Channel]:
        """Put `ch` into `bridge` (out of any other); returns every channel whose party changed."""
        touched = self.leave(ch) if ch.bridge is not None else []
        members = self._members.setdefault(bridge, {})
        members[ch.uniqueid] = ch
        ch.bridge = bridge
        return touched + list(members.values())

    def leave(self, ch: Channel) -> list[Channel]:
        """Take `ch` out of its bridge; returns the channels left in it."""
        bridge, ch.bridge = ch.bridge, None
        members = self._members.get(bridge) if bridge is not None else None
        if bridge is None or members is None:
            return []
        members.pop(ch.uniqueid, None)
        if not members:
            # Forget empty bridges even when their BridgeDestroy never comes.
            del self._members[bridge]
            self._kinds.pop(bridge, None)
        return list(members.values())

    def destroy(self, bridge: str) -> list[Channel]:
        """Forget `bridge`; returns the channels that were still in it."""
        self._kinds.pop(bridge, None)
        members = list(self._members.pop(bridge, {}).values())
        for ch in members:
            ch.bridge = None
        return members

    def reach(self, anchor: Channel) -> tuple[list[Channel], bool]:
        """The parties connected to `anchor`, and whether it waits alone in a bridge."""
        start = anchor
        if anchor.bridge is None:
            # A Local half (an emulated trunk) talks through its partner's bridge.
            partner = anchor.partner
            if partner is None or not partner.alive or partner.bridge is None:
                return [], False
            start = partner
        bridge = start.bridge
        if bridge is None or self._kinds.get(bridge) in HOLDING_BRIDGES:
            return [], False
        seen = {anchor.uniqueid, start.uniqueid}
        queue = [m for m in self.members(bridge) if m.uniqueid not in seen]
        alone = not queue
        found: list[Channel] = []
        while queue:
            ch = queue.pop(0)
            if ch.uniqueid in seen:
                continue
            seen.add(ch.uniqueid)
            partner = ch.partner
            if not ch.pair:
                found.append(ch)
            elif partner is None:
                if ch.up:
                    found.append(ch)
            elif partner.alive:
                seen.add(partner.uniqueid)
                if partner.bridge is not None:
                    queue.extend(m for m in self.members(partner.bridge) if m.uniqueid not in seen)
                elif (partner.up or ch.up) and not partner.drives:
                    # The far half answered without dialling on: this Local pair is the phone.
                    found.append(ch)
        return found, alone
