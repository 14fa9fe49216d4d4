"""CallAssembler: every recorded trace replays to its expected.json, plus scenarios no trace covers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.assembler import CallAssembler
from ingest.config import SystemConfig
from ingest.events import AmiParser, Event
from ingest.records import CallRecord
from ingest.testing.amisim import Sim

TRACES = Path(__file__).parent / "fixtures" / "ami-traces"
SCENARIOS = sorted(p.parent for p in TRACES.rglob("expected.json"))


def trace_events(folder: Path) -> list[Event]:
    parser = AmiParser()
    text = (folder / "ami.log").read_bytes().decode("utf-8")
    items = parser.feed(text) + parser.close()
    assert parser.malformed == 0
    return [i for i in items if isinstance(i, Event)]


def run(events: list[Event], system: SystemConfig | None = None) -> tuple[list[CallRecord], CallAssembler]:
    assembler = CallAssembler(system or SystemConfig())
    records: list[CallRecord] = []
    for event in events:
        records += assembler.feed(event)
    return records, assembler


def last9(value: object) -> str:
    digits = re.sub(r"\D", "", str(value or ""))
    return digits[-9:]


def expected_calls(folder: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads((folder / "expected.json").read_text())["calls"]
    return calls


@pytest.mark.parametrize("folder", SCENARIOS, ids=lambda p: str(p.relative_to(TRACES)))
def test_trace_replays_to_its_expected_calls(folder: Path) -> None:
    records, assembler = run(trace_events(folder))
    assert assembler.open_count == 0
    expected = expected_calls(folder)
    assert len(records) == len(expected)
    for want, got in zip(expected, records, strict=True):
        status = "answered" if want["answered"] else "missed" if want["direction"] == "incoming" else "unanswered"
        assert got.call_id == want["observed"]["linkedid"]
        assert got.direction == want["direction"]
        assert got.status == status
        assert list(got.agents) == want["agents"]
        assert got.transfer_count == want["transfer_count"]
        assert last9(got.caller) == last9(want["caller"])
        assert last9(got.callee) == last9(want["called"])
        assert abs(got.talk_seconds - want["talk_seconds_approx"]) <= 2
        assert (got.reason is None) == (status == "answered")
        assert got.recovered is False
        assert got.start <= (got.answer or got.start) <= got.end


REASONS = {
    "02_inbound_noanswer": "no_answer",
    "03_inbound_abandoned": "abandoned",
    "04_inbound_busy": "busy",
    "06_outbound_noanswer": "no_answer",
    "16_ivr_abandon": "ivr",
}


@pytest.mark.parametrize("name", sorted(REASONS))
def test_missed_and_unanswered_calls_say_why(name: str) -> None:
    (record,), _ = run(trace_events(TRACES / name))
    assert record.reason == REASONS[name]
    assert record.segments == ()
    assert record.answer is None
    assert record.wait_seconds == record.duration_seconds


def test_inbound_answered_record_in_full() -> None:
    (record,), _ = run(trace_events(TRACES / "01_inbound_answered"))
    assert record.external_number == "+989121234567"
    assert record.linkedids == ("1795687196.106",)
    (segment,) = record.segments
    assert (segment.extension, segment.began_by, segment.channel) == ("101", "answered", "PJSIP/101-00000001")
    assert segment.ring_seconds == pytest.approx(3.0, abs=0.1)
    assert record.wait_seconds == pytest.approx(3.0, abs=0.1)
    assert record.duration_seconds == pytest.approx(23.0, abs=0.1)
    assert [(r.extension, r.outcome) for r in record.rang] == [("101", "answered")]
    assert record.start.tzinfo is UTC


def test_outbound_record_names_the_dialling_agent_and_the_dialled_number() -> None:
    (record,), _ = run(trace_events(TRACES / "05_outbound_answered"))
    assert (record.caller, record.callee, record.external_number) == ("102", "02188776655", "+982188776655")
    assert record.caller_name == "Agent 102"
    assert record.rang == ()


def test_internal_call_has_no_external_number() -> None:
    (record,), _ = run(trace_events(TRACES / "07_internal"))
    assert record.external_number is None
    assert record.rang_extensions == ("102",)


def test_blind_transfer_chain() -> None:
    (record,), _ = run(trace_events(TRACES / "08_blind_transfer"))
    first, second = record.segments
    assert (first.began_by, second.began_by) == ("answered", "blind_transfer")
    assert first.talk_seconds == pytest.approx(8.0, abs=0.1)
    # 102 rang 3 s after the transfer: not talk time.
    assert second.ring_seconds == pytest.approx(3.0, abs=0.1)
    assert second.talk_seconds == pytest.approx(19.0, abs=0.1)
    assert record.callee == "02191001000"  # the DID, not the transfer target the trunk moved to


def test_attended_transfer_counts_the_hold_as_talk_and_joins_at_completion() -> None:
    (record,), _ = run(trace_events(TRACES / "09_attended_transfer"))
    first, second = record.segments
    assert (first.began_by, second.began_by) == ("answered", "attended_transfer")
    assert first.end == second.answer
    assert second.channel == "PJSIP/103-00000013"
    assert record.talk_seconds == pytest.approx(35.0, abs=0.1)


@pytest.mark.parametrize("folder", ["11_queue_ringall", "local-channels/11_queue_ringall"])
def test_queue_call_rings_every_member(folder: str) -> None:
    (record,), _ = run(trace_events(TRACES / folder))
    assert record.segments[0].began_by == "queue"
    outcomes = {r.extension: r.outcome for r in record.rang}
    assert outcomes == {"101": "answered_elsewhere", "102": "answered", "103": "answered_elsewhere"}
    assert record.extra["queue"] == "support"


@pytest.mark.parametrize("folder", ["12_ring_group", "local-channels/12_ring_group"])
def test_ring_group_rings_both_and_the_first_answer_wins(folder: str) -> None:
    (record,), _ = run(trace_events(TRACES / folder))
    assert {r.extension: r.outcome for r in record.rang} == {"101": "answered", "102": "answered_elsewhere"}
    assert record.agents == ("101",)


def test_local_channel_trunk_is_an_incoming_call() -> None:
    (record,), _ = run(trace_events(TRACES / "local-channels" / "12_ring_group"))
    assert record.direction == "incoming"
    assert record.caller == "09141234567"
    assert record.callee == "02191001002"
    assert record.segments[0].channel.startswith("Local/101@agents-")


# -- scenarios built event by event (AMI-NOTES.md sequences) --------------------------------------


def inbound(sim: Sim, did: str = "02191001000", caller: str = "09121234567") -> Any:
    return sim.channel("PJSIP/trunk", exten=did, context="from-trunk", cid=caller, state=4)


def test_sip_attended_transfer_merges_the_consultation_call() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.wait(2)
    sim.answer(caller, agent)
    sim.wait(10)
    # The phone's second line calls 103: a new call with its own Linkedid.
    consult = sim.channel("PJSIP/101", exten="103", cid="101", state=4)
    target = sim.dial(consult, "PJSIP/103", cid="103")
    sim.wait(3)
    consult_bridge = sim.answer(consult, target)
    sim.wait(5)
    sim.leave(caller)
    sim.leave(consult)
    sim.enter(caller, consult_bridge, swap=consult)
    sim.attended_transfer(agent, consult, transferee=caller, target=target, DestBridgeUniqueid=consult_bridge)
    sim.hangup(consult, agent)
    target.linkedid = caller.linkedid
    sim.wait(20)
    sim.hangup(caller, target)
    records, assembler = run(sim.events)
    (record,) = records
    assert assembler.open_count == 0
    assert record.call_id == caller.linkedid
    assert set(record.linkedids) == {caller.linkedid, consult.linkedid}
    assert record.agents == ("101", "103")
    assert record.transfer_count == 2
    assert [s.began_by for s in record.segments] == ["answered", "attended_transfer"]
    assert record.talk_seconds == pytest.approx(38.0, abs=0.1)
    assert record.rang_extensions == ("101", "103")


def test_consultation_never_completed_stays_a_separate_internal_call() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(5)
    consult = sim.channel("PJSIP/101", exten="103", cid="101", state=4)
    target = sim.dial(consult, "PJSIP/103", cid="103")
    sim.wait(2)
    sim.answer(consult, target)
    sim.wait(4)
    sim.hangup(target, consult)
    sim.wait(6)
    sim.hangup(caller, agent)
    records, _ = run(sim.events)
    consultation, call = records
    assert (consultation.direction, consultation.caller, consultation.callee) == ("internal", "101", "103")
    assert consultation.agents == ("103",)
    assert consultation.talk_seconds == pytest.approx(4.0, abs=0.1)
    assert (call.direction, call.agents, call.transfer_count) == ("incoming", ("101",), 1)
    # The caller stayed bridged with 101 (on hold) through the consultation: all of it is 101's.
    assert call.talk_seconds == pytest.approx(17.0, abs=0.1)


def feature_code_consultation(sim: Sim, caller: Any, agent: Any, target_ext: str = "103") -> tuple[Any, Any, Any, str]:
    """*2 from the phone: the agent leaves the caller's bridge for a Local pair dialling the target."""
    held_bridge = agent.bridge
    sim.emit("Hold", agent.snapshot())
    one, two = sim.local(target_ext, "internal", caller.linkedid, optimize=True)
    consult_bridge = sim.bridge(one)
    sim.leave(agent)
    agent.bridge = held_bridge
    sim.leave(agent)
    sim.enter(agent, consult_bridge)
    target = sim.dial(two, f"PJSIP/{target_ext}", cid=target_ext)
    return one, two, target, held_bridge


