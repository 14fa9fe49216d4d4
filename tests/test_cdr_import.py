"""import-cdr on a real PostgreSQL: the recorded traces' Master.csv/CEL give the expected calls.

Each trace folder holds what Asterisk's cdr_csv and cel_custom wrote while the scenario ran, and
expected.json says what the calls were. With the CEL file every scenario comes out as expected.
From the CDR alone, two things cannot be known; the test names them (CDR_ONLY_DIFFERENCES).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from click.testing import CliRunner, Result
from conftest import TRACES

from ingest import cdr_store, store
from ingest.cdr_calls import CallBuilder
from ingest.cdr_csv import CdrRow, LocalTimes
from ingest.cdr_import import Grouper, ImportStats, produce_calls
from ingest.channels import PartyRules, parse_channel_name
from ingest.cli import main
from ingest.config import SystemConfig
from ingest.records import CallRecord, Segment

# The synthetic Master.csv of the benchmark (bench/ is a sibling of tests/, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cdr_synth import synthetic_rows, write_master_csv

SCENARIOS = sorted([*TRACES.glob("[0-9]*"), *TRACES.glob("local-channels/*")])
SCENARIO_IDS = [str(p.relative_to(TRACES)) for p in SCENARIOS]
# The recording PBX's clock was UTC; its rules are the defaults (numeric 2-6 digit endpoints are phones).
CONFIG = '[[systems]]\nname = "trace-pbx"\nbranch = "lab"\ntimezone = "UTC"\n'

# What the CDR alone cannot say, per scenario: field -> (what CDR-only import gives, why).
CDR_ONLY_DIFFERENCES: dict[str, dict[str, tuple[Any, str]]] = {
    "08_blind_transfer": {
        "called": ("102", "Asterisk rewrites the caller's CDR dst to the transfer target; only CEL's "
                          "CHAN_START keeps the DID"),
        "talk": (30, "the transfer target's leg starts when the transfer does: its 3 s of ringing count as talk "
                     "without CEL's BRIDGE_ENTER"),
    },
    "16_ivr_abandon": {
        "called": ("", "the IVR's CDR dst is 's'; the DID is only in CEL's CHAN_START"),
    },
}


def run_cli(dsn: str, tmp_path: Path, *args: str) -> Result:
    """calltrail-ingest with the trace PBX configured and the test database."""
    config = tmp_path / "calltrail.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return CliRunner().invoke(main, ["-c", str(config), *args], env={"CALLTRAIL_DSN": dsn},
                              catch_exceptions=False)


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of `sql` on the test database (CLI tests run outside an event loop)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.mark.parametrize("with_cel", [True, False], ids=["cdr+cel", "cdr-only"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_trace_import_matches_expected(db_dsn: str, tmp_path: Path, scenario: Path, with_cel: bool) -> None:
    cel = ["--cel", str(scenario / "cel.csv")] if with_cel else []
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", *cel, str(scenario / "cdr.csv"))
    assert result.exit_code == 0, result.output
    expected = json.loads((scenario / "expected.json").read_text(encoding="utf-8"))["calls"]
    calls = query(db_dsn, "SELECT * FROM calls ORDER BY start_time")
    assert len(calls) == len(expected), [dict(c) for c in calls]
    known = {} if with_cel else CDR_ONLY_DIFFERENCES.get(scenario.name, {})
    for call, want in zip(calls, expected, strict=True):
        assert call["source"] == "cdr"
        assert call["call_id"] == want["observed"]["linkedid"]
        assert call["direction"] == want["direction"]
        assert (call["status"] == "answered") == want["answered"]
        assert call["status"] == ("answered" if want["answered"] else
                                  "missed" if want["direction"] == "incoming" else "unanswered")
        assert call["agents"] == want["agents"]
        assert call["transfer_count"] == want["transfer_count"]
        assert call["caller"] == want["caller"]
        called, _why = known.get("called", (want["called"], ""))
        assert call["callee"] == called
        talk, _why = known.get("talk", (want["talk_seconds_approx"], ""))
        assert abs(float(call["talk_seconds"]) - talk) <= 3


def test_trace_details(db_dsn: str, tmp_path: Path) -> None:
    """Transfer kinds, ring attempts and missed reasons, with CEL."""
    for name in ("03_inbound_abandoned", "04_inbound_busy", "09_attended_transfer", "11_queue_ringall"):
        folder = TRACES / name
        result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--cel", str(folder / "cel.csv"),
                         str(folder / "cdr.csv"))
        assert result.exit_code == 0, result.output
    missed = sorted(r["reason"] for r in query(db_dsn, "SELECT reason FROM calls WHERE status = 'missed'"))
    assert missed == ["abandoned", "busy"]
    chain = query(db_dsn, """SELECT s.extension, s.began_by FROM call_segments s JOIN calls c ON c.id = s.call_pk
                             WHERE c.call_id = '1795687394.123' ORDER BY s.seq""")
    assert [(r["extension"], r["began_by"]) for r in chain] == [("101", "answered"), ("103", "attended_transfer")]
    rang = query(db_dsn, """SELECT r.extension, r.outcome FROM call_ring_attempts r JOIN calls c ON c.id = r.call_pk
                            WHERE c.call_id = '1795687845.643' ORDER BY r.extension""")
    assert [(r["extension"], r["outcome"]) for r in rang] == [
        ("101", "answered_elsewhere"), ("102", "answered"), ("103", "answered_elsewhere")]
    unmapped = {r["extension"]: r["call_count"] for r in query(db_dsn, "SELECT * FROM unmapped_extensions")}
    assert unmapped == {"101": 4, "102": 1, "103": 2}  # 101 rang in 03, 04 and 11, answered in 09


def test_reimport_adds_nothing_and_records_runs(db_dsn: str, tmp_path: Path) -> None:
    folder = TRACES / "09_attended_transfer"
    first = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(folder / "cdr.csv"))
    assert "calls stored: 1" in first.output
    assert "rows read: 5" in first.output
    stored = query(db_dsn, "SELECT id, stored_at FROM calls")
    second = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(folder / "cdr.csv"))
    assert second.exit_code == 0, second.output
    assert "calls stored: 0" in second.output
    assert "calls already stored, left as they were: 1" in second.output
    assert query(db_dsn, "SELECT id, stored_at FROM calls") == stored
    runs = query(db_dsn, "SELECT * FROM import_runs ORDER BY id")
    assert [(r["rows_read"], r["calls_stored"], r["rows_skipped"]) for r in runs] == [(5, 1, 0), (5, 0, 0)]
    assert all(r["finished_at"] is not None and r["source_file"].endswith("cdr.csv") for r in runs)
    # --replace rewrites what an import stored (here with CEL: same call, same id).
    third = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--replace", "--cel",
                    str(folder / "cel.csv"), str(folder / "cdr.csv"))
    assert "rewritten: 1" in third.output
    assert [r["id"] for r in query(db_dsn, "SELECT id FROM calls")] == [stored[0]["id"]]


def test_calls_from_the_daemon_are_never_overwritten(db_dsn: str, tmp_path: Path) -> None:
    start = datetime(2026, 11, 26, 9, 59, 56, tzinfo=UTC)
    daemon_call = CallRecord(
        system="trace-pbx", call_id="1795687196.106", direction="incoming", status="answered", reason=None,
        caller="09121234567", callee="02191001000", start=start, end=start + timedelta(seconds=23),
        answer=start + timedelta(seconds=3),
        segments=(Segment("101", "answered", start, start + timedelta(seconds=3), start + timedelta(seconds=23)),),
    )

    async def store_it() -> None:
        conn = await store.connect(db_dsn)
        try:
            system_id = await store.ensure_system(conn, SystemConfig(name="trace-pbx", branch="lab", timezone="UTC"))
            await store.store_calls(conn, system_id, [daemon_call], source="ami")
        finally:
            await conn.close()

    asyncio.run(store_it())
    folder = TRACES / "01_inbound_answered"
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--replace", str(folder / "cdr.csv"))
    assert "calls already stored, left as they were: 1" in result.output
    assert [r["source"] for r in query(db_dsn, "SELECT source FROM calls")] == ["ami"]


def test_bad_files(db_dsn: str, tmp_path: Path) -> None:
    not_cdr = tmp_path / "notes.csv"
    not_cdr.write_text("name,phone\nali,0912\n", encoding="utf-8")
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(not_cdr))
    assert result.exit_code == 1
    assert f"{not_cdr}:1: not an Asterisk CDR CSV: 2 columns" in result.output
    assert "Traceback" not in result.output
    unknown = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "elsewhere", str(not_cdr))
    assert unknown.exit_code == 1
    assert "no telephone system named 'elsewhere'" in unknown.output

    good = (TRACES / "02_inbound_noanswer" / "cdr.csv").read_text(encoding="utf-8")
    damaged = tmp_path / "Master.csv"
    damaged.write_text(good + '"","1","2"\n\n' + good.replace("2026-11-26 10:00:43", "yesterday", 1),
                       encoding="utf-8")
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(damaged))
    assert result.exit_code == 0, result.output
    assert "rows read: 6" in result.output
    assert "calls stored: 1" in result.output
    assert "rows skipped: 3" in result.output
    assert "1\t3 columns instead of 18" in result.output
    assert "1\tempty line" in result.output
    assert "1\tbad start/answer/end time" in result.output


def _linkedid_variant(tmp_path: Path) -> Path:
    """09's Master.csv as newcdrcolumns=yes writes it: peeraccount, linkedid, sequence appended."""
    linkedids = {}
    for line in (TRACES / "09_attended_transfer" / "cel.csv").read_text(encoding="utf-8").splitlines():
        cells = next(csv.reader([line]))
        linkedids[cells[14]] = cells[15]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for number, cells in enumerate(csv.reader(
            (TRACES / "09_attended_transfer" / "cdr.csv").read_text(encoding="utf-8").splitlines())):
        writer.writerow([*cells, "", linkedids[cells[16]], str(number)])
    path = tmp_path / "Master-21.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_linkedid_columns_and_header(db_dsn: str, tmp_path: Path) -> None:
    path = _linkedid_variant(tmp_path)
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(path))
    assert result.exit_code == 0, result.output
    call = query(db_dsn, "SELECT call_id, linkedids, agents, transfer_count FROM calls")
    assert [(c["call_id"], c["linkedids"], c["agents"], c["transfer_count"]) for c in call] == [
        ("1795687394.123", ["1795687394.123"], ["101", "103"], 2)]
    with_header = tmp_path / "export.csv"
    header = ("accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,calldate,answer,end,duration,"
              "billsec,disposition,amaflags,uniqueid,userfield\n")
    with_header.write_text(header + (TRACES / "05_outbound_answered" / "cdr.csv").read_text(encoding="utf-8"),
                           encoding="utf-8")
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(with_header))
    assert "calls stored: 1" in result.output
    assert "rows read: 1" in result.output


