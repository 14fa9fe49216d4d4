"""The history import on two cores: a second process groups the CDR rows into calls, this one builds them.

Grouping is sequential (any row may join any open call); building and writing a call is not, and
is the larger part of the work. Sending rows between processes costs more than reading them again
(pickling and unpickling a parsed row costs about twice what csv.reader does), so both processes
read the file: the grouping process sends, for each finished call, the line numbers of its rows;
this process reads the same file a little behind, holds the rows until their call is named, then
builds and writes the calls exactly as the single-process path does (same code, same order).

Without CEL only: CEL events change the rows' linkedids while grouping, so `--cel` imports run in
one process. bench/RESULTS.md ("## CDR import") has the measurements.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.cdr_csv import CdrRow, LocalTimes, count_lines, read_cdr
from ingest.cdr_import import CallMaker, Grouper, ImportStats, group_rows, open_text, zone_of
from ingest.config import SystemConfig
from ingest.errors import CalltrailError, InputFileError
from ingest.records import CallRecord

log = logging.getLogger(__name__)

# Files smaller than this are imported in one process: starting the second one costs about half a second.
MIN_PARALLEL_BYTES = 16 * 2**20
# Calls per message from the grouping process (the pipe's back-pressure bounds how far it runs ahead).
_GROUPS_PER_MESSAGE = 1000


def group_process(path: str, system: SystemConfig, window: timedelta, out: Connection) -> None:
    """The grouping process: sends ("calls", [line numbers of each call], [late lines], highest line)
    messages, then ("done", stats), or ("error", exception) when the file cannot be read."""
    try:
        stats = ImportStats()
        late: list[int] = []
        groups: list[list[int]] = []
        with open_text(Path(path)) as handle:
            rows = read_cdr(handle, path, LocalTimes(zone_of(system)))
            last = 0  # the highest line number sent so far: the reader's position, roughly
            for group in group_rows(rows, path, stats, Grouper(window), late=late):
                lines = [row.line for row in group]
                groups.append(lines)
                last = max(last, *lines)
                if len(groups) >= _GROUPS_PER_MESSAGE:
                    out.send(("calls", groups, late, max(last, *late) if late else last))
                    groups, late = [], []
        out.send(("calls", groups, late, max(last, *late) if late else last))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats.helper_cpu_seconds = usage.ru_utime + usage.ru_stime
        stats.helper_peak_rss_mib = usage.ru_maxrss / 1024
        out.send(("done", stats))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the importing process stopped reading (it failed, and reports why)
    except CalltrailError as exc:
        _send_quietly(out, ("error", exc))
    except Exception:
        _send_quietly(out, ("crash", traceback.format_exc()))
    finally:
        out.close()


def _send_quietly(out: Connection, message: tuple[object, ...]) -> None:
    with contextlib.suppress(OSError):
        out.send(message)


def parallel_calls(
    cdr_path: Path, system: SystemConfig, stats: ImportStats, *, window: timedelta, batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[CallRecord]]:
    """Batches of finished calls of a Master.csv, grouped by a second process; counts into `stats`."""
    path = str(cdr_path)
    zone = zone_of(system)
    context = multiprocessing.get_context("spawn")  # not fork: this process holds a connection and threads
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=group_process, args=(path, system, window, send), daemon=True,
                            name="calltrail-cdr-grouper")
    child.start()
    send.close()
    maker = CallMaker(system, path, stats)
    try:
        with open_text(cdr_path) as handle:
            rows = iter(read_cdr(count_lines(handle, progress), path, LocalTimes(zone)))
            pending: dict[int, CdrRow] = {}
            last = 0

            def read_to(line: int) -> None:
                """Read on until the row of `line` is in `pending`."""
                nonlocal last
                while line > last:
                    item = next(rows, None)
                    if item is None:
                        raise InputFileError("the file changed while it was being imported", path=path, line=line)
                    if isinstance(item, CdrRow):
                        pending[item.line] = item
                        last = item.line

            batch: list[CallRecord] = []
            while True:
                try:
                    message = receive.recv()
                except EOFError:
                    raise InputFileError(f"the grouping process ended unexpectedly (exit code {child.exitcode})",
                                         path=path) from None
                kind = message[0]
                if kind == "done":
                    done: ImportStats = message[1]
                    stats.rows_read += done.rows_read
                    stats.skipped.update(done.skipped)
                    stats.helper_cpu_seconds = done.helper_cpu_seconds
                    stats.helper_peak_rss_mib = done.helper_peak_rss_mib
                    break
                if kind == "error":
                    raise message[1]
                if kind == "crash":
                    log.error("the grouping process failed:\n%s", message[1])
                    raise InputFileError("the grouping process failed (see the log)", path=path)
                groups, late, upto = message[1], message[2], message[3]
                read_to(upto)
                take = pending.pop  # a KeyError here would be a row named twice: a bug, not bad input
                for line in late:
                    take(line)
                for lines in groups:
                    record = maker.build([take(line) for line in lines])
                    if record is not None:
                        batch.append(record)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            if pending:
                raise InputFileError(f"{len(pending)} rows were read but grouped into no call", path=path)
    finally:
        receive.close()
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
            child.join()
