"""The report form: its options, the values it posts, and how they become `parse_filters` input.

The form's field names are the filter names of `reports.filters` (period, year, season, month,
from, to, by, agent, type, branch, system, calendar, sort, format), so the web adds nothing to
the rules: it only turns the "custom" period kind into from/to, adds the page language and the
company, and drops the fields that are the web's own (CSRF token, button, page number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from markupsafe import Markup, escape

from reports import calendar as cal
from reports.errors import ReportFilterError
from reports.web import i18n

# Report kinds served by the form: the call-details report and the three sibling totals.
KINDS: tuple[str, ...] = ("details", "agent", "date", "number")
TITLE_KEYS: dict[str, str] = {
    "details": "report.title",
    "agent": "totals_agent.title",
    "date": "totals_date.title",
    "number": "totals_number.title",
}
FORM_FIELDS: tuple[str, ...] = (
    "period", "calendar", "year", "season", "month", "from", "to", "by", "agent", "type", "branch", "system",
    "sort", "format",
)
PERIOD_KINDS: tuple[str, ...] = ("year", "season", "month", "custom")
TYPE_CHOICES: tuple[str, ...] = ("all", "incoming", "outgoing", "missed", "internal", "all,internal")
FORMATS: tuple[str, ...] = ("pdf", "xlsx", "csv", "html")
YEARS_BACK = 10


@dataclass(frozen=True)
class Option:
    """One <option>: its value, its label and whether it is selected."""

    value: str
    label: str
    selected: bool = False
    group: str = ""


@dataclass(frozen=True)
class FormContext:
    """Everything the filter form template shows: values, per-field errors and every option list."""

    kind: str
    action: str
    title_key: str
    values: dict[str, str]
    errors: dict[str, str]
    periods: list[Option]
    calendars: list[Option]
    years: list[Option]
    seasons: list[Option]
    months: list[Option]
    breakdowns: list[Option]
    types: list[Option]
    branches: list[Option]
    systems: list[Option]
    sorts: list[Option]
    formats: list[Option]
    show_breakdown: bool
    show_sort: bool
    # Year, month and season names of both calendars, for the script that switches calendars.
    calendar_data: dict[str, str] = field(default_factory=dict)

    # Called by the template for every field (as macros they cost more than the rest of the form).
    def invalid(self, name: str) -> Markup:
        """The attributes marking field `name` invalid and pointing at its message; empty when valid."""
        if not self.errors.get(name):
            return Markup("")
        return Markup(f' aria-invalid="true" aria-describedby="error-{escape(name)}" class="invalid"')  # noqa: S704

    def field_error(self, name: str) -> Markup:
        """Field `name`'s error message, or nothing."""
        message = self.errors.get(name)
        if not message:
            return Markup("")
        return Markup(  # noqa: S704 - both values escaped
            f'<p class="field-error" id="error-{escape(name)}" role="alert">{escape(message)}</p>'
        )


