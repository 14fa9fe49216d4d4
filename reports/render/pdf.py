"""PDF output with WeasyPrint, from the same HTML as the HTML format, with the shipped Vazirmatn font."""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from reports.render.html import Document, render_html


def html_to_pdf(html: str) -> bytes:
    """Lay out one HTML document as PDF (CPU-bound: run it in a thread or a process)."""
    from weasyprint import HTML

    pdf: bytes = HTML(string=html, base_url=".").write_pdf()
    return pdf


async def write_pdf(document: Document, out: BinaryIO) -> None:
    """Write `document` as PDF to `out`."""
    html = await render_html(document, fonts="file")
    out.write(await asyncio.to_thread(html_to_pdf, html))
