"""Channel names and the rules telling a telephone system's extensions from its trunks."""

from __future__ import annotations

import pytest

from ingest.channels import PartyRules, dialled_number, parse_channel_name
from ingest.config import SystemConfig


@pytest.mark.parametrize(
    ("name", "tech", "endpoint", "pair", "half"),
    [
        ("PJSIP/101-0000002a", "PJSIP", "101", "", 0),
        ("PJSIP/trunk-00000000", "PJSIP", "trunk", "", 0),
        ("SIP/150010001-0000000a", "SIP", "150010001", "", 0),
        ("IAX2/provider-1234", "IAX2", "provider", "", 0),
        ("DAHDI/i1/02112345678-3a", "DAHDI", "i1/02112345678", "", 0),
        ("Local/103@internal-00000035;1", "Local", "103@internal", "Local/103@internal-00000035", 1),
        ("Local/02191001000@from-trunk-0000001d;2", "Local", "02191001000@from-trunk",
         "Local/02191001000@from-trunk-0000001d", 2),
        ("Message/ast_msg_queue", "Message", "ast_msg_queue", "", 0),
        ("weird", "", "weird", "", 0),
    ],
)
def test_channel_names_are_split(name: str, tech: str, endpoint: str, pair: str, half: int) -> None:
    parsed = parse_channel_name(name)
    assert (parsed.tech, parsed.endpoint, parsed.local_pair, parsed.half) == (tech, endpoint, pair, half)


def test_default_rules_numeric_endpoints_are_extensions() -> None:
    rules = PartyRules(SystemConfig())
    assert rules.extension_of(parse_channel_name("PJSIP/101-1")) == "101"
    assert rules.extension_of(parse_channel_name("PJSIP/trunk-2")) is None
    assert rules.extension_of(parse_channel_name("PJSIP/1234567-3")) is None  # 7 digits: not 2-6
    assert rules.extension_of(parse_channel_name("Local/101@agents-4;1")) == "101"
    assert rules.extension_of(parse_channel_name("Local/02191001000@from-trunk-5;2")) is None
    assert rules.extension_of(parse_channel_name("Local/FMPR-101@from-internal-6;1")) is None
    assert rules.is_extension_number("4321")
    assert not rules.is_extension_number("")


def test_configured_rules_win() -> None:
    rules = PartyRules(SystemConfig(trunks=("10[0-9]",), inbound_contexts=("from-pstn",)))
    assert rules.extension_of(parse_channel_name("PJSIP/105-1")) is None
    assert rules.extension_of(parse_channel_name("PJSIP/201-1"), context="from-pstn") is None
    assert rules.extension_of(parse_channel_name("PJSIP/201-1"), context="internal") == "201"
    assert rules.extension_of(parse_channel_name("Local/201@from-pstn-1;1")) is None


def test_extension_from_caller_id_account_code_and_map() -> None:
    by_cid = PartyRules(SystemConfig(extension_from="callerid"))
    assert by_cid.extension_of(parse_channel_name("SIP/150010001-1"), callerid="201") == "201"
    assert by_cid.extension_of(parse_channel_name("SIP/150010001-1"), callerid="<unknown>") is None
    by_account = PartyRules(SystemConfig(extension_from="accountcode"))
    assert by_account.extension_of(parse_channel_name("SIP/150010001-1"), accountcode="202") == "202"
    mapped = PartyRules(SystemConfig(extension_map={"150010001": "203"}))
    assert mapped.extension_of(parse_channel_name("SIP/150010001-1")) == "203"
    assert mapped.extension_of(parse_channel_name("SIP/150010002-1")) is None


@pytest.mark.parametrize(
    ("dial_string", "number"),
    [
        ("02188776655@trunk", "02188776655"),
        ("trunk/02188776655", "02188776655"),
        ("PJSIP/02188776655@trunk", "02188776655"),
        ("SIP/trunk/02188776655,60", "02188776655"),
        ("PJSIP/101&PJSIP/102", "101"),
        ("Local/101@from-queue/n", "101"),
        ("101", "101"),
    ],
)
def test_dialled_number(dial_string: str, number: str) -> None:
    assert dialled_number(dial_string) == number
