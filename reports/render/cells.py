"""Cell values shared by the tabular formats (CSV, XLSX): column titles and formula neutralising."""

from __future__ import annotations

from reports.context import CallRow, TotalsDocument
from reports.text import Formatter

# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = frozenset("=+-@\t\r")


def neutralise(value: str) -> str:
    """`value` made inert for spreadsheets: a leading quote before a formula character."""
    return "'" + value if value[:1] in FORMULA_STARTS else value


def detail_titles(fmt: Formatter) -> list[str]:
    """Column titles of the call rows, in the seed's order plus the data columns."""
    keys = ["col.row", "col.date", "col.time", "col.caller", "col.caller_name", "col.callee", "col.agent",
            "col.identity", "col.type", "col.reason", "col.transfers", "col.wait", "col.talk", "col.system",
            "col.call_id", "col.bucket"]
    return [fmt.t(k) for k in keys]


def identity_text(row: CallRow) -> str:
    """The related identities, `; `-separated."""
    return "; ".join(i.name for i in row.identities)


def totals_titles(document: TotalsDocument) -> list[str]:
    """Column titles of a sibling report."""
    fmt = document.fmt
    key = {"agent": "col.agent", "date": "col.date", "number": "col.number"}[document.by]
    received, placed = fmt.t("col.received"), fmt.t("col.placed")
    titles = [fmt.t("col.row"), fmt.t(key),
              f"{received}: {fmt.t('col.count')}", f"{received}: {fmt.t('col.talk_short')}",
              f"{placed}: {fmt.t('col.count')}", f"{placed}: {fmt.t('col.talk_short')}"]
    if document.show_internal:
        internal = fmt.t("col.internal")
        titles += [f"{internal}: {fmt.t('col.count')}", f"{internal}: {fmt.t('col.talk_short')}"]
    return [*titles, fmt.t("col.transfers"), fmt.t("col.missed")]