def test_blonde_transfer_counts_the_target_only_once_it_answers() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    held_bridge = agent.bridge
    sim.wait(6)
    one, two, target, _ = feature_code_consultation(sim, caller, agent)
    sim.wait(3)
    # 101 hangs up while 103 still rings: the Local half joins the caller's bridge.
    consult_bridge = agent.bridge
    sim.leave(agent)
    sim.leave(one)
    sim.enter(one, held_bridge)
    agent.bridge = consult_bridge
    sim.attended_transfer(agent, agent, transferee=caller, target=one, DestBridgeUniqueid=held_bridge)
    agent.bridge = ""
    sim.hangup(agent)
    sim.wait(4)
    sim.state(target, 6)
    sim.dial_end(two, target, "ANSWER")
    sim.state(two, 6)
    sim.state(one, 6)
    sim.bridge(target, two)
    sim.wait(15)
    sim.hangup(caller, one, two, target)
    (record,), _ = run(sim.events)
    assert record.agents == ("101", "103")
    assert [s.began_by for s in record.segments] == ["answered", "attended_transfer"]
    first, second = record.segments
    assert first.talk_seconds == pytest.approx(9.0, abs=0.1)  # 6 s talk + 3 s on hold
    assert second.talk_seconds == pytest.approx(15.0, abs=0.1)  # ringing after the handover excluded
    assert record.transfer_count == 2


