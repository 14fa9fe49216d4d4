"""HTML output (Jinja2, autoescaped), also the source WeasyPrint lays out as PDF.

Templates live beside this module. Written to a file, rows are streamed: the template iterates the
document's sections asynchronously, so a large HTML report is written as it is read from the database.
Rendered to a string (a page of the web app, the PDF's source), the rows are collected first and
the template runs synchronously: Jinja's async mode costs about three times the CPU per row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from reports.context import (
    CallRow,
    ChainDocument,
    ReportDocument,
    Section,
    Totals,
    TotalsDocument,
    sections,
    sections_in,
)
from reports.render.chart import bar_chart
from reports.text import PERSIAN_NUMBER, PERSIAN_TEXT, TWO_DIGITS, Formatter, duration

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
        # The templates ship with the package: no stat() of every template file on every render.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_url"] = safe_url
    env.globals["totals_html"] = totals_html
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


_ARROW = " &rarr; "
_KINDS = ("incoming", "outgoing", "missed", "internal")


def _esc(value: str) -> str:
    """`markupsafe.escape` as a plain string; most cells (digits, dates) need no change, and for
    them this skips building two Markup objects."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return str(escape(value))
    return value


class RowWriter:
    """Writes a details report's <tr> rows, escaped exactly as the template did.

    Written by the template (attribute lookups, filters, a dozen calls per row) a row cost several
    times more, on every row of every page; the words and digit tables of the document's language
    are looked up once here, not once per cell.
    """

    def __init__(self, fmt: Formatter) -> None:
        self.fmt = fmt
        self._text = PERSIAN_TEXT if fmt.rtl else None
        self._number = PERSIAN_NUMBER if fmt.rtl else None
        self._kinds = {kind: _esc(fmt.t(f"kind.{kind}")) for kind in _KINDS}
        self._reasons: dict[str, str] = {}
        self._flag = f' <span class="flag" title="{_esc(fmt.t("several"))}">(!)</span>'
        self._dates: dict[date, str] = {}
        self._names: dict[str, str] = {}

    def _digits(self, value: str) -> str:
        return value.translate(self._text) if self._text else value

    def _reason(self, reason: str) -> str:
        text = self._reasons.get(reason)
        if text is None:
            text = self._reasons[reason] = _esc(self.fmt.t("reason." + reason))
        return text

    def _name(self, value: str) -> str:
        # Systems and agents repeat from row to row.
        text = self._names.get(value)
        if text is None:
            text = self._names[value] = _esc(value)
        return text

    def row(self, r: CallRow) -> str:
        """One detail row's whole <tr> (no line break after it)."""
        start = r.start
        day = start.date()
        when = self._dates.get(day)
        if when is None:
            when = self._dates[day] = _esc(self.fmt.date(day))
        table = self._text
        caller = _esc(r.caller.translate(table) if table else r.caller)
        if r.caller_name:
            caller += f' <span class="text">({_esc(r.caller_name)})</span>'
        callee = _esc(r.callee.translate(table) if table else r.callee)
        agents = _ARROW.join(self._name(a.name) if a.name else _esc(self._digits(a.extension)) for a in r.agents)
        names = "، ".join(
            f'<a href="{_esc(i.url)}">{_esc(i.name)}</a>' if safe_url(i.url) else _esc(i.name) for i in r.identities
        )
        if len(r.identities) > 1:
            names += self._flag
        kind = self._kinds[r.kind]
        if r.reason:
            kind += f'<br><span class="reason">{self._reason(r.reason)}</span>'
        number, transfers = f"{r.number:,}", f"{r.transfer_count:,}"
        clock = f"{TWO_DIGITS[start.hour]}:{TWO_DIGITS[start.minute]}:{TWO_DIGITS[start.second]}"
        wait, talk = duration(r.wait_seconds), duration(r.talk_seconds)
        if self._number:
            number, transfers = number.translate(self._number), transfers.translate(self._number)
        if table:
            clock, wait, talk = clock.translate(table), wait.translate(table), talk.translate(table)
        system = self._name(r.system_name)
        return (
            f'<tr class="{r.kind}" data-call="{_esc(r.call_id)}" data-system="{system}">\n'
            f'  <td class="num">{number}</td>\n'
            f'  <td class="num">{when}</td>\n'
            f'  <td class="num">{clock}</td>\n'
            f'  <td class="num">{caller}</td>\n'
            f'  <td class="num">{callee}</td>\n'
            f'  <td class="text">{agents}</td>\n'
            f'  <td class="text">{names}</td>\n'
            f"  <td>{kind}</td>\n"
            f'  <td class="num">{transfers}</td>\n'
            f'  <td class="dur">{wait}</td>\n'
            f'  <td class="dur">{talk}</td>\n'
            f"  <td>{self._name(r.system)}</td>\n"
            "</tr>"
        )

    def section(self, s: Section, show_internal: bool) -> str:
        """One step of the rows table: a bucket's heading, a row, or the bucket's subtotals."""
        if s.kind == "row":
            assert s.row is not None
            return self.row(s.row)
        if s.kind == "open":
            return f'<tr class="bucket"><td colspan="12">{_esc(s.bucket.label)}</td></tr>'
        totals = totals_html(s.bucket.totals, self.fmt, show_internal)
        return f'<tr class="subtotal"><td colspan="12">{totals}</td></tr>'