def test_local_time_of_the_system(tmp_path: Path) -> None:
    """Master.csv holds the PBX's local time: Tehran (UTC+03:30) becomes UTC."""
    text = (TRACES / "01_inbound_answered" / "cdr.csv").read_text(encoding="utf-8")
    stats = ImportStats()
    system = SystemConfig(name="tehran", timezone="Asia/Tehran")
    [[call]] = list(produce_calls(iter(text.splitlines(keepends=True)), "Master.csv", system, stats))
    assert call.start == datetime(2026, 11, 26, 6, 29, 56, tzinfo=UTC)
    assert call.external_number == "+989121234567"


def _row(line: int, uniqueid: str, channel: str, start: datetime, end: datetime) -> CdrRow:
    return CdrRow(line=line, src="0912", dst="021", dcontext="from-trunk", clid="", channel=channel,
                  dstchannel="", lastapp="Dial", lastdata="", start=start, answer=None, end=end, billsec=0,
                  disposition="NO ANSWER", uniqueid=uniqueid, linkedid="")


def test_grouper_window_is_bounded_and_late_legs_are_counted() -> None:
    grouper = Grouper(timedelta(minutes=10))
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    most_open = 0
    finished = 0
    for n in range(5000):  # a call a minute for 3.5 days
        start = t0 + timedelta(minutes=n)
        assert grouper.add(_row(n, f"{n}.1", f"PJSIP/trunk-{n:08x}", start, start + timedelta(seconds=30)))
        finished += sum(1 for _ in grouper.expired(start))
        most_open = max(most_open, grouper.open_rows)
    assert most_open <= 12  # only the last ten minutes' calls are held
    # A leg of call 4985 showing up now: its call was finished (and written) at minute 4996.
    late = _row(9999, "4985.1", "PJSIP/trunk-00001379", t0 + timedelta(minutes=4985), t0 + timedelta(minutes=4999))
    assert not grouper.add(late)
    finished += sum(1 for _ in grouper.expired(None))
    assert finished == 5000


