"""PDF output with WeasyPrint, from the same HTML as the HTML format, with the shipped Vazirmatn font."""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from reports.context import ReportDocument
from reports.render.html import Document, render_html

# Above this many calls a details report is set by Typst in parallel chunks (see pdf_large.py):
# WeasyPrint's time and memory grow with the whole table.
WEASYPRINT_MAX_ROWS = 200


def html_to_pdf(html: str) -> bytes:
    """Lay out one HTML document as PDF (CPU-bound: run it in a thread or a process)."""
    from weasyprint import HTML

    pdf: bytes = HTML(string=html, base_url=".").write_pdf()
    return pdf


async def write_pdf(document: Document, out: BinaryIO) -> None:
    """Write `document` as PDF to `out` (WeasyPrint, or Typst for large details reports)."""
    if isinstance(document, ReportDocument) and document.grand.calls > WEASYPRINT_MAX_ROWS:
        from reports.render.pdf_large import write_large_pdf

        await write_large_pdf(document, out)
        return
    html = await render_html(document, fonts="file")
    out.write(await asyncio.to_thread(html_to_pdf, html))
