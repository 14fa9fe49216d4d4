"""reports.filters: the validated request; every bad value names its field and says why."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from reports import calendar as cal
from reports.errors import ReportFilterError
from reports.filters import ReportRequest, build_request, parse_filters, parse_types

TODAY = date(2026, 3, 30)  # 1405/01/10


def parse(**values: object) -> ReportRequest:
    return parse_filters({k.rstrip("_"): v for k, v in values.items()}, today=TODAY)


def test_defaults_are_the_seeds() -> None:
    request = parse()
    assert (request.lang, request.calendar, request.timezone, request.format) == ("fa", "jalali", "Asia/Tehran", "pdf")
    assert (request.first_day, request.last_day) == (cal.join(1405, 1, 1, "jalali"), cal.join(1405, 1, 31, "jalali"))
    assert request.breakdown == "day"
    assert request.types == ("incoming", "outgoing", "missed")
    assert len(request.buckets) == 31


def test_english_defaults_to_the_gregorian_calendar() -> None:
    request = parse(lang="en")
    assert request.calendar == "gregorian"
    assert (request.first_day, request.last_day) == (date(2026, 3, 1), date(2026, 3, 31))


def test_custom_range_and_breakdown() -> None:
    request = parse(from_="1404/12/01", to="1405/01/31", by="month", branch="tehran", system="tehran-main",
                    agent="ali", type="incoming,missed", format="csv", tz="Europe/Berlin")
    assert (request.first_day, request.last_day) == (date(2026, 2, 20), date(2026, 4, 20))
    assert [b.label("en") for b in request.buckets] == ["Esfand 1404", "Farvardin 1405"]
    assert request.types == ("incoming", "missed")
    assert (request.agent, request.branch, request.system, request.format) == ("ali", "tehran", "tehran-main", "csv")
    start, end = request.utc_range()
    # 60 local days, one of them 23 hours long (Berlin's spring DST change on 2026-03-29).
    assert end - start == timedelta(days=60, hours=-1)


def test_long_periods_default_to_months() -> None:
    assert parse(period="this_year").breakdown == "month"


def test_the_seed_pickers() -> None:
    bahman = parse(period="month", year="1397", month="11")
    assert (bahman.first_day, bahman.last_day) == (date(2019, 1, 21), date(2019, 2, 19))
    assert parse(year="۱۴۰۴", season="4").last_day == cal.join(1404, 12, 29, "jalali")
    assert parse(year="1404").first_day == cal.join(1404, 1, 1, "jalali")


def test_type_lists() -> None:
    assert parse_types("all") == ("incoming", "outgoing", "missed")
    assert parse_types("all,internal") == ("incoming", "outgoing", "missed", "internal")
    assert parse_types(" missed , incoming ") == ("incoming", "missed")
    assert parse(type=["outgoing", "internal"]).types == ("outgoing", "internal")


def test_build_request_takes_keywords() -> None:
    request = build_request(date_from="2026-03-01", date_to="2026-03-31", lang="en", breakdown="season",
                            timezone="UTC", today=TODAY)
    assert (request.breakdown, request.timezone, request.calendar) == ("season", "UTC", "gregorian")


INVALID = [
    ({"from_": "1404/12/30", "to": "1405/01/05"}, "from", "1404/12/30 does not exist: Esfand 1404 has 29 days"),
    ({"from_": "1405/01/10", "to": "1405/01/01"}, "to", "1405/01/01 is before from (1405/01/10)"),
    ({"from_": "tomorrow"}, "from", "'tomorrow' is not a date; write it as 1405/09/05"),
    ({"from_": "2026-03-01"}, "from", "year 2026 is out of range for the jalali calendar"),
    ({"to": "1405/01/01"}, "from", "is required when to is given"),
    ({"period": "this_month", "from_": "1405/01/01"}, "period", "not both"),
    ({"period": "someday"}, "period", "'someday' is not one of today, yesterday"),
    ({"period": "month", "month": "2"}, "year", "is required for a month period"),
    ({"period": "month", "year": "1405", "month": "13"}, "month", "must be 1-12, not 13"),
    ({"period": "season", "year": "1405", "season": "5"}, "season", "must be 1-4, not 5"),
    ({"period": "season", "year": "1405"}, "season", "is required for a season period"),
    ({"year": "14x5"}, "year", "'14x5' is not a number"),
    ({"by": "week"}, "by", "'week' is not one of day, month, season, year"),
    ({"type": "voicemail"}, "type", "'voicemail' is not one of all, incoming, outgoing, missed, internal"),
    ({"calendar": "hebrew"}, "calendar", "'hebrew' is not one of jalali, gregorian"),
    ({"lang": "de"}, "lang", "'de' is not one of fa, en"),
    ({"format": "docx"}, "format", "'docx' is not one of pdf, xlsx, csv, html"),
    ({"tz": "Mars/Olympus"}, "tz", "'Mars/Olympus' is not a known time zone"),
    ({"sort": "size"}, "sort", "'size' is not one of number, calls, talk"),
    ({"colour": "red"}, "colour", "is not a report filter"),
    ({"from_": "1380/01/01", "to": "1405/01/01", "by": "day"}, "by", "is too many (at most 1200)"),
]


@pytest.mark.parametrize(("values", "field", "message"), INVALID, ids=[f"{i[1]}-{n}" for n, i in enumerate(INVALID)])
def test_every_invalid_value_names_its_field(values: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ReportFilterError) as caught:
        parse(**values)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")