def test_sip_blonde_transfer_moves_the_caller_into_the_ringing_dial() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(5)
    consult = sim.channel("PJSIP/101", exten="103", cid="101", state=4)
    target = sim.dial(consult, "PJSIP/103", cid="103")
    sim.wait(2)
    # The phone transfers while 103 still rings: the caller takes the consultation's place in Dial().
    sim.attended_transfer(agent, consult, transferee=caller, target=None, dest_type="App", DestApp="Dial")
    sim.leave(caller)
    sim.hangup(agent)
    consult.name += "<ZOMBIE>"
    sim.hangup(consult)
    sim.wait(3)
    sim.state(target, 6)
    sim.dial_end(caller, target, "ANSWER")
    target.linkedid = caller.linkedid
    sim.bridge(target, caller)
    sim.wait(10)
    sim.hangup(caller, target)
    records, assembler = run(sim.events)
    (record,) = records
    assert assembler.open_count == 0
    assert record.agents == ("101", "103")
    assert [s.began_by for s in record.segments] == ["answered", "attended_transfer"]
    assert [s.talk_seconds for s in record.segments] == [pytest.approx(7.0, abs=0.1), pytest.approx(10.0, abs=0.1)]
    assert {r.extension: r.outcome for r in record.rang} == {"101": "answered", "103": "answered"}


def test_transfer_to_an_extension_that_never_answers_does_not_count() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(8)
    sim.blind_transfer(agent, caller, "102")
    target = sim.dial(caller, "PJSIP/102", cid="102")
    sim.wait(20)
    sim.dial_end(caller, target, "NOANSWER")
    sim.hangup(target, cause="19")
    sim.hangup(caller)
    (record,), _ = run(sim.events)
    assert record.status == "answered"
    assert record.agents == ("101",)
    assert record.transfer_count == 1
    assert [(r.extension, r.outcome) for r in record.rang] == [("101", "answered"), ("102", "no_answer")]
    assert record.talk_seconds == pytest.approx(8.0, abs=0.1)


