"""The compiled call builder and COPY encoder (ingest/_cdrbuild) against the Python path it replaces.

The oracle: the Python groups of a Master.csv (read_cdr + group_rows, no CEL), built by CallMaker into
batches as produce_calls does and encoded by cdr_store.BinaryBatch; the same groups as Rows through
_cdrbuild.Builder must give the same calls in the same batches, the same COPY bytes, the same
extensions seen, the same CallRecords and the same counts. Pure: no database.
"""

from __future__ import annotations

import io
import itertools
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import TRACES
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cdr_bulk import _ODD_ROWS

from ingest._cdrbuild import Batch, Builder
from ingest._cdrrow import Row
from ingest.cdr_calls import CallBuilder
from ingest.cdr_csv import CdrRow, LocalTimes, read_cdr
from ingest.cdr_import import CallMaker, Grouper, ImportStats, group_rows, zone_of
from ingest.cdr_store import BinaryBatch
from ingest.config import SystemConfig
from ingest.records import CallRecord

# bench/ is a sibling of tests/, not installed; the odd rows are test_cdr_bulk's.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cdr_synth import write_master_csv

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_WINDOW = timedelta(hours=3)
_SYSTEMS = {
    "default": SystemConfig(name="trace-pbx", branch="lab", timezone="UTC"),
    "callerid": SystemConfig(name="s", timezone="UTC", extension_from="callerid", trunks=("my-trunk", "trunk"),
                             inbound_contexts=("from-pstn",)),
    "accountcode": SystemConfig(name="s", timezone="UTC", extension_from="accountcode", trunks=("my-trunk",)),
    "narrow": SystemConfig(name="n", timezone="UTC", extension_pattern=r"^1\d\d$", country_code="44", city_code="20"),
}
_TRACE_FILES = sorted([*TRACES.glob("[0-9]*/cdr.csv"), *TRACES.glob("local-channels/*/cdr.csv")])


def to_row(row: CdrRow) -> Row:
    """The compiled importer's Row of a CdrRow."""
    out = Row()
    out.line = row.line
    out.src, out.dst, out.dcontext, out.clid = row.src, row.dst, row.dcontext, row.clid
    out.channel, out.dstchannel, out.lastapp, out.lastdata = row.channel, row.dstchannel, row.lastapp, row.lastdata
    out.disposition, out.uniqueid, out.linkedid, out.accountcode = (row.disposition, row.uniqueid, row.linkedid,
                                                                    row.accountcode)
    out.start = (row.start - _EPOCH) // _MICRO
    out.end = (row.end - _EPOCH) // _MICRO
    out.has_answer = row.answer is not None
    out.answer = (row.answer - _EPOCH) // _MICRO if row.answer is not None else 0
    out.billsec = row.billsec
    return out


def read_groups(text: str, system: SystemConfig) -> list[list[CdrRow]]:
    """The Python path's groups of rows of a Master.csv text, in the order calls finish."""
    rows = read_cdr(io.StringIO(text, newline=""), "Master.csv", LocalTimes(zone_of(system)))
    return list(group_rows(rows, "Master.csv", ImportStats(), Grouper(_WINDOW)))


@dataclass
class Outcome:
    batches: list[list[CallRecord]]
    stats: ImportStats


def python_batches(groups: Sequence[list[CdrRow]], system: SystemConfig, batch_size: int) -> Outcome:
    """produce_calls's batching of CallMaker's calls (no CEL)."""
    stats = ImportStats()
    maker = CallMaker(system, "Master.csv", stats)
    batches: list[list[CallRecord]] = []
    batch: list[CallRecord] = []
    for rows in groups:
        record = maker.build(rows)
        if record is not None:
            batch.append(record)
            if len(batch) >= batch_size:
                batches.append(batch)
                batch = []
    if batch:
        batches.append(batch)
    return Outcome(batches, stats)


