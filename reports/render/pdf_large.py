"""PDF for large call-details reports: Typst, in chunks laid out in parallel processes, then merged.

WeasyPrint lays out a few hundred rows a second at best here and its memory grows with the whole
table, so past `pdf.WEASYPRINT_MAX_ROWS` rows the report is set with Typst (the `typst` package: a
compiled typesetter, no download at run time): the rows stream from the database into chunks of
`ROWS_PER_CHUNK`, each chunk becomes one small PDF in a fresh worker process (`typst_worker`; as
many at once as there are cores, so memory is bounded by the chunks in flight, and Typst's caches
die with each process), pypdf joins them, and "page X of Y" is stamped on every page afterwards
from one overlay document, because no chunk knows Y while it is laid out. Every value is written
by the same Formatter as the other formats and handed to Typst as JSON data, never as markup.

The worker processes are forked from a multiprocessing fork server that has imported Typst once
(kept for the life of this process): a chunk pays a fork, not an interpreter start and the import
of Typst (about 0.2 s of CPU each, a quarter of a chunk's work).
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, BinaryIO

from reports.context import ReportDocument, Section, Totals, sections
from reports.errors import ReportError
from reports.render.chart import bar_chart
from reports.text import Formatter

ROWS_PER_CHUNK = 500
COLUMNS = ["col.row", "col.date", "col.time", "col.caller", "col.callee", "col.agent", "col.identity",
           "col.type", "col.transfers", "col.wait", "col.talk", "col.system"]


_executor: ProcessPoolExecutor | None = None


def _workers_pool() -> ProcessPoolExecutor:
    global _executor
    if _executor is None:
        # Not fork: the calling process holds database connections and threads. The fork server
        # starts clean, imports typst_worker (and Typst) once, and forks one process per document.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["reports.render.typst_worker"])
        _executor = ProcessPoolExecutor(_workers(), mp_context=context, max_tasks_per_child=1)
    return _executor


def _in_worker(template: str, inputs: dict[str, str]) -> bytes:
    # Runs in a worker: typst_worker (and Typst) stay out of the calling process.
    from reports.render import typst_worker

    return typst_worker.lay_out(template, inputs)


async def lay_out(template: str, inputs: dict[str, str]) -> bytes:
    """One Typst document as PDF, laid out by a fresh worker process (ReportError when Typst refuses it)."""
    global _executor
    pool = _workers_pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, _in_worker, template, inputs)
    except BrokenProcessPool as exc:
        # A worker died (killed for memory, say): the pool refuses all work from then on, so the
        # next document gets a new one.
        if _executor is pool:
            _executor = None
        raise ReportError(f"the PDF could not be laid out: a worker process died ({exc})") from exc


def totals_pairs(totals: Totals, fmt: Formatter, internal: bool) -> list[list[str]]:
    """A totals block (D or E) as (label, value) pairs, in the HTML block's order."""
    pairs = [("t.incoming", fmt.num(totals.incoming)), ("t.outgoing", fmt.num(totals.outgoing)),
             ("t.missed", fmt.num(totals.missed))]
    if internal:
        pairs.append(("t.internal", fmt.num(totals.internal)))
    pairs += [("t.answered", fmt.num(totals.answered)), ("t.incoming_talk", fmt.duration(totals.incoming_talk)),
              ("t.outgoing_talk", fmt.duration(totals.outgoing_talk)),
              ("t.avg_incoming_talk", fmt.duration(totals.avg_incoming_talk)),
              ("t.avg_outgoing_talk", fmt.duration(totals.avg_outgoing_talk)),
              ("t.avg_wait", fmt.duration(totals.avg_wait)), ("t.avg_transfers", fmt.num(totals.avg_transfers))]
    return [[fmt.t(key), value] for key, value in pairs]


