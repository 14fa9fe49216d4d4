"""HTML output (Jinja2, autoescaped), also the source WeasyPrint lays out as PDF.

Templates live beside this module. Written to a file, rows are streamed: the template iterates the
document's sections asynchronously, so a large HTML report is written as it is read from the database.
Rendered to a string (a page of the web app, the PDF's source), the rows are collected first and
the template runs synchronously: Jinja's async mode costs about three times the CPU per row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from reports.context import BucketTotals, CallRow, ChainDocument, ReportDocument, Section, TotalsDocument, sections
from reports.render.chart import bar_chart
from reports.text import Formatter

FONTS_DIR = Path(__file__).resolve().parent / "fonts"
Document = ReportDocument | TotalsDocument | ChainDocument
FontMode = Literal["local", "file"]


def safe_url(url: str | None) -> bool:
    """True for links that may be followed from a report: http(s) or a site-relative path."""
    if not url:
        return False
    scheme = urlsplit(url.strip()).scheme.lower()
    return scheme in ("http", "https") or (scheme == "" and url.strip().startswith("/"))


def _environment(*, enable_async: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("reports.render", "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=enable_async,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_url"] = safe_url
    env.globals["row_cells"] = row_cells
    return env



def font_css(mode: FontMode) -> Markup:
    """@font-face rules for Vazirmatn: the shipped TTF files (PDF) or an installed font (HTML)."""
    rules = []
    for weight, name in ((400, "Regular"), (700, "Bold")):
        if mode == "file":
            source = f'url("{(FONTS_DIR / f"Vazirmatn-{name}.ttf").as_uri()}") format("truetype")'
        else:
            source = f'local("Vazirmatn {name}"), local("Vazirmatn-{name}")'
        rules.append(f"@font-face {{ font-family: Vazirmatn; font-weight: {weight}; src: {source}; }}")
    return Markup("\n".join(rules))  # noqa: S704 - built from constants and our own file paths


def page_label(fmt: Formatter) -> Markup:
    """CSS `content` for the page footer: "page X of Y" (Persian digits in Persian)."""
    if fmt.rtl:
        return Markup('"صفحه " counter(page, persian) " از " counter(pages, persian)')
    return Markup('"page " counter(page) " of " counter(pages)')


class RowCells(NamedTuple):
    """A detail row's cells as text (escaped by the template, except `agents`, escaped here)."""

    number: str
    date: str
    time: str
    caller: str
    callee: str
    agents: Markup
    kind: str
    reason: str
    transfers: str
    wait: str
    talk: str


_ARROW = Markup(" &rarr; ")


def row_cells(r: CallRow, fmt: Formatter) -> RowCells:
    """The cells of one detail row, formatted in one call: a dozen calls from the template per
    row cost more in Jinja's call machinery than the formatting itself."""
    return RowCells(
        number=fmt.num(r.number), date=fmt.date(r.start.date()), time=fmt.time(r.start),
        caller=fmt.digits(r.caller), callee=fmt.digits(r.callee),
        agents=_ARROW.join(escape(a.name or fmt.digits(a.extension)) for a in r.agents),
        kind=fmt.t("kind." + r.kind), reason=fmt.t("reason." + r.reason) if r.reason else "",
        transfers=fmt.num(r.transfer_count), wait=fmt.duration(r.wait_seconds), talk=fmt.duration(r.talk_seconds),
    )


# Async for streaming to a file (html_chunks), sync for documents already in memory (render_html).
_env = _environment(enable_async=True)
_sync_env = _environment(enable_async=False)


def _sections_of(document: ReportDocument, rows: Iterable[CallRow]) -> Iterator[Section]:
    """`reports.context.sections` over rows already in memory."""
    current: BucketTotals | None = None
    for row in rows:
        if current is None or row.bucket != current.bucket.index:
            if current is not None:
                yield Section("close", current)
            current = document.buckets[row.bucket]
            yield Section("open", current)
        yield Section("row", current, row)
    if current is not None:
        yield Section("close", current)


def _context(document: Document, fonts: FontMode) -> tuple[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "document": document, "header": document.header, "fmt": document.fmt,
        "font_css": font_css(fonts), "page_label": page_label(document.fmt),
    }
    if isinstance(document, ReportDocument):
        kinds = list(document.request.types)
        common.update(show_internal=document.show_internal,
                      chart=bar_chart(document.buckets, kinds, document.fmt))
        return "details.html", common
    if isinstance(document, TotalsDocument):
        key = {"agent": "col.agent", "date": "col.date", "number": "col.number"}[document.by]
        common.update(show_internal=document.show_internal, key_label=document.fmt.t(key))
        return "totals.html", common
    return "chain.html", common


async def html_chunks(document: Document, *, fonts: FontMode = "local") -> AsyncIterator[str]:
    """The document as HTML, in pieces as the rows arrive."""
    name, context = _context(document, fonts)
    if isinstance(document, ReportDocument):
        context["sections"] = sections(document)
    async for chunk in _env.get_template(name).generate_async(**context):
        yield chunk


async def render_html(document: Document, *, fonts: FontMode = "local") -> str:
    """The whole document as one HTML string (rows collected, then rendered synchronously)."""
    name, context = _context(document, fonts)
    if isinstance(document, ReportDocument):
        rows = [row async for row in document.rows]
        context["sections"] = _sections_of(document, rows)
    return _sync_env.get_template(name).render(**context)


async def write_html(document: Document, out: BinaryIO) -> None:
    """Write the document as UTF-8 HTML to `out`, streaming."""
    buffer: list[str] = []
    size = 0
    async for chunk in html_chunks(document):
        buffer.append(chunk)
        size += len(chunk)
        if size > 65536:
            out.write("".join(buffer).encode("utf-8"))
            buffer, size = [], 0
    out.write("".join(buffer).encode("utf-8"))
