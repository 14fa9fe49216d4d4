"""`calltrail-ingest replay`: JSON lines on stdout, a summary on stderr, or calls stored in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ingest.cli import main
from ingest.events import AmiParser, Event

TRACES = Path(__file__).parent / "fixtures" / "ami-traces"
REQUIRED_KEYS = {
    "call_id", "direction", "status", "reason", "caller", "callee", "external_number", "agents", "rang",
    "transfer_count", "start", "answer", "end", "wait_seconds", "talk_seconds", "duration_seconds", "segments",
}


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every command without the machine's configuration."""
    for name in ("CALLTRAIL_CONFIG", "CALLTRAIL_DSN", "CALLTRAIL_DSN_FILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("CALLTRAIL_CONFIG", str(empty))


def replay(*args: str) -> Result:
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def calls(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_replay_json_prints_one_call_per_line_and_a_summary() -> None:
    result = replay("--json", str(TRACES / "08_blind_transfer" / "ami.log"))
    assert result.exit_code == 0, result.stderr
    (call,) = calls(result)
    assert set(call) >= REQUIRED_KEYS
    assert (call["call_id"], call["direction"], call["status"]) == ("1795687349.120", "incoming", "answered")
    assert (call["agents"], call["transfer_count"], call["external_number"]) == (["101", "102"], 2, "+989121234567")
    assert call["start"].endswith("+00:00")
    assert [s["began_by"] for s in call["segments"]] == ["answered", "blind_transfer"]
    raw = (TRACES / "08_blind_transfer" / "ami.log").read_bytes().decode()
    events = raw.count("\r\nEvent: ") + raw.startswith("Event: ")
    assert result.stderr.strip() == (
        f"events read: {events}, malformed skipped: 0, calls finished: 1, calls still open: 0"
    )


def test_several_traces_print_calls_in_the_order_they_finish() -> None:
    names = ["07_internal", "01_inbound_answered", "05_outbound_answered"]
    result = replay("--json", *(str(TRACES / n / "ami.log") for n in names))
    assert result.exit_code == 0, result.stderr
    assert [c["direction"] for c in calls(result)] == ["internal", "incoming", "outgoing"]
    assert "calls finished: 3, calls still open: 0" in result.stderr


def test_calls_still_open_at_the_end_are_reported_as_recovered(tmp_path: Path) -> None:
    raw = (TRACES / "01_inbound_answered" / "ami.log").read_bytes().decode()
    cut = tmp_path / "cut.log"
    cut.write_text(raw[: raw.index("Event: HangupRequest")], encoding="utf-8")
    result = replay("--json", str(cut))
    assert result.exit_code == 0, result.stderr
    (call,) = calls(result)
    assert call["recovered"] is True
    assert call["agents"] == ["101"]
    assert result.stderr.strip().endswith("calls finished: 0, calls still open: 1")


def test_json_lines_input_gives_the_same_calls(tmp_path: Path) -> None:
    trace = TRACES / "09_attended_transfer" / "ami.log"
    parser = AmiParser()
    events = [e for e in parser.feed(trace.read_bytes().decode()) + parser.close() if isinstance(e, Event)]
    jsonl = tmp_path / "trace.jsonl"
    jsonl.write_text("".join(json.dumps(e.to_json()) + "\n" for e in events), encoding="utf-8")
    assert calls(replay("--json", str(jsonl))) == calls(replay("--json", str(trace)))


def test_malformed_messages_are_counted_not_fatal(tmp_path: Path) -> None:
    raw = (TRACES / "02_inbound_noanswer" / "ami.log").read_bytes().decode()
    broken = tmp_path / "broken.log"
    garbage = "\r\n\r\ngarbage without colon\r\n\r\nEvent: DialBegin"
    broken.write_text(raw.replace("\r\n\r\nEvent: DialBegin", garbage, 1))
    result = replay("--json", str(broken))
    assert result.exit_code == 0
    assert len(calls(result)) == 1
    assert "malformed skipped: 1," in result.stderr


def test_config_and_system_select_the_rules(tmp_path: Path) -> None:
    config = tmp_path / "calltrail.toml"
    config.write_text(
        '[[systems]]\nname = "a"\n\n[[systems]]\nname = "b"\nextension_pattern = "^1\\\\d\\\\d$"\n'
        'extension_map = { "trunk" = "555" }\n',
        encoding="utf-8",
    )
    trace = str(TRACES / "01_inbound_answered" / "ami.log")
    ambiguous = CliRunner().invoke(main, ["replay", "--json", "--config", str(config), trace])
    assert ambiguous.exit_code != 0
    assert "several telephone systems" in ambiguous.output
    (plain,) = calls(replay("--json", "--config", str(config), "--system", "a", trace))
    assert (plain["system"], plain["direction"]) == ("a", "incoming")
    (mapped,) = calls(replay("--json", "--config", str(config), "--system", "b", trace))
    # "trunk" maps to 555, which system b's pattern (1xx) does not call an extension: still a trunk.
    assert (mapped["system"], mapped["direction"]) == ("b", "incoming")
    missing = CliRunner().invoke(main, ["replay", "--json", "--config", str(config), "--system", "zz", trace])
    assert missing.exit_code != 0
    assert "no telephone system named 'zz'" in missing.output


def test_replay_without_json_stores_every_call_once(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", db_dsn)
    traces = [str(p) for p in sorted(TRACES.rglob("ami.log"))]
    for _ in range(2):
        result = replay(*traces)
        assert result.exit_code == 0, result.stderr
        assert "calls finished: 14, calls still open: 0" in result.stderr
        assert result.stdout == ""

    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(db_dsn)
        try:
            return list(await conn.fetch(
                "SELECT c.call_id, c.direction, c.status, c.transfer_count, c.agents, c.source,"
                " (SELECT count(*) FROM call_segments s WHERE s.call_pk = c.id) AS segments"
                " FROM calls c ORDER BY c.call_id"
            ))
        finally:
            await conn.close()

    rows = asyncio.run(fetch())
    assert len(rows) == 14
    attended = next(r for r in rows if r["call_id"] == "1795687394.123")
    assert (attended["direction"], attended["status"], attended["transfer_count"]) == ("incoming", "answered", 2)
    assert (attended["agents"], attended["segments"], attended["source"]) == (["101", "103"], 2, "replay")
    assert sum(r["status"] == "missed" for r in rows) == 4
