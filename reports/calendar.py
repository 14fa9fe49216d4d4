"""Jalali and Gregorian dates, periods and buckets, and their edges in UTC for SQL.

Dates here are plain `datetime.date` values (proleptic Gregorian, as Python keeps them); the
calendar only decides how they are written, read and grouped. A Jalali season is three Jalali
months (Farvardin-Khordad is spring); a Gregorian season is a quarter. A bucket's edges are local
midnights in the report's time zone, turned into UTC instants with zoneinfo, so a day is 23 or 25
hours long across a DST change and a Jalali month is exactly the union of its local days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import jdatetime

Calendar = Literal["jalali", "gregorian"]
Breakdown = Literal["day", "month", "season", "year"]
CALENDARS: tuple[Calendar, ...] = ("jalali", "gregorian")
BREAKDOWNS: tuple[Breakdown, ...] = ("day", "month", "season", "year")

MONTH_NAMES: dict[Calendar, dict[str, tuple[str, ...]]] = {
    "jalali": {
        "fa": ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
               "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند"),
        "en": ("Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar",
               "Mehr", "Aban", "Azar", "Dey", "Bahman", "Esfand"),
    },
    "gregorian": {
        "fa": ("ژانویه", "فوریه", "مارس", "آوریل", "مه", "ژوئن",
               "ژوئیه", "اوت", "سپتامبر", "اکتبر", "نوامبر", "دسامبر"),
        "en": ("January", "February", "March", "April", "May", "June",
               "July", "August", "September", "October", "November", "December"),
    },
}
SEASON_NAMES: dict[Calendar, dict[str, tuple[str, ...]]] = {
    "jalali": {"fa": ("بهار", "تابستان", "پاییز", "زمستان"), "en": ("Spring", "Summer", "Autumn", "Winter")},
    "gregorian": {"fa": ("فصل اول", "فصل دوم", "فصل سوم", "فصل چهارم"), "en": ("Q1", "Q2", "Q3", "Q4")},
}

# Years outside these ranges are almost certainly a date written in the other calendar.
_YEAR_RANGE: dict[Calendar, tuple[int, int]] = {"jalali": (1300, 1600), "gregorian": (1900, 2300)}
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_DATE = re.compile(r"^\s*(\d{4})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*$")


@lru_cache(maxsize=8192)
def split(day: date, calendar: Calendar) -> tuple[int, int, int]:
    """(year, month, day) of `day` in `calendar` (cached: exports convert the same days again and again)."""
    if calendar == "gregorian":
        return day.year, day.month, day.day
    j = jdatetime.date.fromgregorian(date=day)
    return j.year, j.month, j.day


def month_days(year: int, month: int, calendar: Calendar) -> int:
    """Number of days of a month (Esfand has 30 in a Jalali leap year)."""
    if calendar == "gregorian":
        following = date(year + month // 12, month % 12 + 1, 1)
        return (following - timedelta(days=1)).day
    if month <= 6:
        return 31
    if month <= 11:
        return 30
    return 30 if jdatetime.date(year, 1, 1).isleap() else 29


def join(year: int, month: int, day: int, calendar: Calendar) -> date:
    """The date written (year, month, day) in `calendar`; ValueError says why it does not exist."""
    low, high = _YEAR_RANGE[calendar]
    if not low <= year <= high:
        other = "Gregorian" if calendar == "jalali" else "Jalali"
        raise ValueError(f"year {year} is out of range for the {calendar} calendar ({low}-{high});"
                         f" is it a {other} date?")
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} does not exist (1-12)")
    days = month_days(year, month, calendar)
    if not 1 <= day <= days:
        name = MONTH_NAMES[calendar]["en"][month - 1]
        raise ValueError(f"{format_ymd(year, month, day, calendar)} does not exist: {name} {year} has {days} days")
    if calendar == "gregorian":
        return date(year, month, day)
    gregorian: date = jdatetime.date(year, month, day).togregorian()
    return gregorian


def format_ymd(year: int, month: int, day: int, calendar: Calendar) -> str:
    """`1397/01/20` in Jalali, `2018-04-09` in Gregorian (ASCII digits)."""
    separator = "/" if calendar == "jalali" else "-"
    return f"{year:04d}{separator}{month:02d}{separator}{day:02d}"


@lru_cache(maxsize=8192)
def format_date(day: date, calendar: Calendar) -> str:
    """`day` written in `calendar` (ASCII digits)."""
    return format_ymd(*split(day, calendar), calendar)


def parse_date(text: str, calendar: Calendar) -> date:
    """Read `1405/09/05` or `2026-11-26` (Persian digits accepted); ValueError says what is wrong."""
    match = _DATE.match(text.translate(_DIGITS))
    if match is None:
        example = "1405/09/05" if calendar == "jalali" else "2026-11-26"
        raise ValueError(f"{text!r} is not a date; write it as {example}")
    year, month, day = (int(part) for part in match.groups())
    return join(year, month, day, calendar)


def bucket_start(day: date, breakdown: Breakdown, calendar: Calendar) -> date:
    """First day of the day, month, season or year holding `day`."""
    if breakdown == "day":
        return day
    year, month, _ = split(day, calendar)
    if breakdown == "month":
        return join(year, month, 1, calendar)
    if breakdown == "season":
        return join(year, (month - 1) // 3 * 3 + 1, 1, calendar)
    return join(year, 1, 1, calendar)


def add_months(first_of_month: date, months: int, calendar: Calendar) -> date:
    """The first day of the month `months` after the month starting on `first_of_month`."""
    year, month, _ = split(first_of_month, calendar)
    index = year * 12 + month - 1 + months
    return join(index // 12, index % 12 + 1, 1, calendar)


def bucket_after(start: date, breakdown: Breakdown, calendar: Calendar) -> date:
    """The first day after the bucket starting on `start`."""
    if breakdown == "day":
        return start + timedelta(days=1)
    return add_months(start, {"month": 1, "season": 3, "year": 12}[breakdown], calendar)


@dataclass(frozen=True)
class Bucket:
    """One row group of the report: local dates [start, end), clipped to the period."""

    index: int
    start: date
    end: date
    breakdown: Breakdown
    calendar: Calendar

    def label(self, lang: str) -> str:
        """`1397/01/20`, `Farvardin 1397`, `Spring 1397`, `1397` (ASCII digits)."""
        year, month, _ = split(self.start, self.calendar)
        if self.breakdown == "day":
            return format_date(self.start, self.calendar)
        if self.breakdown == "month":
            return f"{MONTH_NAMES[self.calendar][lang][month - 1]} {year}"
        if self.breakdown == "season":
            return f"{SEASON_NAMES[self.calendar][lang][(month - 1) // 3]} {year}"
        return str(year)


def buckets(first: date, last: date, breakdown: Breakdown, calendar: Calendar) -> list[Bucket]:
    """The buckets covering the days `first`..`last` (inclusive), edge buckets clipped."""
    result: list[Bucket] = []
    start = bucket_start(first, breakdown, calendar)
    stop = last + timedelta(days=1)
    while start < stop:
        following = bucket_after(start, breakdown, calendar)
        result.append(Bucket(len(result), max(start, first), min(following, stop), breakdown, calendar))
        start = following
    return result


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in `zone` (the first instant after a DST gap)."""
    # fold=0 in a gap uses the offset before the change, which lands exactly on the transition.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def week_start(day: date, calendar: Calendar) -> date:
    """Saturday (Iranian week) for Jalali, Monday (ISO week) for Gregorian."""
    first_weekday = 5 if calendar == "jalali" else 0
    return day - timedelta(days=(day.weekday() - first_weekday) % 7)