def _item(section: Section, fmt: Formatter, internal: bool) -> list[Any]:
    if section.kind == "open":
        return ["open", section.bucket.label]
    if section.kind == "close":
        return ["close", totals_pairs(section.bucket.totals, fmt, internal)]
    r = section.row
    assert r is not None
    kind = fmt.t(f"kind.{r.kind}") + (f" ({fmt.t('reason.' + r.reason)})" if r.reason else "")
    caller = fmt.digits(r.caller) + (f" ({r.caller_name})" if r.caller_name else "")
    identities = "، ".join(i.name for i in r.identities) + (" (!)" if r.several_identities else "")
    agents = " → ".join(a.name or fmt.digits(a.extension) for a in r.agents)
    cells = [fmt.num(r.number), fmt.date(r.start.date()), fmt.time(r.start), caller, fmt.digits(r.callee), agents,
             identities, kind, fmt.num(r.transfer_count), fmt.duration(r.wait_seconds),
             fmt.duration(r.talk_seconds), r.system]
    return ["row", cells, r.kind]


def _opening(document: ReportDocument) -> dict[str, Any]:
    """The first chunk's extras: header, filters and chart."""
    fmt, header = document.fmt, document.header
    chart = bar_chart(document.buckets, list(document.request.types), fmt)
    return {
        "header": {
            "title": header.title, "company": header.company,
            "dates": [[fmt.t("made_at"), fmt.datetime(header.made_at)], [fmt.t("from"), fmt.date(header.first_day)],
                      [fmt.t("to"), fmt.date(header.last_day)], [fmt.t("made_by"), header.made_by]],
            "filters": [list(pair) for pair in header.filters],
        },
        "chart": {"svg": chart.svg, "labels": list(chart.labels), "legend": [list(pair) for pair in chart.legend]},
    }


def _chunk(document: ReportDocument, items: list[list[Any]], first: bool, last: bool) -> dict[str, str]:
    fmt = document.fmt
    doc: dict[str, Any] = {
        "rtl": fmt.rtl, "lang": fmt.lang, "columns": [fmt.t(key) for key in COLUMNS], "items": items,
        "header": None, "chart": None, "grand": None, "grand_title": fmt.t("total"),
    }
    if first:
        doc.update(_opening(document))
    if last:
        doc["grand"] = totals_pairs(document.grand, fmt, document.show_internal)
    return {"doc": json.dumps(doc, ensure_ascii=False)}


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


async def write_large_pdf(document: ReportDocument, out: BinaryIO) -> None:
    """Write a details report of any size as PDF through Typst, chunk by chunk."""
    from pypdf import PdfReader, PdfWriter

    workers = asyncio.Semaphore(_workers())
    pending: list[asyncio.Task[bytes]] = []

    async def chunk_pdf(inputs: dict[str, str]) -> bytes:
        async with workers:
            return await lay_out("report", inputs)

    items: list[list[Any]] = []
    rows_in_chunk = 0
    try:
        async for section in sections(document):
            items.append(_item(section, document.fmt, document.show_internal))
            rows_in_chunk += section.kind == "row"
            # Cut only after a bucket's totals or a row, so a chunk never starts with a subtotal.
            if rows_in_chunk >= ROWS_PER_CHUNK and section.kind != "open":
                pending.append(asyncio.create_task(chunk_pdf(_chunk(document, items, not pending, False))))
                items, rows_in_chunk = [], 0
                # Reading on while every worker is busy would only pile chunks up in memory. Wait on
                # the unfinished ones only: a finished task would end every wait at once (a busy loop).
                while len(running := [task for task in pending if not task.done()]) > 2 * _workers():
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        pending.append(asyncio.create_task(chunk_pdf(_chunk(document, items, not pending, True))))
        chunks = await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
    writer = PdfWriter()
    for chunk in chunks:
        for page in PdfReader(io.BytesIO(chunk)).pages:
            writer.add_page(page)
    fmt = document.fmt
    overlay = await lay_out("page_numbers", {"pages": str(len(writer.pages)), "label": fmt.t("page"),
                                             "persian": "1" if fmt.rtl else ""})
    for page, stamp in zip(writer.pages, PdfReader(io.BytesIO(overlay)).pages, strict=True):
        page.merge_page(stamp)
        # merge_page leaves the joined content uncompressed (15 times larger).
        page.compress_content_streams()
    writer.write(out)