def test_freepbx_queue_member_behind_a_local_pair_with_optimisation() -> None:
    sim = Sim()
    caller = inbound(sim, did="02191001001")
    sim.state(caller, 6)
    sim.emit("QueueCallerJoin", caller.snapshot(), Queue="support", Position="1", Count="1")
    members = []
    for ext in ("101", "102"):
        one, two = sim.local(ext, "from-queue", caller.linkedid, optimize=True)
        sim.emit("AgentCalled", caller.snapshot(), one.snapshot("Dest"), Queue="support", Interface=f"Local/{ext}")
        sim.dial_to(caller, one, f"Local/{ext}@from-queue/n")
        phone = sim.dial(two, f"PJSIP/{ext}", cid=ext)
        members.append((one, two, phone))
    sim.wait(5)
    (one, two, phone), (other_one, other_two, other_phone) = members[1], members[0]
    sim.state(phone, 6)
    sim.dial_end(two, phone, "ANSWER")
    sim.state(two, 6)
    sim.bridge(phone, two)
    sim.state(one, 6)
    sim.dial_end(caller, one, "ANSWER")
    sim.dial_end(caller, other_one, "CANCEL")
    sim.dial_end(other_two, other_phone, "CANCEL")
    sim.hangup(other_phone, other_two, other_one, cause="26")
    sim.emit("QueueCallerLeave", caller.snapshot(), Queue="support")
    sim.emit("AgentConnect", caller.snapshot(), one.snapshot("Dest"), Queue="support", HoldTime="5", RingTime="5")
    queue_bridge = sim.bridge(one, caller)
    sim.wait(1)
    # Optimisation: the caller moves into the phone's bridge in place of ;2, the pair goes away.
    sim.leave(caller)
    sim.leave(two)
    sim.enter(caller, phone.bridge, swap=two)
    one.bridge = queue_bridge
    sim.hangup(one, two)
    sim.wait(30)
    sim.hangup(caller, phone)
    (record,), _ = run(sim.events)
    assert record.agents == ("102",)
    assert record.segments[0].began_by == "queue"
    assert record.segments[0].channel.startswith("PJSIP/102-")
    assert record.talk_seconds == pytest.approx(31.0, abs=0.2)
    assert {r.extension: r.outcome for r in record.rang} == {"101": "answered_elsewhere", "102": "answered"}


def test_ring_group_of_local_pairs_dialling_phones_without_optimisation() -> None:
    sim = Sim()
    caller = inbound(sim, did="02191001002")
    legs = []
    for ext in ("101", "102"):
        one, two = sim.local(ext, "from-internal", caller.linkedid)
        sim.dial_to(caller, one, f"Local/{ext}@from-internal/n")
        legs.append((one, two, sim.dial(two, f"PJSIP/{ext}", cid=ext)))
    sim.wait(4)
    (one, two, phone), (other_one, other_two, other_phone) = legs
    sim.state(phone, 6)
    sim.dial_end(two, phone, "ANSWER")
    sim.state(two, 6)
    sim.state(one, 6)
    sim.dial_end(caller, one, "ANSWER")
    sim.state(caller, 6)
    # The caller is bridged with ;1 before ;2 reaches the phone's bridge: no party yet.
    sim.bridge(one, caller)
    sim.bridge(phone, two)
    sim.dial_end(caller, other_one, "CANCEL")
    sim.dial_end(other_two, other_phone, "CANCEL")
    sim.hangup(other_phone, other_two, other_one, cause="26")
    sim.wait(25)
    sim.hangup(caller, one, two, phone)
    records, assembler = run(sim.events)
    (record,) = records
    assert assembler.open_count == 0
    assert record.agents == ("101",)
    assert record.segments[0].channel.startswith("PJSIP/101-")
    assert record.talk_seconds == pytest.approx(25.0, abs=0.1)
    assert {r.extension: r.outcome for r in record.rang} == {"101": "answered", "102": "answered_elsewhere"}


def test_incoming_call_starting_in_s_takes_the_first_real_exten_as_callee() -> None:
    sim = Sim()
    caller = sim.channel("PJSIP/trunk", exten="s", context="from-pstn", cid="09121234567", state=4)
    caller.exten = "02191001000"
    sim.state(caller, 4)
    phone = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, phone)
    sim.hangup(caller, phone)
    (record,), assembler = run(sim.events)
    assert record.callee == "02191001000"
    assert assembler.open_linkedids() == []


