"""pdf_large's worker pool: documents laid out in forked processes, failures as clear report errors."""

from __future__ import annotations

import io
import os

import pytest
from pypdf import PdfReader

from reports.errors import ReportError
from reports.render import pdf_large

pytestmark = pytest.mark.asyncio


async def test_each_document_is_laid_out_in_a_process_of_its_own() -> None:
    first = await pdf_large.lay_out("page_numbers", {"pages": "3", "label": "page", "persian": ""})
    second = await pdf_large.lay_out("page_numbers", {"pages": "2", "label": "page", "persian": "1"})
    assert len(PdfReader(io.BytesIO(first)).pages) == 3
    assert len(PdfReader(io.BytesIO(second)).pages) == 2
    # One task per process: no Typst caches carried from one document to the next.
    pool = pdf_large._workers_pool()
    pids = [pool.submit(os.getpid).result(timeout=30) for _ in range(3)]
    assert len(set(pids)) == 3
    assert os.getpid() not in pids


async def test_a_document_typst_refuses_is_a_report_error() -> None:
    with pytest.raises(ReportError, match="could not be laid out"):
        await pdf_large.lay_out("report", {"doc": "{not json"})



async def test_after_a_worker_died_the_next_document_gets_a_new_pool() -> None:
    from concurrent.futures.process import BrokenProcessPool

    pool = pdf_large._workers_pool()
    # A worker that dies (as if killed for memory) breaks the whole pool.
    with pytest.raises(BrokenProcessPool):
        pool.submit(os._exit, 3).result(timeout=30)
    with pytest.raises(ReportError, match="worker process died"):
        await pdf_large.lay_out("page_numbers", {"pages": "1", "label": "page", "persian": ""})
    pdf = await pdf_large.lay_out("page_numbers", {"pages": "1", "label": "page", "persian": ""})
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    assert pdf_large._workers_pool() is not pool
