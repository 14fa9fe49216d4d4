"""A transfer chain as plain text (the terminal) or JSON (scripts)."""

from __future__ import annotations

from typing import Any

from reports.context import ChainDocument, ChainTurn


def _turn_line(document: ChainDocument, turn: ChainTurn) -> str:
    fmt = document.fmt
    who = f"{turn.extension} ({turn.agent})" if turn.agent else turn.extension
    parts = [f"{fmt.num(turn.seq)}.", fmt.digits(who), fmt.t(f"began.{turn.how}")]
    if turn.ring_seconds is not None:
        parts.append(f"{fmt.t('col.ring')} {fmt.duration(turn.ring_seconds)}")
    if turn.answer is not None:
        parts.append(f"{fmt.t('col.answer')} {fmt.time(turn.answer)}")
    if turn.talk_seconds is not None:
        parts.append(f"{fmt.t('col.talk')} {fmt.duration(turn.talk_seconds)}")
    return "  " + "  ".join(parts)


def chain_text(document: ChainDocument) -> str:
    """Human-readable lines: the call, then each turn, then each ring attempt."""
    fmt = document.fmt
    kind = fmt.t(f"kind.{document.kind}") + (f" ({fmt.t('reason.' + document.reason)})" if document.reason else "")
    lines = [
        f"{fmt.t('col.call_id')}: {document.call_id}  {fmt.t('col.system')}: {document.system}",
        f"{fmt.t('col.type')}: {kind}  {fmt.digits(document.caller)} -> {fmt.digits(document.callee)}",
        f"{fmt.t('col.time')}: {fmt.datetime(document.start)} - {fmt.time(document.end)}  "
        f"{fmt.t('col.wait')}: {fmt.duration(document.wait_seconds)}  "
        f"{fmt.t('col.talk')}: {fmt.duration(document.talk_seconds)}  "
        f"{fmt.t('col.transfers')}: {fmt.num(document.transfer_count)}",
    ]
    lines += [_turn_line(document, turn) for turn in document.turns]
    if document.rings:
        lines.append(f"{fmt.t('col.ring')}:")
        for ring in document.rings:
            who = f"{ring.extension} ({ring.agent})" if ring.agent else ring.extension
            length = fmt.duration(ring.ring_seconds) if ring.ring_seconds is not None else ""
            lines.append(f"  {fmt.num(ring.seq)}. {fmt.digits(who)}  {length}  {fmt.t(f'ring.{ring.how}')}")
    return "\n".join(lines) + "\n"


def _turn_json(turn: ChainTurn) -> dict[str, Any]:
    return {
        "seq": turn.seq, "extension": turn.extension, "agent": turn.agent, "how": turn.how,
        "start": turn.start.isoformat() if turn.start else None,
        "answer": turn.answer.isoformat() if turn.answer else None,
        "end": turn.end.isoformat() if turn.end else None,
        "ring_seconds": float(turn.ring_seconds) if turn.ring_seconds is not None else None,
        "talk_seconds": float(turn.talk_seconds) if turn.talk_seconds is not None else None,
    }


def chain_json(document: ChainDocument) -> dict[str, Any]:
    """The chain as a JSON-ready dict (times in the report's time zone, ISO 8601)."""
    return {
        "call_id": document.call_id, "system": document.system, "type": document.kind, "reason": document.reason,
        "caller": document.caller, "callee": document.callee, "start": document.start.isoformat(),
        "end": document.end.isoformat(), "wait_seconds": float(document.wait_seconds),
        "talk_seconds": float(document.talk_seconds), "transfer_count": document.transfer_count,
        "turns": [_turn_json(t) for t in document.turns], "rings": [_turn_json(r) for r in document.rings],
    }