def chunks(groups: Sequence[list[CdrRow]], sizes: Sequence[int] = (3, 0, 1, 7)) -> Iterator[list[list[Row]]]:
    """The groups as Rows in lists of calls, as _cdrgroup.Groups yields them (sizes in turn, empty lists too)."""
    at = turn = 0
    while at < len(groups):
        size = sizes[turn % len(sizes)]
        turn += 1
        yield [[to_row(r) for r in rows] for rows in groups[at:at + size]]
        at += size
    yield []


def compiled_batches(groups: Sequence[list[CdrRow]], system: SystemConfig,
                     batch_size: int) -> tuple[list[Batch], ImportStats]:
    stats = ImportStats()
    builder = Builder(CallBuilder(system))
    # _cdrgroup.Groups yields lists of calls; cdr_fast flattens them (itertools.chain.from_iterable).
    batches = list(builder.batches(itertools.chain.from_iterable(chunks(groups)), batch_size, stats, "Master.csv"))
    return batches, stats


def assert_same_batch(mine: Batch, records: list[CallRecord], first_id: int) -> None:
    """Every view of one batch equals the Python one: records, ids, COPY bytes, seen (all and subsets)."""
    assert mine.count == len(records)
    assert mine.call_ids == [r.call_id for r in records]
    assert mine.records() == records
    ids = list(range(first_id, first_id + len(records)))
    want = BinaryBatch(ids, 7, records, "cdr", {})
    assert mine.encode(ids, 7, "cdr") == (want.calls, want.segments, want.rings)
    assert mine.seen() == want.seen
    for keep in ([], list(range(len(records)))[::-2], [len(records) - 1] if records else []):
        kept = [records[i] for i in keep]
        kept_ids = [900_000 + 3 * i for i in range(len(keep))]
        want = BinaryBatch(kept_ids, 2, kept, "import", {})
        assert mine.encode(kept_ids, 2, "import", keep) == (want.calls, want.segments, want.rings)
        assert mine.seen(keep) == want.seen


def assert_same(groups: Sequence[list[CdrRow]], system: SystemConfig, batch_size: int = 2000) -> Outcome:
    """The compiled path gives what the Python path gives for these groups; the Python outcome."""
    want = python_batches(groups, system, batch_size)
    mine, stats = compiled_batches(groups, system, batch_size)
    assert [b.count for b in mine] == [len(b) for b in want.batches]
    first_id = 1
    for batch, records in zip(mine, want.batches, strict=True):
        assert_same_batch(batch, records, first_id)
        first_id += len(records)
    assert stats == want.stats
    return want


@pytest.mark.parametrize("system", list(_SYSTEMS), ids=list(_SYSTEMS))
@pytest.mark.parametrize("path", _TRACE_FILES, ids=[str(p.parent.relative_to(TRACES)) for p in _TRACE_FILES])
def test_recorded_traces(path: Path, system: str) -> None:
    config = _SYSTEMS[system]
    groups = read_groups(path.read_text(encoding="utf-8"), config)
    want = assert_same(groups, config)
    assert sum(len(b) for b in want.batches) >= 1
    assert_same(groups, config, batch_size=1)


def test_all_traces_in_one_file_and_batch_boundaries() -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in _TRACE_FILES)
    groups = read_groups(text, _SYSTEMS["default"])
    for size in (1, 2, 3, len(groups) - 1, len(groups), len(groups) + 1):
        assert_same(groups, _SYSTEMS["default"], batch_size=size)


def _synthetic(rows: int, seed: int = 7) -> str:
    out = io.StringIO()
    write_master_csv(out, rows, seed)
    return out.getvalue()


def test_synthetic_file() -> None:
    system = _SYSTEMS["default"]
    groups = read_groups(_synthetic(20_000), system)
    want = assert_same(groups, system, batch_size=2000)
    calls = [c for b in want.batches for c in b]
    assert len(calls) > 10_000
    assert {c.direction for c in calls} == {"incoming", "outgoing", "internal"}
    assert any(s.began_by == "blind_transfer" for c in calls for s in c.segments)
    assert_same(groups[:3000], _SYSTEMS["callerid"], batch_size=777)


