"""CSV output: UTF-8 with a BOM (so Excel reads Persian), one line per call, streamed.

Values use ASCII digits and the report's calendar for dates; durations are H:MM:SS. Cells that a
spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from reports import calendar as cal
from reports.context import ReportDocument, Totals, TotalsDocument
from reports.render.cells import detail_titles, identity_text, neutralise, totals_titles
from reports.text import LABELS, duration

BOM = "\ufeff"
# Lines buffered before each write to the output.
FLUSH_EVERY = 5000


class _Sink:
    """A csv.writer over a text buffer that is flushed to a binary output now and then."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.lines = 0
        self.buffer.write(BOM)

    def row(self, values: list[str]) -> None:
        self.writer.writerow(values)
        self.lines += 1
        if self.lines % FLUSH_EVERY == 0:
            self.flush()

    def flush(self) -> None:
        self.out.write(self.buffer.getvalue().encode("utf-8"))
        self.buffer.seek(0)
        self.buffer.truncate()


async def write_details_csv(document: ReportDocument, out: BinaryIO) -> None:
    """The call rows of a details report as CSV."""
    fmt, calendar = document.fmt, document.request.calendar
    labels = [b.bucket.label(document.request.lang) for b in document.buckets]
    sink = _Sink(out)
    kinds = {kind: fmt.t(f"kind.{kind}") for kind in ("incoming", "outgoing", "missed", "internal")}
    reasons = {key[len("reason."):]: fmt.t(key) for key in LABELS if key.startswith("reason.")}
    sink.row(detail_titles(fmt))
    async for row in document.rows:
        start = row.start
        # Only values that come from outside (the PBX, the directory, the CRM) can start like a formula.
        sink.row([
            str(row.number), cal.format_date(start.date(), calendar),
            f"{start.hour:02d}:{start.minute:02d}:{start.second:02d}",
            neutralise(row.caller), neutralise(row.caller_name or ""), neutralise(row.callee),
            neutralise(row.agent_names), neutralise(identity_text(row)), kinds[row.kind],
            reasons[row.reason] if row.reason else "", str(row.transfer_count),
            duration(row.wait_seconds), duration(row.talk_seconds), neutralise(row.system),
            neutralise(row.call_id), labels[row.bucket],
        ])
    sink.flush()


def _totals_cells(totals: Totals, internal: bool) -> list[str]:
    cells = [str(totals.incoming), duration(totals.incoming_talk), str(totals.outgoing), duration(totals.outgoing_talk)]
    if internal:
        cells += [str(totals.internal), duration(totals.internal_talk)]
    return [*cells, str(totals.transfers), str(totals.missed)]


async def write_totals_csv(document: TotalsDocument, out: BinaryIO) -> None:
    """A sibling report as CSV, with its Sum and Average lines."""
    sink = _Sink(out)
    sink.row(totals_titles(document))
    internal = document.show_internal
    for number, line in enumerate(document.lines, start=1):
        sink.row([str(number), neutralise(line.key), *_totals_cells(line.totals, internal)])
    sink.row(["", document.fmt.t("sum"), *_totals_cells(document.sum, internal)])
    sink.row(["", document.fmt.t("average"), *_totals_cells(document.average, internal)])
    sink.flush()
