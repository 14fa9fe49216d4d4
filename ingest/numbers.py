"""Phone number normalisation: the one function used by import, ingest and the report queries.

Numbers are compared in E.164 form. Per telephone system: strip the outgoing prefix, accept
Persian and Arabic-Indic digits, leave extensions (5 digits or fewer) alone, add the city code to
bare local numbers (phonenumbers has no notion of a default area code), then E.164.

A string of digits can be read several ways (`9121234567` is a mobile number without its trunk
zero, `88776655` a local number, `989121234567` already international), so every reading is
tried, first against phonenumbers' full metadata (valid numbers), then leniently (possible
numbers), the readings the dialled length makes likely first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import region_code_for_country_code

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_KEEP = re.compile(r"[^\d+]")
EXTENSION_MAX_DIGITS = 5
# Local subscriber numbers are at most this long (Tehran: 8); longer strings are national first.
_LOCAL_MAX_DIGITS = 8


class NumberSettings(Protocol):
    """What normalisation needs from a telephone system."""

    @property
    def country_code(self) -> str: ...

    @property
    def city_code(self) -> str: ...

    @property
    def outgoing_prefix(self) -> str: ...


@dataclass(frozen=True)
class NumberPlan:
    """Number settings that are not a telephone system's (e.g. for CRM identities: no prefix)."""

    country_code: str = "98"
    city_code: str = "21"
    outgoing_prefix: str = ""


def ascii_digits(text: str) -> str:
    """Persian and Arabic-Indic digits turned into ASCII digits."""
    return text.translate(_DIGITS)


def is_extension(raw: str) -> bool:
    """True for an internal extension number (digits only, 5 or fewer)."""
    digits = ascii_digits(raw).strip()
    return digits.isdigit() and len(digits) <= EXTENSION_MAX_DIGITS


def normalize_number(raw: str | None, system: NumberSettings) -> str | None:
    """E.164 form of `raw` as dialled on `system`, or None for extensions and non-numbers."""
    if not raw:
        return None
    return _normalize(ascii_digits(raw), system.country_code, system.city_code, system.outgoing_prefix)


@lru_cache(maxsize=65536)
def _normalize(raw: str, country_code: str, city_code: str, outgoing_prefix: str) -> str | None:
    text = _KEEP.sub("", raw)
    if text.startswith("+"):
        digits = text.replace("+", "")
        return _e164("+" + digits, strict=False) if len(digits) > EXTENSION_MAX_DIGITS else None
    text = text.replace("+", "")
    if len(text) <= EXTENSION_MAX_DIGITS:
        return None
    candidates: list[str] = []
    if outgoing_prefix and text.startswith(outgoing_prefix) and len(text) - len(outgoing_prefix) > EXTENSION_MAX_DIGITS:
        # The prefix is there to reach a trunk; the number without it is the likelier reading.
        candidates.extend(_readings(text[len(outgoing_prefix):], country_code, city_code))
    candidates.extend(_readings(text, country_code, city_code))
    for strict in (True, False):
        for candidate in candidates:
            found = _e164(candidate, strict=strict)
            if found is not None:
                return found
    return None


def _readings(text: str, country_code: str, city_code: str) -> list[str]:
    """The international forms `text` may stand for, likeliest first."""
    if text.startswith("00"):
        return ["+" + text[2:]]
    if text.startswith("0"):
        return [f"+{country_code}{text[1:]}"]
    local = f"+{country_code}{city_code}{text}"
    national = f"+{country_code}{text}"
    international = "+" + text
    if len(text) <= _LOCAL_MAX_DIGITS:
        return [local, national, international]
    return [national, international, local]


@lru_cache(maxsize=1024)
def _plain_prefix(country_code: int) -> str | None:
    """The region's national prefix when it is plain digits ('' for none); None when parsing must decide."""
    region = region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing or ""
    return prefix if prefix == "" or prefix.isdigit() else None


def _e164(candidate: str, *, strict: bool) -> str | None:
    # Fast path (a call import normalises a number per call): a clean '+digits' candidate is split
    # and checked directly, as phonenumbers.parse would, skipping its ~50 us of text handling.
    # Candidates parse() would rewrite (leading zeros, national prefixes) take the slow path.
    digits = candidate[1:]
    if digits.isascii() and digits.isdigit():
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                national = digits[size:]
                prefix = _plain_prefix(code)
                rewritten = prefix is None or (prefix and national.startswith(prefix))
                if national and national[0] != "0" and not rewritten:
                    number = PhoneNumber(country_code=code, national_number=int(national))
                    valid = phonenumbers.is_valid_number(number) if strict else phonenumbers.is_possible_number(number)
                    return f"+{code}{national}" if valid else None
                break
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
    if not ok:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
