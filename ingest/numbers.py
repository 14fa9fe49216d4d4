"""Phone number normalisation: the one function used by import, ingest and the report queries.

Numbers are compared in E.164 form. Per telephone system: strip the outgoing prefix, accept
Persian and Arabic-Indic digits, leave extensions (5 digits or fewer) alone, add the city code to
bare local numbers (phonenumbers has no notion of a default area code), then E.164.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

import phonenumbers

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_KEEP = re.compile(r"[^\d+]")
EXTENSION_MAX_DIGITS = 5


class NumberSettings(Protocol):
    """What normalisation needs from a telephone system."""

    @property
    def country_code(self) -> str: ...

    @property
    def city_code(self) -> str: ...

    @property
    def outgoing_prefix(self) -> str: ...


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
    if not text or text == "+":
        return None
    if text.startswith("+"):
        return _e164(text, strict=False)
    if len(text) <= EXTENSION_MAX_DIGITS:
        return None
    candidates = [text]
    if outgoing_prefix and text.startswith(outgoing_prefix) and len(text) - len(outgoing_prefix) > EXTENSION_MAX_DIGITS:
        # The prefix is usually there to reach a trunk; try the number without it first.
        candidates.insert(0, text[len(outgoing_prefix):])
    international = [_international(c, country_code, city_code) for c in candidates]
    for strict in (True, False):
        for candidate in international:
            found = _e164(candidate, strict=strict)
            if found is not None:
                return found
    return None


def _international(text: str, country_code: str, city_code: str) -> str:
    if text.startswith("00"):
        return "+" + text[2:]
    if text.startswith("0"):
        return f"+{country_code}{text[1:]}"
    if country_code and text.startswith(country_code) and len(text) >= 11:
        return "+" + text
    # A bare local number: the system's city code goes in front.
    return f"+{country_code}{city_code}{text}"


def _e164(candidate: str, *, strict: bool) -> str | None:
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
    if not ok:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