def totals_html(t: Totals, fmt: Formatter, show_internal: bool) -> Markup:
    """A totals block (a bucket's subtotals, the whole period's), as macros.html's `totals_block`
    writes it: called from the template it cost a hundred template calls."""
    def line(key: str, value: str) -> str:
        return f"<div><span>{_esc(fmt.t(key))}:</span> {_esc(value)}</div>"

    internal = line("t.internal", fmt.num(t.internal)) if show_internal else ""
    return Markup(  # noqa: S704 - every value went through _esc
        '<div class="totals">\n'
        f'  {line("t.incoming", fmt.num(t.incoming))}\n'
        f'  {line("t.outgoing", fmt.num(t.outgoing))}\n'
        f'  {line("t.missed", fmt.num(t.missed))}\n'
        f'{internal}  {line("t.answered", fmt.num(t.answered))}\n'
        f'  {line("t.incoming_talk", fmt.duration(t.incoming_talk))}\n'
        f'  {line("t.outgoing_talk", fmt.duration(t.outgoing_talk))}\n'
        f'  {line("t.avg_incoming_talk", fmt.duration(t.avg_incoming_talk))}\n'
        f'  {line("t.avg_outgoing_talk", fmt.duration(t.avg_outgoing_talk))}\n'
        f'  {line("t.avg_wait", fmt.duration(t.avg_wait))}\n'
        f'  {line("t.avg_transfers", fmt.num(t.avg_transfers))}\n'
        "</div>"
    )


# Async for streaming to a file (html_chunks), sync for documents already in memory (render_html).
_env = _environment(enable_async=True)
_sync_env = _environment(enable_async=False)


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


async def _streamed_body(document: ReportDocument) -> AsyncIterator[Markup]:
    """The rows table's lines, each written as its rows arrive."""
    writer = RowWriter(document.fmt)
    show_internal = document.show_internal
    async for section in sections(document):
        yield Markup(writer.section(section, show_internal))  # noqa: S704 - RowWriter escapes


def _body(document: ReportDocument, rows: Iterable[CallRow]) -> list[Markup]:
    """The rows table's lines at once: one piece for the template to insert."""
    writer = RowWriter(document.fmt)
    show_internal = document.show_internal
    lines = "\n".join([writer.section(section, show_internal) for section in sections_in(document, rows)])
    return [Markup(lines)] if lines else []  # noqa: S704 - RowWriter escapes


async def html_chunks(document: Document, *, fonts: FontMode = "local") -> AsyncIterator[str]:
    """The document as HTML, in pieces as the rows arrive."""
    name, context = _context(document, fonts)
    if isinstance(document, ReportDocument):
        context["body"] = _streamed_body(document)
    async for chunk in _env.get_template(name).generate_async(**context):
        yield chunk


async def render_html(document: Document, *, fonts: FontMode = "local") -> str:
    """The whole document as one HTML string (rows collected, then rendered synchronously)."""
    name, context = _context(document, fonts)
    if isinstance(document, ReportDocument):
        context["body"] = _body(document, [row async for row in document.rows])
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