def test_queue_caller_abandoning_is_missed_abandoned() -> None:
    sim = Sim()
    caller = inbound(sim, did="02191001001")
    sim.state(caller, 6)
    sim.emit("QueueCallerJoin", caller.snapshot(), Queue="support", Position="1", Count="1")
    phone = sim.dial(caller, "PJSIP/101", cid="101")
    sim.wait(12)
    sim.emit("QueueCallerAbandon", caller.snapshot(), Queue="support", Position="1", HoldTime="12")
    sim.dial_end(caller, phone, "CANCEL")
    sim.hangup(phone, caller)
    (record,), _ = run(sim.events)
    assert (record.status, record.reason) == ("missed", "abandoned")
    assert record.rang_extensions == ("101",)


def test_voicemail_after_no_answer_is_missed_voicemail() -> None:
    sim = Sim()
    caller = inbound(sim)
    phone = sim.dial(caller, "PJSIP/101", cid="101")
    sim.wait(20)
    sim.dial_end(caller, phone, "NOANSWER")
    sim.hangup(phone, cause="19")
    sim.state(caller, 6)
    sim.emit("Newexten", caller.snapshot(), Application="VoiceMail", AppData="101@default")
    sim.wait(15)
    sim.hangup(caller)
    (record,), _ = run(sim.events)
    assert (record.status, record.reason) == ("missed", "voicemail")


def test_pickup_joins_the_pickers_call_and_starts_a_pickup_segment() -> None:
    sim = Sim()
    caller = inbound(sim)
    ringing = sim.dial(caller, "PJSIP/101", cid="101")
    sim.wait(4)
    picker = sim.channel("PJSIP/102", exten="*8", cid="102", state=4)
    sim.state(picker, 6)
    sim.emit("Pickup", picker.snapshot(), ringing.snapshot("Target"))
    # The picker takes the ringing channel's place (channel move): the old one hangs up.
    sim.hangup(ringing, cause="16")
    sim.dial_end(caller, picker, "ANSWER")
    sim.state(caller, 6)
    picker.linkedid = caller.linkedid
    sim.bridge(picker, caller)
    sim.wait(12)
    sim.hangup(caller, picker)
    records, assembler = run(sim.events)
    (record,) = records
    assert assembler.open_count == 0
    assert record.call_id == caller.linkedid
    assert record.agents == ("102",)
    assert record.segments[0].began_by == "pickup"
    assert record.talk_seconds == pytest.approx(12.0, abs=0.1)
    assert record.rang_extensions == ("101",)


def test_hold_does_not_split_a_segment() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(5)
    sim.emit("Hold", agent.snapshot(), MusicClass="default")
    sim.emit("MusicOnHoldStart", caller.snapshot(), Class="default")
    sim.wait(10)
    sim.emit("Unhold", agent.snapshot())
    sim.wait(5)
    sim.hangup(caller, agent)
    (record,), _ = run(sim.events)
    assert record.agents == ("101",)
    assert record.talk_seconds == pytest.approx(20.0, abs=0.1)


def test_linkedid_change_in_a_bridge_merges_the_calls() -> None:
    sim = Sim()
    caller = inbound(sim)
    sim.state(caller, 6)
    parked = sim.bridge(caller)
    sim.wait(3)
    # An agent's own call (new Linkedid) is bridged to the caller (e.g. Bridge() or a retrieval).
    agent = sim.channel("PJSIP/104", exten="700", cid="104", state=6)
    sim.enter(agent, parked)
    agent.linkedid = caller.linkedid
    sim.emit("NewCallerid", agent.snapshot())
    sim.wait(9)
    sim.hangup(agent, caller)
    records, _ = run(sim.events)
    (record,) = records
    assert record.direction == "incoming"
    assert record.agents == ("104",)
    assert record.talk_seconds == pytest.approx(9.0, abs=0.1)
    assert set(record.linkedids) == {caller.linkedid, agent.uniqueid}


