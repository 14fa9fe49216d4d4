"""A large CSV export formatted by several PostgreSQL connections at once, joined in order.

One server process formats the rows of details_csv.sql at about 10 us each, on one core: the period
is therefore cut into consecutive time ranges (parts), each formatted by its own connection in the
report's snapshot (`pg_export_snapshot`, so every part sees what the totals saw). The first part goes
straight to the output; the others are spooled to temporary files while it streams and copied after
it, in order. A spooled part's row numbers are not known while it is written (they depend on how many
rows the parts before it have), so the server leaves those cells empty and they are filled in here
when the part is copied. The bytes are those of a one-part export (tests/test_report_csv_server.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from contextlib import AsyncExitStack
from datetime import datetime
from typing import BinaryIO

from ingest.errors import DatabaseError
from reports import data

log = logging.getLogger(__name__)

# Connections per export (the first one included): the server's cores are what it scales with.
PARTS = 2
# Fewer rows than this per part are not worth another connection.
MIN_ROWS_PER_PART = 50_000
# Bytes read from a spooled part at a time.
SPOOL_BLOCK = 1 << 20


def cut(first: datetime, last: datetime, parts: int) -> list[datetime]:
    """`parts - 1` times that cut [first, last] into equal stretches (ascending, the bounds excluded)."""
    step = (last - first) / parts
    return [first + step * n for n in range(1, parts)]


def parts_for(expected: int) -> int:
    """Into how many parts an export of about `expected` rows is cut."""
    return max(1, min(PARTS, expected // MIN_ROWS_PER_PART))


def _numbered(lines: list[bytes], first: int) -> bytes:
    # Each line starts with the empty row-number cell's comma: the number goes in front of it. Built
    # from C-level maps (half the time of a formatting loop: this runs once per spooled row).
    if not lines:
        return b""
    numbers = map(b"%d".__mod__, range(first, first + len(lines)))
    return b"\r\n".join(map(bytes.__add__, numbers, lines)) + b"\r\n"


def copy_numbered(spool: BinaryIO, out: BinaryIO, first: int) -> int:
    """Copy a spooled part to `out` with its rows numbered from `first` and CRLF line ends; the rows copied."""
    spool.seek(0)
    pending = b""
    rows = 0
    while block := spool.read(SPOOL_BLOCK):
        lines = (pending + block).split(b"\n")
        # details_csv.sql turns newlines in values into spaces: every LF ends a record.
        pending = lines.pop()
        out.write(_numbered(lines, first + rows))
        rows += len(lines)
    if pending:
        raise ValueError("a spooled CSV part does not end with a line end")
    return rows


async def write_rows(source: data.StreamedRows[object], texts: data.CsvTexts, out: BinaryIO, expected: int) -> None:
    """The rows of `source` as CSV lines with CRLF ends, over several connections when it pays.

    `expected` is the number of rows the totals promise: it only decides into how many parts to cut.
    """
    conn, request, scope = source.conn, source.request, source.scope
    first_part_rows = 0

    async def received(chunk: bytes) -> None:
        nonlocal first_part_rows
        first_part_rows += chunk.count(b"\n")
        out.write(chunk.replace(b"\n", b"\r\n"))

    wanted = parts_for(expected)
    if source.spare is None or wanted < 2:
        await data.details_csv(conn, request, scope, texts, received)
        return
    async with AsyncExitStack() as stack:
        spares = []
        for _ in range(wanted - 1):
            try:
                spares.append(await stack.enter_async_context(source.spare()))
            except (TimeoutError, OSError, DatabaseError) as exc:
                log.info("CSV export: no spare database connection (%s), using %d", exc, len(spares) + 1)
                break
        span = await data.details_span(conn, request, scope)
        cuts = cut(*span, len(spares) + 1)[:len(spares)] if span is not None and spares else []
        if not cuts:
            await data.details_csv(conn, request, scope, texts, received)
            return
        snapshot = await data.export_snapshot(conn)
        start, end = request.utc_range()
        bounds = [start, *cuts, end]
        spools: list[BinaryIO] = []
        for _ in cuts:
            spools.append(stack.enter_context(tempfile.TemporaryFile()))  # noqa: SIM115 - closed by the stack

        async def spooled(spare: data.Connection, part: tuple[datetime, datetime], spool: BinaryIO) -> None:
            async def write(chunk: bytes) -> None:
                spool.write(chunk)

            async with data.in_snapshot(spare, snapshot):
                await data.details_csv(spare, request, scope, texts, write, part=part, first_number=None)

        tasks = [asyncio.create_task(spooled(spare, (bounds[n + 1], bounds[n + 2]), spool))
                 for n, (spare, spool) in enumerate(zip(spares, spools, strict=False))]
        try:
            await data.details_csv(conn, request, scope, texts, received, part=(bounds[0], bounds[1]))
            number = first_part_rows + 1
            for task, done in zip(tasks, spools, strict=True):
                await task
                number += copy_numbered(done, out, number)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.debug("CSV export in %d parts cut at %s", len(bounds) - 1, cuts)