def test_odd_rows_of_the_bulk_test() -> None:
    """A bad line, a call id used twice, a row arriving far too late (tests/test_cdr_bulk.py's file)."""
    text = _ODD_ROWS.format(day="2024-03-19") + _synthetic(3000, seed=3) + "not,a,cdr,line\n" \
        + _ODD_ROWS.format(day="2024-03-21")
    for system in _SYSTEMS.values():
        assert_same(read_groups(text, system), system, batch_size=500)


# --- hand-made groups ---

_T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class Rows:
    """Hand-made CDR rows, numbered as lines of a file."""

    def __init__(self) -> None:
        self.line = 0

    def __call__(self, channel: str, dstchannel: str, start: float, end: float, answer: float | None = None, *,
                 src: str = "09121234567", dst: str = "02191001000", app: str = "Dial", data: str = "",
                 disposition: str | None = None, uniqueid: str = "", linkedid: str = "", context: str = "from-trunk",
                 clid: str = '"Someone" <09121234567>', accountcode: str = "") -> CdrRow:
        self.line += 1
        when = _T0 + timedelta(seconds=start)
        if disposition is None:
            disposition = "ANSWERED" if answer is not None else "NO ANSWER"
        return CdrRow(self.line, src, dst, context, clid, channel, dstchannel, app, data, when,
                      _T0 + timedelta(seconds=answer) if answer is not None else None, _T0 + timedelta(seconds=end),
                      0, disposition, uniqueid, linkedid, accountcode)