def test_synthetic_master_streams_in_bounded_memory() -> None:
    """Many calls through produce_calls: every row accounted for, batches bounded."""
    out = io.StringIO()
    write_master_csv(out, 20_000)
    stats = ImportStats()
    out.seek(0)
    sizes = [len(batch) for batch in produce_calls(out, "Master.csv", SystemConfig(name="s"), stats, batch_size=500)]
    assert stats.rows_read == 20_000
    assert stats.rows_skipped == 0
    assert sum(sizes) == stats.calls_built
    assert max(sizes) <= 500 + 1000  # a batch is cut at most one flush (1,000 rows) past its size
    assert 12_000 < stats.calls_built < 17_000
    assert len(list(synthetic_rows(10))) == 10


def test_progress_bar(db_dsn: str, tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    with master.open("w", encoding="utf-8", newline="") as handle:
        write_master_csv(handle, 3000)
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", "--progress", str(master))
    assert result.exit_code == 0, result.output
    assert "Master.csv" in result.output  # the bar's label (CliRunner mixes stderr into the output)
    assert "rows read: 3000" in result.output
    stored = query(db_dsn, "SELECT count(*) AS n, count(DISTINCT call_id) AS d FROM calls")[0]
    assert stored["n"] == stored["d"] > 2000


def _calls(text: str) -> list[CallRecord]:
    stats = ImportStats()
    system = SystemConfig(name="lab", timezone="UTC")
    return [c for batch in produce_calls(iter(text.splitlines(keepends=True)), "Master.csv", system, stats)
            for c in batch]


def test_voicemail_busy_and_reused_channel_names() -> None:
    voicemail = (
        '"","09121110000","02191001000","from-trunk","""" <09121110000>","PJSIP/trunk-00000100",'
        '"PJSIP/101-00000101","Dial","PJSIP/101,20","2024-05-01 10:00:00",,"2024-05-01 10:00:20",20,0,"NO ANSWER",'
        '"DOCUMENTATION","1714557600.1",""\n'
        '"","09121110000","02191001000","from-trunk","""" <09121110000>","PJSIP/trunk-00000100","","VoiceMail",'
        '"101@default","2024-05-01 10:00:20","2024-05-01 10:00:20","2024-05-01 10:00:50",30,30,"ANSWERED",'
        '"DOCUMENTATION","1714557600.1",""\n'
    )
    busy_out = (
        '"","102","02188776655","internal","""Agent 102"" <102>","PJSIP/102-00000102","PJSIP/trunk-00000103","Dial",'
        '"PJSIP/02188776655@trunk","2024-05-01 11:00:00",,"2024-05-01 11:00:02",2,0,"BUSY","DOCUMENTATION",'
        '"1714561200.2",""\n'
    )
    # After a restart Asterisk counts channels from 1 again: same names, different calls.
    restarted = (
        '"","101","102","internal","""A"" <101>","PJSIP/101-00000001","PJSIP/102-00000002","Dial","PJSIP/102",'
        '"2024-05-01 12:00:00","2024-05-01 12:00:03","2024-05-01 12:01:00",60,57,"ANSWERED","DOCUMENTATION",'
        '"1714564800.3",""\n'
        '"","101","102","internal","""A"" <101>","PJSIP/101-00000001","PJSIP/102-00000002","Dial","PJSIP/102",'
        '"2024-05-01 12:30:00","2024-05-01 12:30:03","2024-05-01 12:31:00",60,57,"ANSWERED","DOCUMENTATION",'
        '"1714566600.1",""\n'
    )
    [missed] = _calls(voicemail)
    assert (missed.direction, missed.status, missed.reason) == ("incoming", "missed", "voicemail")
    assert [(r.extension, r.outcome) for r in missed.rang] == [("101", "no_answer")]
    [out] = _calls(busy_out)
    assert (out.direction, out.status, out.reason, out.external_number) == (
        "outgoing", "unanswered", "busy", "+982188776655")
    first, second = _calls(restarted)
    assert (first.call_id, second.call_id) == ("1714564800.3", "1714566600.1")
    assert first.agents == second.agents == ("102",)
    assert first.direction == "internal"


# --- The fast paths give what the plain code gives -------------------------------------------------------------


def test_local_times_minute_cache_matches_the_plain_parse() -> None:
    """Every second of a DST spring-forward and fall-back day, parsed twice (cached), as the uncached parse does."""
    zone = ZoneInfo("America/New_York")
    times = LocalTimes(zone)
    for day in ("2024-03-10", "2024-11-03"):
        for second in range(0, 6 * 3600, 7):
            text = f"{day} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            expected = LocalTimes(zone).parse(text)  # a fresh instance: nothing cached
            assert times.parse(text) == expected, text
            assert times.parse(text) == expected, text
    assert times.parse("2024-03-10 01:30:05.250") == datetime(2024, 3, 10, 6, 30, 5, 250000, tzinfo=UTC)
    assert times.parse("2024-03-10T01:30:05") == datetime(2024, 3, 10, 6, 30, 5, tzinfo=UTC)
    for bad in ("2024-03-10 01:30:60", "2024-03-10 01:30:5x", "yesterday"):
        with pytest.raises(ValueError, match=r"isoformat|second must be"):
            times.parse(bad)


def test_cached_party_lookup_matches_the_rules() -> None:
    """The builder's cache is keyed by the channel name without its suffix: names it must not confuse."""
    names = ["PJSIP/101-0000002a", "PJSIP/101-0000002b", "PJSIP/my-trunk-0000002a", "PJSIP/my-trunk-0000002c",
             "DAHDI/i1/09121234567-3", "DAHDI/i1/09121234567-4", "Local/101@agents-0000000f;1",
             "Local/101@agents-00000010;2", "Local/102@agents", "SIP/abc", "noslash", "PJSIP/-abc", "PJSIP/x-"]
    for source in ("endpoint", "callerid", "accountcode"):
        system = SystemConfig(name="s", extension_from=source, trunks=("my-trunk",), inbound_contexts=("from-pstn",))
        builder, rules = CallBuilder(system), PartyRules(system)
        for _ in range(2):
            for name in names:
                for callerid, account, context in (("101", "", ""), ("", "102", "from-pstn"), ("0912", "103", "x")):
                    want = rules.extension_of(parse_channel_name(name), callerid, account, context)
                    assert builder.extension(name, callerid, account, context) == want, (source, name, callerid)


def _synthetic_calls(rows: int) -> list[CallRecord]:
    out = io.StringIO()
    write_master_csv(out, rows)
    out.seek(0)
    return [c for b in produce_calls(out, "Master.csv", SystemConfig(name="s", timezone="UTC"), ImportStats())
            for c in b]


_COMPARED = """
SELECT c.call_id, c.linkedids, c.direction, c.status, c.reason, c.caller, c.caller_name, c.callee,
       c.external_number, c.start_time, c.answer_time, c.end_time, c.wait_seconds, c.talk_seconds,
       c.duration_seconds, c.transfer_count, c.agents, c.rang, c.recovered, c.source,
       (SELECT array_agg((s.seq, s.extension, s.began_by, s.ring_start, s.answer_time, s.end_time, s.talk_seconds,
                          s.channel)::text ORDER BY s.seq) FROM call_segments s WHERE s.call_pk = c.id) AS segments,
       (SELECT array_agg((r.seq, r.extension, r.start_time, r.end_time, r.outcome)::text ORDER BY r.seq)
        FROM call_ring_attempts r WHERE r.call_pk = c.id) AS rings
FROM calls c WHERE c.system_id = $1 ORDER BY c.call_id
"""


@pytest.mark.asyncio
async def test_bulk_insert_stores_what_store_calls_stores(db: asyncpg.Connection) -> None:
    """cdr_store's COPY path and the daemon's store.store_calls write the same rows (times, numerics, arrays)."""
    calls = _synthetic_calls(1500)
    # Fractions of a second and a name needing COPY escapes take the non-integer and quoting paths.
    odd = calls[0]
    calls[0] = replace(odd, caller_name='Tab\there "quoted" \\ back', linkedids=(odd.call_id, "x.1"),
                       end=odd.end + timedelta(microseconds=123456))
    by_daemon = await store.ensure_system(db, SystemConfig(name="daemon"))
    by_import = await store.ensure_system(db, SystemConfig(name="import"))
    await store.store_calls(db, by_daemon, calls, source="cdr")
    await cdr_store.prepare(db)
    assert await cdr_store.insert_new_calls(db, by_import, calls) == len(calls)
    assert [dict(r) for r in await db.fetch(_COMPARED, by_import)] == [
        dict(r) for r in await db.fetch(_COMPARED, by_daemon)]
    unmapped = "SELECT extension, first_seen, last_seen, call_count FROM unmapped_extensions WHERE system_id = $1"
    assert sorted(await db.fetch(unmapped, by_import)) == sorted(await db.fetch(unmapped, by_daemon))


@pytest.mark.asyncio
async def test_bulk_insert_leaves_calls_stored_meanwhile(db: asyncpg.Connection) -> None:
    """A batch meeting calls stored after the import checked (the daemon): only the others are added."""
    calls = _synthetic_calls(40)
    system_id = await store.ensure_system(db, SystemConfig(name="s"))
    await store.store_calls(db, system_id, calls[3:6], source="ami")
    await cdr_store.prepare(db)
    assert await cdr_store.insert_new_calls(db, system_id, calls) == len(calls) - 3
    stored = await db.fetch("SELECT call_id, source FROM calls ORDER BY id")
    assert sorted(r["call_id"] for r in stored) == sorted(c.call_id for c in calls)
    assert [r["source"] for r in stored if r["call_id"] in {c.call_id for c in calls[3:6]}] == ["ami"] * 3
    segments = await db.fetchval("SELECT count(*) FROM call_segments")
    assert segments == sum(len(c.segments) for c in calls)


def test_a_call_id_twice_in_one_file_is_stored_once(db_dsn: str, tmp_path: Path) -> None:
    """After a PBX restart a uniqueid may come again, hours later: the first call stands, the second is counted."""
    line = ('"","09121110000","02191001000","from-trunk","""" <09121110000>","PJSIP/trunk-00000100",'
            '"PJSIP/101-00000101","Dial","PJSIP/101,20","{day} 10:00:00","{day} 10:00:05","{day} 10:01:00",60,55,'
            '"ANSWERED","DOCUMENTATION","1714557600.1",""\n')
    # Between them, a day of other calls (the synthetic ones, 2024-03-20): the first call is long finished.
    filler = io.StringIO()
    write_master_csv(filler, 1200)
    master = tmp_path / "Master.csv"
    master.write_text(line.format(day="2024-03-19") + filler.getvalue() + line.format(day="2024-03-21"),
                      encoding="utf-8")
    result = run_cli(db_dsn, tmp_path, "import-cdr", "--system", "trace-pbx", str(master))
    assert result.exit_code == 0, result.output
    assert "calls already stored, left as they were: 1" in result.output
    assert "rows skipped: 0" in result.output
    stored = query(db_dsn, "SELECT start_time FROM calls WHERE call_id = '1714557600.1'")
    assert [r["start_time"].day for r in stored] == [19]
