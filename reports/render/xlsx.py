"""XLSX output (XlsxWriter in constant-memory mode): rows stream to disk, memory stays flat.

The calls sheet has a frozen header, reads right to left in Persian, and holds real numbers:
counts as numbers, durations as Excel time values ([h]:mm:ss), the start as an Excel date-time
(Gregorian, local time) beside the date written in the report's calendar. Every text cell is
written as a string, never as a formula, so caller names cannot run in Excel. A second sheet
holds the totals per bucket and for the whole period.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, BinaryIO

import xlsxwriter

from reports import calendar as cal
from reports.context import ReportDocument, Totals, TotalsDocument
from reports.render.cells import detail_titles, identity_text, totals_titles
from reports.text import Formatter

SECONDS_PER_DAY = 86400


class _Book:
    """A constant-memory workbook and the cell formats used by every sheet."""

    def __init__(self, out: BinaryIO, fmt: Formatter) -> None:
        self.book = xlsxwriter.Workbook(out, {"constant_memory": True, "strings_to_formulas": False,
                                              "strings_to_numbers": False, "strings_to_urls": False})
        self.fmt = fmt
        self.header = self.book.add_format({"bold": True, "bg_color": "#ECEFF1", "border": 1, "text_wrap": True})
        self.duration = self.book.add_format({"num_format": "[h]:mm:ss"})
        self.moment = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.bold = self.book.add_format({"bold": True})
        self.bold_duration = self.book.add_format({"bold": True, "num_format": "[h]:mm:ss"})
        self.decimal = self.book.add_format({"num_format": "0.0"})

    def sheet(self, name: str, titles: list[str], widths: list[int]) -> Any:
        sheet = self.book.add_worksheet(name)
        if self.fmt.rtl:
            sheet.right_to_left()
        for column, (title, width) in enumerate(zip(titles, widths, strict=False)):
            sheet.set_column(column, column, width)
            sheet.write_string(0, column, title, self.header)
        sheet.freeze_panes(1, 0)
        return sheet

    def seconds(self, sheet: Any, row: int, column: int, value: Decimal | None, bold: bool = False) -> None:
        if value is None:
            sheet.write_blank(row, column, None)
        else:
            style = self.bold_duration if bold else self.duration
            sheet.write_number(row, column, float(value) / SECONDS_PER_DAY, style)

    def close(self) -> None:
        self.book.close()


def _totals_row(book: _Book, sheet: Any, row: int, label: str, totals: Totals, internal: bool) -> None:
    sheet.write_string(row, 0, label, book.bold)
    counts: list[int] = [totals.calls, totals.incoming, totals.outgoing, totals.missed]
    if internal:
        counts.append(totals.internal)
    counts.append(totals.answered)
    for column, value in enumerate(counts, start=1):
        sheet.write_number(row, column, value)
    column = len(counts) + 1
    for seconds in (totals.incoming_talk, totals.outgoing_talk, totals.avg_incoming_talk, totals.avg_outgoing_talk,
                    totals.avg_wait):
        book.seconds(sheet, row, column, seconds)
        column += 1
    if totals.avg_transfers is None:
        sheet.write_blank(row, column, None)
    else:
        sheet.write_number(row, column, float(totals.avg_transfers), book.decimal)


async def write_details_xlsx(document: ReportDocument, out: BinaryIO) -> None:
    """The details report: a calls sheet (streamed) and a totals sheet."""
    fmt, request = document.fmt, document.request
    book = _Book(out, fmt)
    titles = [*detail_titles(fmt), "start"]
    calls = book.sheet("تماس‌ها" if fmt.rtl else "Calls", titles,
                       [7, 11, 9, 16, 16, 14, 22, 22, 14, 14, 8, 9, 9, 14, 18, 16, 19])
    internal = document.show_internal
    totals_titles_row = [fmt.t("col.bucket"), fmt.t("col.count"), fmt.t("t.incoming"), fmt.t("t.outgoing"),
                         fmt.t("t.missed"), *([fmt.t("t.internal")] if internal else []), fmt.t("t.answered"),
                         fmt.t("t.incoming_talk"), fmt.t("t.outgoing_talk"), fmt.t("t.avg_incoming_talk"),
                         fmt.t("t.avg_outgoing_talk"), fmt.t("t.avg_wait"), fmt.t("t.avg_transfers")]
    totals = book.sheet("جمع" if fmt.rtl else "Totals", totals_titles_row, [18] + [12] * 12)
    for row, bucket in enumerate(document.buckets, start=1):
        _totals_row(book, totals, row, bucket.bucket.label(request.lang), bucket.totals, internal)
    _totals_row(book, totals, len(document.buckets) + 1, fmt.t("total"), document.grand, internal)
    labels = [b.bucket.label(request.lang) for b in document.buckets]
    line = 0
    async for r in document.rows:
        line += 1
        calls.write_number(line, 0, r.number)
        calls.write_string(line, 1, cal.format_date(r.start.date(), request.calendar))
        calls.write_string(line, 2, r.start.strftime("%H:%M:%S"))
        for column, text in enumerate((r.caller, r.caller_name or "", r.callee, r.agent_names, identity_text(r),
                                       fmt.t(f"kind.{r.kind}"), fmt.t(f"reason.{r.reason}") if r.reason else ""),
                                      start=3):
            calls.write_string(line, column, text)
        calls.write_number(line, 10, r.transfer_count)
        book.seconds(calls, line, 11, r.wait_seconds)
        book.seconds(calls, line, 12, r.talk_seconds)
        calls.write_string(line, 13, r.system)
        calls.write_string(line, 14, r.call_id)
        calls.write_string(line, 15, labels[r.bucket])
        calls.write_datetime(line, 16, r.start.replace(tzinfo=None), book.moment)
    if line:
        calls.autofilter(0, 0, line, len(titles) - 1)
    book.close()


async def write_totals_xlsx(document: TotalsDocument, out: BinaryIO) -> None:
    """A sibling report as one sheet, with its Sum and Average rows."""
    fmt = document.fmt
    book = _Book(out, fmt)
    titles = totals_titles(document)
    sheet = book.sheet("جمع" if fmt.rtl else "Totals", titles,
                       [7, 26] + [13] * (len(titles) - 2))
    internal = document.show_internal

    def line(row: int, first: Any, key: str, totals: Totals, bold: bool) -> None:
        if first is None:
            sheet.write_blank(row, 0, None)
        else:
            sheet.write_number(row, 0, first)
        sheet.write_string(row, 1, key, book.bold if bold else None)
        pairs = [(totals.incoming, totals.incoming_talk), (totals.outgoing, totals.outgoing_talk)]
        if internal:
            pairs.append((totals.internal, totals.internal_talk))
        column = 2
        for count, talk in pairs:
            sheet.write_number(row, column, count, book.bold if bold else None)
            book.seconds(sheet, row, column + 1, talk, bold)
            column += 2
        sheet.write_number(row, column, totals.transfers, book.bold if bold else None)
        sheet.write_number(row, column + 1, totals.missed, book.bold if bold else None)

    for number, item in enumerate(document.lines, start=1):
        line(number, number, item.key, item.totals, False)
    count = len(document.lines)
    line(count + 1, None, fmt.t("sum"), document.sum, True)
    line(count + 2, None, fmt.t("average"), document.average, True)
    book.close()
