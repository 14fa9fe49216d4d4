"""Lay out one Typst document in a process of its own (used by pdf_large).

`python -m reports.render.typst_worker report|page_numbers` reads the document's sys.inputs as a
JSON object on stdin and writes the PDF to stdout. A fresh process per chunk, because Typst keeps
its layout caches for the life of the process (about 40 MiB more per document laid out).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RENDER = Path(__file__).resolve().parent
TEMPLATES = {"report": RENDER / "templates" / "report.typ", "page_numbers": RENDER / "templates" / "page_numbers.typ"}


def lay_out(template: str, inputs: dict[str, str]) -> bytes:
    """One Typst template with its inputs as PDF, with the shipped fonts only."""
    import typst

    # The stub ties font_paths' type to the source's (bytes here); the call itself takes str paths.
    typeset: Any = typst.compile
    pdf = typeset(TEMPLATES[template].read_bytes(), font_paths=[str(RENDER / "fonts")], ignore_system_fonts=True,
                  sys_inputs=inputs, pdf_tags=False)
    assert isinstance(pdf, bytes)
    return pdf


def main() -> None:
    """Command line of the worker: template name as argument, inputs on stdin, PDF on stdout."""
    inputs = json.loads(sys.stdin.buffer.read())
    try:
        pdf = lay_out(sys.argv[1], inputs)
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        sys.exit(1)
    sys.stdout.buffer.write(pdf)


if __name__ == "__main__":
    main()
