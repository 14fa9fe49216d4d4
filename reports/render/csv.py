"""CSV output: UTF-8 with a BOM (so Excel reads Persian), one line per call, streamed.

Values use ASCII digits and the report's calendar for dates; durations are H:MM:SS. Cells that a
spreadsheet would run as formulas are neutralised. A streamed report (`data.StreamedRows`) is written
by the server itself (details_csv.sql through COPY: 1.6-1.9x the rows/s of formatting here, see
bench/RESULTS.md; a large one over several connections, csv_parts.py); rows already in memory are
formatted here, to the same bytes.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import BinaryIO

from reports import calendar as cal
from reports import data
from reports.context import ReportDocument, Totals, TotalsDocument
from reports.render import csv_parts
from reports.render.cells import detail_titles, identity_text, neutralise, totals_titles
from reports.text import LABELS, duration

BOM = "\ufeff"
# Line breaks in values from outside become spaces, so that one call is one line, as the server's
# export writes them (details_csv.sql): both paths give the same bytes.
_ONE_LINE = str.maketrans("\r\n", "  ")


def _cell(value: str) -> str:
    """An outside value as one neutralised line."""
    return neutralise(value.translate(_ONE_LINE))
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


KINDS = ("incoming", "outgoing", "missed", "internal")


async def _server_rows(document: ReportDocument, source: data.StreamedRows[object], sink: _Sink) -> None:
    """The rows written by PostgreSQL (details_csv.sql), its LF line ends made CRLF as csv.writer's."""
    request, fmt = source.request, document.fmt
    days = [request.first_day + timedelta(days=n) for n in range((request.last_day - request.first_day).days + 1)]
    reasons = [key for key in LABELS if key.startswith("reason.")]
    texts = data.CsvTexts(
        days=[cal.format_date(day, request.calendar) for day in days],
        bucket_labels=[b.bucket.label(request.lang) for b in document.buckets],
        kinds=[fmt.t(f"kind.{kind}") for kind in KINDS],
        reason_keys=[key[len("reason."):] for key in reasons], reasons=[fmt.t(key) for key in reasons],
    )
    sink.flush()
    await csv_parts.write_rows(source, texts, sink.out, document.grand.calls)


async def write_details_csv(document: ReportDocument, out: BinaryIO) -> None:
    """The call rows of a details report as CSV."""
    fmt, calendar = document.fmt, document.request.calendar
    labels = [b.bucket.label(document.request.lang) for b in document.buckets]
    sink = _Sink(out)
    kinds = {kind: fmt.t(f"kind.{kind}") for kind in KINDS}
    reasons = {key[len("reason."):]: fmt.t(key) for key in LABELS if key.startswith("reason.")}
    sink.row(detail_titles(fmt))
    if isinstance(document.rows, data.StreamedRows):
        await _server_rows(document, document.rows, sink)
        return
    async for row in document.rows:
        start = row.start
        # Only values that come from outside (the PBX, the directory, the CRM) can start like a formula.
        sink.row([
            str(row.number), cal.format_date(start.date(), calendar),
            f"{start.hour:02d}:{start.minute:02d}:{start.second:02d}",
            _cell(row.caller), _cell(row.caller_name or ""), _cell(row.callee),
            _cell(row.agent_names), _cell(identity_text(row)), kinds[row.kind],
            reasons[row.reason] if row.reason else "", str(row.transfer_count),
            duration(row.wait_seconds), duration(row.talk_seconds), _cell(row.system),
            _cell(row.call_id), labels[row.bucket],
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
