"""ingest.numbers: every spelling of a number gives one E.164 form; extensions stay None."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.config import SystemConfig
from ingest.numbers import NumberPlan, ascii_digits, is_extension, normalize_number

TEHRAN = SystemConfig(name="t", country_code="98", city_code="21")
PREFIX_9 = SystemConfig(name="p9", country_code="98", city_code="21", outgoing_prefix="9")
PREFIX_0 = SystemConfig(name="p0", country_code="98", city_code="21", outgoing_prefix="0")
ISFAHAN = SystemConfig(name="i", country_code="98", city_code="31")


@pytest.mark.parametrize(
    "raw",
    [
        "09121234567",
        "9121234567",  # a mobile number without its trunk zero, as many caller IDs arrive
        "+989121234567",
        "00989121234567",
        "989121234567",
        "0912 123 4567",
        "0912-123-4567",
        "(0912) 123 4567",
        "tel:+98 912 123 4567",
        "۰۹۱۲۱۲۳۴۵۶۷",  # Persian digits
        "٠٩١٢١٢٣٤٥٦٧",  # Arabic-Indic digits
        "+۹۸۹۱۲۱۲۳۴۵۶۷",
    ],
)
def test_mobile_spellings(raw: str) -> None:
    assert normalize_number(raw, TEHRAN) == "+989121234567"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("88776655", "+982188776655"),  # bare local number: the system's city code goes in front
        ("8877 6655", "+982188776655"),
        ("۸۸۷۷۶۶۵۵", "+982188776655"),
        ("02188776655", "+982188776655"),
        ("2188776655", "+982188776655"),  # city code without its trunk zero
        ("(021) 8877-6655", "+982188776655"),
        ("0098 21 8877 6655", "+982188776655"),
        ("+98 21 8877 6655", "+982188776655"),
    ],
)
def test_landline_spellings(raw: str, expected: str) -> None:
    assert normalize_number(raw, TEHRAN) == expected


def test_local_number_takes_the_systems_city_code() -> None:
    assert normalize_number("32221234", ISFAHAN) == "+983132221234"
    assert normalize_number("32221234", TEHRAN) == "+982132221234"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("909121234567", "+989121234567"),
        ("99121234567", "+989121234567"),  # prefix + mobile without its trunk zero
        ("988776655", "+982188776655"),  # prefix + local number
        ("902188776655", "+982188776655"),
        ("90016502530000", "+16502530000"),  # prefix + international access code
        ("09121234567", "+989121234567"),  # caller IDs of incoming calls carry no prefix
        ("9121234567", "+989121234567"),
    ],
)
def test_outgoing_prefix_is_stripped(raw: str, expected: str) -> None:
    assert normalize_number(raw, PREFIX_9) == expected


def test_zero_as_outgoing_prefix() -> None:
    assert normalize_number("009121234567", PREFIX_0) == "+989121234567"
    assert normalize_number("088776655", PREFIX_0) == "+982188776655"
    assert normalize_number("00989121234567", PREFIX_0) == "+989121234567"


def test_other_countries() -> None:
    us = SystemConfig(name="us", country_code="1", city_code="650")
    assert normalize_number("2530000", us) == "+16502530000"
    assert normalize_number("6502530000", us) == "+16502530000"
    assert normalize_number("16502530000", us) == "+16502530000"
    assert normalize_number("0016502530000", TEHRAN) == "+16502530000"
    assert normalize_number("+44 20 7946 0000", TEHRAN) == "+442079460000"


@pytest.mark.parametrize(
    "raw", [None, "", "+", "s", "anonymous", "101", "12345", "۱۰۱", "*123#", "98", "+12345", "001650253000"]
)
def test_extensions_and_non_numbers_are_none(raw: str | None) -> None:
    assert normalize_number(raw, TEHRAN) is None
    assert normalize_number(raw, PREFIX_9) is None


def test_is_extension() -> None:
    assert is_extension("101")
    assert is_extension("۱۰۱")
    assert is_extension("12345")
    assert not is_extension("123456")
    assert not is_extension("PJSIP/101")
    assert not is_extension("")


def test_ascii_digits() -> None:
    assert ascii_digits("۰۱۲۳۴۵۶۷۸۹ ٠١٢٣٤٥٦٧٨٩ abc") == "0123456789 0123456789 abc"


def test_number_plan_is_number_settings() -> None:
    assert normalize_number("88776655", NumberPlan(country_code="98", city_code="31")) == "+983188776655"


_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@given(st.sampled_from(["912", "935", "901", "990", "919"]), st.integers(min_value=0, max_value=9_999_999))
def test_every_spelling_of_a_mobile_agrees(operator: str, subscriber: int) -> None:
    national = f"{operator}{subscriber:07d}"
    e164 = normalize_number("0" + national, TEHRAN)
    assert e164 == "+98" + national
    for spelling in (national, "+98" + national, "0098" + national, "98" + national,
                     ("0" + national).translate(_PERSIAN), "9" + "0" + national):
        system = PREFIX_9 if spelling.startswith("90") else TEHRAN
        assert normalize_number(spelling, system) == e164, spelling


def _reference(candidate: str, strict: bool) -> str | None:
    """What phonenumbers itself says about a '+digits' candidate (the slow path)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if ok else None


@given(st.sampled_from(["98", "1", "44", "39", "7", "49", "971", "90", "86", "33", "2"]),
       st.text(alphabet="0123456789", min_size=4, max_size=12), st.booleans())
def test_fast_path_agrees_with_phonenumbers(country: str, rest: str, strict: bool) -> None:
    from ingest.numbers import _e164

    candidate = f"+{country}{rest}"
    assert _e164(candidate, strict=strict) == _reference(candidate, strict)
