"""Channel names and who they stand for: an extension of the telephone system, or an outside party.

`PJSIP/101-0000002a` is endpoint `101`; `Local/101@agents-0000000f;1` and its `;2` are one party
whose endpoint is `101@agents` (exten `101`). Whether an endpoint is an extension is decided per
telephone system (`SystemConfig`): configured trunk patterns and inbound contexts first, then the
extension read from the endpoint name, the caller ID number or the account code (`extension_from`),
mapped through `extension_map`, must match `extension_pattern` (default: 2-6 digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ingest.config import SystemConfig

_UNKNOWN = ("", "<unknown>")
_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class ChannelName:
    """The parts of a channel name that matter: technology, endpoint, and for Local its half."""

    tech: str
    endpoint: str
    # For Local channels: the dialled exten and context, the pair's common name and the half (1 or 2).
    exten: str = ""
    context: str = ""
    local_pair: str = ""
    half: int = 0


@lru_cache(maxsize=4096)
def parse_channel_name(name: str) -> ChannelName:
    """Split `TECH/endpoint-suffix` (or `Local/exten@context-suffix;n`) into its parts."""
    tech, slash, rest = name.partition("/")
    if not slash:
        return ChannelName(tech="", endpoint=name)
    if tech == "Local":
        pair, semi, half = rest.rpartition(";")
        if not semi:
            pair, half = rest, ""
        body = pair.rpartition("-")[0] or pair
        exten, _, context = body.partition("@")
        return ChannelName(
            tech=tech,
            endpoint=body,
            exten=exten,
            context=context,
            local_pair="Local/" + pair,
            half=2 if half == "2" else 1,
        )
    # The endpoint is everything up to the last '-' (the unique suffix); DAHDI/i1/0912...-3 too.
    endpoint = rest.rpartition("-")[0] or rest
    return ChannelName(tech=tech, endpoint=endpoint)


class PartyRules:
    """One telephone system's rules telling its extensions from its trunks."""

    def __init__(self, system: SystemConfig) -> None:
        self.system = system
        self._pattern = re.compile(system.extension_pattern)
        self._trunks = [re.compile(p) for p in system.trunks]
        self._inbound = frozenset(system.inbound_contexts)
        self._map = system.extension_map
        self._source = system.extension_from
        self._cache: dict[tuple[str, str], str | None] = {}

    def extension_of(
        self, name: ChannelName, callerid: str = "", accountcode: str = "", context: str = ""
    ) -> str | None:
        """The extension number the channel stands for, or None when it is a trunk (outside party)."""
        if name.tech == "Local":
            # A Local pair stands for what it dials: its exten, in its own context.
            return self._cached(name.endpoint, name.exten, name.context)
        if self._source == "endpoint":
            return self._cached(name.endpoint, name.endpoint, context)
        candidate = callerid if self._source == "callerid" else accountcode
        return self._decide(name.endpoint, "" if candidate in _UNKNOWN else candidate, context)

    def _cached(self, endpoint: str, candidate: str, context: str) -> str | None:
        key = (endpoint, context)
        try:
            return self._cache[key]
        except KeyError:
            if len(self._cache) >= _CACHE_SIZE:
                # Local pairs dialling outside numbers make endless keys: start over, never grow.
                self._cache.clear()
            found = self._cache[key] = self._decide(endpoint, candidate, context)
            return found

    def _decide(self, endpoint: str, candidate: str, context: str) -> str | None:
        if any(p.fullmatch(endpoint) for p in self._trunks):
            return None
        if context and context in self._inbound:
            return None
        extension = self._map.get(endpoint, candidate)
        if extension and self._pattern.search(extension):
            return extension
        return None

    def is_extension_number(self, number: str) -> bool:
        """True when `number` looks like one of this system's extensions."""
        return bool(number) and self._pattern.search(number) is not None


def dialled_number(dial_string: str) -> str:
    """The number inside a Dial() string: `0218...@trunk`, `trunk/0218...`, `PJSIP/101&PJSIP/102`."""
    first = dial_string.split("&", 1)[0].split(",", 1)[0]
    if "/" in first:
        tech, _, rest = first.partition("/")
        # Local/101@agents/n has options after its last '/'; PJSIP/number@trunk and
        # SIP/trunk/number both occur for devices and trunks.
        first = rest.partition("/")[0] if tech == "Local" else rest.rpartition("/")[2]
    return first.partition("@")[0]