def _hand_made() -> list[list[CdrRow]]:
    r = Rows()
    trunk = "PJSIP/trunk-0000a001"
    return [
        # Local channel pairs: a queue's members behind Local channels, one answers.
        [r("Local/02191001001@from-trunk-00000019;2", "Local/101@agents-0000001a;1", 0, 4, 0, app="Queue",
           disposition="NO ANSWER", uniqueid="1.51"),
         r("Local/101@agents-0000001a;2", "PJSIP/101-0000001d", 0, 4, None, uniqueid="1.53"),
         r("Local/02191001001@from-trunk-00000019;2", "Local/102@agents-0000001b;1", 0, 25, 0, app="Queue",
           uniqueid="1.51"),
         r("Local/102@agents-0000001b;2", "PJSIP/102-0000001e", 0, 25, 4, uniqueid="1.54")],
        # An originated Local ;2 half without linkedid: the call id is the ;1 half's uniqueid.
        [r("Local/101@agents-00000020;2", "PJSIP/101-00000021", 10, 40, 12, uniqueid="1700000000.41")],
        # No uniqueid nor linkedid: cdr-<channel>-<epoch seconds>.
        [r(trunk, "PJSIP/101-00000022", 20.5, 80, 25)],
        # Queue: the caller answered by the queue, members ringing until one answers.
        [r(trunk, "PJSIP/101-00000023", 30, 38, 30, app="Queue", disposition="NO ANSWER", linkedid="q.1"),
         r(trunk, "PJSIP/102-00000024", 30, 90, 30, app="Queue", linkedid="q.1"),
         r(trunk, "PJSIP/103-00000025", 38, 41, 38, app="Queue", disposition="NO ANSWER", linkedid="q.1")],
        # Blind transfer: the second agent's leg starts when the first one's ends.
        [r(trunk, "PJSIP/101-00000026", 40, 60, 43, linkedid="b.1", dst="102"),
         r(trunk, "PJSIP/102-00000027", 60, 100, 60, linkedid="b.1", dst="102")],
        # Attended transfer with a consultation leg from the first agent to the second.
        [r(trunk, "PJSIP/101-00000028", 50, 90, 52, linkedid="a.1"),
         r("PJSIP/101-00000028", "PJSIP/103-00000029", 70, 85, 73, src="101", dst="103", context="internal",
           linkedid="a.2"),
         r(trunk, "PJSIP/103-00000029", 85, 120, 85, linkedid="a.1")],
        # Busy, failed, congestion (incoming, outgoing, internal).
        [r(trunk, "PJSIP/101-0000002a", 60, 61, None, disposition="BUSY", linkedid="x.1")],
        [r(trunk, "PJSIP/101-0000002b", 60, 61, None, disposition="FAILED", linkedid="x.2"),
         r(trunk, "PJSIP/102-0000002c", 60, 61, None, disposition="CONGESTION", linkedid="x.2")],
        [r("PJSIP/101-0000002d", "PJSIP/trunk-0000002e", 61, 62, None, disposition="CONGESTION", src="101",
           dst="02188889999", context="internal", linkedid="x.3")],
        [r("PJSIP/101-0000002f", "", 61, 62, None, disposition="BUSY", src="101", dst="02188889999",
           context="internal", linkedid="x.4")],
        [r("PJSIP/101-00000030", "PJSIP/102-00000031", 62, 70, None, disposition="BUSY", src="101", dst="102",
           context="internal", linkedid="x.5")],
        [r("PJSIP/101-00000032", "PJSIP/trunk-00000033", 62, 70, None, src="101", dst="s",
           data="PJSIP/02188889999@trunk,30", context="internal", linkedid="x.6")],
        # Voicemail after the ringing; IVR answered by the PBX only; abandoned in a queue.
        [r(trunk, "PJSIP/101-00000034", 70, 90, None, linkedid="v.1"),
         r(trunk, "", 90, 110, 90, app="VoiceMail", data="101@default", linkedid="v.1")],
        [r(trunk, "", 80, 95, 80, app="BackGround", dst="s", linkedid="i.1")],
        [r(trunk, "", 80, 95, None, app="Queue", linkedid="i.2")],
        [r(trunk, "", 80, 95, None, app="voicemail", linkedid="i.3")],
        [r(trunk, "PJSIP/101-00000035", 80, 95, None, linkedid="i.4"),
         r(trunk, "PJSIP/102-00000036", 80, 95, None, disposition="BUSY", linkedid="i.4")],
        # Fractional seconds: talk, wait and ring times with thousandths and below.
        [r(trunk, "PJSIP/101-00000037", 90.123456, 150.987654, 93.5005, linkedid="f.1"),
         r(trunk, "PJSIP/102-00000038", 150.987654, 170.0000015, 151.25, linkedid="f.1")],
        [r(trunk, "PJSIP/101-00000039", 90.0001, 90.0004, 90.0002, linkedid="f.2")],
        # One turn written as two rows (hold), an internal call, an outgoing call through a trunk.
        [r(trunk, "PJSIP/101-0000003a", 100, 130, 101, linkedid="h.1"),
         r(trunk, "PJSIP/101-0000003b", 130.5, 160, 130.5, linkedid="h.1")],
        [r("PJSIP/101-0000003c", "PJSIP/105-0000003d", 110, 170, 115, src="101", dst="105", context="internal",
           clid='"Agent" <101>', linkedid="n.1")],
        [r("PJSIP/101-0000003e", "PJSIP/trunk-0000003f", 120, 300, 130, src="101", dst="02188889999",
           context="internal", clid='"Agent" <101>', uniqueid="o.1", linkedid="o.1")],
        # Several linkedids and no root linkedid; rows given out of order; a Local pair without suffix.
        [r(trunk, "Local/101@agents;1", 141, 150, 141, linkedid="m.2"),
         r(trunk, "PJSIP/102-00000040", 140, 145, None, uniqueid="m.0"),
         r("Local/101@agents;2", "PJSIP/101-00000041", 141, 150, 142, linkedid="m.1")],
        # Boundaries: a second row of one turn answered exactly 1 s after the first ended; a phone that began
        # ringing exactly 1 s after another answered; equal answers with the later line first.
        [r(trunk, "PJSIP/101-00000050", 200, 230, 201, linkedid="e.1"),
         r(trunk, "PJSIP/101-00000051", 231, 260, 231, linkedid="e.1"),
         r(trunk, "PJSIP/102-00000052", 202, 210, None, linkedid="e.1")],
        [r(trunk, "PJSIP/104-00000053", 211, 250, 215, linkedid="e.2"),
         r(trunk, "PJSIP/103-00000054", 210, 240, 215, linkedid="e.2")],
        [r("PJSIP/101-00000055", "PJSIP/102-00000056", 220, 230, None, src="101", dst="123456", context="internal",
           linkedid="e.3")],
        # Odd: answer after the end, empty channels of party B, a non-ASCII name.
        [r(trunk, "PJSIP/101-00000042", 150, 150, 150, clid='"Zoë Ñandú" <0912>', linkedid="z.1")],
        [r("DAHDI/i1/09121234567-3", "PJSIP/104-00000043", 160, 200, 161, linkedid="d.1")],
    ]