def default_values(lang: str, today: date) -> dict[str, str]:
    """The form as first shown: this month in the language's calendar, by day, all types, PDF."""
    calendar: cal.Calendar = "jalali" if lang == "fa" else "gregorian"
    year, month, _ = cal.split(today, calendar)
    return {
        "period": "month", "calendar": calendar, "year": str(year), "season": str((month - 1) // 3 + 1),
        "month": str(month), "from": "", "to": "", "by": "day", "agent": "", "type": "all", "branch": "",
        "system": "", "sort": "number", "format": "pdf",
    }


def submitted_values(form: Mapping[str, Any], lang: str, today: date) -> dict[str, str]:
    """The form's own fields as posted (strings, trimmed), defaults for the missing ones."""
    values = default_values(lang, today)
    for name in FORM_FIELDS:
        raw = form.get(name)
        if raw is not None:
            values[name] = str(raw).strip()[:200]
    return values


def filter_input(values: Mapping[str, str], kind: str, lang: str, company: str) -> dict[str, object]:
    """The mapping `reports.filters.parse_filters` validates, from the form's values."""
    result: dict[str, object] = {}
    period = values.get("period", "")
    for name in FORM_FIELDS:
        value = values.get(name, "")
        if name == "sort" and kind != "number":
            continue
        if name == "by" and kind not in ("details", "date"):
            continue
        if name in ("from", "to") and period != "custom":
            continue
        if name == "period" and period == "custom":
            continue
        if name in ("season", "month", "year") and (period == "custom" or (name != "year" and name != period)):
            continue
        if value:
            result[name] = value
    result["lang"] = lang
    if company:
        result["company"] = company
    return result


def field_error(lang: str, error: ReportFilterError) -> tuple[str, str]:
    """The form field an error belongs to and its message in the page language."""
    name = error.field if error.field in FORM_FIELDS else "period"
    if lang == "en":
        return name, error.reason
    return name, i18n.translate(lang, f"invalid.{name}")


def _years(this_year: int) -> list[str]:
    return [str(y) for y in range(this_year, this_year - YEARS_BACK - 1, -1)]


def _options(values: Sequence[str], labels: Sequence[str], selected: str) -> list[Option]:
    return [Option(v, label, v == selected) for v, label in zip(values, labels, strict=True)]


def build_context(
    kind: str,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    lang: str,
    today: date,
    branches: Sequence[Mapping[str, Any]],
    systems: Sequence[Mapping[str, Any]],
) -> FormContext:
    """The form's template context for report `kind`."""

    def t(key: str) -> str:
        return i18n.translate(lang, key)

    calendar: cal.Calendar = "gregorian" if values.get("calendar") == "gregorian" else "jalali"
    this_year = cal.split(today, calendar)[0]
    years = _years(this_year)
    chosen_year = values.get("year", "")
    if chosen_year and chosen_year not in years and chosen_year.isdigit():
        years.append(chosen_year)
    branch_names = {b["id"]: b["name"] for b in branches}
    chosen_branch = values.get("branch", "")
    calendar_data: dict[str, str] = {}
    for c in cal.CALENDARS:
        calendar_data[f"years-{c}"] = ",".join(_years(cal.split(today, c)[0]))
        calendar_data[f"months-{c}"] = "|".join(cal.MONTH_NAMES[c][lang])
        calendar_data[f"seasons-{c}"] = "|".join(cal.SEASON_NAMES[c][lang])
        calendar_data[f"weekdays-{c}"] = "|".join(i18n.WEEKDAYS[c][lang])
    return FormContext(
        kind=kind,
        action="/report" if kind == "details" else f"/totals/{kind}",
        title_key=TITLE_KEYS[kind],
        values=dict(values),
        errors=dict(errors),
        periods=_options(PERIOD_KINDS, [t(f"form.period.{p}") for p in PERIOD_KINDS], values.get("period", "")),
        calendars=_options(cal.CALENDARS, [t(f"form.calendar.{c}") for c in cal.CALENDARS], calendar),
        years=_options(years, [i18n.digits(lang, y) for y in years], chosen_year),
        seasons=_options([str(i) for i in range(1, 5)], cal.SEASON_NAMES[calendar][lang], values.get("season", "")),
        months=_options([str(i) for i in range(1, 13)], cal.MONTH_NAMES[calendar][lang], values.get("month", "")),
        breakdowns=_options(cal.BREAKDOWNS, [t(f"form.breakdown.{b}") for b in cal.BREAKDOWNS], values.get("by", "")),
        types=_options(
            TYPE_CHOICES, [t("form.call_type." + c.replace(",", "_")) for c in TYPE_CHOICES], values.get("type", "")
        ),
        branches=[Option("", t("form.branch.any"), not chosen_branch)]
        + [Option(b["name"], b["title"], b["name"] == chosen_branch) for b in branches],
        systems=[Option("", t("form.system.any"), not values.get("system"))]
        + [
            Option(s["name"], s["title"], s["name"] == values.get("system"), branch_names.get(s["branch_id"], ""))
            for s in systems
            if not chosen_branch or branch_names.get(s["branch_id"]) == chosen_branch
        ],
        sorts=_options(("number", "calls", "talk"), [t(f"form.sort.{s}") for s in ("number", "calls", "talk")],
                       values.get("sort", "")),
        formats=_options(FORMATS, [f.upper() for f in FORMATS], values.get("format", "")),
        show_breakdown=kind in ("details", "date"),
        show_sort=kind == "number",
        calendar_data=calendar_data,
    )
