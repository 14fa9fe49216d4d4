"""Rendering the reports: HTML and CSV against golden files, XLSX and PDF opened and read back.

Golden files live in tests/fixtures/golden/; after an intended change, regenerate them with
`CALLTRAIL_UPDATE_GOLDEN=1 pytest tests/test_report_render.py` and review the diff. Any WeasyPrint
warning fails the test (`quiet_rendering`).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import openpyxl
import pytest
import pytest_asyncio
import report_data
from jinja2 import Environment
from PIL import Image, ImageChops
from pypdf import PdfReader

from reports import api, render
from reports.context import ReportDocument, Totals
from reports.filters import parse_filters
from reports.render.html import render_html, totals_html
from reports.text import Formatter, duration, half_up

pytestmark = pytest.mark.asyncio

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
NOW = datetime(2026, 4, 21, 9, 0, tzinfo=UTC)
FILTERS = {"from": "1404/12/01", "to": "1405/01/31", "calendar": "jalali", "by": "month", "type": "all,internal",
           "company": "Acme Trading"}


@pytest_asyncio.fixture
async def loaded(db: asyncpg.Connection) -> report_data.Loaded:
    return await report_data.load(db)


@pytest.fixture
def quiet_rendering(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test when anything (WeasyPrint, fontTools, ...) logs a warning while rendering."""
    with caplog.at_level(logging.WARNING):
        yield
    assert [r.getMessage() for r in caplog.records] == []


async def details(conn: asyncpg.Connection, **filters: object) -> ReportDocument:
    values: dict[str, object] = {**FILTERS, **filters}
    return await api.produce(conn, parse_filters(values), now=NOW)


