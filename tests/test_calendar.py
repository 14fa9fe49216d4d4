"""reports.calendar: Jalali and Gregorian dates, buckets and their UTC edges (leap years, DST)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reports import calendar as cal

TEHRAN = ZoneInfo("Asia/Tehran")
BERLIN = ZoneInfo("Europe/Berlin")


def day_hours(day: date, zone: ZoneInfo) -> float:
    """Length of a local day in hours."""
    return (cal.local_midnight(day + timedelta(days=1), zone) - cal.local_midnight(day, zone)).total_seconds() / 3600


def test_jalali_dates_read_and_write_both_ways() -> None:
    assert cal.parse_date("1397/01/20", "jalali") == date(2018, 4, 9)
    assert cal.parse_date("۱۴۰۵/۰۹/۰۵", "jalali") == date(2026, 11, 26)  # Persian digits
    assert cal.parse_date("1405-9-5", "jalali") == date(2026, 11, 26)
    assert cal.format_date(date(2026, 11, 26), "jalali") == "1405/09/05"
    assert cal.format_date(date(2026, 11, 26), "gregorian") == "2026-11-26"
    assert cal.parse_date("2026-11-26", "gregorian") == date(2026, 11, 26)


@pytest.mark.parametrize(("year", "leap"), [(1399, True), (1400, False), (1403, True), (1404, False), (1408, True)])
def test_esfand_has_30_days_only_in_leap_years(year: int, leap: bool) -> None:
    assert cal.month_days(year, 12, "jalali") == (30 if leap else 29)
    if leap:
        assert cal.join(year, 12, 30, "jalali") + timedelta(days=1) == cal.join(year + 1, 1, 1, "jalali")
    else:
        with pytest.raises(ValueError, match=rf"{year}/12/30 does not exist: Esfand {year} has 29 days"):
            cal.join(year, 12, 30, "jalali")


def test_esfand_1403_30_is_the_day_before_nowruz_1404() -> None:
    assert cal.parse_date("1403/12/30", "jalali") == date(2025, 3, 20)
    assert cal.parse_date("1404/01/01", "jalali") == date(2025, 3, 21)


def test_a_date_in_the_other_calendar_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="is it a Gregorian date"):
        cal.parse_date("2026-11-26", "jalali")
    with pytest.raises(ValueError, match="is it a Jalali date"):
        cal.parse_date("1405/09/05", "gregorian")
    with pytest.raises(ValueError, match="is not a date"):
        cal.parse_date("yesterday-ish", "jalali")
    with pytest.raises(ValueError, match="2025-02-29 does not exist: February 2025 has 28 days"):
        cal.parse_date("2025-02-29", "gregorian")


def test_month_buckets_follow_the_jalali_months_and_clip_the_period() -> None:
    buckets = cal.buckets(date(2025, 3, 1), date(2025, 4, 25), "month", "jalali")
    assert [(b.start, b.end) for b in buckets] == [
        (date(2025, 3, 1), date(2025, 3, 21)),    # Esfand 1403 from its 10th (clipped), 30 days long
        (date(2025, 3, 21), date(2025, 4, 21)),   # Farvardin 1404, 31 days
        (date(2025, 4, 21), date(2025, 4, 26)),   # Ordibehesht 1404, clipped at the period's end
    ]
    assert [b.label("en") for b in buckets] == ["Esfand 1403", "Farvardin 1404", "Ordibehesht 1404"]
    assert buckets[1].label("fa") == "فروردین 1404"


def test_seasons_are_three_jalali_months_or_gregorian_quarters() -> None:
    first, last = cal.calendar_period("year", 1405, None, "jalali")
    seasons = cal.buckets(first, last, "season", "jalali")
    assert [(cal.format_date(b.start, "jalali"), b.label("en")) for b in seasons] == [
        ("1405/01/01", "Spring 1405"), ("1405/04/01", "Summer 1405"),
        ("1405/07/01", "Autumn 1405"), ("1405/10/01", "Winter 1405"),
    ]
    assert seasons[-1].end == cal.join(1406, 1, 1, "jalali")
    quarters = cal.buckets(date(2026, 1, 1), date(2026, 12, 31), "season", "gregorian")
    assert [b.start for b in quarters] == [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]
    assert quarters[0].label("en") == "Q1 2026"


def test_day_and_year_buckets() -> None:
    days = cal.buckets(date(2026, 3, 19), date(2026, 3, 22), "day", "jalali")
    assert [b.label("en") for b in days] == ["1404/12/28", "1404/12/29", "1405/01/01", "1405/01/02"]
    years = cal.buckets(date(2026, 3, 19), date(2026, 3, 22), "year", "jalali")
    assert [(b.label("en"), b.start, b.end) for b in years] == [
        ("1404", date(2026, 3, 19), date(2026, 3, 21)), ("1405", date(2026, 3, 21), date(2026, 3, 23))]


def test_tehran_days_had_dst_until_2022_and_not_after() -> None:
    # 1400/01/02 (2021-03-22): clocks went from 00:00 to 01:00, so the day began at 01:00 (+04:30).
    assert day_hours(date(2021, 3, 22), TEHRAN) == 23
    assert cal.local_midnight(date(2021, 3, 22), TEHRAN) == datetime(2021, 3, 21, 20, 30, tzinfo=UTC)
    # 1400/06/31 (2021-09-22): an hour repeated, the day lasted 25 hours.
    assert day_hours(date(2021, 9, 21), TEHRAN) == 25
    farvardin_1400 = cal.calendar_period("month", 1400, 1, "jalali")
    end = cal.local_midnight(farvardin_1400[1] + timedelta(days=1), TEHRAN)
    span = end - cal.local_midnight(farvardin_1400[0], TEHRAN)
    assert span == timedelta(days=31, hours=-1)
    # Iran abolished DST in 2022: every day of 1402 is 24 hours long.
    first, last = cal.calendar_period("year", 1402, None, "jalali")
    assert {day_hours(first + timedelta(days=n), TEHRAN) for n in range((last - first).days + 1)} == {24}


def test_berlin_days_across_dst() -> None:
    assert day_hours(date(2026, 3, 29), BERLIN) == 23
    assert day_hours(date(2026, 10, 25), BERLIN) == 25
    assert day_hours(date(2026, 6, 1), BERLIN) == 24
    assert cal.local_midnight(date(2026, 3, 29), BERLIN) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert cal.local_midnight(date(2026, 3, 30), BERLIN) == datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_named_periods_in_both_calendars() -> None:
    today = date(2026, 3, 30)  # a Monday; 1405/01/10
    assert cal.named_period("today", today, "jalali") == (today, today)
    assert cal.named_period("yesterday", today, "gregorian") == (date(2026, 3, 29), date(2026, 3, 29))
    # The Iranian week starts on Saturday, the ISO week on Monday.
    assert cal.named_period("this_week", today, "jalali") == (date(2026, 3, 28), date(2026, 4, 3))
    assert cal.named_period("this_week", today, "gregorian") == (date(2026, 3, 30), date(2026, 4, 5))
    assert cal.named_period("last_week", today, "jalali") == (date(2026, 3, 21), date(2026, 3, 27))
    # Last month across the Jalali new year: Esfand 1404, 29 days.
    assert cal.named_period("last_month", today, "jalali") == (
        cal.join(1404, 12, 1, "jalali"), cal.join(1404, 12, 29, "jalali"))
    assert cal.named_period("this_month", today, "gregorian") == (date(2026, 3, 1), date(2026, 3, 31))
    assert cal.named_period("this_season", today, "jalali") == (
        cal.join(1405, 1, 1, "jalali"), cal.join(1405, 3, 31, "jalali"))
    assert cal.named_period("last_season", today, "gregorian") == (date(2025, 10, 1), date(2025, 12, 31))
    assert cal.named_period("last_year", today, "jalali") == (
        cal.join(1404, 1, 1, "jalali"), cal.join(1404, 12, 29, "jalali"))
    assert cal.named_period("this_year", today, "gregorian") == (date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(KeyError):
        cal.named_period("next_decade", today, "jalali")


def test_calendar_pickers_of_the_seed_form() -> None:
    assert cal.calendar_period("month", 1397, 11, "jalali") == (date(2019, 1, 21), date(2019, 2, 19))  # Bahman
    assert cal.calendar_period("season", 1403, 4, "jalali") == (cal.join(1403, 10, 1, "jalali"), date(2025, 3, 20))
    with pytest.raises(ValueError, match="season must be 1-4"):
        cal.calendar_period("season", 1403, 5, "jalali")
