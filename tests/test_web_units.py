"""The web app's pure parts: translations, form mapping, redirects, health parsing."""

from __future__ import annotations

import gc
import re
import socket
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from reports.cli import main
from reports.errors import ReportFilterError
from reports.filters import parse_filters
from reports.web import forms, i18n
from reports.web.cli import GC_YOUNG_THRESHOLD, parse_listen, tune_gc
from reports.web.ops import parse_health
from reports.web.pages import safe_next

TEMPLATES = Path(__file__).resolve().parent.parent / "reports" / "web" / "templates"
PERSIAN = re.compile(r"[\u0600-\u06FF]")


def test_every_text_is_translated() -> None:
    assert set(i18n.MESSAGES["fa"]) == set(i18n.MESSAGES["en"])
    for key, (persian, english) in i18n.CATALOGUE.items():
        assert persian.strip(), key
        assert english.strip(), key
        if not key.startswith("lang."):  # the switch speaks the language it switches to
            assert PERSIAN.search(persian), f"{key}: Persian text has no Persian letters"
            assert not PERSIAN.search(english), f"{key}: English text has Persian letters"
        assert set(re.findall(r"{(\w+)}", persian)) == set(re.findall(r"{(\w+)}", english)), key


def test_templates_use_only_known_keys() -> None:
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        used.update(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", text))
        # No inline script or style anywhere: the CSP would block them.
        for forbidden in ("<script>", "<style", " style="):
            assert forbidden not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
    assert used, "no translation calls found"
    missing = used - set(i18n.CATALOGUE)
    assert not missing


def test_forms_refer_to_known_keys() -> None:
    keys = {f"form.period.{p}" for p in forms.PERIOD_KINDS}
    keys |= {"form.call_type." + c.replace(",", "_") for c in forms.TYPE_CHOICES}
    keys |= {f"invalid.{name}" for name in forms.FORM_FIELDS}
    keys |= {f"form.sort.{s}" for s in ("number", "calls", "talk")}
    assert keys <= set(i18n.CATALOGUE)


def test_digits_and_roles() -> None:
    assert i18n.digits("fa", "1403/01/05") == "۱۴۰۳/۰۱/۰۵"
    assert i18n.digits("en", 12) == "12"
    assert i18n.role_names("fa", ("support_manager", "admin")) == "مدیر سیستم، مدیر پشتیبانی"
    assert i18n.role_names("en", ("crm_manager",)) == "CRM manager"


TODAY = date(2024, 4, 10)  # 1403/01/22


def test_defaults_follow_the_language() -> None:
    persian = forms.default_values("fa", TODAY)
    assert (persian["calendar"], persian["year"], persian["month"], persian["season"]) == ("jalali", "1403", "1", "1")
    english = forms.default_values("en", TODAY)
    assert (english["calendar"], english["year"], english["month"]) == ("gregorian", "2024", "4")


def test_filter_input_for_each_period_kind() -> None:
    values = forms.default_values("fa", TODAY) | {"period": "month", "month": "11", "year": "1397", "by": "day"}
    mapped = forms.filter_input(values, "details", "fa", "شرکت")
    assert mapped == {"period": "month", "calendar": "jalali", "year": "1397", "month": "11", "by": "day",
                      "type": "all", "format": "pdf", "lang": "fa", "company": "شرکت"}
    request = parse_filters(mapped)
    assert (request.first_day, request.last_day) == (date(2019, 1, 21), date(2019, 2, 19))  # Bahman 1397
    custom = forms.filter_input(values | {"period": "custom", "from": "۱۴۰۳/۰۱/۰۱", "to": "1403/01/10"},
                                "details", "fa", "")
    assert "period" not in custom
    assert "year" not in custom
    assert "month" not in custom
    assert parse_filters(custom).first_day == date(2024, 3, 20)
    season = forms.filter_input(values | {"period": "season", "season": "2"}, "agent", "en", "")
    assert "month" not in season
    assert "by" not in season
    assert season["season"] == "2"
    number = forms.filter_input(values | {"sort": "talk"}, "number", "fa", "")
    assert number["sort"] == "talk"
    assert "sort" not in forms.filter_input(values, "date", "fa", "")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"period": "month", "month": "13"}, "month"),
        ({"period": "year", "year": "abc"}, "year"),
        ({"period": "custom", "from": "1403/13/01", "to": ""}, "from"),
        ({"period": "custom", "from": "1403/02/01", "to": "1403/01/01"}, "to"),
        ({"by": "week"}, "by"),
        ({"type": "voicemail"}, "type"),
        ({"format": "docx"}, "format"),
        ({"period": "decade"}, "period"),
    ],
)
def test_bad_values_name_their_field(changes: dict[str, str], field: str) -> None:
    values = forms.default_values("fa", TODAY) | changes
    with pytest.raises(ReportFilterError) as caught:
        parse_filters(forms.filter_input(values, "details", "fa", ""))
    name, persian = forms.field_error("fa", caught.value)
    assert name == field
    assert persian == i18n.translate("fa", f"invalid.{field}")
    assert forms.field_error("en", caught.value) == (field, caught.value.reason)


