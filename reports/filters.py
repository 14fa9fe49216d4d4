"""The validated report request: the seed's filters, each checked with an error naming the field.

`parse_filters` takes what a form or a command line gives (strings, or lists for `type`) and
returns a `ReportRequest`, or raises `ReportFilterError(field, why)`. Names (agent, branch,
telephone system) are checked against the database later, by `reports.data.resolve`, with the same
error class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reports import calendar as cal
from reports.calendar import Breakdown, Bucket, Calendar
from reports.errors import ReportFilterError

CallType = Literal["incoming", "outgoing", "missed", "internal"]
Lang = Literal["fa", "en"]
Format = Literal["pdf", "xlsx", "csv", "html"]
NumberSort = Literal["number", "calls", "talk"]

CALL_TYPES: tuple[CallType, ...] = ("incoming", "outgoing", "missed", "internal")
# "all" is the seed's choice; internal calls are an extra type, off unless asked for.
ALL_TYPES: tuple[CallType, ...] = ("incoming", "outgoing", "missed")
LANGS: tuple[Lang, ...] = ("fa", "en")
FORMATS: tuple[Format, ...] = ("pdf", "xlsx", "csv", "html")
NUMBER_SORTS: tuple[NumberSort, ...] = ("number", "calls", "talk")
PERIOD_KINDS = ("year", "season", "month")
KNOWN_FIELDS = frozenset({
    "period", "year", "season", "month", "from", "to", "by", "agent", "type", "branch", "system",
    "calendar", "tz", "lang", "format", "company", "sort",
})
DEFAULT_TIMEZONE = "Asia/Tehran"
# A day breakdown over decades would make an unreadable report and chart.
MAX_BUCKETS = 1200


@dataclass(frozen=True)
class ReportRequest:
    """Everything a report needs to know, already validated (names are checked against the database later)."""

    first_day: date
    last_day: date
    breakdown: Breakdown = "day"
    types: tuple[CallType, ...] = ALL_TYPES
    calendar: Calendar = "jalali"
    timezone: str = DEFAULT_TIMEZONE
    lang: Lang = "fa"
    format: Format = "pdf"
    agent: str | None = None
    branch: str | None = None
    system: str | None = None
    company: str = ""
    sort: NumberSort = "number"
    buckets: tuple[Bucket, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.buckets:
            found = cal.buckets(self.first_day, self.last_day, self.breakdown, self.calendar)
            object.__setattr__(self, "buckets", tuple(found))

    @property
    def zone(self) -> ZoneInfo:
        """The report's time zone."""
        return ZoneInfo(self.timezone)

    def utc_range(self) -> tuple[datetime, datetime]:
        """The period as [start, end) UTC instants."""
        return (cal.local_midnight(self.first_day, self.zone),
                cal.local_midnight(self.last_day + timedelta(days=1), self.zone))

    def bucket_starts(self) -> list[datetime]:
        """UTC instant at which each bucket begins, in order."""
        return [cal.local_midnight(b.start, self.zone) for b in self.buckets]


def _text(values: Mapping[str, object], key: str) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _choice(values: Mapping[str, object], key: str, allowed: Iterable[str], default: str) -> str:
    text = _text(values, key)
    if text is None:
        return default
    allowed = tuple(allowed)
    if text.lower() not in allowed:
        raise ReportFilterError(key, f"{text!r} is not one of {', '.join(allowed)}")
    return text.lower()


def parse_types(text: str | None) -> tuple[CallType, ...]:
    """`all`, `incoming`, `missed,internal`, `all,internal` ... as an ordered tuple of call types."""
    if text is None:
        return ALL_TYPES
    chosen: set[str] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if part == "all":
            chosen.update(ALL_TYPES)
        elif part in CALL_TYPES:
            chosen.add(part)
        else:
            raise ReportFilterError("type", f"{part!r} is not one of all, {', '.join(CALL_TYPES)}")
    return tuple(t for t in CALL_TYPES if t in chosen)


def _int(values: Mapping[str, object], key: str) -> int | None:
    text = _text(values, key)
    if text is None:
        return None
    digits = text.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))
    if not digits.isdigit():
        raise ReportFilterError(key, f"{text!r} is not a number")
    return int(digits)