@pytest.mark.parametrize("system", list(_SYSTEMS), ids=list(_SYSTEMS))
def test_hand_made_groups(system: str) -> None:
    groups = _hand_made()
    want = assert_same(groups, _SYSTEMS[system], batch_size=4)
    calls = {c.call_id: c for b in want.batches for c in b}
    if system == "default":
        assert "1700000000.40" in calls
        assert any(k.startswith("cdr-PJSIP/trunk-0000a001-") for k in calls)
        assert [s.began_by for s in calls["a.1"].segments] == ["answered", "attended_transfer"]
        assert [s.began_by for s in calls["b.1"].segments] == ["answered", "blind_transfer"]
        assert calls["v.1"].reason == "voicemail"
        assert calls["i.1"].reason == "ivr"
        assert calls["x.3"].reason == "failed"
    for size in (1, 5, len(groups)):
        assert_same(groups, _SYSTEMS[system], batch_size=size)


def test_a_call_that_cannot_be_built_is_counted_and_logged(caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    groups = _hand_made()
    system = _SYSTEMS["default"]

    def refuse(self: CallBuilder, number: str) -> str | None:
        if number == "09121234567":
            raise ValueError("not a number")
        return None

    monkeypatch.setattr(CallBuilder, "normalize", refuse)
    with caplog.at_level(logging.WARNING, logger="ingest.cdr_import"):
        want = assert_same(groups, system, batch_size=3)
    assert want.stats.skipped["call could not be built"] > 0
    messages = [rec.getMessage() for rec in caplog.records]
    python, compiled = messages[: len(messages) // 2], messages[len(messages) // 2:]
    assert python == compiled
    assert "could not be built: not a number" in python[0]


# --- random groups ---

_CHANNELS = ["PJSIP/trunk-00000001", "PJSIP/trunk-00000002", "PJSIP/101-00000003", "PJSIP/102-00000004",
             "PJSIP/103-00000005", "Local/101@agents-00000006;1", "Local/101@agents-00000006;2",
             "Local/102@agents-00000007;1", "Local/102@agents-00000007;2", "Local/0219@from-trunk-00000008;2",
             "DAHDI/1-1", "SIP/abc", "PJSIP/101-00000003", ""]
_APPS = ["Dial", "Queue", "VoiceMail", "Hangup", "BackGround", "queue", "QUEUE", "VOICEMAIL", "Queu", "voicemaİl",
         "Queué"]
_DISPOSITIONS = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"]
_NUMBERS = ["", "s", "101", "102", "02191001000", "09121234567", "0218888999900", "99", "123456", "12345"]
_IDS = ["", "", "1700000000.1", "1700000000.2", "x"]


@st.composite
def _random_row(draw: st.DrawFn) -> CdrRow:
    # Whole seconds mostly, so that times meet exactly (the 1 s slack, equal answers); fractions sometimes.
    start = draw(st.integers(0, 20)) + draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, 0.0004, 0.0000015]))
    length = draw(st.integers(0, 20)) + draw(st.sampled_from([0.0, 0.0, 0.0, 0.25]))
    answered = draw(st.booleans())
    answer = start + min(length, draw(st.integers(0, 20))) if answered else None
    channel = draw(st.sampled_from(_CHANNELS[:-1]))
    return CdrRow(
        line=draw(st.integers(1, 30)), src=draw(st.sampled_from(_NUMBERS)), dst=draw(st.sampled_from(_NUMBERS)),
        dcontext=draw(st.sampled_from(["from-trunk", "internal", "from-pstn", ""])),
        clid=draw(st.sampled_from(['"A" <101>', "", '"" <0912>', "junk"])), channel=channel,
        dstchannel=draw(st.sampled_from(_CHANNELS)), lastapp=draw(st.sampled_from(_APPS)),
        lastdata=draw(st.sampled_from(["", "PJSIP/0218888@trunk,30", "Local/101@agents/n", "PJSIP/101&PJSIP/102"])),
        start=_T0 + timedelta(seconds=start), answer=_T0 + timedelta(seconds=answer) if answer is not None else None,
        end=_T0 + timedelta(seconds=start + length), billsec=0, disposition=draw(st.sampled_from(_DISPOSITIONS)),
        uniqueid=draw(st.sampled_from(_IDS)), linkedid=draw(st.sampled_from(_IDS)),
        accountcode=draw(st.sampled_from(["", "101", "trunk"])),
    )


