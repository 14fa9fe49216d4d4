"""Properties of call assembly over the real traces: interleaving, duplicates, truncation, garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.assembler import CallAssembler
from ingest.config import SystemConfig
from ingest.events import AmiParser, Event, event_from_mapping
from ingest.records import CallRecord
from ingest.testing.tracemix import interleave, retag, trace_messages

TRACES = Path(__file__).parent / "fixtures" / "ami-traces"
LOGS = sorted(TRACES.rglob("ami.log"))
MESSAGES = [trace_messages(path) for path in LOGS]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(messages: list[str]) -> list[Event]:
    parser = AmiParser()
    items = parser.feed("\n\n".join(messages) + "\n\n") + parser.close()
    assert parser.malformed == 0
    return [i for i in items if isinstance(i, Event)]


def assemble(events: list[Event]) -> tuple[list[CallRecord], CallAssembler]:
    assembler = CallAssembler(SystemConfig())
    records: list[CallRecord] = []
    for event in events:
        records += assembler.feed(event)
    return records, assembler


def by_id(records: list[CallRecord]) -> list[CallRecord]:
    return sorted(records, key=lambda r: r.call_id)


def check_invariants(record: CallRecord) -> None:
    assert record.start <= record.end
    assert (record.status == "answered") == bool(record.segments) == (record.transfer_count > 0)
    assert (record.reason is None) == (record.status == "answered")
    assert record.status != "missed" or record.direction == "incoming"
    assert record.talk_seconds >= 0
    assert record.wait_seconds >= 0
    for segment in record.segments:
        assert segment.answer <= segment.end
    assert all(a.extension != b.extension for a, b in zip(record.segments, record.segments[1:], strict=False))


trace_picks = st.lists(st.integers(min_value=0, max_value=len(LOGS) - 1), min_size=2, max_size=6)


@SETTINGS
@given(picks=trace_picks, order=st.lists(st.integers(min_value=0, max_value=5), max_size=3000))
def test_interleaving_calls_gives_the_same_records(picks: list[int], order: list[int]) -> None:
    copies = [(f"i{n}", MESSAGES[pick]) for n, pick in enumerate(picks)]
    alone: list[CallRecord] = []
    for tag, messages in copies:
        records, _ = assemble(parse([retag(m, tag) for m in messages]))
        alone += records
    mixed, assembler = assemble(parse(list(interleave(order, copies))))
    assert by_id(mixed) == by_id(alone)
    assert len(mixed) == len(copies)
    assert assembler.open_count == 0


def test_every_event_fed_twice_gives_the_same_records() -> None:
    for messages in MESSAGES:
        events = parse(messages)
        once, _ = assemble(events)
        twice, assembler = assemble([e for e in events for _ in (0, 1)])
        assert twice == once
        assert assembler.open_count == 0


@SETTINGS
@given(pick=st.integers(min_value=0, max_value=len(LOGS) - 1), repeats=st.lists(st.integers(min_value=0), max_size=40))
def test_random_repeats_of_events_change_nothing(pick: int, repeats: list[int]) -> None:
    events = parse(MESSAGES[pick])
    expected, _ = assemble(events)
    chosen = {r % len(events) for r in repeats}
    noisy = [e for i, event in enumerate(events) for e in ([event, event] if i in chosen else [event])]
    records, _ = assemble(noisy)
    assert records == expected


@SETTINGS
@given(picks=trace_picks, cut=st.floats(min_value=0.0, max_value=1.0), order=st.lists(st.integers(0, 5), max_size=800))
def test_truncated_streams_expire_without_inventing_answers(picks: list[int], cut: float, order: list[int]) -> None:
    copies = [(f"t{n}", MESSAGES[pick]) for n, pick in enumerate(picks)]
    events = parse(list(interleave(order, copies)))
    full = {r.call_id: r for r in assemble(events)[0]}
    prefix = events[: int(len(events) * cut)]
    records, assembler = assemble(prefix)
    stamps = [e.timestamp for e in prefix if e.timestamp is not None]
    now = datetime.fromtimestamp(max(stamps) if stamps else 0.0, tz=UTC)
    expired = assembler.expire(now)
    assert assembler.open_count == 0
    assert all(r.recovered for r in expired)
    for record in records + expired:
        check_invariants(record)
        whole = full[record.call_id]
        real = {(s.extension, s.answer) for s in whole.segments}
        assert {(s.extension, s.answer) for s in record.segments} <= real
        assert record.talk_seconds <= whole.talk_seconds + 1e-6
        if record.status == "answered":
            assert whole.status == "answered"


# Garbage: events with the right names but random identities and fields must never crash.
NAMES = st.sampled_from([
    "Newchannel", "Newstate", "NewCallerid", "DialBegin", "DialEnd", "Hangup", "BridgeCreate", "BridgeEnter",
    "BridgeLeave", "BridgeMerge", "BridgeDestroy", "BlindTransfer", "AttendedTransfer", "LocalBridge",
    "QueueCallerJoin", "QueueCallerAbandon", "Pickup", "Newexten", "CoreShowChannel", "Unknown",
])
PREFIXES = st.sampled_from(["", "Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer",
                            "TransferTarget", "LocalOne", "LocalTwo", "Target"])
IDS = st.sampled_from(["1.1", "1.2", "1.3", "2.1", "2.2", ""])
CHANNELS = st.sampled_from(["PJSIP/101-1", "PJSIP/trunk-2", "Local/101@agents-3;1", "Local/101@agents-3;2",
                            "Local/0219@from-trunk-4;1", "SIP/x", "", "Local/;"])
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "Uniqueid": IDS, "Linkedid": IDS, "Channel": CHANNELS, "ChannelState": st.sampled_from(["0", "5", "6", "x"]),
        "BridgeUniqueid": st.sampled_from(["b1", "b2", ""]), "BridgeType": st.sampled_from(["basic", "parking"]),
        "Cause": st.sampled_from(["16", "26", "21", "17", "0", ""]), "Result": st.just("Success"),
        "DialStatus": st.sampled_from(["ANSWER", "BUSY", "CANCEL", "NOANSWER", "GOTO", ""]),
        "FromBridgeUniqueid": st.sampled_from(["b1", "b2"]), "ToBridgeUniqueid": st.sampled_from(["b1", "b2"]),
        "CallerIDNum": st.sampled_from(["101", "09121234567", "<unknown>", ""]), "Exten": st.sampled_from(["s", "101"]),
        "Application": st.just("VoiceMail"), "BridgeId": st.sampled_from(["b1", ""]),
    },
)


@st.composite
def garbage_event(draw: st.DrawFn) -> Event:
    headers: dict[str, str] = {"Event": draw(NAMES), "Timestamp": str(draw(st.floats(0, 100, allow_nan=False)))}
    for _ in range(draw(st.integers(0, 3))):
        prefix = draw(PREFIXES)
        headers.update({prefix + key: value for key, value in draw(FIELDS).items()})
    return event_from_mapping(headers)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(garbage_event(), max_size=60))
def test_garbage_events_never_crash_the_assembler(events: list[Event]) -> None:
    records, assembler = assemble(events)
    records += assembler.reconcile({"1.1"}, datetime.fromtimestamp(200, tz=UTC))
    records += assembler.expire(datetime.fromtimestamp(200, tz=UTC))
    assert assembler.open_count == 0
    for record in records:
        check_invariants(record)


@SETTINGS
@given(
    pick=st.integers(min_value=0, max_value=len(LOGS) - 1),
    drops=st.lists(st.integers(min_value=0), max_size=30),
    swaps=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0)), max_size=10),
)
def test_lost_and_reordered_events_never_crash(pick: int, drops: list[int], swaps: list[tuple[int, int]]) -> None:
    events = parse(MESSAGES[pick])
    dropped = {d % len(events) for d in drops}
    mangled = [e for i, e in enumerate(events) if i not in dropped]
    for a, b in swaps:
        if mangled:
            i, j = a % len(mangled), b % len(mangled)
            mangled[i], mangled[j] = mangled[j], mangled[i]
    records, assembler = assemble(mangled)
    records += assembler.expire(datetime.fromtimestamp(2e9, tz=UTC))
    for record in records:
        check_invariants(record)


@SETTINGS
@given(
    pick=st.integers(min_value=0, max_value=len(LOGS) - 1),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["", "\r\n", ": ", "\r\n\r\n", "9", "Event: Hangup\r\n"])),
        max_size=25,
    ),
)
def test_mangled_wire_text_never_crashes_parser_or_assembler(pick: int, edits: list[tuple[int, str]]) -> None:
    text = LOGS[pick].read_bytes().decode("utf-8")
    for position, replacement in edits:
        at = position % len(text)
        text = text[:at] + replacement + text[at + 1 :]
    parser = AmiParser()
    items = parser.feed(text) + parser.close()
    records, assembler = assemble([i for i in items if isinstance(i, Event)])
    records += assembler.expire(datetime.fromtimestamp(2e9, tz=UTC))
    assert assembler.open_count == 0
    for record in records:
        check_invariants(record)
