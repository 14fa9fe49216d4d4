"""The call-details report's figures on a real PostgreSQL, against a data set known by construction.

See tests/report_data.py for the calls; every expected number below is counted by hand from its table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
import report_data

from ingest import store
from reports import api, data
from reports.context import CallRow, ReportDocument, Totals
from reports.errors import ReportFilterError
from reports.filters import ReportRequest, parse_filters

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 4, 21, 9, 0, tzinfo=UTC)
PERIOD = {"from": "1404/12/01", "to": "1405/01/31"}          # Esfand 1404 + Farvardin 1405
PERIOD_EN = {"from": "2026-02-20", "to": "2026-04-20", "lang": "en"}


@pytest_asyncio.fixture
async def loaded(db: asyncpg.Connection) -> report_data.Loaded:
    return await report_data.load(db)


def request(**values: object) -> ReportRequest:
    base: dict[str, object] = dict(PERIOD)
    base.update({k.rstrip("_"): v for k, v in values.items()})
    return parse_filters(base)


async def both_ways(conn: asyncpg.Connection, req: ReportRequest) -> dict[int | None, Totals]:
    """Totals from the rollup and from the raw calls: they must be identical; returns them."""
    scope = await data.resolve(conn, req)
    raw = await data.totals(conn, req, scope, use_rollup=False)
    rolled = await data.totals(conn, req, scope, use_rollup=True)
    as_totals = {k: Totals.from_record(v) for k, v in raw.items() if v["calls"]}
    assert {k: Totals.from_record(v) for k, v in rolled.items() if v["calls"]} == as_totals
    if None not in as_totals:
        as_totals[None] = Totals()
    return as_totals


async def test_grand_totals_of_the_tehran_branch(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.produce(db, request(branch="tehran", by="month"), now=NOW)
    assert document.rollup_used
    grand = document.grand
    counts = (grand.calls, grand.incoming, grand.outgoing, grand.missed, grand.internal, grand.answered)
    assert counts == (9, 5, 2, 2, 0, 6)
    assert (grand.incoming_talk, grand.outgoing_talk, grand.wait_seconds, grand.transfers) == (
        Decimal(340), Decimal(90), Decimal(111), 8)
    # Averages, half up: 340/5 = 68 s, 90/2 = 45 s, 111/9 = 12.33 s -> 12 s, 8/9 = 0.89 -> 0.9.
    assert (grand.avg_incoming_talk, grand.avg_outgoing_talk, grand.avg_wait, grand.avg_transfers) == (
        Decimal(68), Decimal(45), Decimal(12), Decimal("0.9"))
    assert [(b.label, b.totals.calls) for b in document.buckets] == [("اسفند ۱۴۰۴", 6), ("فروردین ۱۴۰۵", 3)]


BREAKDOWNS = [
    # (filters, expected calls per non-empty bucket label)
    ({"by": "day"}, {"1404/12/05": 3, "1404/12/20": 2, "1404/12/29": 1, "1405/01/01": 1, "1405/01/02": 1,
                     "1405/01/15": 1}),
    ({"by": "month"}, {"Esfand 1404": 6, "Farvardin 1405": 3}),
    ({"by": "season"}, {"Winter 1404": 6, "Spring 1405": 3}),
    ({"by": "year"}, {"1404": 6, "1405": 3}),
    ({"by": "day", **PERIOD_EN}, {"2026-02-24": 3, "2026-03-11": 2, "2026-03-20": 1, "2026-03-21": 1,
                                  "2026-03-22": 1, "2026-04-04": 1}),
    ({"by": "month", **PERIOD_EN}, {"February 2026": 3, "March 2026": 5, "April 2026": 1}),
    ({"by": "season", **PERIOD_EN}, {"Q1 2026": 8, "Q2 2026": 1}),
    ({"by": "year", **PERIOD_EN}, {"2026": 9}),
]


@pytest.mark.parametrize(("filters", "expected"), BREAKDOWNS,
                         ids=[f"{f.get('lang', 'fa')}-{f['by']}" for f, _ in BREAKDOWNS])
async def test_each_breakdown_in_both_calendars(db: asyncpg.Connection, loaded: report_data.Loaded,
                                                filters: dict[str, object], expected: dict[str, int]) -> None:
    req = request(branch="tehran", **filters)
    totals = await both_ways(db, req)
    found = {req.buckets[k].label("en"): t.calls for k, t in totals.items() if k is not None}
    assert found == expected
    # The subtotals add up to the grand total, figure by figure.
    added = Totals()
    for key, value in totals.items():
        if key is not None:
            added = added + value
    assert added == totals[None]
    assert totals[None].calls == 9


FILTERS = [
    ({"system": "tehran-main"}, 8),
    ({"branch": "tehran", "system": "tehran-sales"}, 1),
    ({"branch": "mashhad"}, 1),
    ({}, 11),                                   # every system: Berlin's call is on 1405/01/09
    ({"branch": "tehran", "type": "incoming"}, 5),
    ({"branch": "tehran", "type": "outgoing"}, 2),
    ({"branch": "tehran", "type": "missed"}, 2),
    ({"branch": "tehran", "type": "internal"}, 1),
    ({"branch": "tehran", "type": "all,internal"}, 10),
    ({"branch": "tehran", "type": "incoming,missed"}, 7),
]


@pytest.mark.parametrize(("filters", "calls"), FILTERS, ids=[str(f) for f, _ in FILTERS])
async def test_system_branch_and_type_filters(db: asyncpg.Connection, loaded: report_data.Loaded,
                                              filters: dict[str, object], calls: int) -> None:
    req = request(by="month", **filters)
    totals = await both_ways(db, req)
    document = await api.produce(db, req, now=NOW)
    assert totals[None].calls == calls == document.grand.calls
    assert len([r async for r in document.rows]) == calls


AGENTS = [
    # Ali held 101 until 1404/12/19: c1, c2 (answered first), c3 (rang). Nima after: c5 (placed), c9.
    ("ali", "all", ["c1", "c2", "c3"]),
    ("nima", "all", ["c5", "c9"]),
    ("nima", "all,internal", ["c5", "c8", "c9"]),
    ("hadi", "all", ["c2", "c3", "c4", "c6", "c7"]),     # 102: transferred to, rang, placed, answered, rang
    ("mina", "all", ["c2"]),
    ("leila", "all", ["c10"]),
    ("sara", "all", []),                                # a manager with no extension
]


@pytest.mark.parametrize(("agent", "types", "call_ids"), AGENTS, ids=[f"{a}-{t}" for a, t, _ in AGENTS])
async def test_agent_filter_follows_the_assignment_at_the_calls_time(
    db: asyncpg.Connection, loaded: report_data.Loaded, agent: str, types: str, call_ids: list[str]
) -> None:
    document = await api.produce(db, request(agent=agent, type=types, by="month"), now=NOW)
    assert not document.rollup_used
    rows = [r async for r in document.rows]
    assert [r.call_id for r in rows] == call_ids
    assert document.grand.calls == len(call_ids) == sum(b.totals.calls for b in document.buckets)


async def rows_by_id(conn: asyncpg.Connection, **filters: object) -> dict[str, CallRow]:
    document = await api.produce(conn, request(**filters), now=NOW)
    return {r.call_id: r async for r in document.rows}


async def test_agent_names_across_an_extension_reassignment(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    rows = await rows_by_id(db, type="all,internal")
    assert rows["c1"].agent_names == "علی رضایی"
    assert rows["c2"].agent_names == "علی رضایی → Hadi Agent → Mina Agent"
    assert rows["c5"].agent_names == "Nima Agent"
    assert rows["c8"].agent_names == "Nima Agent → Hadi Agent"
    assert rows["c3"].agent_names == "علی رضایی → Hadi Agent"
    # An extension assigned to nobody shows its number.
    assert rows["c11"].agent_names == "301"


async def test_identities_match_across_number_spellings(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    rows = await rows_by_id(db)
    names = {call_id: [i.name for i in row.identities] for call_id, row in rows.items()}
    assert names["c1"] == ["Hashemi"]           # caller 09121234567, CRM "0912 123 4567"
    assert names["c2"] == ["Hashemi"]           # caller +989121234567
    assert names["c3"] == ["Sadeghi", "Sadeghi Trading"]   # caller 00989351112233: two identities, flagged
    assert rows["c3"].several_identities
    assert not rows["c1"].several_identities
    assert names["c4"] == ["Org Co"]            # dialled 88776655 (bare local), CRM "0098 21 8877 6655"
    assert names["c10"] == ["Org Co"]           # caller 02188776655
    assert names["c6"] == []
    assert rows["c1"].identities[0].url == "https://crm.example/identities/1"


async def test_transfer_count_and_missed_calls(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    rows = await rows_by_id(db)
    counts = {call_id: row.transfer_count for call_id, row in rows.items()}
    assert counts == {"c1": 1, "c2": 3, "c3": 0, "c4": 1, "c5": 0, "c6": 1, "c7": 0, "c9": 1, "c10": 1,
                      "c11": 1, "c12": 1}
    for missed in ("c3", "c7"):
        row = rows[missed]
        assert row.kind == "missed"
        assert row.talk_seconds is None
        assert row.transfer_count == 0
    assert rows["c3"].reason == "abandoned"
    assert rows["c2"].talk_seconds == 120
    assert rows["c2"].wait_seconds == 10


async def test_local_day_edges_put_calls_in_the_right_jalali_year(db: asyncpg.Connection,
                                                                  loaded: report_data.Loaded) -> None:
    rows = await rows_by_id(db, system="tehran-main", by="year")
    # c6 at 23:59 on 1404/12/29 and c7 at 00:00:30 on 1405/01/01 are 90 s apart, on both sides of Nowruz.
    assert (rows["c6"].bucket, rows["c7"].bucket) == (0, 1)
    assert rows["c6"].start.strftime("%Y-%m-%d %H:%M") == "2026-03-20 23:59"


async def test_other_time_zones_read_the_raw_calls(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    berlin = request(system="berlin", tz="Europe/Berlin", by="day", lang="en", **{"from": "2026-03-28",
                                                                                   "to": "2026-03-30"})
    document = await api.produce(db, berlin, now=NOW)
    assert document.rollup_used   # Berlin's days are kept in Berlin time
    assert [b.totals.calls for b in document.buckets] == [0, 1, 0]
    in_tehran = request(system="berlin", by="day", lang="en", **{"from": "2026-03-28", "to": "2026-03-30"})
    document = await api.produce(db, in_tehran, now=NOW)
    assert not document.rollup_used
    assert [b.totals.calls for b in document.buckets] == [0, 1, 0]   # 01:30 Berlin is 04:00 Tehran, same day
    rows = [r async for r in document.rows]
    assert rows[0].start.strftime("%H:%M") == "04:00"


async def test_rollup_follows_updates_deletes_and_time_zone_changes(db: asyncpg.Connection,
                                                                    loaded: report_data.Loaded) -> None:
    req = request(by="day", type="all,internal", branch="tehran")
    before = await both_ways(db, req)
    # Storing c1 again with another talk time updates its row (an upsert): the rollup follows.
    c1 = report_data.calls()["tehran-main"][0]
    longer = report_data.answered("c1", c1.start, "incoming", c1.caller, c1.callee, 5, [("101", 75)],
                                  report_data.SYSTEMS["tehran-main"])
    await store.store_calls(db, loaded.systems["tehran-main"], [longer])
    after = await both_ways(db, req)
    assert after[None].incoming_talk == before[None].incoming_talk + 15
    await db.execute("DELETE FROM calls WHERE call_id IN ('c2', 'c3')")
    after = await both_ways(db, req)
    assert after[None].calls == before[None].calls - 2
    await db.execute("UPDATE telephone_systems SET timezone = 'UTC' WHERE name = 'tehran-main'")
    utc = request(by="day", tz="UTC", system="tehran-main", type="all,internal")
    assert (await both_ways(db, utc))[None].calls == 7
    # In Tehran time the rollup no longer matches the system's zone: the raw calls answer.
    tehran = request(by="day", system="tehran-main")
    assert not data.rollup_applies(tehran, await data.resolve(db, tehran))
    assert data.rollup_applies(utc, await data.resolve(db, utc))


async def test_paging_numbers_rows_across_pages(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    page = await api.produce(db, request(), now=NOW, limit=4, offset=4)
    rows = [r async for r in page.rows]
    assert [(r.number, r.call_id) for r in rows] == [(5, "c4"), (6, "c5"), (7, "c6"), (8, "c7")]
    assert page.grand.calls == 11


async def test_streamed_rows_equal_fetched_rows(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    req = request(type="all,internal")
    fetched = await api.produce(db, req, now=NOW)
    expected = [r async for r in fetched.rows]
    async with api.open_report(db, req, now=NOW) as document:
        assert isinstance(document, ReportDocument)
        assert [r async for r in document.rows] == expected
    assert len(expected) == 12


async def test_each_page_names_its_agents_as_the_whole_report_does(db: asyncpg.Connection,
                                                                   loaded: report_data.Loaded) -> None:
    """A page reads only its own agents' assignments (assignments_of.sql): the same rows as the
    streamed report, extension re-assignments and unassigned extensions included."""
    req = request(type="all,internal")
    async with api.open_report(db, req, now=NOW) as document:
        expected = [r async for r in document.rows]
    for size in (1, 3, 5):
        paged = []
        for offset in range(0, len(expected), size):
            page = await api.produce(db, req, now=NOW, limit=size, offset=offset)
            paged += [r async for r in page.rows]
        assert paged == expected, size


NAMES = [
    ({"agent": "ghost"}, "agent", "there is no user 'ghost'"),
    ({"branch": "shiraz"}, "branch", "there is no branch 'shiraz' (known: europe, mashhad, tehran)"),
    ({"system": "pbx9"}, "system", "there is no telephone system 'pbx9'"),
    ({"branch": "mashhad", "system": "tehran-main"}, "system",
     "telephone system 'tehran-main' is not in branch 'mashhad' (it is in 'tehran')"),
]


@pytest.mark.parametrize(("filters", "field", "message"), NAMES, ids=[n[1] + str(i) for i, n in enumerate(NAMES)])
async def test_unknown_names_are_filter_errors(db: asyncpg.Connection, loaded: report_data.Loaded,
                                               filters: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ReportFilterError) as caught:
        await api.produce(db, request(**filters), now=NOW)
    assert caught.value.field == field
    assert message in str(caught.value)


async def test_header_names_every_filter(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.produce(db, request(lang="en", calendar="jalali", branch="tehran", system="tehran-main",
                                             agent="ali", type="incoming,missed", company="Acme"), "sara", now=NOW)
    header = document.header
    assert (header.title, header.company, header.made_by) == ("Daily call details report", "Acme", "Sara Sales")
    assert dict(header.filters) == {
        "Breakdown": "day", "Agent": "علی رضایی", "Call type": "Incoming, Missed", "Branch": "شعبه تهران",
        "Telephone system": "مرکز تهران", "Calendar": "Jalali", "Time zone": "Asia/Tehran"}
    assert header.made_at.utcoffset() is not None
    assert header.made_at.hour == 12
    assert header.made_at.minute == 30


async def test_upgrading_from_version_1_fills_the_rollup_from_stored_calls(db: asyncpg.Connection,
                                                                           loaded: report_data.Loaded) -> None:
    # A version-1 database: calls stored, no rollup and no triggers yet.
    await db.execute("""
        DROP TRIGGER report_rollup_insert ON calls; DROP TRIGGER report_rollup_update ON calls;
        DROP TRIGGER report_rollup_delete ON calls; DROP TRIGGER report_rollup_timezone ON telephone_systems;
        DROP TABLE report_daily_totals; UPDATE schema_version SET version = 1""")
    current = store.schema_file_version()
    assert await store.init_schema(db) == (1, current)
    totals = await both_ways(db, request(branch="tehran", by="day", type="all,internal"))
    assert totals[None].calls == 10
    assert await store.init_schema(db) == (current, current)