def test_form_context_options() -> None:
    values = forms.default_values("fa", TODAY) | {"branch": "tehran", "system": "tehran-main"}
    branches = [{"id": 1, "name": "tehran", "title": "تهران"}, {"id": 2, "name": "shiraz", "title": "شیراز"}]
    systems = [{"id": 10, "name": "tehran-main", "title": "مرکز", "branch_id": 1},
               {"id": 11, "name": "shiraz-1", "title": "shiraz-1", "branch_id": 2}]
    context = forms.build_context("details", values, {}, "fa", TODAY, branches, systems)
    assert [o.value for o in context.systems] == ["", "tehran-main"]  # the list follows the branch
    assert [o.selected for o in context.branches] == [False, True, False]
    assert context.months[0].label == "فروردین"
    assert context.months[0].selected
    assert context.years[0].label == "۱۴۰۳"
    assert context.show_breakdown
    assert not context.show_sort
    assert context.calendar_data["years-gregorian"].startswith("2024,2023")
    number = forms.build_context("number", values, {}, "en", TODAY, branches, systems)
    assert number.show_sort
    assert not number.show_breakdown
    assert number.action == "/totals/number"


def test_safe_next() -> None:
    assert safe_next("/totals/agent?x=1") == "/totals/agent?x=1"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", None, ""):
        assert safe_next(bad) == "/report"


def test_parse_health() -> None:
    body = b'{"status": "ok", "systems": {"tehran-main": {"connected": true, "journal_backlog": 3}}}'
    mapped = parse_health("u", body)
    assert mapped.systems["tehran-main"]["connected"] is True
    assert mapped.error is None
    listed = parse_health("u", b'{"systems": [{"name": "a", "connected": false}]}')
    assert listed.systems == {"a": {"name": "a", "connected": False}}
    assert parse_health("u", b"<html>").error == "not JSON"
    assert parse_health("u", b"[1, 2]").systems == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":9000", ("127.0.0.1", 9000)), ("[::1]:8443", ("::1", 8443)),
     ("0.0.0.0:80", ("0.0.0.0", 80))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "127.0.0.1:70000", "127.0.0.1:0"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|out of range"):
        parse_listen(text)


def test_serve_bad_listen_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--listen", "nowhere"])
    assert result.exit_code == 2
    assert "--listen" in result.output
    assert "is not HOST:PORT" in result.output
    assert "Traceback" not in result.output


def test_serve_without_database_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CALLTRAIL_CONFIG", "/dev/null")
    result = CliRunner().invoke(main, ["serve", "--listen", "127.0.0.1:8089"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output
    assert "Traceback" not in result.output


def test_serve_port_in_use_says_so(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRAIL_DSN", db_dsn)
    monkeypatch.setenv("CALLTRAIL_CONFIG", "/dev/null")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_a_worker_tunes_the_garbage_collector() -> None:
    """A worker freezes what it built at start and runs young collections less often (cli.tune_gc)."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
