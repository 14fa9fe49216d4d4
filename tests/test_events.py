"""AMI wire text and JSON lines -> events: framing, repeated keys, noise, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import ParseError
from ingest.events import IGNORED_EVENTS, AmiParser, Event, JsonLinesParser, event_from_mapping

TRACES = Path(__file__).parent / "fixtures" / "ami-traces"
ALL_LOGS = sorted(TRACES.rglob("ami.log"))


def events_of(items: list[Event | ParseError]) -> list[Event]:
    return [item for item in items if isinstance(item, Event)]


def parse_all(text: str, parser: AmiParser | None = None) -> list[Event | ParseError]:
    parser = parser or AmiParser()
    return parser.feed(text) + parser.close()


@pytest.mark.parametrize("log", ALL_LOGS, ids=lambda p: str(p.parent.relative_to(TRACES)))
def test_every_recorded_event_is_read_and_none_is_malformed(log: Path) -> None:
    raw = log.read_bytes().decode("utf-8")
    names = [line[len("Event: "):] for line in raw.split("\r\n") if line.startswith("Event: ")]
    parser = AmiParser()
    events = events_of(parse_all(raw, parser))
    assert parser.malformed == 0
    assert parser.events == len(names)
    replies = [b for b in raw.split("\r\n\r\n") if b.startswith(("Response: ", "Asterisk Call Manager/"))]
    assert parser.responses == len(replies) == 2  # login and logoff
    assert [e.name for e in events] == [n for n in names if n not in IGNORED_EVENTS]
    assert parser.ignored == sum(1 for n in names if n in IGNORED_EVENTS)
    assert all(e.timestamp is not None and e.timestamp > 1.7e9 for e in events if e.name != "FullyBooted")


def test_first_event_of_a_trace_has_every_header() -> None:
    raw = (TRACES / "01_inbound_answered" / "ami.log").read_text(encoding="utf-8")
    newchannel = next(e for e in events_of(parse_all(raw)) if e.name == "Newchannel")
    assert newchannel.timestamp == pytest.approx(1795687196.006158)
    assert newchannel.get("Channel") == "PJSIP/trunk-00000000"
    assert newchannel.get("Exten") == "02191001000"
    assert newchannel.get("AccountCode") == ""
    assert newchannel.get("Missing", "x") == "x"


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=30))
def test_chunk_boundaries_do_not_matter(cuts: list[int]) -> None:
    raw = (TRACES / "08_blind_transfer" / "ami.log").read_bytes().decode("utf-8")
    whole = events_of(parse_all(raw))
    parser = AmiParser()
    pieces: list[Event | ParseError] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        pieces += parser.feed(raw[previous:cut])
        previous = max(previous, cut)
    pieces += parser.close()
    assert events_of(pieces) == whole
    assert parser.malformed == 0


def test_lf_and_crlf_give_the_same_events() -> None:
    crlf = "Event: Hangup\r\nTimestamp: 1.5\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n"
    lf = crlf.replace("\r\n", "\n")
    assert events_of(parse_all(crlf)) == events_of(parse_all(lf))
    assert events_of(parse_all(lf))[0].headers["Cause"] == "16"


def test_banner_and_responses_are_not_events() -> None:
    text = (
        "Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
        "Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
    )
    parser = AmiParser()
    events = events_of(parse_all(text, parser))
    assert [e.name for e in events] == ["FullyBooted"]
    assert events[0].timestamp is None
    assert parser.responses == 1
    assert parser.malformed == 0


def test_repeated_keys_are_kept_as_lists_and_values_keep_their_colons() -> None:
    text = (
        "Event: Newchannel\nTimestamp: 10.0\nChanVariable: A=1\nChanVariable: B=2\n"
        "AppData: a: b: c\nCallerIDName:Bare\nUniqueid: 1.1\n\n"
    )
    event = events_of(parse_all(text))[0]
    assert event.get_all("ChanVariable") == ("A=1", "B=2")
    assert event.get("ChanVariable") == "A=1"
    assert event.get("AppData") == "a: b: c"
    assert event.get("CallerIDName") == "Bare"
    assert event.get_all("Uniqueid") == ("1.1",)
    assert event.get_all("Nothing") == ()
    assert event.to_json()["ChanVariable"] == ["A=1", "B=2"]


def test_malformed_messages_are_counted_and_the_stream_goes_on() -> None:
    text = (
        "Event: Newchannel\nUniqueid: 1.1\n\n"
        "this line has no colon\nEvent: Broken\n\n"
        "Privilege: call,all\nUniqueid: 2.2\n\n"
        "Event: Newstate\nTimestamp: yesterday\n\n"
        "Event: Newstate\nTimestamp: nan\n\n"
        "Event: Newstate\nTimestamp: 1e300\n\n"
        "Event: Hangup\nUniqueid: 1.1\n\n"
    )
    parser = AmiParser()
    items = parse_all(text, parser)
    errors = [i for i in items if isinstance(i, ParseError)]
    assert [e.name for e in events_of(items)] == ["Newchannel", "Hangup"]
    assert parser.malformed == 5 == len(errors)
    assert "this line has no colon" in errors[0].text
    assert "no Event or Response" in str(errors[1])
    assert all("Timestamp" in str(e) for e in errors[2:])


def test_noise_is_skipped_but_voicemail_newexten_is_kept() -> None:
    text = (
        "Event: VarSet\nVariable: X\nValue: 1\n\n"
        "Event: Newexten\nUniqueid: 1.1\nApplication: Playback\nAppData: hello\n\n"
        "Event: Newexten\nUniqueid: 1.1\nApplication: VoiceMail\nAppData: 101@default\n\n"
        "Event: SomethingNew\nFoo: bar\n\n"
    )
    parser = AmiParser()
    events = events_of(parse_all(text, parser))
    assert [(e.name, e.get("Application")) for e in events] == [("Newexten", "VoiceMail"), ("SomethingNew", "")]
    assert parser.events == 4
    assert parser.ignored == 2


def test_parse_message_parses_one_message() -> None:
    parser = AmiParser()
    event = parser.parse_message("Event: Hangup\r\nUniqueid: 1.1\r\n")
    assert event is not None
    assert event.name == "Hangup"
    assert parser.parse_message("Event: VarSet\nValue: 1\n") is None
    assert parser.parse_message("") is None
    assert parser.parse_message("\r\n") is None
    # The Event line need not come first.
    assert parser.parse_message("Privilege: dialplan,all\nEvent: VarSet\nValue: 1") is None
    late = parser.parse_message("Privilege: call,all\nEvent: Hangup\nUniqueid: 2.2")
    assert late is not None
    assert late.name == "Hangup"
    voicemail = parser.parse_message("Event: Newexten\nUniqueid: 1.1\nApplication: VoiceMail")
    assert voicemail is not None
    assert voicemail.get("Application") == "VoiceMail"
    assert parser.parse_message("Event: Newexten\nUniqueid: 1.1\nApplication: VoiceMailMain\nAppData: x") is None
    with pytest.raises(ParseError):
        parser.parse_message("garbage")


def test_a_last_message_without_blank_line_is_read_at_close() -> None:
    parser = AmiParser()
    assert parser.feed("Event: Hangup\nUniqueid: 1.1") == []
    events = events_of(parser.close())
    assert events[0].get("Uniqueid") == "1.1"


def test_json_lines_round_trip() -> None:
    raw = (TRACES / "09_attended_transfer" / "ami.log").read_text(encoding="utf-8")
    events = events_of(parse_all(raw))
    lines = "".join(json.dumps(e.to_json()) + "\n" for e in events)
    parser = JsonLinesParser()
    again = events_of(parser.feed(lines[:5000]) + parser.feed(lines[5000:]) + parser.close())
    assert again == events
    assert parser.malformed == 0


def test_json_lines_errors_are_counted() -> None:
    parser = JsonLinesParser()
    text = '{"Event": "Hangup", "Uniqueid": "1.1", "Timestamp": 5}\nnot json\n[1, 2]\n{"Uniqueid": "x"}\n'
    items = parser.feed(text) + parser.feed('{"Response": "Success"}\n{"Event": "VarSet"}') + parser.close()
    events = events_of(items)
    assert [(e.name, e.timestamp) for e in events] == [("Hangup", 5.0)]
    assert parser.malformed == 3
    assert parser.responses == 1
    assert parser.ignored == 1


def test_event_from_mapping_accepts_lists_and_rejects_objects() -> None:
    event = event_from_mapping({"Event": "Status", "Variable": ["A=1", "B=2"], "Seconds": 3, "Empty": None})
    assert event.get_all("Variable") == ("A=1", "B=2")
    assert event.get("Seconds") == "3"
    assert event.get("Empty") == ""
    with pytest.raises(ParseError):
        event_from_mapping({"Event": "Status", "Nested": {"a": 1}})
    with pytest.raises(ParseError):
        event_from_mapping({"Uniqueid": "1"})


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_crash_the_parsers(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for parser in (AmiParser(), JsonLinesParser()):
        items = parser.feed(text) + parser.close()
        assert all(isinstance(i, Event | ParseError) for i in items)
        assert parser.malformed == sum(isinstance(i, ParseError) for i in items)


@settings(max_examples=200, deadline=None)
@given(
    mangles=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=20_000), st.sampled_from(["", "\n", ":", ": ", "\r", "\n\n", "x"])
        ),
        max_size=20,
    )
)
def test_mangled_traces_never_crash_the_parser(mangles: list[tuple[int, str]]) -> None:
    raw = (TRACES / "07_internal" / "ami.log").read_bytes().decode("utf-8")
    text = raw
    for position, insert in mangles:
        text = text[:position] + insert + text[position + 1 :]
    parser = AmiParser()
    items = parse_all(text, parser)
    assert parser.malformed == sum(isinstance(i, ParseError) for i in items)
    assert len(events_of(items)) <= parser.events