def test_interleaved_concurrent_calls_stay_apart() -> None:
    first, second = Sim(), Sim(now=1_800_000_000.0005)
    second._ids = 500
    second._suffix = 500
    second._bridges = 500
    for sim, ext in ((first, "101"), (second, "102")):
        caller = inbound(sim, caller=f"0912000{ext}")
        agent = sim.dial(caller, f"PJSIP/{ext}", cid=ext)
        sim.answer(caller, agent)
        sim.wait(int(ext) - 90)
        sim.hangup(caller, agent)
    merged = sorted(first.events + second.events, key=lambda e: e.timestamp or 0.0)
    records, _ = run(merged)
    assert sorted((r.caller[-3:], r.agents, round(r.talk_seconds)) for r in records) == [
        ("101", ("101",), 11), ("102", ("102",), 12)
    ]


def test_duplicated_and_stale_events_change_nothing() -> None:
    events = trace_events(TRACES / "08_blind_transfer")
    clean, _ = run(events)
    doubled = [e for e in events for _ in (0, 1)]
    # A stale BridgeEnter repeated after the channel left must not put it back.
    enters = [e for e in events if e.name == "BridgeEnter"]
    records, assembler = run(doubled + enters)
    assert records == clean
    assert assembler.open_count == 0


def test_hangup_before_bridge_leave_is_handled() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(7)
    for chan in (caller, agent):
        sim.emit("Hangup", chan.snapshot(), Cause="16")
    for chan in (caller, agent):
        sim.leave(chan)
    (record,), assembler = run(sim.events)
    assert record.talk_seconds == pytest.approx(7.0, abs=0.1)
    assert assembler.open_count == 0


# -- telephone system rules ---------------------------------------------------------------------


def test_extension_read_from_caller_id_for_peers_named_by_account() -> None:
    system = SystemConfig(extension_from="callerid", trunks=("trunk",))
    sim = Sim()
    caller = inbound(sim)
    phone = sim.dial(caller, "SIP/150010001", cid="201")
    sim.answer(caller, phone)
    sim.wait(5)
    sim.hangup(caller, phone)
    (record,), _ = run(sim.events, system)
    assert record.agents == ("201",)


def test_extension_read_from_account_code_and_extension_map() -> None:
    for system, endpoint, account in (
        (SystemConfig(extension_from="accountcode"), "SIP/150010001", "202"),
        (SystemConfig(extension_map={"150010001": "203"}), "SIP/150010001", ""),
    ):
        sim = Sim()
        caller = inbound(sim)
        phone = sim.channel(endpoint, linkedid=caller.linkedid, account=account)
        sim.dial_to(caller, phone, "150010001")
        sim.answer(caller, phone)
        sim.hangup(caller, phone)
        (record,), _ = run(sim.events, system)
        assert record.agents == (account or "203",)


def test_numeric_trunk_named_in_config_makes_the_call_incoming() -> None:
    sim = Sim()
    caller = sim.channel("PJSIP/2100", exten="02191001000", context="from-pstn", cid="09121234567", state=4)
    phone = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, phone)
    sim.hangup(caller, phone)
    default, _ = run(sim.events)
    assert default[0].direction == "internal"
    by_name, _ = run(sim.events, SystemConfig(trunks=(r"21\d\d",)))
    by_context, _ = run(sim.events, SystemConfig(inbound_contexts=("from-pstn",)))
    for records in (by_name, by_context):
        assert records[0].direction == "incoming"
        assert records[0].agents == ("101",)


def test_outgoing_prefix_is_stripped_from_the_external_number() -> None:
    sim = Sim()
    phone = sim.channel("PJSIP/102", exten="902188776655", cid="102", state=4)
    trunk = sim.dial(phone, "PJSIP/trunk", dial_string="02188776655@trunk")
    sim.answer(phone, trunk)
    sim.wait(3)
    sim.hangup(trunk, phone)
    (record,), _ = run(sim.events, SystemConfig(outgoing_prefix="9"))
    assert (record.direction, record.callee, record.external_number) == ("outgoing", "902188776655", "+982188776655")


# -- outages ------------------------------------------------------------------------------------


def test_expire_closes_open_calls_as_recovered_without_inventing_talk() -> None:
    events = trace_events(TRACES / "01_inbound_answered")
    cut = next(i for i, e in enumerate(events) if e.name == "BridgeEnter") + 2
    records, assembler = run(events[:cut])
    assert records == []
    snapshot = assembler.open_calls()
    assert [c.agents for c in snapshot] == [("101",)]
    assert assembler.open_linkedids() == [("1795687196.106",)]
    last = events[cut - 1].timestamp
    assert last is not None
    expired = assembler.expire(datetime.fromtimestamp(last + 3600, tz=UTC), idle=60)
    (record,) = expired
    assert record.recovered is True
    assert record.agents == ("101",)
    assert record.talk_seconds == pytest.approx(0.0, abs=0.01)
    assert assembler.open_count == 0
    # Late events of the expired call do not reopen it.
    late, _ = [], None
    for event in events[cut:]:
        late += assembler.feed(event)
    assert late == []
    assert assembler.open_count == 0


