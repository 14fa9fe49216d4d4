"""Renderers: one module per output format, all reading the documents of `reports.context`.

`write` picks the renderer for a format and streams the document to a binary output; each format
module is imported only when used (WeasyPrint is slow to import and not needed for CSV).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import BinaryIO

from reports.context import CallRow, ChainDocument, ReportDocument, TotalsDocument

Document = ReportDocument | TotalsDocument | ChainDocument
FORMATS_BY_DOCUMENT = {
    ReportDocument: ("pdf", "xlsx", "csv", "html"),
    TotalsDocument: ("pdf", "xlsx", "csv", "html"),
    ChainDocument: ("pdf", "html"),
}
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


async def _counted(rows: AsyncIterable[CallRow], progress: Callable[[int], None]) -> AsyncIterator[CallRow]:
    async for row in rows:
        yield row
        progress(1)


async def write(document: Document, out: BinaryIO, fmt: str | None = None,
                progress: Callable[[int], None] | None = None) -> None:
    """Write `document` to `out` as `fmt` (default: the request's format); `progress(n)` per n rows."""
    if fmt is None:
        fmt = document.request.format if isinstance(document, (ReportDocument, TotalsDocument)) else "html"
    if fmt not in FORMATS_BY_DOCUMENT[type(document)]:
        from reports.errors import ReportFilterError

        allowed = ", ".join(FORMATS_BY_DOCUMENT[type(document)])
        raise ReportFilterError("format", f"{fmt!r} is not available for this report ({allowed})")
    if progress is not None and isinstance(document, ReportDocument):
        document.rows = _counted(document.rows, progress)
    if fmt == "html":
        from reports.render.html import write_html

        await write_html(document, out)
    elif fmt == "csv":
        from reports.render import csv

        if isinstance(document, ReportDocument):
            await csv.write_details_csv(document, out)
        else:
            assert isinstance(document, TotalsDocument)
            await csv.write_totals_csv(document, out)
    elif fmt == "xlsx":
        from reports.render import xlsx

        if isinstance(document, ReportDocument):
            await xlsx.write_details_xlsx(document, out)
        else:
            assert isinstance(document, TotalsDocument)
            await xlsx.write_totals_xlsx(document, out)
    else:
        from reports.render import pdf

        await pdf.write_pdf(document, out)


async def to_bytes(document: Document, fmt: str | None = None) -> bytes:
    """The whole rendered document in memory (small reports, tests)."""
    buffer = io.BytesIO()
    await write(document, buffer, fmt)
    return buffer.getvalue()