def _date(values: Mapping[str, object], key: str, calendar: Calendar) -> date | None:
    text = _text(values, key)
    if text is None:
        return None
    try:
        return cal.parse_date(text, calendar)
    except ValueError as exc:
        raise ReportFilterError(key, str(exc)) from None


def _period(values: Mapping[str, object], calendar: Calendar, today: date) -> tuple[date, date]:
    period = _text(values, "period")
    first = _date(values, "from", calendar)
    last = _date(values, "to", calendar)
    if first is not None or last is not None:
        if period is not None:
            raise ReportFilterError("period", "give either a named period or from/to dates, not both")
        if first is None:
            raise ReportFilterError("from", "is required when to is given")
        last = last if last is not None else today
        if last < first:
            raise ReportFilterError(
                "to", f"{cal.format_date(last, calendar)} is before from ({cal.format_date(first, calendar)})"
            )
        return first, last
    year = _int(values, "year")
    if period is None:
        period = "month" if _text(values, "month") else "season" if _text(values, "season") else None
        period = period or ("year" if year is not None else "this_month")
    period = period.lower()
    if period in PERIOD_KINDS:
        if year is None:
            raise ReportFilterError("year", f"is required for a {period} period")
        index = _int(values, period) if period != "year" else None
        if period != "year" and index is None:
            raise ReportFilterError(period, f"is required for a {period} period")
        limit = {"year": 0, "season": 4, "month": 12}[period]
        if index is not None and not 1 <= index <= limit:
            raise ReportFilterError(period, f"must be 1-{limit}, not {index}")
        try:
            return cal.calendar_period(period, year, index, calendar)
        except ValueError as exc:
            raise ReportFilterError("year", str(exc)) from None
    try:
        return cal.named_period(period, today, calendar)
    except KeyError:
        names = ", ".join((*cal.NAMED_PERIODS, *PERIOD_KINDS))
        raise ReportFilterError("period", f"{period!r} is not one of {names}") from None


def parse_filters(values: Mapping[str, object], *, today: date | None = None) -> ReportRequest:
    """Validate a form's or command line's filter values; raises ReportFilterError naming the field."""
    unknown = sorted(set(values) - KNOWN_FIELDS)
    if unknown:
        raise ReportFilterError(unknown[0], "is not a report filter")
    lang = cast(Lang, _choice(values, "lang", LANGS, "fa"))
    calendar = cast(Calendar, _choice(values, "calendar", cal.CALENDARS, "jalali" if lang == "fa" else "gregorian"))
    timezone = _text(values, "tz") or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportFilterError("tz", f"{timezone!r} is not a known time zone (e.g. Asia/Tehran)") from None
    if today is None:
        today = datetime.now(zone).date()
    first, last = _period(values, calendar, today)
    default_breakdown = "day" if (last - first).days < 62 else "month"
    breakdown = cast(Breakdown, _choice(values, "by", cal.BREAKDOWNS, default_breakdown))
    buckets = cal.buckets(first, last, breakdown, calendar)
    if len(buckets) > MAX_BUCKETS:
        raise ReportFilterError("by", f"{len(buckets)} {breakdown}s is too many (at most {MAX_BUCKETS}): "
                                      "choose a longer breakdown or a shorter period")
    return ReportRequest(
        first_day=first,
        last_day=last,
        breakdown=breakdown,
        types=parse_types(_text(values, "type")),
        calendar=calendar,
        timezone=timezone,
        lang=lang,
        format=cast(Format, _choice(values, "format", FORMATS, "pdf")),
        agent=_text(values, "agent"),
        branch=_text(values, "branch"),
        system=_text(values, "system"),
        company=_text(values, "company") or "",
        sort=cast(NumberSort, _choice(values, "sort", NUMBER_SORTS, "number")),
        buckets=tuple(buckets),
    )


def build_request(**filters: object) -> ReportRequest:
    """`parse_filters` with keyword arguments (`from_`/`to` spelled `date_from`/`date_to` too)."""
    renamed = {"date_from": "from", "from_": "from", "date_to": "to", "timezone": "tz", "breakdown": "by"}
    today = filters.pop("today", None)
    values = {renamed.get(key, key): value for key, value in filters.items()}
    return parse_filters(values, today=today if isinstance(today, date) else None)