NAMED_PERIODS: tuple[str, ...] = (
    "today", "yesterday", "this_week", "last_week", "this_month", "last_month",
    "this_season", "last_season", "this_year", "last_year",
)


def named_period(name: str, today: date, calendar: Calendar) -> tuple[date, date]:
    """First and last day of a named period relative to `today`; KeyError for an unknown name."""
    one = timedelta(days=1)
    if name == "today":
        return today, today
    if name == "yesterday":
        return today - one, today - one
    if name in ("this_week", "last_week"):
        start = week_start(today, calendar) - timedelta(days=7 if name == "last_week" else 0)
        return start, start + timedelta(days=6)
    kinds: dict[str, Breakdown] = {"month": "month", "season": "season", "year": "year"}
    which, _, kind = name.partition("_")
    if which not in ("this", "last") or kind not in kinds:
        raise KeyError(name)
    start = bucket_start(today, kinds[kind], calendar)
    if which == "last":
        start = bucket_start(start - one, kinds[kind], calendar)
    return start, bucket_after(start, kinds[kind], calendar) - one


def calendar_period(kind: str, year: int, index: int | None, calendar: Calendar) -> tuple[date, date]:
    """The seed's period pickers: a year, a season (1-4) or a month (1-12) of `year`."""
    one = timedelta(days=1)
    if kind == "year":
        start = join(year, 1, 1, calendar)
        return start, bucket_after(start, "year", calendar) - one
    if kind == "season":
        if index is None or not 1 <= index <= 4:
            raise ValueError(f"season must be 1-4, not {index}")
        start = join(year, (index - 1) * 3 + 1, 1, calendar)
        return start, bucket_after(start, "season", calendar) - one
    if kind == "month":
        if index is None or not 1 <= index <= 12:
            raise ValueError(f"month must be 1-12, not {index}")
        start = join(year, index, 1, calendar)
        return start, bucket_after(start, "month", calendar) - one
    raise ValueError(f"unknown period kind {kind!r}")
