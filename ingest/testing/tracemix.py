"""Copies of recorded AMI traces with fresh identities, interleaved: for property tests and benchmarks.

Each copy of a trace gets a tag that is written into every Uniqueid/Linkedid-like value, every
channel name (inside its unique suffix, so `PJSIP/101-...` still names endpoint 101) and every
bridge id, so copies never share a channel, a call or a bridge and may run at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

# Keys whose values are channel, call or bridge identities (checked by suffix).
_ID_SUFFIXES = ("Uniqueid", "UniqueId", "Linkedid", "BridgeId")
_ID_KEYS = frozenset({"Id", "BridgeUniqueid"})


def trace_messages(path: Path) -> list[str]:
    """The event messages of a recorded `ami.log` (LF line ends, no blank line), in order."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return [block for block in text.split("\n\n") if block.startswith("Event: ")]


def _rename(channel: str, tag: str) -> str:
    if "/" not in channel:
        return channel
    pair, semi, half = channel.rpartition(";") if channel.startswith("Local/") else (channel, "", "")
    base, dash, suffix = pair.rpartition("-")
    renamed = f"{base}-{tag}{suffix}" if dash else f"{pair}-{tag}"
    return f"{renamed};{half}" if semi else renamed


def retag(message: str, tag: str, shift: float = 0.0) -> str:
    """`message` with every identity made unique to `tag` and its Timestamp moved by `shift` s."""
    lines = message.split("\n")
    for i, line in enumerate(lines):
        key, sep, value = line.partition(": ")
        if not sep or not value or value == "<unknown>":
            continue
        if key in _ID_KEYS or key.endswith(_ID_SUFFIXES):
            lines[i] = f"{key}: {tag}-{value}"
        elif key.endswith("Channel"):
            lines[i] = f"{key}: {_rename(value, tag)}"
        elif key == "Timestamp" and shift:
            try:
                lines[i] = f"Timestamp: {float(value) + shift:.6f}"
            except ValueError:
                continue
    return "\n".join(lines)


def round_robin(copies: Sequence[tuple[str, Sequence[str]]], shift: float = 0.0) -> Iterator[str]:
    """Interleave tagged copies one message each in turn: every call starts before any ends."""
    longest = max((len(messages) for _, messages in copies), default=0)
    for index in range(longest):
        for tag, messages in copies:
            if index < len(messages):
                yield retag(messages[index], tag, shift)


def interleave(order: Iterable[int], copies: Sequence[tuple[str, Sequence[str]]]) -> Iterator[str]:
    """Interleave copies following `order` (copy indexes), each copy keeping its own order."""
    positions = [0] * len(copies)
    for pick in order:
        tag, messages = copies[pick % len(copies)]
        position = positions[pick % len(copies)]
        if position < len(messages):
            positions[pick % len(copies)] += 1
            yield retag(messages[position], tag)
    for (tag, messages), position in zip(copies, positions, strict=True):
        for message in messages[position:]:
            yield retag(message, tag)