@settings(max_examples=400)
@given(groups=st.lists(st.lists(_random_row(), min_size=1, max_size=8), min_size=1, max_size=6),
       system=st.sampled_from(list(_SYSTEMS)), batch_size=st.integers(1, 4))
def test_random_groups(groups: list[list[CdrRow]], system: str, batch_size: int) -> None:
    assert_same(groups, _SYSTEMS[system], batch_size=batch_size)


def test_the_builder_takes_any_iterable_of_groups() -> None:
    groups = _hand_made()[:5]
    system = _SYSTEMS["default"]
    builder = Builder(CallBuilder(system))

    def lazily() -> Iterator[tuple[Row, ...]]:
        for rows in groups:
            yield tuple(to_row(r) for r in rows)

    batches = list(builder.batches(lazily(), 2, ImportStats(), "x.csv"))
    assert [b.count for b in batches] == [2, 2, 1]
    assert [c for b in batches for c in b.records()] == [builder.build([to_row(r) for r in rows]) for rows in groups]


_CLIDS = ['"Agent 101" <101>', '"" <09121234567>', '" Bob  " <1>', '"A"<1>', '"A" <1> ', '"A\tB" <1>', '"Zoë" <1>',
          '"A" <1>>', '"<A" <1>', '"A" <<1>', '"" <>', '"A" <>', '"A" "B" <1>', 'Bob <1>', '"A" < 1 >', '""" <1>',
          '"A"  <1>', '"\'q\'" <x@y>', '" " <1>', '"A\nB" <1>', '"A" <1\n>', "", '"', '"A" <', 'x" <1>']


@given(clid=st.one_of(st.sampled_from(_CLIDS),
                      st.text(alphabet=st.sampled_from('"<> A1\t\né'), max_size=12),
                      st.builds(lambda n, d: f'"{n}" <{d}>', st.text(alphabet=st.sampled_from(' Ab"<>\t'), max_size=5),
                                st.text(alphabet=st.sampled_from(' 1"<>'), max_size=4))))
def test_caller_names(clid: str) -> None:
    """The builder works the plain `"Name" <number>` clids out itself: as CallBuilder.caller_name does."""
    system = _SYSTEMS["default"]
    row = Rows()("PJSIP/trunk-00000001", "PJSIP/101-00000002", 0, 10, 2, clid=clid, linkedid="c.1")
    record = Builder(CallBuilder(system)).build([to_row(row)])
    assert record.caller_name == CallBuilder(system).caller_name(clid)
    assert_same([[row]], system)


def test_no_rows_and_bad_indices_are_refused() -> None:
    system = _SYSTEMS["default"]
    with pytest.raises(ValueError, match="empty"):
        python_batches([[]], system, 10)
    with pytest.raises(ValueError, match="empty"):
        compiled_batches([[]], system, 10)
    groups = _hand_made()[:3]
    (batch,), _ = compiled_batches(groups, system, 10)
    records = python_batches(groups, system, 10).batches[0]
    want = BinaryBatch([5], 1, [records[-1]], "cdr", {})
    assert batch.encode([5], 1, "cdr", [-1]) == (want.calls, want.segments, want.rings)
    with pytest.raises(IndexError):
        batch.encode([5], 1, "cdr", [3])
    with pytest.raises(IndexError):
        batch.seen([-4])
    with pytest.raises(ValueError, match="ids"):
        batch.encode([1, 2], 1, "cdr")
