"""Lay out one Typst document, in a worker process of pdf_large's pool.

Imported by the pool's fork server before any document (so Typst is loaded once, not once per
chunk); each document is then laid out in a process of its own, because Typst keeps its layout
caches for the life of a process (about 40 MiB more per document laid out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typst

from reports.errors import ReportError

RENDER = Path(__file__).resolve().parent
TEMPLATES = {"report": RENDER / "templates" / "report.typ", "page_numbers": RENDER / "templates" / "page_numbers.typ"}


def lay_out(template: str, inputs: dict[str, str]) -> bytes:
    """One Typst template with its inputs as PDF, with the shipped fonts only."""
    # The stub ties font_paths' type to the source's (bytes here); the call itself takes str paths.
    typeset: Any = typst.compile
    try:
        pdf = typeset(TEMPLATES[template].read_bytes(), font_paths=[str(RENDER / "fonts")], ignore_system_fonts=True,
                      sys_inputs=inputs, pdf_tags=False)
    # Typst's own error types are not part of its stub: whatever it raises becomes a report error
    # (plain message, picklable, so that it crosses back to the calling process).
    except Exception as exc:
        raise ReportError(f"the PDF could not be laid out: {type(exc).__name__}: {exc}") from None
    assert isinstance(pdf, bytes)
    return pdf
