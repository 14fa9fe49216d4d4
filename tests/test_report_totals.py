"""The sibling reports (totals by agent, date, phone number) and one call's transfer chain."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
import report_data

from ingest import store
from reports import api
from reports.context import Totals
from reports.errors import ReportFilterError, ReportNotFoundError
from reports.filters import parse_filters

pytestmark = pytest.mark.asyncio

TEHRAN = {"from": "1404/12/01", "to": "1405/01/31", "branch": "tehran", "lang": "en", "calendar": "jalali"}


@pytest_asyncio.fixture
async def loaded(db: asyncpg.Connection) -> report_data.Loaded:
    return await report_data.load(db)


def counts(t: Totals) -> tuple[int, int, int, int, int, int]:
    """The sibling columns: received (count, talk), placed (count, talk), transfers, missed (whole seconds here)."""
    assert t.incoming_talk % 1 == 0
    assert t.outgoing_talk % 1 == 0
    return (t.incoming, int(t.incoming_talk), t.outgoing, int(t.outgoing_talk), t.transfers, t.missed)


async def test_totals_by_agent(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.totals_report(db, parse_filters(TEHRAN), "agent")
    lines = {line.key: counts(line.totals) for line in document.lines}
    # Each call counts once: for who answered first (incoming) or who placed it; missed calls have no agent.
    assert lines == {
        "": (0, 0, 0, 0, 0, 2),                  # c3, c7
        "Hadi Agent": (1, 15, 1, 90, 2, 0),      # c6; c4
        "Leila Agent": (1, 100, 0, 0, 1, 0),     # c10
        "Nima Agent": (1, 45, 1, 0, 1, 0),       # c9; c5 (not answered) after the re-assignment
        "علی رضایی": (2, 180, 0, 0, 4, 0),       # c1, c2 (60 + 120 s, 1 + 3 transfers)
    }
    assert document.lines[0].key == ""          # the row of calls with no agent comes first
    assert counts(document.sum) == (5, 340, 2, 90, 8, 2)
    # Average over 5 rows, half up: 5/5 = 1, 340/5 = 68 s, 2/5 = 0.4 -> 0, 90/5 = 18 s, 8/5 = 1.6 -> 2, 2/5 -> 0.
    assert counts(document.average) == (1, 68, 0, 18, 2, 0)


async def test_totals_by_date_sum_and_average_round_half_up(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.totals_report(db, parse_filters({**TEHRAN, "by": "month"}), "date")
    assert [(line.key, counts(line.totals)) for line in document.lines] == [
        ("Esfand 1404", (3, 195, 2, 90, 6, 1)),   # c1 c2 c6 received, c4 c5 placed, c3 missed
        ("Farvardin 1405", (2, 145, 0, 0, 2, 1)),
    ]
    assert counts(document.sum) == (5, 340, 2, 90, 8, 2)
    # 5/2 = 2.5 -> 3, 340/2 = 170, 2/2 = 1, 90/2 = 45, 8/2 = 4, 2/2 = 1.
    assert counts(document.average) == (3, 170, 1, 45, 4, 1)
    days = await api.totals_report(db, parse_filters({**TEHRAN, "by": "day"}), "date")
    assert len(days.lines) == 6                 # only days with calls, as the seed shows


async def test_totals_by_number(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.totals_report(db, parse_filters({**TEHRAN, "sort": "calls"}), "number")
    lines = [(line.key, line.note, line.totals.calls) for line in document.lines]
    # Spellings of one number are one row; the identities holding it are named.
    assert lines[:2] == [("02188776655", "Org Co", 2), ("+989121234567", "Hashemi", 2)]  # ties: by number
    assert sorted(lines[2:]) == [("00989351112233", "Sadeghi، Sadeghi Trading", 1), ("09120000001", "", 1),
                                 ("09120000002", "", 1), ("09120000003", "", 1), ("09350000000", "", 1)]
    assert document.sum.calls == 9
    by_number = await api.totals_report(db, parse_filters(TEHRAN), "number")
    assert next(line.key for line in by_number.lines) == "02188776655"   # sorted by E.164: +9821... first


async def test_sum_rows_equal_the_details_report(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    request = parse_filters({**TEHRAN, "by": "month", "type": "all,internal"})
    details = await api.produce(db, request)
    for by in ("agent", "date"):
        document = await api.totals_report(db, request, by)
        assert document.sum == details.grand, by
    assert details.grand.internal == 1


async def test_a_calls_transfer_chain(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    chain = await api.chain_report(db, "c2", lang="en")
    assert (chain.kind, chain.transfer_count, chain.talk_seconds, chain.wait_seconds) == (
        "incoming", 3, Decimal(120), Decimal(10))
    assert [(t.seq, t.extension, t.agent, t.how, t.talk_seconds) for t in chain.turns] == [
        (1, "101", "علی رضایی", "answered", Decimal(30)), (2, "102", "Hadi Agent", "blind_transfer", Decimal(40)),
        (3, "103", "Mina Agent", "attended_transfer", Decimal(50))]
    assert [t.ring_seconds for t in chain.turns] == [10, 3, 3]
    missed = await api.chain_report(db, "c3", lang="en")
    assert missed.turns == ()
    assert [r.extension for r in missed.rings] == ["101", "102"]
    assert missed.rings[0].ring_seconds == 20
    assert missed.reason == "abandoned"


async def test_unknown_and_ambiguous_calls(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    with pytest.raises(ReportNotFoundError, match="there is no call 'nope'"):
        await api.chain_report(db, "nope")
    # The same Linkedid on two systems: the system must be named.
    c1 = report_data.calls()["tehran-main"][0]
    await store.store_calls(db, loaded.systems["mashhad"], [c1])
    with pytest.raises(ReportFilterError, match="exists on several telephone systems"):
        await api.chain_report(db, "c1")
    chain = await api.chain_report(db, "c1", system="mashhad", lang="en")
    assert chain.system == "mashhad"
    assert chain.turns[0].agent is None