def golden(name: str, content: bytes) -> None:
    """Compare with tests/fixtures/golden/<name>, or (re)write it when asked to."""
    path = GOLDEN / name
    if os.environ.get("CALLTRAIL_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert path.exists(), f"missing golden file {path}: run with CALLTRAIL_UPDATE_GOLDEN=1"
    assert content.decode("utf-8") == path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("lang", ["fa", "en"])
async def test_html_matches_its_golden_file(db: asyncpg.Connection, loaded: report_data.Loaded, lang: str) -> None:
    document = await details(db, lang=lang, calendar="jalali")
    golden(f"details_{lang}.html", await render.to_bytes(document, "html"))


async def test_csv_matches_its_golden_file(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    content = await render.to_bytes(await details(db), "csv")
    assert content.startswith("\ufeff".encode())     # the BOM Excel needs to read UTF-8
    golden("details_fa.csv", content)


async def test_totals_csv_matches_its_golden_file(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    document = await api.totals_report(db, parse_filters({**FILTERS, "lang": "en"}), "agent", now=NOW)
    golden("totals_by_agent_en.csv", await render.to_bytes(document, "csv"))


async def test_html_escapes_caller_names_and_drops_unsafe_links(db: asyncpg.Connection,
                                                                loaded: report_data.Loaded) -> None:
    html = (await render.to_bytes(await details(db), "html")).decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert "Org Co" in html
    assert '<a href="https://crm.example/identities/1">Hashemi</a>' in html
    assert '<a href="/identities/3">Sadeghi Trading</a>' in html
    assert 'dir="rtl"' in html
    assert "۱۴۰۴" in html


async def test_csv_neutralises_formula_cells(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    lines = (await render.to_bytes(await details(db), "csv")).decode("utf-8-sig").splitlines()
    first = next(line for line in lines if ",c1," in line)
    assert ",'=SUM(1+1)," in first
    second = next(line for line in lines if ",c2," in line)
    assert ",'+989121234567," in second


async def test_xlsx_reads_back(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    content = await render.to_bytes(await details(db, branch="tehran"), "xlsx")
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["تماس‌ها", "جمع"]
    calls, totals = book["تماس‌ها"], book["جمع"]
    assert calls.sheet_view.rightToLeft
    assert calls.freeze_panes == "A2"
    rows = list(calls.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 10
    c2 = next(row for row in rows if row[14] == "c2")
    assert c2[0] == 2
    assert c2[1] == "1404/12/05"
    assert c2[10] == 3
    assert c2[12] == timedelta(seconds=120)                                # talk: an Excel [h]:mm:ss value
    assert calls.cell(row=3, column=13).number_format == "[h]:mm:ss"
    assert c2[16] == datetime(2026, 2, 24, 9, 30)                          # start, local time
    c1 = next(row for row in rows if row[14] == "c1")
    assert c1[4] == "=SUM(1+1)"                                            # kept as text, never a formula
    assert calls.cell(row=2, column=5).data_type == "s"
    c3 = next(row for row in rows if row[14] == "c3")
    assert c3[12] is None
    assert c3[10] == 0
    assert [row[0] for row in totals.iter_rows(min_row=2, values_only=True)] == [
        "اسفند 1404", "فروردین 1405", "جمع کل دوره"]
    grand = next(totals.iter_rows(min_row=4, values_only=True))
    assert grand[1:7] == (10, 5, 2, 2, 1, 7)                               # calls, in, out, missed, internal, answered


async def test_totals_xlsx_has_sum_and_average_rows(db: asyncpg.Connection, loaded: report_data.Loaded) -> None:
    request = parse_filters({**FILTERS, "type": "all", "lang": "en", "branch": "tehran"})
    document = await api.totals_report(db, request, "date", now=NOW)
    book = openpyxl.load_workbook(io.BytesIO(await render.to_bytes(document, "xlsx")))
    sheet = book.active
    assert sheet is not None
    assert not sheet.sheet_view.rightToLeft
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [row[1] for row in rows] == ["Esfand 1404", "Farvardin 1405", "Sum", "Average"]
    assert rows[2][2] == 5
    assert rows[3][2] == 3
    assert rows[2][3] == timedelta(seconds=340)


async def test_english_pdf_pages_and_text(db: asyncpg.Connection, loaded: report_data.Loaded,
                                          quiet_rendering: None) -> None:
    document = await details(db, lang="en", calendar="gregorian", **{"from": "2026-02-20", "to": "2026-04-20"})
    content = await render.to_bytes(document, "pdf")
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) == 2
    assert "Monthly call details report" in text
    assert "page 1 of 2" in text
    assert "page 2 of 2" in text
    assert "Hashemi" in text
    assert "Acme Trading" in text
    assert "<script>alert('x')</script>" in text                          # shown as text, not run
    # The table header is repeated on the second page.
    assert "Related to" in reader.pages[1].extract_text()


async def test_totals_and_chain_pdfs(db: asyncpg.Connection, loaded: report_data.Loaded, quiet_rendering: None) -> None:
    document = await api.totals_report(db, parse_filters({**FILTERS, "lang": "en"}), "number", now=NOW)
    reader = PdfReader(io.BytesIO(await render.to_bytes(document, "pdf")))
    text = reader.pages[0].extract_text()
    assert "Call totals by phone number" in text
    assert "Average" in text
    chain = await api.chain_report(db, "c2", lang="en", now=NOW)
    text = PdfReader(io.BytesIO(await render.to_bytes(chain, "pdf"))).pages[0].extract_text()
    assert "Call transfer chain" in text
    assert "attended transfer" in text
    assert "Mina Agent" in text


def rasterise(pdf: bytes, tmp_path: Path) -> Image.Image:
    """Page 1 of `pdf` as an RGB image at 50 dpi (poppler's pdftoppm)."""
    source = tmp_path / "page.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "50", "-png", "-singlefile", str(source),
                    str(tmp_path / "page")], check=True)
    return Image.open(tmp_path / "page.png").convert("RGB")


async def test_persian_pdf_page_looks_like_the_reference(db: asyncpg.Connection, loaded: report_data.Loaded,
                                                         quiet_rendering: None, tmp_path: Path) -> None:
    content = await render.to_bytes(await details(db), "pdf")
    assert len(PdfReader(io.BytesIO(content)).pages) == 2
    page = rasterise(content, tmp_path)
    reference = GOLDEN / "details_fa_page1.png"
    if os.environ.get("CALLTRAIL_UPDATE_GOLDEN"):
        page.save(reference)
    expected = Image.open(reference).convert("RGB")
    assert page.size == expected.size
    difference = ImageChops.difference(page, expected).convert("L")
    changed = sum(difference.histogram()[65:])
    # Font hinting and anti-aliasing may differ a little between machines; layout changes do not.
    assert changed / (page.size[0] * page.size[1]) < 0.01


@pytest.mark.parametrize("lang", ["en", "fa"])
async def test_large_reports_are_set_by_typst_in_chunks(db: asyncpg.Connection, loaded: report_data.Loaded,
                                                        monkeypatch: pytest.MonkeyPatch, quiet_rendering: None,
                                                        lang: str) -> None:
    from reports.render import pdf, pdf_large

    # Make the 12 fixture calls a "large" report of 3-row chunks laid out in parallel.
    monkeypatch.setattr(pdf, "WEASYPRINT_MAX_ROWS", 5)
    monkeypatch.setattr(pdf_large, "ROWS_PER_CHUNK", 3)
    document = await details(db, lang=lang, calendar="gregorian", by="day",
                             **{"from": "2026-02-20", "to": "2026-04-20"})
    reader = PdfReader(io.BytesIO(await render.to_bytes(document, "pdf")))
    pages = [page.extract_text() for page in reader.pages]
    total = len(pages)
    assert total >= 4                                   # the first chunk holds the chart, then 4 more chunks
    label = "page {x} of {y}" if lang == "en" else "صفحه {x} از {y}"
    digits = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹") if lang == "fa" else str.maketrans("", "")
    for number, text in enumerate(pages, start=1):
        stamp = label.format(x=number, y=total).translate(digits)
        # pypdf's spacing of right-to-left text varies: compare without spaces.
        assert stamp.replace(" ", "") in text.replace(" ", ""), (number, text[-80:])
    everything = "\n".join(pages)
    assert "Acme Trading" in pages[0]
    if lang == "en":
        assert "Daily call details report" in pages[0]
        for caller in ("09121234567", "+989121234567", "00989351112233", "+4930123456", "09120000003"):
            assert caller in everything
        assert "alert('x')" in everything               # a caller name is text, even in Typst
        assert "Whole period" in pages[-1]


@pytest.mark.parametrize("lang", ["fa", "en"])
async def test_html_in_memory_equals_the_streamed_html(db: asyncpg.Connection, loaded: report_data.Loaded,
                                                       lang: str) -> None:
    """`render_html` (the web page, the PDF's source) writes the rows in one piece, the HTML file
    streams them: the same bytes, for the whole report and for pages of it."""
    for limit, offset in ((None, 0), (4, 0), (4, 4), (3, 9)):
        request = parse_filters({**FILTERS, "lang": lang})
        streamed = await render.to_bytes(await api.produce(db, request, now=NOW, limit=limit, offset=offset), "html")
        in_memory = await render_html(await api.produce(db, request, now=NOW, limit=limit, offset=offset))
        assert in_memory.encode("utf-8") == streamed, (limit, offset)


TOTALS = [
    Totals(),
    Totals(calls=7, incoming=3, incoming_talk=Decimal("195.5"), outgoing=3, outgoing_talk=Decimal(123), missed=1,
           internal=2, internal_talk=Decimal(10), answered=5, wait_seconds=Decimal("77.7"), transfers=7),
    Totals(calls=12_345_678, incoming=6_000_000, incoming_talk=Decimal("5623456789.5"), outgoing=4_000_000,
           outgoing_talk=Decimal("3599.5"), missed=345_678, internal=2_000_000, internal_talk=Decimal(1),
           answered=11_000_000, wait_seconds=Decimal("99999999.999"), transfers=12_345_679),
]


# The macro details.html used before html.totals_html wrote the totals blocks.
TOTALS_MACRO = """{% macro totals_block(t, fmt, show_internal) -%}
<div class="totals">
  <div><span>{{ fmt.t("t.incoming") }}:</span> {{ fmt.num(t.incoming) }}</div>
  <div><span>{{ fmt.t("t.outgoing") }}:</span> {{ fmt.num(t.outgoing) }}</div>
  <div><span>{{ fmt.t("t.missed") }}:</span> {{ fmt.num(t.missed) }}</div>
  {% if show_internal %}<div><span>{{ fmt.t("t.internal") }}:</span> {{ fmt.num(t.internal) }}</div>{% endif %}
  <div><span>{{ fmt.t("t.answered") }}:</span> {{ fmt.num(t.answered) }}</div>
  <div><span>{{ fmt.t("t.incoming_talk") }}:</span> {{ fmt.duration(t.incoming_talk) }}</div>
  <div><span>{{ fmt.t("t.outgoing_talk") }}:</span> {{ fmt.duration(t.outgoing_talk) }}</div>
  <div><span>{{ fmt.t("t.avg_incoming_talk") }}:</span> {{ fmt.duration(t.avg_incoming_talk) }}</div>
  <div><span>{{ fmt.t("t.avg_outgoing_talk") }}:</span> {{ fmt.duration(t.avg_outgoing_talk) }}</div>
  <div><span>{{ fmt.t("t.avg_wait") }}:</span> {{ fmt.duration(t.avg_wait) }}</div>
  <div><span>{{ fmt.t("t.avg_transfers") }}:</span> {{ fmt.num(t.avg_transfers) }}</div>
</div>
{%- endmacro %}"""


@pytest.mark.parametrize("lang", ["fa", "en"])
async def test_totals_block_written_in_python_equals_the_template_macro(lang: str) -> None:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    macro = env.from_string(TOTALS_MACRO).module.totals_block  # type: ignore[attr-defined]
    fmt = Formatter(lang, "jalali")
    for totals in TOTALS:
        for show_internal in (False, True):
            assert str(totals_html(totals, fmt, show_internal)) == str(macro(totals, fmt, show_internal))


async def test_durations_and_times_are_written_as_before() -> None:
    """`duration` and `Formatter.time` use digit tables, not format specs: the same text."""
    def reference(seconds: Decimal | float) -> str:
        total = int(half_up(seconds))
        hours, rest = divmod(total, 3600)
        return f"{hours:,}:{rest // 60:02d}:{rest % 60:02d}"

    values: list[Decimal | float] = [0, 0.5, 1.4999, 59.5, 3599.5, 3600, 86399.9, 3_599_999, 3_600_000, 36_000_059]
    values += [Decimal("0.5"), Decimal("12.345"), Decimal("3599.4995"), Decimal("3599999.5"), Decimal(7_200_000)]
    values += [Decimal(n * 7919 % 10**10) / 1000 for n in range(2000)] + [n * 4999.37 for n in range(2000)]
    for value in values:
        assert duration(value) == reference(value), value
    assert duration(None) == ""
    persian, english = Formatter("fa", "jalali"), Formatter("en", "gregorian")
    assert persian.duration(Decimal("3600000.4")) == "۱٬۰۰۰:۰۰:۰۰"
    for hour in range(24):
        for minute in range(0, 60, 7):
            moment = datetime(2026, 3, 20, hour, minute, (hour * minute) % 60, tzinfo=UTC)
            assert english.time(moment) == moment.strftime("%H:%M:%S")
            assert persian.time(moment) == persian.digits(moment.strftime("%H:%M:%S"))
