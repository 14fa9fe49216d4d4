"""HTML output (Jinja2, autoescaped), also the source WeasyPrint lays out as PDF.

Templates live beside this module. Rows are streamed: the template iterates the document's
sections asynchronously, so a large HTML report is written as it is read from the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from reports.context import ChainDocument, ReportDocument, TotalsDocument, sections
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


_env = Environment(
    loader=PackageLoader("reports.render", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["safe_url"] = safe_url


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


def _context(document: Document, fonts: FontMode) -> tuple[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "document": document, "header": document.header, "fmt": document.fmt,
        "font_css": font_css(fonts), "page_label": page_label(document.fmt),
    }
    if isinstance(document, ReportDocument):
        kinds = list(document.request.types)
        common.update(sections=sections(document), show_internal=document.show_internal,
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
    async for chunk in _env.get_template(name).generate_async(**context):
        yield chunk


async def render_html(document: Document, *, fonts: FontMode = "local") -> str:
    """The whole document as one HTML string."""
    return "".join([chunk async for chunk in html_chunks(document, fonts=fonts)])


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