def test_expire_keeps_calls_that_are_not_idle_long_enough() -> None:
    events = trace_events(TRACES / "01_inbound_answered")[:10]
    _, assembler = run(events)
    stamp = events[-1].timestamp
    assert stamp is not None
    assert assembler.expire(datetime.fromtimestamp(stamp + 5, tz=UTC), idle=60) == []
    assert assembler.open_count == 1


def test_reconcile_closes_calls_whose_channels_are_gone() -> None:
    sim = Sim()
    lost = inbound(sim)
    lost_agent = sim.dial(lost, "PJSIP/101", cid="101")
    sim.answer(lost, lost_agent)
    alive = inbound(sim, caller="09350000000")
    alive_agent = sim.dial(alive, "PJSIP/102", cid="102")
    sim.answer(alive, alive_agent)
    sim.wait(10)
    _, assembler = run(sim.events)
    now = datetime.fromtimestamp(sim.now + 60, tz=UTC)
    closed = assembler.reconcile({alive.uniqueid, alive_agent.uniqueid}, now)
    assert [(r.call_id, r.recovered, r.agents) for r in closed] == [(lost.linkedid, True, ("101",))]
    assert assembler.open_count == 1
    assert assembler.reconcile({alive.uniqueid, alive_agent.uniqueid}, now) == []


def test_core_show_channel_adopts_a_call_in_progress() -> None:
    sim = Sim()
    for chan_fields in (
        {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "9.1", "Linkedid": "9.1", "Exten": "02191001000",
         "Context": "from-trunk", "CallerIDNum": "09121234567", "ChannelState": "6", "BridgeId": "b1"},
        {"Channel": "PJSIP/101-00000002", "Uniqueid": "9.2", "Linkedid": "9.1", "Exten": "s",
         "Context": "internal", "CallerIDNum": "101", "ChannelState": "6", "BridgeId": "b1"},
    ):
        sim.emit("CoreShowChannel", chan_fields)
    sim.wait(30)
    sim.emit("Hangup", {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "9.1", "Linkedid": "9.1"}, Cause="16")
    sim.emit("Hangup", {"Channel": "PJSIP/101-00000002", "Uniqueid": "9.2", "Linkedid": "9.1"}, Cause="16")
    (record,), _ = run(sim.events)
    assert (record.direction, record.caller, record.agents) == ("incoming", "09121234567", ("101",))
    assert record.talk_seconds == pytest.approx(30.0, abs=0.1)


def test_core_show_channel_without_bridge_ends_the_segment() -> None:
    sim = Sim()
    caller = inbound(sim)
    agent = sim.dial(caller, "PJSIP/101", cid="101")
    sim.answer(caller, agent)
    sim.wait(10)
    # After an outage the channel list shows the caller out of any bridge (in an IVR again).
    sim.emit("CoreShowChannel", caller.snapshot(), BridgeId="", ActionID="resync-1")
    sim.wait(5)
    sim.emit("Hangup", caller.snapshot(), Cause="16")
    sim.emit("Hangup", agent.snapshot(), Cause="16")
    (record,), _ = run(sim.events)
    assert record.talk_seconds == pytest.approx(10.0, abs=0.1)


def test_events_without_timestamp_use_the_callers_clock() -> None:
    events = [e for e in trace_events(TRACES / "07_internal") if e.timestamp is not None]
    stripped = [Event(e.name, None, {k: v for k, v in e.headers.items() if k != "Timestamp"}) for e in events]
    assembler = CallAssembler(SystemConfig())
    records: list[CallRecord] = []
    for event, original in zip(stripped, events, strict=True):
        assert original.timestamp is not None
        records += assembler.feed(event, now=datetime.fromtimestamp(original.timestamp, tz=UTC))
    (record,) = records
    assert record.agents == ("102",)
    assert record.talk_seconds == pytest.approx(15.5, abs=0.1)
